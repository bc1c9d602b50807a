"""Synthea R4 bundles as sandbox resources: kept types, references rewritten to Type/id or
reduced to their display, valid R4 (the fixtures, then one rule per synthetic bundle)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from shared.sandbox.store import SUPPORTED_TYPES
from shared.sandbox.synthea import InvalidBundle, synthea_resources
from tests.support.fixtures import synthea_files

BUNDLES = synthea_files("r4")
NPI = "http://hl7.org/fhir/sid/us-npi"
SYNTHEA_ID = "https://github.com/synthetichealth/synthea"


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def references(value: Any) -> Iterator[dict[str, Any]]:
    """Every Reference-shaped object (with ``reference`` or only ``display``) in ``value``."""
    if isinstance(value, dict):
        if "reference" in value:
            yield value
        for item in value.values():
            yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def entry(resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "fullUrl": f"urn:uuid:{resource['id']}",
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
    }


def bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": [entry(r) for r in resources]}


PATIENT_ID = "0b7e1f4a-2c7d-4d8e-9a52-3f1c6b0d9e11"
PATIENT = {
    "resourceType": "Patient",
    "id": PATIENT_ID,
    "name": [{"family": "Muñoz", "given": ["Ana"]}],
    "gender": "female",
    "birthDate": "1980-02-03",
}
SUBJECT = {"reference": f"urn:uuid:{PATIENT_ID}"}


def encounter(**fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": "7d0f9a52-1111-4c1e-8f0e-2b9a6f3c4d21",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": SUBJECT,
        **fields,
    }


def practitioner(resource_id: str, npi: str) -> dict[str, Any]:
    return {
        "resourceType": "Practitioner",
        "id": resource_id,
        "identifier": [{"system": NPI, "value": npi}],
        "name": [{"family": "Nguyễn", "given": ["Minh"], "prefix": ["Dr."]}],
    }


def only(resources: list[dict[str, Any]], resource_type: str) -> dict[str, Any]:
    (found,) = [r for r in resources if r["resourceType"] == resource_type]
    return found


# -- the Synthea fixtures ------------------------------------------------------------------


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.stem.split("_")[0])
def test_every_reference_becomes_type_and_id(path: Path) -> None:
    resources = synthea_resources(load(path))
    found = [ref["reference"] for ref in references(resources)]
    assert found, "the fixture has references"
    for reference in found:
        resource_type, _, resource_id = reference.partition("/")
        assert resource_type in SUPPORTED_TYPES and resource_id, reference
        assert "urn:" not in reference


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.stem.split("_")[0])
def test_references_resolve_within_the_output(path: Path) -> None:
    resources = synthea_resources(load(path))
    known = {f"{r['resourceType']}/{r['id']}" for r in resources}
    for reference in references(resources):
        assert reference["reference"] in known


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.stem.split("_")[0])
def test_kept_types_are_all_kept_with_their_ids_and_the_rest_left_out(path: Path) -> None:
    source = [e["resource"] for e in load(path)["entry"]]
    resources = synthea_resources(load(path))
    expected = Counter(r["resourceType"] for r in source if r["resourceType"] in SUPPORTED_TYPES)
    assert Counter(r["resourceType"] for r in resources) == expected
    kept_ids = {r["id"] for r in source if r["resourceType"] in SUPPORTED_TYPES}
    assert {r["id"] for r in resources} == kept_ids


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.stem.split("_")[0])
def test_output_validates_as_r4(path: Path) -> None:
    for resource in synthea_resources(load(path)):
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def test_the_input_bundle_is_not_changed() -> None:
    source = load(BUNDLES[0])
    before = json.dumps(source)
    synthea_resources(source)
    assert json.dumps(source) == before


# -- reference rules, one synthetic bundle each --------------------------------------------


def test_conditional_reference_resolves_into_another_bundle_of_the_set() -> None:
    doctors = bundle(practitioner("prac-a", "9999"), practitioner("prac-b", "1234"))
    visit = encounter(
        participant=[{"individual": {"reference": f"Practitioner?identifier={NPI}|9999"}}]
    )
    resources = synthea_resources(bundle(PATIENT, visit), others=[doctors])
    individual = only(resources, "Encounter")["participant"][0]["individual"]
    assert individual == {"reference": "Practitioner/prac-a"}
    assert {r["resourceType"] for r in resources} == {"Patient", "Encounter"}


def test_conditional_reference_without_a_system_matches_the_value_alone() -> None:
    doctors = bundle(practitioner("prac-a", "9999"))
    visit = encounter(participant=[{"individual": {"reference": "Practitioner?identifier=9999"}}])
    resources = synthea_resources(bundle(PATIENT, visit), others=[doctors])
    individual = only(resources, "Encounter")["participant"][0]["individual"]
    assert individual["reference"] == "Practitioner/prac-a"


def test_ambiguous_conditional_reference_keeps_only_its_display() -> None:
    twins = bundle(practitioner("prac-a", "9999"), practitioner("prac-b", "9999"))
    individual = {"reference": f"Practitioner?identifier={NPI}|9999", "display": "Dr. Minh"}
    visit = encounter(participant=[{"individual": individual}])
    resources = synthea_resources(bundle(PATIENT, visit), others=[twins])
    assert only(resources, "Encounter")["participant"][0]["individual"] == {"display": "Dr. Minh"}


def test_unresolved_conditional_reference_keeps_its_display() -> None:
    provider = {
        "reference": f"Organization?identifier={SYNTHEA_ID}|missing",
        "display": "BAYSTATE MEDICAL CENTER",
    }
    resources = synthea_resources(bundle(PATIENT, encounter(serviceProvider=provider)))
    assert only(resources, "Encounter")["serviceProvider"] == {"display": "BAYSTATE MEDICAL CENTER"}


def test_unresolved_optional_reference_without_display_goes_with_its_element() -> None:
    visit = encounter(
        serviceProvider={"reference": f"Organization?identifier={SYNTHEA_ID}|missing"},
        participant=[{"individual": {"reference": "urn:uuid:not-in-this-bundle"}}],
        location=[{"location": {"reference": "Location?identifier=x|y"}, "status": "completed"}],
    )
    kept = only(synthea_resources(bundle(PATIENT, visit)), "Encounter")
    assert not {"serviceProvider", "participant", "location"} & set(kept)
    get_fhir_model_class("Encounter").model_validate(kept)


def test_reference_to_a_type_the_sandbox_does_not_keep_keeps_its_display() -> None:
    procedure = {
        "resourceType": "Procedure",
        "id": "5a1d3c9e-0000-4000-8000-000000000001",
        "status": "completed",
        "subject": SUBJECT,
    }
    reason = {"reference": f"urn:uuid:{procedure['id']}", "display": "Appendectomy"}
    visit = encounter(reasonReference=[reason])
    resources = synthea_resources(bundle(PATIENT, visit, procedure))
    assert only(resources, "Encounter")["reasonReference"] == [{"display": "Appendectomy"}]
    assert "Procedure" not in {r["resourceType"] for r in resources}


def test_extension_whose_reference_goes_is_removed() -> None:
    extension = {
        "url": "http://example.org/fhir/StructureDefinition/referrer",
        "valueReference": {"reference": "urn:uuid:gone"},
    }
    resources = synthea_resources(bundle(PATIENT, encounter(extension=[extension])))
    assert "extension" not in only(resources, "Encounter")


def test_resource_that_loses_a_required_reference_is_left_out() -> None:
    condition = {
        "resourceType": "Condition",
        "id": "c1f0e2d3-0000-4000-8000-000000000002",
        "code": {"text": "Asthma"},
        "subject": {"reference": "urn:uuid:someone-else"},
    }
    resources = synthea_resources(bundle(PATIENT, condition))
    assert [r["resourceType"] for r in resources] == ["Patient"]


def test_relative_reference_to_a_kept_resource_stays() -> None:
    visit = encounter(subject={"reference": f"Patient/{PATIENT_ID}"})
    resources = synthea_resources(bundle(PATIENT, visit))
    assert only(resources, "Encounter")["subject"] == {"reference": f"Patient/{PATIENT_ID}"}


def test_contained_reference_stays() -> None:
    request = {
        "resourceType": "MedicationRequest",
        "id": "a0000000-0000-4000-8000-000000000003",
        "contained": [{"resourceType": "Medication", "id": "med", "code": {"text": "Aspirin"}}],
        "status": "active",
        "intent": "order",
        "medicationReference": {"reference": "#med"},
        "subject": SUBJECT,
    }
    kept = only(synthea_resources(bundle(PATIENT, request)), "MedicationRequest")
    assert kept["medicationReference"] == {"reference": "#med"}


def test_medication_reference_becomes_the_medication_code() -> None:
    code = {
        "coding": [
            {
                "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                "code": "314076",
                "display": "lisinopril 10 MG Oral Tablet",
            }
        ]
    }
    medication = {"resourceType": "Medication", "id": "b0000000-0000-4000-8000-000000000004"}
    request = {
        "resourceType": "MedicationRequest",
        "id": "a0000000-0000-4000-8000-000000000005",
        "status": "active",
        "intent": "order",
        "medicationReference": {"reference": f"urn:uuid:{medication['id']}"},
        "subject": SUBJECT,
    }
    resources = synthea_resources(bundle(PATIENT, {**medication, "code": code}, request))
    kept = only(resources, "MedicationRequest")
    assert "medicationReference" not in kept
    assert kept["medicationCodeableConcept"] == {**code, "text": "lisinopril 10 MG Oral Tablet"}
    get_fhir_model_class("MedicationRequest").model_validate(kept)


def test_entry_without_an_id_takes_the_uuid_of_its_full_url() -> None:
    anonymous = {k: v for k, v in PATIENT.items() if k != "id"}
    source = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": f"urn:uuid:{PATIENT_ID}", "resource": anonymous},
            entry(encounter()),
        ],
    }
    resources = synthea_resources(source)
    assert only(resources, "Patient")["id"] == PATIENT_ID
    assert only(resources, "Encounter")["subject"] == {"reference": f"Patient/{PATIENT_ID}"}


# -- what is not a bundle ------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        PATIENT,
        [],
        {"resourceType": "Bundle", "entry": {"resource": PATIENT}},
        {"resourceType": "Bundle", "entry": ["text"]},
        {"resourceType": "Bundle", "entry": [{"resource": {"id": "x"}}]},
    ],
    ids=["a-patient", "a-list", "entry-not-a-list", "entry-not-an-object", "untyped-resource"],
)
def test_what_is_not_a_bundle_is_refused(data: Any) -> None:
    with pytest.raises(InvalidBundle):
        synthea_resources(data)
