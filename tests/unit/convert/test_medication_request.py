"""MedicationRequest (R4, STU3) ⇄ MedicationOrder (DSTU2): fixtures, the fields the Patients
app reads, round trips and every decision in docs/conversion/medication_request.md.
Section numbers (§) refer to docs/conversion/mapping.md."""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.fhir.convert import ConversionError, convert
from tests.support.dstu2 import CODEABLE_CONCEPT, REFERENCE, Shape, assert_dstu2
from tests.support.fixtures import VERSIONS, XVER_DSTU2, XVER_R4, XVER_STU3, fixtures_of
from tests.unit.convert.checks import assert_valid, extension_values

DATA_ABSENT = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
SUPPLIED = {"extension": [{"url": DATA_ABSENT, "valueCode": "unknown"}]}
ON_BEHALF_OF = XVER_STU3 + "MedicationRequest.requester.onBehalfOf"
CATEGORY_R4 = "http://terminology.hl7.org/CodeSystem/medicationrequest-category"
SUBSTITUTION_R4 = "http://terminology.hl7.org/CodeSystem/v3-substanceAdminSubstitution"
SUBSTITUTION_OLD = "http://hl7.org/fhir/v3/substanceAdminSubstitution"

# DSTU2 (1.0.2) shapes, from the DSTU2 MedicationOrder examples and §8, §2.5.
QUANTITY = Shape(frozenset({"value", "comparator", "unit", "system", "code"}))
TIMING = Shape(
    frozenset({"event", "repeat", "code"}),
    nested={
        "repeat": Shape(
            frozenset({"boundsQuantity", "boundsRange", "boundsPeriod", "count", "duration"})
            | {"durationMax", "durationUnits", "frequency", "frequencyMax", "period"}
            | {"periodMax", "periodUnits", "when"},
            nested={"boundsQuantity": QUANTITY},
        ),
        "code": CODEABLE_CONCEPT,
    },
    lists=frozenset({"event"}),
)
DOSAGE = Shape(
    frozenset({"text", "additionalInstructions", "timing", "asNeededBoolean", "route"})
    | {"asNeededCodeableConcept", "siteCodeableConcept", "siteReference", "method"}
    | {"doseRange", "doseQuantity", "rateRatio", "rateRange", "maxDosePerPeriod"},
    nested={
        "additionalInstructions": CODEABLE_CONCEPT,
        "timing": TIMING,
        "siteCodeableConcept": CODEABLE_CONCEPT,
        "route": CODEABLE_CONCEPT,
        "method": CODEABLE_CONCEPT,
        "doseQuantity": QUANTITY,
    },
)
ORDER = Shape(
    allowed=frozenset(
        {"identifier", "dateWritten", "status", "dateEnded", "reasonEnded", "patient"}
        | {"prescriber", "encounter", "reasonCodeableConcept", "reasonReference", "note"}
        | {"medicationCodeableConcept", "medicationReference", "dosageInstruction"}
        | {"dispenseRequest", "substitution", "priorPrescription"}
    ),
    nested={
        "patient": REFERENCE,
        "prescriber": REFERENCE,
        "encounter": REFERENCE,
        "reasonCodeableConcept": CODEABLE_CONCEPT,
        "reasonReference": REFERENCE,
        "medicationCodeableConcept": CODEABLE_CONCEPT,
        "medicationReference": REFERENCE,
        "priorPrescription": REFERENCE,
        "dosageInstruction": DOSAGE,
        "dispenseRequest": Shape(
            frozenset({"medicationCodeableConcept", "medicationReference", "validityPeriod"})
            | {"numberOfRepeatsAllowed", "quantity", "expectedSupplyDuration"},
            nested={"quantity": QUANTITY, "expectedSupplyDuration": QUANTITY},
        ),
        "substitution": Shape(
            frozenset({"type", "reason"}),
            required=frozenset({"type"}),
            nested={"type": CODEABLE_CONCEPT, "reason": CODEABLE_CONCEPT},
        ),
    },
    lists=frozenset({"identifier", "dosageInstruction"}),
)
R4_STATUSES = {"active", "on-hold", "cancelled", "completed", "entered-in-error", "stopped"}
R4_STATUSES |= {"draft", "unknown"}
DSTU2_STATUSES = {"active", "on-hold", "completed", "entered-in-error", "stopped", "draft"}
DSTU2_WHEN = {"HS", "WAKE", "C", "CM", "CD", "CV", "AC", "ACM", "ACD", "ACV", "PC", "PCM"}
DSTU2_WHEN |= {"PCD", "PCV", "IC", "ICM", "ICD", "ICV"}


def check_dstu2(resource: dict[str, Any]) -> None:
    """A MedicationOrder of the DSTU2 shape: one medication[x], DSTU2 codes, a string note."""
    assert resource["resourceType"] == "MedicationOrder"
    assert_dstu2(resource, ORDER)
    assert ("medicationCodeableConcept" in resource) != ("medicationReference" in resource)
    assert resource.get("status", "active") in DSTU2_STATUSES
    assert isinstance(resource.get("note", ""), str)
    for dosage in resource.get("dosageInstruction", []):
        repeat = dosage.get("timing", {}).get("repeat", {})
        assert repeat.get("when", "HS") in DSTU2_WHEN


REQUEST_FIXTURES = fixtures_of("MedicationRequest", "MedicationOrder")


def test_every_version_has_medication_request_fixtures() -> None:
    assert {param.values[0] for param in REQUEST_FIXTURES} == set(VERSIONS)


