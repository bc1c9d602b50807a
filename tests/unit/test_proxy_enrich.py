"""Enrichment of what the Patients app shows and servers omit (shared.proxy.enrich)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from shared.proxy.enrich import (
    MAX_REFERENCES,
    Enricher,
    add_warning,
    complete_total,
    display_of,
    fill_displays,
    fill_local,
    fill_total,
    missing_displays,
    needs_total,
    read_batch,
    read_batch_results,
    with_total_accurate,
)

DOCTOR = {
    "resourceType": "Practitioner",
    "id": "doc",
    "name": [{"use": "official", "prefix": ["Dr"], "given": ["Adam"], "family": "Careful"}],
}
WARD = {"resourceType": "Location", "id": "ward", "name": "South Wing, room 2"}
AMOXICILLIN = {
    "resourceType": "Medication",
    "id": "amox",
    "code": {"coding": [{"code": "723", "display": "Amoxicillin 250 mg"}]},
}


def patient(*references: str, family: str = "Chalmers") -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": "p-" + family,
        "name": [{"family": family}],
        "generalPractitioner": [{"reference": r} for r in references],
    }


def searchset(*resources: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
        **fields,
    }


def medication_request(version: str) -> dict[str, Any]:
    doctor = {"reference": "Practitioner/doc"}
    medication = {"reference": "Medication/amox"}
    if version == "dstu2":
        return {
            "resourceType": "MedicationOrder",
            "prescriber": doctor,
            "medicationReference": medication,
        }
    requester = {"agent": doctor} if version == "stu3" else doctor
    return {
        "resourceType": "MedicationRequest",
        "requester": requester,
        "medicationReference": medication,
    }


# -- what is missing ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["dstu2", "stu3", "r4"])
def test_prescriber_and_medication_references_are_found_in_every_version(version):
    assert missing_displays(medication_request(version)) == [
        "Practitioner/doc",
        "Medication/amox",
    ]


def test_dstu2_care_provider_and_encounter_locations_are_found():
    dstu2_patient = {"resourceType": "Patient", "careProvider": [{"reference": "Organization/o"}]}
    encounter = {
        "resourceType": "Encounter",
        "location": [{"location": {"reference": "Location/ward"}}, {"location": {}}],
    }
    assert missing_displays(searchset(dstu2_patient, encounter)) == [
        "Organization/o",
        "Location/ward",
    ]


def test_references_with_a_display_are_not_missing():
    document = patient("Practitioner/doc")
    document["generalPractitioner"][0]["display"] = "Dr Adam Careful"
    assert missing_displays(document) == []


def test_missing_references_are_deduplicated_in_order_and_bounded():
    many = [patient("Practitioner/doc", f"Practitioner/{n}") for n in range(80)]
    found = missing_displays(searchset(*many))
    assert found[:3] == ["Practitioner/doc", "Practitioner/0", "Practitioner/1"]
    assert len(found) == MAX_REFERENCES


def test_absolute_contained_and_odd_references_are_not_fetched():
    document = patient(
        "https://elsewhere.example/fhir/Practitioner/1",
        "#contained",
        "Practitioner/../../admin",
        "Group/1",
    )
    assert missing_displays(document) == []


def test_nested_bundles_of_a_batch_response_are_searched():
    batch = {
        "resourceType": "Bundle",
        "type": "batch-response",
        "entry": [{"resource": searchset(patient("Practitioner/doc"))}],
    }
    assert missing_displays(batch) == ["Practitioner/doc"]


# -- displays ----------------------------------------------------------------------------------


def test_a_practitioners_display_is_prefix_given_family():
    assert display_of(DOCTOR) == "Dr Adam Careful"


def test_a_dstu2_practitioner_with_one_name_and_a_family_list():
    practitioner = {"resourceType": "Practitioner", "name": {"family": ["van", "Beek"]}}
    assert display_of(practitioner) == "van Beek"


def test_the_official_name_wins_and_text_is_the_fallback():
    person = {
        "resourceType": "Patient",
        "name": [{"use": "nickname", "given": ["Jim"]}, {"use": "official", "text": "Peter C"}],
    }
    assert display_of(person) == "Peter C"


def test_places_organizations_and_medications():
    assert display_of(WARD) == "South Wing, room 2"
    assert display_of({"resourceType": "Organization", "name": "Acme"}) == "Acme"
    assert display_of(AMOXICILLIN) == "Amoxicillin 250 mg"
    assert display_of({"resourceType": "Medication", "code": {"text": "Amox"}}) == "Amox"


def test_a_resource_without_a_name_has_no_display():
    assert display_of({"resourceType": "Practitioner"}) is None
    assert display_of({"resourceType": "Observation"}) is None


# -- filling -----------------------------------------------------------------------------------


def test_fill_displays_sets_every_occurrence_it_knows():
    document = searchset(patient("Practitioner/doc"), patient("Practitioner/doc", family="B"))
    assert fill_displays(document, {"Practitioner/doc": "Dr Adam Careful"}) == 2
    assert missing_displays(document) == []


def test_fill_local_uses_contained_and_included_resources():
    with_contained = patient("#d")
    with_contained["contained"] = [{**DOCTOR, "id": "d"}]
    included = patient("Location/ward", family="Other")
    document = searchset(with_contained, included, WARD)
    assert fill_local(document) == 2
    assert with_contained["generalPractitioner"][0]["display"] == "Dr Adam Careful"
    assert included["generalPractitioner"][0]["display"] == "South Wing, room 2"


# -- totals ------------------------------------------------------------------------------------


def test_a_complete_searchset_without_total_is_counted():
    document = searchset(patient(), patient(family="B"))
    document["entry"].append({"resource": DOCTOR, "search": {"mode": "include"}})
    assert needs_total(document)
    assert fill_total(document) is True
    assert document["total"] == 2


def test_a_paged_searchset_without_total_cannot_be_counted():
    document = searchset(patient(), link=[{"relation": "next", "url": "https://p/x"}])
    assert complete_total(document) is None
    assert fill_total(document) is False
    assert "total" not in document


def test_a_searchset_with_total_needs_none():
    assert not needs_total(searchset(total=0))
    assert not needs_total(patient())


def test_total_accurate_is_added_once():
    assert with_total_accurate("family=chal") == "family=chal&_total=accurate"
    assert with_total_accurate("") == "_total=accurate"
    assert with_total_accurate("_total=none") == "_total=none"


# -- the batch of reads ------------------------------------------------------------------------


def test_read_batch_and_its_results():
    references = ["Practitioner/doc", "Location/gone", "Medication/amox"]
    assert read_batch(references)["entry"][1] == {
        "request": {"method": "GET", "url": "Location/gone"}
    }
    answer = {
        "resourceType": "Bundle",
        "type": "batch-response",
        "entry": [
            {"response": {"status": "200 OK"}, "resource": DOCTOR},
            {"response": {"status": "404 Not Found"}, "resource": {"resourceType": "Outcome"}},
            {"response": {"status": "200"}, "resource": {**AMOXICILLIN, "id": "other"}},
        ],
    }
    assert read_batch_results(references, answer) == {"Practitioner/doc": DOCTOR}
    assert read_batch_results(references, {"resourceType": "OperationOutcome"}) == {}


# -- the orchestrator --------------------------------------------------------------------------


class Reads:
    """A fetch that answers from a dict and records its calls."""

    def __init__(self, *resources: dict[str, Any], fail: bool = False) -> None:
        self.known = {f"{r['resourceType']}/{r['id']}": r for r in resources}
        self.calls: list[list[str]] = []
        self.fail = fail

    def __call__(self, references: list[str]) -> dict[str, dict[str, Any]]:
        self.calls.append(list(references))
        if self.fail:
            raise TimeoutError("provider too slow")
        return {r: self.known[r] for r in references if r in self.known}


def test_the_enricher_fetches_once_and_fills_everything():
    reads = Reads(DOCTOR, WARD, AMOXICILLIN)
    encounter = {
        "resourceType": "Encounter",
        "location": [{"location": {"reference": "Location/ward"}}],
    }
    document = searchset(medication_request("r4"), encounter, patient("Practitioner/doc"))
    assert Enricher(reads).enrich(document) is None
    assert reads.calls == [["Practitioner/doc", "Medication/amox", "Location/ward"]]
    assert missing_displays(document) == []
    assert document["total"] == 3


def test_the_enricher_caches_across_documents_of_one_request():
    reads = Reads(DOCTOR)
    enricher = Enricher(reads)
    enricher(patient("Practitioner/doc"))
    enricher(patient("Practitioner/doc", "Practitioner/unknown"))
    enricher(patient("Practitioner/unknown"))
    assert reads.calls == [["Practitioner/doc"], ["Practitioner/unknown"]]


def test_what_cannot_be_resolved_becomes_a_warning_outcome_entry():
    document = searchset(patient("Practitioner/doc"), total=1)
    warning = Enricher(Reads()).enrich(document)
    assert warning is not None and "could not obtain" in warning
    outcome = document["entry"][-1]
    assert outcome["search"] == {"mode": "outcome"}
    assert outcome["resource"]["issue"][0]["severity"] == "warning"
    assert outcome["resource"]["issue"][0]["diagnostics"] == warning


def test_a_failing_fetch_never_fails_the_request():
    document = patient("Practitioner/doc")
    enricher = Enricher(Reads(DOCTOR, fail=True))
    enricher(document)
    assert enricher.warnings and "display" not in document["generalPractitioner"][0]


def test_a_missing_patient_total_is_warned_only_when_required():
    paged = searchset(patient(), link=[{"relation": "next", "url": "https://p/x"}])
    assert Enricher(Reads()).enrich(paged) is None
    warning = Enricher(Reads(), total_required=True).enrich(paged)
    assert warning is not None and "total" in warning


def test_nothing_to_do_means_no_fetch():
    reads = Reads()
    assert Enricher(reads).enrich(searchset(total=0)) is None
    assert reads.calls == []


def test_the_enricher_is_safe_across_threads():
    reads = Reads(DOCTOR)
    enricher = Enricher(reads)
    documents = [patient("Practitioner/doc", family=str(n)) for n in range(20)]
    threads = [threading.Thread(target=enricher, args=(d,)) for d in documents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(d["generalPractitioner"][0]["display"] == "Dr Adam Careful" for d in documents)


def test_add_warning_appends_an_outcome_entry():
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    add_warning(bundle, "careful")
    assert bundle["entry"][0]["resource"]["issue"][0]["code"] == "incomplete"
