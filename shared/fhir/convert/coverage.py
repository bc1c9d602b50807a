"""Coverage between R4, STU3 and DSTU2 (§9).

R4 ⇄ STU3 follows the official map (class[] ⇄ grouping + sequence, §9.2, with the R4 code
system's lower-case codes, not HAPI's camel-case). DSTU2's Coverage is a different resource
with no official map: everything on the STU3 ⇄ DSTU2 step is a proxy decision (§9.1).
Decisions: docs/conversion/coverage.md.
Section numbers (§) refer to docs/conversion/mapping.md.
"""

from __future__ import annotations

from typing import Any

from shared.fhir.convert.carry import carried, carry, peek, restore
from shared.fhir.convert.common import (
    ConversionError,
    Resource,
    add_xver,
    concept,
    convert_reference,
    convert_references,
    items,
    prune_empty_twins,
    reference_type,
)
from shared.fhir.convert.contained import convert_contained
from shared.fhir.convert.repair import repair
from shared.fhir.convert.supplied import is_supplied, supplied

_C = "Coverage"
_CLASS_SYSTEM = "http://terminology.hl7.org/CodeSystem/coverage-class"
# R4 class.type code → the STU3 grouping fields for its value and its name (§9.2, official).
_GROUPING = {
    "group": ("group", "groupDisplay"),
    "subgroup": ("subGroup", "subGroupDisplay"),
    "plan": ("plan", "planDisplay"),
    "subplan": ("subPlan", "subPlanDisplay"),
    "class": ("class", "classDisplay"),
    "subclass": ("subClass", "subClassDisplay"),
}
# HAPI's camel-case class codes (§15): accepted on input, never written.
_HAPI_CODES = {"subGroup": "subgroup", "subPlan": "subplan", "subClass": "subclass"}
_CLASS_PATH = f"{_C}.class"
# R4's subscriber-relationship added "injured"; STU3's policyholder-relationship lacks it.
_RELATIONSHIPS_R4_ONLY = frozenset({"injured"})
_REFERENCES = ("policyHolder", "subscriber", "beneficiary", "payor", "contract", "issuer")
# STU3 grouping fields DSTU2 has a place for; the others ride along (§9.2).
_DSTU2_GROUPING = ("group", "subPlan")
_GROUPING_FIELDS = tuple(field for pair in _GROUPING.values() for field in pair)
# STU3 elements with no DSTU2 home: (element, path, extension value key).
_CARRY_STU3 = (
    ("status", f"{_C}.status", "valueCode"),
    ("policyHolder", f"{_C}.policyHolder", "valueReference"),
    ("relationship", f"{_C}.relationship", "valueCodeableConcept"),
    ("order", f"{_C}.order", "valuePositiveInt"),
)


def _class_code(item: dict[str, Any]) -> str | None:
    kind = item.get("type")
    for coding in items(kind.get("coding") if isinstance(kind, dict) else None):
        if coding.get("system") in (_CLASS_SYSTEM, None) and coding.get("code"):
            code = str(coding["code"])
            return _HAPI_CODES.get(code, code)
    return None


def _class_to_extension(item: dict[str, Any]) -> list[dict[str, Any]]:
    parts = [("type", "valueCodeableConcept"), ("value", "valueString"), ("name", "valueString")]
    return [{"url": key, value_key: item[key]} for key, value_key in parts if key in item]


def _class_from_extension(parts: Any) -> dict[str, Any]:
    return {
        part["url"]: value
        for part in items(parts)
        for key, value in part.items()
        if key.startswith("value")
    }


# -- R4 ⇄ STU3 ---------------------------------------------------------------------------------


def _classes_to_grouping(coverage: Resource) -> None:
    """class[] → grouping + sequence; what grouping cannot hold (rx* classes, a second class
    of one type) rides along as a complex extension (§9.2)."""
    grouping: dict[str, Any] = {}
    for item in items(coverage.pop("class", None)):
        code = _class_code(item)
        value_field, name_field = _GROUPING.get(code or "", ("", ""))
        if value_field and value_field not in grouping and "value" in item:
            grouping[value_field] = item["value"]
            if item.get("name"):
                grouping[name_field] = item["name"]
        elif code == "sequence" and "sequence" not in coverage and "name" not in item:
            coverage["sequence"] = item.get("value")
        else:
            add_xver(coverage, "r4", _CLASS_PATH, "extension", _class_to_extension(item))
    if grouping:
        coverage["grouping"] = grouping


