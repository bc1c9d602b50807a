"""``shared.fhir.convert.convert`` itself: ``copy`` never changes the input, ``copy=False`` gives
the same output, DSTU2 comments leave nothing behind, a Bundle's entries go through the whole
chain at once, the code-system cache."""

from __future__ import annotations

import copy
import json
from types import MappingProxyType
from typing import Any

import pytest

from shared.fhir.convert import ConversionError, convert
from shared.fhir.convert.common import rewrite_systems
from tests.support.fixtures import (
    VERSIONS,
    hapi_files,
    hl7_example,
    hl7_example_files,
    synthea_files,
)

SNOMED = "http://snomed.info/sct"
V2_0203_R4 = "http://terminology.hl7.org/CodeSystem/v2-0203"
CATEGORY_R4 = "http://terminology.hl7.org/CodeSystem/observation-category"


def all_fixtures() -> list[Any]:
    """pytest params (source, document): every HL7 example, Synthea Bundle and HAPI file."""
    found = []
    for version in VERSIONS:
        for kind, files in (("hl7-examples", hl7_example_files), ("synthea", synthea_files)):
            for path in files(version):
                name = f"{kind}/{version}/{path.stem[:30]}"
                found.append(pytest.param(version, json.loads(path.read_text()), id=name))
    for version, path in hapi_files():
        found.append(pytest.param(version, json.loads(path.read_text()), id=f"hapi/{path.stem}"))
    return found


FIXTURE_DOCUMENTS = all_fixtures()


def outcome(document: dict[str, Any], source: str, target: str, **options: Any) -> Any:
    """The converted document, or the kind and text of the error it raised."""
    try:
        return convert(document, source, target, **options)
    except ConversionError as error:
        return (type(error).__name__, str(error))


