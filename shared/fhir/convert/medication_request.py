"""MedicationRequest (R4, STU3) ⇄ MedicationOrder (DSTU2) (§8), with the Dosage data-type rules
(§8.2; a Dosage's Timing follows datatypes.py, §2.5). Section numbers (§) refer to
docs/conversion/mapping.md.

Requests that cannot be expressed faithfully raise ConversionError (§2.8 "filter"): the Bundle
converter then leaves them out with an OperationOutcome entry. Decisions:
docs/conversion/medication_request.md.
"""

from __future__ import annotations

from typing import Any

from shared.fhir.convert.carry import carried, carry, peek, restore, restore_choice
from shared.fhir.convert.common import (
    ConversionError,
    Resource,
    add_xver,
    codeable_text,
    concept,
    convert_reference,
    convert_references,
    items,
    map_code,
    narrow_reference,
    note_references,
    prune_empty_twins,
    reference_type,
    rename,
    restore_reference,
    type_name,
)
from shared.fhir.convert.contained import convert_contained
from shared.fhir.convert.datatypes import convert_timing
from shared.fhir.convert.repair import repair
from shared.fhir.convert.supplied import is_supplied, supplied

_R = "MedicationRequest"  # paths of carried STU3/R4 elements
_O = "MedicationOrder"  # paths of carried DSTU2 elements

# R4 intents STU3 lacks (official map: none; §8.1 proxy decision).
_INTENT_STU3 = {
    "original-order": "order",
    "reflex-order": "order",
    "filler-order": "order",
    "option": "proposal",
}
# Intents a DSTU2 MedicationOrder holds (§8.1): orders, and plans (what EHRs record for home
# and care-plan medications: the patient takes them). A proposal (R4 option arrives as one) is
# a suggestion nobody has decided: left out of DSTU2 results (§2.8, proxy decision).
_DSTU2_INTENTS = frozenset({"order", "instance-order", "plan"})
# R3→R2 ConceptMap: cancelled is narrower than stopped; unknown has no map.
_STATUS_DSTU2 = {"cancelled": "stopped"}
_STATUSES_DSTU2 = frozenset(
    {"active", "on-hold", "completed", "entered-in-error", "stopped", "draft"}
)
_ENDED = frozenset({"completed", "stopped", "cancelled"})
# v3 SubstanceAdminSubstitution codes (also in v3 ActCode, the system the usual recommendation
# names): N is "none"; every other code names a substitution that is allowed.
_SUBSTITUTION_CODES = frozenset({"E", "EC", "BC", "G", "TE", "TB", "TG", "F", "N"})
# medicationrequest-category codes STU3 has (R4 added discharge).
_CATEGORIES_STU3 = frozenset({"inpatient", "outpatient", "community"})
_CATEGORY_SYSTEMS = frozenset(
    {
        "http://terminology.hl7.org/CodeSystem/medicationrequest-category",
        "http://hl7.org/fhir/medication-request-category",
    }
)
# The official home of STU3's requester.onBehalfOf in R4 (and, by the same URL, in DSTU2).
_ON_BEHALF_OF = "MedicationRequest.requester.onBehalfOf"
# Reference targets the older release of a step allows (§8.1).
_AGENT_STU3 = frozenset({"Practitioner", "Organization", "Patient", "RelatedPerson", "Device"})
_RECORDER_STU3 = frozenset({"Practitioner"})
_REASON_STU3 = frozenset({"Condition", "Observation"})
_BASED_ON_STU3 = frozenset({"CarePlan", "MedicationRequest", "ProcedureRequest", "ReferralRequest"})
_PRESCRIBER_DSTU2 = frozenset({"Practitioner"})
_PATIENT_DSTU2 = frozenset({"Patient"})
_REASON_DSTU2 = frozenset({"Condition"})
# DSTU2 substitution.type from STU3's boolean (§8.1 proxy decision): E equivalent, N none.
_SUBSTITUTION = "http://hl7.org/fhir/v3/substanceAdminSubstitution"
_SUBSTITUTION_SYSTEMS = frozenset(
    {
        _SUBSTITUTION,
        "http://terminology.hl7.org/CodeSystem/v3-substanceAdminSubstitution",
        "http://hl7.org/fhir/v3/ActCode",
        "http://terminology.hl7.org/CodeSystem/v3-ActCode",
    }
)
_REFERENCES = (
    "subject",
    "patient",
    "context",
    "encounter",
    "requester",
    "prescriber",
    "recorder",
    "supportingInformation",
    "reasonReference",
    "basedOn",
    "priorPrescription",
    "detectedIssue",
    "eventHistory",
    "definition",
    "medicationReference",
)
# Elements with no home in the older release of a step: (element, path, extension value key).
_CARRY_R4: tuple[tuple[str, str, str], ...] = (
    ("statusReason", f"{_R}.statusReason", "valueCodeableConcept"),
    ("reportedBoolean", f"{_R}.reported", "valueBoolean"),
    ("reportedReference", f"{_R}.reported", "valueReference"),
    ("performer", f"{_R}.performer", "valueReference"),
    ("performerType", f"{_R}.performerType", "valueCodeableConcept"),
    ("instantiatesUri", f"{_R}.instantiatesUri", "valueUri"),
    ("courseOfTherapyType", f"{_R}.courseOfTherapyType", "valueCodeableConcept"),
    ("insurance", f"{_R}.insurance", "valueReference"),
)
_CARRY_STU3: tuple[tuple[str, str, str], ...] = (
    ("category", f"{_R}.category", "valueCodeableConcept"),
    ("priority", f"{_R}.priority", "valueCode"),
    ("supportingInformation", f"{_R}.supportingInformation", "valueReference"),
    ("recorder", f"{_R}.recorder", "valueReference"),
    ("definition", f"{_R}.definition", "valueReference"),
    ("basedOn", f"{_R}.basedOn", "valueReference"),
    ("groupIdentifier", f"{_R}.groupIdentifier", "valueIdentifier"),
    ("detectedIssue", f"{_R}.detectedIssue", "valueReference"),
    ("eventHistory", f"{_R}.eventHistory", "valueReference"),
)
_MANY = frozenset(
    {
        "instantiatesUri",
        "insurance",
        "supportingInformation",
        "definition",
        "basedOn",
        "detectedIssue",
        "eventHistory",
    }
)
_DISPENSE_R4 = (
    ("dispenseInterval", f"{_R}.dispenseRequest.dispenseInterval", "valueQuantity"),
    ("numberOfRepeatsAllowed", f"{_R}.dispenseRequest.numberOfRepeatsAllowed", "valueInteger"),
)
_INITIAL_FILL = ("quantity", "duration")
# DSTU2's dispenseRequest.medication[x] (no STU3 home) and its extension value keys.
_DISPENSE_MEDICATION = (
    ("medicationCodeableConcept", "valueCodeableConcept"),
    ("medicationReference", "valueReference"),
)

