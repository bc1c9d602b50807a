"""Condition between R4, STU3 and DSTU2 (§5).

Every lossy choice is written down in docs/conversion/condition.md and pinned by
tests/unit/convert/test_condition.py. What the target cannot hold travels in the HL7
cross-version extension form, so round trips come back whole.
Section numbers (§) refer to docs/conversion/mapping.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.fhir.convert.common import (
    Resource,
    adapt_references,
    add_xver,
    convert_reference,
    first_code,
    items,
    notes_from_text,
    notes_to_text,
    prune_empty_twins,
    rename,
    take_all_xver,
    take_complex_xver,
    take_xver,
)
from shared.fhir.convert.supplied import carries_marker, supplied

# -- code tables (official ConceptMaps in fixtures/hl7-xver-conceptmaps, §5.1) ------------------

_CLINICAL_R4 = "http://terminology.hl7.org/CodeSystem/condition-clinical"
_VERIFICATION_R4 = "http://terminology.hl7.org/CodeSystem/condition-ver-status"

# R4 `relapse` has no STU3 code (R4-ConditionClinical-R3: noMap). Proxy decision `recurrence`,
# its closest sibling ("the condition is back"); DSTU2 then gets `relapse` from the next table.
_CLINICAL_TO_STU3 = {
    "active": "active",
    "recurrence": "recurrence",
    "relapse": "recurrence",
    "inactive": "inactive",
    "remission": "remission",
    "resolved": "resolved",
}
_CLINICAL_TO_R4 = {code: code for code in _CLINICAL_TO_STU3 if code != "relapse"}
# DSTU2 has no `inactive` (the official R3→R2 map refuses it); recurrence → relapse is §5.1's.
_CLINICAL_TO_DSTU2 = {
    "active": "active",
    "recurrence": "relapse",
    "remission": "remission",
    "resolved": "resolved",
}
_CLINICAL_FROM_DSTU2 = {dstu2: stu3 for stu3, dstu2 in _CLINICAL_TO_DSTU2.items()}

# R4 `unconfirmed` has no STU3/DSTU2 code (noMap): proxy decision `provisional`, one of its
# children in R4. STU3/DSTU2 `unknown` was removed in R4 (noMap): left out.
_VERIFICATION_SHARED = ("provisional", "differential", "confirmed", "refuted", "entered-in-error")
_VERIFICATION_TO_R4 = {code: code for code in _VERIFICATION_SHARED}
_VERIFICATION_TO_STU3 = {**_VERIFICATION_TO_R4, "unconfirmed": "provisional"}
_VERIFICATION_OLD = frozenset({*_VERIFICATION_SHARED, "unknown"})

# DSTU2 categories are complaint/symptom/finding/diagnosis; the one counterpart is
# encounter-diagnosis ⇄ diagnosis (proxy decision, §5.1). Other codes pass unchanged.
_CATEGORY_TO_DSTU2 = {"encounter-diagnosis": "diagnosis"}
_CATEGORY_FROM_DSTU2 = {"diagnosis": "encounter-diagnosis"}

# Reference targets where the versions differ (§2.3, §5.1); None: no narrowing needed.
_REFS_STU3: Mapping[str, frozenset[str] | None] = {
    "subject": None,
    "context": None,
    "asserter": frozenset({"Practitioner", "Patient", "RelatedPerson"}),
}
_REFS_R4: Mapping[str, frozenset[str] | None] = {
    "subject": None,
    "encounter": frozenset({"Encounter"}),
    "asserter": None,
}
_REFS_DSTU2: Mapping[str, frozenset[str] | None] = {
    "patient": frozenset({"Patient"}),
    "encounter": frozenset({"Encounter"}),
    "asserter": frozenset({"Practitioner", "Patient"}),
}
_CC = "valueCodeableConcept"


# -- steps --------------------------------------------------------------------------------------


def r4_to_stu3(resource: Resource) -> Resource:
    """R4 Condition as STU3."""
    condition = resource
    _status_down(condition, "clinicalStatus", "/condition-clinical", _CLINICAL_TO_STU3)
    _status_down(condition, "verificationStatus", "/condition-ver-status", _VERIFICATION_TO_STU3)
    rename(condition, [("encounter", "context"), ("recordedDate", "assertedDate")])
    recorder = convert_reference(condition.pop("recorder", None), "stu3")
    add_xver(condition, "r4", "Condition.recorder", "valueReference", recorder)
    abatement = take_xver(condition, "stu3", "Condition.abatement")
    if abatement is not None:
        condition["abatementBoolean"] = abatement
    _stage_down(condition)
    adapt_references(condition, _REFS_STU3, "r4", "stu3")
    _nested_refs(condition, "r4", "stu3")
    return condition


def stu3_to_r4(resource: Resource) -> Resource:
    """STU3 Condition as R4."""
    condition = resource
    _status_up(condition, "clinicalStatus", _CLINICAL_TO_R4, _CLINICAL_R4)
    _status_up(condition, "verificationStatus", _VERIFICATION_TO_R4, _VERIFICATION_R4)
    rename(condition, [("context", "encounter"), ("assertedDate", "recordedDate")])
    recorder = take_xver(condition, "r4", "Condition.recorder")
    if recorder is not None:
        condition["recorder"] = recorder
    if "abatementBoolean" in condition:  # R4 has no boolean abatement
        abatement = condition.pop("abatementBoolean")
        condition.pop("_abatementBoolean", None)
        add_xver(condition, "stu3", "Condition.abatement", "valueBoolean", abatement)
    _stage_up(condition)
    adapt_references(condition, _REFS_R4, "stu3", "r4")
    _nested_refs(condition, "stu3", "r4")
    return condition


def stu3_to_dstu2(resource: Resource) -> Resource:
    """STU3 Condition as DSTU2."""
    condition = resource
    _clinical_to_dstu2(condition)
    if condition.get("verificationStatus") not in _VERIFICATION_OLD:
        condition["verificationStatus"] = "unknown"  # 1..1 in DSTU2 (§2.6)
    if not condition.get("code"):  # 1..1 in DSTU2 (§2.6): marked absent, never invented
        condition["code"] = {**supplied(), "text": "Unknown"}
    _category_down(condition)
    _recorded_down(condition)
    rename(
        condition,
        [
            ("subject", "patient"),
            ("context", "encounter"),
            ("onsetAge", "onsetQuantity"),
            ("abatementAge", "abatementQuantity"),
        ],
    )
    notes_to_text(condition, "notes", "stu3", "Condition.note", "dstu2")
    for evidence in items(condition.get("evidence")):
        codes = items(evidence.pop("code", None))
        if codes:
            evidence["code"] = codes[0]
        for extra in codes[1:]:
            add_xver(evidence, "stu3", "Condition.evidence.code", _CC, extra)
    adapt_references(condition, _REFS_DSTU2, "stu3", "dstu2")
    _nested_refs(condition, "stu3", "dstu2")
    return condition


def dstu2_to_stu3(resource: Resource) -> Resource:
    """DSTU2 Condition as STU3."""
    prune_empty_twins(resource)
    condition = resource
    status = condition.pop("clinicalStatus", None)
    condition.pop("_clinicalStatus", None)
    carried = take_xver(condition, "stu3", "Condition.clinicalStatus")
    status = carried if carried is not None else _CLINICAL_FROM_DSTU2.get(str(status))
    if status:
        condition["clinicalStatus"] = status
    if carries_marker(condition.get("code")):  # our own DSTU2 stand-in (see stu3_to_dstu2)
        del condition["code"]
    _category_up(condition)
    _recorded_up(condition)
    rename(
        condition,
        [
            ("patient", "subject"),
            ("encounter", "context"),
            ("onsetQuantity", "onsetAge"),
            ("abatementQuantity", "abatementAge"),
        ],
    )
    notes_from_text(condition, "notes", "stu3", "Condition.note")
    for evidence in items(condition.get("evidence")):
        code = evidence.pop("code", None)
        codes = ([code] if code else []) + take_all_xver(
            evidence, "stu3", "Condition.evidence.code"
        )
        if codes:
            evidence["code"] = codes
    adapt_references(condition, dict.fromkeys(_REFS_STU3), "dstu2", "stu3")
    _nested_refs(condition, "dstu2", "stu3")
    return condition


# -- element rules ------------------------------------------------------------------------------


def _status_down(condition: Resource, key: str, system: str, table: Mapping[str, str]) -> None:
    """R4 CodeableConcept → STU3 code; when the code changes or is lost, R4's is carried."""
    concept = condition.pop(key, None)
    if concept is None:
        return
    original = first_code(concept, system)  # either URI spelling (§15: HAPI matches one)
    code = table.get(str(original))
    if code:
        condition[key] = code
    if code is None or code != original:
        add_xver(condition, "r4", f"Condition.{key}", _CC, concept)


