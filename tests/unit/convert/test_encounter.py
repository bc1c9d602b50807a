"""Encounter across R4, STU3 and DSTU2: fixtures, the fields the Patients app reads, round
trips and every decision in docs/conversion/encounter.md.
Section numbers (§) refer to docs/conversion/mapping.md."""

from __future__ import annotations

import copy
import string
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from shared.fhir.convert import ConversionError, convert
from tests.support.dstu2 import REFERENCE, Shape, assert_dstu2
from tests.support.fixtures import (
    VERSIONS,
    XVER_DSTU2,
    XVER_R4,
    XVER_STU3,
    fixtures_of,
    hl7_example,
)
from tests.unit.convert.checks import assert_valid, extension_values

SNOMED = "http://snomed.info/sct"
ACT_CODE_R4 = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ACT_CODE_OLD = "http://hl7.org/fhir/v3/ActCode"
ROLE_R4 = "http://terminology.hl7.org/CodeSystem/diagnosis-role"
ROLE_OLD = "http://hl7.org/fhir/diagnosis-role"
ABSENT = {
    "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
    "valueCode": "unknown",
}

# DSTU2 (1.0.2) shapes, from the DSTU2 Encounter examples and §6.1.
ENCOUNTER = Shape(
    allowed=frozenset(
        {
            "identifier",
            "status",
            "statusHistory",
            "class",
            "type",
            "priority",
            "patient",
            "episodeOfCare",
            "incomingReferral",
            "participant",
            "appointment",
            "period",
            "length",
            "reason",
            "indication",
            "hospitalization",
            "location",
            "serviceProvider",
            "partOf",
        }
    ),
    required=frozenset({"status"}),
    nested={
        "statusHistory": Shape(
            frozenset({"status", "period"}), required=frozenset({"status", "period"})
        ),
        "patient": REFERENCE,
        "episodeOfCare": REFERENCE,
        "incomingReferral": REFERENCE,
        "participant": Shape(
            frozenset({"type", "period", "individual"}),
            nested={"individual": REFERENCE},
            lists=frozenset({"type"}),
        ),
        "appointment": REFERENCE,
        "indication": REFERENCE,
        "hospitalization": Shape(
            frozenset(
                {"preAdmissionIdentifier", "origin", "admitSource", "admittingDiagnosis"}
                | {"reAdmission", "dietPreference", "specialCourtesy", "specialArrangement"}
                | {"destination", "dischargeDisposition", "dischargeDiagnosis"}
            ),
            nested={
                "origin": REFERENCE,
                "destination": REFERENCE,
                "admittingDiagnosis": REFERENCE,
                "dischargeDiagnosis": REFERENCE,
            },
            lists=frozenset(
                {"admittingDiagnosis", "dischargeDiagnosis", "dietPreference"}
                | {"specialCourtesy", "specialArrangement"}
            ),
        ),
        "location": Shape(
            frozenset({"location", "status", "period"}),
            required=frozenset({"location"}),
            nested={"location": REFERENCE},
        ),
        "serviceProvider": REFERENCE,
        "partOf": REFERENCE,
    },
    lists=frozenset(
        {"identifier", "statusHistory", "type", "episodeOfCare", "incomingReferral"}
        | {"participant", "reason", "indication", "location"}
    ),
)
DSTU2_STATUSES = {"planned", "arrived", "in-progress", "onleave", "finished", "cancelled"}
DSTU2_CLASSES = {
    "inpatient",
    "outpatient",
    "ambulatory",
    "emergency",
    "home",
    "field",
    "daytime",
    "virtual",
    "other",
}


def check_dstu2(resource: dict[str, Any]) -> None:
    """The DSTU2 shape, statuses (the history's too), class codes and one appointment."""
    assert_dstu2(resource, ENCOUNTER)
    assert_dstu2_status(resource)
    assert resource.get("class", "other") in DSTU2_CLASSES
    assert not isinstance(resource.get("appointment"), list), "appointment is 0..1 in DSTU2"
    for entry in resource.get("statusHistory", []):
        assert_dstu2_status(entry)


