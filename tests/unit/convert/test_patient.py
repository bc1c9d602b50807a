"""Patient across R4, STU3 and DSTU2: fixtures, the fields the Patients app reads, round trips
and every decision in docs/conversion/patient.md.
Section numbers (§) refer to docs/conversion/mapping.md."""

from __future__ import annotations

import string
from datetime import date
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
from tests.support.fixtures import VERSIONS, XVER_R4, XVER_STU3, fixtures_of, hl7_example
from tests.unit.convert.checks import assert_valid

V2_0203_R4 = "http://terminology.hl7.org/CodeSystem/v2-0203"
V2_0203_OLD = "http://hl7.org/fhir/v2/0203"

# DSTU2 (1.0.2) shapes, from the DSTU2 Patient examples and §2.5, §3.
ADDRESS = Shape(
    frozenset(
        {"use", "type", "text", "line", "city", "district", "state", "postalCode", "country"}
        | {"period"}
    ),
    lists=frozenset({"line"}),
)
PATIENT = Shape(
    allowed=frozenset(
        {
            "identifier",
            "active",
            "name",
            "telecom",
            "gender",
            "birthDate",
            "deceasedBoolean",
            "deceasedDateTime",
            "address",
            "maritalStatus",
            "multipleBirthBoolean",
            "multipleBirthInteger",
            "photo",
            "contact",
            "animal",
            "communication",
            "careProvider",
            "managingOrganization",
            "link",
        }
    ),
    nested={
        "identifier": IDENTIFIER,
        "name": HUMAN_NAME,
        "telecom": CONTACT_POINT,
        "address": ADDRESS,
        "careProvider": REFERENCE,
        "managingOrganization": REFERENCE,
        "contact": Shape(
            frozenset(
                {"relationship", "name", "telecom", "address", "gender", "organization"}
                | {"period"}
            ),
            nested={
                "name": HUMAN_NAME,
                "telecom": CONTACT_POINT,
                "address": ADDRESS,
                "organization": REFERENCE,
            },
            lists=frozenset({"relationship", "telecom"}),
        ),
        "animal": Shape(
            frozenset({"species", "breed", "genderStatus"}), required=frozenset({"species"})
        ),
        "communication": Shape(
            frozenset({"language", "preferred"}), required=frozenset({"language"})
        ),
        "link": Shape(
            frozenset({"other", "type"}),
            required=frozenset({"other", "type"}),
            nested={"other": REFERENCE},
        ),
    },
    lists=frozenset(
        {"identifier", "name", "telecom", "address", "photo", "contact", "communication"}
        | {"careProvider", "link"}
    ),
)


def check_dstu2(resource: dict[str, Any]) -> None:
    """The DSTU2 shape and DSTU2's telecom systems."""
    assert_dstu2(resource, PATIENT)
    for telecom in resource.get("telecom", []):
        assert telecom.get("system", "other") in CONTACT_SYSTEMS


PATIENT_FIXTURES = fixtures_of("Patient")


def test_every_version_has_patient_fixtures() -> None:
    assert {param.values[0] for param in PATIENT_FIXTURES} == set(VERSIONS)
    assert len(PATIENT_FIXTURES) == 2 * 24  # 3 HL7 examples and 5 Synthea patients per version


@pytest.mark.parametrize(("source", "target", "patient"), PATIENT_FIXTURES)
def test_fixture_converts_into_a_valid_patient_of_every_other_version(
    source: str, target: str, patient: dict[str, Any]
) -> None:
    assert_valid(convert(patient, source, target), target, "Patient", check_dstu2)


# -- the fields the Patients app reads (§1, §3.3) ----------------------------------------------

R4_PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "p1",
    "identifier": [
        {
            "use": "usual",
            "type": {"coding": [{"system": V2_0203_R4, "code": "MR"}], "text": "MRN"},
            "system": "urn:oid:1.2.36.146.595.217.0.1",
            "value": "12345",
        }
    ],
    "name": [
        {"use": "official", "prefix": ["Mr."], "family": "Chalmers", "given": ["Peter", "James"]}
    ],
    "gender": "male",
    "birthDate": "1974-12-25",
    "generalPractitioner": [{"reference": "Practitioner/gp1", "display": "Dr. Adam Careful"}],
}


