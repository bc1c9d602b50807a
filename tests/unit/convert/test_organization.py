"""Organization across R4, STU3 and DSTU2: fixtures, what display references need (name,
identifier, telecom), round trips and every decision in docs/conversion/organization.md.

The step functions are called directly (``run`` mimics the framework: comments stripped,
systems rewritten around each step, R4 meta dropped for older targets); ``convert`` is
checked once the type is registered in shared/fhir/convert/__init__.py.
"""

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
from tests.support.fixtures import VERSIONS, XVER_STU3, fixtures_of
from tests.unit.convert.checks import assert_valid

TYPE_R4 = "http://terminology.hl7.org/CodeSystem/organization-type"
TYPE_OLD = "http://hl7.org/fhir/organization-type"


# DSTU2 (1.0.2) Organization: one type (0..1), no alias, no endpoint.
ORGANIZATION = Shape(
    allowed=frozenset(
        {"identifier", "active", "type", "name", "telecom", "address", "partOf", "contact"}
    ),
    nested={
        "identifier": IDENTIFIER,
        "telecom": CONTACT_POINT,
        "partOf": REFERENCE,
        "contact": Shape(
            frozenset({"purpose", "name", "telecom", "address"}),
            nested={"name": HUMAN_NAME, "telecom": CONTACT_POINT},
            lists=frozenset({"telecom"}),
        ),
    },
    lists=frozenset({"identifier", "telecom", "address", "contact"}),
)


def check_dstu2(resource: dict[str, Any]) -> None:
    """The DSTU2 shape, one type, and DSTU2's telecom systems (the contacts' too)."""
    assert_dstu2(resource, ORGANIZATION)
    assert isinstance(resource.get("type", {}), dict), "DSTU2 Organization.type is 0..1"
    telecoms = resource.get("telecom", []) + [
        t for c in resource.get("contact", []) for t in c.get("telecom", [])
    ]
    for telecom in telecoms:
        assert telecom.get("system", "other") in CONTACT_SYSTEMS


ORGANIZATION_FIXTURES = fixtures_of("Organization")

# Hand-written, one per version, using every element of that version's definition.
RICH: dict[str, dict[str, Any]] = {
    "r4": {
        "resourceType": "Organization",
        "id": "o1",
        "identifier": [{"use": "old", "system": "urn:oid:2.16.840.1.113883.4.7", "value": "1"}],
        "active": True,
        "type": [
            {"coding": [{"system": TYPE_R4, "code": "prov"}]},
            {"coding": [{"system": TYPE_R4, "code": "ins"}]},
        ],
        "name": "Acme Health",
        "alias": ["Acme", "AH"],
        "telecom": [{"system": "url", "value": "https://acme.example"}],
        "address": [{"use": "billing", "city": "Boston"}],
        "partOf": {"reference": "Organization/parent", "type": "Organization"},
        "contact": [
            {
                "purpose": {"text": "billing"},
                "name": {"family": "Payne", "given": ["Bill"]},
                "telecom": [{"system": "sms", "value": "555"}],
                "address": {"city": "Boston"},
            }
        ],
        "endpoint": [{"reference": "Endpoint/e1"}],
    },
    "stu3": {
        "resourceType": "Organization",
        "id": "o2",
        "type": [{"coding": [{"system": TYPE_OLD, "code": "prov"}]}],
        "name": "Acme Health",
        "alias": ["Acme"],
        "endpoint": [{"reference": "Endpoint/e1", "identifier": {"value": "x"}}],
        "contact": [{"name": {"family": "Payne"}}],
    },
    "dstu2": {
        "resourceType": "Organization",
        "id": "o3",
        "fhir_comments": ["a comment"],
        "type": {"coding": [{"system": TYPE_OLD, "code": "prov"}]},
        "name": "Acme Health",
        "_name": {"fhir_comments": ["on name"]},
        "contact": [{"name": {"family": ["Payne", "Smith"]}}],
        "partOf": {"reference": "Organization/parent"},
    },
}
RICH_PAIRS = [(s, t) for s in VERSIONS for t in VERSIONS if s != t]