def _grouping_to_classes(coverage: Resource) -> None:
    grouping = coverage.pop("grouping", None)
    grouping = grouping if isinstance(grouping, dict) else {}
    classes = []
    for code, (value_field, name_field) in _GROUPING.items():
        # class.value is 1..1: a name without a value stands in for it (proxy decision).
        value = grouping.get(value_field) or grouping.get(name_field)
        if value:
            item = {"type": concept(_CLASS_SYSTEM, code), "value": value}
            if grouping.get(name_field):
                item["name"] = grouping[name_field]
            classes.append(item)
    if coverage.get("sequence"):
        classes.append({"type": concept(_CLASS_SYSTEM, "sequence"), "value": coverage["sequence"]})
    coverage.pop("sequence", None)
    coverage.pop("_sequence", None)
    classes += [_class_from_extension(parts) for _, parts in carried(coverage, "r4", _CLASS_PATH)]
    if classes:
        coverage["class"] = classes


def _relationship_to_stu3(coverage: Resource) -> None:
    relationship = coverage.get("relationship")
    codes = {c.get("code") for c in items(relationship.get("coding"))} if relationship else set()
    if codes & _RELATIONSHIPS_R4_ONLY:
        carry(coverage, "relationship", f"{_C}.relationship", "valueCodeableConcept", "r4", "stu3")


def r4_to_stu3(coverage: Resource) -> Resource:
    """R4 Coverage → STU3: class[] → grouping + sequence (official, lower-case codes)."""
    repair(coverage)
    for key in ("beneficiary", "payor"):  # proxy-supplied on an earlier way up
        if all(is_supplied(item) for item in items(coverage.get(key))):
            coverage.pop(key, None)
    if is_supplied(coverage.get("_status")):
        coverage.pop("status", None)
        coverage.pop("_status")
    _classes_to_grouping(coverage)
    _relationship_to_stu3(coverage)
    carry(coverage, "subrogation", f"{_C}.subrogation", "valueBoolean", "r4", "stu3")
    # costToBeneficiary (nested Money and exceptions) has no STU3 home: dropped (§9.1).
    coverage.pop("costToBeneficiary", None)
    convert_references(coverage, _REFERENCES, "stu3")
    convert_contained(coverage, "r4", "stu3")
    return coverage


def stu3_to_r4(coverage: Resource) -> Resource:
    """STU3 Coverage → R4: grouping + sequence → class[]; R4's required elements supplied."""
    repair(coverage)
    _grouping_to_classes(coverage)
    restore(coverage, "relationship", f"{_C}.relationship", "r4")
    restore(coverage, "subrogation", f"{_C}.subrogation", "r4")
    # R4 requires status, beneficiary and payor (STU3: 0..1, 0..1, 0..*): marked supplied
    # values (§2.6 proxy decision); the way back down removes them.
    if "status" not in coverage:
        coverage["status"] = "active"
        coverage["_status"] = supplied()
    coverage.setdefault("beneficiary", supplied())
    if not items(coverage.get("payor")):
        coverage["payor"] = [supplied()]
    convert_references(coverage, _REFERENCES, "r4")
    convert_contained(coverage, "stu3", "r4")
    return coverage


# -- STU3 ⇄ DSTU2 (no official map: proxy decisions, §9.1) ------------------------------------


def _positive_int(coverage: Resource, key: str) -> None:
    """STU3 string → DSTU2 positiveInt when it is one; otherwise it rides along."""
    value = coverage.get(key)
    if isinstance(value, str) and value.isdigit() and int(value) > 0:
        coverage[key] = int(value)
    else:
        carry(coverage, key, f"{_C}.{key}", "valueString", "stu3", "dstu2")


def _to_string(coverage: Resource, key: str) -> None:
    values = [value for _, value in carried(coverage, "stu3", f"{_C}.{key}")]
    value = values[0] if values else coverage.get(key)
    if value is not None:
        coverage[key] = str(value)


