"""Observation across R4, STU3 and DSTU2: fixtures, the fields the Patients app reads, round
trips and every decision in docs/conversion/observation.md.
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

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
CATEGORY_R4 = "http://terminology.hl7.org/CodeSystem/observation-category"
CATEGORY_OLD = "http://hl7.org/fhir/observation-category"
INTERP_R4 = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
INTERP_OLD = "http://hl7.org/fhir/v2/0078"
ABSENT_R4 = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
ABSENT_OLD = "http://hl7.org/fhir/data-absent-reason"

# DSTU2 (1.0.2) shapes, from the DSTU2 Observation examples and §4.1.
VALUES = frozenset(
    f"value{kind}"
    for kind in (
        "Quantity",
        "CodeableConcept",
        "String",
        "Range",
        "Ratio",
        "SampledData",
        "Attachment",
        "Time",
        "DateTime",
        "Period",
    )
)
REFERENCE_RANGE = Shape(frozenset({"low", "high", "meaning", "age", "text"}))
COMPONENT = Shape(
    frozenset({"code", "dataAbsentReason", "referenceRange"}) | VALUES,
    required=frozenset({"code"}),
    nested={"referenceRange": REFERENCE_RANGE},
    lists=frozenset({"referenceRange"}),
)
OBSERVATION = Shape(
    allowed=frozenset(
        {
            "identifier",
            "status",
            "category",
            "code",
            "subject",
            "encounter",
            "effectiveDateTime",
            "effectivePeriod",
            "issued",
            "performer",
            "dataAbsentReason",
            "interpretation",
            "comments",
            "bodySite",
            "method",
            "specimen",
            "device",
            "referenceRange",
            "related",
            "component",
        }
    )
    | VALUES,
    required=frozenset({"status", "code"}),
    nested={
        "subject": REFERENCE,
        "encounter": REFERENCE,
        "performer": REFERENCE,
        "specimen": REFERENCE,
        "device": REFERENCE,
        "referenceRange": REFERENCE_RANGE,
        "related": Shape(
            frozenset({"type", "target"}),
            required=frozenset({"target"}),
            nested={"target": REFERENCE},
        ),
        "component": COMPONENT,
    },
    lists=frozenset({"identifier", "performer", "referenceRange", "related", "component"}),
)
DSTU2_SINGLE = ("category", "interpretation", "comments", "bodySite", "method")
DSTU2_STATUSES = {
    "registered",
    "preliminary",
    "final",
    "amended",
    "cancelled",
    "entered-in-error",
    "unknown",
}


def check_dstu2(resource: dict[str, Any]) -> None:
    """The DSTU2 shape, its 0..1 elements and a DSTU2 status."""
    assert_dstu2(resource, OBSERVATION)
    for key in DSTU2_SINGLE:
        assert not isinstance(resource.get(key), list), f"{key} is 0..1 in DSTU2"
    assert resource["status"] in DSTU2_STATUSES


OBSERVATION_FIXTURES = fixtures_of("Observation")


def test_every_version_has_observation_fixtures() -> None:
    assert {param.values[0] for param in OBSERVATION_FIXTURES} == set(VERSIONS)
    # HL7 examples 4 + 6 + 6, Synthea 75 + 75 + 303, HAPI 2; each goes to two other versions
    assert len(OBSERVATION_FIXTURES) == 2 * 471


@pytest.mark.parametrize(("source", "target", "observation"), OBSERVATION_FIXTURES)
def test_fixture_converts_into_a_valid_observation_of_every_other_version(
    source: str, target: str, observation: dict[str, Any]
) -> None:
    assert_valid(convert(observation, source, target), target, "Observation", check_dstu2)


# -- the fields the Patients app reads (§1, §4.3) ----------------------------------------------

VITAL_SIGNS_R4 = {"coding": [{"system": CATEGORY_R4, "code": "vital-signs"}]}


def loinc(code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": LOINC, "code": code, "display": display}]}


def mm_hg(value: int) -> dict[str, Any]:
    return {"value": value, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}


R4_BLOOD_PRESSURE: dict[str, Any] = {
    "resourceType": "Observation",
    "id": "bp",
    "status": "final",
    "category": [VITAL_SIGNS_R4],
    "code": loinc("85354-9", "Blood pressure panel"),
    "subject": {"reference": "Patient/p1"},
    "effectiveDateTime": "2024-03-01T10:30:00+01:00",
    "component": [
        {"code": loinc("8480-6", "Systolic blood pressure"), "valueQuantity": mm_hg(120)},
        {"code": loinc("8462-4", "Diastolic blood pressure"), "valueQuantity": mm_hg(80)},
    ],
}
R4_HEART_RATE: dict[str, Any] = {
    "resourceType": "Observation",
    "id": "hr",
    "status": "final",
    "category": [VITAL_SIGNS_R4],
    "code": loinc("8867-4", "Heart rate"),
    "subject": {"reference": "Patient/p1"},
    "effectiveDateTime": "2024-03-01T10:30:00+01:00",
    "valueQuantity": {"value": 72, "unit": "beats/minute", "system": UCUM, "code": "/min"},
}
OLDER = pytest.mark.parametrize("target", ["stu3", "dstu2"])


def r4(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of an R4 example with top-level elements replaced (None removes one)."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


@OLDER
def test_effective_date_time_reaches_the_app(target: str) -> None:
    observation = convert(R4_HEART_RATE, "r4", target)
    assert observation["effectiveDateTime"] == "2024-03-01T10:30:00+01:00"


@OLDER
def test_effective_period_reaches_the_app(target: str) -> None:
    period = {"start": "2024-03-01T10:00:00Z", "end": "2024-03-01T10:05:00Z"}
    source = r4(R4_HEART_RATE, effectiveDateTime=None, effectivePeriod=period)
    assert convert(source, "r4", target)["effectivePeriod"] == period


@OLDER
def test_code_coding_code_and_display_reach_the_app(target: str) -> None:
    coding = convert(R4_HEART_RATE, "r4", target)["code"]["coding"][0]
    assert (coding["code"], coding["display"]) == ("8867-4", "Heart rate")


@OLDER
def test_value_quantity_value_and_unit_reach_the_app(target: str) -> None:
    quantity = convert(R4_HEART_RATE, "r4", target)["valueQuantity"]
    assert (quantity["value"], quantity["unit"]) == (72, "beats/minute")


@OLDER
def test_blood_pressure_components_reach_the_app(target: str) -> None:
    components = convert(R4_BLOOD_PRESSURE, "r4", target)["component"]
    seen = [
        (coding["code"], coding["display"], quantity["value"], quantity["unit"])
        for coding, quantity in ((c["code"]["coding"][0], c["valueQuantity"]) for c in components)
    ]
    assert seen == [
        ("8480-6", "Systolic blood pressure", 120, "mmHg"),
        ("8462-4", "Diastolic blood pressure", 80, "mmHg"),
    ]


def test_vital_signs_category_reaches_stu3_as_a_list() -> None:
    category = convert(R4_BLOOD_PRESSURE, "r4", "stu3")["category"]
    assert category == [{"coding": [{"system": CATEGORY_OLD, "code": "vital-signs"}]}]


def test_vital_signs_category_reaches_dstu2_as_one_concept() -> None:
    category = convert(R4_BLOOD_PRESSURE, "r4", "dstu2")["category"]
    assert category == {"coding": [{"system": CATEGORY_OLD, "code": "vital-signs"}]}


# -- round trips over generated R4 Observations ------------------------------------------------

_text = st.text(alphabet=string.ascii_letters + " éü'", min_size=1, max_size=12)
_id = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=8)
_zones = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))])
_date_time = st.one_of(
    st.dates(date(1990, 1, 1), date(2030, 12, 31)).map(date.isoformat),
    st.datetimes(datetime(1990, 1, 1), datetime(2030, 12, 31), timezones=_zones).map(
        lambda moment: moment.isoformat(timespec="seconds")
    ),
)
_loinc = st.builds(
    loinc, st.sampled_from(["8867-4", "8480-6", "8462-4", "29463-7", "8310-5"]), _text
)
_quantity = st.fixed_dictionaries(
    {
        "value": st.one_of(st.integers(0, 300), st.floats(0, 300).map(lambda f: round(f, 2))),
        "unit": st.sampled_from(["mmHg", "/min", "kg", "Cel", "%"]),
    },
    optional={"system": st.just(UCUM), "code": st.sampled_from(["mm[Hg]", "/min", "kg"])},
)
_interpretations = st.lists(
    st.sampled_from(["H", "L", "N", "A", "HH"]).map(
        lambda code: {"coding": [{"system": INTERP_R4, "code": code}]}
    ),
    max_size=3,
)
_component_value = st.one_of(
    _quantity.map(lambda quantity: {"valueQuantity": quantity}),
    st.integers(0, 300).map(lambda number: {"valueInteger": number}),
    st.booleans().map(lambda flag: {"valueBoolean": flag}),
    _text.map(lambda text: {"valueString": text}),
)
_value = st.one_of(_component_value, _loinc.map(lambda c: {"valueCodeableConcept": c}))
_effective = st.one_of(
    _date_time.map(lambda moment: {"effectiveDateTime": moment}),
    st.tuples(_date_time, _date_time).map(
        lambda pair: {"effectivePeriod": {"start": min(pair), "end": max(pair)}}
    ),
    st.lists(_date_time, min_size=1, max_size=2).map(
        lambda events: {"effectiveTiming": {"event": events}}
    ),
)
_notes = st.lists(
    st.fixed_dictionaries({"text": _text}, optional={"authorString": _text, "time": _date_time}),
    min_size=1,
    max_size=2,
)


@st.composite
def r4_observations(draw: st.DrawFn) -> dict[str, Any]:
    """Valid R4 Observations with the app's fields and the elements the converter carries."""
    laboratory = {"coding": [{"system": CATEGORY_R4, "code": "laboratory"}]}
    observation: dict[str, Any] = {
        "resourceType": "Observation",
        "id": draw(_id),
        "status": draw(st.sampled_from(sorted(DSTU2_STATUSES | {"corrected"}))),
        "category": [VITAL_SIGNS_R4, *draw(st.lists(st.just(laboratory), max_size=1))],
        "code": draw(_loinc),
        "subject": {"reference": f"Patient/{draw(_id)}", "display": draw(_text)},
        **draw(_effective),
    }
    components = draw(st.lists(st.tuples(_loinc, _component_value, _interpretations), max_size=3))
    if components:
        observation["component"] = [
            {"code": code, **value, **({"interpretation": i} if i else {})}
            for code, value, i in components
        ]
    else:
        observation.update(draw(_value))
    optional = {
        "interpretation": _interpretations.filter(bool),
        "note": _notes,
        "encounter": _id.map(lambda key: {"reference": f"Encounter/{key}"}),
        "hasMember": st.lists(_id.map(lambda key: {"reference": f"Observation/{key}"}), min_size=1),
        "partOf": st.lists(_id.map(lambda key: {"reference": f"Procedure/{key}"}), min_size=1),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            observation[key] = draw(strategy)
    return observation


@pytest.mark.parametrize("middle", ["stu3", "dstu2"])
@settings(max_examples=50, deadline=None)
@given(observation=r4_observations())
def test_r4_observation_survives_a_round_trip_through_an_older_version(
    middle: str, observation: dict[str, Any]
) -> None:
    older = convert(observation, "r4", middle)
    assert_valid(older, middle, "Observation", check_dstu2)
    back = convert(older, middle, "r4")
    assert back == observation  # every field the app reads, and everything carried


# -- R4 → STU3 ----------------------------------------------------------------------------------


def test_part_of_and_focus_are_carried_in_extensions_before_r4() -> None:
    source = r4(
        R4_HEART_RATE,
        partOf=[{"reference": "Procedure/p"}],
        focus=[{"reference": "Device/d", "type": "Device"}],
    )
    observation = convert(source, "r4", "stu3")
    assert "partOf" not in observation and "focus" not in observation
    assert extension_values(observation, XVER_R4 + "Observation.partOf") == [
        {"reference": "Procedure/p"}
    ]
    assert extension_values(observation, XVER_R4 + "Observation.focus") == [
        {"reference": "Device/d"}
    ]


def test_encounter_becomes_context_in_stu3_and_stays_encounter_in_dstu2() -> None:
    source = r4(R4_HEART_RATE, encounter={"reference": "Encounter/e"})
    assert convert(source, "r4", "stu3")["context"] == {"reference": "Encounter/e"}
    assert convert(source, "r4", "dstu2")["encounter"] == {"reference": "Encounter/e"}


@OLDER
def test_effective_instant_becomes_effective_date_time_before_r4(target: str) -> None:
    source = r4(R4_HEART_RATE, effectiveDateTime=None, effectiveInstant="2024-03-01T10:30:00Z")
    assert convert(source, "r4", target)["effectiveDateTime"] == "2024-03-01T10:30:00Z"


@OLDER
def test_effective_timing_becomes_its_first_event_and_is_carried(target: str) -> None:
    timing = {"event": ["2024-03-01T08:00:00Z", "2024-03-01T20:00:00Z"]}
    source = r4(R4_HEART_RATE, effectiveDateTime=None, effectiveTiming=timing)
    observation = convert(source, "r4", target)
    assert observation["effectiveDateTime"] == "2024-03-01T08:00:00Z"
    assert extension_values(observation, XVER_R4 + "Observation.effective") == [timing]


@OLDER
def test_value_integer_becomes_a_unitless_quantity_and_is_carried(target: str) -> None:
    observation = convert(r4(R4_HEART_RATE, valueQuantity=None, valueInteger=7), "r4", target)
    assert observation["valueQuantity"] == {"value": 7}
    assert extension_values(observation, XVER_R4 + "Observation.value") == [7]


@OLDER
def test_component_value_integer_becomes_a_unitless_quantity_and_is_carried(target: str) -> None:
    component = {"code": loinc("8480-6", "Systolic"), "valueInteger": 120}
    observation = convert(r4(R4_BLOOD_PRESSURE, component=[component]), "r4", target)
    assert observation["component"][0]["valueQuantity"] == {"value": 120}
    url = XVER_R4 + "Observation.component.value"
    assert extension_values(observation["component"][0], url) == [120]


@OLDER
def test_component_value_boolean_becomes_text_before_r4_and_is_carried(target: str) -> None:
    component = {"code": loinc("8480-6", "Systolic"), "valueBoolean": True}
    observation = convert(r4(R4_BLOOD_PRESSURE, component=[component]), "r4", target)
    assert observation["component"][0]["valueString"] == "true"
    url = XVER_R4 + "Observation.component.value"
    assert extension_values(observation["component"][0], url) == [True]


def test_extra_interpretations_are_carried_in_extensions_before_r4() -> None:
    high, abnormal = ({"coding": [{"system": INTERP_R4, "code": c}]} for c in ("H", "A"))
    source = r4(R4_HEART_RATE, interpretation=[high, abnormal])
    observation = convert(source, "r4", "stu3")
    assert observation["interpretation"] == {"coding": [{"system": INTERP_OLD, "code": "H"}]}
    assert extension_values(observation, XVER_R4 + "Observation.interpretation") == [
        {"coding": [{"system": INTERP_OLD, "code": "A"}]}
    ]


@OLDER
def test_interpretation_moves_to_the_v2_0078_system_before_r4(target: str) -> None:
    low = {"coding": [{"system": INTERP_R4, "code": "L", "display": "Low"}]}
    observation = convert(r4(R4_HEART_RATE, interpretation=[low]), "r4", target)
    assert observation["interpretation"]["coding"] == [
        {"system": INTERP_OLD, "code": "L", "display": "Low"}
    ]


def test_interpretation_codes_v2_0078_lacks_keep_the_v3_system_before_r4() -> None:
    expected = {"coding": [{"system": INTERP_R4, "code": "EXP"}]}
    observation = convert(r4(R4_HEART_RATE, interpretation=[expected]), "r4", "stu3")
    v3_old = "http://hl7.org/fhir/v3/ObservationInterpretation"
    assert observation["interpretation"]["coding"] == [{"system": v3_old, "code": "EXP"}]


def test_notes_become_one_comment_joined_by_blank_lines_and_are_carried() -> None:
    notes = [{"text": "first", "authorString": "Dr A"}, {"text": "second"}]
    observation = convert(r4(R4_HEART_RATE, note=notes), "r4", "stu3")
    assert observation["comment"] == "first\n\nsecond"
    assert extension_values(observation, XVER_R4 + "Observation.note") == notes


def test_a_single_plain_note_becomes_the_comment_without_an_extension() -> None:
    observation = convert(r4(R4_HEART_RATE, note=[{"text": "only"}]), "r4", "stu3")
    assert observation["comment"] == "only"
    assert "extension" not in observation


def test_has_member_and_derived_from_become_typed_related_before_r4() -> None:
    source = r4(
        R4_BLOOD_PRESSURE,
        hasMember=[{"reference": "Observation/a"}],
        derivedFrom=[{"reference": "Observation/b"}],
    )
    assert convert(source, "r4", "stu3")["related"] == [
        {"type": "has-member", "target": {"reference": "Observation/a"}},
        {"type": "derived-from", "target": {"reference": "Observation/b"}},
    ]


@pytest.mark.parametrize(
    ("r4_code", "stu3_code"),
    [
        ("as-text", "astext"),
        ("asked-unknown", "asked"),
        ("asked-declined", "asked"),
        ("temp-unknown", "temp"),
        ("not-a-number", "NaN"),
        ("positive-infinity", "NaN"),
        ("negative-infinity", "NaN"),
        ("masked", "masked"),
        ("not-performed", "not-performed"),
    ],
)
def test_data_absent_reason_codes_are_renamed_before_r4(r4_code: str, stu3_code: str) -> None:
    absent = {"coding": [{"system": ABSENT_R4, "code": r4_code}]}
    source = r4(R4_HEART_RATE, valueQuantity=None, dataAbsentReason=absent)
    reason = convert(source, "r4", "stu3")["dataAbsentReason"]
    assert reason == {"coding": [{"system": ABSENT_OLD, "code": stu3_code}]}


@pytest.mark.parametrize("code", ["not-applicable", "not-permitted"])
def test_data_absent_reasons_stu3_lacks_become_unknown_keeping_their_text(code: str) -> None:
    absent = {"coding": [{"system": ABSENT_R4, "code": code, "display": "Not Applicable"}]}
    source = r4(R4_HEART_RATE, valueQuantity=None, dataAbsentReason=absent)
    reason = convert(source, "r4", "stu3")["dataAbsentReason"]
    assert reason == {
        "coding": [{"system": ABSENT_OLD, "code": "unknown"}],
        "text": "Not Applicable",
    }


@OLDER
def test_practitioner_role_performer_keeps_only_display_before_r4(target: str) -> None:
    performer = {"reference": "PractitionerRole/r1", "display": "Nurse on duty"}
    observation = convert(r4(R4_HEART_RATE, performer=[performer]), "r4", target)
    assert observation["performer"] == [
        {
            "display": "Nurse on duty",
            "extension": [
                {"url": XVER_R4 + "Reference.reference", "valueString": "PractitionerRole/r1"}
            ],
        }
    ]


def test_service_request_based_on_keeps_only_display_in_stu3() -> None:
    based_on = {"reference": "ServiceRequest/s1", "display": "Vitals order"}
    observation = convert(r4(R4_HEART_RATE, basedOn=[based_on]), "r4", "stu3")
    assert observation["basedOn"][0]["display"] == "Vitals order"
    assert "reference" not in observation["basedOn"][0]


# -- STU3 → R4 ----------------------------------------------------------------------------------

STU3_HEART_RATE: dict[str, Any] = convert(R4_HEART_RATE, "r4", "stu3")


def stu3(**changes: Any) -> dict[str, Any]:
    return r4(STU3_HEART_RATE, **changes)


def test_comment_becomes_a_note_in_r4() -> None:
    assert convert(stu3(comment="taken at rest"), "stu3", "r4")["note"] == [
        {"text": "taken at rest"}
    ]


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("sequel-to", "sequelTo"),
        ("replaces", "replaces"),
        ("qualified-by", "qualifiedBy"),
        ("interfered-by", "interferedBy"),
    ],
)
def test_related_types_r4_lacks_use_the_official_extensions(kind: str, name: str) -> None:
    related = [{"type": kind, "target": {"reference": "Observation/o"}}]
    observation = convert(stu3(related=related), "stu3", "r4")
    assert "related" not in observation
    assert observation["extension"] == [
        {
            "url": f"http://hl7.org/fhir/3.0/StructureDefinition/Observation.{name}",
            "valueReference": {"reference": "Observation/o"},
        }
    ]


