"""Fill in what the Patients app shows and R4 servers often omit (§1, §2.8 step 2).

The app prints ``display`` of a few references (the patient's practitioner, the encounter's
location, the prescriber, the medication) and ``Bundle.total`` of a Patient search. Servers
often leave them out. Everything here is pure except ``Enricher``, which takes the I/O as a
``fetch`` callable: given relative references (``Practitioner/1``), it returns the resources
it could read, keyed by reference. The proxy implements it with ONE provider batch Bundle of
reads (``read_batch`` / ``read_batch_results``), or parallel reads when batch is refused.

Works on any version's element names (careProvider / generalPractitioner, prescriber /
requester / requester.agent), so it can run on the provider's document before conversion.
Section numbers (§) refer to docs/conversion/mapping.md.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

log = logging.getLogger(__name__)

MAX_REFERENCES = 50
"""Most references resolved for one response (one batch of reads)."""

Fetch = Callable[[list[str]], Mapping[str, Mapping[str, Any]]]

# Where each resource type keeps the references the app prints, in every version's names:
# a path of keys; a list on the way is walked item by item.
_REFERENCE_PATHS: Mapping[str, tuple[tuple[str, ...], ...]] = {
    "Patient": (("generalPractitioner",), ("careProvider",)),
    "Encounter": (("location", "location"),),
    "MedicationRequest": (("requester",), ("requester", "agent"), ("medicationReference",)),
    "MedicationOrder": (("prescriber",), ("medicationReference",)),
}
# Types whose display we know how to compute, hence worth a read.
RESOLVABLE_TYPES = frozenset(
    {
        "Practitioner",
        "PractitionerRole",
        "Patient",
        "RelatedPerson",
        "Organization",
        "Location",
        "Medication",
    }
)
# A relative reference safe to turn into a read URL (the proxy's own id grammar).
_RELATIVE = re.compile(r"(?P<type>[A-Z][A-Za-z]{1,63})/(?P<id>[A-Za-z0-9\-.]{1,64})\Z")
_PREFERRED_NAME_USES = ("official", "usual", None)


# -- what is missing ---------------------------------------------------------------------------


def _resources(document: Any) -> Iterator[dict[str, Any]]:
    """The resource itself, or every resource of a Bundle and of the Bundles nested in it."""
    if not isinstance(document, dict):
        return
    if document.get("resourceType") != "Bundle":
        yield document
        return
    for entry in document.get("entry") or ():
        if isinstance(entry, dict):
            yield from _resources(entry.get("resource"))


def _walk(node: Any, path: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    if isinstance(node, list):
        for item in node:
            yield from _walk(item, path)
        return
    if not isinstance(node, dict):
        return
    if not path:
        yield node
        return
    yield from _walk(node.get(path[0]), path[1:])


def references_in(resource: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The Reference dicts of ``resource`` that the app prints."""
    for path in _REFERENCE_PATHS.get(str(resource.get("resourceType")), ()):
        for reference in _walk(resource, path):
            if isinstance(reference.get("reference"), str):
                yield reference


