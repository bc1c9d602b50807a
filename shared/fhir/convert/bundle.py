"""Bundle between R4, STU3 and DSTU2 (§11): every entry's resource converts through
``shared.fhir.convert.convert``, nested Bundles included, once over the whole chain (R4 → STU3 →
DSTU2 per entry, not one Bundle step at a time: ``convert_through``). An entry that cannot be
converted becomes an OperationOutcome entry instead of failing the whole Bundle.
Decisions: docs/conversion/bundle.md. Section numbers (§) refer to docs/conversion/mapping.md.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from shared.fhir.convert.common import (
    ConversionError,
    InvalidResource,
    Resource,
    UnsupportedResource,
    drop,
    drop_meta_for_older,
    prune_empty_twins,
    reference_string,
    rewrite_systems,
)
from shared.fhir.outcome import operation_outcome

# Bundle is a Resource, not a DomainResource: no extension can carry what a target lacks.
# signature is dropped everywhere: a converted Bundle no longer matches what was signed.
_DROPPED = {
    ("r4", "stu3"): ("timestamp", "signature"),
    ("stu3", "r4"): ("signature",),
    ("stu3", "dstu2"): ("identifier", "signature"),
    ("dstu2", "stu3"): ("signature",),
}
_RESPONSES = frozenset({"batch-response", "transaction-response"})
# HTTP verbs R4 added (§11): HEAD reads like GET without a body; PATCH has no counterpart.
_R4_METHODS = {"HEAD": "GET"}
Steps = Sequence[tuple[str, str]]  # (source, target) per step, e.g. r4→stu3, stu3→dstu2
_TYPE_NAME = re.compile(r"[A-Z][A-Za-z]{0,63}\Z")
# What a searchset entry that counts in total looks like (search.mode absent means match, as
# shared/proxy/enrich.py counts it).
_MATCH = ("match", None)


class BundleNotConvertible(ConversionError):
    """The Bundle itself, not one entry, cannot be expressed (a PATCH request, §11)."""


def _rename(holder: Any, key: str, target: str) -> None:
    if isinstance(holder, dict) and isinstance(holder.get(key), str):
        holder[key] = reference_string(holder[key], target)


def _request(request: Any, source: str, target: str) -> None:
    if not isinstance(request, dict):
        return
    _rename(request, "url", target)
    method = request.get("method")
    if source == "r4" and method in _R4_METHODS:
        request["method"] = _R4_METHODS[method]
    elif source == "r4" and method == "PATCH":
        # Replacing a write would change what the Bundle asks for: refuse the whole Bundle.
        raise BundleNotConvertible(f"PATCH has no counterpart in {target.upper()}")


def _why(error: Exception) -> str:
    if isinstance(error, UnsupportedResource):
        # The type name comes from upstream data: echo it only when it looks like one.
        what = error.resource_type if _TYPE_NAME.match(error.resource_type) else "Such"
        return f"{what} resources are not available in this FHIR version; the entry was left out."
    if isinstance(error, ConversionError) and not isinstance(error, InvalidResource):
        return f"This entry cannot be expressed in this FHIR version and was left out: {error}"
    # Any other failure is input no release accepts (a code holding an object, a list where one
    # value belongs...): its text may quote upstream data, so it is not echoed.
    return "This entry is not valid FHIR and could not be converted; it was left out."


def _left_out(entry: dict[str, Any], kind: Any, error: Exception, target: str) -> Resource:
    """The OperationOutcome entry that stands in for an entry that cannot be converted."""
    if kind in _RESPONSES:
        outcome = operation_outcome("error", "not-supported", _why(error), target)
        response: dict[str, Any] = {"status": "501 Not Implemented"}
        if target == "dstu2":
            return {"resource": outcome, "response": response}
        return {"response": {**response, "outcome": outcome}}
    out: Resource = {"resource": operation_outcome("warning", "not-supported", _why(error), target)}
    if isinstance(entry.get("request"), dict):  # batch, transaction, history entries need one
        out["request"] = entry["request"]
    if kind == "searchset":
        out["search"] = {"mode": "outcome"}
    return out


def _resources(entry: dict[str, Any], source: str, target: str) -> None:
    from shared.fhir.convert import convert  # the package imports this module lazily

    # The Bundle is a private copy (convert() made it, or a step owns its input): in place.
    if isinstance(entry.get("resource"), dict):
        entry["resource"] = convert(entry["resource"], source, target, copy=False)
    response = entry.get("response")
    if isinstance(response, dict) and isinstance(response.get("outcome"), dict):
        response["outcome"] = convert(response["outcome"], source, target, copy=False)


def _outcome_place(entry: dict[str, Any], kind: Any, source: str, target: str) -> None:
    response = entry.get("response")
    if not isinstance(response, dict):
        return
    if target == "dstu2":
        # DSTU2 has no response.outcome: the app still sees the outcome as the entry's
        # resource; when there already is one, the outcome is dropped (the official map).
        outcome = response.pop("outcome", None)
        if outcome is not None and "resource" not in entry:
            entry["resource"] = outcome
    elif source == "dstu2" and kind in _RESPONSES:
        resource = entry.get("resource")
        if isinstance(resource, dict) and resource.get("resourceType") == "OperationOutcome":
            response["outcome"] = entry.pop("resource")


def _entry(entry: dict[str, Any], kind: Any, steps: Steps) -> Resource:
    """One entry through every step: its own elements step by step, its resources once over
    the whole chain (each step's outcome placement sees them already converted, which changes
    nothing: it moves OperationOutcomes, whose place does not depend on their version).

    Any failure but the Bundle's own (``BundleNotConvertible``) stays inside this entry, which
    becomes an OperationOutcome entry: one invalid entry never fails its Bundle (§11).
    """
    try:
        for source, target in steps:
            _request(entry.get("request"), source, target)
            _rename(entry, "fullUrl", target)
            _rename(entry.get("response"), "location", target)
            for link in _items(entry.get("link")):
                _rename(link, "url", target)
        first, last = steps[0][0], steps[-1][1]
        _resources(entry, first, last)
        for source, target in steps:
            _outcome_place(entry, kind, source, target)
    except BundleNotConvertible:
        raise
    except Exception as error:  # contained to this entry, by design (§11)
        # Made as the first step made it, then placed by the later ones (its OperationOutcome
        # reads the same in every version): the output a step-by-step conversion gave.
        out = _left_out(entry, kind, error, steps[0][1])
        for source, target in steps[1:]:
            _outcome_place(out, kind, source, target)
        return out
    return entry


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _counts(entry: Any) -> bool:
    """True for a searchset entry that ``total`` counts (a match)."""
    if not isinstance(entry, dict):
        return False
    search = entry.get("search")
    return (search.get("mode") if isinstance(search, dict) else None) in _MATCH


def convert_through(bundle: Resource, steps: Steps) -> Resource:
    """``bundle`` (a private copy: changed in place) through ``steps``, e.g. R4 → STU3 → DSTU2:
    the Bundle's own elements step by step, each entry converted once over the whole chain."""
    for source, target in steps:
        if source == "dstu2":
            prune_empty_twins(bundle)  # stripped fhir_comments leave empty "_x" objects
        drop(bundle, _DROPPED[(source, target)])
        # convert() leaves the Bundle's own meta alone (it handles each entry's resource).
        if isinstance(bundle.get("meta"), dict):
            rewrite_systems(bundle["meta"], target)
        drop_meta_for_older(bundle, target)
        for link in _items(bundle.get("link")):
            _rename(link, "url", target)  # the proxy rewrites the base and the _sort syntax
    entries = bundle.get("entry")
    if isinstance(entries, list):
        kind = bundle.get("type")
        converted = [
            _entry(entry, kind, steps) if isinstance(entry, dict) else entry for entry in entries
        ]
        if kind == "searchset":
            _adjust_total(bundle, entries, converted)
        bundle["entry"] = converted
    return bundle


