"""Encounter between R4, STU3 and DSTU2 (§6).

Every lossy choice is written down in docs/conversion/encounter.md and pinned by
tests/unit/convert/test_encounter.py. What the target cannot hold travels in the HL7
cross-version extension form, so round trips come back whole.
Section numbers (§) refer to docs/conversion/mapping.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.fhir.convert.carry import carried as _carried
from shared.fhir.convert.common import (
    ConversionError,
    Resource,
    adapt_references,
    add_xver,
    concept,
    convert_reference,
    first_code,
    items,
    prune_empty_twins,
    rename,
    take_all_xver,
    take_xver,
)
from shared.fhir.convert.supplied import MARKER, carries_marker, supplied

# -- code tables (official ConceptMaps in fixtures/hl7-xver-conceptmaps, §6.1) ------------------

_DSTU2_STATUSES = frozenset(
    {"planned", "arrived", "in-progress", "onleave", "finished", "cancelled"}
)

_ACT_CODE = "http://hl7.org/fhir/v3/ActCode"  # STU3 spelling; the framework rewrites it for R4
_DSTU2_CLASS = "http://hl7.org/fhir/encounter-class"
# ActCode → DSTU2 class (R3-V3ActEncounterCode-R2-EncounterClass). AMB has two targets:
# `ambulatory` names the same concept (HAPI agrees). ACUTE and NONAC (noMap) are inpatient
# encounters: proxy decision `inpatient`. Any other code becomes `other`.
_CLASS_TO_DSTU2 = {
    "IMP": "inpatient",
    "ACUTE": "inpatient",
    "NONAC": "inpatient",
    "AMB": "ambulatory",
    "EMER": "emergency",
    "HH": "home",
    "FLD": "field",
    "SS": "daytime",
    "VR": "virtual",
}
# DSTU2 class → ActCode (R2-EncounterClass-R3-V3ActEncounterCode).
_CLASS_FROM_DSTU2 = {
    "inpatient": "IMP",
    "outpatient": "AMB",
    "ambulatory": "AMB",
    "emergency": "EMER",
    "home": "HH",
    "field": "FLD",
    "daytime": "SS",
    "virtual": "VR",
}
_DSTU2_CLASSES = frozenset({*_CLASS_FROM_DSTU2, "other"})

# Diagnosis roles DSTU2 has an element for (the official R3→R2 map).
_DIAGNOSIS_ROLE = "http://hl7.org/fhir/diagnosis-role"
_ROLE_ELEMENTS = {"AD": "admittingDiagnosis", "DD": "dischargeDiagnosis"}
_ROLE_DISPLAYS = {"AD": "Admission diagnosis", "DD": "Discharge diagnosis"}
# A diagnosis carried into DSTU2 as a complex extension: (child, its value key).
_DIAGNOSIS_PARTS = (
    ("condition", "valueReference"),
    ("role", "valueCodeableConcept"),
    ("rank", "valuePositiveInt"),
)

# Reference targets where the versions differ (§2.3, §6.1); None: no narrowing needed.
_REFERRALS = frozenset({"ReferralRequest"})
_REFS_STU3: Mapping[str, frozenset[str] | None] = {
    "subject": None,
    "incomingReferral": _REFERRALS,
    "episodeOfCare": None,
    "appointment": None,
    "account": None,
    "serviceProvider": None,
    "partOf": None,
}
_REFS_R4: Mapping[str, frozenset[str] | None] = {
    **{key: None for key in _REFS_STU3 if key != "incomingReferral"},
    "basedOn": frozenset({"ServiceRequest"}),
}
_REFS_DSTU2: Mapping[str, frozenset[str] | None] = {
    "patient": frozenset({"Patient"}),
    "incomingReferral": _REFERRALS,
    "episodeOfCare": None,
    "appointment": None,
    "indication": None,
    "serviceProvider": None,
    "partOf": None,
}
_INDIVIDUALS_OLD = frozenset({"Practitioner", "RelatedPerson"})
_PLACES_OLD = frozenset({"Location"})  # hospitalization origin/destination before R4
_DSTU2_LISTS = ("identifier", "type", "reason", "participant", "location", "indication")
_CC = "valueCodeableConcept"
_REF = "valueReference"


# -- steps --------------------------------------------------------------------------------------


def r4_to_stu3(resource: Resource) -> Resource:
    """R4 Encounter as STU3."""
    encounter = resource
    if carries_marker(encounter.get("class")):  # our own R4 stand-in (see stu3_to_r4)
        del encounter["class"]
    rename(encounter, [("reasonCode", "reason"), ("basedOn", "incomingReferral")])
    add_xver(encounter, "r4", "Encounter.serviceType", _CC, encounter.pop("serviceType", None))
    for reference in encounter.pop("reasonReference", None) or []:
        value = convert_reference(reference, "stu3")
        add_xver(encounter, "r4", "Encounter.reasonReference", _REF, value)
    appointments = items(encounter.pop("appointment", None))
    if appointments:
        encounter["appointment"] = appointments[0]
    for extra in appointments[1:]:
        add_xver(encounter, "r4", "Encounter.appointment", _REF, convert_reference(extra, "stu3"))
    for location in items(encounter.get("location")):
        physical_type = location.pop("physicalType", None)
        add_xver(location, "r4", "Encounter.location.physicalType", _CC, physical_type)
    for diagnosis in items(encounter.get("diagnosis")):
        rename(diagnosis, [("use", "role")])
    adapt_references(encounter, _REFS_STU3, "r4", "stu3")
    _nested_refs(encounter, "r4", "stu3", _INDIVIDUALS_OLD, _PLACES_OLD)
    return encounter


def stu3_to_r4(resource: Resource) -> Resource:
    """STU3 Encounter as R4."""
    encounter = resource
    _class_to_act_code(encounter)
    if not encounter.get("class"):  # 1..1 in R4 (§2.6): marked absent, not invented
        encounter["class"] = supplied()
    rename(encounter, [("reason", "reasonCode"), ("incomingReferral", "basedOn")])
    service_type = take_xver(encounter, "r4", "Encounter.serviceType")
    if service_type is not None:
        encounter["serviceType"] = service_type
    reasons = take_all_xver(encounter, "r4", "Encounter.reasonReference")
    if reasons:
        encounter["reasonReference"] = reasons
    appointment = encounter.pop("appointment", None)
    appointments = [appointment] if appointment else []
    appointments += take_all_xver(encounter, "r4", "Encounter.appointment")
    if appointments:
        encounter["appointment"] = appointments
    for location in items(encounter.get("location")):
        physical_type = take_xver(location, "r4", "Encounter.location.physicalType")
        if physical_type is not None:
            location["physicalType"] = physical_type
    for diagnosis in items(encounter.get("diagnosis")):
        rename(diagnosis, [("role", "use")])
    adapt_references(encounter, _REFS_R4, "stu3", "r4")
    _nested_refs(encounter, "stu3", "r4", None, None)
    return encounter


def stu3_to_dstu2(resource: Resource) -> Resource:
    """STU3 Encounter as DSTU2; an entered-in-error one raises ConversionError."""
    encounter = resource
    _status_to_dstu2(encounter)
    _class_to_dstu2(encounter)
    rename(encounter, [("subject", "patient")])
    encounter.pop("classHistory", None)  # no DSTU2 element (§6.1)
    for account in encounter.pop("account", None) or []:
        add_xver(encounter, "stu3", "Encounter.account", _REF, convert_reference(account, "dstu2"))
    _diagnosis_to_dstu2(encounter)
    adapt_references(encounter, _REFS_DSTU2, "stu3", "dstu2")
    _nested_refs(encounter, "stu3", "dstu2", _INDIVIDUALS_OLD, _PLACES_OLD)
    return encounter


def dstu2_to_stu3(resource: Resource) -> Resource:
    """DSTU2 Encounter as STU3."""
    prune_empty_twins(resource)
    encounter = resource
    for key in _DSTU2_LISTS:  # Synthea DSTU2 writes `reason` as one object
        if isinstance(encounter.get(key), dict):
            encounter[key] = [encounter[key]]
    _status_from_dstu2(encounter)
    _class_from_dstu2(encounter)
    rename(encounter, [("patient", "subject")])
    accounts = take_all_xver(encounter, "stu3", "Encounter.account")
    if accounts:
        encounter["account"] = accounts
    _diagnosis_from_dstu2(encounter)
    adapt_references(encounter, dict.fromkeys(_REFS_STU3), "dstu2", "stu3")
    _nested_refs(encounter, "dstu2", "stu3", None, None)
    return encounter


# -- element rules ------------------------------------------------------------------------------


def _status_for_dstu2(status: Any) -> str | None:
    """The DSTU2 status for an STU3 one; None where DSTU2 has no honest counterpart (§6.1)."""
    if status in _DSTU2_STATUSES:
        return str(status)
    if status == "triaged":  # proxy decision: triage comes after arrival
        return "arrived"
    return None  # unknown: nothing DSTU2 has says "unknown"; entered-in-error: not a state


def _absent_status(holder: dict[str, Any]) -> None:
    """No status value, marked data-absent-reason ``unknown`` on ``_status`` (§2.6): DSTU2's
    status is 1..1, and a primitive may stand without a value when an extension says why."""
    holder.pop("status", None)
    twin = holder.get("_status")
    twin = dict(twin) if isinstance(twin, dict) else {}
    twin["extension"] = [*items(twin.get("extension")), dict(MARKER)]
    holder["_status"] = twin


def _status_is_absent(holder: dict[str, Any]) -> bool:
    """True when ``_absent_status`` made this status (no value, the marker on ``_status``)."""
    twin = holder.get("_status")
    return "status" not in holder and isinstance(twin, dict) and carries_marker(twin)


def _status_from_absent(holder: dict[str, Any]) -> None:
    """Undo ``_absent_status``: the marker means STU3's ``unknown``."""
    if not _status_is_absent(holder):
        return
    twin = holder.pop("_status")
    rest = [e for e in items(twin.get("extension")) if e != MARKER]
    if rest or len(twin) > 1:
        holder["_status"] = (
            {**twin, "extension": rest}
            if rest
            else {k: v for k, v in twin.items() if k != "extension"}
        )
    holder["status"] = "unknown"