def assert_dstu2_status(holder: dict[str, Any]) -> None:
    """A DSTU2 status code, or none with the data-absent-reason marker on ``_status``."""
    if "status" in holder:
        assert holder["status"] in DSTU2_STATUSES
    else:
        assert ABSENT in holder["_status"]["extension"]


ENCOUNTER_FIXTURES = fixtures_of("Encounter")


def test_every_version_has_encounter_fixtures() -> None:
    assert {param.values[0] for param in ENCOUNTER_FIXTURES} == set(VERSIONS)
    assert len(ENCOUNTER_FIXTURES) == 2 * 149  # HL7 examples 4 per version, Synthea 39 + 39 + 59


@pytest.mark.parametrize(("source", "target", "encounter"), ENCOUNTER_FIXTURES)
def test_fixture_converts_into_a_valid_encounter_of_every_other_version(
    source: str, target: str, encounter: dict[str, Any]
) -> None:
    assert_valid(convert(encounter, source, target), target, "Encounter", check_dstu2)


# -- the fields the Patients app reads (§1, §6.1) ----------------------------------------------


def act_code(code: str) -> dict[str, Any]:
    return {"system": ACT_CODE_R4, "code": code}


def role(code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": ROLE_R4, "code": code, "display": display}]}


R4_ENCOUNTER: dict[str, Any] = {
    "resourceType": "Encounter",
    "id": "e1",
    "status": "finished",
    "class": act_code("AMB"),
    "type": [{"coding": [{"system": SNOMED, "code": "11429006", "display": "Consultation"}]}],
    "subject": {"reference": "Patient/p1", "display": "Peter"},
    "period": {"start": "2024-04-04T09:00:00+02:00", "end": "2024-04-04T09:30:00+02:00"},
    "location": [{"location": {"reference": "Location/l1", "display": "South Wing, room 3"}}],
}
OLDER = pytest.mark.parametrize("target", ["stu3", "dstu2"])


def r4(**changes: Any) -> dict[str, Any]:
    """A copy of the R4 example with top-level elements replaced (None removes one)."""
    out = copy.deepcopy(R4_ENCOUNTER)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


@OLDER
def test_status_reaches_the_app(target: str) -> None:
    assert convert(R4_ENCOUNTER, "r4", target)["status"] == "finished"


@OLDER
def test_type_display_reaches_the_app(target: str) -> None:
    encounter = convert(R4_ENCOUNTER, "r4", target)
    assert encounter["type"][0]["coding"][0]["display"] == "Consultation"


@OLDER
def test_period_start_reaches_the_app(target: str) -> None:
    assert convert(R4_ENCOUNTER, "r4", target)["period"]["start"] == "2024-04-04T09:00:00+02:00"


@OLDER
def test_location_display_reaches_the_app(target: str) -> None:
    location = convert(R4_ENCOUNTER, "r4", target)["location"][0]["location"]
    assert location == {"reference": "Location/l1", "display": "South Wing, room 3"}


def test_subject_stays_subject_in_stu3_and_becomes_patient_in_dstu2() -> None:
    assert convert(R4_ENCOUNTER, "r4", "stu3")["subject"]["reference"] == "Patient/p1"
    encounter = convert(R4_ENCOUNTER, "r4", "dstu2")
    assert encounter["patient"] == {"reference": "Patient/p1", "display": "Peter"}
    assert "subject" not in encounter


# -- round trips over generated R4 Encounters --------------------------------------------------

_text = st.text(alphabet=string.ascii_letters + " éü'", min_size=1, max_size=12)
_id = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=8)
_zones = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))])
_instant = st.datetimes(datetime(1990, 1, 1), datetime(2030, 12, 31), timezones=_zones).map(
    lambda moment: moment.isoformat(timespec="seconds")
)
_period = st.one_of(
    _instant.map(lambda start: {"start": start}),
    st.tuples(_instant, _instant).map(lambda pair: {"start": min(pair), "end": max(pair)}),
)
_concept = st.builds(
    lambda code, display: {"coding": [{"system": SNOMED, "code": code, "display": display}]},
    st.sampled_from(["11429006", "185349003", "50849002"]),
    _text,
)
_locations = st.lists(
    st.fixed_dictionaries(
        {
            "location": st.builds(
                lambda key, name: {"reference": f"Location/{key}", "display": name}, _id, _text
            )
        },
        optional={
            "status": st.sampled_from(["planned", "active", "reserved", "completed"]),
            "physicalType": _concept,
        },
    ),
    min_size=1,
    max_size=2,
)
_diagnoses = st.lists(
    st.builds(
        lambda key, use: {"condition": {"reference": f"Condition/{key}"}, "use": use},
        _id,
        st.sampled_from([role("AD", "Admission diagnosis"), role("DD", "Discharge diagnosis")]),
    ),
    min_size=1,
    max_size=2,
).map(lambda diagnoses: sorted(diagnoses, key=lambda d: d["use"]["coding"][0]["code"]))
_references = st.lists(_id, min_size=1, max_size=2)


