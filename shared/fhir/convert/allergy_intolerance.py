"""AllergyIntolerance between R4, STU3 and DSTU2 (§7). Decisions:
docs/conversion/allergy_intolerance.md. Section numbers (§) refer to docs/conversion/mapping.md.
"""

from __future__ import annotations

from typing import Any

from shared.fhir.convert.carry import carried, carry, restore, restore_choice
from shared.fhir.convert.common import (
    Resource,
    add_xver,
    convert_references,
    items,
    map_code,
    narrow_reference,
    note_references,
    prune_empty_twins,
    rename,
    restore_reference,
)
from shared.fhir.convert.contained import convert_contained
from shared.fhir.convert.repair import repair
from shared.fhir.convert.supplied import is_supplied, supplied

_RESOURCE = "AllergyIntolerance"
_CLINICAL = frozenset({"active", "inactive", "resolved"})
_VERIFICATION = frozenset({"unconfirmed", "confirmed", "refuted", "entered-in-error"})
# Both spellings of each status system (the framework rewrites URIs, but servers mix them).
_STATUS_SYSTEMS = {
    "clinicalStatus": (
        "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
        "http://hl7.org/fhir/allergy-clinical-status",
        _CLINICAL,
    ),
    "verificationStatus": (
        "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
        "http://hl7.org/fhir/allergy-verification-status",
        _VERIFICATION,
    ),
}
# The R4 code systems' displays (allergyintolerance-clinical / -verification).
_DISPLAY = {
    "active": "Active",
    "inactive": "Inactive",
    "resolved": "Resolved",
    "unconfirmed": "Unconfirmed",
    "confirmed": "Confirmed",
    "refuted": "Refuted",
    "entered-in-error": "Entered in Error",
}
# DSTU2 status → STU3 (clinical, verification): the official R2→R3 ConceptMaps.
_FROM_DSTU2_STATUS: dict[str, tuple[str | None, str | None]] = {
    "active": ("active", None),
    "confirmed": ("active", "confirmed"),
    "unconfirmed": (None, "unconfirmed"),
    "inactive": ("inactive", None),
    "resolved": ("resolved", None),
    "refuted": (None, "refuted"),
    "entered-in-error": (None, "entered-in-error"),
}
# §7.1, official ConceptMaps R3⇄R2.
_CRITICALITY_DSTU2 = {"low": "CRITL", "high": "CRITH", "unable-to-assess": "CRITU"}
_CRITICALITY_STU3 = {dstu2: stu3 for stu3, dstu2 in _CRITICALITY_DSTU2.items()}
_CATEGORY_DSTU2 = {"biologic": "other"}
_CATEGORY_STU3 = {"other": "biologic"}
_CATEGORIES_DSTU2 = frozenset({"food", "medication", "environment", "other"})
_CATEGORIES_STU3 = frozenset({"food", "medication", "environment", "biologic"})
# DSTU2 reaction.certainty in STU3/R4 (official extension, §2.7); HAPI writes valueString.
_CERTAINTY = "http://hl7.org/fhir/AllergyIntolerance-r2-certainty"
_CERTAINTIES = frozenset({"unlikely", "likely", "confirmed"})
# Reference targets STU3 allows where R4 allows more (§7.1); DSTU2 allows the same as STU3.
_RECORDER = frozenset({"Practitioner", "Patient"})
_ASSERTER = frozenset({"Patient", "RelatedPerson", "Practitioner"})
# onset[x] carried into DSTU2 (which only has a dateTime): the value key names the STU3 type;
# DSTU2 has no Age type, so an Age rides as a Quantity.
_ONSET_VALUE = {"onsetAge": "valueQuantity", "onsetRange": "valueRange"}
_ONSET_FROM_VALUE = {"valueQuantity": "Age"}
_UNKNOWN_SUBSTANCE = "Unknown"