@pytest.mark.parametrize(("source", "target", "request_"), REQUEST_FIXTURES)
def test_fixture_converts_into_a_valid_medication_request_of_every_other_version(
    source: str, target: str, request_: dict[str, Any]
) -> None:
    assert_valid(convert(request_, source, target), target, "MedicationRequest", check_dstu2)


# -- the fields the Patients app reads (§1, §8) ------------------------------------------------

DIV = '<div xmlns="http://www.w3.org/1999/xhtml">Amoxicillin 500 mg three times daily</div>'
MEDICATION = {
    "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "308191"}],
    "text": "Amoxicillin 500 MG",
}
R4_REQUEST: dict[str, Any] = {
    "resourceType": "MedicationRequest",
    "id": "m1",
    "text": {"status": "generated", "div": DIV},
    "status": "active",
    "intent": "order",
    "medicationCodeableConcept": MEDICATION,
    "subject": {"reference": "Patient/p1"},
    "authoredOn": "2020-03-01",
    "requester": {"reference": "Practitioner/d1", "display": "Dr Careful"},
    "dosageInstruction": [{"text": "500 mg three times daily"}, {"text": "then once daily"}],
}


def _r4(**elements: Any) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"text": "Amoxicillin"},
        "subject": {"reference": "Patient/p1"},
        **elements,
    }


def test_the_request_is_a_medication_order_in_dstu2() -> None:
    assert convert(R4_REQUEST, "r4", "dstu2")["resourceType"] == "MedicationOrder"


@pytest.mark.parametrize("target", ["stu3", "dstu2"])
def test_medication_codeable_concept_text_reaches_the_app(target: str) -> None:
    assert convert(R4_REQUEST, "r4", target)["medicationCodeableConcept"] == MEDICATION


@pytest.mark.parametrize("target", ["stu3", "dstu2"])
def test_medication_reference_display_reaches_the_app(target: str) -> None:
    reference = {"reference": "Medication/x", "display": "Amoxicillin 500 MG"}
    r4 = _r4(medicationReference=reference)
    del r4["medicationCodeableConcept"]
    assert convert(r4, "r4", target)["medicationReference"] == reference


def test_authored_on_reaches_stu3() -> None:
    assert convert(R4_REQUEST, "r4", "stu3")["authoredOn"] == "2020-03-01"


def test_authored_on_becomes_date_written_in_dstu2() -> None:
    order = convert(R4_REQUEST, "r4", "dstu2")
    assert order["dateWritten"] == "2020-03-01"
    assert "authoredOn" not in order


def test_requester_becomes_requester_agent_with_its_display_in_stu3() -> None:
    assert convert(R4_REQUEST, "r4", "stu3")["requester"] == {
        "agent": {"reference": "Practitioner/d1", "display": "Dr Careful"}
    }


def test_requester_becomes_prescriber_with_its_display_in_dstu2() -> None:
    order = convert(R4_REQUEST, "r4", "dstu2")
    assert order["prescriber"] == {"reference": "Practitioner/d1", "display": "Dr Careful"}
    assert "requester" not in order


@pytest.mark.parametrize("target", ["stu3", "dstu2"])
def test_dosage_instruction_texts_reach_the_app(target: str) -> None:
    dosages = convert(R4_REQUEST, "r4", target)["dosageInstruction"]
    assert [d["text"] for d in dosages] == ["500 mg three times daily", "then once daily"]


@pytest.mark.parametrize("target", ["stu3", "dstu2"])
def test_narrative_div_reaches_the_app(target: str) -> None:
    assert convert(R4_REQUEST, "r4", target)["text"] == {"status": "generated", "div": DIV}


@pytest.mark.parametrize("status", ["completed", "stopped", "cancelled", "active"])
def test_date_ended_is_never_derived_from_an_end_the_order_was_only_allowed_to_run_to(
    status: str,
) -> None:
    """Issue 15 item 3. Input: an R4 request written 2024-01-10, validity period ending
    2025-01-10 and dosage bounds ending 2024-02-10. Expected: no DSTU2 dateEnded (the app
    showed 2025-01-10 as the stop date of a cancelled order). HL7's R3→R2 MedicationRequest map
    (input/R3toR2/MedicationRequest.fml) has no source for dateEnded."""
    bounds = {"repeat": {"boundsPeriod": {"start": "2024-01-10", "end": "2024-02-10"}}}
    r4 = _r4(status=status, authoredOn="2024-01-10", dosageInstruction=[{"timing": bounds}])
    r4["dispenseRequest"] = {"validityPeriod": {"start": "2024-01-10", "end": "2025-01-10"}}
    order = convert(r4, "r4", "dstu2")
    assert "dateEnded" not in order
    assert convert(order, "dstu2", "r4") == r4


def test_a_dstu2_date_ended_comes_back_after_a_round_trip_through_stu3() -> None:
    order = _dstu2(status="stopped", dateEnded="2020-01-05")
    stu3 = convert(order, "dstu2", "stu3")
    assert "dateEnded" not in stu3
    assert convert(stu3, "stu3", "dstu2")["dateEnded"] == "2020-01-05"


# -- round trips over generated R4 MedicationRequests -----------------------------------------

