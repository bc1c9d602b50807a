"""AllergyIntolerance across R4, STU3 and DSTU2: fixtures, the fields the Patients app reads,
round trips and every decision in docs/conversion/allergy_intolerance.md.
Section numbers (§) refer to docs/conversion/mapping.md."""

from __future__ import annotations

import string
from typing import Any

import fhir.resources.STU3 as stu3_models
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.fhir.convert import convert
from tests.support.dstu2 import CODEABLE_CONCEPT, REFERENCE, Shape, assert_dstu2
from tests.support.fixtures import VERSIONS, XVER_DSTU2, XVER_R4, XVER_STU3, fixtures_of
from tests.unit.convert.checks import assert_valid, extension_values

CLINICAL_R4 = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
VERIFICATION_R4 = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
DATA_ABSENT = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
CERTAINTY = "http://hl7.org/fhir/AllergyIntolerance-r2-certainty"
SUPPLIED = {"extension": [{"url": DATA_ABSENT, "valueCode": "unknown"}]}
DISPLAY = {
    "active": "Active",
    "inactive": "Inactive",
    "resolved": "Resolved",
    "unconfirmed": "Unconfirmed",
    "confirmed": "Confirmed",
    "refuted": "Refuted",
    "entered-in-error": "Entered in Error",
}

# DSTU2 (1.0.2) shapes, from the DSTU2 AllergyIntolerance examples and §7.1.
ANNOTATION = Shape(
    frozenset({"authorReference", "authorString", "time", "text"}),
    required=frozenset({"text"}),
    nested={"authorReference": REFERENCE},
)
ALLERGY = Shape(
    allowed=frozenset(
        {"identifier", "onset", "recordedDate", "recorder", "patient", "reporter", "substance"}
        | {"status", "criticality", "type", "category", "lastOccurence", "note", "reaction"}
    ),
    required=frozenset({"patient", "substance"}),
    nested={
        "recorder": REFERENCE,
        "patient": REFERENCE,
        "reporter": REFERENCE,
        "substance": CODEABLE_CONCEPT,
        "note": ANNOTATION,
        "reaction": Shape(
            frozenset({"substance", "certainty", "manifestation", "description", "onset"})
            | {"severity", "exposureRoute", "note"},
            required=frozenset({"manifestation"}),
            nested={
                "substance": CODEABLE_CONCEPT,
                "manifestation": CODEABLE_CONCEPT,
                "exposureRoute": CODEABLE_CONCEPT,
                "note": ANNOTATION,
            },
            lists=frozenset({"manifestation"}),
        ),
    },
    lists=frozenset({"identifier", "reaction"}),
)
DSTU2_CODES = {
    "status": {"active", "unconfirmed", "confirmed", "inactive", "resolved", "refuted"}
    | {"entered-in-error"},
    "criticality": {"CRITL", "CRITH", "CRITU"},
    "type": {"allergy", "intolerance"},
    "category": {"food", "medication", "environment", "other"},
}


def check_dstu2(resource: dict[str, Any]) -> None:
    """The DSTU2 shape, one note and the DSTU2 codes."""
    assert_dstu2(resource, ALLERGY)
    assert not isinstance(resource.get("note"), list), "DSTU2 note is one Annotation"
    for key, codes in DSTU2_CODES.items():
        assert resource.get(key, "active") in codes | {"active"}, key
    for reaction in resource.get("reaction", []):
        assert not isinstance(reaction.get("note"), list)
        assert reaction.get("certainty", "likely") in {"unlikely", "likely", "confirmed"}


ALLERGY_FIXTURES = fixtures_of("AllergyIntolerance")


def test_every_version_has_allergy_fixtures() -> None:
    assert {param.values[0] for param in ALLERGY_FIXTURES} == set(VERSIONS)


@pytest.mark.parametrize(("source", "target", "allergy"), ALLERGY_FIXTURES)
def test_fixture_converts_into_a_valid_allergy_intolerance_of_every_other_version(
    source: str, target: str, allergy: dict[str, Any]
) -> None:
    assert_valid(convert(allergy, source, target), target, "AllergyIntolerance", check_dstu2)


# -- the fields the Patients app reads (§1, §7.4) ----------------------------------------------

