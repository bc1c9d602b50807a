"""Coverage across R4, STU3 and DSTU2: fixtures, the fields the Patients app reads, round trips
and every decision in docs/conversion/coverage.md.
Section numbers (§) refer to docs/conversion/mapping.md."""

from __future__ import annotations

import json
import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.fhir.convert import ConversionError, convert
from tests.support.dstu2 import IDENTIFIER, REFERENCE, Shape, assert_dstu2
from tests.support.fixtures import VERSIONS, XVER_DSTU2, XVER_R4, XVER_STU3, fixtures_of
from tests.unit.convert.checks import assert_valid, extension_values

CLASS_SYSTEM = "http://terminology.hl7.org/CodeSystem/coverage-class"
RELATIONSHIP_R4 = "http://terminology.hl7.org/CodeSystem/subscriber-relationship"
DATA_ABSENT = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
SUPPLIED = {"extension": [{"url": DATA_ABSENT, "valueCode": "unknown"}]}

# DSTU2 (1.0.2) shapes, from the DSTU2 Coverage examples and §9.1.
COVERAGE = Shape(
    allowed=frozenset(
        {"issuer", "bin", "period", "type", "subscriberId", "identifier", "group", "plan"}
        | {"subPlan", "dependent", "sequence", "subscriber", "network", "contract"}
    ),
    nested={
        "issuer": REFERENCE,
        "bin": IDENTIFIER,
        "type": Shape(frozenset({"system", "version", "code", "display", "userSelected"})),
        "subscriberId": IDENTIFIER,
        "identifier": IDENTIFIER,
        "subscriber": REFERENCE,
        "network": IDENTIFIER,
        "contract": REFERENCE,
    },
    lists=frozenset({"identifier", "contract"}),
)


def check_dstu2(resource: dict[str, Any]) -> None:
    """The DSTU2 shape, positiveInts and string plans."""
    assert_dstu2(resource, COVERAGE)
    for key in ("dependent", "sequence"):  # positiveInt in DSTU2
        assert resource.get(key, 1) >= 1
    for key in ("group", "plan", "subPlan"):
        assert isinstance(resource.get(key, ""), str)


COVERAGE_FIXTURES = fixtures_of("Coverage")


def test_every_version_has_coverage_fixtures() -> None:
    assert {param.values[0] for param in COVERAGE_FIXTURES} == set(VERSIONS)


@pytest.mark.parametrize(("source", "target", "coverage"), COVERAGE_FIXTURES)
def test_fixture_converts_into_a_valid_coverage_of_every_other_version(
    source: str, target: str, coverage: dict[str, Any]
) -> None:
    assert_valid(convert(coverage, source, target), target, "Coverage", check_dstu2)


# -- the fields the Patients app reads (§1, §9.3) ----------------------------------------------


def _class(code: str, value: str, name: str | None = None) -> dict[str, Any]:
    item = {"type": {"coding": [{"system": CLASS_SYSTEM, "code": code}]}, "value": value}
    return item | ({"name": name} if name else {})


PAYOR = {"reference": "Organization/o1", "display": "Acme Insurance"}
R4_COVERAGE: dict[str, Any] = {
    "resourceType": "Coverage",
    "id": "c1",
    "status": "active",
    "subscriber": {"reference": "Patient/p1", "display": "Peter Chalmers"},
    "subscriberId": "AB9876",
    "beneficiary": {"reference": "Patient/p1"},
    "period": {"start": "2020-01-01", "end": "2020-12-31"},
    "payor": [PAYOR],
    "class": [
        _class("group", "WESTAIR", "Western Airlines"),
        _class("plan", "BG4352", "Full Coverage: Medical, Dental"),
    ],
}


def test_group_and_plan_names_become_group_display_and_plan_display_in_stu3() -> None:
    assert convert(R4_COVERAGE, "r4", "stu3")["grouping"] == {
        "group": "WESTAIR",
        "groupDisplay": "Western Airlines",
        "plan": "BG4352",
        "planDisplay": "Full Coverage: Medical, Dental",
    }


def test_period_subscriber_id_payor_and_beneficiary_reach_stu3() -> None:
    coverage = convert(R4_COVERAGE, "r4", "stu3")
    assert coverage["period"] == {"start": "2020-01-01", "end": "2020-12-31"}
    assert coverage["subscriberId"] == "AB9876"
    assert coverage["payor"] == [PAYOR]
    assert coverage["beneficiary"] == {"reference": "Patient/p1"}