def _status_to_dstu2(encounter: Resource) -> None:
    """status and statusHistory for DSTU2; what DSTU2 cannot say is carried (§6.1)."""
    status = encounter.get("status")
    if status == "entered-in-error":  # there was no such encounter: left out (§2.8)
        raise ConversionError(f"an Encounter with status {status!r} has no DSTU2 form")
    mapped = _status_for_dstu2(status)
    if mapped is None and status == "unknown":
        _absent_status(encounter)
    elif mapped is None:
        raise ConversionError(f"an Encounter with status {status!r} has no DSTU2 form")
    elif mapped != status:
        add_xver(encounter, "stu3", "Encounter.status", "valueCode", status)
        encounter["status"] = mapped
    for entry in items(encounter.get("statusHistory")):
        original = entry.get("status")
        entry_status = _status_for_dstu2(original)
        if entry_status is None:
            _absent_status(entry)
        else:
            entry["status"] = entry_status
        if entry_status != original and original != "unknown":
            add_xver(entry, "stu3", "Encounter.statusHistory.status", "valueCode", original)


def _status_from_dstu2(encounter: Resource) -> None:
    """Undo ``_status_to_dstu2``: carried codes win, the marker is ``unknown``."""
    status = take_xver(encounter, "stu3", "Encounter.status")
    if status is not None:
        encounter["status"] = status
    _status_from_absent(encounter)
    for entry in items(encounter.get("statusHistory")):
        carried = take_xver(entry, "stu3", "Encounter.statusHistory.status")
        _status_from_absent(entry)
        if carried is not None:
            entry["status"] = carried