def _adjust_total(bundle: Resource, before: list[Any], after: list[Any]) -> None:
    """``total`` no longer counts the matches this page left out (§11 proxy decision)."""
    total = bundle.get("total")
    if not isinstance(total, int) or isinstance(total, bool):
        return
    left_out = sum(
        1 for old, new in zip(before, after, strict=True) if _counts(old) and not _counts(new)
    )
    if left_out:
        bundle["total"] = max(total - left_out, 0)


def r4_to_stu3(bundle: Resource) -> Resource:
    """R4 Bundle → STU3: entries converted; timestamp dropped; HEAD requests become GET."""
    return convert_through(bundle, (("r4", "stu3"),))


def stu3_to_r4(bundle: Resource) -> Resource:
    """STU3 Bundle → R4: entries converted."""
    return convert_through(bundle, (("stu3", "r4"),))


def stu3_to_dstu2(bundle: Resource) -> Resource:
    """STU3 Bundle → DSTU2: entries converted and renamed; response.outcome → resource."""
    return convert_through(bundle, (("stu3", "dstu2"),))


def dstu2_to_stu3(bundle: Resource) -> Resource:
    """DSTU2 Bundle → STU3: entries converted and renamed; error outcomes → response.outcome."""
    return convert_through(bundle, (("dstu2", "stu3"),))