def test_payor_becomes_issuer_with_its_display_in_dstu2() -> None:
    coverage = convert(R4_COVERAGE, "r4", "dstu2")
    assert coverage["issuer"] == PAYOR
    assert "payor" not in coverage


def test_plan_name_is_the_dstu2_plan() -> None:
    assert convert(R4_COVERAGE, "r4", "dstu2")["plan"] == "Full Coverage: Medical, Dental"


def test_plan_value_is_the_dstu2_plan_when_the_plan_has_no_name() -> None:
    r4 = {**R4_COVERAGE, "class": [_class("plan", "BG4352")]}
    coverage = convert(r4, "r4", "dstu2")
    assert coverage["plan"] == "BG4352"
    assert extension_values(coverage, XVER_STU3 + "Coverage.grouping.plan") == []


def test_subscriber_reaches_dstu2() -> None:
    coverage = convert(R4_COVERAGE, "r4", "dstu2")
    assert coverage["subscriber"] == {"reference": "Patient/p1", "display": "Peter Chalmers"}


def test_period_reaches_dstu2_and_subscriber_id_becomes_an_identifier() -> None:
    coverage = convert(R4_COVERAGE, "r4", "dstu2")
    assert coverage["period"] == R4_COVERAGE["period"]
    assert coverage["subscriberId"] == {"value": "AB9876"}


# -- round trips over generated R4 Coverages ---------------------------------------------------

_text = st.text(alphabet=string.ascii_letters + "éü'", min_size=1, max_size=12)
_id = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=8)
_date = st.dates().map(lambda d: d.isoformat() if d.year > 999 else "1999-01-01")
_class_codes = ["group", "subgroup", "plan", "subplan", "class", "subclass", "sequence"]
_class_codes += ["rxbin", "rxpcn", "rxid", "rxgroup"]
_classes = st.builds(
    lambda code, value, name: _class(code, value, name),
    st.sampled_from(_class_codes),
    st.one_of(_id, st.integers(1, 99).map(str)),
    st.one_of(st.none(), _text),
)


def _reference(kinds: list[str]) -> Any:
    return st.builds(
        lambda kind, ident, display: (
            {"reference": f"{kind}/{ident}"} | ({"display": display} if display else {})
        ),
        st.sampled_from(kinds),
        _id,
        st.one_of(st.none(), _text),
    )


_coverages = st.fixed_dictionaries(
    {
        "resourceType": st.just("Coverage"),
        "status": st.sampled_from(["active", "cancelled", "draft"]),
        "beneficiary": _reference(["Patient"]),
        "payor": st.lists(
            _reference(["Organization", "Patient", "RelatedPerson"]), min_size=1, max_size=2
        ),
    },
    optional={
        "id": _id,
        "subscriber": _reference(["Patient", "RelatedPerson"]),
        "subscriberId": _id,
        "period": st.builds(lambda s, e: {"start": s, "end": e}, _date, _date),
        "class": st.lists(_classes, min_size=1, max_size=4),
        "type": st.just({"coding": [{"system": "http://example.org/t", "code": "EHCPOL"}]}),
        "policyHolder": _reference(["Patient", "Organization"]),
        "dependent": st.one_of(_id, st.integers(0, 9).map(str)),
        "relationship": st.sampled_from(["self", "spouse", "injured"]).map(
            lambda c: {"coding": [{"system": RELATIONSHIP_R4, "code": c}]}
        ),
        "network": _id,
        "order": st.integers(1, 3),
        "contract": st.lists(_reference(["Contract"]), min_size=1, max_size=2),
        "subrogation": st.booleans(),
    },
)


def _classes_key(item: dict[str, Any]) -> str:
    return json.dumps(item, sort_keys=True)


def normalised(coverage: dict[str, Any]) -> dict[str, Any]:
    """``coverage`` with its classes sorted: R4 → STU3 → R4 orders them by kind (decision
    `test_class_order_is_normalised_by_kind_on_the_way_back`)."""
    return coverage | {"class": sorted(coverage.get("class", []), key=_classes_key)}


def app_fields(coverage: dict[str, Any]) -> dict[str, Any]:
    """What the Patients app reads of an R4 Coverage, in R4 terms (§1, §9.3)."""
    classes = [
        (c["type"]["coding"][0]["code"], c["value"], c.get("name", ""))
        for c in coverage.get("class", [])
    ]
    return {
        key: coverage.get(key)
        for key in ("period", "subscriberId", "payor", "beneficiary", "subscriber")
    } | {"class": sorted(c for c in classes if c[0] in ("group", "plan"))}