_text = st.text(alphabet=string.ascii_letters + "éü'", min_size=1, max_size=12)
_id = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=8)
_date = st.dates().map(lambda d: d.isoformat() if d.year > 999 else "1999-01-01")
_concepts = st.fixed_dictionaries(
    {"text": _text},
    optional={
        "coding": st.lists(
            st.fixed_dictionaries({"system": st.just("http://snomed.info/sct"), "code": _id}),
            min_size=1,
            max_size=2,
        )
    },
)
_quantities = st.fixed_dictionaries(
    {"value": st.integers(1, 500), "unit": st.sampled_from(["mg", "mL", "TAB"])}
)
_dose_and_rate = st.fixed_dictionaries(
    {},
    optional={
        "type": st.just({"coding": [{"system": "http://example.org/dose", "code": "ordered"}]}),
        "doseQuantity": _quantities,
        "rateRatio": st.builds(
            lambda n, d: {"numerator": n, "denominator": d}, _quantities, _quantities
        ),
    },
).filter(bool)
_repeats = st.fixed_dictionaries(
    {},
    optional={
        "frequency": st.integers(1, 4),
        "period": st.integers(1, 24),
        "periodUnit": st.sampled_from(["h", "d", "wk"]),
        "boundsPeriod": st.builds(lambda s: {"start": s}, _date),
        "when": st.lists(
            st.sampled_from(["HS", "WAKE", "ACM", "MORN", "MORN.early", "NOON", "EVE.late"]),
            min_size=1,
            max_size=3,
            unique=True,
        ),
        "dayOfWeek": st.lists(st.sampled_from(["mon", "wed", "fri"]), min_size=1, unique=True),
    },
)
_dosages = st.fixed_dictionaries(
    {"text": _text},
    optional={
        "sequence": st.integers(1, 3),
        "patientInstruction": _text,
        "additionalInstruction": st.lists(_concepts, min_size=1, max_size=2),
        "timing": st.builds(lambda r: {"repeat": r}, _repeats),
        "asNeededBoolean": st.booleans(),
        "site": _concepts,
        "route": _concepts,
        "doseAndRate": st.lists(_dose_and_rate, min_size=1, max_size=2),
    },
)
_refs = st.builds(
    lambda kind, ident, display: {"reference": f"{kind}/{ident}", "display": display},
    st.sampled_from(["Practitioner", "PractitionerRole", "Organization", "Patient"]),
    _id,
    _text,
)
_medications = st.one_of(
    st.builds(lambda c: {"medicationCodeableConcept": c}, _concepts),
    st.builds(
        lambda i, d: {"medicationReference": {"reference": f"Medication/{i}", "display": d}},
        _id,
        _text,
    ),
)
_requests = st.builds(
    lambda medication, base: {**base, **medication},
    _medications,
    st.fixed_dictionaries(
        {
            "resourceType": st.just("MedicationRequest"),
            "status": st.sampled_from(sorted(R4_STATUSES)),
            # the intents DSTU2 keeps (§8.1): orders and plans
            "intent": st.sampled_from(
                [
                    "order",
                    "original-order",
                    "reflex-order",
                    "filler-order",
                    "instance-order",
                    "plan",
                ]
            ),
            "subject": st.builds("Patient/{}".format, _id).map(lambda r: {"reference": r}),
        },
        optional={
            "id": _id,
            "text": st.just({"status": "generated", "div": DIV}),
            "authoredOn": _date,
            "requester": _refs,
            "dosageInstruction": st.lists(_dosages, min_size=1, max_size=2),
            "note": st.lists(st.fixed_dictionaries({"text": _text}), min_size=1, max_size=2),
            "category": st.lists(
                st.sampled_from(["inpatient", "outpatient", "community", "discharge"]).map(
                    lambda c: {"coding": [{"system": CATEGORY_R4, "code": c}]}
                ),
                min_size=1,
                max_size=2,
            ),
            "priority": st.sampled_from(["routine", "urgent", "asap", "stat"]),
            "statusReason": _concepts,
            "reasonCode": st.lists(_concepts, min_size=1, max_size=2),
            "encounter": st.builds("Encounter/{}".format, _id).map(lambda r: {"reference": r}),
            "recorder": _refs,
            "dispenseRequest": st.fixed_dictionaries(
                {},
                optional={
                    "numberOfRepeatsAllowed": st.integers(0, 5),
                    "quantity": _quantities,
                    "validityPeriod": st.builds(lambda e: {"end": e}, _date),
                },
            ),
            "substitution": st.one_of(
                st.builds(lambda b: {"allowedBoolean": b}, st.booleans()),
                st.sampled_from(["E", "N", "TB"]).map(
                    lambda c: {
                        "allowedCodeableConcept": {
                            "coding": [{"system": SUBSTITUTION_R4, "code": c}]
                        }
                    }
                ),
            ),
        },
    ),
)


def app_fields(request: dict[str, Any]) -> dict[str, Any]:
    """What the Patients app reads of an R4 MedicationRequest, in R4 terms (§1, §8)."""
    return {
        key: request.get(key)
        for key in ("text", "medicationCodeableConcept", "medicationReference", "authoredOn")
    } | {
        "requester": (request.get("requester") or {}).get("display"),
        "dosage": [d.get("text") for d in request.get("dosageInstruction", [])],
    }


@settings(max_examples=50, deadline=None)
@given(request=_requests, target=st.sampled_from(["stu3", "dstu2"]))
def test_r4_request_survives_a_round_trip_through_an_older_version(
    request: dict[str, Any], target: str
) -> None:
    assert_valid(request, "r4", "MedicationRequest", check_dstu2)  # the strategy makes valid R4
    older = convert(request, "r4", target)
    assert_valid(older, target, "MedicationRequest", check_dstu2)
    back = convert(older, target, "r4")
    assert app_fields(back) == app_fields(request)
    assert back == request  # everything else is carried as well


# -- R4 → STU3 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["stu3", "dstu2"])
def test_a_do_not_perform_request_is_refused_before_r4(target: str) -> None:
    with pytest.raises(ConversionError, match="doNotPerform"):
        convert(_r4(doNotPerform=True), "r4", target)