def _class_to_act_code(encounter: Resource) -> None:
    """A DSTU2 class code in an STU3 Coding without system (Synthea STU3) → ActCode."""
    coding = encounter.get("class")
    if isinstance(coding, dict) and not coding.get("system"):
        code = _CLASS_FROM_DSTU2.get(str(coding.get("code")))
        if code:
            encounter["class"] = {"system": _ACT_CODE, "code": code}


def _class_to_dstu2(encounter: Resource) -> None:
    """STU3 class Coding → DSTU2 code; a Coding that would not come back is carried."""
    coding = encounter.pop("class", None)
    carried = take_xver(encounter, "dstu2", "Encounter.class")
    if carried is not None:  # a DSTU2 code that shares its ActCode (outpatient)
        encounter["class"] = carried
        return
    if not isinstance(coding, dict):
        return
    code, system = coding.get("code"), coding.get("system")
    if system in (None, _DSTU2_CLASS) and code in _DSTU2_CLASSES:
        encounter["class"] = str(code)  # already a DSTU2 code (Synthea STU3 writes these)
        return
    mapped = _CLASS_TO_DSTU2.get(str(code), "other") if system == _ACT_CODE else "other"
    encounter["class"] = mapped
    if system != _ACT_CODE or _CLASS_FROM_DSTU2.get(mapped) != code:
        add_xver(encounter, "stu3", "Encounter.class", "valueCoding", coding)


