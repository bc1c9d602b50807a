"""The sandbox store against Azurite: reads and writes, partitions, search semantics, bulk load.

Search semantics are checked through the store (not only in unit tests) because every search
first narrows server-side: a filter that dropped a real match would show up here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from shared.sandbox.errors import (
    InvalidResource,
    ResourceNotFound,
    UnsupportedSearch,
    UnsupportedType,
)
from shared.sandbox.locator import Locator, Place
from shared.sandbox.store import SandboxStore
from shared.tables import AzureEntityTable, StoreUnavailable
from tests.support import sandbox as support
from tests.support.sandbox import (
    CATEGORY_SYSTEM,
    LOINC,
    MRN_SYSTEM,
    QuerySpy,
    all_rows,
    allergy,
    condition,
    coverage,
    encounter,
    fresh_table,
    location,
    medication_request,
    observation,
    patient,
)
from tools.azurite import connection_string
from tools.testkit.fake_fhir import closed_port

sandbox_table = support.sandbox_table  # fixtures
sandbox_store = support.sandbox_store

INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


def ids(page: Any) -> list[str]:
    return [resource["id"] for resource in page.resources]


def resource_rows(table: Any) -> list[dict[str, Any]]:
    """Rows holding resources (the locator's rows left out)."""
    return [row for row in all_rows(table) if not row["PartitionKey"].startswith("loc-")]


def locator(table: Any) -> Locator:
    """The locator of a store on one table."""
    return Locator(AzureEntityTable(table))


# -- reads and writes -------------------------------------------------------------------------


def test_create_assigns_id_and_meta_and_reads_back_equal(sandbox_store: SandboxStore) -> None:
    stored = sandbox_store.create(patient("client-chosen"))
    assert stored["id"] != "client-chosen"
    assert stored["meta"]["versionId"] == "1"
    assert INSTANT.fullmatch(stored["meta"]["lastUpdated"])
    assert sandbox_store.read("Patient", stored["id"]) == stored


def test_create_keeps_other_meta_elements(sandbox_store: SandboxStore) -> None:
    tag = {"system": "urn:test", "code": "demo"}
    stored = sandbox_store.create(patient(meta={"tag": [tag], "versionId": "7"}))
    assert stored["meta"]["tag"] == [tag]
    assert stored["meta"]["versionId"] == "1"


def test_update_increments_version(sandbox_store: SandboxStore) -> None:
    created = sandbox_store.create(patient())
    changed = {**created, "gender": "other"}
    stored, was_created = sandbox_store.update("Patient", created["id"], changed)
    assert not was_created
    assert stored["meta"]["versionId"] == "2"
    assert sandbox_store.read("Patient", created["id"])["gender"] == "other"


def test_update_of_unknown_id_creates_it_at_that_id(sandbox_store: SandboxStore) -> None:
    stored, was_created = sandbox_store.update("Patient", "chosen-1", patient("chosen-1"))
    assert was_created
    assert stored["meta"]["versionId"] == "1"
    assert sandbox_store.read("Patient", "chosen-1") == stored


def test_update_takes_the_id_from_the_url_when_the_body_has_none(
    sandbox_store: SandboxStore,
) -> None:
    stored, _ = sandbox_store.update("Location", "ward-3", location())
    assert stored["id"] == "ward-3"


def test_update_refuses_a_body_id_other_than_the_url_id(sandbox_store: SandboxStore) -> None:
    with pytest.raises(InvalidResource) as raised:
        sandbox_store.update("Patient", "a", patient("b"))
    assert raised.value.element == "Patient.id"


def test_update_refuses_a_body_of_another_type(sandbox_store: SandboxStore) -> None:
    with pytest.raises(InvalidResource) as raised:
        sandbox_store.update("Patient", "a", location("a"))
    assert raised.value.element == "resourceType"


def test_delete_then_read_is_not_found(sandbox_store: SandboxStore) -> None:
    stored = sandbox_store.create(observation("p1"))
    sandbox_store.delete("Observation", stored["id"])
    with pytest.raises(ResourceNotFound):
        sandbox_store.read("Observation", stored["id"])


def test_delete_removes_resource_and_locator_rows(
    sandbox_store: SandboxStore, sandbox_table: Any
) -> None:
    stored = sandbox_store.create(observation("p1"))
    sandbox_store.delete("Observation", stored["id"])
    assert all_rows(sandbox_table) == []


def test_delete_of_unknown_resource_is_not_found(sandbox_store: SandboxStore) -> None:
    with pytest.raises(ResourceNotFound):
        sandbox_store.delete("Patient", "nobody")


def test_read_of_an_id_that_cannot_exist_is_not_found(sandbox_store: SandboxStore) -> None:
    with pytest.raises(ResourceNotFound):
        sandbox_store.read("Patient", "no/such'id")


@pytest.mark.parametrize("operation", ["read", "delete", "search"])
def test_unsupported_type_is_refused(sandbox_store: SandboxStore, operation: str) -> None:
    with pytest.raises(UnsupportedType):
        if operation == "search":
            sandbox_store.search("Medication", [])
        else:
            getattr(sandbox_store, operation)("Medication", "m1")


def test_create_of_unsupported_type_is_refused(sandbox_store: SandboxStore) -> None:
    with pytest.raises(UnsupportedType):
        sandbox_store.create({"resourceType": "Medication"})


def test_invalid_resource_names_the_element_and_stores_nothing(
    sandbox_store: SandboxStore, sandbox_table: Any
) -> None:
    with pytest.raises(InvalidResource) as raised:
        sandbox_store.create(patient(birth_date="1970-13-01"))
    assert raised.value.element == "Patient.birthDate"
    assert all_rows(sandbox_table) == []


def test_compartment_resource_without_patient_is_refused(
    sandbox_store: SandboxStore, sandbox_table: Any
) -> None:
    orphan = observation("p1")
    del orphan["subject"]
    with pytest.raises(InvalidResource) as raised:
        sandbox_store.create(orphan)
    assert raised.value.element == "Observation.subject"
    assert all_rows(sandbox_table) == []


def test_compartment_resource_referencing_a_non_patient_is_refused(
    sandbox_store: SandboxStore,
) -> None:
    with pytest.raises(InvalidResource) as raised:
        sandbox_store.create(allergy("p1", patient={"reference": "Group/g1"}))
    assert raised.value.element == "AllergyIntolerance.patient"


def test_compartment_resource_lives_in_its_patients_partition(
    sandbox_store: SandboxStore, sandbox_table: Any
) -> None:
    stored = sandbox_store.create(coverage("p1"))
    [row] = resource_rows(sandbox_table)
    assert (row["PartitionKey"], row["RowKey"]) == ("patient-p1", f"Coverage|{stored['id']}")


def test_absolute_patient_url_places_the_resource_with_that_patient(
    sandbox_store: SandboxStore,
) -> None:
    sandbox_store.create(
        condition("x", subject={"reference": "https://ehr.example/fhir/Patient/p7"})
    )
    assert sandbox_store.search("Condition", [("patient", "p7")]).total == 1


def test_update_that_changes_patient_moves_the_resource(
    sandbox_store: SandboxStore, sandbox_table: Any
) -> None:
    created = sandbox_store.create(observation("p1"))
    moved = observation("p2", created["id"])
    stored, _ = sandbox_store.update("Observation", created["id"], moved)
    assert sandbox_store.search("Observation", [("patient", "p1")]).total == 0
    assert ids(sandbox_store.search("Observation", [("patient", "p2")])) == [created["id"]]
    assert sandbox_store.read("Observation", created["id"]) == stored
    assert [row["PartitionKey"] for row in resource_rows(sandbox_table)] == ["patient-p2"]


def test_a_locator_entry_pointing_to_nothing_reads_as_not_found(
    sandbox_store: SandboxStore, sandbox_table: Any
) -> None:
    locator(sandbox_table).place("Observation", "o1", Place("p1"))
    with pytest.raises(ResourceNotFound):
        sandbox_store.read("Observation", "o1")


def test_move_cut_short_still_reads_and_the_next_write_finishes_it(
    sandbox_store: SandboxStore, sandbox_table: Any
) -> None:
    created = sandbox_store.create(observation("p1"))
    # As if a move to p2 stopped right after pointing the locator at the new partition.
    locator(sandbox_table).place("Observation", created["id"], Place("p2", moving_from="p1"))
    assert sandbox_store.read("Observation", created["id"]) == created
    sandbox_store.update("Observation", created["id"], observation("p2", created["id"]))
    assert [row["PartitionKey"] for row in resource_rows(sandbox_table)] == ["patient-p2"]
    assert locator(sandbox_table).find("Observation", created["id"]) == Place("p2")


def test_resource_larger_than_a_property_is_split_and_round_trips(
    sandbox_store: SandboxStore, sandbox_table: Any
) -> None:
    div = '<div xmlns="http://www.w3.org/1999/xhtml">' + "é" * 100_000 + "</div>"
    stored = sandbox_store.create(patient(text={"status": "generated", "div": div}))
    [row] = resource_rows(sandbox_table)
    assert sum(1 for name in row if re.fullmatch(r"j\d+", name)) > 2
    assert sandbox_store.read("Patient", stored["id"]) == stored


def test_resource_larger_than_an_entity_is_refused(
    sandbox_store: SandboxStore, sandbox_table: Any
) -> None:
    div = '<div xmlns="http://www.w3.org/1999/xhtml">' + "x" * 600_000 + "</div>"
    with pytest.raises(InvalidResource) as raised:
        sandbox_store.create(patient(text={"status": "generated", "div": div}))
    assert raised.value.element == "Patient"
    assert all_rows(sandbox_table) == []


def test_unreachable_table_storage_is_store_unavailable() -> None:
    from azure.data.tables import TableClient

    table = TableClient.from_connection_string(
        connection_string(closed_port()), "sandbox", retry_total=0
    )
    with pytest.raises(StoreUnavailable):
        SandboxStore(AzureEntityTable(table)).read("Patient", "p1")


# -- bulk load ----------------------------------------------------------------------------------


def chart(patient_id: str) -> list[dict[str, Any]]:
    return [
        patient(patient_id),
        observation(patient_id, f"{patient_id}-obs-1"),
        encounter(patient_id, f"{patient_id}-enc-1"),
        condition(patient_id, f"{patient_id}-cond-1"),
    ]


def test_load_stores_every_resource_with_its_id(sandbox_store: SandboxStore) -> None:
    report = sandbox_store.load([*chart("p1"), location("ward-3")])
    assert report.stored == {
        "Patient": 1,
        "Observation": 1,
        "Encounter": 1,
        "Condition": 1,
        "Location": 1,
    }
    assert sandbox_store.read("Observation", "p1-obs-1")["subject"]["reference"] == "Patient/p1"
    assert sandbox_store.read("Location", "ward-3")["meta"]["versionId"] == "1"


def test_load_twice_is_idempotent(sandbox_store: SandboxStore, sandbox_table: Any) -> None:
    resources = chart("p1") + chart("p2")
    first = sandbox_store.load(resources)
    rows = len(all_rows(sandbox_table))
    second = sandbox_store.load(resources)
    assert second.stored == first.stored
    assert len(all_rows(sandbox_table)) == rows
    assert sandbox_store.search("Patient", []).total == 2


def test_load_more_than_one_transaction_per_partition(sandbox_store: SandboxStore) -> None:
    vitals = [observation("p1", f"obs-{n:03d}") for n in range(130)]
    report = sandbox_store.load(vitals)
    assert report.stored == {"Observation": 130}
    assert sandbox_store.search("Observation", [("patient", "p1"), ("_count", "0")]).total == 130


def test_load_with_an_invalid_resource_stores_nothing(
    sandbox_store: SandboxStore, sandbox_table: Any
) -> None:
    resources = [*chart("p1"), patient("p2", birth_date="yesterday")]
    with pytest.raises(InvalidResource) as raised:
        sandbox_store.load(resources)
    assert raised.value.element == "Patient.birthDate"
    assert all_rows(sandbox_table) == []


def test_load_without_validation_still_refuses_a_resource_it_cannot_place(
    sandbox_store: SandboxStore, sandbox_table: Any
) -> None:
    orphan = observation("p1", "o1")
    del orphan["subject"]
    with pytest.raises(InvalidResource):
        sandbox_store.load([*chart("p1"), orphan], validate=False)
    assert all_rows(sandbox_table) == []


def test_load_refuses_a_resource_without_id(sandbox_store: SandboxStore) -> None:
    with pytest.raises(InvalidResource) as raised:
        sandbox_store.load([patient()])
    assert raised.value.element == "Patient.id"


def test_load_skips_and_counts_unsupported_types(sandbox_store: SandboxStore) -> None:
    report = sandbox_store.load([patient("p1"), {"resourceType": "Claim", "id": "c1"}])
    assert report.skipped == {"Claim": 1}
    assert report.stored == {"Patient": 1}


def test_load_keeps_the_given_meta(sandbox_store: SandboxStore) -> None:
    meta = {"versionId": "3", "lastUpdated": "2024-01-01T00:00:00.000Z"}
    sandbox_store.load([patient("p1", meta=meta)])
    assert sandbox_store.read("Patient", "p1")["meta"] == meta


# -- search: where it looks ---------------------------------------------------------------------


def test_search_by_patient_queries_only_that_patients_partition(sandbox_table: Any) -> None:
    spy = QuerySpy(sandbox_table)
    store = SandboxStore(AzureEntityTable(spy))
    store.load(chart("p1") + chart("p2"))
    spy.queries.clear()  # the search's, not the load's
    page = store.search(
        "Observation", [("patient", "p1"), ("category", "vital-signs"), ("_sort", "-date")]
    )
    assert ids(page) == ["p1-obs-1"]
    assert spy.queries
    for text, parameters in spy.queries:
        assert text.count("PartitionKey") == 1
        assert parameters["pk"] == "patient-p1"


def test_patient_search_scans_patient_rows_only(sandbox_table: Any) -> None:
    spy = QuerySpy(sandbox_table)
    store = SandboxStore(AzureEntityTable(spy))
    store.load(chart("p1"))
    spy.queries.clear()  # the search's, not the load's
    store.search("Patient", [("family:contains", "lac")])
    assert [parameters["pk"] for _, parameters in spy.queries] == ["res-Patient"]


def test_compartment_search_without_patient_is_refused(sandbox_store: SandboxStore) -> None:
    with pytest.raises(UnsupportedSearch) as raised:
        sandbox_store.search("Condition", [("_count", "10")])
    assert raised.value.parameter == "patient"


def test_compartment_search_by_id_alone_finds_the_resource(sandbox_store: SandboxStore) -> None:
    sandbox_store.load(chart("p1") + chart("p2"))
    page = sandbox_store.search("Observation", [("_id", "p2-obs-1,p1-obs-1,unknown")])
    assert ids(page) == ["p1-obs-1", "p2-obs-1"]


# -- search: Patient ----------------------------------------------------------------------------

PATIENTS = [
    patient("p1", family="Black", given=("Ruth",), birth_date="1970-03-12", mrn="MRN-1001"),
    patient(
        "p2", family="Blackwell", given=("Thomas",), gender="male", birth_date="1970-07-01",
        mrn=None, identifier=[{"system": "urn:other", "value": "MRN-1002"}],
    ),
    patient("p3", family="Müller", given=("Zoë",), birth_date="1985", mrn="MRN-1003"),
    patient(
        "p4", family="O'Brien-Black", given=("Seán", "Patrick"), gender="male",
        birth_date="1990-01-01", mrn=None, identifier=[{"value": "NOSYS-9"}],
    ),
    patient(
        "p5", family="Smith", given=("Anna",), birth_date="1970-03", mrn="MRN-1005",
        name=[
            {"use": "official", "family": "Smith", "given": ["Anna"], "prefix": ["Dr"]},
            {"use": "maiden", "family": "Jones"},
        ],
    ),
    patient(
        "p6", mrn=None, gender="other", birth_date=None,
        name=[{"family": f} for f in ("Alpha", "Beta", "Gamma", "Zed")],
        identifier=[{"system": MRN_SYSTEM, "value": f"X-{n}"} for n in range(1, 5)],
    ),
    patient("p7", family=None, given=(), gender="unknown", birth_date=None, mrn=None),
]  # fmt: skip


@pytest.fixture(scope="module")
def patients_store(azurite: str) -> Iterator[SandboxStore]:
    """A store holding PATIENTS, shared by the read-only Patient search tests."""
    with fresh_table(azurite) as table:
        store = SandboxStore(AzureEntityTable(table))
        store.load(PATIENTS)
        yield store


def found(store: SandboxStore, *params: tuple[str, str]) -> list[str]:
    return ids(store.search("Patient", [*params, ("_count", "100")]))


def test_family_starts_with_by_default(patients_store: SandboxStore) -> None:
    assert found(patients_store, ("family", "bla")) == ["p1", "p2"]


def test_family_contains_matches_anywhere(patients_store: SandboxStore) -> None:
    assert found(patients_store, ("family:contains", "black")) == ["p1", "p2", "p4"]


def test_family_exact_matches_the_whole_value_with_its_case(
    patients_store: SandboxStore,
) -> None:
    assert found(patients_store, ("family:exact", "Black")) == ["p1"]
    assert found(patients_store, ("family:exact", "black")) == []


def test_family_ignores_case_and_accents(patients_store: SandboxStore) -> None:
    assert found(patients_store, ("family", "MULLER")) == ["p3"]
    assert found(patients_store, ("family", "müll")) == ["p3"]


def test_family_matches_any_name(patients_store: SandboxStore) -> None:
    assert found(patients_store, ("family", "jones")) == ["p5"]


def test_family_matches_names_beyond_the_indexed_columns(patients_store: SandboxStore) -> None:
    assert found(patients_store, ("family", "zed")) == ["p6"]


def test_given_matches_any_given_name(patients_store: SandboxStore) -> None:
    assert found(patients_store, ("given", "pat")) == ["p4"]
    assert found(patients_store, ("given", "ZOE")) == ["p3"]


def test_given_exact_and_contains(patients_store: SandboxStore) -> None:
    assert found(patients_store, ("given:exact", "Seán")) == ["p4"]
    assert found(patients_store, ("given:contains", "oma")) == ["p2"]


def test_name_matches_any_part_of_any_name(patients_store: SandboxStore) -> None:
    assert found(patients_store, ("name", "dr")) == ["p5"]
    assert found(patients_store, ("name", "ruth")) == ["p1"]
    assert found(patients_store, ("name", "jon")) == ["p5"]


def test_name_exact_and_contains(patients_store: SandboxStore) -> None:
    assert found(patients_store, ("name:exact", "Jones")) == ["p5"]
    assert found(patients_store, ("name:contains", "rien")) == ["p4"]


def test_birthdate_day(patients_store: SandboxStore) -> None:
    assert found(patients_store, ("birthdate", "1970-03-12")) == ["p1"]


def test_birthdate_month_holds_days_and_the_month(patients_store: SandboxStore) -> None:
    assert found(patients_store, ("birthdate", "1970-03")) == ["p1", "p5"]


def test_birthdate_year_holds_every_precision_inside_it(patients_store: SandboxStore) -> None:
    assert found(patients_store, ("birthdate", "1970")) == ["p1", "p2", "p5"]


def test_birthdate_day_does_not_equal_a_coarser_birth_date(patients_store: SandboxStore) -> None:
    assert found(patients_store, ("birthdate", "1985-06-01")) == []
    assert found(patients_store, ("birthdate", "eq1985")) == ["p3"]


def test_birthdate_prefixes(patients_store: SandboxStore) -> None:
    assert found(patients_store, ("birthdate", "lt1970-03-12")) == ["p5"]
    assert found(patients_store, ("birthdate", "le1970-03-12")) == ["p1", "p5"]
    assert found(patients_store, ("birthdate", "gt1985")) == ["p4"]
    assert found(patients_store, ("birthdate", "ge1985")) == ["p3", "p4"]
    assert found(patients_store, ("birthdate", "ne1970-03-12")) == ["p2", "p3", "p4", "p5"]


def test_gender_token(patients_store: SandboxStore) -> None:
    assert found(patients_store, ("gender", "male")) == ["p2", "p4"]
    system = "http://hl7.org/fhir/administrative-gender"
    assert found(patients_store, ("gender", f"{system}|unknown")) == ["p7"]
    assert found(patients_store, ("gender", "urn:other|male")) == []


def test_identifier_value_only(patients_store: SandboxStore) -> None:
    assert found(patients_store, ("identifier", "MRN-1002")) == ["p2"]


def test_identifier_with_system(patients_store: SandboxStore) -> None:
    assert found(patients_store, ("identifier", f"{MRN_SYSTEM}|MRN-1001")) == ["p1"]
    assert found(patients_store, ("identifier", f"{MRN_SYSTEM}|MRN-1002")) == []


def test_identifier_without_system(patients_store: SandboxStore) -> None:
    assert found(patients_store, ("identifier", "|NOSYS-9")) == ["p4"]
    assert found(patients_store, ("identifier", "|MRN-1001")) == []


def test_identifier_any_value_of_a_system(patients_store: SandboxStore) -> None:
    assert found(patients_store, ("identifier", "urn:other|")) == ["p2"]


def test_identifier_beyond_the_indexed_columns(patients_store: SandboxStore) -> None:
    assert found(patients_store, ("identifier", "X-4")) == ["p6"]


def test_id_with_several_values(patients_store: SandboxStore) -> None:
    assert found(patients_store, ("_id", "p3,p1,p99")) == ["p1", "p3"]


def test_comma_separated_values_are_alternatives(patients_store: SandboxStore) -> None:
    assert found(patients_store, ("family", "smith,muller")) == ["p3", "p5"]


def test_repeated_parameters_must_all_hold(patients_store: SandboxStore) -> None:
    assert found(patients_store, ("family", "black"), ("family", "blackw")) == ["p2"]
    assert found(patients_store, ("family", "black"), ("given", "ruth")) == ["p1"]
    assert found(patients_store, ("gender", "male"), ("birthdate", "1970")) == ["p2"]


def test_total_counts_every_match_and_count_offset_page(patients_store: SandboxStore) -> None:
    page = patients_store.search("Patient", [("_count", "2"), ("_offset", "2")])
    assert (page.total, ids(page), page.offset, page.count) == (7, ["p3", "p4"], 2, 2)
    assert page.has_next


def test_last_page_has_no_next(patients_store: SandboxStore) -> None:
    page = patients_store.search("Patient", [("_count", "5"), ("_offset", "5")])
    assert ids(page) == ["p6", "p7"]
    assert not page.has_next


def test_count_zero_gives_the_total_only(patients_store: SandboxStore) -> None:
    page = patients_store.search("Patient", [("gender", "female"), ("_count", "0")])
    assert (page.total, page.resources) == (3, [])


def test_search_results_are_whole_resources(patients_store: SandboxStore) -> None:
    [found_patient] = patients_store.search("Patient", [("_id", "p1")]).resources
    assert found_patient == patients_store.read("Patient", "p1")


# -- search: the patient's chart -----------------------------------------------------------------


@pytest.fixture(scope="module")
def chart_store(azurite: str) -> Iterator[SandboxStore]:
    """A store holding two patients' charts, shared by the read-only chart search tests."""
    with fresh_table(azurite) as table:
        store = SandboxStore(AzureEntityTable(table))
        store.load(
            [
                observation("p1", "hr-1", effective="2024-05-01T10:00:00Z"),
                observation("p1", "hr-2", effective="2024-05-03T10:00:00+02:00"),
                observation("p1", "hr-3", effective=None),
                observation("p1", "bp-1", code="85354-9", effective="2024-05-02"),
                observation(
                    "p1",
                    "lab-1",
                    code="2339-0",
                    category="laboratory",
                    effective=None,
                    effectivePeriod={"start": "2024-04-01T08:00:00Z", "end": "2024-04-02"},
                ),
                observation("p2", "hr-9", effective="2024-06-01T10:00:00Z"),
                encounter("p1", "enc-1", start="2023-01-01T09:00:00Z"),
                encounter("p1", "enc-2", start="2024-02-01T09:00:00Z"),
                encounter("p1", "enc-3", start="2023-06-01"),
                encounter("p1", "enc-0", start=None),
                condition("p1", "cond-1", recorded="2024-01-15"),
                condition("p1", "cond-2", recorded="2022-01-15"),
                allergy("p1", "alg-1"),
                medication_request("p1", "med-1", authored="2024-02-01"),
                medication_request("p1", "med-2", authored="2024-03-01"),
                coverage("p1", "cov-1"),
            ]
        )
        yield store


def chart_ids(store: SandboxStore, resource_type: str, *params: tuple[str, str]) -> list[str]:
    return ids(store.search(resource_type, [("patient", "p1"), *params]))


def test_observation_category_code_only(chart_store: SandboxStore) -> None:
    found_ids = chart_ids(chart_store, "Observation", ("category", "vital-signs"))
    assert found_ids == ["bp-1", "hr-1", "hr-2", "hr-3"]


def test_observation_category_with_system(chart_store: SandboxStore) -> None:
    wanted = f"{CATEGORY_SYSTEM}|laboratory"
    assert chart_ids(chart_store, "Observation", ("category", wanted)) == ["lab-1"]
    assert chart_ids(chart_store, "Observation", ("category", "urn:x|laboratory")) == []


def test_observation_code(chart_store: SandboxStore) -> None:
    assert chart_ids(chart_store, "Observation", ("code", f"{LOINC}|85354-9")) == ["bp-1"]
    assert chart_ids(chart_store, "Observation", ("code", "2339-0,85354-9")) == ["bp-1", "lab-1"]


def test_observation_date_on_datetime_in_another_timezone(chart_store: SandboxStore) -> None:
    # 2024-05-03T10:00+02:00 is 08:00 UTC, inside 2024-05-03.
    assert chart_ids(chart_store, "Observation", ("date", "2024-05-03")) == ["hr-2"]


def test_observation_date_on_a_period(chart_store: SandboxStore) -> None:
    assert chart_ids(chart_store, "Observation", ("date", "2024-04")) == ["lab-1"]
    assert chart_ids(chart_store, "Observation", ("date", "lt2024-04-02")) == ["lab-1"]


def test_observation_date_prefix_range(chart_store: SandboxStore) -> None:
    found_ids = chart_ids(
        chart_store, "Observation", ("date", "ge2024-05-02"), ("date", "lt2024-05-03")
    )
    assert found_ids == ["bp-1"]


def test_observation_sort_newest_first_undated_last(chart_store: SandboxStore) -> None:
    found_ids = chart_ids(
        chart_store, "Observation", ("category", "vital-signs"), ("_sort", "-date")
    )
    assert found_ids == ["hr-2", "bp-1", "hr-1", "hr-3"]


def test_observation_sort_oldest_first(chart_store: SandboxStore) -> None:
    found_ids = chart_ids(chart_store, "Observation", ("_sort", "date"))
    assert found_ids == ["lab-1", "hr-1", "bp-1", "hr-2", "hr-3"]


def test_encounter_latest_first_with_count_one(chart_store: SandboxStore) -> None:
    page = chart_store.search("Encounter", [("patient", "p1"), ("_sort", "-date"), ("_count", "1")])
    assert (ids(page), page.total) == (["enc-2"], 4)


def test_condition_sorts_by_recorded_date(chart_store: SandboxStore) -> None:
    assert chart_ids(chart_store, "Condition", ("_sort", "-date")) == ["cond-1", "cond-2"]


def test_medication_request_sorts_by_authored_on(chart_store: SandboxStore) -> None:
    assert chart_ids(chart_store, "MedicationRequest", ("_sort", "-date")) == ["med-2", "med-1"]


def test_allergies_of_the_patient(chart_store: SandboxStore) -> None:
    assert chart_ids(chart_store, "AllergyIntolerance") == ["alg-1"]


def test_patient_reference_forms(chart_store: SandboxStore) -> None:
    for reference in ("p2", "Patient/p2", "https://fhir.example/r4/Patient/p2"):
        assert ids(chart_store.search("Observation", [("patient", reference)])) == ["hr-9"]


def test_several_patients_are_alternatives(chart_store: SandboxStore) -> None:
    page = chart_store.search("Observation", [("patient", "p2,p1"), ("_count", "0")])
    assert page.total == 6


def test_coverage_by_patient_or_beneficiary(chart_store: SandboxStore) -> None:
    assert chart_ids(chart_store, "Coverage") == ["cov-1"]
    assert ids(chart_store.search("Coverage", [("beneficiary", "Patient/p1")])) == ["cov-1"]


def test_coverage_cannot_be_sorted(chart_store: SandboxStore) -> None:
    with pytest.raises(UnsupportedSearch) as raised:
        chart_ids(chart_store, "Coverage", ("_sort", "-date"))
    assert raised.value.parameter == "_sort"


def test_another_patients_records_are_never_returned(chart_store: SandboxStore) -> None:
    assert ids(chart_store.search("Encounter", [("patient", "p2")])) == []


def test_encounter_date_filters_on_the_period(chart_store: SandboxStore) -> None:
    # Each period has a start and no end (in progress), so it reaches every later date; an
    # encounter without a period has no date and matches no date filter.
    assert chart_ids(chart_store, "Encounter", ("date", "lt2023-03")) == ["enc-1"]
    assert chart_ids(chart_store, "Encounter", ("date", "lt2023-07")) == ["enc-1", "enc-3"]
    assert chart_ids(chart_store, "Encounter", ("date", "ge2024-03")) == ["enc-1", "enc-2", "enc-3"]