@pytest.mark.parametrize("target", ["stu3", "dstu2"])
def test_name_use_prefix_and_given_reach_the_app(target: str) -> None:
    name = convert(R4_PATIENT, "r4", target)["name"][0]
    assert (name["use"], name["prefix"], name["given"]) == ("official", ["Mr."], ["Peter", "James"])


def test_family_is_a_string_in_stu3() -> None:
    assert convert(R4_PATIENT, "r4", "stu3")["name"][0]["family"] == "Chalmers"


def test_family_is_a_list_in_dstu2() -> None:
    assert convert(R4_PATIENT, "r4", "dstu2")["name"][0]["family"] == ["Chalmers"]


@pytest.mark.parametrize("target", ["stu3", "dstu2"])
def test_gender_and_birth_date_reach_the_app(target: str) -> None:
    patient = convert(R4_PATIENT, "r4", target)
    assert (patient["gender"], patient["birthDate"]) == ("male", "1974-12-25")


@pytest.mark.parametrize("target", ["stu3", "dstu2"])
def test_mrn_identifier_carries_type_mr_in_the_v2_0203_system_of_the_target(target: str) -> None:
    identifier = convert(R4_PATIENT, "r4", target)["identifier"][0]
    assert identifier["type"]["coding"] == [{"system": V2_0203_OLD, "code": "MR"}]
    assert identifier["value"] == "12345"


def test_general_practitioner_display_reaches_stu3() -> None:
    patient = convert(R4_PATIENT, "r4", "stu3")
    assert patient["generalPractitioner"] == [
        {"reference": "Practitioner/gp1", "display": "Dr. Adam Careful"}
    ]


def test_general_practitioner_becomes_care_provider_with_its_display_in_dstu2() -> None:
    patient = convert(R4_PATIENT, "r4", "dstu2")
    assert "generalPractitioner" not in patient
    assert patient["careProvider"] == [
        {"reference": "Practitioner/gp1", "display": "Dr. Adam Careful"}
    ]


# -- round trips over generated R4 Patients ----------------------------------------------------

_text = st.text(alphabet=string.ascii_letters + "éüß'", min_size=1, max_size=12)
_id = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=8)
_names = st.fixed_dictionaries(
    {"family": _text},
    optional={
        "use": st.sampled_from(["usual", "official", "temp", "nickname", "old", "maiden"]),
        "prefix": st.lists(_text, min_size=1, max_size=2),
        "given": st.lists(_text, min_size=1, max_size=3),
    },
)
_mrn = st.fixed_dictionaries(
    {
        "type": st.just({"coding": [{"system": V2_0203_R4, "code": "MR"}]}),
        "system": st.just("urn:oid:1.2.3.4"),
        "value": _id,
    },
    optional={"use": st.sampled_from(["usual", "official", "secondary", "old"])},
)
_practitioner_refs = st.fixed_dictionaries(
    {"display": _text},
    optional={
        "reference": st.builds(
            "{}/{}".format,
            st.sampled_from(["Practitioner", "Organization", "PractitionerRole"]),
            _id,
        )
    },
)
_telecoms = st.fixed_dictionaries(
    {
        "system": st.sampled_from(["phone", "fax", "email", "pager", "url", "sms", "other"]),
        "value": _text,
    }
)
_addresses = st.fixed_dictionaries(
    {"city": _text}, optional={"use": st.sampled_from(["home", "work", "temp", "old", "billing"])}
)
r4_patients = st.fixed_dictionaries(
    {"resourceType": st.just("Patient"), "id": _id},
    optional={
        "identifier": st.lists(_mrn, min_size=1, max_size=2),
        "name": st.lists(_names, min_size=1, max_size=2),
        "gender": st.sampled_from(["male", "female", "other", "unknown"]),
        "birthDate": st.dates(date(1900, 1, 1), date(2030, 12, 31)).map(date.isoformat),
        "generalPractitioner": st.lists(_practitioner_refs, min_size=1, max_size=2),
        "telecom": st.lists(_telecoms, min_size=1, max_size=3),
        "address": st.lists(_addresses, min_size=1, max_size=2),
    },
)