@st.composite
def r4_encounters(draw: st.DrawFn) -> dict[str, Any]:
    """Valid R4 Encounters with the app's fields and the elements the converter carries."""
    encounter: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": draw(_id),
        "status": draw(st.sampled_from(sorted(DSTU2_STATUSES | {"triaged", "unknown"}))),
        "class": act_code(
            draw(st.sampled_from(["AMB", "IMP", "EMER", "HH", "VR", "ACUTE", "PRENC"]))
        ),
        "type": [draw(_concept)],
        "subject": {"reference": f"Patient/{draw(_id)}", "display": draw(_text)},
        "period": draw(_period),
    }
    optional = {
        "location": _locations,
        "reasonCode": st.lists(_concept, min_size=1, max_size=2),
        "serviceType": _concept,
        "diagnosis": _diagnoses,
        "reasonReference": _references.map(
            lambda ks: [{"reference": f"Condition/{k}"} for k in ks]
        ),
        "appointment": _references.map(lambda ks: [{"reference": f"Appointment/{k}"} for k in ks]),
        "account": _references.map(lambda ks: [{"reference": f"Account/{k}"} for k in ks]),
        "participant": _id.map(lambda key: [{"individual": {"reference": f"Practitioner/{key}"}}]),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            encounter[key] = draw(strategy)
    return encounter


@pytest.mark.parametrize("middle", ["stu3", "dstu2"])
@settings(max_examples=50, deadline=None)
@given(encounter=r4_encounters())
def test_r4_encounter_survives_a_round_trip_through_an_older_version(
    middle: str, encounter: dict[str, Any]
) -> None:
    older = convert(encounter, "r4", middle)
    assert_valid(older, middle, "Encounter", check_dstu2)
    back = convert(older, middle, "r4")
    assert back == encounter  # every field the app reads, and everything carried


@settings(max_examples=20, deadline=None)
@given(encounter=r4_encounters())
def test_r4_entered_in_error_encounter_survives_a_round_trip_through_stu3(
    encounter: dict[str, Any],
) -> None:
    assume(encounter.get("status") != "entered-in-error")
    source = {**encounter, "status": "entered-in-error"}
    assert convert(convert(source, "r4", "stu3"), "stu3", "r4") == source


# -- R4 → STU3 ----------------------------------------------------------------------------------


def test_class_keeps_its_act_code_coding_in_stu3() -> None:
    assert convert(R4_ENCOUNTER, "r4", "stu3")["class"] == {"system": ACT_CODE_OLD, "code": "AMB"}


def test_based_on_becomes_incoming_referral_keeping_only_display_in_stu3() -> None:
    source = r4(basedOn=[{"reference": "ServiceRequest/s", "display": "Referral"}])
    encounter = convert(source, "r4", "stu3")
    assert encounter["incomingReferral"] == [
        {
            "display": "Referral",
            "extension": [
                {"url": XVER_R4 + "Reference.reference", "valueString": "ServiceRequest/s"}
            ],
        }
    ]
    assert convert(encounter, "stu3", "r4")["basedOn"] == source["basedOn"]


@OLDER
def test_reason_code_becomes_reason_before_r4(target: str) -> None:
    reasons = [{"text": "fever"}]
    assert convert(r4(reasonCode=reasons), "r4", target)["reason"] == reasons


@OLDER
def test_reason_reference_is_carried_before_r4(target: str) -> None:
    encounter = convert(r4(reasonReference=[{"reference": "Condition/c"}]), "r4", target)
    assert "reasonReference" not in encounter
    assert extension_values(encounter, XVER_R4 + "Encounter.reasonReference") == [
        {"reference": "Condition/c"}
    ]


@OLDER
def test_service_type_is_carried_before_r4(target: str) -> None:
    service_type = {"text": "Cardiology"}
    encounter = convert(r4(serviceType=service_type), "r4", target)
    assert extension_values(encounter, XVER_R4 + "Encounter.serviceType") == [service_type]


@OLDER
def test_first_appointment_is_kept_and_the_others_carried_before_r4(target: str) -> None:
    appointments = [{"reference": "Appointment/a"}, {"reference": "Appointment/b"}]
    encounter = convert(r4(appointment=appointments), "r4", target)
    assert encounter["appointment"] == {"reference": "Appointment/a"}
    assert extension_values(encounter, XVER_R4 + "Encounter.appointment") == [
        {"reference": "Appointment/b"}
    ]


@OLDER
def test_location_physical_type_is_carried_on_the_location_before_r4(target: str) -> None:
    physical_type = {"text": "Room"}
    locations = [
        {
            "location": {"reference": "Location/l", "display": "Room 3"},
            "physicalType": physical_type,
        }
    ]
    location = convert(r4(location=locations), "r4", target)["location"][0]
    assert location["location"] == {"reference": "Location/l", "display": "Room 3"}
    assert extension_values(location, XVER_R4 + "Encounter.location.physicalType") == [
        physical_type
    ]


def test_diagnosis_use_becomes_role_in_stu3() -> None:
    diagnosis = [
        {"condition": {"reference": "Condition/c"}, "use": role("CC", "Chief complaint"), "rank": 1}
    ]
    assert convert(r4(diagnosis=diagnosis), "r4", "stu3")["diagnosis"] == [
        {
            "condition": {"reference": "Condition/c"},
            "role": {"coding": [{"system": ROLE_OLD, "code": "CC", "display": "Chief complaint"}]},
            "rank": 1,
        }
    ]


@OLDER
def test_practitioner_role_participant_keeps_only_display_before_r4(target: str) -> None:
    participant = [{"individual": {"reference": "PractitionerRole/r", "display": "Dr A"}}]
    individual = convert(r4(participant=participant), "r4", target)["participant"][0]["individual"]
    assert individual["display"] == "Dr A"
    assert "reference" not in individual


@OLDER
def test_organization_origin_keeps_only_display_before_r4(target: str) -> None:
    hospitalization = {"origin": {"reference": "Organization/o", "display": "Other hospital"}}
    origin = convert(r4(hospitalization=hospitalization), "r4", target)["hospitalization"]["origin"]
    assert origin["display"] == "Other hospital"
    assert "reference" not in origin


# -- STU3 → R4 ----------------------------------------------------------------------------------

STU3_ENCOUNTER: dict[str, Any] = convert(R4_ENCOUNTER, "r4", "stu3")


def stu3(**changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(STU3_ENCOUNTER)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def test_missing_class_is_marked_absent_in_r4_and_dropped_on_the_way_down() -> None:
    encounter = convert(stu3(**{"class": None}), "stu3", "r4")
    assert encounter["class"] == {"extension": [ABSENT]}
    assert "class" not in convert(encounter, "r4", "stu3")


def test_dstu2_class_code_in_an_stu3_coding_becomes_an_act_code_in_r4() -> None:
    encounter = convert(stu3(**{"class": {"code": "emergency"}}), "stu3", "r4")
    assert encounter["class"] == act_code("EMER")


def test_reason_and_incoming_referral_become_reason_code_and_based_on_in_r4() -> None:
    referral = {"reference": "ReferralRequest/r", "display": "From GP"}
    encounter = convert(stu3(reason=[{"text": "fever"}], incomingReferral=[referral]), "stu3", "r4")
    assert encounter["reasonCode"] == [{"text": "fever"}]
    assert encounter["basedOn"][0]["display"] == "From GP"
    assert "reference" not in encounter["basedOn"][0]


def test_diagnosis_role_becomes_use_in_r4() -> None:
    diagnosis = [
        {
            "condition": {"reference": "Condition/c"},
            "role": {"coding": [{"system": ROLE_OLD, "code": "AD"}]},
        }
    ]
    encounter = convert(stu3(diagnosis=diagnosis), "stu3", "r4")
    assert encounter["diagnosis"] == [
        {
            "condition": {"reference": "Condition/c"},
            "use": {"coding": [{"system": ROLE_R4, "code": "AD"}]},
        }
    ]


# -- STU3 → DSTU2 -------------------------------------------------------------------------------


def test_triaged_becomes_arrived_in_dstu2_and_is_carried() -> None:
    encounter = convert(stu3(status="triaged"), "stu3", "dstu2")
    assert encounter["status"] == "arrived"
    assert extension_values(encounter, XVER_STU3 + "Encounter.status") == ["triaged"]
    assert convert(encounter, "dstu2", "stu3")["status"] == "triaged"


@pytest.mark.parametrize(
    "period",
    [{"start": "2024-01-01T10:00:00Z", "end": "2024-01-01T11:00:00Z"}, {"start": "2024"}, None],
    ids=["ended", "open", "no-period"],
)
def test_unknown_status_has_no_dstu2_value_only_the_data_absent_reason_marker(
    period: dict[str, str] | None,
) -> None:
    """Issue 15 item 2. Input: an STU3/R4 Encounter with status unknown (with or without an
    ended period). Expected: DSTU2 has no status value and ``_status`` carries
    data-absent-reason ``unknown``; before, the app showed an invented in-progress or
    finished. HL7's R3→R2 EncounterStatus ConceptMap has no target for unknown."""
    encounter = convert(stu3(status="unknown", period=period), "stu3", "dstu2")
    assert "status" not in encounter
    assert encounter["_status"] == {"extension": [ABSENT]}
    assert "extension" not in encounter


def test_unknown_status_comes_back_as_unknown() -> None:
    original = r4(status="unknown")
    assert convert(convert(original, "r4", "dstu2"), "dstu2", "r4") == original


def test_extensions_of_an_unknown_status_are_kept_beside_the_marker() -> None:
    other = {"url": "http://example.org/why", "valueString": "not recorded"}
    encounter = convert(stu3(status="unknown", _status={"extension": [other]}), "stu3", "dstu2")
    assert encounter["_status"] == {"extension": [other, ABSENT]}
    back = convert(encounter, "dstu2", "stu3")
    assert (back["status"], back["_status"]) == ("unknown", {"extension": [other]})


def test_entered_in_error_encounter_cannot_be_expressed_in_dstu2() -> None:
    with pytest.raises(ConversionError, match="entered-in-error"):
        convert(r4(status="entered-in-error"), "r4", "dstu2")


def test_entered_in_error_encounter_is_left_out_of_a_dstu2_searchset() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {"resource": r4(status="entered-in-error"), "search": {"mode": "match"}},
            {"resource": R4_ENCOUNTER, "search": {"mode": "match"}},
        ],
    }
    first, second = convert(bundle, "r4", "dstu2")["entry"]
    assert first["resource"]["resourceType"] == "OperationOutcome"
    assert second["resource"]["status"] == "finished"


