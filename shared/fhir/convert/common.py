"""What every resource converter and the framework share: versions and errors, code-system URIs,
references and renamed types, the cross-version extension form, what runs around every step,
and small dict helpers. The data types several resources hold are in datatypes.py.

Pure functions over plain dicts; no I/O. Section numbers (§) refer to
docs/conversion/mapping.md; docs/conversion/ records every lossy decision.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from shared.fhir.catalog import type_renames
from shared.fhir.versions import VERSIONS

# The cross-version extension form names the source release as major.minor (§2.7).
RELEASE = {version.value: version.release for version in VERSIONS}

Resource = dict[str, Any]
Step = Callable[[Resource], Resource]


class ConversionError(ValueError):
    """A resource or request that cannot be expressed in the target version."""


class InvalidResource(ConversionError):
    """Input no release accepts (schema-invalid JSON): refused like the unconvertible."""


class UnsupportedResource(ConversionError):
    """No converter for this resource type between these versions."""

    def __init__(self, resource_type: str, source: str, target: str) -> None:
        super().__init__(f"{resource_type} cannot be converted from {source} to {target}")
        self.resource_type = resource_type


# -- code-system URIs (§2.4) -------------------------------------------------------------------

_TERMINOLOGY = "http://terminology.hl7.org/CodeSystem/"
_FHIR = "http://hl7.org/fhir/"

# R4 URI → STU3/DSTU2 URI, for the systems that moved but kept their name or were renamed.
_R4_TO_OLD_NAMES = {
    "observation-category": "observation-category",
    "data-absent-reason": "data-absent-reason",
    "condition-clinical": "condition-clinical",
    "condition-ver-status": "condition-ver-status",
    "condition-category": "condition-category",
    "allergyintolerance-clinical": "allergy-clinical-status",
    "allergyintolerance-verification": "allergy-verification-status",
    "reaction-event-certainty": "reaction-event-certainty",
    "medicationrequest-category": "medication-request-category",
    "diagnosis-role": "diagnosis-role",
    "participant-type": "participant-type",
    "admit-source": "admit-source",
    "discharge-disposition": "discharge-disposition",
    "location-physical-type": "location-physical-type",
    "coverage-selfpay": "coverage-selfpay",
    "subscriber-relationship": "policyholder-relationship",
    "operation-outcome": "operation-outcome",
    "restful-security-service": "restful-security-service",
    "condition-severity": "condition-severity",
    "organization-type": "organization-type",
}
# Systems whose R4 URI stays under hl7.org/fhir but whose STU3 name differs.
_R4_FHIR_TO_STU3 = {
    _FHIR + "CodeSystem/medicationrequest-status": _FHIR + "medication-request-status",
    _FHIR + "CodeSystem/medicationrequest-intent": _FHIR + "medication-request-intent",
}
_IDENTIFIER_TYPE_CODES = frozenset({"UDI", "SNO", "SB", "PLAC", "FILL"})

_OLD_TO_R4 = {_FHIR + old: _TERMINOLOGY + new for new, old in _R4_TO_OLD_NAMES.items()}
_OLD_TO_R4.update({old: new for new, old in _R4_FHIR_TO_STU3.items()})
_R4_TO_OLD = {new: old for old, new in _OLD_TO_R4.items()}

_V2_R4 = re.compile(r"http://terminology\.hl7\.org/CodeSystem/v2-(\d{4})\Z")
_V3_R4 = re.compile(r"http://terminology\.hl7\.org/CodeSystem/v3-([A-Za-z]+)\Z")
_V2_OLD = re.compile(r"http://hl7\.org/fhir/v2/(\d{4})\Z")
_V3_OLD = re.compile(r"http://hl7\.org/fhir/v3/([A-Za-z]+)\Z")


def system_for(uri: str, target: str, code: str | None = None) -> str:
    """``uri`` as ``target`` spells it; either spelling is accepted as input."""
    if target == "r4":
        if match := _V2_OLD.match(uri):
            return f"{_TERMINOLOGY}v2-{match.group(1)}"
        if match := _V3_OLD.match(uri):
            return f"{_TERMINOLOGY}v3-{match.group(1)}"
        if uri == _FHIR + "identifier-type":
            return f"{_TERMINOLOGY}v2-0203"
        return _OLD_TO_R4.get(uri, uri)
    if match := _V2_R4.match(uri):
        if match.group(1) == "0203" and code in _IDENTIFIER_TYPE_CODES:
            return _FHIR + "identifier-type"
        return f"{_FHIR}v2/{match.group(1)}"
    if match := _V3_R4.match(uri):
        return f"{_FHIR}v3/{match.group(1)}"
    return _R4_TO_OLD.get(uri, uri)


# system_for results by URI, per direction (STU3 and DSTU2 spell every system alike): a
# document repeats a handful of systems many times. Bounded, as the URIs come from upstream.
_SYSTEM_CACHE: dict[bool, dict[str, str]] = {True: {}, False: {}}
_SYSTEM_CACHE_SIZE = 1024
# The one URI whose older spelling depends on the code (§2.4): never cached.
_V2_0203_R4 = _TERMINOLOGY + "v2-0203"


def _system(uri: str, target: str, code: Any, cache: dict[str, str]) -> str:
    found = cache.get(uri)
    if found is None:
        found = system_for(uri, target, code)
        if uri != _V2_0203_R4 and len(cache) < _SYSTEM_CACHE_SIZE:
            cache[uri] = found
    return found


def rewrite_systems(node: Any, target: str) -> Any:
    """Rewrite every Coding ``system`` in a tree (in place) to ``target``'s URIs; returns it."""
    cache = _SYSTEM_CACHE[target == "r4"]
    if isinstance(node, dict):
        _rewrite_dict(node, target, cache)
    elif isinstance(node, list):
        _rewrite_list(node, target, cache)
    return node