def test_typed_related_becomes_has_member_and_derived_from_in_r4() -> None:
    related = [
        {"type": "has-member", "target": {"reference": "Observation/a"}},
        {"type": "derived-from", "target": {"reference": "Observation/b"}},
    ]
    observation = convert(stu3(related=related), "stu3", "r4")
    assert observation["hasMember"] == [{"reference": "Observation/a"}]
    assert observation["derivedFrom"] == [{"reference": "Observation/b"}]
    assert "related" not in observation


def test_untyped_related_is_carried_in_r4() -> None:
    observation = convert(stu3(related=[{"target": {"reference": "Observation/o"}}]), "stu3", "r4")
    assert extension_values(observation, XVER_STU3 + "Observation.related") == [
        {"reference": "Observation/o"}
    ]


def test_interpretation_becomes_a_list_in_the_v3_system_in_r4() -> None:
    interpretation = {"coding": [{"system": INTERP_OLD, "code": "H"}]}
    observation = convert(stu3(interpretation=interpretation), "stu3", "r4")
    assert observation["interpretation"] == [{"coding": [{"system": INTERP_R4, "code": "H"}]}]


def test_interpretation_codes_v3_lacks_keep_the_v2_0078_table_in_r4() -> None:
    interpretation = {"coding": [{"system": INTERP_OLD, "code": "TOX"}]}
    observation = convert(stu3(interpretation=interpretation), "stu3", "r4")
    v2_r4 = "http://terminology.hl7.org/CodeSystem/v2-0078"
    assert observation["interpretation"] == [{"coding": [{"system": v2_r4, "code": "TOX"}]}]