@pytest.mark.parametrize("middle", ["stu3", "dstu2"])
@settings(max_examples=50, deadline=None)
@given(patient=r4_patients)
def test_r4_patient_survives_a_round_trip_through_an_older_version(
    middle: str, patient: dict[str, Any]
) -> None:
    older = convert(patient, "r4", middle)
    assert_valid(older, middle, "Patient", check_dstu2)
    assert convert(older, middle, "r4") == patient


# -- decisions (docs/conversion/patient.md) ----------------------------------------------------


def _extension(element: dict[str, Any], url: str) -> list[Any]:
    return [e for e in element.get("extension", []) if e["url"] == url]


def test_r4_animal_extension_becomes_the_stu3_animal_element() -> None:
    animal = hl7_example("r4", "patient-example-animal.json")
    patient = convert(animal, "r4", "stu3")
    assert patient["animal"]["species"]["coding"][0]["code"] == "canislf"
    assert set(patient["animal"]) == {"species", "breed", "genderStatus"}
    assert "extension" not in patient


def test_stu3_animal_element_becomes_the_r4_animal_extension() -> None:
    animal = hl7_example("stu3", "patient-example-animal.json")
    patient = convert(animal, "stu3", "r4")
    assert "animal" not in patient
    [extension] = _extension(patient, "http://hl7.org/fhir/StructureDefinition/patient-animal")
    assert [part["url"] for part in extension["extension"]] == [
        "species",
        "breed",
        "genderStatus",
    ]


def test_practitioner_role_as_general_practitioner_keeps_only_display_before_r4() -> None:
    r4 = {
        "resourceType": "Patient",
        "generalPractitioner": [{"reference": "PractitionerRole/7", "display": "Dr. Role"}],
    }
    [reference] = convert(r4, "r4", "stu3")["generalPractitioner"]
    assert reference["display"] == "Dr. Role"
    assert "reference" not in reference
    assert reference["extension"] == [
        {"url": XVER_R4 + "Reference.reference", "valueString": "PractitionerRole/7"}
    ]
    assert convert(convert(r4, "r4", "dstu2"), "dstu2", "r4") == r4


def test_identifier_use_old_is_carried_in_an_extension_before_r4() -> None:
    r4 = {"resourceType": "Patient", "identifier": [{"use": "old", "value": "1"}]}
    [identifier] = convert(r4, "r4", "stu3")["identifier"]
    assert identifier == {
        "value": "1",
        "extension": [{"url": XVER_R4 + "Identifier.use", "valueCode": "old"}],
    }


def test_address_use_billing_is_carried_in_an_extension_before_r4() -> None:
    r4 = {"resourceType": "Patient", "address": [{"use": "billing", "city": "X"}]}
    [address] = convert(r4, "r4", "dstu2")["address"]
    assert address == {
        "city": "X",
        "extension": [{"url": XVER_R4 + "Address.use", "valueCode": "billing"}],
    }


@pytest.mark.parametrize("system", ["url", "sms"])
def test_telecom_systems_dstu2_lacks_become_other_with_an_extension(system: str) -> None:
    stu3 = {"resourceType": "Patient", "telecom": [{"system": system, "value": "x"}]}
    [telecom] = convert(stu3, "stu3", "dstu2")["telecom"]
    assert telecom["system"] == "other"
    assert telecom["extension"] == [{"url": XVER_STU3 + "ContactPoint.system", "valueCode": system}]
    assert convert(convert(stu3, "stu3", "dstu2"), "dstu2", "stu3") == stu3


def test_replaces_becomes_seealso_in_dstu2_never_replace() -> None:
    """Issue 15 item 5. Input: the surviving STU3 Patient's link type ``replaces``. Expected:
    DSTU2 ``seealso`` ("in use and valid", pointing at a record about the same person), the
    code carried; before, DSTU2 ``replace``, whose DSTU2 definition says the resource holding
    the link must no longer be used. HL7's R3→R2 Patient map (patLink) copies the code."""
    stu3 = {"resourceType": "Patient", "link": [{"other": {"reference": "Patient/2"}}]}
    stu3["link"][0]["type"] = "replaces"
    [link] = convert(stu3, "stu3", "dstu2")["link"]
    assert link["type"] == "seealso"
    assert link["extension"] == [{"url": XVER_STU3 + "Patient.link.type", "valueCode": "replaces"}]
    assert convert(convert(stu3, "stu3", "dstu2"), "dstu2", "stu3") == stu3