_CONTAINERS = (dict, list)


# The walk visits every node of every converted document, once per step and once before: it
# compares classes (JSON gives plain dicts, lists and strings) before any isinstance, and walks
# a list's items in place (FHIR JSON has no lists of lists).
def _rewrite_dict(node: dict[str, Any], target: str, cache: dict[str, str]) -> None:
    if "system" in node:
        system = node["system"]
        if isinstance(system, str) and ("code" in node or "display" in node):
            node["system"] = cache.get(system) or _system(system, target, node.get("code"), cache)
    for value in node.values():
        kind = type(value)
        if kind is dict:
            _rewrite_dict(value, target, cache)
        elif kind is list:
            for item in value:
                if type(item) is dict:
                    _rewrite_dict(item, target, cache)
                elif isinstance(item, _CONTAINERS):
                    rewrite_systems(item, target)
        elif kind is not str and isinstance(value, _CONTAINERS):  # subclasses: rare
            rewrite_systems(value, target)


def _rewrite_list(node: list[Any], target: str, cache: dict[str, str]) -> None:
    for item in node:
        if type(item) is dict:
            _rewrite_dict(item, target, cache)
        elif isinstance(item, _CONTAINERS):
            rewrite_systems(item, target)


def token_for(value: str, target: str) -> str:
    """A ``system|code`` search token with its system rewritten (§14.4)."""
    system, bar, code = value.partition("|")
    if not bar or not system:
        return value
    return f"{system_for(system, target, code)}|{code}"


# -- references and renames (§2.2, §2.3) -------------------------------------------------------

_TYPE_NAMES = {version.value: type_renames(version) for version in VERSIONS}


def type_name(resource_type: str, target: str) -> str:
    """The name ``target`` gives a resource type (MedicationOrder ⇄ MedicationRequest)."""
    return _TYPE_NAMES[target].get(resource_type, resource_type)


_TYPE_SEGMENTS = {
    target: [
        (old, re.compile(rf"(^|/){old}(?=[/?]|$)"), rf"\g<1>{new}") for old, new in names.items()
    ]
    for target, names in _TYPE_NAMES.items()
}


def reference_string(reference: str, target: str) -> str:
    """A reference or URL with its resource-type segment renamed for ``target``."""
    for old, pattern, replacement in _TYPE_SEGMENTS[target]:
        if old in reference:  # the regex only when the name is there at all: rarely
            reference = pattern.sub(replacement, reference)
    return reference


_REFERENCE_IDENTIFIER = "Reference.identifier"