def test_do_not_perform_false_is_dropped() -> None:
    assert "doNotPerform" not in convert(_r4(doNotPerform=False), "r4", "stu3")


@pytest.mark.parametrize(
    ("r4", "stu3"),
    [
        ("original-order", "order"),
        ("reflex-order", "order"),
        ("filler-order", "order"),
        ("option", "proposal"),
    ],
)
def test_intents_stu3_lacks_become_order_or_proposal_and_ride_along(r4: str, stu3: str) -> None:
    request = convert(_r4(intent=r4), "r4", "stu3")
    assert request["intent"] == stu3
    assert extension_values(request, XVER_R4 + "MedicationRequest.intent") == [r4]
    assert convert(request, "stu3", "r4")["intent"] == r4


R4_ONLY = [
    ("statusReason", {"text": "patient choice"}, "MedicationRequest.statusReason"),
    ("reportedBoolean", True, "MedicationRequest.reported"),
    ("reportedReference", {"reference": "Patient/p1"}, "MedicationRequest.reported"),
    ("performer", {"reference": "Practitioner/n1"}, "MedicationRequest.performer"),
    ("performerType", {"text": "nurse"}, "MedicationRequest.performerType"),
    ("instantiatesUri", ["http://example.org/protocol"], "MedicationRequest.instantiatesUri"),
    ("courseOfTherapyType", {"text": "acute"}, "MedicationRequest.courseOfTherapyType"),
    ("insurance", [{"reference": "Coverage/c1"}], "MedicationRequest.insurance"),
]


@pytest.mark.parametrize(("element", "value", "path"), R4_ONLY)
def test_r4_only_elements_ride_along_in_extensions(element: str, value: Any, path: str) -> None:
    stu3 = convert(_r4(**{element: value}), "r4", "stu3")
    assert element not in stu3
    assert extension_values(stu3, XVER_R4 + path) == (value if isinstance(value, list) else [value])
    assert convert(stu3, "stu3", "r4")[element] == value


def _category(code: str) -> dict[str, Any]:
    return {"coding": [{"system": CATEGORY_R4, "code": code}]}


def test_first_category_stu3_can_hold_is_kept_and_every_category_rides_along() -> None:
    categories = [_category("discharge"), _category("inpatient")]
    stu3 = convert(_r4(category=categories), "r4", "stu3")
    assert stu3["category"]["coding"][0]["code"] == "inpatient"
    assert len(extension_values(stu3, XVER_R4 + "MedicationRequest.category")) == 2
    assert convert(stu3, "stu3", "r4")["category"] == categories


def test_a_single_category_is_not_carried() -> None:
    stu3 = convert(_r4(category=[_category("outpatient")]), "r4", "stu3")
    assert "extension" not in stu3


def test_encounter_becomes_context_in_stu3_and_encounter_again_in_dstu2() -> None:
    encounter = {"reference": "Encounter/e1"}
    assert convert(_r4(encounter=encounter), "r4", "stu3")["context"] == encounter
    assert convert(_r4(encounter=encounter), "r4", "dstu2")["encounter"] == encounter


def test_requester_on_behalf_of_extension_becomes_requester_on_behalf_of() -> None:
    requester = {
        "reference": "Practitioner/d1",
        "extension": [{"url": ON_BEHALF_OF, "valueReference": {"reference": "Organization/o"}}],
    }
    stu3 = convert(_r4(requester=requester), "r4", "stu3")
    assert stu3["requester"] == {
        "agent": {"reference": "Practitioner/d1"},
        "onBehalfOf": {"reference": "Organization/o"},
    }
    assert convert(stu3, "stu3", "r4")["requester"] == requester


def test_practitioner_role_requester_keeps_only_display_in_stu3() -> None:
    requester = {"reference": "PractitionerRole/r1", "display": "Dr Careful"}
    stu3 = convert(_r4(requester=requester), "r4", "stu3")
    assert stu3["requester"]["agent"]["display"] == "Dr Careful"
    assert "reference" not in stu3["requester"]["agent"]


@pytest.mark.parametrize(
    ("element", "reference"),
    [
        ("recorder", {"reference": "PractitionerRole/r1", "display": "Nurse"}),
        ("reasonReference", [{"reference": "DiagnosticReport/d1", "display": "Scan"}]),
        ("basedOn", [{"reference": "ServiceRequest/s1", "display": "Referral"}]),
    ],
)
def test_references_to_types_stu3_does_not_allow_keep_only_display(
    element: str, reference: Any
) -> None:
    stu3 = convert(_r4(**{element: reference}), "r4", "stu3")
    kept = stu3[element][0] if isinstance(reference, list) else stu3[element]
    assert "reference" not in kept
    assert kept["display"]
    assert convert(stu3, "stu3", "r4")[element] == reference


def test_instantiates_canonical_becomes_definition_without_its_version() -> None:
    r4 = _r4(instantiatesCanonical=["http://example.org/PlanDefinition/p|2.0"])
    stu3 = convert(r4, "r4", "stu3")
    assert stu3["definition"] == [{"reference": "http://example.org/PlanDefinition/p"}]


@pytest.mark.parametrize(("code", "allowed"), [("N", False), ("E", True), ("TB", True)])
def test_allowed_codeable_concept_becomes_allowed_and_rides_along(code: str, allowed: bool) -> None:
    concept = {"coding": [{"system": SUBSTITUTION_R4, "code": code}]}
    stu3 = convert(_r4(substitution={"allowedCodeableConcept": concept}), "r4", "stu3")
    assert stu3["substitution"]["allowed"] is allowed
    assert convert(stu3, "stu3", "r4")["substitution"] == {"allowedCodeableConcept": concept}