DIV = '<div xmlns="http://www.w3.org/1999/xhtml">Cashew nuts: anaphylaxis</div>'
R4_ALLERGY: dict[str, Any] = {
    "resourceType": "AllergyIntolerance",
    "id": "a1",
    "text": {"status": "generated", "div": DIV},
    "clinicalStatus": {"coding": [{"system": CLINICAL_R4, "code": "active"}]},
    "verificationStatus": {"coding": [{"system": VERIFICATION_R4, "code": "confirmed"}]},
    "code": {
        "coding": [{"system": "http://snomed.info/sct", "code": "227493005", "display": "Cashew"}],
        "text": "Cashew nuts",
    },
    "patient": {"reference": "Patient/p1"},
    "recordedDate": "2014-10-09T14:58:00+11:00",
    "note": [{"text": "Severe reaction to 1/8 cashew"}],
    "reaction": [
        {
            "substance": {"text": "cashew nut extract"},
            "manifestation": [{"text": "Anaphylaxis"}, {"text": "Urticaria"}],
        }
    ],
}


def test_code_text_and_first_coding_display_reach_stu3() -> None:
    code = convert(R4_ALLERGY, "r4", "stu3")["code"]
    assert (code["text"], code["coding"][0]["display"]) == ("Cashew nuts", "Cashew")


def test_code_becomes_substance_with_its_text_and_display_in_dstu2() -> None:
    allergy = convert(R4_ALLERGY, "r4", "dstu2")
    assert "code" not in allergy
    assert allergy["substance"]["text"] == "Cashew nuts"
    assert allergy["substance"]["coding"][0]["display"] == "Cashew"


def test_clinical_and_verification_status_reach_stu3_as_codes() -> None:
    allergy = convert(R4_ALLERGY, "r4", "stu3")
    assert (allergy["clinicalStatus"], allergy["verificationStatus"]) == ("active", "confirmed")


def test_active_and_confirmed_become_status_confirmed_in_dstu2() -> None:
    allergy = convert(R4_ALLERGY, "r4", "dstu2")
    assert allergy["status"] == "confirmed"
    assert "clinicalStatus" not in allergy
    assert "verificationStatus" not in allergy


def test_recorded_date_becomes_asserted_date_in_stu3() -> None:
    allergy = convert(R4_ALLERGY, "r4", "stu3")
    assert allergy["assertedDate"] == "2014-10-09T14:58:00+11:00"
    assert "recordedDate" not in allergy


def test_recorded_date_keeps_its_name_in_dstu2() -> None:
    assert convert(R4_ALLERGY, "r4", "dstu2")["recordedDate"] == "2014-10-09T14:58:00+11:00"


def test_note_text_reaches_stu3() -> None:
    assert convert(R4_ALLERGY, "r4", "stu3")["note"] == [{"text": "Severe reaction to 1/8 cashew"}]


def test_note_is_a_single_annotation_with_its_text_in_dstu2() -> None:
    assert convert(R4_ALLERGY, "r4", "dstu2")["note"] == {"text": "Severe reaction to 1/8 cashew"}


@pytest.mark.parametrize("target", ["stu3", "dstu2"])
def test_reaction_substance_and_manifestation_texts_reach_the_app(target: str) -> None:
    reaction = convert(R4_ALLERGY, "r4", target)["reaction"][0]
    assert reaction["substance"]["text"] == "cashew nut extract"
    assert [m["text"] for m in reaction["manifestation"]] == ["Anaphylaxis", "Urticaria"]


@pytest.mark.parametrize("target", ["stu3", "dstu2"])
def test_narrative_div_reaches_the_app(target: str) -> None:
    assert convert(R4_ALLERGY, "r4", target)["text"] == {"status": "generated", "div": DIV}


# -- round trips over generated R4 AllergyIntolerances ----------------------------------------

