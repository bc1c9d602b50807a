"""Contained resources, converted with their container (proxy decision): a contained resource
must be valid in the target too. Decisions: docs/conversion/allergy_intolerance.md.
"""

from __future__ import annotations

from shared.fhir.convert.common import Resource, items


def convert_contained(resource: Resource, source: str, target: str) -> None:
    """Contained resources for ``target``: converted when the framework knows their type,
    otherwise dropped (proxy decision)."""
    # Imported here: the package loads the converters, which load this module.
    from shared.fhir.convert import convert, supports

    kept = []
    for inner in items(resource.get("contained")):
        kind = str(inner.get("resourceType", ""))
        if supports(kind):
            kept.append(convert(inner, source, target))
    if kept:
        resource["contained"] = kept
    else:
        resource.pop("contained", None)