def convert_reference(reference: Any, target: str) -> Any:
    """A Reference for ``target``: R4 ``type`` dropped for older targets; DSTU2 has no
    ``identifier``: it rides in ``3.0/…extension-Reference.identifier``, and its value becomes
    ``display`` when there is none (a proxy decision: the app shows display)."""
    if not isinstance(reference, dict):
        return reference
    out = dict(reference)
    if isinstance(out.get("reference"), str):
        out["reference"] = reference_string(out["reference"], target)
    if target != "r4":
        out.pop("type", None)
    if target == "dstu2" and "identifier" in out:
        identifier = out.pop("identifier")
        if not out.get("display") and isinstance(identifier, dict) and identifier.get("value"):
            out["display"] = str(identifier["value"])
        if isinstance(identifier, dict) and isinstance(identifier.get("assigner"), dict):
            identifier = {
                **identifier,
                "assigner": convert_reference(identifier["assigner"], target),
            }
        out["extension"] = [*items(out.get("extension"))]
        add_xver(out, "stu3", _REFERENCE_IDENTIFIER, "valueIdentifier", identifier)
    elif target != "dstu2" and isinstance(out.get("extension"), list):
        identifier = take_xver(out, "stu3", _REFERENCE_IDENTIFIER)
        if identifier is not None:
            out["identifier"] = identifier
            if isinstance(identifier, dict) and out.get("display") == str(identifier.get("value")):
                out.pop("display")  # the stand-in the way down made (one cannot tell them apart)
    return out


# -- elements no step keeps (§2.5) -------------------------------------------------------------


def strip_fhir_comments(node: Any) -> Any:
    """Remove DSTU2's ``fhir_comments`` everywhere (in place); it is not a FHIR element."""
    if isinstance(node, dict):
        node.pop("fhir_comments", None)
        for value in node.values():
            strip_fhir_comments(value)
    elif isinstance(node, list):
        for item in node:
            strip_fhir_comments(item)
    return node


def drop_meta_for_older(resource: Resource, target: str) -> None:
    """R4 ``meta.source`` and R4 profiles mean nothing to older releases (§2.5)."""
    meta = resource.get("meta")
    if target == "r4" or not isinstance(meta, dict):
        return
    meta.pop("source", None)
    meta.pop("profile", None)
    if not meta:
        resource.pop("meta")


# -- cross-version extensions (§2.7) -----------------------------------------------------------


def xver_url(source: str, path: str) -> str:
    """HL7's URL for an element of ``source`` carried where it has no home."""
    return f"http://hl7.org/fhir/{RELEASE[source]}/StructureDefinition/extension-{path}"


def add_xver(resource: Resource, source: str, path: str, value_key: str, value: Any) -> None:
    """Carry ``value`` as a cross-version extension on ``resource``."""
    if value is None:
        return
    resource.setdefault("extension", []).append({"url": xver_url(source, path), value_key: value})


def take_xver(resource: Resource, source: str, path: str) -> Any:
    """Remove and return the value of a cross-version extension (for round trips), or None."""
    extensions = resource.get("extension")
    if not isinstance(extensions, list):  # most elements carry none: no URL to build
        return None
    url = xver_url(source, path)
    for index, extension in enumerate(extensions):
        if isinstance(extension, dict) and extension.get("url") == url:
            del extensions[index]
            if not extensions:
                resource.pop("extension")
            return next((v for k, v in extension.items() if k.startswith("value")), None)
    return None


def take_all_xver(resource: Resource, source: str, path: str) -> list[Any]:
    """Every value carried for ``path`` (removed), in order."""
    values = []
    while (value := take_xver(resource, source, path)) is not None:
        values.append(value)
    return values


def take_complex_xver(holder: Resource, source: str, path: str) -> list[Any]:
    """The sub-extension lists of every complex cross-version extension for ``path`` (a
    backbone element carried whole), removed, in order."""
    url = xver_url(source, path)
    extensions = items(holder.get("extension"))
    found = [e.get("extension") for e in extensions if e.get("url") == url]
    kept = [e for e in extensions if e.get("url") != url]
    if found:
        if kept:
            holder["extension"] = kept
        else:
            holder.pop("extension")
    return found


# -- small dict helpers ------------------------------------------------------------------------