_text = st.text(alphabet=string.ascii_letters + "éü'", min_size=1, max_size=12)
_id = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=8)
_date_time = st.builds(
    "{}T{:02d}:{:02d}:00+01:00".format,
    st.dates().map(lambda d: d.isoformat() if d.year > 999 else "1999-01-01"),
    st.integers(0, 23),
    st.integers(0, 59),
)
_concepts = st.fixed_dictionaries(
    {},
    optional={
        "text": _text,
        "coding": st.lists(
            st.fixed_dictionaries(
                {"system": st.just("http://snomed.info/sct"), "code": _id, "display": _text}
            ),
            min_size=1,
            max_size=2,
        ),
    },
).filter(bool)
_status = st.one_of(
    st.tuples(
        st.sampled_from(["active", "inactive", "resolved"]),
        st.sampled_from([None, "unconfirmed", "confirmed", "refuted"]),
    ),
    # ait-1/ait-2 (§7.3): entered-in-error goes without a clinical status.
    st.just((None, "entered-in-error")),
)
_references = st.builds(
    lambda kind, ident, display: {"reference": f"{kind}/{ident}", "display": display},
    st.sampled_from(["Practitioner", "PractitionerRole", "Patient", "RelatedPerson"]),
    _id,
    _text,
)
_reactions = st.fixed_dictionaries(
    {"manifestation": st.lists(_concepts, min_size=1, max_size=2)},
    optional={
        "substance": _concepts,
        "severity": st.sampled_from(["mild", "moderate", "severe"]),
        "note": st.lists(st.fixed_dictionaries({"text": _text}), min_size=1, max_size=2),
        "onset": _date_time,
    },
)
_onsets = st.one_of(
    st.builds(lambda v: {"onsetDateTime": v}, _date_time),
    st.builds(lambda v: {"onsetPeriod": {"start": v}}, _date_time),
    st.builds(
        lambda v: {"onsetAge": {"value": v, "system": "http://unitsofmeasure.org", "code": "a"}},
        st.integers(1, 90),
    ),
    st.builds(lambda v: {"onsetString": v}, _text),
    st.just({}),
)
_allergies = st.builds(
    lambda status, onset, base: _allergy(status, onset, base),
    _status,
    _onsets,
    st.fixed_dictionaries(
        {"resourceType": st.just("AllergyIntolerance")},
        optional={
            "id": _id,
            "text": st.just({"status": "generated", "div": DIV}),
            "code": _concepts,
            "recordedDate": _date_time,
            "note": st.lists(st.fixed_dictionaries({"text": _text}), min_size=1, max_size=3),
            "reaction": st.lists(_reactions, min_size=1, max_size=2),
            "category": st.lists(
                st.sampled_from(["food", "medication", "environment", "biologic"]),
                min_size=1,
                max_size=2,
                unique=True,
            ),
            "criticality": st.sampled_from(["low", "high", "unable-to-assess"]),
            "type": st.sampled_from(["allergy", "intolerance"]),
            "encounter": st.builds("Encounter/{}".format, _id).map(lambda r: {"reference": r}),
            "recorder": _references,
            "asserter": _references,
            "lastOccurrence": _date_time,
        },
    ),
)


def _allergy(status: tuple[str | None, str | None], onset: dict[str, Any], base: Any) -> Any:
    allergy = {**base, **onset, "patient": {"reference": "Patient/p1"}}
    for key, system, code in (
        ("clinicalStatus", CLINICAL_R4, status[0]),
        ("verificationStatus", VERIFICATION_R4, status[1]),
    ):
        if code:
            allergy[key] = {"coding": [{"system": system, "code": code, "display": DISPLAY[code]}]}
    return allergy


def app_fields(allergy: dict[str, Any]) -> dict[str, Any]:
    """What the Patients app reads of an R4 AllergyIntolerance, in R4 terms (§1, §7.4)."""
    return {
        key: allergy.get(key)
        for key in ("text", "code", "clinicalStatus", "verificationStatus", "recordedDate")
    } | {
        "note": [note.get("text") for note in allergy.get("note", [])],
        "reaction": [
            (r.get("substance"), r.get("manifestation")) for r in allergy.get("reaction", [])
        ],
    }


@settings(max_examples=50, deadline=None)
@given(allergy=_allergies, target=st.sampled_from(["stu3", "dstu2"]))
def test_r4_allergy_survives_a_round_trip_through_an_older_version(
    allergy: dict[str, Any], target: str
) -> None:
    assert_valid(allergy, "r4", "AllergyIntolerance", check_dstu2)  # the strategy makes valid R4
    older = convert(allergy, "r4", target)
    assert_valid(older, target, "AllergyIntolerance", check_dstu2)
    back = convert(older, target, "r4")
    assert app_fields(back) == app_fields(allergy)
    assert back == allergy  # everything else is carried as well


# -- R4 → STU3 ---------------------------------------------------------------------------------


def _r4(**elements: Any) -> dict[str, Any]:
    return {
        "resourceType": "AllergyIntolerance",
        "patient": {"reference": "Patient/p1"},
        **elements,
    }


def _status_concept(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}], "text": "status text"}