def _status_code(value: Any, key: str) -> str | None:
    """The STU3 code of an R4 status CodeableConcept (a coding of the right system, or none)."""
    r4_system, old_system, valid = _STATUS_SYSTEMS[key]
    for coding in items(value.get("coding") if isinstance(value, dict) else None):
        if coding.get("system") in (r4_system, old_system, None) and coding.get("code") in valid:
            return str(coding["code"])
    return None


def _statuses_to_stu3(allergy: Resource) -> None:
    for key in _STATUS_SYSTEMS:
        concept = allergy.pop(key, None)
        code = _status_code(concept, key)
        if code:
            allergy[key] = code
        elif concept is not None:  # unreadable here, still the source's: it rides along
            add_xver(allergy, "r4", f"{_RESOURCE}.{key}", "valueCodeableConcept", concept)
        else:  # an STU3 code R4 could not hold, carried up earlier
            restore(allergy, key, f"{_RESOURCE}.{key}", "stu3")
    if "verificationStatus" not in allergy:
        _no_verification(allergy)


def _no_verification(allergy: Resource) -> None:
    """STU3 requires verificationStatus (1..1, §2.6) where the source has none: no value, only
    the data-absent-reason marker on ``_verificationStatus``. Any code would be invented:
    ``unconfirmed`` invites a clinician to discount a recorded allergy (the app does not read
    the marker), ``confirmed`` claims a verification nobody made. A recorded allergy with no
    verification says just what the source says (allergy_intolerance.md)."""
    allergy.pop("verificationStatus", None)
    allergy["_verificationStatus"] = supplied()


def _statuses_to_r4(allergy: Resource) -> None:
    if is_supplied(allergy.get("_verificationStatus")):
        allergy.pop("verificationStatus", None)
        allergy.pop("_verificationStatus")
    for key, (system, _, valid) in _STATUS_SYSTEMS.items():
        code = allergy.pop(key, None)
        allergy.pop("_" + key, None)
        if code in valid:
            allergy[key] = {"coding": [{"system": system, "code": code, "display": _DISPLAY[code]}]}
        elif code is not None:  # never mislabelled as an R4 status: it rides along instead
            add_xver(allergy, "stu3", f"{_RESOURCE}.{key}", "valueCode", code)
        restore(allergy, key, f"{_RESOURCE}.{key}", "r4")  # R4's own, unreadable in STU3


def _dstu2_status(clinical: str | None, verification: str | None) -> str | None:
    """The single DSTU2 status (§7.2: official R3→R2 rules, precedence a proxy decision)."""
    if verification in ("entered-in-error", "refuted"):
        return verification
    if clinical in ("resolved", "inactive"):
        return clinical
    if clinical == "active":
        return verification or "active"
    return None


def _status_to_dstu2(allergy: Resource) -> None:
    clinical = allergy.pop("clinicalStatus", None)
    verification = allergy.pop("verificationStatus", None)
    if is_supplied(allergy.pop("_verificationStatus", None)):
        verification = None
    allergy.pop("_clinicalStatus", None)
    status = _dstu2_status(clinical, verification)
    if status is None:  # a DSTU2 code STU3 could not read, carried up earlier
        restore(allergy, "status", f"{_RESOURCE}.status", "dstu2")
        status = allergy.get("status")
    elif status:
        allergy["status"] = status
    # What the single status cannot say rides along, so the way back up restores both codes.
    derived = _FROM_DSTU2_STATUS.get(status or "", (None, None))
    for key, original, back in (
        ("clinicalStatus", clinical, derived[0]),
        ("verificationStatus", verification, derived[1]),
    ):
        if original != back:
            add_xver(allergy, "stu3", f"{_RESOURCE}.{key}", "valueCode", original or "none")


def _status_from_dstu2(allergy: Resource) -> None:
    status = allergy.pop("status", None)
    allergy.pop("_status", None)
    if status is not None and status not in _FROM_DSTU2_STATUS:  # unreadable: it rides along
        add_xver(allergy, "dstu2", f"{_RESOURCE}.status", "valueCode", status)
    clinical, verification = _FROM_DSTU2_STATUS.get(str(status), (None, None))
    for key, value in (("clinicalStatus", clinical), ("verificationStatus", verification)):
        restored = [v for _, v in carried(allergy, "stu3", f"{_RESOURCE}.{key}")]
        value = restored[0] if restored else value
        if value and value != "none":
            allergy[key] = value
    if "verificationStatus" not in allergy:
        _no_verification(allergy)