def clone(resource: Mapping[str, Any]) -> Resource:
    """A deep copy, so converters never change their input.

    JSON's dicts, lists and scalars are copied directly (several times faster than
    ``copy.deepcopy``); anything else goes through ``copy.deepcopy``. A sub-object the input
    holds twice becomes two copies, as after a JSON round trip, so converting one in place
    never changes the other.
    """
    return {key: _copied(value) for key, value in resource.items()}


def _copied(node: Any) -> Any:
    kind = type(node)
    if kind is str or kind is int or kind is float or kind is bool or node is None:
        return node
    if kind is dict:
        return {key: _copied(value) for key, value in node.items()}
    if kind is list:
        return [_copied(item) for item in node]
    return copy.deepcopy(node)


def rename(resource: Resource, pairs: Iterable[tuple[str, str]]) -> None:
    """Rename keys in place (and their ``_key`` primitive-extension twins)."""
    for old, new in pairs:
        for prefix in ("", "_"):
            if prefix + old in resource:
                resource[prefix + new] = resource.pop(prefix + old)


def drop(resource: Resource, keys: Iterable[str]) -> None:
    """Remove keys in place (and their ``_key`` twins)."""
    for key in keys:
        resource.pop(key, None)
        resource.pop("_" + key, None)


def codeable_text(concept: Any) -> str | None:
    """The text of a CodeableConcept, or its first coding's display or code."""
    if not isinstance(concept, dict):
        return None
    if concept.get("text"):
        return str(concept["text"])
    for coding in concept.get("coding") or []:
        if isinstance(coding, dict) and (coding.get("display") or coding.get("code")):
            return str(coding.get("display") or coding.get("code"))
    return None


def first_code(concept: Any, system_suffix: str = "") -> str | None:
    """The first coding's code (optionally of a system ending with ``system_suffix``)."""
    if isinstance(concept, str):
        return concept
    if not isinstance(concept, dict):
        return None
    for coding in concept.get("coding") or []:
        if isinstance(coding, dict) and coding.get("code"):
            if system_suffix and not str(coding.get("system", "")).endswith(system_suffix):
                continue
            return str(coding["code"])
    return None


def concept(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    """A one-coding CodeableConcept."""
    coding: dict[str, Any] = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding]}


def map_code(holder: Any, key: str, table: Mapping[str, str], valid: Iterable[str]) -> None:
    """Translate the code ``holder[key]`` through ``table``; a code the target does not know
    is dropped (the callers carry it first when it must survive)."""
    if not isinstance(holder, dict) or key not in holder:
        return
    code = table.get(holder[key], holder[key])
    if code in valid:
        holder[key] = code
    else:
        holder.pop(key)
        holder.pop("_" + key, None)


# -- helpers every resource module shares -------------------------------------------------------

_REFERENCE_TYPE = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}(?:/_history/[^/]+)?$")


def items(value: Any) -> list[dict[str, Any]]:
    """The dict items of a 0..* element (or of a single dict)."""
    if isinstance(value, dict):
        return [value]
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def prune_empty_twins(node: Any) -> Any:
    """Remove primitive-extension twins (``_x``) left empty, e.g. once DSTU2's fhir_comments
    are stripped: ``{}`` is not a valid element in any release (in place; returns it)."""
    if isinstance(node, list):
        for item in node:
            prune_empty_twins(item)
    elif isinstance(node, dict):
        for key in list(node):
            value = prune_empty_twins(node[key])
            if not key.startswith("_"):
                continue
            if isinstance(value, list):
                value = [None if item == {} else item for item in value]
                node[key] = value
            if value == {} or (isinstance(value, list) and all(item is None for item in value)):
                del node[key]
    return node


def reference_type(reference: Any) -> str | None:
    """The resource type a literal reference points at, when its string shows it."""
    if isinstance(reference, dict) and isinstance(reference.get("reference"), str):
        match = _REFERENCE_TYPE.search(reference["reference"])
        return match.group(1) if match else None
    return None


def narrow_reference(reference: Any, allowed: Iterable[str], source: str) -> None:
    """A reference to a type the older release does not allow keeps only ``display``; the
    reference string rides in the cross-version extension (§2.3, proxy decision)."""
    kind = reference_type(reference)
    if kind is not None and kind not in allowed:
        value = reference.pop("reference")
        reference.pop("_reference", None)
        add_xver(reference, source, "Reference.reference", "valueString", value)


