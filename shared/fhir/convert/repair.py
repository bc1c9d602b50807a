"""Repairs the AllergyIntolerance, MedicationRequest and Coverage converters make to their input
at every step: real data breaks rules all three releases share, which a strict reader of the
target refuses. Decisions: docs/conversion/allergy_intolerance.md ("Input repairs").
"""

from __future__ import annotations

import re
from typing import Any

from shared.fhir.convert.common import Resource

# A dateTime with a time but no zone; and the free-text keys whose strings are never dates.
_ZONELESS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?")
_FREE_TEXT = frozenset({"text", "div", "display", "description", "value", "valueString"})


def date_for_zoneless(node: Any) -> Any:
    """Cut dateTimes with a time but no zone (invalid in every release, seen in Epic's DSTU2
    data) to their date: the zone is unknown, the date is still true (in place)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, str) and key not in _FREE_TEXT and _ZONELESS.fullmatch(value):
                node[key] = value[:10]
            elif key not in ("text", "meta"):
                date_for_zoneless(value)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            if isinstance(value, str) and _ZONELESS.fullmatch(value):
                node[index] = value[:10]
            else:
                date_for_zoneless(value)
    return node


def drop_empty_narrative(resource: Resource) -> None:
    """A narrative without its div is invalid in every release and says nothing: dropped."""
    text = resource.get("text")
    if isinstance(text, dict) and not text.get("div"):
        resource.pop("text")


def repair(resource: Resource) -> Resource:
    """The input repairs every step makes (real data breaks rules all releases share)."""
    date_for_zoneless(resource)
    drop_empty_narrative(resource)
    return resource
