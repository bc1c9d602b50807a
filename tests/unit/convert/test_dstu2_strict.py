"""Strict DSTU2 validity of what the converters write (issue 15): every fixture converted into
DSTU2 passes a validator that refuses unknown elements (tests/support/dstu2.py: the DSTU2
models of fhir.resources 7.1.0, made strict, in their own virtualenv), and values carried in
cross-version extensions take the target version's shapes (item 8)."""

from __future__ import annotations

import copy
import functools
from typing import Any

import fhir.resources.STU3 as stu3_models
import pytest

from shared.fhir.convert import convert, supports
from tests.support.dstu2 import strict_problems
from tests.support.fixtures import XVER_R4, XVER_STU3, documents


@functools.cache
def _converted_fixtures() -> dict[str, list[str]]:
    """Problems of every fixture converted into DSTU2 (from STU3 and R4), and of every HL7
    DSTU2 example after a round trip through STU3 and through R4, by label."""
    converted: dict[str, Any] = {}
    for version, label, resource in documents():
        if not supports(resource["resourceType"]):
            continue  # answered 501 by the proxy: never converted
        if version != "dstu2":
            converted[f"{label}->dstu2"] = convert(resource, version, "dstu2")
        elif not label.startswith("synthea/"):  # Synthea's DSTU2 export breaks DSTU2 itself
            for middle in ("stu3", "r4"):
                back = convert(convert(resource, "dstu2", middle), middle, "dstu2")
                converted[f"{label}->{middle}->dstu2"] = back
    return strict_problems(converted)


def test_every_fixture_converted_into_dstu2_passes_the_strict_dstu2_validator() -> None:
    problems = _converted_fixtures()
    assert len(problems) > 750  # every HL7 example, Synthea entry and HAPI input
    assert {label: found for label, found in problems.items() if found} == {}


@functools.cache
def _hl7_dstu2_examples() -> dict[str, list[str]]:
    examples = {
        label: convert(resource, "dstu2", "dstu2")  # fhir_comments stripped, nothing else
        for version, label, resource in documents()
        if version == "dstu2" and not label.startswith("synthea/")
    }
    return strict_problems(examples)


def test_the_validator_accepts_every_hl7_dstu2_example() -> None:
    problems = _hl7_dstu2_examples()
    assert len(problems) >= 30
    assert {label: found for label, found in problems.items() if found} == {}


@pytest.mark.parametrize(
    ("resource", "problem"),
    [
        ({"resourceType": "Patient", "animalia": True}, "animalia"),
        ({"resourceType": "Patient", "name": [{"family": "Chalmers"}]}, "family"),
        ({"resourceType": "Patient", "_gender": {"extension": [{"url": "x"}], "x": 1}}, "_gender"),
        ({"resourceType": "Patient", "_name": {"id": "n"}}, "_name"),
        (
            {"resourceType": "Patient", "extension": [{"url": "x", "valueCanonical": "http://a"}]},
            "valueCanonical",
        ),
        (
            {"resourceType": "Patient", "extension": [{"url": "x", "valueMoney": {"value": 1}}]},
            "valueMoney",
        ),
        (
            {
                "resourceType": "Patient",
                "extension": [{"url": "x", "valueReference": {"identifier": {"value": "1"}}}],
            },
            "identifier",
        ),
        ({"resourceType": "Encounter"}, "status"),
        ({"resourceType": "AllergyIntolerance", "lastOccurrence": "2020"}, "lastOccurrence"),
        ({"resourceType": "MedicationRequest"}, "MedicationRequest"),
    ],
    ids=[
        "unknown-element",
        "stu3-family",
        "twin-with-other-keys",
        "twin-of-a-complex-element",
        "r4-extension-type",
        "stu3-extension-type",
        "reference-identifier",
        "missing-required",
        "stu3-spelling",
        "stu3-type",
    ],
)
def test_the_validator_refuses_what_dstu2_does_not_have(
    resource: dict[str, Any], problem: str
) -> None:
    [found] = strict_problems({"case": resource}).values()
    assert found
    assert any(problem in line for line in found), found