# -- Dosage (§8.2) -----------------------------------------------------------------------------

_DOSE_RATE = ("doseRange", "doseQuantity", "rateRatio", "rateRange", "rateQuantity")
# HAPI's STU3 output names the SimpleQuantity choices after the profile; STU3 JSON says Quantity.
_SIMPLE_QUANTITY = (("doseSimpleQuantity", "doseQuantity"), ("rateSimpleQuantity", "rateQuantity"))
_SITE_REFERENCE = f"{_O}.dosageInstruction.siteReference"  # DSTU2's Ref(BodySite) choice
_DOSAGE_CARRY = (
    ("sequence", "Dosage.sequence", "valueInteger"),
    ("patientInstruction", "Dosage.patientInstruction", "valueString"),
    ("maxDosePerAdministration", "Dosage.maxDosePerAdministration", "valueQuantity"),
    ("maxDosePerLifetime", "Dosage.maxDosePerLifetime", "valueQuantity"),
    # DSTU2's rate[x] has no Quantity (§8.2).
    ("rateQuantity", "Dosage.rateQuantity", "valueQuantity"),
)


def _dose_and_rate_down(dosage: dict[str, Any]) -> None:
    """doseAndRate[0].dose[x]/rate[x] → dose[x]/rate[x] (official); when that loses anything
    (a type, further entries), every entry rides along in a complex extension."""
    entries = items(dosage.pop("doseAndRate", None))
    if entries:
        dosage.update({k: v for k, v in entries[0].items() if k in _DOSE_RATE})
    if len(entries) > 1 or any(set(entry) - set(_DOSE_RATE) for entry in entries):
        for entry in entries:
            parts = [
                {"url": key[:4] if key in _DOSE_RATE else key, _part_key(key): value}
                for key, value in entry.items()
                if key in (*_DOSE_RATE, "type")
            ]
            add_xver(dosage, "r4", "Dosage.doseAndRate", "extension", parts)