def test_value_attachment_is_carried_in_r4() -> None:
    attachment = {"contentType": "image/png", "url": "http://example.org/ecg.png"}
    observation = convert(stu3(valueQuantity=None, valueAttachment=attachment), "stu3", "r4")
    assert "valueAttachment" not in observation
    assert extension_values(observation, XVER_STU3 + "Observation.value") == [attachment]
    assert convert(observation, "r4", "stu3")["valueAttachment"] == attachment


@pytest.mark.parametrize(
    ("stu3_code", "r4_code"),
    [
        ("astext", "as-text"),
        ("asked", "asked-unknown"),
        ("temp", "temp-unknown"),
        ("NaN", "not-a-number"),
    ],
)
def test_data_absent_reason_codes_are_renamed_in_r4(stu3_code: str, r4_code: str) -> None:
    absent = {"coding": [{"system": ABSENT_OLD, "code": stu3_code}]}
    observation = convert(stu3(valueQuantity=None, dataAbsentReason=absent), "stu3", "r4")
    assert observation["dataAbsentReason"] == {"coding": [{"system": ABSENT_R4, "code": r4_code}]}


def test_episode_of_care_context_keeps_only_display_in_r4() -> None:
    context = {"reference": "EpisodeOfCare/e1", "display": "Pregnancy"}
    observation = convert(stu3(context=context), "stu3", "r4")
    assert observation["encounter"] == {
        "display": "Pregnancy",
        "extension": [
            {"url": XVER_STU3 + "Reference.reference", "valueString": "EpisodeOfCare/e1"}
        ],
    }
    assert convert(observation, "r4", "stu3")["context"] == context


