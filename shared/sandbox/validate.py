"""Validation of resources written to the sandbox against the FHIR R4B models (R4 for our types).

``fhir.resources`` (pydantic v2) checks structure, cardinality, primitive formats and choice
types; it does not check required code bindings, so the one the sandbox searches on
(``Patient.gender``) is checked here. The first error becomes an ``InvalidResource`` naming the
element in FHIRPath style (``Patient.name[0].given[1]``) with a short message that never echoes
the offending value.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Mapping
from typing import Any, Final

from shared.sandbox.errors import InvalidResource, UnsupportedType
from shared.sandbox.layout import SUPPORTED_TYPES

GENDERS: Final = frozenset({"male", "female", "other", "unknown"})
_MAX_TEXT: Final = 200
# Choice-type errors come at the resource level, listing the choices ("valueBoolean", ...).
_CHOICES = re.compile(r"\[('[A-Za-z]+'(?:, '[A-Za-z]+')*)\]")


def validate_resource(resource: Mapping[str, Any]) -> None:
    """Raise InvalidResource (or UnsupportedType) unless ``resource`` is a valid R4 resource."""
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str) or not resource_type:
        raise InvalidResource("resourceType", "is required")
    if resource_type not in SUPPORTED_TYPES:
        raise UnsupportedType(resource_type)
    from pydantic import ValidationError

    try:
        _model(resource_type).model_validate(resource)
    except ValidationError as error:
        raise _invalid(resource_type, error.errors()[0]) from None
    except (TypeError, ValueError, RecursionError):
        raise InvalidResource(resource_type, "is not a valid resource") from None
    gender = resource.get("gender")
    if resource_type == "Patient" and gender is not None and gender not in GENDERS:
        raise InvalidResource("Patient.gender", "must be male, female, other or unknown")


@functools.cache
def _model(resource_type: str) -> Any:
    """The fhir.resources R4B class of a supported type (imported once, on first use)."""
    module = importlib.import_module(f"fhir.resources.R4B.{resource_type.lower()}")
    return getattr(module, resource_type)


def _common_prefix(names: list[str]) -> str:
    prefix = names[0]
    for name in names[1:]:
        while not name.startswith(prefix):
            prefix = prefix[:-1]
    return prefix


def _invalid(resource_type: str, error: Mapping[str, Any]) -> InvalidResource:
    path = resource_type
    for step in error.get("loc", ()):
        path += f"[{step}]" if isinstance(step, int) else f".{step}"
    message = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
    if path == resource_type:
        choices = _CHOICES.search(message)
        if choices is not None:
            names = [name.strip("'") for name in choices[1].split(", ")]
            path += "." + _common_prefix(names) + "[x]"
            message = "takes one value of its choice type"
    return InvalidResource(path[:_MAX_TEXT], " ".join(message.split())[:_MAX_TEXT])