def _part_key(key: str) -> str:
    return "valueCodeableConcept" if key == "type" else "value" + key[4:]


def _dose_and_rate_up(dosage: dict[str, Any]) -> None:
    entries = [
        {
            part["url"] + ("" if part["url"] == "type" else key[5:]): value
            for part in items(parts)
            for key, value in part.items()
            if key.startswith("value")
        }
        for _, parts in carried(dosage, "r4", "Dosage.doseAndRate")
    ]
    single = {key: dosage.pop(key) for key in _DOSE_RATE if key in dosage}
    if entries or single:  # never an empty doseAndRate (HAPI 10_40's defect, §8.2)
        dosage["doseAndRate"] = entries or [single]


def _dosage_to_dstu2(dosage: dict[str, Any]) -> None:
    rename(dosage, _SIMPLE_QUANTITY)
    for key, path, value_key in _DOSAGE_CARRY:
        carry(dosage, key, path, value_key, "stu3", "dstu2")
    instructions = items(dosage.pop("additionalInstruction", None))
    if instructions:
        dosage["additionalInstructions"] = instructions[0]  # DSTU2 holds one (§8.2)
    if len(instructions) > 1:
        for instruction in instructions:
            add_xver(
                dosage, "stu3", "Dosage.additionalInstruction", "valueCodeableConcept", instruction
            )
    rename(dosage, [("site", "siteCodeableConcept")])
    restore(dosage, "siteReference", _SITE_REFERENCE, "dstu2")


def _dosage_from_dstu2(dosage: dict[str, Any]) -> None:
    if isinstance(dosage.get("asNeededBoolean"), str):  # Epic's DSTU2 writes "False"
        dosage["asNeededBoolean"] = dosage["asNeededBoolean"].lower() == "true"
    carry(dosage, "siteReference", _SITE_REFERENCE, "valueReference", "dstu2", "stu3")
    rename(dosage, [("siteCodeableConcept", "site")])
    single = dosage.pop("additionalInstructions", None)
    restore(dosage, "additionalInstruction", "Dosage.additionalInstruction", "stu3", many=True)
    if single is not None and "additionalInstruction" not in dosage:
        dosage["additionalInstruction"] = [single]
    for key, path, _ in _DOSAGE_CARRY:
        restore(dosage, key, path, "stu3")


def _dosages(request: Resource, source: str, target: str) -> None:
    for dosage in items(request.get("dosageInstruction")):
        if (source, target) == ("r4", "stu3"):
            _dose_and_rate_down(dosage)
        elif (source, target) == ("stu3", "r4"):
            rename(dosage, _SIMPLE_QUANTITY)
            _dose_and_rate_up(dosage)
        elif target == "dstu2":
            _dosage_to_dstu2(dosage)
        else:
            _dosage_from_dstu2(dosage)
        convert_timing(dosage.get("timing"), source, target)


# -- MedicationRequest R4 ⇄ STU3 ---------------------------------------------------------------


def _category_code(category: Any) -> str | None:
    for coding in items(category.get("coding") if isinstance(category, dict) else None):
        if coding.get("system") in _CATEGORY_SYSTEMS:
            return str(coding.get("code"))
    return None


def _categories_to_stu3(request: Resource) -> None:
    """STU3 holds one category, without R4's discharge: the first it can hold; when that loses
    anything, every category rides along (§8.1)."""
    categories = items(request.pop("category", None))
    fits = [c for c in categories if _category_code(c) in (*_CATEGORIES_STU3, None)]
    if fits:
        request["category"] = fits[0]
    if categories != fits[:1]:
        for category in categories:
            add_xver(request, "r4", f"{_R}.category", "valueCodeableConcept", category)


def _categories_to_r4(request: Resource) -> None:
    single = request.pop("category", None)
    restore(request, "category", f"{_R}.category", "r4", many=True)
    if single is not None and "category" not in request:
        request["category"] = [single]


def _requester_to_stu3(request: Resource) -> None:
    agent = request.pop("requester", None)
    if not isinstance(agent, dict):
        return
    on_behalf_of = [value for _, value in carried(agent, "stu3", _ON_BEHALF_OF)]
    narrow_reference(agent, _AGENT_STU3, "r4")
    request["requester"] = {"agent": agent}
    if on_behalf_of:
        request["requester"]["onBehalfOf"] = on_behalf_of[0]


