"""Synthea R4 transaction bundles as sandbox resources: kept types only, references as Type/id.

Synthea writes one transaction Bundle per patient whose entries refer to each other by their
``urn:uuid:`` fullUrls; newer versions put shared Practitioners, Organizations and Locations in
separate ``practitionerInformation`` / ``hospitalInformation`` bundles and point at them with
conditional references (``Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|9999``).
The sandbox keeps resources with their ids and only "Type/id" references, so each reference is:

- kept as "<Type>/<id>" when it names a resource kept from the same bundle set: an entry's
  fullUrl (``urn:uuid:``), a conditional ``<Type>?identifier=[system|]value`` matching exactly
  one resource of that type, or a relative "<Type>/<id>";
- kept as is when it points into the resource's own ``contained`` ("#id");
- otherwise (no such resource, more than one match, or a type the sandbox does not keep) no
  longer a link: the Reference keeps its ``display`` (and ``identifier``) without
  ``reference``, and is removed when it has neither. A removed Reference takes with it the
  backbone element or extension it was the point of; a resource that loses a required
  reference (Condition.subject, MedicationRequest.subject, AllergyIntolerance.patient,
  Coverage.beneficiary or Coverage.payor) is left out and counted as skipped (in one pass:
  references to a resource left out are not revisited; only broken bundles have such).

A MedicationRequest's ``medicationReference`` to a Medication entry (not a kept type) becomes
``medicationCodeableConcept`` with that Medication's code, so the app still shows the drug.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl

from shared.sandbox.errors import SandboxError
from shared.sandbox.store import SUPPORTED_TYPES, LoadReport

if TYPE_CHECKING:
    from shared.sandbox.store import SandboxStore

Resource = dict[str, Any]

# Required references of the kept types: losing one at the top level leaves the resource out;
# losing one inside a backbone element (two names) drops that element.
REQUIRED_REFERENCES: Final[Mapping[str, frozenset[tuple[str, ...]]]] = {
    "Condition": frozenset({("subject",)}),
    "AllergyIntolerance": frozenset({("patient",)}),
    "MedicationRequest": frozenset({("subject",)}),
    "Coverage": frozenset({("beneficiary",), ("payor",)}),
    "Encounter": frozenset({("location", "location"), ("diagnosis", "condition")}),
    "Patient": frozenset({("link", "other")}),
}

_KEPT: Final = frozenset(SUPPORTED_TYPES)
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_RELATIVE = re.compile(r"([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})")
_DROP: Final = object()  # what rewriting returns for an element that goes


class InvalidBundle(SandboxError):
    """A file or object that is not a readable FHIR Bundle."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


def synthea_resources(
    bundle: Mapping[str, Any], *, others: Iterable[Mapping[str, Any]] = ()
) -> list[Resource]:
    """The resources of ``bundle`` the sandbox keeps, references rewritten (see module doc).

    ``others`` are more bundles of the same set (Synthea's practitioner and hospital bundles)
    that conditional references may point into; their own resources are not returned.
    """
    bundle = _checked(bundle, "bundle")
    index = BundleSetIndex()
    index.add(bundle)
    for other in others:
        index.add(_checked(other, "bundle"))
    return _convert(bundle, index).resources


def load_synthea(store: SandboxStore, paths: Iterable[Path]) -> LoadReport:
    """Load Synthea bundle files (or folders of ``*.json``) into ``store``, validated.

    Every file is read and checked before anything is written (InvalidBundle otherwise), then
    each is converted against the whole set and loaded in one idempotent ``store.load``.
    ``skipped`` counts the types the sandbox does not keep and resources left out.
    """
    began = time.perf_counter()
    files = list(_files(paths))
    index = BundleSetIndex()
    for path in files:  # one pass to learn the set, so files may come in any order
        index.add(_read(path))
    skipped: Counter[str] = Counter()

    def resources() -> Iterator[Resource]:
        for path in files:
            converted = _convert(_read(path), index)
            skipped.update(converted.skipped)
            yield from converted.resources

    report = store.load(resources(), validate=True)
    skipped.update(report.skipped)
    return LoadReport(
        stored=dict(report.stored), skipped=dict(skipped), seconds=time.perf_counter() - began
    )