@pytest.mark.parametrize(
    "system",
    [CLINICAL_R4, "http://hl7.org/fhir/allergy-clinical-status", None],
    ids=["r4-uri", "stu3-uri", "no-system"],
)
def test_clinical_status_code_is_taken_from_either_system_spelling(system: str | None) -> None:
    coding = {"code": "resolved"} | ({"system": system} if system else {})
    allergy = convert(_r4(clinicalStatus={"coding": [coding]}), "r4", "stu3")
    assert allergy["clinicalStatus"] == "resolved"


def test_status_text_and_codes_of_other_systems_are_dropped_before_r4() -> None:
    concept = _status_concept(VERIFICATION_R4, "confirmed")
    concept["coding"].insert(0, {"system": "http://example.org/local", "code": "C"})
    allergy = convert(_r4(verificationStatus=concept), "r4", "stu3")
    assert allergy["verificationStatus"] == "confirmed"


def test_missing_verification_status_has_no_stu3_value_only_the_marker() -> None:
    """Issue 15 item 4. Input: an active R4 allergy without verificationStatus (R4 0..1).
    Expected: STU3 has no verificationStatus value, only ``_verificationStatus`` with
    data-absent-reason ``unknown`` (STU3 1..1 is met by the marked primitive); before, the app
    showed ``unconfirmed``, inviting a clinician to discount a real allergy. HL7's R4→R3
    AllergyIntolerance map copies verificationStatus only when present."""
    status = {"coding": [{"system": CLINICAL_R4, "code": "active"}]}
    allergy = convert(_r4(clinicalStatus=status), "r4", "stu3")
    assert "verificationStatus" not in allergy
    assert allergy["_verificationStatus"] == SUPPLIED
    stu3_models.get_fhir_model_class("AllergyIntolerance").model_validate(allergy)


def test_marked_verification_status_is_dropped_on_the_way_back_to_r4() -> None:
    stu3 = _r4(clinicalStatus="active")
    stu3["_verificationStatus"] = SUPPLIED
    assert "verificationStatus" not in convert(stu3, "stu3", "r4")


def test_an_earlier_marked_unconfirmed_is_still_read_as_no_verification() -> None:
    stu3 = _r4(clinicalStatus="active", verificationStatus="unconfirmed")
    stu3["_verificationStatus"] = SUPPLIED
    assert "verificationStatus" not in convert(stu3, "stu3", "r4")
    assert convert(stu3, "stu3", "dstu2")["status"] == "active"


@pytest.mark.parametrize("key", ["clinicalStatus", "verificationStatus"])
def test_a_status_stu3_cannot_read_rides_along_and_comes_back(key: str) -> None:
    """Issue 15 item 9. Input: an R4 status concept with only a local coding and text.
    Expected: no STU3 code (none can be read), the R4 concept carried in
    4.0/extension-AllergyIntolerance.<key>, restored in R4; before, it was dropped silently."""
    concept = {"coding": [{"system": "http://example.org/local", "code": "A"}], "text": "Active"}
    r4 = _r4(**{key: concept})
    if key == "verificationStatus":
        active = {"system": CLINICAL_R4, "code": "active", "display": "Active"}
        r4["clinicalStatus"] = {"coding": [active]}
    stu3 = convert(r4, "r4", "stu3")
    assert extension_values(stu3, XVER_R4 + f"AllergyIntolerance.{key}") == [concept]
    assert convert(stu3, "stu3", "r4") == r4
    assert convert(convert(r4, "r4", "dstu2"), "dstu2", "r4") == r4


def test_encounter_is_carried_in_an_extension_before_r4() -> None:
    allergy = convert(_r4(encounter={"reference": "Encounter/e1"}), "r4", "stu3")
    assert "encounter" not in allergy
    assert extension_values(allergy, XVER_R4 + "AllergyIntolerance.encounter") == [
        {"reference": "Encounter/e1"}
    ]


@pytest.mark.parametrize(
    ("element", "kind"),
    [
        ("recorder", "PractitionerRole"),
        ("recorder", "RelatedPerson"),
        ("asserter", "PractitionerRole"),
    ],
)
def test_references_to_types_stu3_does_not_allow_keep_only_display(element: str, kind: str) -> None:
    reference = {"reference": f"{kind}/r1", "display": "Dr Careful"}
    allergy = convert(_r4(**{element: reference}), "r4", "stu3")
    assert allergy[element]["display"] == "Dr Careful"
    assert "reference" not in allergy[element]
    assert convert(allergy, "stu3", "r4")[element] == reference


