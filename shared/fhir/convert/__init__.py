"""FHIR version conversion between R4, STU3 and DSTU2: pure functions over plain dicts.

Each resource module converts one resource type one step at a time (R4 ⇄ STU3, STU3 ⇄ DSTU2),
as HL7's own cross-version maps do; R4 ⇄ DSTU2 goes through STU3. ``convert`` picks the
steps. Which module converts which type is the catalogue's (``shared.fhir.catalog``); what a
module must define is the contract (``shared.fhir.convert.contract``). Everything the target
cannot hold is a written decision (docs/conversion/), carried in the cross-version extension
form or dropped, and pinned by a test. The field-level reference is docs/conversion/mapping.md.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from shared.fhir.catalog import RESOURCE_TYPES, ResourceType
from shared.fhir.convert import contract
from shared.fhir.convert.common import (
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
from shared.fhir.versions import VERSIONS, FhirVersion

__all__ = ["VERSIONS", "ConversionError", "UnsupportedResource", "convert", "supports"]

# Resource type (as any version names it) → its catalogue entry, for the types that convert.
_CONVERTIBLE: Mapping[str, ResourceType] = {
    name: entry for entry in RESOURCE_TYPES if entry.converter for name in entry.names
}
_ORDER = {version.value: index for index, version in enumerate(VERSIONS)}


# Imported on first use (cold start), then looked up here, by any version's type name.
_LOADED: dict[str, contract.Converter] = {}


def _converter(resource_type: str) -> contract.Converter | None:
    converter = _LOADED.get(resource_type)
    if converter is None:
        entry = _CONVERTIBLE.get(resource_type)
        if entry is None or entry.converter is None:
            return None
        converter = contract.load(entry.converter, converts_entries=entry.converts_entries)
        _LOADED[resource_type] = converter
    return converter


def supports(resource_type: str) -> bool:
    """True when ``resource_type`` converts between versions."""
    return resource_type in _CONVERTIBLE


def _path(source: str, target: str) -> tuple[tuple[str, str], ...]:
    # One release at a time: every release between the two is a stop.
    low, high = sorted((_ORDER[source], _ORDER[target]))
    stops = [version.value for version in VERSIONS[low : high + 1]]
    path = stops if _ORDER[source] < _ORDER[target] else stops[::-1]
    return tuple(itertools.pairwise(path))


_STEPS = {(s, t): _path(s, t) for s in _ORDER for t in _ORDER if s != t}


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
    if source == FhirVersion.DSTU2:
        # Stripping leaves "_x": {} twins behind, which no release accepts.
        prune_empty_twins(strip_fhir_comments(result))
    if source == target:
        return result
    return _convert_owned(result, source, target)


def _convert_owned(resource: Resource, source: str, target: str) -> Resource:
    resource_type = str(resource.get("resourceType", ""))
    converter = _converter(resource_type)
    if converter is None:
        raise UnsupportedResource(resource_type or "(no resourceType)", source, target)
    steps = _STEPS[(source, target)]
    try:
        return _run(converter, resource, steps)
    except ConversionError:
        raise
    except Exception as error:
        # Schema-invalid input (a code holding an object, a list where one value belongs, …)
        # is refused like any resource the target cannot hold, never a crash: the proxy
        # answers an OperationOutcome, and a Bundle leaves only that entry out (§11).
        raise InvalidResource(f"the {_label(resource_type)} is not valid FHIR") from error


def _run(
    converter: contract.Converter, resource: Resource, steps: tuple[tuple[str, str], ...]
) -> Resource:
    if converter.converts_entries:
        # Each entry goes through the whole chain at once, not once per Bundle step.
        return converter.through(resource, steps)
    # Real servers mix old and new code-system URIs: each step sees its own version's.
    rewrite_systems(resource, steps[0][0])
    result = resource
    for step_source, step_target in steps:
        step = converter.step(step_source, step_target)
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
    return resource_type if resource_type in _CONVERTIBLE else "resource"


def _owned(resource: Mapping[str, Any]) -> Resource:
    # A dict is used as it is; any other mapping becomes one (its values are shared).
    return resource if isinstance(resource, dict) else dict(resource)
