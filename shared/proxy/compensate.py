"""Make up for what a provider cannot do: POST ``_search`` as GET, and sorting by date.

The Patients app asks for the latest vitals and the last encounter first (``_sort=-date`` in
STU3/R4, ``_sort:desc=date`` in DSTU2). A provider that cannot sort gets the matching resources
read page by page, up to ``EHRB_SORT_COMPENSATION_CAP``, and sorted here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus

from shared.fhir.catalog import RESOURCE_TYPES

# The date each resource type sorts on, in order of preference, by the name a document of any
# release gives the type (the catalogue's sort dates: FHIR's `date` search parameter for these
# types, in the versions the proxy serves).
DATE_PATHS: Mapping[str, tuple[tuple[str, ...], ...]] = {
    name: entry.sort_paths(name)
    for entry in RESOURCE_TYPES
    if entry.sort_dates
    for name in sorted(entry.names)
}


def _name(piece: str) -> str:
    return unquote_plus(piece.partition("=")[0])


def wants_date_sort(raw_query: str) -> bool:
    """True when the first sort key asks for date, newest first, in any version's spelling."""
    for piece in raw_query.split("&"):
        name, _, value = piece.partition("=")
        name, value = unquote_plus(name), unquote_plus(value)
        if name == "_sort:desc":
            return value.split(",")[0] == "date"
        if name == "_sort":
            return value.split(",")[0] == "-date"
    return False


def without_params(raw_query: str, names: frozenset[str]) -> str:
    """The raw query minus the named parameters (with any modifier), the rest byte for byte."""
    kept = [p for p in raw_query.split("&") if p and _name(p).split(":")[0] not in names]
    return "&".join(kept)


def requested_count(raw_query: str) -> int | None:
    """The ``_count`` asked for, if any (already validated as a non-negative integer)."""
    for piece in raw_query.split("&"):
        if _name(piece) == "_count":
            return int(unquote_plus(piece.partition("=")[2]))
    return None


def form_as_query(raw_query: str, form_body: bytes) -> str:
    """A POST ``_search`` form body as the equivalent GET query string.

    A form body is already ``application/x-www-form-urlencoded``: its bytes are a valid query
    string, so they pass on unchanged after the URL's own query.
    """
    body = form_body.decode("ascii")
    return "&".join(part for part in (raw_query, body) if part)


def sort_key(resource: Mapping[str, Any]) -> str:
    """The resource's date as an ISO string ('' when it has none, which sorts last)."""
    for path in DATE_PATHS.get(str(resource.get("resourceType")), ()):
        value: Any = resource
        for step in path:
            value = value.get(step) if isinstance(value, Mapping) else None
        if isinstance(value, str):
            return value
    return ""


def sorted_searchset(
    resources: list[dict[str, Any]],
    *,
    count: int | None,
    truncated: bool,
    cap: int,
    total: int | None,
    outcome: dict[str, Any] | None,
) -> dict[str, Any]:
    """A searchset of ``resources`` newest first, with a warning entry when the cap was hit."""
    ordered = sorted(resources, key=sort_key, reverse=True)
    page = ordered if count is None else ordered[:count]
    entries: list[dict[str, Any]] = [
        {"resource": resource, "search": {"mode": "match"}} for resource in page
    ]
    if truncated and outcome is not None:
        entries.append({"resource": outcome, "search": {"mode": "outcome"}})
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    bundle["total"] = total if total is not None else len(resources)
    bundle["entry"] = entries
    return bundle