def _identifier_to_dstu2(coverage: Resource, key: str) -> None:
    if isinstance(coverage.get(key), str):
        coverage[key] = {"value": coverage[key]}
        coverage.pop("_" + key, None)


def _identifier_from_dstu2(coverage: Resource, key: str) -> None:
    """DSTU2 Identifier → STU3 string: the value (system and type are lost)."""
    identifier = coverage.pop(key, None)
    if isinstance(identifier, dict) and identifier.get("value"):
        coverage[key] = str(identifier["value"])


def _parties_to_dstu2(coverage: Resource) -> None:
    """DSTU2's subscriber (a Patient) ← subscriber when it is a Patient, else beneficiary; the
    one not used rides along, so the way back up restores both (§9.1)."""
    subscriber = coverage.pop("subscriber", None)
    beneficiary = coverage.pop("beneficiary", None)
    patient = subscriber is not None and reference_type(subscriber) in ("Patient", None)
    chosen = subscriber if patient else beneficiary
    if chosen is not None:
        coverage["subscriber"] = chosen
    for key, original in (("subscriber", subscriber), ("beneficiary", beneficiary)):
        if original != chosen:  # an absent one rides along as a supplied marker
            value = convert_reference(original, "dstu2") if original else supplied()
            add_xver(coverage, "stu3", f"{_C}.{key}", "valueReference", value)


def _parties_from_dstu2(coverage: Resource) -> None:
    subscriber = coverage.pop("subscriber", None)
    for key in ("subscriber", "beneficiary"):
        values = [value for _, value in carried(coverage, "stu3", f"{_C}.{key}")]
        value = values[0] if values else subscriber
        if value is not None and not is_supplied(value):
            coverage[key] = value


def _payors_to_dstu2(coverage: Resource) -> None:
    """DSTU2's issuer (an Organization) ← the first Organization payor, else the first payor
    as display only (the app shows it as "Payor"); when that loses anything, every payor
    rides along (§9.1)."""
    payors = items(coverage.pop("payor", None))
    organizations = [p for p in payors if reference_type(p) in ("Organization", None)]
    first = next(iter(organizations or payors), None)
    if first is not None:
        issuer = dict(first)
        if reference_type(issuer) not in ("Organization", None):
            issuer.pop("reference", None)
            issuer.pop("_reference", None)
        if issuer:
            coverage["issuer"] = issuer
    if payors != [coverage.get("issuer")]:
        for payor in payors:
            add_xver(
                coverage, "stu3", f"{_C}.payor", "valueReference", convert_reference(payor, "dstu2")
            )


def _payors_from_dstu2(coverage: Resource) -> None:
    issuer = coverage.pop("issuer", None)
    restore(coverage, "payor", f"{_C}.payor", "stu3", many=True)
    if "payor" not in coverage and isinstance(issuer, dict):
        coverage["payor"] = [issuer]


def _grouping_to_dstu2(coverage: Resource) -> None:
    """grouping → group, plan (its name when there is one: the app shows it), subPlan; the
    rest of grouping rides along field by field (§9.2 proxy decisions)."""
    grouping = coverage.pop("grouping", None)
    grouping = grouping if isinstance(grouping, dict) else {}
    for key in _DSTU2_GROUPING:
        if grouping.get(key):
            coverage[key] = grouping[key]
    if grouping.get("planDisplay") or grouping.get("plan"):
        coverage["plan"] = grouping.get("planDisplay") or grouping["plan"]
    lost = [key for key in _GROUPING_FIELDS if key in grouping and key not in _DSTU2_GROUPING]
    if "planDisplay" not in grouping and "plan" in lost:
        lost.remove("plan")  # DSTU2's plan holds it as it is
    for key in lost:
        add_xver(coverage, "stu3", f"{_C}.grouping.{key}", "valueString", grouping[key])