def _requester_to_r4(request: Resource) -> None:
    requester = request.pop("requester", None)
    agent = requester.get("agent") if isinstance(requester, dict) else None
    if not isinstance(agent, dict):
        return
    restore_reference(agent, "r4")
    if isinstance(requester, dict) and requester.get("onBehalfOf"):
        add_xver(agent, "stu3", _ON_BEHALF_OF, "valueReference", requester["onBehalfOf"])
    request["requester"] = agent


def _substitution_to_stu3(request: Resource) -> None:
    substitution = request.get("substitution")
    if not isinstance(substitution, dict):
        return
    if "allowedCodeableConcept" in substitution:
        # No official map (§8.1 proxy decision): allowed only when the concept says so.
        allowed = substitution.pop("allowedCodeableConcept")
        substitution["allowed"] = substitution_allowed(allowed)
        add_xver(substitution, "r4", f"{_R}.substitution.allowed", "valueCodeableConcept", allowed)
    rename(substitution, [("allowedBoolean", "allowed")])


def _substitution_to_r4(request: Resource) -> None:
    substitution = request.get("substitution")
    if not isinstance(substitution, dict):
        return
    restore(substitution, "allowedCodeableConcept", f"{_R}.substitution.allowed", "r4")
    if "allowedCodeableConcept" in substitution:
        substitution.pop("allowed", None)
    rename(substitution, [("allowed", "allowedBoolean")])


def _substitution_code(value: Any) -> str | None:
    for coding in items(value.get("coding") if isinstance(value, dict) else None):
        if coding.get("system") in _SUBSTITUTION_SYSTEMS and coding.get("code") in (
            _SUBSTITUTION_CODES
        ):
            return str(coding["code"])
    return None


def substitution_allowed(value: Any) -> bool:
    """Whether a substitution CodeableConcept allows substituting (§8.1 proxy decision).

    Only a v3 substitution code other than N (in substanceAdminSubstitution or ActCode, either
    URI spelling) allows it. N under any system, text alone or an unknown system means "do not
    substitute": a pharmacist who keeps the prescribed product errs on the safe side, one who
    substitutes against a "dispense as written" does not.
    """
    if any(coding.get("code") == "N" for coding in items(_codings(value))):
        return False
    return _substitution_code(value) not in (None, "N")


def _codings(value: Any) -> Any:
    return value.get("coding") if isinstance(value, dict) else None


def _dispense_to_stu3(request: Resource) -> None:
    dispense = request.get("dispenseRequest")
    if not isinstance(dispense, dict):
        return
    for key, path, value_key in _DISPENSE_R4:
        # numberOfRepeatsAllowed: R4 unsignedInt, STU3 positiveInt: only 0 has no home (§2.5).
        if key != "numberOfRepeatsAllowed" or dispense.get(key) == 0:
            carry(dispense, key, path, value_key, "r4", "stu3")
    fill = dispense.pop("initialFill", None)
    for part in _INITIAL_FILL:
        value = fill.get(part) if isinstance(fill, dict) else None
        add_xver(dispense, "r4", f"{_R}.dispenseRequest.initialFill.{part}", "valueQuantity", value)


def _dispense_to_r4(request: Resource) -> None:
    dispense = request.get("dispenseRequest")
    if not isinstance(dispense, dict):
        return
    for key, path, _ in _DISPENSE_R4:
        restore(dispense, key, path, "r4")
    fill = {
        part: values[0][1]
        for part in _INITIAL_FILL
        if (values := carried(dispense, "r4", f"{_R}.dispenseRequest.initialFill.{part}"))
    }
    if fill:
        dispense["initialFill"] = fill


def _medication_display(request: Resource) -> None:
    """The app shows medicationReference.display: fill it from a contained Medication (§8.1)."""
    reference = request.get("medicationReference")
    if not isinstance(reference, dict) or reference.get("display"):
        return
    local = str(reference.get("reference", ""))
    for inner in items(request.get("contained")):
        if local.startswith("#") and inner.get("id") == local[1:]:
            display = codeable_text(inner.get("code"))
            if display:
                reference["display"] = display