def _class_from_dstu2(encounter: Resource) -> None:
    """DSTU2 class code → STU3 ActCode Coding (`other` keeps the DSTU2 system)."""
    code = encounter.pop("class", None)
    encounter.pop("_class", None)
    carried = take_xver(encounter, "stu3", "Encounter.class")
    if carried is not None:
        encounter["class"] = carried
    elif code in _CLASS_FROM_DSTU2:
        act = _CLASS_FROM_DSTU2[code]
        encounter["class"] = {"system": _ACT_CODE, "code": act}
        if _CLASS_TO_DSTU2[act] != code:  # outpatient and ambulatory are both AMB
            add_xver(encounter, "dstu2", "Encounter.class", "valueCode", code)
    elif code:
        encounter["class"] = {"system": _DSTU2_CLASS, "code": code}


def _diagnosis_to_dstu2(encounter: Resource) -> None:
    """diagnosis → admitting/discharge diagnosis by role AD/DD, else indication (R3→R2); when
    that loses anything (a rank, another role, the order), every diagnosis is carried."""
    diagnoses = items(encounter.pop("diagnosis", None))
    for diagnosis in diagnoses:
        condition = diagnosis.get("condition")
        element = _ROLE_ELEMENTS.get(str(first_code(diagnosis.get("role"))))
        if element:
            hospitalization = encounter.setdefault("hospitalization", {})
            hospitalization.setdefault(element, []).append(condition)
        elif condition:
            encounter.setdefault("indication", []).append(condition)
    if diagnoses != _diagnoses_back(diagnoses):
        for diagnosis in diagnoses:
            parts = [
                {"url": key, value_key: diagnosis[key]}
                for key, value_key in _DIAGNOSIS_PARTS
                if key in diagnosis
            ]
            add_xver(encounter, "stu3", "Encounter.diagnosis", "extension", parts)


def _diagnoses_back(diagnoses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What ``_diagnosis_from_dstu2`` rebuilds from the DSTU2 lists alone."""
    by_role: dict[str | None, list[dict[str, Any]]] = {None: [], "AD": [], "DD": []}
    for diagnosis in diagnoses:
        code = first_code(diagnosis.get("role"))
        role = code if code in _ROLE_ELEMENTS else None
        rebuilt: dict[str, Any] = {"condition": diagnosis.get("condition")}
        if role:
            rebuilt["role"] = concept(_DIAGNOSIS_ROLE, role, _ROLE_DISPLAYS[role])
        by_role[role].append(rebuilt)
    return [*by_role[None], *by_role["AD"], *by_role["DD"]]


def _diagnosis_from_dstu2(encounter: Resource) -> None:
    """indication, admitting and discharge diagnoses → STU3 diagnosis (roles AD, DD); carried
    diagnoses win."""
    diagnoses = [{"condition": c} for c in encounter.pop("indication", None) or []]
    hospitalization = encounter.get("hospitalization")
    if isinstance(hospitalization, dict):
        for role, element in _ROLE_ELEMENTS.items():
            role_concept = concept(_DIAGNOSIS_ROLE, role, _ROLE_DISPLAYS[role])
            for condition in hospitalization.pop(element, None) or []:
                diagnoses.append({"condition": condition, "role": role_concept})
        if not hospitalization:
            del encounter["hospitalization"]
    carried = [
        {part["url"]: value for part in items(parts) for k, value in part.items() if k != "url"}
        for _, parts in _carried(encounter, "stu3", "Encounter.diagnosis")
    ]
    if carried or diagnoses:
        encounter["diagnosis"] = carried or diagnoses


def _nested_refs(
    encounter: Resource,
    source: str,
    target: str,
    individuals: frozenset[str] | None,
    places: frozenset[str] | None,
) -> None:
    """References inside participant, diagnosis, hospitalization and location."""
    for participant in items(encounter.get("participant")):
        adapt_references(participant, {"individual": individuals}, source, target)
    for diagnosis in items(encounter.get("diagnosis")):
        adapt_references(diagnosis, {"condition": None}, source, target)
    hospitalization = encounter.get("hospitalization")
    adapt_references(hospitalization, {"origin": places, "destination": places}, source, target)
    adapt_references(hospitalization, dict.fromkeys(_ROLE_ELEMENTS.values()), source, target)
    for location in items(encounter.get("location")):
        # convert_reference keeps display, which the app shows (§1)
        adapt_references(location, {"location": None}, source, target)