@pytest.mark.parametrize(
    "concept",
    [
        {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "N"}]},
        {"coding": [{"system": "urn:oid:2.16.840.1.113883.5.1070", "code": "N"}]},
        {"coding": [{"code": "N"}]},
        {"text": "Dispense as written"},
        {"coding": [{"system": "http://example.org/local", "code": "DAW"}]},
    ],
    ids=["actcode-N", "other-system-N", "no-system-N", "text-only", "unknown-code"],
)
def test_do_not_substitute_is_never_turned_into_substitution_allowed(concept: Any) -> None:
    """Issue 15 item 6. Input: R4 substitution.allowedCodeableConcept saying N (none) under
    v3 ActCode (where HL7's v3 substitution codes also live), another system, no system, or
    readable only as text. Expected: STU3 allowed = false (before: true). No official map
    (R4→R3 MedicationRequest.fml has none for allowed[x]): proxy decision, §8.1."""
    stu3 = convert(_r4(substitution={"allowedCodeableConcept": concept}), "r4", "stu3")
    assert stu3["substitution"]["allowed"] is False
    assert convert(stu3, "stu3", "r4")["substitution"] == {"allowedCodeableConcept": concept}


def test_zero_repeats_allowed_rides_along() -> None:
    stu3 = convert(_r4(dispenseRequest={"numberOfRepeatsAllowed": 0}), "r4", "stu3")
    assert "numberOfRepeatsAllowed" not in stu3["dispenseRequest"]
    path = "MedicationRequest.dispenseRequest.numberOfRepeatsAllowed"
    assert extension_values(stu3["dispenseRequest"], XVER_R4 + path) == [0]


def test_initial_fill_and_dispense_interval_ride_along() -> None:
    dispense = {
        "initialFill": {"quantity": {"value": 10}, "duration": {"value": 3, "code": "d"}},
        "dispenseInterval": {"value": 30, "code": "d"},
    }
    stu3 = convert(_r4(dispenseRequest=dispense), "r4", "stu3")
    assert set(stu3["dispenseRequest"]) == {"extension"}
    assert convert(stu3, "stu3", "r4")["dispenseRequest"] == dispense


def test_first_dose_and_rate_becomes_dose_and_rate() -> None:
    dosage = {"doseAndRate": [{"doseQuantity": {"value": 2}, "rateRange": {"low": {"value": 1}}}]}
    stu3 = convert(_r4(dosageInstruction=[dosage]), "r4", "stu3")["dosageInstruction"][0]
    assert stu3 == {"doseQuantity": {"value": 2}, "rateRange": {"low": {"value": 1}}}


def test_dose_and_rate_type_and_further_entries_ride_along() -> None:
    entries = [
        {"type": {"text": "ordered"}, "doseQuantity": {"value": 2}},
        {"type": {"text": "calculated"}, "doseQuantity": {"value": 3}},
    ]
    stu3 = convert(_r4(dosageInstruction=[{"doseAndRate": entries}]), "r4", "stu3")
    dosage = stu3["dosageInstruction"][0]
    assert dosage["doseQuantity"] == {"value": 2}
    assert len(extension_values(dosage, XVER_R4 + "Dosage.doseAndRate")) == 2
    assert convert(stu3, "stu3", "r4")["dosageInstruction"] == [{"doseAndRate": entries}]


def test_when_codes_stu3_lacks_are_dropped_and_the_list_rides_along() -> None:
    timing = {"repeat": {"when": ["MORN.early", "HS"]}}
    stu3 = convert(_r4(dosageInstruction=[{"timing": timing}]), "r4", "stu3")
    repeat = stu3["dosageInstruction"][0]["timing"]["repeat"]
    assert repeat["when"] == ["HS"]
    assert extension_values(repeat, XVER_R4 + "Timing.repeat.when") == ["MORN.early", "HS"]


# -- STU3 → R4 ---------------------------------------------------------------------------------


def _stu3(**elements: Any) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "intent": "order",
        "medicationCodeableConcept": {"text": "Amoxicillin"},
        "subject": {"reference": "Patient/p1"},
        **elements,
    }


def test_a_dosage_without_dose_or_rate_gets_no_dose_and_rate() -> None:
    """HAPI 10_40 adds an empty doseAndRate (§8.2, §15)."""
    r4 = convert(_stu3(status="active", dosageInstruction=[{"text": "x"}]), "stu3", "r4")
    assert r4["dosageInstruction"] == [{"text": "x"}]


def test_missing_status_becomes_unknown_in_r4() -> None:
    assert convert(_stu3(), "stu3", "r4")["status"] == "unknown"


def test_dose_simple_quantity_written_by_hapi_is_read_as_dose_quantity() -> None:
    dosage = {"doseSimpleQuantity": {"value": 2}}
    r4 = convert(_stu3(status="active", dosageInstruction=[dosage]), "stu3", "r4")
    assert r4["dosageInstruction"][0]["doseAndRate"] == [{"doseQuantity": {"value": 2}}]


# -- STU3 → DSTU2 ------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["stu3", "r4"])
def test_a_plan_is_a_medication_order_in_dstu2_with_its_intent_carried(source: str) -> None:
    """Issue 15 item 1. Input: a MedicationRequest with intent plan (how EHRs record home and
    care-plan medications). Expected: a DSTU2 MedicationOrder, intent plan in
    3.0/extension-MedicationRequest.intent, restored on the way back. HL7's R3→R2 map
    (input/R3toR2/MedicationRequest.fml) converts every MedicationRequest, whatever its intent."""
    request = _stu3(intent="plan") if source == "stu3" else _r4(intent="plan")
    order = convert(request, source, "dstu2")
    assert order["resourceType"] == "MedicationOrder"
    assert extension_values(order, XVER_STU3 + "MedicationRequest.intent") == ["plan"]
    assert convert(order, "dstu2", source) == request