def _references(request: Resource, target: str) -> None:
    convert_references(request, _REFERENCES, target)
    requester = request.get("requester")
    if target == "stu3" and isinstance(requester, dict) and "agent" in requester:
        convert_references(requester, ("agent", "onBehalfOf"), target)
    note_references(request, "note", target)
    convert_references(request.get("dispenseRequest"), ("performer", "medicationReference"), target)


def r4_to_stu3(request: Resource) -> Resource:
    """R4 MedicationRequest → STU3: doNotPerform refused; requester → requester.agent;
    encounter → context; doseAndRate → dose[x]/rate[x]; R4-only elements carried."""
    repair(request)
    if request.pop("doNotPerform", None) is True:
        # Dropping a modifier that says "do not" would invert the order (§8.1, §2.8).
        raise ConversionError("a MedicationRequest with doNotPerform has no STU3 counterpart")
    intent = request.get("intent")
    if intent in _INTENT_STU3:
        add_xver(request, "r4", f"{_R}.intent", "valueCode", intent)
        request["intent"] = _INTENT_STU3[intent]
    for key, path, value_key in _CARRY_R4:
        carry(request, key, path, value_key, "r4", "stu3")
    _categories_to_stu3(request)
    rename(request, [("encounter", "context")])
    _requester_to_stu3(request)
    narrow_reference(request.get("recorder"), _RECORDER_STU3, "r4")
    for reference in items(request.get("reasonReference")):
        narrow_reference(reference, _REASON_STU3, "r4")
    for reference in items(request.get("basedOn")):
        narrow_reference(reference, _BASED_ON_STU3, "r4")
    canonicals = request.pop("instantiatesCanonical", None) or []
    request.pop("_instantiatesCanonical", None)
    if canonicals:  # canonical → Reference (official); a |version suffix is not a reference
        request["definition"] = [{"reference": str(c).split("|")[0]} for c in canonicals]
    _substitution_to_stu3(request)
    _dispense_to_stu3(request)
    _dosages(request, "r4", "stu3")
    _medication_display(request)
    _references(request, "stu3")
    convert_contained(request, "r4", "stu3")
    return request


def stu3_to_r4(request: Resource) -> Resource:
    """STU3 MedicationRequest → R4: requester.agent → requester; context → encounter;
    dose[x]/rate[x] → doseAndRate; carried R4 elements restored."""
    repair(request)
    restore(request, "intent", f"{_R}.intent", "r4")
    for key, path, _ in _CARRY_R4:
        if not key.startswith("reported"):
            restore(request, key, path, "r4", many=key in _MANY)
    restore_choice(request, "reported", f"{_R}.reported", "r4")
    _categories_to_r4(request)
    rename(request, [("context", "encounter")])
    _requester_to_r4(request)
    restore_reference(request.get("recorder"), "r4")
    for reference in items(request.get("reasonReference")) + items(request.get("basedOn")):
        restore_reference(reference, "r4")
    definitions = items(request.pop("definition", None))
    canonicals = [d["reference"] for d in definitions if isinstance(d.get("reference"), str)]
    if canonicals:
        request["instantiatesCanonical"] = canonicals
    _substitution_to_r4(request)
    _dispense_to_r4(request)
    _dosages(request, "stu3", "r4")
    request.setdefault("status", "unknown")  # R4 requires it (STU3 0..1); R4 has the code
    _references(request, "r4")
    convert_contained(request, "stu3", "r4")
    return request


# -- MedicationRequest STU3 ⇄ MedicationOrder DSTU2 ----------------------------------------


def _status_to_dstu2(request: Resource) -> None:
    status = request.get("status")
    # cancelled (narrowed to stopped) and unknown (no map) ride along for the way back.
    if status in _STATUS_DSTU2 or (status and status not in _STATUSES_DSTU2):
        add_xver(request, "stu3", f"{_R}.status", "valueCode", status)
    map_code(request, "status", _STATUS_DSTU2, _STATUSES_DSTU2)


def _reasons_to_dstu2(request: Resource) -> None:
    """DSTU2 holds one reason: the first code, else the first Condition (§8.1); when that
    loses anything, every reason rides along."""
    codes = items(request.pop("reasonCode", None))
    references = items(request.pop("reasonReference", None))
    conditions = [r for r in references if reference_type(r) in (*_REASON_DSTU2, None)]
    if codes:
        request["reasonCodeableConcept"] = codes[0]
    elif conditions:
        request["reasonReference"] = conditions[0]
    if len(codes) + len(references) > (1 if codes or conditions else 0):
        for code in codes:
            add_xver(request, "stu3", f"{_R}.reasonCode", "valueCodeableConcept", code)
        for reference in references:
            reference = convert_reference(reference, "dstu2")
            add_xver(request, "stu3", f"{_R}.reasonReference", "valueReference", reference)