def _lacking(document: Any) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(resource, reference) for every printed reference without a display."""
    for resource in _resources(document):
        for reference in references_in(resource):
            if not reference.get("display"):
                yield resource, reference


def missing_displays(document: Any, limit: int = MAX_REFERENCES) -> list[str]:
    """Relative references the app prints that lack ``display``: deduplicated, in order, bounded.

    Contained (``#id``) and absolute references are left out: the first resolve locally
    (``fill_local``), the second may name another server.
    """
    found: dict[str, None] = {}
    for _, reference in _lacking(document):
        target = reference["reference"]
        match = _RELATIVE.match(target)
        if match and match["type"] in RESOLVABLE_TYPES:
            found.setdefault(target)
            if len(found) >= limit:
                break
    return list(found)


# -- what a display is -------------------------------------------------------------------------


def display_of(resource: Mapping[str, Any]) -> str | None:
    """What the app shows for a referenced resource: a person's name, a place's or an
    organization's name, a medication's code text."""
    kind = resource.get("resourceType")
    if kind in ("Practitioner", "Patient", "RelatedPerson"):
        return _person_name(resource.get("name"))
    if kind in ("Organization", "Location"):
        name = resource.get("name")
        return name.strip() or None if isinstance(name, str) else None
    if kind == "Medication":
        return _concept_text(resource.get("code"))
    if kind == "PractitionerRole":
        practitioner = resource.get("practitioner")
        if isinstance(practitioner, dict) and practitioner.get("display"):
            return str(practitioner["display"])
    return None


def _person_name(names: Any) -> str | None:
    if isinstance(names, dict):  # DSTU2 Practitioner.name is a single HumanName
        names = [names]
    if not isinstance(names, list):
        return None
    candidates = [n for n in names if isinstance(n, dict)]
    for use in _PREFERRED_NAME_USES:
        for name in candidates:
            if use is None or name.get("use") == use:
                text = _format_name(name)
                if text:
                    return text
    return None


def _format_name(name: Mapping[str, Any]) -> str | None:
    """The name as "Prefix Given Family" (DSTU2's family list joined), else its text."""
    parts: list[str] = []
    for key in ("prefix", "given", "family"):
        value = name.get(key)
        values = value if isinstance(value, list) else [value]
        parts += [v.strip() for v in values if isinstance(v, str) and v.strip()]
    if parts:
        return " ".join(parts)
    text = name.get("text")
    return text.strip() or None if isinstance(text, str) else None


def _concept_text(concept: Any) -> str | None:
    if not isinstance(concept, dict):
        return None
    if isinstance(concept.get("text"), str) and concept["text"].strip():
        return str(concept["text"]).strip()
    for coding in concept.get("coding") or ():
        if isinstance(coding, dict):
            for key in ("display", "code"):
                if isinstance(coding.get(key), str) and coding[key].strip():
                    return str(coding[key]).strip()
    return None


# -- filling -----------------------------------------------------------------------------------


def fill_displays(document: Any, resolved: Mapping[str, str]) -> int:
    """Set ``display`` (in place) on every printed reference lacking one that ``resolved``
    names; returns how many were set."""
    filled = 0
    for _, reference in list(_lacking(document)):
        display = resolved.get(reference["reference"])
        if display:
            reference["display"] = display
            filled += 1
    return filled


def fill_local(document: Any) -> int:
    """Fill displays from what the document itself holds: contained resources (``#id``) and
    the Bundle's own entries (e.g. ``_include``d Practitioners). Returns how many were set."""
    local: dict[str, str] = {}
    for resource in _resources(document):
        kind, rid = resource.get("resourceType"), resource.get("id")
        display = display_of(resource)
        if display and isinstance(kind, str) and isinstance(rid, str):
            local.setdefault(f"{kind}/{rid}", display)
    filled = 0
    for resource, reference in list(_lacking(document)):
        target = reference["reference"]
        display = _contained_display(resource, target) if target.startswith("#") else None
        display = display or local.get(target)
        if display:
            reference["display"] = display
            filled += 1
    return filled


def _contained_display(resource: Mapping[str, Any], target: str) -> str | None:
    for contained in resource.get("contained") or ():
        if isinstance(contained, dict) and contained.get("id") == target[1:]:
            return display_of(contained)
    return None


# -- Bundle.total ------------------------------------------------------------------------------


def needs_total(document: Any) -> bool:
    """True for a searchset Bundle without an integer ``total`` (the app shows it, §1)."""
    return (
        isinstance(document, dict)
        and document.get("resourceType") == "Bundle"
        and document.get("type") == "searchset"
        and not isinstance(document.get("total"), int)
    )


def complete_total(document: Mapping[str, Any]) -> int | None:
    """The number of matches when the searchset is complete in this page (no ``next`` link)."""
    links = document.get("link") or ()
    if any(isinstance(link, dict) and link.get("relation") == "next" for link in links):
        return None
    return sum(
        1
        for entry in document.get("entry") or ()
        if isinstance(entry, dict)
        and ((entry.get("search") or {}).get("mode") or "match") == "match"
    )


def fill_total(document: Any) -> bool:
    """Set ``total`` (in place) when it is missing and countable; True when the Bundle has one
    afterwards (or needed none)."""
    if not needs_total(document):
        return True
    total = complete_total(document)
    if total is None:
        return False
    document["total"] = total
    return True


def with_total_accurate(raw_query: str) -> str:
    """``raw_query`` plus ``_total=accurate`` (R4 only) unless it already names ``_total``."""
    pieces = [p for p in raw_query.split("&") if p]
    if any(p.partition("=")[0] == "_total" for p in pieces):
        return raw_query
    return "&".join([*pieces, "_total=accurate"])


# -- the provider's batch of reads -------------------------------------------------------------


def read_batch(references: list[str]) -> dict[str, Any]:
    """A batch Bundle of GET reads, one per reference (the same shape in every version)."""
    return {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": ref}} for ref in references],
    }


def read_batch_results(references: list[str], answer: Any) -> dict[str, dict[str, Any]]:
    """The resources a batch-response answered for ``read_batch(references)``, by reference.

    Entries answer in request order; an entry that is not a 2xx read of the asked type and id
    is left out.
    """
    if not isinstance(answer, dict) or answer.get("resourceType") != "Bundle":
        return {}
    found: dict[str, dict[str, Any]] = {}
    for reference, entry in zip(references, answer.get("entry") or (), strict=False):
        if not isinstance(entry, dict):
            continue
        status = str((entry.get("response") or {}).get("status", "200"))
        resource = entry.get("resource")
        if not status.startswith("2") or not isinstance(resource, dict):
            continue
        if f"{resource.get('resourceType')}/{resource.get('id')}" == reference:
            found[reference] = resource
    return found


# -- the orchestrator --------------------------------------------------------------------------


class Enricher:
    """Fills displays and totals in one response's documents, fetching through ``fetch``.

    One per proxied request: it caches what it resolved (and what it could not) so a batch's
    entries share one read per reference. Thread-safe: batch entries may run in parallel.
    ``total_required``: warn when a searchset's total can be neither found nor counted (set it
    for Patient searches, whose total the app shows).
    """

    def __init__(
        self, fetch: Fetch, *, limit: int = MAX_REFERENCES, total_required: bool = False
    ) -> None:
        self._fetch = fetch
        self._limit = limit
        self._total_required = total_required
        self._lock = threading.Lock()
        self._cache: dict[str, str | None] = {}
        self.warnings: list[str] = []

    def __call__(self, document: dict[str, Any]) -> None:
        """Enrich ``document`` in place (the ``enrich`` hook of the version converter)."""
        warning = self.enrich(document)
        if warning:
            self.warnings.append(warning)

    def enrich(self, document: dict[str, Any]) -> str | None:
        """Fill displays and a countable total; return a warning text when some stay missing.

        The warning is also added to each searchset it concerns as an OperationOutcome entry
        (``search.mode = outcome``), which every version allows.
        """
        fill_local(document)
        wanted = missing_displays(document, self._limit + 1)
        truncated = len(wanted) > self._limit
        wanted = wanted[: self._limit]
        resolved = self._resolve(wanted)
        fill_displays(document, {k: v for k, v in resolved.items() if v})
        # Countable totals are always filled; a missing one is worth a warning only where the
        # app shows it (Patient searches: the caller says so).
        totals_ok = all([fill_total(bundle) for bundle in _searchsets(document)])
        totals_ok = totals_ok or not self._total_required
        missing = len([r for r in wanted if not resolved.get(r)])
        if not missing and not truncated and totals_ok:
            return None
        problems = []
        if missing or truncated:
            problems.append("the names of some referenced practitioners, locations or medications")
        if not totals_ok:
            problems.append("the total number of matches")
        text = f"EHR Bridge could not obtain {' and '.join(problems)} from the provider"
        for bundle in _searchsets(document):
            if missing_displays(bundle, 1) or (self._total_required and needs_total(bundle)):
                add_warning(bundle, text)
        return text

    def _resolve(self, references: list[str]) -> dict[str, str | None]:
        with self._lock:
            todo = [r for r in references if r not in self._cache]
        fetched: Mapping[str, Mapping[str, Any]] = {}
        if todo:
            try:
                fetched = self._fetch(todo)
            except Exception:  # an enrichment failure never fails the clinician's request
                log.warning("reading referenced resources for display failed", exc_info=True)
        with self._lock:
            for reference in todo:
                resource = fetched.get(reference)
                self._cache[reference] = display_of(resource) if resource else None
            return {r: self._cache.get(r) for r in references}


def _searchsets(document: Any) -> Iterator[dict[str, Any]]:
    if not isinstance(document, dict) or document.get("resourceType") != "Bundle":
        return
    if document.get("type") == "searchset":
        yield document
    for entry in document.get("entry") or ():
        if isinstance(entry, dict):
            yield from _searchsets(entry.get("resource"))


def add_warning(bundle: dict[str, Any], text: str) -> None:
    """Append a warning OperationOutcome entry (``search.mode = outcome``) to a searchset.

    The OperationOutcome has the same shape in DSTU2, STU3 and R4 (code ``incomplete``).
    """
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "warning", "code": "incomplete", "diagnostics": text}],
    }
    bundle.setdefault("entry", []).append({"resource": outcome, "search": {"mode": "outcome"}})