def restore_reference(reference: Any, newer: str) -> None:
    """Undo ``narrow_reference`` on the way back up to ``newer``."""
    if isinstance(reference, dict):
        restored = take_xver(reference, newer, "Reference.reference")
        if restored is not None:
            reference["reference"] = restored


def adapt_reference(
    reference: Any, source: str, target: str, allowed: frozenset[str] | None
) -> Any:
    """convert_reference, then restore a reference string ``target`` carried, then narrow."""
    out = convert_reference(reference, target)
    restore_reference(out, target)
    if allowed is not None:
        narrow_reference(out, allowed, source)
    return out


def adapt_references(
    holder: Any, table: Mapping[str, frozenset[str] | None], source: str, target: str
) -> None:
    """``adapt_reference`` on each listed element of ``holder`` (single or list)."""
    if not isinstance(holder, dict):
        return
    for key, allowed in table.items():
        value = holder.get(key)
        if isinstance(value, list):
            holder[key] = [adapt_reference(item, source, target, allowed) for item in value]
        elif value is not None:
            holder[key] = adapt_reference(value, source, target, allowed)


def convert_references(holder: Any, keys: Iterable[str], target: str) -> None:
    """``convert_reference`` on each named Reference (or list of them) of ``holder``."""
    if not isinstance(holder, dict):
        return
    for key in keys:
        value = holder.get(key)
        if isinstance(value, list):
            holder[key] = [convert_reference(item, target) for item in value]
        elif value is not None:
            holder[key] = convert_reference(value, target)


def note_references(holder: Any, key: str, target: str) -> None:
    """``convert_reference`` on the authors of an Annotation list (or single Annotation)."""
    for note in items(holder.get(key) if isinstance(holder, dict) else None):
        convert_references(note, ("authorReference",), target)


def notes_to_text(holder: Resource, text_key: str, source: str, path: str, target: str) -> None:
    """Annotation ``note[]`` → one string (texts joined by a blank line) where the older release
    has a single text; the notes ride along unless they were one plain text."""
    notes = items(holder.pop("note", None))
    texts = [str(note["text"]) for note in notes if note.get("text")]
    if texts:
        holder[text_key] = "\n\n".join(texts)
    if notes and notes != [{"text": texts[0] if texts else None}]:
        for note in notes:
            if "authorReference" in note:
                note["authorReference"] = convert_reference(note["authorReference"], target)
            add_xver(holder, source, path, "valueAnnotation", note)


def notes_from_text(holder: Resource, text_key: str, source: str, path: str) -> None:
    """Undo ``notes_to_text``: carried notes win over the joined text."""
    notes = take_all_xver(holder, source, path)
    text = holder.pop(text_key, None)
    holder.pop("_" + text_key, None)
    if notes:
        holder["note"] = notes
    elif text:
        holder["note"] = [{"text": text}]


# -- values carried in extensions, in each version's shapes (§2.7) ------------------------------

# Extension value types a release lacks, and the type of the older release that holds them.
# R4 → STU3: canonical, url and uuid are uris there. STU3 → DSTU2: Age, Count, Distance,
# Duration and Money are profiles of Quantity in DSTU2 (datatypes.html), written valueQuantity.
_VALUE_TYPES_DOWN = {
    ("r4", "stu3"): {"valueCanonical": "valueUri", "valueUrl": "valueUri", "valueUuid": "valueUri"},
    ("stu3", "dstu2"): {
        "valueAge": "valueQuantity",
        "valueCount": "valueQuantity",
        "valueDistance": "valueQuantity",
        "valueDuration": "valueQuantity",
        "valueMoney": "valueQuantity",
    },
}
# R4 extension value types with no STU3 (and so no DSTU2) type at all: such an extension is
# dropped on the way down (docs/conversion/README.md, "Carried values").
_R4_ONLY_VALUES = frozenset(
    {
        "valueContactDetail",
        "valueContributor",
        "valueDataRequirement",
        "valueExpression",
        "valueParameterDefinition",
        "valueRelatedArtifact",
        "valueTriggerDefinition",
        "valueUsageContext",
        "valueDosage",
    }
)
_ISO_4217 = "urn:iso:std:iso:4217"