def _reasons_from_dstu2(request: Resource) -> None:
    # items(): Synthea's DSTU2 export writes reasonReference as a list.
    codes = items(request.pop("reasonCodeableConcept", None))
    references = items(request.pop("reasonReference", None))
    restore(request, "reasonCode", f"{_R}.reasonCode", "stu3", many=True)
    restore(request, "reasonReference", f"{_R}.reasonReference", "stu3", many=True)
    if "reasonCode" in request or "reasonReference" in request:
        return
    if codes:
        request["reasonCode"] = codes
    if references:
        request["reasonReference"] = references


def _notes_to_dstu2(request: Resource) -> None:
    """DSTU2's note is one string: the first note's text; anything more rides along (§8.1)."""
    notes = items(request.pop("note", None))
    if notes and notes[0].get("text"):
        request["note"] = notes[0]["text"]
    if notes != [{"text": request.get("note")}]:
        for note in notes:
            add_xver(request, "stu3", f"{_R}.note", "valueAnnotation", note)


def _notes_from_dstu2(request: Resource) -> None:
    text = request.pop("note", None)
    request.pop("_note", None)
    restore(request, "note", f"{_R}.note", "stu3", many=True)
    if text and "note" not in request:
        request["note"] = [{"text": text}]


def _substitution_to_dstu2(request: Resource) -> None:
    substitution = request.get("substitution")
    if not isinstance(substitution, dict):
        return
    allowed = substitution.pop("allowed", None)
    restore(substitution, "type", f"{_O}.substitution.type", "dstu2")  # DSTU2's own type
    if "type" in substitution:
        return
    original = peek(substitution, "r4", f"{_R}.substitution.allowed")
    if original:  # the R4 CodeableConcept is DSTU2's type (proxy decision, §8.1)
        substitution["type"] = original[0]
    else:
        substitution["type"] = concept(_SUBSTITUTION, "N" if allowed is False else "E")


def _substitution_from_dstu2(request: Resource) -> None:
    substitution = request.get("substitution")
    if not isinstance(substitution, dict):
        return
    kind = substitution.pop("type", None)
    code = _substitution_code(kind)
    substitution["allowed"] = substitution_allowed(kind)
    # Only a plain E or N is what the way down makes of a boolean; anything else rides along.
    made_here = code in ("E", "N") and kind == concept(_SUBSTITUTION, str(code))
    if not made_here and not peek(substitution, "r4", f"{_R}.substitution.allowed"):
        add_xver(substitution, "dstu2", f"{_O}.substitution.type", "valueCodeableConcept", kind)


def _prescriber_to_dstu2(request: Resource) -> None:
    requester = request.pop("requester", None)
    agent = requester.get("agent") if isinstance(requester, dict) else None
    if not isinstance(agent, dict):
        return
    narrow_reference(agent, _PRESCRIBER_DSTU2, "stu3")
    if isinstance(requester, dict) and requester.get("onBehalfOf"):
        on_behalf_of = convert_reference(requester["onBehalfOf"], "dstu2")
        add_xver(agent, "stu3", _ON_BEHALF_OF, "valueReference", on_behalf_of)
    request["prescriber"] = agent


def _prescriber_from_dstu2(request: Resource) -> None:
    prescriber = request.pop("prescriber", None)
    if not isinstance(prescriber, dict):
        return
    restore_reference(prescriber, "stu3")
    on_behalf_of = [value for _, value in carried(prescriber, "stu3", _ON_BEHALF_OF)]
    request["requester"] = {"agent": prescriber}
    if on_behalf_of:
        request["requester"]["onBehalfOf"] = on_behalf_of[0]