# -- STU3 → R4 ---------------------------------------------------------------------------------


def test_stu3_status_codes_become_r4_concepts_with_the_official_display() -> None:
    allergy = convert(
        _r4(clinicalStatus="inactive", verificationStatus="entered-in-error"), "stu3", "r4"
    )
    assert allergy["clinicalStatus"] == {
        "coding": [{"system": CLINICAL_R4, "code": "inactive", "display": "Inactive"}]
    }
    assert allergy["verificationStatus"]["coding"][0]["display"] == "Entered in Error"


def test_unknown_stu3_status_code_is_not_an_r4_status_but_rides_along() -> None:
    stu3 = _r4(clinicalStatus="confirmed", verificationStatus="confirmed")
    allergy = convert(stu3, "stu3", "r4")
    assert "clinicalStatus" not in allergy
    assert extension_values(allergy, XVER_STU3 + "AllergyIntolerance.clinicalStatus") == [
        "confirmed"
    ]
    assert convert(allergy, "r4", "stu3") == stu3


def test_a_dstu2_status_stu3_cannot_read_rides_along() -> None:
    dstu2 = _dstu2(status="bogus")
    stu3 = convert(dstu2, "dstu2", "stu3")
    assert extension_values(stu3, XVER_DSTU2 + "AllergyIntolerance.status") == ["bogus"]
    assert convert(stu3, "stu3", "dstu2") == dstu2


# -- STU3 → DSTU2 ------------------------------------------------------------------------------

# §7.2, evaluated in order; the last two rows are the proxy's precedence.
STATUS_PRECEDENCE = [
    ("active", "entered-in-error", "entered-in-error"),
    (None, "entered-in-error", "entered-in-error"),
    ("active", "refuted", "refuted"),
    ("resolved", "refuted", "refuted"),
    ("resolved", "confirmed", "resolved"),
    ("inactive", "unconfirmed", "inactive"),
    ("active", "confirmed", "confirmed"),
    ("active", "unconfirmed", "unconfirmed"),
    ("active", None, "active"),
    (None, None, None),
]


@pytest.mark.parametrize(("clinical", "verification", "status"), STATUS_PRECEDENCE)
def test_dstu2_status_follows_the_precedence_of_mapping_doc_7_2(
    clinical: str | None, verification: str | None, status: str | None
) -> None:
    r4 = _r4()
    if clinical:
        r4["clinicalStatus"] = {"coding": [{"system": CLINICAL_R4, "code": clinical}]}
    if verification:
        r4["verificationStatus"] = {"coding": [{"system": VERIFICATION_R4, "code": verification}]}
    assert convert(r4, "r4", "dstu2").get("status") == status


def test_status_codes_the_single_dstu2_status_cannot_say_ride_along() -> None:
    stu3 = _r4(clinicalStatus="inactive", verificationStatus="confirmed")
    dstu2 = convert(stu3, "stu3", "dstu2")
    assert dstu2["status"] == "inactive"
    assert extension_values(dstu2, XVER_STU3 + "AllergyIntolerance.verificationStatus") == [
        "confirmed"
    ]
    back = convert(dstu2, "dstu2", "stu3")
    assert (back["clinicalStatus"], back["verificationStatus"]) == ("inactive", "confirmed")


def test_missing_code_becomes_a_marked_unknown_substance_in_dstu2() -> None:
    dstu2 = convert(_r4(), "r4", "dstu2")
    assert dstu2["substance"] == {**SUPPLIED, "text": "Unknown"}
    assert "code" not in convert(dstu2, "dstu2", "r4")


def test_onset_date_time_becomes_onset_in_dstu2() -> None:
    dstu2 = convert(_r4(onsetDateTime="2004"), "r4", "dstu2")
    assert dstu2["onset"] == "2004"
    assert "extension" not in dstu2


def test_onset_period_start_becomes_onset_and_the_period_rides_along() -> None:
    period = {"start": "2004-01-01", "end": "2005-01-01"}
    dstu2 = convert(_r4(onsetPeriod=period), "r4", "dstu2")
    assert dstu2["onset"] == "2004-01-01"
    assert extension_values(dstu2, XVER_STU3 + "AllergyIntolerance.onset") == [period]
    assert convert(dstu2, "dstu2", "r4")["onsetPeriod"] == period


