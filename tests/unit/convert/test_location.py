"""Location across R4, STU3 and DSTU2: fixtures, the name the app shows, round trips and every
decision in docs/conversion/location.md.
Section numbers (§) refer to docs/conversion/mapping.md."""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.fhir.convert import convert
from tests.support.dstu2 import (
    CONTACT_POINT,
    CONTACT_SYSTEMS,
    IDENTIFIER,
    REFERENCE,
    Shape,
    assert_dstu2,
)
from tests.support.fixtures import VERSIONS, XVER_R4, XVER_STU3, fixtures_of, hl7_example
from tests.unit.convert.checks import assert_valid

ALIAS = "http://hl7.org/fhir/StructureDefinition/location-alias"

# DSTU2 (1.0.2) Location, from the DSTU2 examples and §10.
LOCATION = Shape(
    allowed=frozenset(
        {"identifier", "status", "name", "description", "mode", "type", "telecom", "address"}
        | {"physicalType", "position", "managingOrganization", "partOf"}
    ),
    nested={
        "identifier": IDENTIFIER,
        "telecom": CONTACT_POINT,
        "position": Shape(
            frozenset({"longitude", "latitude", "altitude"}),
            required=frozenset({"longitude", "latitude"}),
        ),
        "managingOrganization": REFERENCE,
        "partOf": REFERENCE,
    },
    lists=frozenset({"identifier", "telecom"}),
)


def check_dstu2(resource: dict[str, Any]) -> None:
    """The DSTU2 shape, one type and address, and DSTU2's telecom systems."""
    assert_dstu2(resource, LOCATION)
    assert isinstance(resource.get("type", {}), dict), "DSTU2 Location.type is 0..1"
    assert isinstance(resource.get("address", {}), dict), "DSTU2 Location.address is 0..1"
    for telecom in resource.get("telecom", []):
        assert telecom.get("system", "other") in CONTACT_SYSTEMS


LOCATION_FIXTURES = fixtures_of("Location")


def test_every_version_has_location_fixtures() -> None:
    # Synthea carries no Location; two HL7 examples per version.
    assert {param.values[0] for param in LOCATION_FIXTURES} == set(VERSIONS)
    assert len(LOCATION_FIXTURES) == 2 * 6


@pytest.mark.parametrize(("source", "target", "location"), LOCATION_FIXTURES)
def test_fixture_converts_into_a_valid_location_of_every_other_version(
    source: str, target: str, location: dict[str, Any]
) -> None:
    assert_valid(convert(location, source, target), target, "Location", check_dstu2)


# -- what the app shows: the name (through Encounter.location.display) -------------------------

R4_LOCATION: dict[str, Any] = {
    "resourceType": "Location",
    "id": "ward-2",
    "status": "active",
    "name": "South Wing, second floor",
    "type": [
        {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "HOSP"}
            ]
        }
    ],
}


@pytest.mark.parametrize("target", ["stu3", "dstu2"])
def test_name_and_status_reach_the_app(target: str) -> None:
    location = convert(R4_LOCATION, "r4", target)
    assert (location["name"], location["status"]) == ("South Wing, second floor", "active")


@pytest.mark.parametrize("target", ["stu3", "dstu2"])
def test_first_type_becomes_the_single_type_with_the_old_role_code_system(target: str) -> None:
    assert convert(R4_LOCATION, "r4", target)["type"] == {
        "coding": [{"system": "http://hl7.org/fhir/v3/RoleCode", "code": "HOSP"}]
    }


# -- round trips over generated R4 Locations ---------------------------------------------------

_text = (
    st.text(alphabet=string.ascii_letters + " é", min_size=1, max_size=12)
    .map(str.strip)
    .filter(bool)
)
_id = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=8)
_concepts = st.builds(lambda code: {"text": code}, _text)
_hours = st.fixed_dictionaries(
    {},
    optional={
        "daysOfWeek": st.lists(
            st.sampled_from(["mon", "tue", "wed", "thu", "fri"]), min_size=1, max_size=3
        ),
        "allDay": st.booleans(),
        "openingTime": st.just("08:00:00"),
        "closingTime": st.just("17:30:00"),
    },
).filter(bool)
r4_locations = st.fixed_dictionaries(
    {"resourceType": st.just("Location"), "id": _id, "name": _text},
    optional={
        "status": st.sampled_from(["active", "suspended", "inactive"]),
        "mode": st.sampled_from(["instance", "kind"]),
        "type": st.lists(_concepts, min_size=1, max_size=3),
        "alias": st.lists(_text, min_size=1, max_size=2),
        "telecom": st.lists(
            st.fixed_dictionaries(
                {"system": st.sampled_from(["phone", "url", "sms"]), "value": _text}
            ),
            min_size=1,
            max_size=2,
        ),
        "address": st.fixed_dictionaries(
            {"city": _text}, optional={"use": st.sampled_from(["work", "billing"])}
        ),
        "operationalStatus": st.just(
            {"system": "http://terminology.hl7.org/CodeSystem/v2-0116", "code": "O"}
        ),
        "hoursOfOperation": st.lists(_hours, min_size=1, max_size=2),
        "availabilityExceptions": _text,
        "endpoint": st.lists(
            st.builds(lambda i: {"reference": f"Endpoint/{i}"}, _id), min_size=1, max_size=2
        ),
    },
)