def fit_extension_values(node: Any, source: str, target: str) -> None:
    """Every extension value in ``node`` (in place) in the shapes of ``target``, one step from
    ``source``: a carried value keeps no shape its host release cannot read (§2.7)."""
    if isinstance(node, list):
        for item in node:
            fit_extension_values(item, source, target)
        return
    if not isinstance(node, dict):
        return
    for key in ("extension", "modifierExtension"):
        extensions = node.get(key)
        if isinstance(extensions, list):
            kept = [e for e in extensions if _fit_extension(e, source, target)]
            if len(kept) != len(extensions):
                if kept:
                    node[key] = kept
                else:
                    del node[key]
    for value in node.values():
        if isinstance(value, dict | list):
            fit_extension_values(value, source, target)


def _fit_extension(extension: Any, source: str, target: str) -> bool:
    """Fit one extension's value (in place); False when ``target`` has no type for it."""
    if not isinstance(extension, dict):
        return True
    value_key = next((k for k in extension if k.startswith("value")), None)
    if value_key is None:
        return True
    if target != "r4" and value_key in _R4_ONLY_VALUES:
        return False
    renamed = _VALUE_TYPES_DOWN.get((source, target), {}).get(value_key)
    if renamed is None and source in ("dstu2", "stu3"):  # the way up: a type marked on the way down
        renamed = _marked_type(extension, value_key, target)
    elif renamed is not None:
        _mark_type(extension, value_key, source)
    value = extension[value_key]
    if value_key == "valueMoney" or renamed == "valueMoney":
        value = _money(value, target)
    if renamed:
        extension.pop(value_key)
        if "_" + value_key in extension:
            extension["_" + renamed] = extension.pop("_" + value_key)
        value_key = renamed
    extension[value_key] = value
    if value_key == "valueReference":
        extension[value_key] = convert_reference(value, target)
    elif value_key == "valueHumanName":
        extension[value_key] = _carried_name(value, target)
    elif value_key == "valueTiming" and isinstance(value, dict):
        from shared.fhir.convert.datatypes import convert_timing  # it builds on this module

        convert_timing(value, source, target)
    return True


def _carried_name(name: Any, target: str) -> Any:
    """A carried HumanName in ``target``'s shape: family a list in DSTU2, joined again on the way
    up (only a name in DSTU2's shape changes). Unlike a HumanName element (datatypes.py), its
    familyRepeat extensions are not folded back into the DSTU2 list."""
    from shared.fhir.convert import datatypes  # it builds on this module

    if target == "dstu2":
        return datatypes.family_as_list(name)
    if isinstance(name, dict) and isinstance(name.get("family"), list):
        return datatypes.name_for_stu3(name)
    return name


_TYPE_MARK = "Extension.value"  # the type a carried value had, where its host renamed it


def _mark_type(extension: dict[str, Any], value_key: str, source: str) -> None:
    """Record a complex value's type inside it, for the way back. A primitive (canonical, url,
    uuid read as uri) is not marked: parsers refuse ``_valueUri`` on an Extension."""
    value = extension[value_key]
    if isinstance(value, dict):
        mark = {"url": xver_url(source, _TYPE_MARK), "valueCode": value_key[5:]}
        value["extension"] = [*items(value.get("extension")), mark]


def _marked_type(extension: dict[str, Any], value_key: str, target: str) -> str | None:
    """The value key ``_mark_type`` recorded for ``target``'s release (mark removed), or None."""
    value = extension.get(value_key)
    code = take_xver(value, target, _TYPE_MARK) if isinstance(value, dict) else None
    return f"value{code}" if isinstance(code, str) and code.isalpha() else None


def _money(value: Any, target: str) -> Any:
    """Money in ``target``'s shape: R4 has value + currency; STU3 and DSTU2 write a Quantity
    with the currency as a code of ISO 4217 (HL7's R4→R3 Money map)."""
    if not isinstance(value, dict):
        return value
    out = dict(value)
    if target == "r4" and out.get("system") == _ISO_4217 and "code" in out:
        out.pop("system")
        out["currency"] = out.pop("code")
    elif target != "r4" and "currency" in out:
        out["system"] = _ISO_4217
        out["code"] = out.pop("currency")
    return out