def test_procedure_request_based_on_keeps_only_display_in_r4() -> None:
    based_on = [{"reference": "ProcedureRequest/p1", "display": "Order"}]
    observation = convert(stu3(basedOn=based_on), "stu3", "r4")
    assert observation["basedOn"][0]["display"] == "Order"
    assert "reference" not in observation["basedOn"][0]


# -- STU3 → DSTU2 -------------------------------------------------------------------------------


def test_based_on_is_carried_in_dstu2() -> None:
    observation = convert(stu3(basedOn=[{"reference": "CarePlan/c"}]), "stu3", "dstu2")
    assert "basedOn" not in observation
    assert extension_values(observation, XVER_STU3 + "Observation.basedOn") == [
        {"reference": "CarePlan/c"}
    ]


def test_corrected_status_becomes_amended_in_dstu2_and_is_carried() -> None:
    observation = convert(stu3(status="corrected"), "stu3", "dstu2")
    assert observation["status"] == "amended"
    assert extension_values(observation, XVER_STU3 + "Observation.status") == ["corrected"]
    assert convert(observation, "dstu2", "stu3")["status"] == "corrected"


def test_vital_signs_category_is_chosen_for_dstu2_and_the_others_carried() -> None:
    laboratory = {"coding": [{"system": CATEGORY_OLD, "code": "laboratory"}]}
    vital_signs = {"coding": [{"system": CATEGORY_OLD, "code": "vital-signs"}]}
    observation = convert(stu3(category=[laboratory, vital_signs]), "stu3", "dstu2")
    assert observation["category"] == vital_signs
    assert extension_values(observation, XVER_STU3 + "Observation.category") == [laboratory]


