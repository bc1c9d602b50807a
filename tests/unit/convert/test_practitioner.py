"""Practitioner across R4, STU3 and DSTU2: fixtures, what display references need (name,
identifier, telecom), round trips and every decision in docs/conversion/practitioner.md."""

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
    HUMAN_NAME,
    IDENTIFIER,
    REFERENCE,
    Shape,
    assert_dstu2,
)
from tests.support.fixtures import XVER_STU3, fixtures_of
from tests.unit.convert.checks import assert_valid

# DSTU2 (1.0.2) Practitioner: one name (0..1), practitionerRole backbone.
PRACTITIONER = Shape(
    allowed=frozenset(
        {"identifier", "active", "name", "telecom", "address", "gender", "birthDate", "photo"}
        | {"practitionerRole", "qualification", "communication"}
    ),
    nested={
        "identifier": IDENTIFIER,
        "name": HUMAN_NAME,
        "telecom": CONTACT_POINT,
        "qualification": Shape(
            frozenset({"identifier", "code", "period", "issuer"}),
            required=frozenset({"code"}),
            nested={"identifier": IDENTIFIER, "issuer": REFERENCE},
        ),
    },
    lists=frozenset(
        {"identifier", "telecom", "address", "photo", "practitionerRole", "qualification"}
        | {"communication"}
    ),
)


def check_dstu2(resource: dict[str, Any]) -> None:
    """The DSTU2 shape, one name, and DSTU2's telecom systems."""
    assert_dstu2(resource, PRACTITIONER)
    assert isinstance(resource.get("name", {}), dict), "DSTU2 Practitioner.name is 0..1"
    for telecom in resource.get("telecom", []):
        assert telecom.get("system", "other") in CONTACT_SYSTEMS


PRACTITIONER_FIXTURES = fixtures_of("Practitioner")


def test_practitioner_fixtures_exist() -> None:
    # Only the R4 Synthea bundles carry Practitioners (8 of them); no HL7 example was kept.
    assert len(PRACTITIONER_FIXTURES) == 2 * 8


@pytest.mark.parametrize(("source", "target", "practitioner"), PRACTITIONER_FIXTURES)
def test_fixture_converts_into_a_valid_practitioner_of_every_other_version(
    source: str, target: str, practitioner: dict[str, Any]
) -> None:
    assert_valid(convert(practitioner, source, target), target, "Practitioner", check_dstu2)


# -- what display references need ---------------------------------------------------------------

R4_PRACTITIONER: dict[str, Any] = {
    "resourceType": "Practitioner",
    "id": "gp1",
    "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "9941339108"}],
    "name": [{"use": "official", "family": "Careful", "given": ["Adam"], "prefix": ["Dr"]}],
    "telecom": [{"system": "phone", "value": "555-0100", "use": "work"}],
}


def test_name_reaches_stu3_as_a_list() -> None:
    practitioner = convert(R4_PRACTITIONER, "r4", "stu3")
    assert practitioner["name"] == R4_PRACTITIONER["name"]


def test_name_reaches_dstu2_as_one_human_name_with_a_family_list() -> None:
    practitioner = convert(R4_PRACTITIONER, "r4", "dstu2")
    assert practitioner["name"] == {
        "use": "official",
        "family": ["Careful"],
        "given": ["Adam"],
        "prefix": ["Dr"],
    }


@pytest.mark.parametrize("target", ["stu3", "dstu2"])
def test_identifier_and_telecom_reach_the_app(target: str) -> None:
    practitioner = convert(R4_PRACTITIONER, "r4", target)
    assert practitioner["identifier"] == R4_PRACTITIONER["identifier"]
    assert practitioner["telecom"] == R4_PRACTITIONER["telecom"]


# -- round trips over generated R4 Practitioners -----------------------------------------------

_text = st.text(alphabet=string.ascii_letters + "éü'", min_size=1, max_size=12)
_id = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=8)
_names = st.fixed_dictionaries(
    {"family": _text},
    optional={
        "use": st.sampled_from(["usual", "official", "old"]),
        "given": st.lists(_text, min_size=1, max_size=2),
        "prefix": st.lists(_text, min_size=1, max_size=1),
    },
)
r4_practitioners = st.fixed_dictionaries(
    {"resourceType": st.just("Practitioner"), "id": _id},
    optional={
        "identifier": st.lists(
            st.fixed_dictionaries(
                {"system": st.just("http://hl7.org/fhir/sid/us-npi"), "value": _id},
                optional={"use": st.sampled_from(["official", "old"])},
            ),
            min_size=1,
            max_size=2,
        ),
        "name": st.lists(_names, min_size=1, max_size=3),
        "telecom": st.lists(
            st.fixed_dictionaries(
                {"system": st.sampled_from(["phone", "email", "url", "sms"]), "value": _text}
            ),
            min_size=1,
            max_size=2,
        ),
        "active": st.booleans(),
    },
)


@pytest.mark.parametrize("middle", ["stu3", "dstu2"])
@settings(max_examples=50, deadline=None)
@given(practitioner=r4_practitioners)
def test_r4_practitioner_survives_a_round_trip_through_an_older_version(
    middle: str, practitioner: dict[str, Any]
) -> None:
    older = convert(practitioner, "r4", middle)
    assert_valid(older, middle, "Practitioner", check_dstu2)
    assert convert(older, middle, "r4") == practitioner


# -- decisions (docs/conversion/practitioner.md) -----------------------------------------------


def test_names_after_the_first_ride_in_extensions_in_dstu2() -> None:
    stu3 = {
        "resourceType": "Practitioner",
        "name": [{"family": "Careful", "given": ["Adam"]}, {"use": "old", "family": "Young"}],
    }
    practitioner = convert(stu3, "stu3", "dstu2")
    assert practitioner["name"] == {"family": ["Careful"], "given": ["Adam"]}
    assert practitioner["extension"] == [
        {
            "url": XVER_STU3 + "Practitioner.name",
            "valueHumanName": {"use": "old", "family": ["Young"]},
        }
    ]


def test_dstu2_name_becomes_a_list_with_carried_names_restored_in_order() -> None:
    stu3 = {
        "resourceType": "Practitioner",
        "name": [{"family": "A"}, {"family": "B"}, {"family": "C"}],
    }
    assert convert(convert(stu3, "stu3", "dstu2"), "dstu2", "stu3") == stu3


def test_dstu2_practitioner_role_is_dropped() -> None:
    dstu2 = {
        "resourceType": "Practitioner",
        "name": {"family": ["Careful"]},
        "practitionerRole": [{"managingOrganization": {"reference": "Organization/1"}}],
    }
    assert convert(dstu2, "dstu2", "stu3") == {
        "resourceType": "Practitioner",
        "name": [{"family": "Careful"}],
    }


def test_telecom_url_becomes_other_with_an_extension_in_dstu2() -> None:
    r4 = {"resourceType": "Practitioner", "telecom": [{"system": "url", "value": "https://x"}]}
    [telecom] = convert(r4, "r4", "dstu2")["telecom"]
    assert telecom == {
        "system": "other",
        "value": "https://x",
        "extension": [{"url": XVER_STU3 + "ContactPoint.system", "valueCode": "url"}],
    }


def test_qualification_issuer_reference_loses_its_r4_type() -> None:
    r4 = {
        "resourceType": "Practitioner",
        "qualification": [
            {
                "code": {"text": "MD"},
                "issuer": {"reference": "Organization/1", "type": "Organization"},
            }
        ],
    }
    [qualification] = convert(r4, "r4", "dstu2")["qualification"]
    assert qualification["issuer"] == {"reference": "Organization/1"}