@pytest.mark.parametrize(
    ("element", "value", "value_key"),
    [
        ("onsetAge", {"value": 4, "code": "a"}, "valueQuantity"),
        ("onsetRange", {"low": {"value": 4}}, "valueRange"),
        ("onsetString", "childhood", "valueString"),
    ],
)
def test_onset_types_dstu2_lacks_ride_along(element: str, value: Any, value_key: str) -> None:
    dstu2 = convert(_r4(**{element: value}), "r4", "dstu2")
    assert "onset" not in dstu2
    assert dstu2["extension"] == [{"url": XVER_STU3 + "AllergyIntolerance.onset", value_key: value}]
    assert convert(dstu2, "dstu2", "r4")[element] == value


def test_first_category_is_the_dstu2_category_and_the_others_ride_along() -> None:
    dstu2 = convert(_r4(category=["medication", "food"]), "r4", "dstu2")
    assert dstu2["category"] == "medication"
    assert extension_values(dstu2, XVER_STU3 + "AllergyIntolerance.category") == ["food"]
    assert convert(dstu2, "dstu2", "r4")["category"] == ["medication", "food"]


def test_biologic_is_other_in_dstu2() -> None:
    dstu2 = convert(_r4(category=["biologic"]), "r4", "dstu2")
    assert dstu2["category"] == "other"
    assert convert(dstu2, "dstu2", "r4")["category"] == ["biologic"]


@pytest.mark.parametrize(
    ("stu3", "dstu2"), [("low", "CRITL"), ("high", "CRITH"), ("unable-to-assess", "CRITU")]
)
def test_criticality_codes_follow_the_official_concept_map(stu3: str, dstu2: str) -> None:
    assert convert(_r4(criticality=stu3), "r4", "dstu2")["criticality"] == dstu2
    assert convert(_r4(criticality=dstu2), "dstu2", "r4")["criticality"] == stu3


def test_asserter_is_reporter_and_last_occurrence_is_spelled_last_occurence_in_dstu2() -> None:
    dstu2 = convert(
        _r4(asserter={"reference": "Patient/p1"}, lastOccurrence="2012-06"), "r4", "dstu2"
    )
    assert (dstu2["reporter"], dstu2["lastOccurence"]) == ({"reference": "Patient/p1"}, "2012-06")
    assert "asserter" not in dstu2
    assert "lastOccurrence" not in dstu2


def test_first_note_is_the_dstu2_note_and_the_others_ride_along() -> None:
    notes = [{"text": "first"}, {"text": "second", "time": "2020-01-01"}]
    dstu2 = convert(_r4(note=notes), "r4", "dstu2")
    assert dstu2["note"] == {"text": "first"}
    assert extension_values(dstu2, XVER_STU3 + "AllergyIntolerance.note") == [notes[1]]
    assert convert(dstu2, "dstu2", "r4")["note"] == notes


def test_first_reaction_note_is_the_dstu2_reaction_note_and_the_others_ride_along() -> None:
    notes = [{"text": "first"}, {"text": "second"}]
    reaction = {"manifestation": [{"text": "Hives"}], "note": notes}
    dstu2 = convert(_r4(reaction=[reaction]), "r4", "dstu2")["reaction"][0]
    assert dstu2["note"] == {"text": "first"}
    assert extension_values(dstu2, XVER_STU3 + "AllergyIntolerance.reaction.note") == [notes[1]]


@pytest.mark.parametrize("value_key", ["valueCode", "valueString"])
def test_r2_certainty_extension_becomes_reaction_certainty_in_dstu2(value_key: str) -> None:
    reaction = {
        "manifestation": [{"text": "Hives"}],
        "extension": [{"url": CERTAINTY, value_key: "likely"}],
    }
    dstu2 = convert(_r4(reaction=[reaction]), "r4", "dstu2")["reaction"][0]
    assert dstu2 == {"manifestation": [{"text": "Hives"}], "certainty": "likely"}


# -- DSTU2 → STU3 ------------------------------------------------------------------------------


def _dstu2(**elements: Any) -> dict[str, Any]:
    return {
        "resourceType": "AllergyIntolerance",
        "patient": {"reference": "Patient/p1"},
        "substance": {"text": "Penicillin"},
        **elements,
    }