def vital_signs_searchset() -> dict[str, Any]:
    """A small R4 searchset of vital signs with a blood-pressure panel (what the app reads)."""

    def observation(index: int, code: str, components: list[str] | None = None) -> dict[str, Any]:
        resource: dict[str, Any] = {
            "resourceType": "Observation",
            "id": f"vs-{index}",
            "meta": {
                "source": "#upstream",
                "profile": ["http://hl7.org/fhir/StructureDefinition/vitalsigns"],
            },
            "status": "final",
            "category": [{"coding": [{"system": CATEGORY_R4, "code": "vital-signs"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": f"2024-05-0{index + 1}T08:00:00Z",
        }
        quantity = {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org"}
        if components:
            resource["component"] = [
                {
                    "code": {"coding": [{"system": "http://loinc.org", "code": c}]},
                    "valueQuantity": {**quantity, "unit": "mmHg", "code": "mm[Hg]"},
                }
                for c in components
            ]
        else:
            resource["valueQuantity"] = {**quantity, "code": "/min"}
        return resource

    resources = [observation(0, "8867-4"), observation(1, "85354-9", ["8480-6", "8462-4"])]
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 2,
        "link": [{"relation": "self", "url": "https://fhir.example/r4/Observation?patient=p1"}],
        "entry": [
            {"fullUrl": f"https://fhir.example/r4/Observation/{r['id']}", "resource": r}
            for r in resources
        ],
    }


@pytest.mark.parametrize(("source", "document"), FIXTURE_DOCUMENTS)
def test_convert_with_copy_never_changes_its_input(source: str, document: dict[str, Any]) -> None:
    before = copy.deepcopy(document)
    for target in VERSIONS:
        outcome(document, source, target)
        assert document == before, f"{source} → {target} changed its input"


@pytest.mark.parametrize(("source", "document"), FIXTURE_DOCUMENTS)
def test_convert_without_copy_gives_the_same_output(source: str, document: dict[str, Any]) -> None:
    for target in VERSIONS:
        expected = outcome(document, source, target)
        assert outcome(copy.deepcopy(document), source, target, copy=False) == expected


@pytest.mark.parametrize("target", ["stu3", "dstu2"])
def test_convert_without_copy_gives_the_same_vital_signs(target: str) -> None:
    searchset = vital_signs_searchset()
    expected = convert(searchset, "r4", target)
    assert convert(copy.deepcopy(searchset), "r4", target, copy=False) == expected


def test_convert_with_copy_leaves_a_read_only_mapping_alone() -> None:
    patient = {"resourceType": "Patient", "id": "p", "name": [{"family": "Chalmers"}]}
    converted = convert(MappingProxyType(patient), "r4", "dstu2")
    assert converted["name"] == [{"family": ["Chalmers"]}]
    assert patient["name"] == [{"family": "Chalmers"}]


def test_entries_sharing_one_resource_object_are_each_converted_once() -> None:
    # A Bundle built in Python may hold one dict in two entries; the copy separates them, so
    # converting the entries in place converts each exactly once (a second pass would read
    # the MedicationOrder as an R4 MedicationRequest without intent and leave it out).
    order = {
        "resourceType": "MedicationRequest",
        "id": "m1",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"text": "Metformin 500 mg"},
        "subject": {"reference": "Patient/p1"},
        "authoredOn": "2024-04-20",
    }
    bundle = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": order}] * 2}
    converted = convert(bundle, "r4", "dstu2")
    assert [e["resource"]["resourceType"] for e in converted["entry"]] == ["MedicationOrder"] * 2
    assert [e["resource"]["dateWritten"] for e in converted["entry"]] == ["2024-04-20"] * 2
    assert order["resourceType"] == "MedicationRequest"


def test_convert_without_copy_makes_no_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    import shared.fhir.convert as package

    def refuse(resource: Any) -> dict[str, Any]:
        raise AssertionError("copy=False copied its input")

    monkeypatch.setattr(package, "clone", refuse)
    searchset = vital_signs_searchset()
    assert convert(searchset, "r4", "dstu2", copy=False)["entry"][1]["resource"]["component"]


def test_convert_without_copy_still_strips_dstu2_comments() -> None:
    patient = {"resourceType": "Patient", "fhir_comments": ["x"], "gender": "male"}
    assert convert(patient, "dstu2", "dstu2", copy=False) == {
        "resourceType": "Patient",
        "gender": "male",
    }


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()


def element_at(document: Any, path: tuple[str | int, ...]) -> Any:
    """The element at ``path`` (keys and list indexes) of ``document``, or MISSING when only its
    last step is absent (an absent parent fails)."""
    if not path:
        return document
    *parents, last = path
    for step in parents:
        document = document[step]
    return document.get(last, MISSING) if isinstance(last, str) else document[last]


ALLERGY_DSTU2: dict[str, Any] = {
    "resourceType": "AllergyIntolerance",
    "patient": {"reference": "Patient/p1"},
    "substance": {"text": "Penicillin"},
}
CONDITION_DSTU2: dict[str, Any] = {
    "resourceType": "Condition",
    "id": "c1",
    "severity": {"coding": [{"system": SNOMED, "code": "24484000", "display": "Severe"}]},
    "code": {"coding": [{"system": SNOMED, "code": "386661006", "display": "Fever"}]},
    "verificationStatus": "confirmed",
    "clinicalStatus": "active",
    "category": {
        "coding": [
            {"system": "http://hl7.org/fhir/condition-category", "code": "problem-list-item"}
        ]
    },
    "dateRecorded": "2024-04-04",
    "patient": {"reference": "Patient/p1", "display": "Peter"},
}
# A DSTU2 document whose primitive twin (``_x``) holds nothing but ``fhir_comments``, and what
# its STU3 form holds at each path (MISSING: no such element).
COMMENT_ONLY = [
    pytest.param(
        {
            "resourceType": "Patient",
            "gender": "male",
            "_gender": {"fhir_comments": ["use FHIR code system for male / female"]},
        },
        {(): {"resourceType": "Patient", "gender": "male"}},
        id="Patient._gender",
    ),
    pytest.param(
        {**ALLERGY_DSTU2, "status": "active", "_status": {"fhir_comments": ["a comment"]}},
        {("_clinicalStatus",): MISSING},
        id="AllergyIntolerance._status",
    ),
    pytest.param(
        {**ALLERGY_DSTU2, "type": "allergy", "_type": {"fhir_comments": ["c"]}},
        {("_type",): MISSING},
        id="AllergyIntolerance._type",
    ),
    pytest.param(
        {
            **CONDITION_DSTU2,
            "dateRecorded": "2024-04-04",
            "_dateRecorded": {"fhir_comments": ["  recorded  "]},
        },
        {("assertedDate",): "2024-04-04", ("_assertedDate",): MISSING},
        id="Condition._dateRecorded",
    ),
    pytest.param(
        hl7_example("dstu2", "encounter-example-f201-20130404.json"),
        {("identifier",): [{"use": "temp", "value": "Encounter_Roel_20130404"}]},
        id="Encounter.identifier._value",
    ),
    pytest.param(
        hl7_example("dstu2", "observation-example-satO2.json"),
        {("code", "coding", 0, "_code"): MISSING},
        id="Observation.code.coding._code",
    ),
]


@pytest.mark.parametrize(("dstu2", "expected"), COMMENT_ONLY)
def test_comment_only_primitive_extensions_of_dstu2_leave_nothing_behind(
    dstu2: dict[str, Any], expected: dict[tuple[str | int, ...], Any]
) -> None:
    """Stripping DSTU2's ``fhir_comments`` leaves no empty ``_x`` twin behind: ``{}`` is valid in
    no release (README.md, "How a conversion runs")."""
    stu3 = convert(dstu2, "dstu2", "stu3")
    assert {path: element_at(stu3, path) for path in expected} == expected


@pytest.mark.parametrize(
    ("source", "target"), [("r4", "dstu2"), ("dstu2", "r4")], ids=["down", "up"]
)
@pytest.mark.parametrize(
    ("version", "bundle"),
    [p for p in FIXTURE_DOCUMENTS if p.values[1].get("resourceType") == "Bundle"],
)
def test_bundle_over_two_steps_equals_two_single_step_conversions(
    source: str, target: str, version: str, bundle: dict[str, Any]
) -> None:
    # Entries go through the whole chain at once; the result is the step-by-step one.
    if version != source:
        bundle = convert(bundle, version, source)
    once = outcome(bundle, source, target)
    middle = outcome(bundle, source, "stu3")
    assert once == (middle if isinstance(middle, tuple) else outcome(middle, "stu3", target))


def test_vital_signs_bundle_over_two_steps_equals_two_single_step_conversions() -> None:
    searchset = vital_signs_searchset()
    stepwise = convert(convert(searchset, "r4", "stu3"), "stu3", "dstu2")
    assert convert(searchset, "r4", "dstu2") == stepwise


def test_entry_left_out_over_two_steps_reads_as_one_left_out_step_by_step() -> None:
    batch_response = {
        "resourceType": "Bundle",
        "type": "batch-response",
        "entry": [
            {"resource": {"resourceType": "Procedure", "id": "x"}, "response": {"status": "200"}}
        ],
    }
    converted = convert(batch_response, "r4", "dstu2")
    entry = converted["entry"][0]
    assert entry["response"] == {"status": "501 Not Implemented"}
    assert entry["resource"]["resourceType"] == "OperationOutcome"
    assert "Procedure resources are not available" in entry["resource"]["issue"][0]["diagnostics"]
    # Serialised byte for byte as the step-by-step conversion did (response, then resource).
    assert list(entry) == ["response", "resource"]


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("UDI", "http://hl7.org/fhir/identifier-type"),
        ("MR", "http://hl7.org/fhir/v2/0203"),
        ("SNO", "http://hl7.org/fhir/identifier-type"),
        ("MR", "http://hl7.org/fhir/v2/0203"),
    ],
)
def test_system_cache_keeps_the_identifier_type_split_by_code(code: str, expected: str) -> None:
    # v2-0203 is the one system whose older spelling depends on the code: never cached.
    coding = {"system": V2_0203_R4, "code": code}
    assert rewrite_systems({"coding": [coding]}, "stu3") == {
        "coding": [{"system": expected, "code": code}]
    }


def test_rewrite_systems_reaches_codings_in_dict_and_list_subclasses() -> None:
    class Node(dict[str, Any]):
        pass

    class Items(list[Any]):
        pass

    tree = {"a": Node(coding=Items([{"system": CATEGORY_R4, "code": "vital-signs"}])), "n": 1}
    rewrite_systems(tree, "stu3")
    assert tree["a"]["coding"][0]["system"] == "http://hl7.org/fhir/observation-category"


def test_rewrite_systems_leaves_a_system_without_code_or_display() -> None:
    identifier = {"system": V2_0203_R4, "value": "42"}
    assert rewrite_systems(identifier, "dstu2") == {"system": V2_0203_R4, "value": "42"}
