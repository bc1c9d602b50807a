"""Condition across R4, STU3 and DSTU2: fixtures, the fields the Patients app reads, round
trips and every decision in docs/conversion/condition.md.
Section numbers (§) refer to docs/conversion/mapping.md."""

from __future__ import annotations

import copy
import string
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.fhir.convert import convert
from tests.support.dstu2 import REFERENCE, Shape, assert_dstu2
from tests.support.fixtures import VERSIONS, XVER_R4, XVER_STU3, fixtures_of, hl7_example
from tests.unit.convert.checks import assert_valid, extension_values

SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
CLINICAL_R4 = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CLINICAL_OLD = "http://hl7.org/fhir/condition-clinical"
VERIFICATION_R4 = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CATEGORY_R4 = "http://terminology.hl7.org/CodeSystem/condition-category"
CATEGORY_OLD = "http://hl7.org/fhir/condition-category"
ABSENT = {
    "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
    "valueCode": "unknown",
}

# DSTU2 (1.0.2) shapes, from the DSTU2 Condition examples and §5.1.
CONDITION = Shape(
    allowed=frozenset(
        {
            "identifier",
            "patient",
            "encounter",
            "asserter",
            "dateRecorded",
            "code",
            "category",
            "clinicalStatus",
            "verificationStatus",
            "severity",
            "stage",
            "evidence",
            "bodySite",
            "notes",
        }
        | {f"onset{t}" for t in ("DateTime", "Quantity", "Period", "Range", "String")}
        | {
            f"abatement{t}"
            for t in ("DateTime", "Quantity", "Boolean", "Period", "Range", "String")
        }
    ),
    required=frozenset({"patient", "code", "verificationStatus"}),
    nested={
        "patient": REFERENCE,
        "encounter": REFERENCE,
        "asserter": REFERENCE,
        "stage": Shape(
            frozenset({"summary", "assessment"}),
            nested={"assessment": REFERENCE},
            lists=frozenset({"assessment"}),
        ),
        "evidence": Shape(
            frozenset({"code", "detail"}),
            nested={"detail": REFERENCE},
            lists=frozenset({"detail"}),
        ),
    },
    lists=frozenset({"identifier", "evidence", "bodySite"}),
)
DSTU2_SINGLE = ("category", "stage", "notes", "code", "severity")
DSTU2_CLINICAL = {"active", "relapse", "remission", "resolved"}
DSTU2_VERIFICATION = {
    "provisional",
    "differential",
    "confirmed",
    "refuted",
    "entered-in-error",
    "unknown",
}


def check_dstu2(resource: dict[str, Any]) -> None:
    """The DSTU2 shape, its 0..1 elements, status codes and a date for dateRecorded."""
    assert_dstu2(resource, CONDITION)
    for key in DSTU2_SINGLE:
        assert not isinstance(resource.get(key), list), f"{key} is 0..1 in DSTU2"
    assert resource.get("clinicalStatus", "active") in DSTU2_CLINICAL
    assert resource["verificationStatus"] in DSTU2_VERIFICATION
    assert len(resource.get("dateRecorded", "")) <= 10, "dateRecorded is a date in DSTU2"


CONDITION_FIXTURES = fixtures_of("Condition")


def test_every_version_has_condition_fixtures() -> None:
    assert {param.values[0] for param in CONDITION_FIXTURES} == set(VERSIONS)
    assert len(CONDITION_FIXTURES) == 2 * 77  # HL7 examples 3 per version, Synthea 24 + 24 + 20


@pytest.mark.parametrize(("source", "target", "condition"), CONDITION_FIXTURES)
def test_fixture_converts_into_a_valid_condition_of_every_other_version(
    source: str, target: str, condition: dict[str, Any]
) -> None:
    assert_valid(convert(condition, source, target), target, "Condition", check_dstu2)


# -- the fields the Patients app reads (§1, §5.3) ----------------------------------------------


def clinical(code: str, system: str = CLINICAL_R4) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def verification(code: str) -> dict[str, Any]:
    return {"coding": [{"system": VERIFICATION_R4, "code": code}]}


