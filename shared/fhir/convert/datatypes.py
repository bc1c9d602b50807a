"""Data types several resources share, converted one step at a time (§2.5): Identifier, Address,
ContactPoint, HumanName and the References they hold (Patient, Practitioner, Location,
Organization, Medication), and Timing (MedicationRequest's Dosage, and carried values).
Section numbers (§) refer to docs/conversion/mapping.md. Decisions: docs/conversion/patient.md
("Data-type rules") and docs/conversion/medication_request.md (Timing).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.fhir.convert.carry import carried, carry, restore
from shared.fhir.convert.common import add_xver, convert_reference, rename, take_xver

# -- Identifier, Address, ContactPoint ---------------------------------------------------------

# Codes an element of a data type lacks in the older release of one step, and what the older
# release gets instead (None: the element is left out). The code itself rides in the
# cross-version extension, so the way up restores it. Source: the HL7 xver ConceptMaps
# (R4 IdentifierUse, AddressUse → R3: no map; R3 ContactPointSystem → R2: no map).
_LOST_CODES: tuple[tuple[str, str, str, str, frozenset[str], str | None], ...] = (
    ("Identifier", "use", "r4", "stu3", frozenset({"old"}), None),
    ("Address", "use", "r4", "stu3", frozenset({"billing"}), None),
    ("ContactPoint", "system", "stu3", "dstu2", frozenset({"url", "sms"}), "other"),
)


def _lost_codes(element: dict[str, Any], datatype: str, source: str, target: str) -> None:
    for name, key, newer, older, lost, replacement in _LOST_CODES:
        if name != datatype:
            continue
        path = f"{datatype}.{key}"
        if (source, target) == (newer, older) and element.get(key) in lost:
            add_xver(element, newer, path, "valueCode", element[key])
            if replacement is None:
                element.pop(key)
                element.pop("_" + key, None)
            else:
                element[key] = replacement
        elif (source, target) == (older, newer):
            restored = take_xver(element, newer, path)
            if restored is not None:
                element[key] = restored


# -- HumanName ---------------------------------------------------------------------------------

# The official extension for DSTU2's second and later family parts (§2.5).
_FAMILY_REPEAT = "http://hl7.org/fhir/StructureDefinition/HumanName-familyRepeat"


def family_as_list(name: Any) -> Any:
    """HumanName with ``family`` as DSTU2's list (its ``_family`` twin too); nothing else."""
    if not isinstance(name, dict):
        return name
    out = dict(name)
    if isinstance(out.get("family"), str):
        out["family"] = [out["family"]]
        if "_family" in out:
            out["_family"] = [out["_family"]]
    return out


def name_for_dstu2(name: Any) -> Any:
    """HumanName for DSTU2: ``family_as_list``, with the familyRepeat extensions that
    ``name_for_stu3`` made folded back into the list."""
    out = family_as_list(name)
    if not isinstance(out, dict) or not isinstance(out.get("extension"), list):
        return out
    repeats = [
        e
        for e in out["extension"]
        if isinstance(e, dict)
        and e.get("url") == _FAMILY_REPEAT
        and isinstance(e.get("valueString"), str)
    ]
    if repeats:
        out["family"] = [*out.get("family", []), *(e["valueString"] for e in repeats)]
        if isinstance(out.get("_family"), list):  # JSON keeps _family aligned with family
            out["_family"] = [*out["_family"], *([None] * len(repeats))]
        out["extension"] = [e for e in out["extension"] if e not in repeats]
        if not out["extension"]:
            out.pop("extension")
    return out


def name_for_stu3(name: Any) -> Any:
    """HumanName from DSTU2: the family list joined (parts after the first become familyRepeat
    extensions), keeping the first part's ``_family``."""
    first = None
    if isinstance(name, dict) and isinstance(name.get("_family"), list) and name["_family"]:
        first = name["_family"][0]
    out = _family_joined(name)
    if isinstance(out, dict) and isinstance(first, dict) and "family" in out:
        out["_family"] = first
    return out


def _family_joined(name: Any) -> Any:
    """HumanName with DSTU2's family list joined into one string (parts kept in an extension);
    the list's ``_family`` twins are dropped."""
    if not isinstance(name, dict):
        return name
    out = dict(name)
    family = out.get("family")
    if isinstance(family, list):
        parts = [part for part in family if isinstance(part, str)]
        out.pop("_family", None)
        if parts:
            out["family"] = parts[0]
            if len(parts) > 1:
                out.setdefault("extension", []).extend(
                    {"url": _FAMILY_REPEAT, "valueString": part} for part in parts[1:]
                )
        else:
            out.pop("family")
    return out