def _status_up(condition: Resource, key: str, table: Mapping[str, str], system: str) -> None:
    """STU3 code → R4 CodeableConcept; the carried R4 concept wins."""
    code = condition.pop(key, None)
    condition.pop("_" + key, None)
    carried = take_xver(condition, "r4", f"Condition.{key}")
    if carried is not None:
        condition[key] = carried
    elif code in table:
        condition[key] = {"coding": [{"system": system, "code": table[code]}]}


def _clinical_to_dstu2(condition: Resource) -> None:
    """STU3 clinicalStatus → DSTU2; `inactive` has no DSTU2 code: left out and carried."""
    status = condition.pop("clinicalStatus", None)
    if status in _CLINICAL_TO_DSTU2:
        condition["clinicalStatus"] = _CLINICAL_TO_DSTU2[status]
    elif status is not None:
        condition.pop("_clinicalStatus", None)
        add_xver(condition, "stu3", "Condition.clinicalStatus", "valueCode", status)


def _category_down(condition: Resource) -> None:
    """STU3 0..* category → DSTU2 0..1: the first; the rest carried (§5.1)."""
    categories = items(condition.pop("category", None))
    if categories:
        condition["category"] = _recode(categories[0], _CATEGORY_TO_DSTU2)
    for extra in categories[1:]:
        add_xver(condition, "stu3", "Condition.category", _CC, extra)


