"""What the converter tests check a converted document with: that it is valid in its version,
and which values its extensions carry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import fhir.resources.R4B as r4_models
import fhir.resources.STU3 as stu3_models

from tests.support.dstu2 import Shape, assert_dstu2


def assert_valid(
    resource: dict[str, Any],
    version: str,
    resource_type: str,
    dstu2: Shape | Callable[[dict[str, Any]], None],
) -> None:
    """Fail unless ``resource`` is a valid ``resource_type`` of ``version``: STU3 and R4 through
    the fhir.resources models, DSTU2 through ``dstu2`` (the type's shape, or a check of it).

    R4 output is checked by the R4B models: R4B kept the R4 elements of every type converted
    here unchanged (Condition's CodeableConcept statuses, recordedDate, recorder and stage.type;
    Encounter's class as one Coding, basedOn, reasonCode, reasonReference, serviceType,
    diagnosis.use and location.physicalType; Observation's effectiveInstant and
    effectiveTiming, valueInteger, hasMember, derivedFrom, focus, partOf and note;
    MedicationRequest's Dosage and Timing; the Bundle and every entry type).
    """
    if version == "stu3":
        stu3_models.get_fhir_model_class(resource_type).model_validate(resource)
    elif version == "r4":
        r4_models.get_fhir_model_class(resource_type).model_validate(resource)
    elif isinstance(dstu2, Shape):
        assert_dstu2(resource, dstu2)
    else:
        dstu2(resource)


def extension_values(holder: dict[str, Any], url: str) -> list[Any]:
    """The values of ``holder``'s extensions with ``url``, in order (a complex extension's
    sub-extensions)."""
    return [
        next(v for k, v in extension.items() if k.startswith("value") or k == "extension")
        for extension in holder.get("extension", [])
        if extension["url"] == url
    ]
