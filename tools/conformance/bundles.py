"""Reading FHIR JSON defensively: a server's answer may have any shape."""

from __future__ import annotations

from typing import Any

from tools.conformance.client import Answer, CallFailed


def searchset(answer: Answer) -> dict[str, Any]:
    """The answer's searchset Bundle (``CallFailed`` when it is something else)."""
    document = answer.json()
    return searchset_of(document, f"HTTP {answer.status}")


def searchset_of(document: Any, where: str) -> dict[str, Any]:
    """``document`` when it is a searchset Bundle (``CallFailed`` naming ``where`` if not)."""
    if not isinstance(document, dict):
        raise CallFailed(f"{where} without a resource")
    kind, bundle_type = document.get("resourceType"), document.get("type")
    if kind != "Bundle" or bundle_type != "searchset":
        shown = f"{kind} {bundle_type}" if kind == "Bundle" else str(kind)
        raise CallFailed(f"{where} with {shown}, not a searchset Bundle")
    return document


def matches(bundle: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    """Resources of ``resource_type`` the searchset matched (includes and outcomes left out)."""
    found = []
    for entry in as_list(bundle.get("entry")):
        if not isinstance(entry, dict):
            continue
        resource, search = entry.get("resource"), entry.get("search")
        mode = search.get("mode", "match") if isinstance(search, dict) else "match"
        if (
            isinstance(resource, dict)
            and resource.get("resourceType") == resource_type
            and mode == "match"
        ):
            found.append(resource)
    return found


def as_list(value: Any) -> list[Any]:
    """``value`` when it is a JSON array, else an empty list."""
    return value if isinstance(value, list) else []


def strings(value: Any) -> list[str]:
    """The non-empty strings of a JSON array."""
    return [v for v in as_list(value) if isinstance(v, str) and v]


def dig(value: Any, *path: str | int) -> Any:
    """``value[path[0]][path[1]]…``, or None where the shape does not allow it."""
    for step in path:
        if isinstance(step, int):
            value = value[step] if isinstance(value, list) and len(value) > step else None
        else:
            value = value.get(step) if isinstance(value, dict) else None
    return value


def entries(count: int) -> str:
    """``1 entry`` or ``<n> entries``."""
    return f"{count} {'entry' if count == 1 else 'entries'}"
