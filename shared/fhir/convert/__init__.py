"""FHIR version conversion between R4, STU3 and DSTU2: pure functions over plain dicts.

Each resource module converts one resource type one step at a time (R4 ⇄ STU3, STU3 ⇄ DSTU2),
as HL7's own cross-version maps do; R4 ⇄ DSTU2 goes through STU3. ``convert`` picks the
steps. Everything the target cannot hold is a written decision (docs/conversion/), carried in
the cross-version extension form or dropped, and pinned by a test. The field-level reference
is docs/conversion/mapping.md.
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
    InvalidResource,
    Resource,
    UnsupportedResource,
    clone,
    drop_meta_for_older,
    fit_extension_values,
    prune_empty_twins,
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
    "Organization": "organization",
    "Medication": "medication",
    "Bundle": "bundle",
    "OperationOutcome": "operation_outcome",
}
_ORDER = {version: index for index, version in enumerate(VERSIONS)}


_LOADED: dict[str, ModuleType] = {}  # imported on first use (cold start), then looked up here


def _module(resource_type: str) -> ModuleType | None:
    name = _MODULES.get(resource_type)
    if name is None:
        return None
    module = _LOADED.get(name)
    if module is None:
        module = _LOADED[name] = importlib.import_module(f"shared.fhir.convert.{name}")
    return module


def supports(resource_type: str) -> bool:
    """True when ``resource_type`` converts between versions."""
    return resource_type in _MODULES


def _path(source: str, target: str) -> tuple[tuple[str, str], ...]:
    path = [source]
    if {source, target} == {"r4", "dstu2"}:
        path.append("stu3")
    path.append(target)
    return tuple(itertools.pairwise(path))


_STEPS = {(s, t): _path(s, t) for s in VERSIONS for t in VERSIONS if s != t}


def convert(
    resource: Mapping[str, Any], source: str, target: str, *, copy: bool = True
) -> Resource:
    """``resource`` (a ``source`` version dict) as a ``target`` version dict.

    With ``copy`` (the default) the input is untouched. ``copy=False`` converts in place, for a
    document the caller owns (e.g. one it just parsed) and will not use again: the input is
    left in an unspecified state and the returned dict is the result.
    """
    if source not in _ORDER or target not in _ORDER:
        raise ConversionError("versions must be dstu2, stu3 or r4")
    result = clone(resource) if copy else _owned(resource)
    if source == "dstu2":
        # Stripping leaves "_x": {} twins behind, which no release accepts.
        prune_empty_twins(strip_fhir_comments(result))
    if source == target:
        return result
    return _convert_owned(result, source, target)


def _convert_owned(resource: Resource, source: str, target: str) -> Resource:
    resource_type = str(resource.get("resourceType", ""))
    module = _module(resource_type)
    if module is None:
        raise UnsupportedResource(resource_type or "(no resourceType)", source, target)
    steps = _STEPS[(source, target)]
    try:
        return _run(module, resource, steps)
    except ConversionError:
        raise
    except Exception as error:
        # Schema-invalid input (a code holding an object, a list where one value belongs, …)
        # is refused like any resource the target cannot hold, never a crash: the proxy
        # answers an OperationOutcome, and a Bundle leaves only that entry out (§11).
        raise InvalidResource(f"the {_label(resource_type)} is not valid FHIR") from error


def _run(module: ModuleType, resource: Resource, steps: tuple[tuple[str, str], ...]) -> Resource:
    if resource.get("resourceType") == "Bundle":
        # Each entry goes through the whole chain at once, not once per Bundle step.
        bundle: Resource = module.convert_through(resource, steps)
        return bundle
    # Real servers mix old and new code-system URIs: each step sees its own version's.
    rewrite_systems(resource, steps[0][0])
    result = resource
    for step_source, step_target in steps:
        step = getattr(module, f"{step_source}_to_{step_target}")
        # Before the step, so what it restores from an extension is already in its shape;
        # after, for what it carries (fitting twice changes nothing).
        fit_extension_values(result, step_source, step_target)
        result = step(result)
        fit_extension_values(result, step_source, step_target)
        rewrite_systems(result, step_target)
        drop_meta_for_older(result, step_target)
    return result


def _label(resource_type: str) -> str:
    # The name comes from upstream data: it is echoed only when it names a known type.
    return resource_type if resource_type in _MODULES else "resource"


def _owned(resource: Mapping[str, Any]) -> Resource:
    # A dict is used as it is; any other mapping becomes one (its values are shared).
    return resource if isinstance(resource, dict) else dict(resource)