# The official R2→R3 ConceptMaps (§7.2); no verification status means the supplied marker.
DSTU2_STATUS = [
    ("active", "active", None),
    ("confirmed", "active", "confirmed"),
    ("unconfirmed", None, "unconfirmed"),
    ("inactive", "inactive", None),
    ("resolved", "resolved", None),
    ("refuted", None, "refuted"),
    ("entered-in-error", None, "entered-in-error"),
]


@pytest.mark.parametrize(("status", "clinical", "verification"), DSTU2_STATUS)
def test_dstu2_status_maps_to_both_status_codes_by_the_official_concept_maps(
    status: str, clinical: str | None, verification: str | None
) -> None:
    stu3 = convert(_dstu2(status=status), "dstu2", "stu3")
    assert stu3.get("clinicalStatus") == clinical
    assert stu3.get("verificationStatus") == verification
    assert ("_verificationStatus" in stu3) == (verification is None)


def test_dstu2_confirmed_is_never_a_clinical_status_in_r4() -> None:
    """HAPI copies `confirmed` into both CodeableConcepts (§15, hapi 0_allergy_intolerance_40)."""
    r4 = convert(_dstu2(status="confirmed"), "dstu2", "r4")
    assert r4["clinicalStatus"]["coding"][0]["code"] == "active"
    assert r4["verificationStatus"]["coding"][0]["code"] == "confirmed"


def test_substance_becomes_code() -> None:
    stu3 = convert(_dstu2(), "dstu2", "stu3")
    assert stu3["code"] == {"text": "Penicillin"}
    assert "substance" not in stu3


def test_reaction_certainty_becomes_the_r2_certainty_extension() -> None:
    reaction = {"manifestation": [{"text": "Hives"}], "certainty": "confirmed"}
    stu3 = convert(_dstu2(reaction=[reaction]), "dstu2", "stu3")["reaction"][0]
    assert stu3["extension"] == [{"url": CERTAINTY, "valueCode": "confirmed"}]
    assert "certainty" not in stu3


def test_stu3_criticality_codes_in_dstu2_input_are_accepted() -> None:
    """Synthea's DSTU2 export writes `low` where DSTU2 says `CRITL`."""
    assert convert(_dstu2(criticality="low"), "dstu2", "stu3")["criticality"] == "low"


def test_dstu2_onset_becomes_onset_date_time() -> None:
    assert convert(_dstu2(onset="2012-11-07"), "dstu2", "stu3")["onsetDateTime"] == "2012-11-07"


def test_dstu2_names_become_stu3_names() -> None:
    stu3 = convert(
        _dstu2(recordedDate="2015", reporter={"reference": "Patient/p1"}, lastOccurence="2016"),
        "dstu2",
        "stu3",
    )
    assert (stu3["assertedDate"], stu3["lastOccurrence"]) == ("2015", "2016")
    assert stu3["asserter"] == {"reference": "Patient/p1"}


def test_dstu2_note_becomes_a_list() -> None:
    assert convert(_dstu2(note={"text": "n"}), "dstu2", "stu3")["note"] == [{"text": "n"}]


# -- input repairs (every step) ----------------------------------------------------------------


def test_zoneless_date_times_are_cut_to_their_date() -> None:
    """Epic's DSTU2 data (hapi 0_allergy_intolerance_10) writes times without a zone."""
    stu3 = convert(_dstu2(recordedDate="2015-08-25T02:11:36"), "dstu2", "stu3")
    assert stu3["assertedDate"] == "2015-08-25"


def test_narrative_without_div_is_dropped() -> None:
    assert "text" not in convert(_r4(text={"status": "generated"}), "r4", "stu3")


def test_contained_resources_convert_through_their_modules_or_are_dropped() -> None:
    contained = [
        {"resourceType": "Medication", "id": "m", "code": {"text": "x"}, "isBrand": True},
        {"resourceType": "Provenance", "id": "p", "recorded": "2020-01-01T00:00:00Z"},
        {"resourceType": "Practitioner", "id": "d", "name": [{"family": "Careful"}]},
    ]
    dstu2 = convert(_r4(contained=contained), "r4", "dstu2")
    medication, practitioner = dstu2["contained"]  # Provenance has no converter: dropped
    assert (medication["resourceType"], medication["code"]) == ("Medication", {"text": "x"})
    assert practitioner == {
        "resourceType": "Practitioner",
        "id": "d",
        "name": {"family": ["Careful"]},
    }