def test_every_version_has_organization_fixtures() -> None:
    # Only the Synthea bundles carry Organizations (5 DSTU2, 5 STU3, 8 R4).
    assert {param.values[0] for param in ORGANIZATION_FIXTURES} == set(VERSIONS)
    assert len(ORGANIZATION_FIXTURES) == 2 * 18


@pytest.mark.parametrize(("source", "target", "resource"), ORGANIZATION_FIXTURES)
def test_fixture_converts_into_a_valid_organization_of_every_other_version(
    source: str, target: str, resource: dict[str, Any]
) -> None:
    assert_valid(convert(resource, source, target), target, "Organization", check_dstu2)


@pytest.mark.parametrize(("source", "target"), RICH_PAIRS)
def test_organization_with_every_element_converts_into_a_valid_one(
    source: str, target: str
) -> None:
    assert_valid(convert(RICH[source], source, target), target, "Organization", check_dstu2)


# -- what display references need ---------------------------------------------------------------

R4_ORGANIZATION: dict[str, Any] = {
    "resourceType": "Organization",
    "id": "org1",
    "identifier": [{"system": "https://github.com/synthetichealth/synthea", "value": "org1"}],
    "active": True,
    "name": "LAWRENCE GENERAL HOSPITAL",
    "telecom": [{"system": "phone", "value": "9786834000"}],
    "address": [{"line": ["ONE GENERAL STREET"], "city": "LAWRENCE", "state": "MA"}],
}


@pytest.mark.parametrize("target", ["stu3", "dstu2"])
def test_name_identifier_telecom_and_address_reach_the_app(target: str) -> None:
    assert convert(R4_ORGANIZATION, "r4", target) == R4_ORGANIZATION


def test_type_system_becomes_the_old_organization_type_uri() -> None:
    r4 = {
        "resourceType": "Organization",
        "type": [{"coding": [{"system": TYPE_R4, "code": "prov"}]}],
    }
    assert convert(r4, "r4", "stu3")["type"] == [{"coding": [{"system": TYPE_OLD, "code": "prov"}]}]
    assert convert(r4, "r4", "dstu2")["type"] == {"coding": [{"system": TYPE_OLD, "code": "prov"}]}
    assert convert(convert(r4, "r4", "stu3"), "stu3", "r4") == r4


# -- round trips over generated R4 Organizations ------------------------------------------------

_text = st.text(alphabet=string.ascii_letters + "éü' ", min_size=1, max_size=12)
_id = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=8)
_telecom = st.fixed_dictionaries(
    {"system": st.sampled_from(["phone", "email", "url", "sms"]), "value": _id},
    optional={"use": st.sampled_from(["work", "temp"])},
)
r4_organizations = st.fixed_dictionaries(
    {"resourceType": st.just("Organization"), "id": _id, "name": _text},
    optional={
        "identifier": st.lists(
            st.fixed_dictionaries(
                {"system": st.just("urn:oid:1.2.3"), "value": _id},
                optional={"use": st.sampled_from(["official", "old"])},
            ),
            min_size=1,
            max_size=2,
        ),
        "active": st.booleans(),
        "type": st.lists(
            st.fixed_dictionaries(
                {
                    "coding": st.lists(
                        st.fixed_dictionaries(
                            {
                                "system": st.just(TYPE_R4),
                                "code": st.sampled_from(["prov", "ins", "pay", "dept"]),
                            }
                        ),
                        min_size=1,
                        max_size=1,
                    )
                },
                optional={"text": _text},
            ),
            min_size=1,
            max_size=3,
        ),
        "alias": st.lists(_text, min_size=1, max_size=2),
        "telecom": st.lists(_telecom, min_size=1, max_size=2),
        "address": st.lists(
            st.fixed_dictionaries(
                {"city": _text}, optional={"use": st.sampled_from(["work", "billing"])}
            ),
            min_size=1,
            max_size=2,
        ),
        "partOf": st.fixed_dictionaries({"reference": _id.map("Organization/{}".format)}),
        "contact": st.lists(
            st.fixed_dictionaries(
                {"name": st.fixed_dictionaries({"family": _text})},
                optional={"telecom": st.lists(_telecom, min_size=1, max_size=2)},
            ),
            min_size=1,
            max_size=2,
        ),
        "endpoint": st.lists(
            st.fixed_dictionaries({"reference": _id.map("Endpoint/{}".format)}),
            min_size=1,
            max_size=2,
        ),
    },
)