def test_a_plan_is_listed_in_a_dstu2_searchset_and_counted() -> None:
    searchset = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 1,
        "entry": [{"resource": _r4(intent="plan"), "search": {"mode": "match"}}],
    }
    converted = convert(searchset, "r4", "dstu2")
    assert converted["entry"][0]["resource"]["resourceType"] == "MedicationOrder"
    assert converted["total"] == 1


@pytest.mark.parametrize(("source", "intent"), [("stu3", "proposal"), ("r4", "option")])
def test_proposals_and_options_are_left_out_of_dstu2(source: str, intent: str) -> None:
    """A proposal or option is a suggestion nobody has decided (R4 definitions); a DSTU2 list
    would show it as a prescription (medication_request.md)."""
    request = _stu3(intent=intent) if source == "stu3" else _r4(intent=intent)
    with pytest.raises(ConversionError, match="not a MedicationOrder"):
        convert(request, source, "dstu2")


def test_a_proposal_left_out_of_a_dstu2_searchset_is_not_counted() -> None:
    searchset = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 2,
        "entry": [
            {"resource": _r4(intent="proposal"), "search": {"mode": "match"}},
            {"resource": _r4(intent="plan"), "search": {"mode": "match"}},
        ],
    }
    converted = convert(searchset, "r4", "dstu2")
    assert converted["entry"][0]["resource"]["resourceType"] == "OperationOutcome"
    assert converted["total"] == 1


def test_instance_order_intent_rides_along_in_dstu2() -> None:
    order = convert(_stu3(intent="instance-order"), "stu3", "dstu2")
    assert extension_values(order, XVER_STU3 + "MedicationRequest.intent") == ["instance-order"]
    assert convert(order, "dstu2", "stu3")["intent"] == "instance-order"


@pytest.mark.parametrize(("stu3", "dstu2"), [("cancelled", "stopped"), ("unknown", None)])
def test_statuses_dstu2_lacks_follow_the_official_map_and_ride_along(
    stu3: str, dstu2: str | None
) -> None:
    order = convert(_stu3(status=stu3), "stu3", "dstu2")
    assert order.get("status") == dstu2
    assert extension_values(order, XVER_STU3 + "MedicationRequest.status") == [stu3]
    assert convert(order, "dstu2", "stu3")["status"] == stu3


STU3_ONLY = [
    ("category", {"text": "inpatient"}),
    ("priority", "urgent"),
    ("supportingInformation", [{"reference": "Observation/o1"}]),
    ("recorder", {"reference": "Practitioner/r1"}),
    ("definition", [{"reference": "ActivityDefinition/a1"}]),
    ("basedOn", [{"reference": "CarePlan/c1"}]),
    ("groupIdentifier", {"value": "g1"}),
    ("detectedIssue", [{"reference": "DetectedIssue/d1"}]),
    ("eventHistory", [{"reference": "Provenance/p1"}]),
]


@pytest.mark.parametrize(("element", "value"), STU3_ONLY)
def test_elements_dstu2_lacks_ride_along_in_extensions(element: str, value: Any) -> None:
    order = convert(_stu3(**{element: value}), "stu3", "dstu2")
    assert element not in order
    assert extension_values(order, XVER_STU3 + f"MedicationRequest.{element}") == (
        value if isinstance(value, list) else [value]
    )
    assert convert(order, "dstu2", "stu3")[element] == value


def test_subject_becomes_patient_and_a_group_keeps_only_display() -> None:
    assert convert(_stu3(), "stu3", "dstu2")["patient"] == {"reference": "Patient/p1"}
    group = {"reference": "Group/g1", "display": "Ward 3"}
    order = convert(_stu3(subject=group), "stu3", "dstu2")
    assert order["patient"]["display"] == "Ward 3"
    assert "reference" not in order["patient"]
    assert convert(order, "dstu2", "stu3")["subject"] == group


def test_a_requester_who_is_not_a_practitioner_keeps_only_display_as_prescriber() -> None:
    requester = {"reference": "Organization/o1", "display": "Acme Clinic"}
    order = convert(_r4(requester=requester), "r4", "dstu2")
    assert order["prescriber"]["display"] == "Acme Clinic"
    assert "reference" not in order["prescriber"]
    assert convert(order, "dstu2", "r4")["requester"] == requester


def test_on_behalf_of_rides_on_the_prescriber() -> None:
    requester = {"agent": {"reference": "Practitioner/d1"}, "onBehalfOf": {"reference": "O/1"}}
    order = convert(_stu3(requester=requester), "stu3", "dstu2")
    assert extension_values(
        order["prescriber"], XVER_STU3 + "MedicationRequest.requester.onBehalfOf"
    ) == [{"reference": "O/1"}]
    assert convert(order, "dstu2", "stu3")["requester"] == requester


def test_first_reason_code_is_the_dstu2_reason_and_every_reason_rides_along() -> None:
    codes = [{"text": "otitis"}, {"text": "fever"}]
    references = [{"reference": "Condition/c1"}]
    order = convert(_stu3(reasonCode=codes, reasonReference=references), "stu3", "dstu2")
    assert order["reasonCodeableConcept"] == {"text": "otitis"}
    assert "reasonReference" not in order
    back = convert(order, "dstu2", "stu3")
    assert (back["reasonCode"], back["reasonReference"]) == (codes, references)