def test_the_validator_accepts_a_required_primitive_that_only_says_why_it_is_absent() -> None:
    absent = {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason"}]}
    absent["extension"][0]["valueCode"] = "unknown"
    encounter = {"resourceType": "Encounter", "_status": absent}
    assert strict_problems({"case": encounter}) == {"case": []}


# -- item 8: carried values in the target version's shapes ------------------------------------

MONEY_EXTENSION = "http://example.org/StructureDefinition/copay"
R4_PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "p1",
    "extension": [
        {"url": "http://example.org/StructureDefinition/form", "valueCanonical": "http://q|2"},
        {"url": "http://example.org/StructureDefinition/home", "valueUrl": "https://p.example"},
        {"url": MONEY_EXTENSION, "valueMoney": {"value": 12.5, "currency": "USD"}},
        {
            "url": "http://example.org/StructureDefinition/alias",
            "valueHumanName": {"family": "Chalmers", "_family": {"id": "f"}},
        },
    ],
    "name": [{"family": "Chalmers"}],
}
R4_OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation",
    "id": "o1",
    "status": "final",
    "code": {"text": "Glucose"},
    "basedOn": [{"identifier": {"system": "urn:orders", "value": "A-1"}, "display": "Order"}],
    "effectiveTiming": {
        "event": ["2024-01-01T08:00:00Z"],
        "repeat": {
            "boundsDuration": {"value": 7, "unit": "d"},
            "frequency": 1,
            "period": 1,
            "periodUnit": "d",
            "when": ["MORN.early"],
        },
    },
}


def _as_uris(resource: dict[str, Any]) -> dict[str, Any]:
    """``resource`` with canonical and url extension values read as uris (their type is the
    one thing a round trip through STU3 loses: the value is the same)."""
    out = copy.deepcopy(resource)
    for extension in out.get("extension", []):
        for key in ("valueCanonical", "valueUrl"):
            if key in extension:
                extension["valueUri"] = extension.pop(key)
    return out


@pytest.mark.parametrize("resource", [R4_PATIENT, R4_OBSERVATION], ids=["patient", "observation"])
def test_values_carried_from_r4_take_the_stu3_shapes(resource: dict[str, Any]) -> None:
    """Item 8. Input: R4 values with no STU3 shape (valueCanonical, valueUrl, R4 Money, an R4
    Timing with R4-only ``when`` codes) in extensions. Expected: the STU3 model accepts the
    result, and R4 comes back (canonical and url as uri)."""
    stu3 = convert(resource, "r4", "stu3")
    stu3_models.get_fhir_model_class(resource["resourceType"]).model_validate(stu3)
    assert convert(stu3, "stu3", "r4") == _as_uris(resource)


@pytest.mark.parametrize("resource", [R4_PATIENT, R4_OBSERVATION], ids=["patient", "observation"])
def test_values_carried_from_r4_take_the_dstu2_shapes(resource: dict[str, Any]) -> None:
    """Item 8. Input: the same R4 values, and a logical Reference (identifier only) carried.
    Expected: the strict DSTU2 validator accepts the result, and R4 comes back (canonical and
    url as uri)."""
    dstu2 = convert(resource, "r4", "dstu2")
    assert strict_problems({"case": dstu2}) == {"case": []}
    assert convert(dstu2, "dstu2", "r4") == _as_uris(resource)


def test_r4_money_becomes_stu3_money_by_hl7s_money_map() -> None:
    """HL7 R4→R3 Money: currency → code in urn:iso:std:iso:4217 (STU3 Money is a Quantity)."""
    [money] = [
        e for e in convert(R4_PATIENT, "r4", "stu3")["extension"] if e["url"] == MONEY_EXTENSION
    ]
    assert money["valueMoney"] == {"value": 12.5, "system": "urn:iso:std:iso:4217", "code": "USD"}


def test_a_logical_reference_carried_into_dstu2_keeps_its_identifier_in_an_extension() -> None:
    dstu2 = convert(R4_OBSERVATION, "r4", "dstu2")
    [based_on] = [e for e in dstu2["extension"] if e["url"] == XVER_STU3 + "Observation.basedOn"]
    reference = based_on["valueReference"]
    assert "identifier" not in reference
    assert reference["extension"] == [
        {
            "url": XVER_STU3 + "Reference.identifier",
            "valueIdentifier": {"system": "urn:orders", "value": "A-1"},
        }
    ]
    assert XVER_R4  # the R4 Timing rides in 4.0/…Observation.effective (observation.md)