def test_status_history_follows_the_status_rules_and_carries_what_dstu2_cannot_say() -> None:
    """Issue 15 item 9. Input: STU3 statusHistory triaged, entered-in-error, unknown.
    Expected: arrived (triaged carried on the entry), no value with the data-absent-reason
    marker (entered-in-error carried on the entry), no value with the marker. Before, the
    entered-in-error entry vanished and triaged was not carried. No HL7 map for these codes."""
    period = {"start": "2024-01-01T10:00:00Z", "end": "2024-01-01T10:10:00Z"}
    history = [
        {"status": "triaged", "period": period},
        {"status": "entered-in-error", "period": period},
        {"status": "unknown", "period": period},
    ]
    encounter = convert(stu3(statusHistory=history), "stu3", "dstu2")
    carried = XVER_STU3 + "Encounter.statusHistory.status"
    assert encounter["statusHistory"] == [
        {
            "status": "arrived",
            "period": period,
            "extension": [{"url": carried, "valueCode": "triaged"}],
        },
        {
            "_status": {"extension": [ABSENT]},
            "period": period,
            "extension": [{"url": carried, "valueCode": "entered-in-error"}],
        },
        {"_status": {"extension": [ABSENT]}, "period": period},
    ]
    assert convert(encounter, "dstu2", "stu3")["statusHistory"] == history