@pytest.mark.parametrize("middle", ["stu3", "dstu2"])
@settings(max_examples=50, deadline=None)
@given(resource=r4_organizations)
def test_r4_organization_survives_a_round_trip_through_an_older_version(
    middle: str, resource: dict[str, Any]
) -> None:
    older = convert(resource, "r4", middle)
    assert_valid(older, middle, "Organization", check_dstu2)
    assert convert(older, middle, "r4") == resource


# -- decisions (docs/conversion/organization.md) -----------------------------------------------


def test_types_after_the_first_ride_in_extensions_in_dstu2() -> None:
    stu3 = {"resourceType": "Organization", "type": [{"text": "A"}, {"text": "B"}, {"text": "C"}]}
    dstu2 = convert(stu3, "stu3", "dstu2")
    assert dstu2["type"] == {"text": "A"}
    assert dstu2["extension"] == [
        {"url": XVER_STU3 + "Organization.type", "valueCodeableConcept": {"text": "B"}},
        {"url": XVER_STU3 + "Organization.type", "valueCodeableConcept": {"text": "C"}},
    ]
    assert convert(dstu2, "dstu2", "stu3") == stu3


def test_alias_rides_in_extensions_in_dstu2() -> None:
    stu3 = {"resourceType": "Organization", "name": "Acme", "alias": ["A", "B"]}
    dstu2 = convert(stu3, "stu3", "dstu2")
    assert dstu2["extension"] == [
        {"url": XVER_STU3 + "Organization.alias", "valueString": "A"},
        {"url": XVER_STU3 + "Organization.alias", "valueString": "B"},
    ]
    assert "alias" not in dstu2
    assert convert(dstu2, "dstu2", "stu3") == stu3


def test_endpoints_ride_in_extensions_in_dstu2() -> None:
    stu3 = {
        "resourceType": "Organization",
        "name": "Acme",
        "endpoint": [{"reference": "Endpoint/1"}],
    }
    dstu2 = convert(stu3, "stu3", "dstu2")
    assert dstu2["extension"] == [
        {"url": XVER_STU3 + "Organization.endpoint", "valueReference": {"reference": "Endpoint/1"}}
    ]
    assert convert(dstu2, "dstu2", "stu3") == stu3


def test_telecom_url_becomes_other_with_an_extension_in_dstu2() -> None:
    r4 = {"resourceType": "Organization", "telecom": [{"system": "url", "value": "https://x"}]}
    [telecom] = convert(r4, "r4", "dstu2")["telecom"]
    assert telecom == {
        "system": "other",
        "value": "https://x",
        "extension": [{"url": XVER_STU3 + "ContactPoint.system", "valueCode": "url"}],
    }


def test_contact_name_gets_a_family_list_in_dstu2_and_back() -> None:
    stu3 = {"resourceType": "Organization", "contact": [{"name": {"family": "Payne"}}]}
    dstu2 = convert(stu3, "stu3", "dstu2")
    assert dstu2["contact"] == [{"name": {"family": ["Payne"]}}]
    assert convert(dstu2, "dstu2", "stu3") == stu3


def test_part_of_reference_loses_its_r4_type() -> None:
    r4 = {
        "resourceType": "Organization",
        "partOf": {"reference": "Organization/1", "type": "Organization"},
    }
    assert convert(r4, "r4", "stu3")["partOf"] == {"reference": "Organization/1"}