def test_first_category_is_chosen_for_dstu2_without_vital_signs() -> None:
    laboratory, survey = (
        {"coding": [{"system": CATEGORY_OLD, "code": code}]} for code in ("laboratory", "survey")
    )
    observation = convert(stu3(category=[laboratory, survey]), "stu3", "dstu2")
    assert observation["category"] == laboratory


def test_comment_becomes_comments_in_dstu2() -> None:
    assert convert(stu3(comment="at rest"), "stu3", "dstu2")["comments"] == "at rest"


def test_value_boolean_becomes_text_in_dstu2_and_is_carried() -> None:
    observation = convert(stu3(valueQuantity=None, valueBoolean=False), "stu3", "dstu2")
    assert observation["valueString"] == "false"
    assert extension_values(observation, XVER_STU3 + "Observation.value") == [False]
    assert convert(observation, "dstu2", "stu3")["valueBoolean"] is False


def test_component_interpretation_is_carried_in_dstu2() -> None:
    interpretation = {"coding": [{"system": INTERP_OLD, "code": "N"}]}
    component = {"code": loinc("8480-6", "Systolic"), "interpretation": interpretation}
    observation = convert(stu3(component=[component]), "stu3", "dstu2")
    url = XVER_STU3 + "Observation.component.interpretation"
    assert "interpretation" not in observation["component"][0]
    assert extension_values(observation["component"][0], url) == [interpretation]