@dataclass
class BundleSetIndex:
    """The kept resources of a set of bundles, by type and id and by identifier."""

    ids: set[tuple[str, str]] = field(default_factory=set)
    # (type, system, value) -> id; system "" matches a token given without one. None: ambiguous.
    identifiers: dict[tuple[str, str, str], str | None] = field(default_factory=dict)

    def add(self, bundle: Mapping[str, Any]) -> None:
        """Learn the kept resources of one bundle."""
        for entry in _entries(bundle):
            resource = entry["resource"]
            resource_type = resource["resourceType"]
            if resource_type not in _KEPT:
                continue
            resource_id = _resource_id(entry)
            self.ids.add((resource_type, resource_id))
            for identifier in resource.get("identifier") or ():
                if not isinstance(identifier, Mapping) or not identifier.get("value"):
                    continue
                value, system = str(identifier["value"]), str(identifier.get("system") or "")
                for key in {(resource_type, system, value), (resource_type, "", value)}:
                    if self.identifiers.get(key, resource_id) != resource_id:
                        self.identifiers[key] = None
                    else:
                        self.identifiers[key] = resource_id

    def conditional(self, reference: str) -> str | None:
        """ "Type/id" of the one kept resource ``Type?identifier=[system|]value`` names."""
        resource_type, _, query = reference.partition("?")
        params = parse_qsl(query, keep_blank_values=True)
        if resource_type not in _KEPT or len(params) != 1 or params[0][0] != "identifier":
            return None
        token = params[0][1]
        system, value = token.split("|", 1) if "|" in token else ("", token)
        found = self.identifiers.get((resource_type, system, value))
        return f"{resource_type}/{found}" if found else None


@dataclass
class _Converted:
    resources: list[Resource]
    skipped: Counter[str]


def _convert(bundle: Mapping[str, Any], index: BundleSetIndex) -> _Converted:
    entries = list(_entries(bundle))
    by_url: dict[str, tuple[str, str]] = {}
    medications: dict[str, Mapping[str, Any]] = {}
    for entry in entries:
        resource = entry["resource"]
        target = (resource["resourceType"], _resource_id(entry))
        names = [f"{target[0]}/{target[1]}"]
        if isinstance(entry.get("fullUrl"), str):
            names.append(entry["fullUrl"])
        for name in names:
            by_url[name] = target
            if target[0] == "Medication":
                medications[name] = resource

    def resolve(reference: str) -> str | None:
        if reference.startswith("#"):
            return reference
        if reference in by_url:
            target = by_url[reference]
            return f"{target[0]}/{target[1]}" if target in index.ids else None
        if "?" in reference:
            return index.conditional(reference)
        relative = _RELATIVE.fullmatch(reference)
        if relative is not None and (relative[1], relative[2]) in index.ids:
            return reference
        return None

    kept: list[Resource] = []
    skipped: Counter[str] = Counter()
    for entry in entries:
        resource_type = entry["resource"]["resourceType"]
        converted = None
        if resource_type in _KEPT:
            resource = {**entry["resource"], "id": _resource_id(entry)}
            if resource_type == "MedicationRequest":
                resource = _inline_medication(resource, medications)
            converted = _rewrite(resource, resolve) if resource is not None else None
        if converted is None:
            skipped[resource_type] += 1
        else:
            kept.append(converted)
    return _Converted(kept, skipped)


def _inline_medication(
    request: Resource, medications: Mapping[str, Mapping[str, Any]]
) -> Resource | None:
    """``request`` with a Medication entry it references inlined as a CodeableConcept."""
    reference = request.get("medicationReference")
    if not isinstance(reference, Mapping) or str(reference.get("reference", "")).startswith("#"):
        return request
    medication = medications.get(str(reference.get("reference")))
    code = medication.get("code") if medication is not None else None
    if isinstance(code, Mapping) and code:
        concept = dict(code)
        codings = [c for c in concept.get("coding") or () if isinstance(c, Mapping)]
        if "text" not in concept and codings and codings[0].get("display"):
            concept["text"] = codings[0]["display"]
    elif reference.get("display"):
        concept = {"text": reference["display"]}
    else:
        return None
    rest = {k: v for k, v in request.items() if k != "medicationReference"}
    return {**rest, "medicationCodeableConcept": concept}