def _category_up(condition: Resource) -> None:
    """DSTU2 category, with the carried rest → STU3 list."""
    category = condition.pop("category", None)
    categories = [_recode(category, _CATEGORY_FROM_DSTU2)] if category else []
    categories += take_all_xver(condition, "stu3", "Condition.category")
    if categories:
        condition["category"] = categories


def _recode(concept: Any, table: Mapping[str, str]) -> Any:
    """Condition-category codings renamed by ``table``; returns the concept."""
    for coding in items(concept.get("coding") if isinstance(concept, dict) else None):
        if str(coding.get("system", "")).endswith("/condition-category"):
            coding["code"] = table.get(str(coding.get("code")), coding.get("code"))
    return concept


def _recorded_down(condition: Resource) -> None:
    """assertedDate (dateTime) → DSTU2 dateRecorded (date); a time part is carried (§5.1)."""
    asserted = condition.pop("assertedDate", None)
    rename(condition, [("_assertedDate", "_dateRecorded")])
    if isinstance(asserted, str):
        condition["dateRecorded"] = asserted[:10]
        if len(asserted) > 10:
            add_xver(condition, "stu3", "Condition.assertedDate", "valueDateTime", asserted)


def _recorded_up(condition: Resource) -> None:
    """DSTU2 dateRecorded → assertedDate; the carried dateTime wins."""
    rename(condition, [("dateRecorded", "assertedDate")])
    asserted = take_xver(condition, "stu3", "Condition.assertedDate")
    if asserted is not None:
        condition["assertedDate"] = asserted


# A further R4 stage carried as a complex extension: (child, its value key).
_STAGE_PARTS = (("summary", _CC), ("assessment", "valueReference"), ("type", _CC))


def _stage_down(condition: Resource) -> None:
    """R4 0..* stage → STU3 0..1: the first, its `type` carried; further stages carried whole
    (complex extension `Condition.stage`: summary, assessment, type)."""
    stages = items(condition.pop("stage", None))
    if stages:
        stage = stages[0]
        add_xver(stage, "r4", "Condition.stage.type", _CC, stage.pop("type", None))
        condition["stage"] = stage
    for extra in stages[1:]:
        parts = [
            {
                "url": key,
                value_key: convert_reference(value, "stu3") if key == "assessment" else value,
            }
            for key, value_key in _STAGE_PARTS
            for value in (extra[key] if isinstance(extra.get(key), list) else [extra.get(key)])
            if value is not None
        ]
        add_xver(condition, "r4", "Condition.stage", "extension", parts)


def _stage_up(condition: Resource) -> None:
    """STU3 0..1 stage → R4 list, its carried `type` restored, then the carried stages."""
    stage = condition.pop("stage", None)
    stages = []
    if isinstance(stage, dict):
        kind = take_xver(stage, "r4", "Condition.stage.type")
        if kind is not None:
            stage["type"] = kind
        stages.append(stage)
    for parts in take_complex_xver(condition, "r4", "Condition.stage"):
        extra: dict[str, Any] = {}
        for part in items(parts):
            value = next((v for k, v in part.items() if k.startswith("value")), None)
            if part.get("url") == "assessment":
                extra.setdefault("assessment", []).append(value)
            elif part.get("url") in ("summary", "type"):
                extra[str(part["url"])] = value
        stages.append(extra)
    if stages:
        condition["stage"] = stages


def _nested_refs(condition: Resource, source: str, target: str) -> None:
    """References inside stage and evidence."""
    for stage in items(condition.get("stage")):
        adapt_references(stage, {"assessment": None}, source, target)
    for evidence in items(condition.get("evidence")):
        adapt_references(evidence, {"detail": None}, source, target)
