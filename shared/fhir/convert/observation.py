"""Observation between R4, STU3 and DSTU2 (§4).

Every lossy choice is written down in docs/conversion/observation.md and pinned by
tests/unit/convert/test_observation.py. What the target cannot hold travels in the HL7
cross-version extension form; each step first restores what the target itself carried down,
then carries what the target lacks, so round trips come back whole.
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
    take_xver,
    xver_url,
)

# -- code tables (official ConceptMaps in fixtures/hl7-xver-conceptmaps, §2.4, §4.1) ------------

# data-absent-reason R4 → STU3 (R4-DataAbsentReason-R3); unlisted codes are unchanged.
_ABSENT_R4_TO_STU3 = {
    "as-text": "astext",
    "asked-unknown": "asked",
    "asked-declined": "asked",
    "temp-unknown": "temp",
    "not-a-number": "NaN",
    "positive-infinity": "NaN",
    "negative-infinity": "NaN",
}
# STU3 → R4 (R3-ObservationValueabsentreason-R4). `asked` splits in two in R4: the generic
# `asked-unknown`, since the source does not say the patient declined.
_ABSENT_STU3_TO_R4 = {
    "astext": "as-text",
    "asked": "asked-unknown",
    "temp": "temp-unknown",
    "NaN": "not-a-number",
}
_ABSENT_DSTU2 = frozenset(
    {"unknown", "asked", "temp", "not-asked", "masked", "unsupported", "astext", "error", "NaN"}
)
_ABSENT_STU3 = _ABSENT_DSTU2 | {"not-performed"}

# Observation.status: DSTU2 lacks `corrected` (R3-ObservationStatus-R2: corrected → amended).
_STATUS_TO_DSTU2 = {"corrected": "amended"}

# Interpretation moved from v2 table 0078 (STU3, DSTU2) to v3 ObservationInterpretation (R4):
# a system change common.rewrite_systems does not make (§2.4, row "Observation.interpretation").
_INTERP_R4 = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
_INTERP_OLD = "http://hl7.org/fhir/v2/0078"
_INTERP_AS_R4 = frozenset({_INTERP_R4, "http://terminology.hl7.org/CodeSystem/v2-0078"})
_INTERP_AS_OLD = frozenset({_INTERP_OLD, "http://hl7.org/fhir/v3/ObservationInterpretation"})
# Codes with no counterpart in the other system (ConceptMap noMap) keep their own system.
_INTERP_R4_ONLY = frozenset(
    {"CAR", "Carrier", "E", "EX", "EXP", "H>", "HX", "L<", "LX", "NCL", "UNE"}
)
_INTERP_V2_ONLY = frozenset({"AC", "HM", "MS", "OBX", "QCF", "TOX", "VS"})

# value[x] type suffixes each version allows (R4 components allow the same as the resource;
# STU3 components allow the DSTU2 list).
_VALUES_DSTU2 = frozenset(
    {"Quantity", "CodeableConcept", "String", "Range", "Ratio", "SampledData", "Attachment"}
    | {"Time", "DateTime", "Period"}
)
_VALUES_STU3 = _VALUES_DSTU2 | {"Boolean"}
_VALUES_R4 = (_VALUES_STU3 - {"Attachment"}) | {"Integer"}

# Related types R4 has no element for: the official R3⇄R4 StructureMaps use these extensions.
_RELATED_EXTENSIONS = {
    kind: f"http://hl7.org/fhir/3.0/StructureDefinition/Observation.{name}"
    for kind, name in (
        ("sequel-to", "sequelTo"),
        ("replaces", "replaces"),
        ("qualified-by", "qualifiedBy"),
        ("interfered-by", "interferedBy"),
    )
}

# Reference targets where the versions differ (§2.3, §4.1); None: no narrowing needed.
_PERFORMERS_OLD = frozenset({"Practitioner", "Organization", "Patient", "RelatedPerson"})
_REQUESTS = frozenset(
    {"CarePlan", "DeviceRequest", "ImmunizationRecommendation", "MedicationRequest"}
    | {"NutritionOrder"}
)
_REFS_STU3: Mapping[str, frozenset[str] | None] = {
    "subject": None,
    "context": None,
    "performer": _PERFORMERS_OLD,
    "basedOn": _REQUESTS | {"ProcedureRequest", "ReferralRequest"},
    "specimen": None,
    "device": None,
}
_REFS_R4: Mapping[str, frozenset[str] | None] = {
    "subject": None,
    "encounter": frozenset({"Encounter"}),
    "performer": None,
    "basedOn": _REQUESTS | {"ServiceRequest"},
    "specimen": None,
    "device": None,
    "hasMember": frozenset({"Observation", "QuestionnaireResponse", "MolecularSequence"}),
    "derivedFrom": frozenset(
        {"DocumentReference", "ImagingStudy", "Media", "QuestionnaireResponse", "Observation"}
        | {"MolecularSequence"}
    ),
}
_REFS_DSTU2: Mapping[str, frozenset[str] | None] = {
    "subject": None,
    "encounter": frozenset({"Encounter"}),
    "performer": _PERFORMERS_OLD,
    "specimen": None,
    "device": None,
}
_RELATED_TARGETS = {
    "stu3": frozenset({"Observation", "QuestionnaireResponse", "Sequence"}),
    "dstu2": frozenset({"Observation", "QuestionnaireResponse"}),
}
_CC = "valueCodeableConcept"


# -- steps --------------------------------------------------------------------------------------


def r4_to_stu3(resource: Resource) -> Resource:
    """R4 Observation as STU3."""
    obs = resource
    for key in ("partOf", "focus"):
        for reference in obs.pop(key, None) or []:
            value = convert_reference(reference, "stu3")
            add_xver(obs, "r4", f"Observation.{key}", "valueReference", value)
    rename(obs, [("encounter", "context")])
    _effective_down(obs)
    _related_down(obs)
    notes_to_text(obs, "comment", "r4", "Observation.note", "stu3")
    for element, path in _with_components(obs):
        allowed = _VALUES_STU3 if path == "Observation" else _VALUES_DSTU2
        _values(element, "r4", "stu3", allowed, path)
        _recode_absent(element.get("dataAbsentReason"), _ABSENT_R4_TO_STU3, _ABSENT_STU3)
        _interpretation_down(element, path)
    adapt_references(obs, _REFS_STU3, "r4", "stu3")
    return obs


def stu3_to_r4(resource: Resource) -> Resource:
    """STU3 Observation as R4."""
    obs = resource
    for key in ("partOf", "focus"):
        _restore_list(obs, "r4", f"Observation.{key}", key)
    rename(obs, [("context", "encounter")])
    _effective_up(obs)
    _related_up(obs)
    notes_from_text(obs, "comment", "r4", "Observation.note")
    for element, path in _with_components(obs):
        _values(element, "stu3", "r4", _VALUES_R4, path)
        _recode_absent(element.get("dataAbsentReason"), _ABSENT_STU3_TO_R4, None)
        _interpretation_up(element, path)
    adapt_references(obs, _REFS_R4, "stu3", "r4")
    return obs


def stu3_to_dstu2(resource: Resource) -> Resource:
    """STU3 Observation as DSTU2."""
    obs = resource
    for reference in obs.pop("basedOn", None) or []:
        value = convert_reference(reference, "dstu2")
        add_xver(obs, "stu3", "Observation.basedOn", "valueReference", value)
    if obs.get("status") in _STATUS_TO_DSTU2:
        add_xver(obs, "stu3", "Observation.status", "valueCode", obs["status"])
        obs["status"] = _STATUS_TO_DSTU2[obs["status"]]
    _category_down(obs)
    rename(obs, [("context", "encounter"), ("comment", "comments")])
    for element, path in _with_components(obs):
        _values(element, "stu3", "dstu2", _VALUES_DSTU2, path)
        _recode_absent(element.get("dataAbsentReason"), {}, _ABSENT_DSTU2)
        for reference_range in items(element.get("referenceRange")):
            _range_down(reference_range)
    for component in items(obs.get("component")):
        interpretation = component.pop("interpretation", None)
        add_xver(component, "stu3", "Observation.component.interpretation", _CC, interpretation)
    for related in items(obs.get("related")):
        adapt_references(related, {"target": _RELATED_TARGETS["dstu2"]}, "stu3", "dstu2")
    adapt_references(obs, _REFS_DSTU2, "stu3", "dstu2")
    return obs


def dstu2_to_stu3(resource: Resource) -> Resource:
    """DSTU2 Observation as STU3."""
    prune_empty_twins(resource)
    obs = resource
    _restore_list(obs, "stu3", "Observation.basedOn", "basedOn")
    status = take_xver(obs, "stu3", "Observation.status")
    if status is not None:
        obs["status"] = status
    category = obs.pop("category", None)
    categories = [category] if category else []
    categories += take_all_xver(obs, "stu3", "Observation.category")
    if categories:
        obs["category"] = categories
    rename(obs, [("encounter", "context"), ("comments", "comment")])
    for element, path in _with_components(obs):
        allowed = _VALUES_STU3 if path == "Observation" else _VALUES_DSTU2
        _values(element, "dstu2", "stu3", allowed, path)
        for reference_range in items(element.get("referenceRange")):
            _range_up(reference_range)
    for component in items(obs.get("component")):
        interpretation = take_xver(component, "stu3", "Observation.component.interpretation")
        if interpretation is not None:
            component["interpretation"] = interpretation
    for related in items(obs.get("related")):
        adapt_references(related, {"target": None}, "dstu2", "stu3")
    adapt_references(obs, dict.fromkeys(_REFS_STU3), "dstu2", "stu3")
    return obs


# -- element rules ------------------------------------------------------------------------------


def _with_components(obs: Resource) -> list[tuple[Resource, str]]:
    """The observation and each component, with their xver path prefix."""
    return [(obs, "Observation")] + [
        (c, "Observation.component") for c in items(obs.get("component"))
    ]


def _effective_down(obs: Resource) -> None:
    """effectiveInstant → effectiveDateTime; effectiveTiming → its first event (§4.1)."""
    rename(obs, [("effectiveInstant", "effectiveDateTime")])
    timing = obs.pop("effectiveTiming", None)
    if isinstance(timing, dict):
        add_xver(obs, "r4", "Observation.effective", "valueTiming", timing)
        events = timing.get("event") or []
        if events:  # proxy decision: the app reads effective[x]; the first event is when
            obs["effectiveDateTime"] = events[0]


def _effective_up(obs: Resource) -> None:
    """Restore an R4 effectiveTiming carried down (replacing its stand-in)."""
    timing = take_xver(obs, "r4", "Observation.effective")
    if timing is not None:
        for key in ("effectiveDateTime", "_effectiveDateTime", "effectivePeriod"):
            obs.pop(key, None)
        obs["effectiveTiming"] = timing


def _values(
    element: Resource, source: str, target: str, allowed: frozenset[str], path: str
) -> None:
    """value[x]: restore one ``target`` carried down; carry a type ``target`` lacks (§4.1)."""
    carried = _take_typed(element, target, f"{path}.value")
    if carried:  # the stand-in made on the way down goes
        for key in [k for k in element if k.lstrip("_").startswith("value")]:
            del element[key]
        element[carried[0]] = carried[1]
    for key in [k for k in element if k.startswith("value") and k[5:] not in allowed]:
        value = element.pop(key)
        element.pop("_" + key, None)
        add_xver(element, source, f"{path}.value", key, value)
        if key == "valueInteger":  # proxy decision: a unitless Quantity, which the app reads
            element["valueQuantity"] = {"value": value}
        elif key == "valueBoolean":  # proxy decision: readable text
            element["valueString"] = "true" if value else "false"


def _recode_absent(concept: Any, table: Mapping[str, str], allowed: frozenset[str] | None) -> None:
    """Rename data-absent-reason codes; one the target lacks becomes `unknown` (§2.4)."""
    if not isinstance(concept, dict):
        return
    for coding in items(concept.get("coding")):
        if not str(coding.get("system", "")).endswith("/data-absent-reason"):
            continue
        code = table.get(str(coding.get("code")), coding.get("code"))
        if allowed is not None and code not in allowed:
            # proxy decision (ConceptMap noMap): the reason stays readable in the text
            concept.setdefault("text", coding.pop("display", None) or code)
            code = "unknown"
        coding["code"] = code


def _interpretation_down(element: Resource, path: str) -> None:
    """R4 0..* interpretation → STU3 0..1: the first; the rest carried (§4.1)."""
    concepts = items(element.pop("interpretation", None))
    for concept in concepts:
        _interpretation_systems(concept, _INTERP_AS_R4, _INTERP_R4_ONLY, _INTERP_OLD)
    if concepts:
        element["interpretation"] = concepts[0]
    for extra in concepts[1:]:
        add_xver(element, "r4", f"{path}.interpretation", _CC, extra)


def _interpretation_up(element: Resource, path: str) -> None:
    """STU3 0..1 interpretation, with the carried rest → R4 list."""
    concept = element.pop("interpretation", None)
    concepts = [concept] if concept else []
    concepts += take_all_xver(element, "r4", f"{path}.interpretation")
    for item in concepts:
        _interpretation_systems(item, _INTERP_AS_OLD, _INTERP_V2_ONLY, _INTERP_R4)
    if concepts:
        element["interpretation"] = concepts


def _interpretation_systems(
    concept: Any, systems: frozenset[str], keep: frozenset[str], target: str
) -> None:
    """Interpretation codings into the target's system; unmapped codes keep their own."""
    for coding in items(concept.get("coding") if isinstance(concept, dict) else None):
        if coding.get("system") in systems and coding.get("code") not in keep:
            coding["system"] = target