def _rewrite(resource: Resource, resolve: Callable[[str], str | None]) -> Resource | None:
    """A copy of ``resource`` with references rewritten; None if a required one is lost."""
    required = REQUIRED_REFERENCES.get(resource["resourceType"], frozenset())
    result: Resource = {}
    for key, value in resource.items():
        new = _walk(value, resolve, (key,), required)
        if new is _DROP:
            if (key,) in required:
                return None
            continue
        result[key] = new
    return result


def _walk(
    value: Any,
    resolve: Callable[[str], str | None],
    path: tuple[str, ...],
    required: frozenset[tuple[str, ...]],
) -> Any:
    if isinstance(value, list):
        items = [_walk(item, resolve, path, required) for item in value]
        kept = [item for item in items if item is not _DROP]
        return kept if kept or not value else _DROP
    if not isinstance(value, Mapping):
        return value
    if isinstance(value.get("reference"), str):
        return _reference(value, resolve)
    result: dict[str, Any] = {}
    for key, item in value.items():
        new = _walk(item, resolve, (*path, key), required)
        if new is _DROP:
            # The backbone element or extension existed for this reference: it goes too.
            if (*path, key) in required or ("url" in value and key.startswith("value")):
                return _DROP
            continue
        result[key] = new
    return result if result or not value else _DROP


def _reference(reference: Mapping[str, Any], resolve: Callable[[str], str | None]) -> Any:
    target = resolve(reference["reference"])
    if target is not None:
        return {**reference, "reference": target}
    rest = {k: v for k, v in reference.items() if k in ("display", "identifier")}
    return rest if rest else _DROP


# -- reading bundles -----------------------------------------------------------------------------


def _files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(path.glob("*.json"))
        else:
            yield path


def _read(path: Path) -> Mapping[str, Any]:
    try:
        data = json.loads(path.read_bytes())
    except OSError as error:
        raise InvalidBundle(
            path.name, f"cannot be read ({error.strerror or 'I/O error'})"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        where = f"line {error.lineno}" if isinstance(error, json.JSONDecodeError) else "encoding"
        raise InvalidBundle(path.name, f"is not JSON ({where})") from None
    return _checked(data, path.name)


def _checked(data: object, source: str) -> Mapping[str, Any]:
    """``data`` if it is a Bundle whose entries are objects with resources; else InvalidBundle."""
    if not isinstance(data, Mapping) or data.get("resourceType") != "Bundle":
        raise InvalidBundle(source, "is not a FHIR Bundle")
    entries = data.get("entry", [])
    if not isinstance(entries, list):
        raise InvalidBundle(source, "Bundle.entry must be a list")
    for number, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, Mapping) else None
        if resource is None and isinstance(entry, Mapping):
            continue  # e.g. a DELETE request: nothing to keep
        if not isinstance(resource, Mapping) or not isinstance(resource.get("resourceType"), str):
            raise InvalidBundle(source, f"Bundle.entry[{number}] has no resource with a type")
    return data


def _entries(bundle: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for entry in bundle.get("entry", []):
        if isinstance(entry.get("resource"), Mapping):
            yield entry


def _resource_id(entry: Mapping[str, Any]) -> str:
    """The entry's resource id, else the uuid of its fullUrl, else one derived from both."""
    resource_id = entry["resource"].get("id")
    if isinstance(resource_id, str) and _ID.fullmatch(resource_id):
        return resource_id
    full_url = entry.get("fullUrl")
    if isinstance(full_url, str) and full_url.startswith("urn:uuid:"):
        candidate = full_url.removeprefix("urn:uuid:")
        if _ID.fullmatch(candidate):
            return candidate
    # Stable across loads, so loading the same file twice stays idempotent.
    seed = full_url if isinstance(full_url, str) else json.dumps(entry["resource"], sort_keys=True)
    return str(uuid.uuid5(uuid.NAMESPACE_URL, seed))