@pytest.mark.parametrize(
    ("code", "dstu2_class"),
    [
        ("IMP", "inpatient"),
        ("AMB", "ambulatory"),
        ("EMER", "emergency"),
        ("HH", "home"),
        ("FLD", "field"),
        ("SS", "daytime"),
        ("VR", "virtual"),
    ],
)
def test_act_codes_become_dstu2_class_codes(code: str, dstu2_class: str) -> None:
    encounter = convert(r4(**{"class": act_code(code)}), "r4", "dstu2")
    assert encounter["class"] == dstu2_class
    assert "extension" not in encounter


@pytest.mark.parametrize(
    ("code", "dstu2_class"),
    [("ACUTE", "inpatient"), ("NONAC", "inpatient"), ("PRENC", "other"), ("OBSENC", "other")],
)
def test_act_codes_dstu2_lacks_become_inpatient_or_other_and_are_carried(
    code: str, dstu2_class: str
) -> None:
    encounter = convert(r4(**{"class": act_code(code)}), "r4", "dstu2")
    assert encounter["class"] == dstu2_class
    assert extension_values(encounter, XVER_STU3 + "Encounter.class") == [
        {"system": ACT_CODE_OLD, "code": code}
    ]


def test_dstu2_class_code_in_an_stu3_coding_is_kept_in_dstu2() -> None:
    assert (
        convert(stu3(**{"class": {"code": "outpatient"}}), "stu3", "dstu2")["class"] == "outpatient"
    )


