"""FHIR version conversion between R4, STU3 and DSTU2: pure functions over plain dicts.

Each resource module converts one resource type one step at a time (R4 ⇄ STU3, STU3 ⇄ DSTU2),
as HL7's own cross-version maps do; R4 ⇄ DSTU2 goes through STU3. ``convert`` picks the
steps. Everything the target cannot hold is a written decision (docs/conversion/), carried in
the cross-version extension form or dropped, and pinned by a test.
"""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from shared.fhir.convert.common import (
    VERSIONS,
    ConversionError,
    Resource,
    UnsupportedResource,
    clone,
    drop_meta_for_older,
    rewrite_systems,
    strip_fhir_comments,
)

__all__ = ["VERSIONS", "ConversionError", "UnsupportedResource", "convert", "supports"]

# Resource type (as any version names it) → its converter module under shared.fhir.convert.
_MODULES = {
    "Patient": "patient",
    "Practitioner": "practitioner",
    "Location": "location",
    "Observation": "observation",
    "Condition": "condition",
    "Encounter": "encounter",
    "AllergyIntolerance": "allergy_intolerance",
    "MedicationRequest": "medication_request",
    "MedicationOrder": "medication_request",
    "Coverage": "coverage",
    "Bundle": "bundle",
    "OperationOutcome": "operation_outcome",
}
_ORDER = {version: index for index, version in enumerate(VERSIONS)}


def _module(resource_type: str) -> ModuleType | None:
    name = _MODULES.get(resource_type)
    return importlib.import_module(f"shared.fhir.convert.{name}") if name else None


def supports(resource_type: str) -> bool:
    """True when ``resource_type`` converts between versions."""
    return resource_type in _MODULES


def _steps(source: str, target: str) -> list[tuple[str, str]]:
    path = [source]
    if {source, target} == {"r4", "dstu2"}:
        path.append("stu3")
    path.append(target)
    return list(itertools.pairwise(path))


def convert(resource: Mapping[str, Any], source: str, target: str) -> Resource:
    """``resource`` (a ``source`` version dict) as a ``target`` version dict; input untouched."""
    if source not in _ORDER or target not in _ORDER:
        raise ConversionError("versions must be dstu2, stu3 or r4")
    result = clone(resource)
    if source == "dstu2":
        strip_fhir_comments(result)
    if source == target:
        return result
    resource_type = str(result.get("resourceType", ""))
    module = _module(resource_type)
    if module is None:
        raise UnsupportedResource(resource_type or "(no resourceType)", source, target)
    is_bundle = resource_type == "Bundle"
    if not is_bundle:
        # Real servers mix old and new code-system URIs: each step sees its own version's.
        rewrite_systems(result, source)
    for step_source, step_target in _steps(source, target):
        step = getattr(module, f"{step_source}_to_{step_target}")
        result = step(result)
        if not is_bundle:
            # Bundles convert their entries through convert(), which does this per resource.
            rewrite_systems(result, step_target)
            drop_meta_for_older(result, step_target)
    return result