def _related_down(obs: Resource) -> None:
    """hasMember, derivedFrom and the official R3 extensions → STU3 related (§4.1)."""
    related = [{"type": "has-member", "target": t} for t in obs.pop("hasMember", None) or []]
    related += [{"type": "derived-from", "target": t} for t in obs.pop("derivedFrom", None) or []]
    for kind, url in _RELATED_EXTENSIONS.items():
        related += [{"type": kind, "target": value} for _, value in _pop_extensions(obs, url)]
    related += [{"target": value} for value in take_all_xver(obs, "stu3", "Observation.related")]
    for item in related:
        adapt_references(item, {"target": _RELATED_TARGETS["stu3"]}, "r4", "stu3")
    if related:
        obs["related"] = related


def _related_up(obs: Resource) -> None:
    """STU3 related → hasMember/derivedFrom; other types → the official R3 extensions."""
    for item in items(obs.pop("related", None)):
        kind, target = item.get("type"), item.get("target")
        if kind == "has-member":
            obs.setdefault("hasMember", []).append(target)
        elif kind == "derived-from":
            obs.setdefault("derivedFrom", []).append(target)
        elif kind in _RELATED_EXTENSIONS:
            extension = {"url": _RELATED_EXTENSIONS[kind], "valueReference": target}
            obs.setdefault("extension", []).append(extension)
        else:  # an untyped link has no R4 home either
            add_xver(obs, "stu3", "Observation.related", "valueReference", target)