def snomed(code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": SNOMED, "code": code, "display": display}]}


R4_CONDITION: dict[str, Any] = {
    "resourceType": "Condition",
    "id": "c1",
    "clinicalStatus": clinical("active"),
    "verificationStatus": verification("confirmed"),
    "category": [{"coding": [{"system": CATEGORY_R4, "code": "problem-list-item"}]}],
    "severity": snomed("24484000", "Severe"),
    "code": snomed("386661006", "Fever"),
    "subject": {"reference": "Patient/p1", "display": "Peter"},
    "recordedDate": "2024-04-04",
}
OLDER = pytest.mark.parametrize("target", ["stu3", "dstu2"])


def r4(**changes: Any) -> dict[str, Any]:
    """A copy of the R4 example with top-level elements replaced (None removes one)."""
    out = copy.deepcopy(R4_CONDITION)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


@OLDER
def test_code_coding_display_reaches_the_app(target: str) -> None:
    assert convert(R4_CONDITION, "r4", target)["code"]["coding"][0]["display"] == "Fever"


def test_recorded_date_becomes_asserted_date_in_stu3() -> None:
    condition = convert(R4_CONDITION, "r4", "stu3")
    assert condition["assertedDate"] == "2024-04-04"
    assert "recordedDate" not in condition


def test_recorded_date_becomes_date_recorded_in_dstu2() -> None:
    condition = convert(R4_CONDITION, "r4", "dstu2")
    assert condition["dateRecorded"] == "2024-04-04"
    assert "recordedDate" not in condition


@OLDER
def test_severity_reaches_the_app(target: str) -> None:
    assert convert(R4_CONDITION, "r4", target)["severity"] == snomed("24484000", "Severe")


@OLDER
def test_clinical_and_verification_status_become_codes_before_r4(target: str) -> None:
    condition = convert(R4_CONDITION, "r4", target)
    assert (condition["clinicalStatus"], condition["verificationStatus"]) == ("active", "confirmed")


# -- round trips over generated R4 Conditions --------------------------------------------------

_text = st.text(alphabet=string.ascii_letters + " éü'", min_size=1, max_size=12)
_id = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=8)
_zones = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))])
_date_time = st.one_of(
    st.dates(date(1990, 1, 1), date(2030, 12, 31)).map(date.isoformat),
    st.datetimes(datetime(1990, 1, 1), datetime(2030, 12, 31), timezones=_zones).map(
        lambda moment: moment.isoformat(timespec="seconds")
    ),
)
_snomed = st.builds(snomed, st.sampled_from(["386661006", "44054006", "195662009"]), _text)
_categories = st.lists(
    st.sampled_from(["problem-list-item", "encounter-diagnosis"]).map(
        lambda code: {"coding": [{"system": CATEGORY_R4, "code": code}]}
    ),
    min_size=1,
    max_size=2,
)
_onset = st.one_of(
    _date_time.map(lambda moment: {"onsetDateTime": moment}),
    st.integers(0, 99).map(
        lambda years: {"onsetAge": {"value": years, "unit": "a", "system": UCUM, "code": "a"}}
    ),
    _text.map(lambda text: {"onsetString": text}),
)
_notes = st.lists(
    st.fixed_dictionaries({"text": _text}, optional={"authorString": _text, "time": _date_time}),
    min_size=1,
    max_size=2,
)
_references = {
    "encounter": _id.map(lambda key: {"reference": f"Encounter/{key}"}),
    "recorder": _id.map(lambda key: {"reference": f"Practitioner/{key}"}),
    "asserter": _id.map(lambda key: {"reference": f"Patient/{key}", "display": "self"}),
}