@settings(max_examples=50, deadline=None)
@given(coverage=_coverages, target=st.sampled_from(["stu3", "dstu2"]))
def test_r4_coverage_survives_a_round_trip_through_an_older_version(
    coverage: dict[str, Any], target: str
) -> None:
    assert_valid(coverage, "r4", "Coverage", check_dstu2)  # the strategy makes valid R4
    older = convert(coverage, "r4", target)
    assert_valid(older, target, "Coverage", check_dstu2)
    back = convert(older, target, "r4")
    assert app_fields(back) == app_fields(coverage)
    assert normalised(back) == normalised(coverage)  # everything else is carried as well


# -- R4 → STU3 ---------------------------------------------------------------------------------


def _r4(**elements: Any) -> dict[str, Any]:
    return {
        "resourceType": "Coverage",
        "status": "active",
        "beneficiary": {"reference": "Patient/p1"},
        "payor": [{"reference": "Organization/o1"}],
        **elements,
    }


GROUPING = [
    ("group", "group", "groupDisplay"),
    ("subgroup", "subGroup", "subGroupDisplay"),
    ("plan", "plan", "planDisplay"),
    ("subplan", "subPlan", "subPlanDisplay"),
    ("class", "class", "classDisplay"),
    ("subclass", "subClass", "subClassDisplay"),
]


@pytest.mark.parametrize(("code", "value_field", "name_field"), GROUPING)
def test_classes_become_grouping_fields_by_the_official_map(
    code: str, value_field: str, name_field: str
) -> None:
    stu3 = convert(_r4(**{"class": [_class(code, "V", "Name")]}), "r4", "stu3")
    assert stu3["grouping"] == {value_field: "V", name_field: "Name"}
    assert convert(stu3, "stu3", "r4")["class"] == [_class(code, "V", "Name")]


@pytest.mark.parametrize(
    ("hapi", "field"), [("subGroup", "subGroup"), ("subPlan", "subPlan"), ("subClass", "subClass")]
)
def test_camel_case_class_codes_written_by_hapi_are_read_but_never_written(
    hapi: str, field: str
) -> None:
    stu3 = convert(_r4(**{"class": [_class(hapi, "V")]}), "r4", "stu3")
    assert stu3["grouping"] == {field: "V"}
    assert convert(stu3, "stu3", "r4")["class"] == [_class(hapi.lower(), "V")]


def test_sequence_class_becomes_coverage_sequence() -> None:
    stu3 = convert(_r4(**{"class": [_class("sequence", "9")]}), "r4", "stu3")
    assert stu3["sequence"] == "9"
    assert "grouping" not in stu3


def test_classes_grouping_cannot_hold_ride_along() -> None:
    classes = [_class("group", "A"), _class("group", "B", "second"), _class("rxpcn", "234516")]
    stu3 = convert(_r4(**{"class": classes}), "r4", "stu3")
    assert stu3["grouping"] == {"group": "A"}
    assert len(extension_values(stu3, XVER_R4 + "Coverage.class")) == 2
    assert convert(stu3, "stu3", "r4")["class"] == classes


def test_class_order_is_normalised_by_kind_on_the_way_back() -> None:
    classes = [_class("rxid", "R"), _class("plan", "P"), _class("group", "G")]
    back = convert(convert(_r4(**{"class": classes}), "r4", "stu3"), "stu3", "r4")
    assert back["class"] == [classes[2], classes[1], classes[0]]


def test_injured_relationship_rides_along() -> None:
    relationship = {"coding": [{"system": RELATIONSHIP_R4, "code": "injured"}]}
    stu3 = convert(_r4(relationship=relationship), "r4", "stu3")
    assert "relationship" not in stu3
    assert convert(stu3, "stu3", "r4")["relationship"] == relationship


def test_subrogation_rides_along() -> None:
    stu3 = convert(_r4(subrogation=True), "r4", "stu3")
    assert extension_values(stu3, XVER_R4 + "Coverage.subrogation") == [True]


def test_cost_to_beneficiary_is_dropped() -> None:
    cost = [{"valueMoney": {"value": 20, "currency": "USD"}}]
    assert "costToBeneficiary" not in convert(_r4(costToBeneficiary=cost), "r4", "stu3")