def _ended_to_dstu2(request: Resource, status: Any) -> None:
    # dateEnded has no source in STU3/R4 (HL7's R3→R2 map fills none): a validity period or a
    # dosage's bounds say until when an order may run, never that (or when) it ended. Only a
    # DSTU2 dateEnded carried up earlier is one (§8.1).
    reason = peek(request, "r4", f"{_R}.statusReason")
    if reason and status in _ENDED:  # proxy decision (§8.1): why it ended
        request["reasonEnded"] = reason[0]
    # DSTU2's own values, carried on an earlier way up, win over the derived ones.
    restore(request, "dateEnded", f"{_O}.dateEnded", "dstu2")
    restore(request, "reasonEnded", f"{_O}.reasonEnded", "dstu2")


def _ended_from_dstu2(order: Resource) -> None:
    """reasonEnded derived on the way down is dropped; DSTU2's own values ride along."""
    reason = peek(order, "r4", f"{_R}.statusReason")
    if reason and order.get("reasonEnded") == reason[0]:
        order.pop("reasonEnded")
    carry(order, "dateEnded", f"{_O}.dateEnded", "valueDateTime", "dstu2", "stu3")
    carry(order, "reasonEnded", f"{_O}.reasonEnded", "valueCodeableConcept", "dstu2", "stu3")


def stu3_to_dstu2(request: Resource) -> Resource:
    """STU3 MedicationRequest → DSTU2 MedicationOrder: proposals refused; subject →
    patient, authoredOn → dateWritten, requester.agent → prescriber; DSTU2 dosage shape."""
    repair(request)
    intent = request.pop("intent", None)
    if intent not in _DSTU2_INTENTS:
        raise ConversionError(f"a MedicationRequest with intent {intent} is not a MedicationOrder")
    if intent != "order":
        add_xver(request, "stu3", f"{_R}.intent", "valueCode", intent)
    status = request.get("status")
    _status_to_dstu2(request)
    for key, path, value_key in _CARRY_STU3:
        carry(request, key, path, value_key, "stu3", "dstu2")
    request["resourceType"] = type_name(_R, "dstu2")
    subject = request.pop("subject", None)
    if isinstance(subject, dict) and not is_supplied(subject):
        narrow_reference(subject, _PATIENT_DSTU2, "stu3")
        request["patient"] = subject
    rename(request, [("context", "encounter"), ("authoredOn", "dateWritten")])
    _prescriber_to_dstu2(request)
    _reasons_to_dstu2(request)
    _notes_to_dstu2(request)
    _substitution_to_dstu2(request)
    dispense = request.get("dispenseRequest")
    performer = f"{_R}.dispenseRequest.performer"
    carry(dispense, "performer", performer, "valueReference", "stu3", "dstu2")
    restore_choice(dispense, "medication", f"{_O}.dispenseRequest.medication", "dstu2")
    _dosages(request, "stu3", "dstu2")
    _ended_to_dstu2(request, status)
    _medication_display(request)
    _references(request, "dstu2")
    convert_contained(request, "stu3", "dstu2")
    return request


def dstu2_to_stu3(order: Resource) -> Resource:
    """DSTU2 MedicationOrder → STU3 MedicationRequest: intent order (official); patient →
    subject, dateWritten → authoredOn, prescriber → requester.agent; STU3 Dosage shape."""
    prune_empty_twins(order)
    repair(order)
    _ended_from_dstu2(order)
    order["resourceType"] = type_name(_O, "stu3")
    restore(order, "intent", f"{_R}.intent", "stu3")
    order.setdefault("intent", "order")
    restore(order, "status", f"{_R}.status", "stu3")
    for key, path, _ in _CARRY_STU3:
        restore(order, key, path, "stu3", many=key in _MANY)
    patient = order.pop("patient", None)
    restore_reference(patient, "stu3")
    order["subject"] = patient if isinstance(patient, dict) else supplied()  # STU3 requires it
    rename(order, [("encounter", "context"), ("dateWritten", "authoredOn")])
    _prescriber_from_dstu2(order)
    _reasons_from_dstu2(order)
    _notes_from_dstu2(order)
    _substitution_from_dstu2(order)
    dispense = order.get("dispenseRequest")
    if isinstance(dispense, dict):
        restore(dispense, "performer", f"{_R}.dispenseRequest.performer", "stu3")
        for key, value_key in _DISPENSE_MEDICATION:
            carry(dispense, key, f"{_O}.dispenseRequest.medication", value_key, "dstu2", "stu3")
    _dosages(order, "dstu2", "stu3")
    _references(order, "stu3")
    convert_contained(order, "dstu2", "stu3")
    return order