def test_diagnoses_with_roles_ad_and_dd_go_to_hospitalization_in_dstu2() -> None:
    diagnosis = [
        {"condition": {"reference": "Condition/a"}, "use": role("AD", "Admission diagnosis")},
        {"condition": {"reference": "Condition/d"}, "use": role("DD", "Discharge diagnosis")},
    ]
    encounter = convert(r4(diagnosis=diagnosis), "r4", "dstu2")
    assert encounter["hospitalization"] == {
        "admittingDiagnosis": [{"reference": "Condition/a"}],
        "dischargeDiagnosis": [{"reference": "Condition/d"}],
    }


def test_diagnoses_in_any_order_come_back_in_their_order() -> None:
    diagnosis = [
        {"condition": {"reference": "Condition/d"}, "use": role("DD", "Discharge diagnosis")},
        {"condition": {"reference": "Condition/a"}, "use": role("AD", "Admission diagnosis")},
    ]
    back = convert(convert(r4(diagnosis=diagnosis), "r4", "dstu2"), "dstu2", "r4")
    assert back["diagnosis"] == diagnosis


def test_other_diagnoses_become_indications_and_carry_their_role_and_rank_in_dstu2() -> None:
    """Issue 15 item 9. Input: R4 diagnosis with use CC (chief complaint) and rank 1.
    Expected: DSTU2 indication (HL7 R3→R2 Encounter map), the diagnosis carried whole in
    3.0/extension-Encounter.diagnosis (condition, role, rank), restored on the way back; before,
    role and rank were dropped silently."""
    diagnosis = [
        {"condition": {"reference": "Condition/c"}, "use": role("CC", "Chief complaint"), "rank": 1}
    ]
    encounter = convert(r4(diagnosis=diagnosis), "r4", "dstu2")
    assert encounter["indication"] == [{"reference": "Condition/c"}]
    assert "diagnosis" not in encounter
    [carried] = [e for e in encounter["extension"] if e["url"] == XVER_STU3 + "Encounter.diagnosis"]
    assert [part["url"] for part in carried["extension"]] == ["condition", "role", "rank"]
    assert convert(encounter, "dstu2", "r4")["diagnosis"] == diagnosis


def test_diagnoses_dstu2_says_fully_are_not_carried() -> None:
    diagnosis = [{"condition": {"reference": "Condition/c"}}]
    assert "extension" not in convert(r4(diagnosis=diagnosis), "r4", "dstu2")