# -- STU3 → R4 ---------------------------------------------------------------------------------


def _stu3(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Coverage", **elements}


def test_a_grouping_name_without_value_stands_in_for_the_class_value() -> None:
    r4 = convert(_stu3(grouping={"planDisplay": "Gold"}), "stu3", "r4")
    assert r4["class"] == [_class("plan", "Gold", "Gold")]


def test_missing_status_beneficiary_and_payor_are_marked_supplied_in_r4() -> None:
    r4 = convert(_stu3(), "stu3", "r4")
    assert (r4["status"], r4["_status"]) == ("active", SUPPLIED)
    assert (r4["beneficiary"], r4["payor"]) == (SUPPLIED, [SUPPLIED])
    assert_valid(r4, "r4", "Coverage", check_dstu2)
    assert convert(r4, "r4", "stu3") == _stu3()


# -- STU3 → DSTU2 ------------------------------------------------------------------------------


def test_an_entered_in_error_coverage_is_refused_for_dstu2() -> None:
    with pytest.raises(ConversionError, match="entered-in-error"):
        convert(_stu3(status="entered-in-error"), "stu3", "dstu2")


@pytest.mark.parametrize(
    ("element", "value"),
    [
        ("status", "active"),
        ("policyHolder", {"reference": "Organization/o2"}),
        ("relationship", {"coding": [{"code": "self"}]}),
        ("order", 2),
    ],
)
def test_elements_dstu2_lacks_ride_along(element: str, value: Any) -> None:
    dstu2 = convert(_stu3(**{element: value}), "stu3", "dstu2")
    assert element not in dstu2
    assert extension_values(dstu2, XVER_STU3 + f"Coverage.{element}") == [value]
    assert convert(dstu2, "dstu2", "stu3") == _stu3(**{element: value})


def test_type_becomes_its_first_coding_and_a_richer_concept_rides_along() -> None:
    coding = {"system": "http://hl7.org/fhir/v3/ActCode", "code": "EHCPOL"}
    assert convert(_stu3(type={"coding": [coding]}), "stu3", "dstu2")["type"] == coding
    rich = {"coding": [coding, {"code": "X"}], "text": "extended healthcare"}
    dstu2 = convert(_stu3(type=rich), "stu3", "dstu2")
    assert dstu2["type"] == coding
    assert convert(dstu2, "dstu2", "stu3")["type"] == rich


def test_a_patient_subscriber_is_the_dstu2_subscriber() -> None:
    stu3 = _stu3(subscriber={"reference": "Patient/p1"}, beneficiary={"reference": "Patient/p1"})
    dstu2 = convert(stu3, "stu3", "dstu2")
    assert dstu2["subscriber"] == {"reference": "Patient/p1"}
    assert "extension" not in dstu2
    assert convert(dstu2, "dstu2", "stu3") == stu3


def test_a_related_person_subscriber_gives_way_to_the_beneficiary() -> None:
    stu3 = _stu3(
        subscriber={"reference": "RelatedPerson/r1"}, beneficiary={"reference": "Patient/p1"}
    )
    dstu2 = convert(stu3, "stu3", "dstu2")
    assert dstu2["subscriber"] == {"reference": "Patient/p1"}
    assert extension_values(dstu2, XVER_STU3 + "Coverage.subscriber") == [
        {"reference": "RelatedPerson/r1"}
    ]
    assert convert(dstu2, "dstu2", "stu3") == stu3


def test_an_absent_subscriber_stays_absent_after_a_round_trip() -> None:
    stu3 = _stu3(beneficiary={"reference": "Patient/p1"})
    dstu2 = convert(stu3, "stu3", "dstu2")
    assert dstu2["subscriber"] == {"reference": "Patient/p1"}
    assert convert(dstu2, "dstu2", "stu3") == stu3


def test_first_organization_payor_is_the_issuer_and_every_payor_rides_along() -> None:
    payors = [{"reference": "Patient/p1"}, {"reference": "Organization/o1", "display": "Acme"}]
    dstu2 = convert(_stu3(payor=payors), "stu3", "dstu2")
    assert dstu2["issuer"] == payors[1]
    assert extension_values(dstu2, XVER_STU3 + "Coverage.payor") == payors
    assert convert(dstu2, "dstu2", "stu3")["payor"] == payors


def test_a_self_pay_payor_is_an_issuer_with_display_only() -> None:
    payor = {"reference": "Patient/p1", "display": "Peter Chalmers"}
    dstu2 = convert(_stu3(payor=[payor]), "stu3", "dstu2")
    assert dstu2["issuer"] == {"display": "Peter Chalmers"}
    assert convert(dstu2, "dstu2", "stu3")["payor"] == [payor]


def test_grouping_group_and_sub_plan_map_and_the_rest_rides_along() -> None:
    grouping = {"group": "G", "groupDisplay": "Group", "subPlan": "S", "class": "SILVER"}
    dstu2 = convert(_stu3(grouping=grouping), "stu3", "dstu2")
    assert (dstu2["group"], dstu2["subPlan"]) == ("G", "S")
    assert extension_values(dstu2, XVER_STU3 + "Coverage.grouping.groupDisplay") == ["Group"]
    assert extension_values(dstu2, XVER_STU3 + "Coverage.grouping.class") == ["SILVER"]
    assert convert(dstu2, "dstu2", "stu3")["grouping"] == grouping


def test_plan_display_is_the_dstu2_plan_and_the_plan_value_rides_along() -> None:
    grouping = {"plan": "B37FC", "planDisplay": "Full Coverage"}
    dstu2 = convert(_stu3(grouping=grouping), "stu3", "dstu2")
    assert dstu2["plan"] == "Full Coverage"
    assert extension_values(dstu2, XVER_STU3 + "Coverage.grouping.plan") == ["B37FC"]
    assert convert(dstu2, "dstu2", "stu3")["grouping"] == grouping


@pytest.mark.parametrize("element", ["dependent", "sequence"])
def test_numbers_become_positive_ints_and_other_strings_ride_along(element: str) -> None:
    assert convert(_stu3(**{element: "3"}), "stu3", "dstu2")[element] == 3
    for value in ("0", "A1"):
        dstu2 = convert(_stu3(**{element: value}), "stu3", "dstu2")
        assert element not in dstu2
        assert convert(dstu2, "dstu2", "stu3")[element] == value


@pytest.mark.parametrize("element", ["subscriberId", "network"])
def test_strings_become_identifiers_in_dstu2(element: str) -> None:
    assert convert(_stu3(**{element: "AB1"}), "stu3", "dstu2")[element] == {"value": "AB1"}


def test_an_rxbin_class_becomes_the_dstu2_bin() -> None:
    dstu2 = convert(_r4(**{"class": [_class("rxbin", "987654")]}), "r4", "dstu2")
    assert dstu2["bin"] == {"value": "987654"}
    assert convert(dstu2, "dstu2", "r4")["class"] == [_class("rxbin", "987654")]


# -- DSTU2 → STU3 ------------------------------------------------------------------------------


def _dstu2(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Coverage", **elements}


def test_issuer_becomes_payor() -> None:
    issuer = {"reference": "Organization/2", "display": "Acme"}
    assert convert(_dstu2(issuer=issuer), "dstu2", "stu3")["payor"] == [issuer]


def test_dstu2_subscriber_is_subscriber_and_beneficiary() -> None:
    stu3 = convert(_dstu2(subscriber={"reference": "Patient/4"}), "dstu2", "stu3")
    assert stu3["subscriber"] == stu3["beneficiary"] == {"reference": "Patient/4"}


def test_dstu2_plan_is_the_grouping_plan() -> None:
    stu3 = convert(_dstu2(plan="CBI35", group="G", subPlan="123"), "dstu2", "stu3")
    assert stu3["grouping"] == {"plan": "CBI35", "group": "G", "subPlan": "123"}


@pytest.mark.parametrize("element", ["subscriberId", "network"])
def test_dstu2_identifiers_become_their_values(element: str) -> None:
    dstu2 = _dstu2(**{element: {"system": "http://example.org/ids", "value": "AB1"}})
    assert convert(dstu2, "dstu2", "stu3")[element] == "AB1"


@pytest.mark.parametrize("element", ["dependent", "sequence"])
def test_dstu2_positive_ints_become_strings(element: str) -> None:
    assert convert(_dstu2(**{element: 1}), "dstu2", "stu3")[element] == "1"


def test_a_dstu2_bin_rides_along() -> None:
    stu3 = convert(_dstu2(bin={"value": "987654"}), "dstu2", "stu3")
    assert extension_values(stu3, XVER_DSTU2 + "Coverage.bin") == [{"value": "987654"}]
    assert convert(stu3, "stu3", "dstu2")["bin"] == {"value": "987654"}