# -- any of the above, by name -----------------------------------------------------------------


def convert_datatype(value: Any, datatype: str, source: str, target: str) -> Any:
    """One data-type value for ``target`` (one step, ``source`` → ``target``)."""
    if not isinstance(value, dict):
        return value
    if datatype == "Reference":
        return convert_reference(value, target)
    if datatype == "HumanName":
        if target == "dstu2":
            return name_for_dstu2(value)
        return name_for_stu3(value) if source == "dstu2" else value
    out = dict(value)
    _lost_codes(out, datatype, source, target)
    if datatype == "Identifier" and "assigner" in out:
        out["assigner"] = convert_reference(out["assigner"], target)
    return out


def convert_elements(holder: Any, fields: Mapping[str, str], source: str, target: str) -> None:
    """Convert (in place) the elements of ``holder`` named in ``fields`` (name → data type)."""
    if not isinstance(holder, dict):
        return
    for key, datatype in fields.items():
        value = holder.get(key)
        if isinstance(value, list):
            holder[key] = [convert_datatype(item, datatype, source, target) for item in value]
        elif value is not None:
            holder[key] = convert_datatype(value, datatype, source, target)


# -- Timing ------------------------------------------------------------------------------------

# event-timing codes per release: the v3 TimingEvent codes all three share; STU3 adds five of
# its own (R4 adds MORN.early … EVE.late and NOON); DSTU2's binding also lists the v3 IC* codes.
_WHEN_SHARED = frozenset(
    {"HS", "WAKE", "C", "CM", "CD", "CV", "AC", "ACM", "ACD", "ACV", "PC", "PCM", "PCD", "PCV"}
)
_WHEN_STU3 = _WHEN_SHARED | {"MORN", "AFT", "EVE", "NIGHT", "PHS"}
_WHEN_DSTU2 = _WHEN_SHARED | {"IC", "ICM", "ICD", "ICV"}
_TIMING_RENAMES = (
    ("boundsDuration", "boundsQuantity"),
    ("durationUnit", "durationUnits"),
    ("periodUnit", "periodUnits"),
)
_REPEAT_CARRY = (
    ("countMax", "Timing.repeat.countMax", "valueInteger"),
    ("dayOfWeek", "Timing.repeat.dayOfWeek", "valueCode"),
    ("timeOfDay", "Timing.repeat.timeOfDay", "valueTime"),
    ("offset", "Timing.repeat.offset", "valueUnsignedInt"),
)


def _when_down(repeat: dict[str, Any], valid: frozenset[str], source: str, many: bool) -> None:
    codes = repeat.pop("when", None)
    repeat.pop("_when", None)
    codes = codes if isinstance(codes, list) else [codes] if codes else []
    kept = [code for code in codes if code in valid][: None if many else 1]
    if kept:
        repeat["when"] = kept if many else kept[0]
    if kept != codes:  # every code rides along, so the way back up restores the list as it was
        for code in codes:
            add_xver(repeat, source, "Timing.repeat.when", "valueCode", code)


def _when_up(repeat: dict[str, Any], source: str) -> None:
    codes = [value for _, value in carried(repeat, source, "Timing.repeat.when")]
    if codes:
        repeat["when"] = codes
    elif isinstance(repeat.get("when"), str):
        repeat["when"] = [repeat["when"]]


def convert_timing(timing: Any, source: str, target: str) -> None:
    """A Timing (in place) in ``target``'s shape, one step from ``source``: ``when`` codes,
    DSTU2's key names and the elements DSTU2 lacks (§2.5)."""
    repeat = timing.get("repeat") if isinstance(timing, dict) else None
    if not isinstance(repeat, dict):
        return
    if (source, target) == ("r4", "stu3"):
        _when_down(repeat, _WHEN_STU3, "r4", many=True)
    elif (source, target) == ("stu3", "r4"):
        _when_up(repeat, "r4")
    elif target == "dstu2":
        _when_down(repeat, _WHEN_DSTU2, "stu3", many=False)
        rename(repeat, _TIMING_RENAMES)
        for key, path, value_key in _REPEAT_CARRY:
            carry(repeat, key, path, value_key, "stu3", "dstu2")
    else:
        _when_up(repeat, "stu3")
        rename(repeat, [(new, old) for old, new in _TIMING_RENAMES])
        for key, path, _ in _REPEAT_CARRY:
            restore(repeat, key, path, "stu3", many=key in ("dayOfWeek", "timeOfDay"))