def test_a_condition_is_the_dstu2_reason_when_there_is_no_code() -> None:
    references = [{"reference": "Observation/o1"}, {"reference": "Condition/c1"}]
    order = convert(_stu3(reasonReference=references), "stu3", "dstu2")
    assert order["reasonReference"] == {"reference": "Condition/c1"}
    assert convert(order, "dstu2", "stu3")["reasonReference"] == references


def test_a_single_reason_is_not_carried() -> None:
    order = convert(_stu3(reasonCode=[{"text": "otitis"}]), "stu3", "dstu2")
    assert "extension" not in order


def test_first_note_text_is_the_dstu2_note_and_the_notes_ride_along() -> None:
    notes = [{"text": "with food"}, {"text": "at night", "time": "2020-01-01"}]
    order = convert(_stu3(note=notes), "stu3", "dstu2")
    assert order["note"] == "with food"
    assert convert(order, "dstu2", "stu3")["note"] == notes


def test_a_single_plain_note_is_not_carried() -> None:
    order = convert(_stu3(note=[{"text": "with food"}]), "stu3", "dstu2")
    assert (order["note"], "extension" in order) == ("with food", False)


@pytest.mark.parametrize(("allowed", "code"), [(True, "E"), (False, "N")])
def test_substitution_allowed_becomes_type_e_or_n(allowed: bool, code: str) -> None:
    order = convert(_stu3(substitution={"allowed": allowed}), "stu3", "dstu2")
    assert order["substitution"] == {
        "type": {"coding": [{"system": SUBSTITUTION_OLD, "code": code}]}
    }
    assert convert(order, "dstu2", "stu3")["substitution"] == {"allowed": allowed}


def test_allowed_codeable_concept_is_the_dstu2_substitution_type() -> None:
    concept = {"coding": [{"system": SUBSTITUTION_R4, "code": "TB", "display": "brand"}]}
    order = convert(_r4(substitution={"allowedCodeableConcept": concept}), "r4", "dstu2")
    assert order["substitution"]["type"] == {
        "coding": [{"system": SUBSTITUTION_OLD, "code": "TB", "display": "brand"}]
    }


def test_dispense_performer_rides_along() -> None:
    dispense = {"performer": {"reference": "Organization/pharmacy"}, "quantity": {"value": 1}}
    order = convert(_stu3(dispenseRequest=dispense), "stu3", "dstu2")
    assert "performer" not in order["dispenseRequest"]
    assert convert(order, "dstu2", "stu3")["dispenseRequest"] == dispense


DOSAGE_STU3_ONLY = [
    ("sequence", 1),
    ("patientInstruction", "take with water"),
    ("maxDosePerAdministration", {"value": 2}),
    ("maxDosePerLifetime", {"value": 200}),
    ("rateQuantity", {"value": 5}),  # DSTU2's rate[x] is Ratio or Range only (§8.2)
]


@pytest.mark.parametrize(("element", "value"), DOSAGE_STU3_ONLY)
def test_dosage_elements_dstu2_lacks_ride_along(element: str, value: Any) -> None:
    order = convert(_stu3(dosageInstruction=[{element: value}]), "stu3", "dstu2")
    dosage = order["dosageInstruction"][0]
    assert extension_values(dosage, XVER_STU3 + f"Dosage.{element}") == [value]
    assert convert(order, "dstu2", "stu3")["dosageInstruction"] == [{element: value}]


def test_first_additional_instruction_is_additional_instructions_in_dstu2() -> None:
    instructions = [{"text": "with food"}, {"text": "no alcohol"}]
    order = convert(
        _stu3(dosageInstruction=[{"additionalInstruction": instructions}]), "stu3", "dstu2"
    )
    assert order["dosageInstruction"][0]["additionalInstructions"] == {"text": "with food"}
    back = convert(order, "dstu2", "stu3")["dosageInstruction"][0]
    assert back == {"additionalInstruction": instructions}


def test_site_becomes_site_codeable_concept_in_dstu2() -> None:
    order = convert(_stu3(dosageInstruction=[{"site": {"text": "arm"}}]), "stu3", "dstu2")
    assert order["dosageInstruction"][0] == {"siteCodeableConcept": {"text": "arm"}}


def test_timing_keys_take_their_dstu2_names() -> None:
    repeat = {"boundsDuration": {"value": 5}, "durationUnit": "min", "periodUnit": "d"}
    order = convert(_stu3(dosageInstruction=[{"timing": {"repeat": repeat}}]), "stu3", "dstu2")
    assert order["dosageInstruction"][0]["timing"]["repeat"] == {
        "boundsQuantity": {"value": 5},
        "durationUnits": "min",
        "periodUnits": "d",
    }


def test_first_dstu2_when_code_is_kept_and_the_list_rides_along() -> None:
    repeat = {"when": ["MORN", "ACM", "HS"]}
    order = convert(_stu3(dosageInstruction=[{"timing": {"repeat": repeat}}]), "stu3", "dstu2")
    dstu2 = order["dosageInstruction"][0]["timing"]["repeat"]
    assert dstu2["when"] == "ACM"
    assert convert(order, "dstu2", "stu3")["dosageInstruction"][0]["timing"]["repeat"] == repeat


@pytest.mark.parametrize(
    ("element", "value"),
    [("countMax", 3), ("dayOfWeek", ["mon"]), ("timeOfDay", ["08:00:00"]), ("offset", 30)],
)
def test_timing_elements_dstu2_lacks_ride_along(element: str, value: Any) -> None:
    timing = {"repeat": {element: value}}
    order = convert(_stu3(dosageInstruction=[{"timing": timing}]), "stu3", "dstu2")
    assert element not in order["dosageInstruction"][0]["timing"]["repeat"]
    assert convert(order, "dstu2", "stu3")["dosageInstruction"][0]["timing"] == timing