def test_replaced_by_becomes_replace_in_dstu2_without_an_extension() -> None:
    stu3 = {"resourceType": "Patient", "link": [{"other": {"reference": "Patient/2"}}]}
    stu3["link"][0]["type"] = "replaced-by"
    [link] = convert(stu3, "stu3", "dstu2")["link"]
    assert link == {"other": {"reference": "Patient/2"}, "type": "replace"}
    assert convert(convert(stu3, "stu3", "dstu2"), "dstu2", "stu3") == stu3


def test_dstu2_replace_link_becomes_replaced_by() -> None:
    dstu2 = {"resourceType": "Patient", "link": [{"other": {"reference": "Patient/2"}}]}
    dstu2["link"][0]["type"] = "replace"
    assert convert(dstu2, "dstu2", "stu3")["link"][0]["type"] == "replaced-by"


def test_related_person_link_keeps_only_display_in_dstu2() -> None:
    stu3 = {
        "resourceType": "Patient",
        "link": [{"other": {"reference": "RelatedPerson/9", "display": "Mum"}, "type": "seealso"}],
    }
    [link] = convert(stu3, "stu3", "dstu2")["link"]
    assert link["other"] == {
        "display": "Mum",
        "extension": [{"url": XVER_STU3 + "Reference.reference", "valueString": "RelatedPerson/9"}],
    }
    assert convert(convert(stu3, "stu3", "dstu2"), "dstu2", "stu3") == stu3


def test_reference_identifier_becomes_display_in_dstu2() -> None:
    r4 = {
        "resourceType": "Patient",
        "managingOrganization": {"identifier": {"system": "urn:x", "value": "ORG-1"}},
    }
    dstu2 = convert(r4, "r4", "dstu2")
    identifier = {"system": "urn:x", "value": "ORG-1"}
    assert dstu2["managingOrganization"] == {
        "display": "ORG-1",
        "extension": [{"url": XVER_STU3 + "Reference.identifier", "valueIdentifier": identifier}],
    }
    assert convert(dstu2, "dstu2", "r4") == r4


def test_reference_type_is_dropped_before_r4() -> None:
    r4 = {
        "resourceType": "Patient",
        "managingOrganization": {"reference": "Organization/1", "type": "Organization"},
    }
    assert convert(r4, "r4", "stu3")["managingOrganization"] == {"reference": "Organization/1"}


def test_dstu2_family_parts_become_family_and_family_repeat_extensions() -> None:
    dstu2 = {"resourceType": "Patient", "name": [{"family": ["du", "Marché"], "given": ["B"]}]}
    [name] = convert(dstu2, "dstu2", "stu3")["name"]
    assert name["family"] == "du"
    assert name["extension"] == [
        {
            "url": "http://hl7.org/fhir/StructureDefinition/HumanName-familyRepeat",
            "valueString": "Marché",
        }
    ]
    assert convert(convert(dstu2, "dstu2", "r4"), "r4", "dstu2") == dstu2


def test_first_family_part_keeps_its_primitive_extension() -> None:
    qualifier = {"extension": [{"url": "urn:q", "valueCode": "VV"}]}
    dstu2 = {
        "resourceType": "Patient",
        "name": [{"family": ["du", "Marché"], "_family": [qualifier, None]}],
    }
    assert convert(dstu2, "dstu2", "stu3")["name"][0]["_family"] == qualifier
    assert convert(convert(dstu2, "dstu2", "stu3"), "stu3", "dstu2") == dstu2


def test_contact_relationship_codes_are_copied_unchanged() -> None:
    relationship = [{"coding": [{"system": "http://hl7.org/fhir/v2/0131", "code": "N"}]}]
    stu3 = {"resourceType": "Patient", "contact": [{"relationship": relationship}]}
    assert convert(stu3, "stu3", "dstu2")["contact"][0]["relationship"] == relationship


def test_r4_meta_source_and_profile_are_dropped_before_r4() -> None:
    r4 = {
        "resourceType": "Patient",
        "meta": {"source": "urn:src", "profile": ["http://x/StructureDefinition/p"]},
    }
    assert "meta" not in convert(r4, "r4", "stu3")