@st.composite
def r4_conditions(draw: st.DrawFn) -> dict[str, Any]:
    """Valid R4 Conditions with the app's fields and the elements the converter carries."""
    condition: dict[str, Any] = {
        "resourceType": "Condition",
        "id": draw(_id),
        "category": draw(_categories),
        "subject": {"reference": f"Patient/{draw(_id)}", "display": draw(_text)},
        **draw(_onset),
    }
    verification_code = draw(st.none() | st.sampled_from(sorted(DSTU2_VERIFICATION - {"unknown"})))
    verification_code = verification_code or draw(st.none() | st.just("unconfirmed"))
    if verification_code:
        condition["verificationStatus"] = verification(verification_code)
    if verification_code != "entered-in-error":  # con-3, con-5: a clinical status is required
        states = ["active", "recurrence", "relapse", "inactive", "remission", "resolved"]
        condition["clinicalStatus"] = clinical(draw(st.sampled_from(states)))
    optional = {
        "code": _snomed,
        "severity": _snomed,
        "recordedDate": _date_time,
        "note": _notes,
        "stage": st.tuples(_snomed, _snomed).map(lambda s: [{"summary": s[0], "type": s[1]}]),
        "evidence": st.lists(_snomed, min_size=1, max_size=2).map(lambda c: [{"code": c}]),
        **_references,
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            condition[key] = draw(strategy)
    return condition


@pytest.mark.parametrize("middle", ["stu3", "dstu2"])
@settings(max_examples=50, deadline=None)
@given(condition=r4_conditions())
def test_r4_condition_survives_a_round_trip_through_an_older_version(
    middle: str, condition: dict[str, Any]
) -> None:
    older = convert(condition, "r4", middle)
    assert_valid(older, middle, "Condition", check_dstu2)
    back = convert(older, middle, "r4")
    assert back == condition  # every field the app reads, and everything carried


# -- R4 → STU3 ----------------------------------------------------------------------------------


def test_clinical_status_is_read_from_the_legacy_system_uri_too() -> None:
    condition = convert(r4(clinicalStatus=clinical("resolved", CLINICAL_OLD)), "r4", "stu3")
    assert condition["clinicalStatus"] == "resolved"


def test_relapse_becomes_recurrence_in_stu3_and_is_carried() -> None:
    condition = convert(r4(clinicalStatus=clinical("relapse")), "r4", "stu3")
    assert condition["clinicalStatus"] == "recurrence"
    assert extension_values(condition, XVER_R4 + "Condition.clinicalStatus") == [
        clinical("relapse", CLINICAL_OLD)
    ]


def test_relapse_reaches_dstu2_as_relapse() -> None:
    assert convert(r4(clinicalStatus=clinical("relapse")), "r4", "dstu2")["clinicalStatus"] == (
        "relapse"
    )


def test_clinical_status_without_a_clinical_coding_is_left_out_and_carried() -> None:
    status = {"text": "getting better"}
    condition = convert(r4(clinicalStatus=status), "r4", "stu3")
    assert "clinicalStatus" not in condition
    assert extension_values(condition, XVER_R4 + "Condition.clinicalStatus") == [status]


@OLDER
def test_unconfirmed_becomes_provisional_before_r4_and_is_carried(target: str) -> None:
    condition = convert(r4(verificationStatus=verification("unconfirmed")), "r4", target)
    assert condition["verificationStatus"] == "provisional"
    url = XVER_R4 + "Condition.verificationStatus"
    assert [c["coding"][0]["code"] for c in extension_values(condition, url)] == ["unconfirmed"]


def test_encounter_becomes_context_in_stu3_and_stays_encounter_in_dstu2() -> None:
    source = r4(encounter={"reference": "Encounter/e"})
    assert convert(source, "r4", "stu3")["context"] == {"reference": "Encounter/e"}
    assert convert(source, "r4", "dstu2")["encounter"] == {"reference": "Encounter/e"}


@OLDER
def test_recorder_is_carried_before_r4(target: str) -> None:
    condition = convert(r4(recorder={"reference": "Practitioner/x"}), "r4", target)
    assert "recorder" not in condition
    assert extension_values(condition, XVER_R4 + "Condition.recorder") == [
        {"reference": "Practitioner/x"}
    ]


def test_practitioner_role_asserter_keeps_only_display_in_stu3() -> None:
    asserter = {"reference": "PractitionerRole/r", "display": "GP"}
    condition = convert(r4(asserter=asserter), "r4", "stu3")
    assert condition["asserter"] == {
        "display": "GP",
        "extension": [
            {"url": XVER_R4 + "Reference.reference", "valueString": "PractitionerRole/r"}
        ],
    }


def test_further_stages_ride_along_and_come_back() -> None:
    """Issue 15 item 9. Input: an R4 Condition with two stages. Expected: STU3 holds the first
    (0..1, HL7's R4→R3 Condition map keeps one), the second rides whole in the complex
    4.0/extension-Condition.stage, and both come back in R4; before, it was dropped."""
    first = {"summary": snomed("1", "Stage 1"), "type": snomed("2", "Clinical")}
    second = {
        "summary": snomed("3", "Stage 2"),
        "assessment": [{"reference": "Observation/o1"}],
        "type": snomed("4", "Pathological"),
    }
    original = r4(stage=[first, second])
    condition = convert(original, "r4", "stu3")
    [carried] = [e for e in condition["extension"] if e["url"] == XVER_R4 + "Condition.stage"]
    assert [part["url"] for part in carried["extension"]] == ["summary", "assessment", "type"]
    assert convert(condition, "stu3", "r4") == original
    assert convert(convert(original, "r4", "dstu2"), "dstu2", "r4") == original


def test_first_stage_is_kept_with_its_type_carried() -> None:
    first = {"summary": snomed("1", "Stage 1"), "type": snomed("2", "Clinical")}
    second = {"summary": snomed("3", "Stage 2")}
    condition = convert(r4(stage=[first, second]), "r4", "stu3")
    assert condition["stage"] == {
        "summary": snomed("1", "Stage 1"),
        "extension": [
            {
                "url": XVER_R4 + "Condition.stage.type",
                "valueCodeableConcept": snomed("2", "Clinical"),
            }
        ],
    }


# -- STU3 → R4 ----------------------------------------------------------------------------------

STU3_CONDITION: dict[str, Any] = convert(R4_CONDITION, "r4", "stu3")


def stu3(**changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(STU3_CONDITION)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def test_status_codes_become_codeable_concepts_in_r4() -> None:
    condition = convert(
        stu3(clinicalStatus="remission", verificationStatus="refuted"), "stu3", "r4"
    )
    assert condition["clinicalStatus"] == clinical("remission")
    assert condition["verificationStatus"] == verification("refuted")


def test_unknown_verification_status_is_left_out_in_r4() -> None:
    assert "verificationStatus" not in convert(stu3(verificationStatus="unknown"), "stu3", "r4")


def test_abatement_boolean_is_carried_in_r4() -> None:
    condition = convert(stu3(abatementBoolean=True), "stu3", "r4")
    assert "abatementBoolean" not in condition
    assert extension_values(condition, XVER_STU3 + "Condition.abatement") == [True]
    assert convert(condition, "r4", "stu3")["abatementBoolean"] is True


def test_context_and_asserted_date_become_encounter_and_recorded_date_in_r4() -> None:
    source = stu3(context={"reference": "Encounter/e"}, assertedDate="2024-01-02T03:04:05Z")
    condition = convert(source, "stu3", "r4")
    assert condition["encounter"] == {"reference": "Encounter/e"}
    assert condition["recordedDate"] == "2024-01-02T03:04:05Z"


def test_episode_of_care_context_keeps_only_display_in_r4() -> None:
    context = {"reference": "EpisodeOfCare/e", "display": "Pregnancy"}
    encounter = convert(stu3(context=context), "stu3", "r4")["encounter"]
    assert encounter["display"] == "Pregnancy"
    assert "reference" not in encounter


# -- STU3 → DSTU2 -------------------------------------------------------------------------------


def test_subject_becomes_patient_in_dstu2() -> None:
    condition = convert(R4_CONDITION, "r4", "dstu2")
    assert condition["patient"] == {"reference": "Patient/p1", "display": "Peter"}
    assert "subject" not in condition


def test_group_subject_keeps_only_display_in_dstu2() -> None:
    patient = convert(stu3(subject={"reference": "Group/g", "display": "Ward 3"}), "stu3", "dstu2")[
        "patient"
    ]
    assert patient["display"] == "Ward 3"
    assert "reference" not in patient


def test_asserted_date_time_is_cut_to_a_date_in_dstu2_and_carried() -> None:
    condition = convert(r4(recordedDate="2024-04-04T23:30:00+02:00"), "r4", "dstu2")
    assert condition["dateRecorded"] == "2024-04-04"
    assert extension_values(condition, XVER_STU3 + "Condition.assertedDate") == [
        "2024-04-04T23:30:00+02:00"
    ]


def test_missing_code_is_marked_absent_in_dstu2_and_dropped_on_the_way_up() -> None:
    condition = convert(r4(code=None), "r4", "dstu2")
    assert condition["code"] == {"extension": [ABSENT], "text": "Unknown"}
    assert "code" not in convert(condition, "dstu2", "r4")


def test_missing_verification_status_becomes_unknown_in_dstu2() -> None:
    assert convert(r4(verificationStatus=None), "r4", "dstu2")["verificationStatus"] == "unknown"


def test_recurrence_becomes_relapse_in_dstu2() -> None:
    assert (
        convert(stu3(clinicalStatus="recurrence"), "stu3", "dstu2")["clinicalStatus"] == "relapse"
    )


def test_inactive_is_left_out_in_dstu2_and_carried() -> None:
    condition = convert(stu3(clinicalStatus="inactive"), "stu3", "dstu2")
    assert "clinicalStatus" not in condition
    assert extension_values(condition, XVER_STU3 + "Condition.clinicalStatus") == ["inactive"]
    assert convert(condition, "dstu2", "stu3")["clinicalStatus"] == "inactive"


def test_first_category_is_kept_in_dstu2_and_the_others_carried() -> None:
    problem, diagnosis = (
        {"coding": [{"system": CATEGORY_OLD, "code": code}]}
        for code in ("problem-list-item", "encounter-diagnosis")
    )
    condition = convert(stu3(category=[problem, diagnosis]), "stu3", "dstu2")
    assert condition["category"] == problem
    assert extension_values(condition, XVER_STU3 + "Condition.category") == [diagnosis]


def test_encounter_diagnosis_category_becomes_diagnosis_in_dstu2() -> None:
    category = [{"coding": [{"system": CATEGORY_OLD, "code": "encounter-diagnosis"}]}]
    condition = convert(stu3(category=category), "stu3", "dstu2")
    assert condition["category"] == {"coding": [{"system": CATEGORY_OLD, "code": "diagnosis"}]}


def test_problem_list_item_category_passes_unchanged_to_dstu2() -> None:
    condition = convert(R4_CONDITION, "r4", "dstu2")
    assert condition["category"] == {
        "coding": [{"system": CATEGORY_OLD, "code": "problem-list-item"}]
    }


def test_onset_and_abatement_age_become_quantities_in_dstu2() -> None:
    age = {"value": 40, "unit": "a", "system": UCUM, "code": "a"}
    condition = convert(stu3(onsetAge=age, abatementAge=age), "stu3", "dstu2")
    assert (condition["onsetQuantity"], condition["abatementQuantity"]) == (age, age)


def test_notes_are_joined_into_dstu2_notes_and_carried() -> None:
    notes = [{"text": "one", "time": "2024-01-01"}, {"text": "two"}]
    condition = convert(stu3(note=notes), "stu3", "dstu2")
    assert condition["notes"] == "one\n\ntwo"
    assert extension_values(condition, XVER_STU3 + "Condition.note") == notes


def test_a_single_plain_note_becomes_notes_without_an_extension() -> None:
    condition = convert(stu3(note=[{"text": "only"}]), "stu3", "dstu2")
    assert condition["notes"] == "only"
    assert "extension" not in condition


def test_extra_evidence_codes_are_carried_in_dstu2() -> None:
    fever, chills = snomed("386661006", "Fever"), snomed("43724002", "Chills")
    evidence = convert(stu3(evidence=[{"code": [fever, chills]}]), "stu3", "dstu2")["evidence"][0]
    assert evidence["code"] == fever
    assert extension_values(evidence, XVER_STU3 + "Condition.evidence.code") == [chills]


def test_related_person_asserter_keeps_only_display_in_dstu2() -> None:
    asserter = {"reference": "RelatedPerson/r", "display": "Mother"}
    converted = convert(stu3(asserter=asserter), "stu3", "dstu2")["asserter"]
    assert converted["display"] == "Mother"
    assert "reference" not in converted


# -- DSTU2 → STU3 -------------------------------------------------------------------------------

DSTU2_CONDITION: dict[str, Any] = convert(R4_CONDITION, "r4", "dstu2")


def dstu2(**changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(DSTU2_CONDITION), **changes}


def test_relapse_becomes_recurrence_from_dstu2() -> None:
    assert (
        convert(dstu2(clinicalStatus="relapse"), "dstu2", "stu3")["clinicalStatus"] == "recurrence"
    )


def test_diagnosis_category_becomes_encounter_diagnosis_from_dstu2() -> None:
    category = {"coding": [{"system": CATEGORY_OLD, "code": "diagnosis"}]}
    condition = convert(dstu2(category=category), "dstu2", "stu3")
    assert condition["category"] == [
        {"coding": [{"system": CATEGORY_OLD, "code": "encounter-diagnosis"}]}
    ]


def test_dstu2_notes_become_one_note() -> None:
    assert convert(dstu2(notes="seen twice"), "dstu2", "stu3")["note"] == [{"text": "seen twice"}]


def test_dstu2_patient_encounter_and_onset_quantity_get_their_stu3_names() -> None:
    age = {"value": 40, "unit": "a", "system": UCUM, "code": "a"}
    source = dstu2(encounter={"reference": "Encounter/e"}, onsetQuantity=age)
    condition = convert(source, "dstu2", "stu3")
    assert condition["subject"] == {"reference": "Patient/p1", "display": "Peter"}
    assert (condition["context"], condition["onsetAge"]) == ({"reference": "Encounter/e"}, age)


def test_dstu2_fever_example_keeps_its_status_codes() -> None:
    source = hl7_example("dstu2", "condition-example-f201-fever.json")
    condition = convert(source, "dstu2", "r4")
    assert condition["clinicalStatus"] == clinical("active")
    assert condition["verificationStatus"] == verification("confirmed")
    assert condition["recordedDate"] == "2013-04-04"


def test_episode_of_care_context_keeps_only_display_in_dstu2() -> None:
    context = {"reference": "EpisodeOfCare/e", "display": "Pregnancy"}
    encounter = convert(stu3(context=context), "stu3", "dstu2")["encounter"]
    assert encounter["display"] == "Pregnancy"
    assert "reference" not in encounter
