"""Structural checks for DSTU2 output: no maintained Python model exists for DSTU2 (1.0.2).

Each resource test declares the shape of its type from HL7's DSTU2 examples and
docs/conversion/mapping.md: the elements DSTU2 allows, the ones it requires, and the shapes of
nested elements that matter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Present on every DSTU2 resource (Resource and DomainResource).
COMMON = frozenset(
    {
        "resourceType",
        "id",
        "meta",
        "implicitRules",
        "language",
        "text",
        "contained",
        "extension",
        "modifierExtension",
    }
)


@dataclass(frozen=True)
class Shape:
    """Allowed and required elements of one DSTU2 element or resource, with nested shapes."""

    allowed: frozenset[str]
    required: frozenset[str] = frozenset()
    nested: Mapping[str, Shape] = field(default_factory=dict)
    lists: frozenset[str] = frozenset()  # elements that must be JSON arrays (0..*)


def problems(value: Any, shape: Shape, where: str = "", *, resource: bool = True) -> list[str]:
    """Every way ``value`` breaks ``shape``; [] when it fits."""
    found: list[str] = []
    if not isinstance(value, dict):
        return [f"{where or 'resource'} is not an object"]
    allowed = shape.allowed | (
        COMMON if resource else frozenset({"id", "extension", "modifierExtension"})
    )
    for key in value:
        name = key[1:] if key.startswith("_") else key
        if name not in allowed:
            found.append(f"{where}{key} is not a DSTU2 element")
    for key in shape.required:
        # A required primitive may stand without a value when its "_x" twin says why.
        if key not in value and "_" + key not in value:
            found.append(f"{where}{key} is required in DSTU2")
    for key in shape.lists:
        if key in value and not isinstance(value[key], list):
            found.append(f"{where}{key} must be a list in DSTU2")
    for key, inner in shape.nested.items():
        items = value.get(key)
        for index, item in enumerate(
            items if isinstance(items, list) else [items] if items is not None else []
        ):
            found += problems(item, inner, f"{where}{key}[{index}].", resource=False)
    return found


def assert_dstu2(value: Any, shape: Shape) -> None:
    """Fail with every problem listed when ``value`` does not fit ``shape``."""
    found = problems(value, shape)
    assert not found, "; ".join(found)