def _grouping_from_dstu2(coverage: Resource) -> None:
    grouping = {
        key: values[0][1]
        for key in _GROUPING_FIELDS
        if (values := carried(coverage, "stu3", f"{_C}.grouping.{key}"))
    }
    plan = coverage.pop("plan", None)
    coverage.pop("_plan", None)
    for key in _DSTU2_GROUPING:
        if coverage.get(key):
            grouping[key] = coverage.pop(key)
    if plan and "plan" not in grouping and "planDisplay" not in grouping:
        grouping["plan"] = plan  # DSTU2's plan is "an identifier for the plan"
    if grouping:
        coverage["grouping"] = grouping


def _bin_to_dstu2(coverage: Resource) -> None:
    """DSTU2's bin ← an R4 rxbin class carried through STU3 (proxy decision, §9.2)."""
    restore(coverage, "bin", f"{_C}.bin", "dstu2")
    for parts in peek(coverage, "r4", _CLASS_PATH):
        item = _class_from_extension(parts)
        if "bin" not in coverage and _class_code(item) == "rxbin" and item.get("value"):
            coverage["bin"] = {"value": item["value"]}


def _bin_from_dstu2(coverage: Resource) -> None:
    values = [_class_from_extension(parts) for parts in peek(coverage, "r4", _CLASS_PATH)]
    rxbins = [{"value": v["value"]} for v in values if _class_code(v) == "rxbin" and "value" in v]
    if coverage.get("bin") in rxbins:
        coverage.pop("bin")
    carry(coverage, "bin", f"{_C}.bin", "valueIdentifier", "dstu2", "stu3")


def _type_to_dstu2(coverage: Resource) -> None:
    """type: DSTU2 has one Coding: the first; anything more rides along."""
    kind = coverage.pop("type", None)
    codings = items(kind.get("coding")) if isinstance(kind, dict) else []
    if codings:
        coverage["type"] = codings[0]
    if kind is not None and kind != {"coding": codings[:1]}:
        add_xver(coverage, "stu3", f"{_C}.type", "valueCodeableConcept", kind)


def _type_from_dstu2(coverage: Resource) -> None:
    coding = coverage.pop("type", None)
    restore(coverage, "type", f"{_C}.type", "stu3")
    if "type" not in coverage and isinstance(coding, dict):
        coverage["type"] = {"coding": [coding]}


def stu3_to_dstu2(coverage: Resource) -> Resource:
    """STU3 Coverage → DSTU2: payor → issuer, grouping → group/plan/subPlan, subscriber or
    beneficiary → subscriber (proxy decisions: no official map exists)."""
    repair(coverage)
    if coverage.get("status") == "entered-in-error":
        # DSTU2 Coverage has no status to say so (§9.1 proxy decision): left out.
        raise ConversionError("an entered-in-error Coverage has no DSTU2 counterpart")
    for key, path, value_key in _CARRY_STU3:
        carry(coverage, key, path, value_key, "stu3", "dstu2")
    _type_to_dstu2(coverage)
    _parties_to_dstu2(coverage)
    _payors_to_dstu2(coverage)
    _grouping_to_dstu2(coverage)
    for key in ("dependent", "sequence"):
        if key in coverage:
            _positive_int(coverage, key)
    for key in ("subscriberId", "network"):
        _identifier_to_dstu2(coverage, key)
    _bin_to_dstu2(coverage)
    convert_references(coverage, _REFERENCES, "dstu2")
    convert_contained(coverage, "stu3", "dstu2")
    return coverage


def dstu2_to_stu3(coverage: Resource) -> Resource:
    """DSTU2 Coverage → STU3: issuer → payor, group/plan/subPlan → grouping, subscriber →
    subscriber and beneficiary (proxy decisions: no official map exists)."""
    prune_empty_twins(coverage)
    repair(coverage)
    for key, path, _ in _CARRY_STU3:
        restore(coverage, key, path, "stu3")
    _type_from_dstu2(coverage)
    _parties_from_dstu2(coverage)
    _payors_from_dstu2(coverage)
    _grouping_from_dstu2(coverage)
    for key in ("dependent", "sequence"):
        _to_string(coverage, key)
    for key in ("subscriberId", "network"):
        _identifier_from_dstu2(coverage, key)
    _bin_from_dstu2(coverage)
    convert_references(coverage, _REFERENCES, "stu3")
    convert_contained(coverage, "dstu2", "stu3")
    return coverage