def _substance_to_dstu2(allergy: Resource) -> None:
    if "code" in allergy:
        rename(allergy, [("code", "substance")])
    else:
        # DSTU2 requires substance (§2.6): a marked "Unknown" the app can show.
        allergy["substance"] = {**supplied(), "text": _UNKNOWN_SUBSTANCE}


def _substance_from_dstu2(allergy: Resource) -> None:
    substance = allergy.pop("substance", None)
    if substance is not None and not is_supplied(substance):
        allergy["code"] = substance


def _onset_to_dstu2(allergy: Resource) -> None:
    if "onsetDateTime" in allergy:
        rename(allergy, [("onsetDateTime", "onset")])
        return
    if isinstance(allergy.get("onsetPeriod"), dict) and allergy["onsetPeriod"].get("start"):
        allergy["onset"] = allergy["onsetPeriod"]["start"]  # proxy decision (§7.1)
    for key in ("onsetPeriod", "onsetAge", "onsetRange", "onsetString"):
        value_key = _ONSET_VALUE.get(key, "value" + key[5:])
        carry(allergy, key, f"{_RESOURCE}.onset", value_key, "stu3", "dstu2")


def _onset_from_dstu2(allergy: Resource) -> None:
    onset, twin = allergy.pop("onset", None), allergy.pop("_onset", None)
    # A carried value is the original; DSTU2's onset was derived from it.
    if not restore_choice(allergy, "onset", f"{_RESOURCE}.onset", "stu3", _ONSET_FROM_VALUE):
        allergy.update({k: v for k, v in (("onsetDateTime", onset), ("_onsetDateTime", twin)) if v})


def _notes_to_dstu2(holder: dict[str, Any], path: str) -> None:
    """DSTU2 has one Annotation: the first; the rest ride along (§7.1)."""
    notes = items(holder.get("note"))
    if not notes:
        holder.pop("note", None)
        return
    holder["note"] = notes[0]
    for note in notes[1:]:
        add_xver(holder, "stu3", path, "valueAnnotation", note)


def _notes_from_dstu2(holder: dict[str, Any], path: str) -> None:
    notes = items(holder.pop("note", None)) + [v for _, v in carried(holder, "stu3", path)]
    if notes:
        holder["note"] = notes


def _reaction_to_dstu2(reaction: dict[str, Any]) -> None:
    _notes_to_dstu2(reaction, f"{_RESOURCE}.reaction.note")
    extensions = items(reaction.get("extension"))
    found = [e for e in extensions if e.get("url") == _CERTAINTY]
    code = next((e.get("valueCode") or e.get("valueString") for e in found), None)
    if found:
        reaction["extension"] = [e for e in extensions if e not in found]
        if not reaction["extension"]:
            reaction.pop("extension")
    if code in _CERTAINTIES:
        reaction["certainty"] = code


def _reaction_from_dstu2(reaction: dict[str, Any]) -> None:
    _notes_from_dstu2(reaction, f"{_RESOURCE}.reaction.note")
    certainty = reaction.pop("certainty", None)
    reaction.pop("_certainty", None)
    if certainty:
        reaction.setdefault("extension", []).append({"url": _CERTAINTY, "valueCode": certainty})


def _categories_to_dstu2(allergy: Resource) -> None:
    categories = allergy.pop("category", None) or []
    allergy.pop("_category", None)
    mapped = [_CATEGORY_DSTU2.get(c, c) for c in categories if isinstance(c, str)]
    if mapped:
        allergy["category"] = mapped[0]
    for code in categories[1:]:  # DSTU2 holds one category (§7.1)
        add_xver(allergy, "stu3", f"{_RESOURCE}.category", "valueCode", code)


