"""The sandbox's search rules without Table Storage: parsing, refusals, FHIR matching semantics.

The store tests (tests/integration/test_sandbox_store.py) run the same rules through Azurite.
"""

from __future__ import annotations

from typing import Any

import pytest

from shared.sandbox.errors import UnsupportedSearch
from shared.sandbox.query import (
    DEFAULT_COUNT,
    MAX_COUNT,
    MAX_FILTER_COMPARISONS,
    date_range,
    index,
    normalise,
    parse_search,
    read_document,
)
from tests.support.sandbox import MRN_SYSTEM, encounter, observation, patient


def matches(resource: dict[str, Any], *params: tuple[str, str]) -> bool:
    """Whether ``resource`` matches the search, judged on the row the store would write."""
    query = parse_search(resource["resourceType"], [*params])
    document = read_document(index(resource))
    document["id"] = resource["id"]
    return query.matches(document)


# -- normalisation and dates --------------------------------------------------------------------


def test_normalise_drops_case_and_accents() -> None:
    assert normalise("Müller-Ångström") == normalise("MULLER-angstrom")


def test_normalise_folds_compatibility_characters() -> None:
    assert normalise("Straße") == "strasse"
    assert normalise("ﬁnn") == "finn"


@pytest.mark.parametrize(
    ("value", "bounds"),
    [
        ("2024", ("2024-01-01T00:00:00.000000Z", "2025-01-01T00:00:00.000000Z")),
        ("2024-12", ("2024-12-01T00:00:00.000000Z", "2025-01-01T00:00:00.000000Z")),
        ("2024-02-28", ("2024-02-28T00:00:00.000000Z", "2024-02-29T00:00:00.000000Z")),
        ("2024-02-28T23:30", ("2024-02-28T23:30:00.000000Z", "2024-02-28T23:31:00.000000Z")),
        ("2024-02-28T23:30:05Z", ("2024-02-28T23:30:05.000000Z", "2024-02-28T23:30:06.000000Z")),
        (
            "2024-02-28T23:30:05.25+01:00",
            ("2024-02-28T22:30:05.250000Z", "2024-02-28T22:30:05.260000Z"),
        ),
    ],
)
def test_date_range_covers_the_precision_given(value: str, bounds: tuple[str, str]) -> None:
    assert date_range(value) == bounds


@pytest.mark.parametrize("value", ["2024-13", "2024-02-30", "24-01-01", "2024-01-01T25:00", ""])
def test_date_range_of_an_invalid_date_is_none(value: str) -> None:
    assert date_range(value) is None


# -- what is refused ------------------------------------------------------------------------------


P1 = ("patient", "p1")


@pytest.mark.parametrize(
    ("resource_type", "params", "named"),
    [
        ("Patient", [("address", "Leeds")], "address"),
        ("Patient", [("family:sounds", "smith")], "family:sounds"),
        ("Patient", [("family:missing", "true")], "family:missing"),
        ("Patient", [("gender:not", "male")], "gender:not"),
        ("Patient", [("identifier:of-type", "MR|1")], "identifier:of-type"),
        ("Patient", [("birthdate", "sa2020")], "birthdate"),
        ("Patient", [("birthdate", "ap2020")], "birthdate"),
        ("Patient", [("birthdate", "xx2020")], "birthdate"),
        ("Patient", [("birthdate", "2020-02-30")], "birthdate"),
        ("Patient", [("birthdate", "2020-01-01T10:00:00Z")], "birthdate"),
        ("Patient", [("_id", "not/an id")], "_id"),
        ("Patient", [("_sort", "-date")], "_sort"),
        ("Patient", [("_count", "-1")], "_count"),
        ("Patient", [("_count", "ten")], "_count"),
        ("Patient", [("_count:exact", "1")], "_count:exact"),
        ("Patient", [("_offset", "x")], "_offset"),
        ("Patient", [("_format", "xml")], "_format"),
        ("Patient", [("_format", "application/fhir+xml")], "_format"),
        ("Patient", [("_include", "Patient:organization")], "_include"),
        ("Patient", [("_summary", "count")], "_summary"),
        ("Patient", [("identifier", "|")], "identifier"),
        ("Patient", [("gender", ",".join(["male"] * 51))], "gender"),
        ("Observation", [("category", "vital-signs")], "patient"),
        ("Observation", [("patient", "Group/g1")], "patient"),
        ("Observation", [("patient", "Patient/p1/_history/2")], "patient"),
        ("Observation", [("patient:Patient", "p1")], "patient:Patient"),
        ("Observation", [("subject", "Patient/p1")], "subject"),
        ("Observation", [P1, ("date", "eb2024")], "date"),
        ("Observation", [P1, ("value-quantity", "72")], "value-quantity"),
        ("Encounter", [P1, ("_sort", "-period")], "_sort"),
        ("Encounter", [P1, ("_sort", "-date,_id")], "_sort"),
        ("Encounter", [P1, ("date", "sa2024")], "date"),
        ("Coverage", [P1, ("_sort", "date")], "_sort"),
        ("Location", [("name", "Ward")], "name"),
    ],
)
def test_unsupported_parameter_modifier_or_value_names_the_parameter(
    resource_type: str, params: list[tuple[str, str]], named: str
) -> None:
    with pytest.raises(UnsupportedSearch) as raised:
        parse_search(resource_type, params)
    assert raised.value.parameter == named


def test_search_of_a_type_the_sandbox_does_not_keep_is_refused() -> None:
    with pytest.raises(UnsupportedSearch):
        parse_search("Medication", [])