def test_reference_range_type_becomes_meaning_in_dstu2_and_applies_to_is_carried() -> None:
    normal, adult = ({"text": text} for text in ("normal", "adult"))
    reference_range = {"low": {"value": 60}, "type": normal, "appliesTo": [adult]}
    observation = convert(stu3(referenceRange=[reference_range]), "stu3", "dstu2")
    converted = observation["referenceRange"][0]
    assert converted["meaning"] == normal
    assert extension_values(converted, XVER_STU3 + "Observation.referenceRange.appliesTo") == [
        adult
    ]
    assert convert(observation, "dstu2", "stu3")["referenceRange"] == [reference_range]


def test_reference_range_applies_to_becomes_meaning_without_a_type() -> None:
    adult = {"text": "adult"}
    reference_range = {"high": {"value": 100}, "appliesTo": [adult]}
    observation = convert(stu3(referenceRange=[reference_range]), "stu3", "dstu2")
    assert observation["referenceRange"][0]["meaning"] == adult
    assert convert(observation, "dstu2", "stu3")["referenceRange"] == [reference_range]


def test_not_performed_data_absent_reason_becomes_unknown_in_dstu2() -> None:
    absent = {"coding": [{"system": ABSENT_OLD, "code": "not-performed"}]}
    observation = convert(stu3(valueQuantity=None, dataAbsentReason=absent), "stu3", "dstu2")
    assert observation["dataAbsentReason"] == {
        "coding": [{"system": ABSENT_OLD, "code": "unknown"}],
        "text": "not-performed",
    }