def test_class_history_is_dropped_in_dstu2() -> None:
    history = [
        {"class": {"system": ACT_CODE_OLD, "code": "EMER"}, "period": {"start": "2024-01-01"}}
    ]
    assert "classHistory" not in convert(stu3(classHistory=history), "stu3", "dstu2")


def test_account_is_carried_in_dstu2() -> None:
    encounter = convert(stu3(account=[{"reference": "Account/a"}]), "stu3", "dstu2")
    assert extension_values(encounter, XVER_STU3 + "Encounter.account") == [
        {"reference": "Account/a"}
    ]
    assert convert(encounter, "dstu2", "stu3")["account"] == [{"reference": "Account/a"}]


def test_group_subject_keeps_only_display_in_dstu2() -> None:
    patient = convert(stu3(subject={"reference": "Group/g", "display": "Ward 3"}), "stu3", "dstu2")[
        "patient"
    ]
    assert patient["display"] == "Ward 3"
    assert "reference" not in patient


# -- DSTU2 → STU3 -------------------------------------------------------------------------------

DSTU2_ENCOUNTER: dict[str, Any] = convert(R4_ENCOUNTER, "r4", "dstu2")


def dstu2(**changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(DSTU2_ENCOUNTER), **changes}


@pytest.mark.parametrize(
    ("dstu2_class", "code"),
    [
        ("inpatient", "IMP"),
        ("ambulatory", "AMB"),
        ("emergency", "EMER"),
        ("home", "HH"),
        ("field", "FLD"),
        ("daytime", "SS"),
        ("virtual", "VR"),
    ],
)
def test_dstu2_class_becomes_an_act_code_coding(dstu2_class: str, code: str) -> None:
    encounter = convert(dstu2(**{"class": dstu2_class}), "dstu2", "stu3")
    assert encounter["class"] == {"system": ACT_CODE_OLD, "code": code}
    assert "extension" not in encounter


def test_outpatient_becomes_amb_and_comes_back_as_outpatient() -> None:
    encounter = convert(dstu2(**{"class": "outpatient"}), "dstu2", "r4")
    assert encounter["class"] == act_code("AMB")
    assert extension_values(encounter, XVER_DSTU2 + "Encounter.class") == ["outpatient"]
    assert convert(encounter, "r4", "dstu2")["class"] == "outpatient"


def test_other_class_keeps_the_dstu2_encounter_class_system() -> None:
    encounter = convert(dstu2(**{"class": "other"}), "dstu2", "stu3")
    assert encounter["class"] == {"system": "http://hl7.org/fhir/encounter-class", "code": "other"}


def test_indications_and_hospitalization_diagnoses_become_diagnoses() -> None:
    source = dstu2(
        indication=[{"reference": "Condition/i"}],
        hospitalization={"admittingDiagnosis": [{"reference": "Condition/a"}]},
    )
    encounter = convert(source, "dstu2", "stu3")
    assert encounter["diagnosis"] == [
        {"condition": {"reference": "Condition/i"}},
        {
            "condition": {"reference": "Condition/a"},
            "role": {
                "coding": [{"system": ROLE_OLD, "code": "AD", "display": "Admission diagnosis"}]
            },
        },
    ]
    assert "hospitalization" not in encounter


def test_a_single_dstu2_reason_object_is_wrapped_in_a_list() -> None:
    encounter = convert(dstu2(reason={"text": "fever"}), "dstu2", "stu3")
    assert encounter["reason"] == [{"text": "fever"}]


def test_dstu2_class_primitive_extension_is_dropped() -> None:
    source = hl7_example("dstu2", "encounter-example-f201-20130404.json")
    encounter = convert(source, "dstu2", "stu3")
    assert "_class" not in encounter
    assert encounter["class"] == {"system": ACT_CODE_OLD, "code": "AMB"}


def test_dstu2_patient_becomes_subject() -> None:
    encounter = convert(DSTU2_ENCOUNTER, "dstu2", "stu3")
    assert encounter["subject"] == {"reference": "Patient/p1", "display": "Peter"}
    assert "patient" not in encounter