def test_a_result_parameter_given_twice_is_refused() -> None:
    with pytest.raises(UnsupportedSearch) as raised:
        parse_search("Patient", [("_count", "1"), ("_count", "2")])
    assert raised.value.parameter == "_count"


def test_json_formats_are_accepted() -> None:
    for value in ("json", "application/fhir+json", "application/fhir json; charset=utf-8"):
        parse_search("Patient", [("_format", value)])


# -- result parameters ----------------------------------------------------------------------------


def test_count_defaults_and_is_capped() -> None:
    assert parse_search("Patient", []).count == DEFAULT_COUNT
    assert parse_search("Patient", [("_count", "100000")]).count == MAX_COUNT
    assert parse_search("Patient", [("_count", "0")]).count == 0


def test_offset_defaults_to_zero() -> None:
    assert parse_search("Patient", []).offset == 0
    assert parse_search("Patient", [("_offset", "40")]).offset == 40


def test_sort_direction() -> None:
    assert parse_search("Encounter", [("patient", "p1"), ("_sort", "-date")]).sort_descending
    ascending = parse_search("Encounter", [("patient", "p1"), ("_sort", "date")])
    assert ascending.sort_descending is False
    assert parse_search("Encounter", [("patient", "p1")]).sort_descending is None


def test_a_parameter_with_an_empty_value_is_ignored() -> None:
    query = parse_search("Patient", [("family", ""), ("given", "ruth"), ("_count", "")])
    assert [criterion.parameter for criterion in query.criteria] == ["given"]
    assert query.count == DEFAULT_COUNT


def test_patient_reference_forms_name_the_same_patient() -> None:
    for value in ("p1", "Patient/p1", "https://ehr.example/fhir/Patient/p1"):
        assert parse_search("Condition", [("patient", value)]).patient_ids == {"p1"}


def test_repeated_patient_parameters_intersect() -> None:
    query = parse_search("Condition", [("patient", "p1,p2"), ("patient", "p2,p3")])
    assert query.patient_ids == {"p2"}


def test_compartment_search_by_id_needs_no_patient() -> None:
    assert parse_search("Observation", [("_id", "o1")]).ids == {"o1"}


# -- matching -----------------------------------------------------------------------------------


def test_string_search_is_starts_with() -> None:
    assert matches(patient("p1", family="Blackwell"), ("family", "black"))
    assert not matches(patient("p1", family="O'Black"), ("family", "black"))


def test_contains_and_exact_modifiers() -> None:
    assert matches(patient("p1", family="O'Black"), ("family:contains", "BLACK"))
    assert matches(patient("p1", family="Black"), ("family:exact", "Black"))
    assert not matches(patient("p1", family="Black"), ("family:exact", "Blac"))


def test_escaped_comma_is_part_of_the_value() -> None:
    assert matches(patient("p1", family="Smith, Jr"), ("family:exact", r"Smith\, Jr"))
    assert not matches(patient("p1", family="Smith"), ("family:exact", r"Smith\, Jr"))


def test_escaped_bar_is_part_of_a_token_code() -> None:
    assert matches(patient("p1", mrn="A|B"), ("identifier", rf"{MRN_SYSTEM}|A\|B"))


def test_token_without_system_matches_any_system() -> None:
    assert matches(patient("p1", mrn="MRN-1"), ("identifier", "MRN-1"))


def test_token_with_system_needs_that_system() -> None:
    assert matches(patient("p1", mrn="MRN-1"), ("identifier", f"{MRN_SYSTEM}|MRN-1"))
    assert not matches(patient("p1", mrn="MRN-1"), ("identifier", "urn:other|MRN-1"))


def test_token_codes_are_case_sensitive() -> None:
    assert not matches(patient("p1", mrn="MRN-1"), ("identifier", "mrn-1"))


def test_date_search_needs_a_value() -> None:
    assert not matches(patient("p1", birth_date=None), ("birthdate", "ne2000"))


def test_observation_with_effective_instant_matches_its_day() -> None:
    vital = observation("p1", "o1", effective=None, effectiveInstant="2024-05-01T10:00:00.5Z")
    assert matches(vital, ("patient", "p1"), ("date", "2024-05-01"))


def test_open_period_extends_to_the_future() -> None:
    visit = encounter("p1", "e1", start=None, period={"start": "2024-05-01"})
    document = read_document(index(visit))
    assert document["date"][0] == "2024-05-01T00:00:00.000000Z"
    assert document["date"][1] > "9999"


# -- server-side filters --------------------------------------------------------------------------


def test_server_filters_stay_within_the_comparison_budget() -> None:
    query = parse_search(
        "Patient",
        [("family", "a,b,c"), ("given", "d"), ("identifier", "x"), ("birthdate", "ge2000")],
    )
    budget = MAX_FILTER_COMPARISONS - 1  # the PartitionKey comparison
    spent = sum(
        len(conjunction) for clause in query.server_clauses(budget) for conjunction in clause
    )
    assert 0 < spent <= budget


def test_contains_has_no_server_filter() -> None:
    query = parse_search("Patient", [("family:contains", "lac")])
    assert query.server_clauses(MAX_FILTER_COMPARISONS) == []


def test_patient_row_indexes_normalised_names_for_server_filters() -> None:
    row = index(patient("p1", family="Müller", given=("Zoë",), mrn="MRN-7", gender="female"))
    assert (row["fam0"], row["giv0"], row["idv0"], row["gender"]) == (
        "muller",
        "zoe",
        "MRN-7",
        "female",
    )


def test_patient_with_more_names_than_columns_is_flagged() -> None:
    many = patient("p1", name=[{"family": f"F{n}"} for n in range(5)])
    assert index(many)["famx"] is True
    assert "famx" not in index(patient("p1"))