def test_status_reason_of_an_ended_order_is_its_reason_ended() -> None:
    r4 = _r4(status="stopped", statusReason={"text": "side effects"})
    order = convert(r4, "r4", "dstu2")
    assert order["reasonEnded"] == {"text": "side effects"}
    assert convert(order, "dstu2", "r4") == r4  # derived, so dropped on the way up


def test_medication_reference_display_is_filled_from_a_contained_medication() -> None:
    r4 = _r4(
        contained=[{"resourceType": "Medication", "id": "m", "code": {"text": "Oxycodone"}}],
        medicationReference={"reference": "#m"},
    )
    del r4["medicationCodeableConcept"]
    for target in ("stu3", "dstu2"):
        assert convert(r4, "r4", target)["medicationReference"]["display"] == "Oxycodone"


def test_prior_prescription_points_at_a_medication_order_in_dstu2() -> None:
    order = convert(_r4(priorPrescription={"reference": "MedicationRequest/7"}), "r4", "dstu2")
    assert order["priorPrescription"] == {"reference": "MedicationOrder/7"}


# -- DSTU2 → STU3 ------------------------------------------------------------------------------


def _dstu2(**elements: Any) -> dict[str, Any]:
    return {
        "resourceType": "MedicationOrder",
        "patient": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {"text": "Amoxicillin"},
        **elements,
    }


def test_a_dstu2_order_is_a_medication_request_with_intent_order() -> None:
    stu3 = convert(_dstu2(dateWritten="2020", prescriber={"display": "Dr A"}), "dstu2", "stu3")
    assert (stu3["resourceType"], stu3["intent"]) == ("MedicationRequest", "order")
    assert (stu3["authoredOn"], stu3["requester"]) == ("2020", {"agent": {"display": "Dr A"}})
    assert stu3["subject"] == {"reference": "Patient/p1"}


DSTU2_ONLY = [
    ("dateEnded", "2020-01-01", "MedicationOrder.dateEnded"),
    ("reasonEnded", {"text": "cured"}, "MedicationOrder.reasonEnded"),
]


@pytest.mark.parametrize(("element", "value", "path"), DSTU2_ONLY)
def test_dstu2_only_elements_ride_along(element: str, value: Any, path: str) -> None:
    stu3 = convert(_dstu2(status="active", **{element: value}), "dstu2", "stu3")
    assert extension_values(stu3, XVER_DSTU2 + path) == [value]
    assert convert(stu3, "stu3", "dstu2")[element] == value


def test_dstu2_dispense_medication_and_site_reference_ride_along() -> None:
    order = _dstu2(
        dispenseRequest={"medicationReference": {"reference": "Medication/m"}},
        dosageInstruction=[{"siteReference": {"reference": "BodySite/b"}}],
    )
    stu3 = convert(order, "dstu2", "stu3")
    assert stu3["dispenseRequest"] == {
        "extension": [
            {
                "url": XVER_DSTU2 + "MedicationOrder.dispenseRequest.medication",
                "valueReference": {"reference": "Medication/m"},
            }
        ]
    }
    assert convert(stu3, "stu3", "dstu2") == order


def test_a_dstu2_substitution_type_n_under_act_code_is_not_allowed() -> None:
    kind = {"coding": [{"system": "http://hl7.org/fhir/v3/ActCode", "code": "N"}]}
    stu3 = convert(_dstu2(substitution={"type": kind}), "dstu2", "stu3")
    assert stu3["substitution"]["allowed"] is False
    assert convert(stu3, "stu3", "dstu2")["substitution"] == {"type": kind}


def test_a_dstu2_substitution_type_other_than_e_or_n_rides_along() -> None:
    kind = {"coding": [{"system": SUBSTITUTION_OLD, "code": "G"}]}
    stu3 = convert(_dstu2(substitution={"type": kind}), "dstu2", "stu3")
    assert stu3["substitution"]["allowed"] is True
    assert convert(stu3, "stu3", "dstu2")["substitution"] == {"type": kind}


def test_a_dstu2_order_without_patient_gets_a_marked_subject() -> None:
    order = _dstu2()
    del order["patient"]
    stu3 = convert(order, "dstu2", "stu3")
    assert stu3["subject"] == SUPPLIED
    assert "patient" not in convert(stu3, "stu3", "dstu2")


def test_string_booleans_written_by_epic_are_read_as_booleans() -> None:
    order = _dstu2(dosageInstruction=[{"asNeededBoolean": "False"}])
    assert convert(order, "dstu2", "stu3")["dosageInstruction"] == [{"asNeededBoolean": False}]


def test_a_reason_reference_list_written_by_synthea_is_accepted() -> None:
    order = _dstu2(reasonReference=[{"reference": "urn:uuid:1"}])
    assert convert(order, "dstu2", "stu3")["reasonReference"] == [{"reference": "urn:uuid:1"}]


def test_a_primitive_extension_of_a_carried_element_rides_with_it() -> None:
    """Issue 15 item 9: ``_priority`` (the id and extensions of a primitive) was dropped when
    priority was carried into DSTU2. Expected: it rides as the carried value's own twin
    (``_valueCode``, FHIR's JSON form for a primitive's extensions) and comes back."""
    twin = {"extension": [{"url": "http://example.org/why", "valueString": "triage"}]}
    stu3 = _stu3(priority="urgent", _priority=twin)
    order = convert(stu3, "stu3", "dstu2")
    [carried] = [e for e in order["extension"] if e["url"].endswith("MedicationRequest.priority")]
    assert carried["_valueCode"] == twin
    assert convert(order, "dstu2", "stu3") == stu3