def _categories_from_dstu2(allergy: Resource) -> None:
    category = allergy.pop("category", None)
    allergy.pop("_category", None)
    codes = [_CATEGORY_STU3.get(category, category)] if isinstance(category, str) else []
    codes += [v for _, v in carried(allergy, "stu3", f"{_RESOURCE}.category")]
    if codes:
        allergy["category"] = codes


def _references(allergy: Resource, target: str) -> None:
    convert_references(allergy, ("patient", "recorder", "asserter", "reporter"), target)
    note_references(allergy, "note", target)
    for reaction in items(allergy.get("reaction")):
        note_references(reaction, "note", target)


def r4_to_stu3(allergy: Resource) -> Resource:
    """R4 AllergyIntolerance → STU3: status CodeableConcepts → codes, recordedDate →
    assertedDate, encounter carried in an extension."""
    repair(allergy)
    _statuses_to_stu3(allergy)
    rename(allergy, [("recordedDate", "assertedDate")])
    carry(allergy, "encounter", f"{_RESOURCE}.encounter", "valueReference", "r4", "stu3")
    narrow_reference(allergy.get("recorder"), _RECORDER, "r4")
    narrow_reference(allergy.get("asserter"), _ASSERTER, "r4")
    _references(allergy, "stu3")
    convert_contained(allergy, "r4", "stu3")
    return allergy


def stu3_to_r4(allergy: Resource) -> Resource:
    """STU3 AllergyIntolerance → R4: codes → CodeableConcepts, assertedDate → recordedDate."""
    repair(allergy)
    restore_reference(allergy.get("recorder"), "r4")
    restore_reference(allergy.get("asserter"), "r4")
    restore(allergy, "encounter", f"{_RESOURCE}.encounter", "r4")
    rename(allergy, [("assertedDate", "recordedDate")])
    _statuses_to_r4(allergy)
    convert_contained(allergy, "stu3", "r4")
    return allergy


def stu3_to_dstu2(allergy: Resource) -> Resource:
    """STU3 AllergyIntolerance → DSTU2: one status (§7.2), code → substance, DSTU2 codes."""
    repair(allergy)
    _status_to_dstu2(allergy)
    _substance_to_dstu2(allergy)
    _onset_to_dstu2(allergy)
    _categories_to_dstu2(allergy)
    map_code(allergy, "criticality", _CRITICALITY_DSTU2, _CRITICALITY_DSTU2.values())
    map_code(allergy, "category", {}, _CATEGORIES_DSTU2)
    rename(allergy, [("assertedDate", "recordedDate"), ("asserter", "reporter")])
    rename(allergy, [("lastOccurrence", "lastOccurence")])  # DSTU2's spelling (§7.1)
    _notes_to_dstu2(allergy, f"{_RESOURCE}.note")
    for reaction in items(allergy.get("reaction")):
        _reaction_to_dstu2(reaction)
    _references(allergy, "dstu2")
    convert_contained(allergy, "stu3", "dstu2")
    return allergy


def dstu2_to_stu3(allergy: Resource) -> Resource:
    """DSTU2 AllergyIntolerance → STU3: status → both status codes, substance → code."""
    repair(allergy)
    prune_empty_twins(allergy)
    _status_from_dstu2(allergy)
    _substance_from_dstu2(allergy)
    _onset_from_dstu2(allergy)
    # Synthea's DSTU2 export writes STU3 criticality codes: accept both spellings.
    map_code(allergy, "criticality", _CRITICALITY_STU3, _CRITICALITY_DSTU2.keys())
    _categories_from_dstu2(allergy)
    allergy["category"] = [c for c in allergy.get("category", []) if c in _CATEGORIES_STU3]
    if not allergy["category"]:
        allergy.pop("category")
    rename(allergy, [("recordedDate", "assertedDate"), ("reporter", "asserter")])
    rename(allergy, [("lastOccurence", "lastOccurrence")])
    _notes_from_dstu2(allergy, f"{_RESOURCE}.note")
    for reaction in items(allergy.get("reaction")):
        _reaction_from_dstu2(reaction)
    convert_contained(allergy, "dstu2", "stu3")
    return allergy
