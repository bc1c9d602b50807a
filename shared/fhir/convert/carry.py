"""Carrying an element the target lacks in HL7's cross-version extension form, and restoring
it on the way back (§2.7). Section numbers (§) refer to docs/conversion/mapping.md.

``common.add_xver`` and ``common.take_xver`` carry single values; the functions here carry a
whole element: each item of a list, complex (backbone) values, a choice type's value key, and
a primitive's ``_x`` twin (its id and extensions), which rides as the carried value's own twin.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.fhir.convert.common import add_xver, convert_reference, items, xver_url


def carry(holder: Any, key: str, path: str, value_key: str, source: str, target: str) -> None:
    """Move ``holder[key]`` (each item of a list) into cross-version extensions on ``holder``;
    a primitive's ``_key`` twin (its id and extensions) rides as the value's own twin."""
    if not isinstance(holder, dict) or key not in holder:
        return
    value = holder.pop(key)
    twin = holder.pop("_" + key, None)
    values = value if isinstance(value, list) else [value]
    twins = twin if isinstance(twin, list) else [twin] * (1 if not isinstance(value, list) else 0)
    for index, item in enumerate(values):
        if value_key == "valueReference":
            item = convert_reference(item, target)
        add_xver(holder, source, path, value_key, item)
        item_twin = twins[index] if index < len(twins) else None
        if isinstance(item_twin, dict) and item_twin:
            holder["extension"][-1]["_" + value_key] = item_twin


def _taken(holder: Any, source: str, path: str) -> list[dict[str, Any]]:
    """Remove and return every cross-version extension for ``path``."""
    if not isinstance(holder, dict) or not isinstance(holder.get("extension"), list):
        return []
    url = xver_url(source, path)
    found = [e for e in items(holder["extension"]) if e.get("url") == url]
    holder["extension"] = [e for e in holder["extension"] if not any(e is f for f in found)]
    if not holder["extension"]:
        holder.pop("extension")
    return found


def carried(holder: Any, source: str, path: str) -> list[tuple[str, Any]]:
    """Remove every cross-version extension for ``path``; their (value key, value) pairs."""
    return [_value(extension) for extension in _taken(holder, source, path)]


def _value(extension: dict[str, Any]) -> tuple[str, Any]:
    """(value key, value) of an extension; ("extension", parts) for a complex one."""
    return next(
        ((k, v) for k, v in extension.items() if k.startswith("value") or k == "extension"),
        ("", None),
    )


def peek(holder: Any, source: str, path: str) -> list[Any]:
    """The values of the cross-version extensions for ``path``, left in place."""
    if not isinstance(holder, dict):
        return []
    url = xver_url(source, path)
    return [_value(e)[1] for e in items(holder.get("extension")) if e.get("url") == url]


def restore(holder: Any, key: str, path: str, source: str, *, many: bool = False) -> None:
    """Undo ``carry``: the carried values (and primitive twins) become ``holder[key]`` again."""
    found = _taken(holder, source, path)
    values = [_value(extension) for extension in found]
    if not values or not isinstance(holder, dict):
        return
    twins = [
        extension.get("_" + value_key)
        for extension, (value_key, _) in zip(found, values, strict=True)
    ]
    holder[key] = [value for _, value in values] if many else values[0][1]
    if any(twins):
        holder["_" + key] = twins if many else twins[0]


def restore_choice(
    holder: Any, base: str, path: str, source: str, types: Mapping[str, str] | None = None
) -> bool:
    """Undo ``carry`` of a choice element: the value key names the type (``types`` overrides).
    True when a value was restored."""
    for value_key, value in carried(holder, source, path)[:1]:
        holder[base + (types or {}).get(value_key, value_key[5:])] = value
        return True
    return False