@pytest.mark.parametrize("middle", ["stu3", "dstu2"])
@settings(max_examples=50, deadline=None)
@given(location=r4_locations)
def test_r4_location_survives_a_round_trip_through_an_older_version(
    middle: str, location: dict[str, Any]
) -> None:
    older = convert(location, "r4", middle)
    assert_valid(older, middle, "Location", check_dstu2)
    assert convert(older, middle, "r4") == location


# -- decisions (docs/conversion/location.md) ---------------------------------------------------


def test_types_after_the_first_ride_in_extensions_before_r4() -> None:
    r4 = {"resourceType": "Location", "type": [{"text": "A"}, {"text": "B"}]}
    location = convert(r4, "r4", "stu3")
    assert location["type"] == {"text": "A"}
    assert location["extension"] == [
        {"url": XVER_R4 + "Location.type", "valueCodeableConcept": {"text": "B"}}
    ]


def test_hours_of_operation_ride_in_a_complex_extension_before_r4() -> None:
    hours = {"daysOfWeek": ["mon", "tue"], "openingTime": "08:00:00", "closingTime": "17:00:00"}
    r4 = {"resourceType": "Location", "hoursOfOperation": [hours]}
    location = convert(r4, "r4", "stu3")
    assert location["extension"] == [
        {
            "url": XVER_R4 + "Location.hoursOfOperation",
            "extension": [
                {"url": "daysOfWeek", "valueCode": "mon"},
                {"url": "daysOfWeek", "valueCode": "tue"},
                {"url": "openingTime", "valueTime": "08:00:00"},
                {"url": "closingTime", "valueTime": "17:00:00"},
            ],
        }
    ]
    assert convert(location, "stu3", "r4") == r4


def test_availability_exceptions_ride_in_an_extension_before_r4() -> None:
    r4 = {"resourceType": "Location", "availabilityExceptions": "Closed on holidays"}
    assert convert(r4, "r4", "stu3")["extension"] == [
        {"url": XVER_R4 + "Location.availabilityExceptions", "valueString": "Closed on holidays"}
    ]


def test_alias_becomes_the_location_alias_extension_in_dstu2() -> None:
    stu3 = {"resourceType": "Location", "alias": ["BU MC", "Burgers"]}
    location = convert(stu3, "stu3", "dstu2")
    assert location == {
        "resourceType": "Location",
        "extension": [
            {"url": ALIAS, "valueString": "BU MC"},
            {"url": ALIAS, "valueString": "Burgers"},
        ],
    }


def test_dstu2_location_alias_extension_becomes_alias() -> None:
    dstu2 = hl7_example("dstu2", "location-example.json")
    location = convert(dstu2, "dstu2", "stu3")
    assert location["alias"] == [
        "Burgers University Medical Center, South Wing, second floor",
        "BU MC, SW, F2",
    ]
    assert "extension" not in location


def test_operational_status_rides_in_an_extension_in_dstu2() -> None:
    stu3 = {
        "resourceType": "Location",
        "operationalStatus": {"system": "http://hl7.org/fhir/v2/0116", "code": "O"},
    }
    assert convert(stu3, "stu3", "dstu2")["extension"] == [
        {
            "url": XVER_STU3 + "Location.operationalStatus",
            "valueCoding": {"system": "http://hl7.org/fhir/v2/0116", "code": "O"},
        }
    ]


def test_endpoints_ride_in_extensions_in_dstu2() -> None:
    r4 = hl7_example("r4", "location-example.json")
    location = convert(r4, "r4", "dstu2")
    assert "endpoint" not in location
    assert {
        "url": XVER_STU3 + "Location.endpoint",
        "valueReference": {"reference": "Endpoint/example"},
    } in location["extension"]


def test_telecom_url_becomes_other_in_dstu2() -> None:
    r4 = hl7_example("r4", "location-example.json")
    telecom = convert(r4, "r4", "dstu2")["telecom"][3]
    assert (telecom["system"], telecom["value"]) == ("other", "http://sampleorg.com/southwing")