def test_episode_of_care_context_keeps_only_display_in_dstu2() -> None:
    context = {"reference": "EpisodeOfCare/e1", "display": "Pregnancy"}
    encounter = convert(stu3(context=context), "stu3", "dstu2")["encounter"]
    assert encounter["display"] == "Pregnancy"
    assert "reference" not in encounter


def test_reference_identifier_becomes_display_in_dstu2_and_rides_along() -> None:
    subject = {"identifier": {"system": "urn:mrn", "value": "12345"}}
    dstu2 = convert(stu3(subject=subject), "stu3", "dstu2")
    assert dstu2["subject"]["display"] == "12345"
    assert "identifier" not in dstu2["subject"]
    assert convert(dstu2, "dstu2", "stu3")["subject"] == subject


def test_sequence_related_target_keeps_only_display_in_dstu2() -> None:
    related = [{"type": "derived-from", "target": {"reference": "Sequence/s", "display": "seq"}}]
    target = convert(stu3(related=related), "stu3", "dstu2")["related"][0]["target"]
    assert target["display"] == "seq"
    assert "reference" not in target


# -- DSTU2 → STU3 -------------------------------------------------------------------------------


def dstu2_example(name: str) -> dict[str, Any]:
    return hl7_example("dstu2", name)


def test_dstu2_category_becomes_a_one_item_list() -> None:
    observation = convert(dstu2_example("observation-example.json"), "dstu2", "stu3")
    assert [c["coding"][0]["code"] for c in observation["category"]] == ["vital-signs"]


def test_dstu2_meaning_becomes_type() -> None:
    meaning = {"text": "normal"}
    dstu2 = {**convert(STU3_HEART_RATE, "stu3", "dstu2"), "referenceRange": [{"meaning": meaning}]}
    assert convert(dstu2, "dstu2", "stu3")["referenceRange"] == [{"type": meaning}]


def test_dstu2_encounter_and_comments_become_context_and_comment() -> None:
    dstu2 = {
        **convert(STU3_HEART_RATE, "stu3", "dstu2"),
        "encounter": {"reference": "Encounter/e"},
        "comments": "note",
    }
    observation = convert(dstu2, "dstu2", "stu3")
    assert (observation["context"], observation["comment"]) == (
        {"reference": "Encounter/e"},
        "note",
    )