def _category_down(obs: Resource) -> None:
    """STU3 0..* category → DSTU2 0..1: vital-signs if present, else the first (§4.1, §15)."""
    categories = items(obs.pop("category", None))
    if not categories:
        return
    chosen = next(
        (c for c in categories if first_code(c, "/observation-category") == "vital-signs"),
        categories[0],
    )
    obs["category"] = chosen
    for other in categories:
        if other is not chosen:
            add_xver(obs, "stu3", "Observation.category", _CC, other)


def _range_down(reference_range: Resource) -> None:
    """type, else appliesTo[0] → DSTU2 meaning; every appliesTo is carried (§4.1)."""
    applies = items(reference_range.pop("appliesTo", None))
    kind = reference_range.pop("type", None)
    meaning = kind or (applies[0] if applies else None)
    if meaning:
        reference_range["meaning"] = meaning
    for concept in applies:
        add_xver(reference_range, "stu3", "Observation.referenceRange.appliesTo", _CC, concept)


def _range_up(reference_range: Resource) -> None:
    """DSTU2 meaning → type, unless it stood for the first carried appliesTo."""
    applies = take_all_xver(reference_range, "stu3", "Observation.referenceRange.appliesTo")
    meaning = reference_range.pop("meaning", None)
    if applies:
        reference_range["appliesTo"] = applies
    if meaning and not (applies and applies[0] == meaning):
        reference_range["type"] = meaning


# -- extensions (value[x] needs the value's key: take_xver gives the value alone) --------------


def _restore_list(element: Resource, source: str, path: str, key: str) -> None:
    """Put carried values back as the list element ``key``."""
    values = take_all_xver(element, source, path)
    if values:
        element[key] = values


def _pop_extensions(element: Resource, url: str, limit: int = -1) -> list[tuple[str, Any]]:
    """Remove extensions with ``url`` (at most ``limit``); their (value key, value) pairs."""
    extensions = element.get("extension")
    if not isinstance(extensions, list):
        return []
    found: list[tuple[str, Any]] = []
    kept = []
    for extension in extensions:
        if isinstance(extension, dict) and extension.get("url") == url and len(found) != limit:
            found += [(k, v) for k, v in extension.items() if k.startswith("value")][:1]
        else:
            kept.append(extension)
    if kept:
        element["extension"] = kept
    else:
        element.pop("extension")
    return found


def _take_typed(element: Resource, source: str, path: str) -> tuple[str, Any] | None:
    """Like common.take_xver, but also says which value[x] key the value had."""
    found = _pop_extensions(element, xver_url(source, path), limit=1)
    return found[0] if found else None
