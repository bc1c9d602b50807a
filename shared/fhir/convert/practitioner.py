"""Practitioner between R4, STU3 and DSTU2: enough for display references (name, identifier,
telecom). docs/conversion/mapping.md has no Practitioner section; docs/conversion/practitioner.md
is the reference.

R4 and STU3 Practitioner have the same elements; DSTU2 has one ``name`` (0..1, not a list)
and a ``practitionerRole`` backbone that STU3 moved into the PractitionerRole resource.
"""

from __future__ import annotations

from typing import Any

from shared.fhir.convert.common import (
    Resource,
    add_xver,
    drop,
    items,
    prune_empty_twins,
    take_all_xver,
)
from shared.fhir.convert.datatypes import convert_elements

_FIELDS = {
    "identifier": "Identifier",
    "name": "HumanName",
    "telecom": "ContactPoint",
    "address": "Address",
}
_QUALIFICATION_FIELDS = {"identifier": "Identifier", "issuer": "Reference"}
_EXTRA_NAME = "Practitioner.name"  # cross-version path for the names DSTU2 cannot hold


def _all_elements(practitioner: Resource, source: str, target: str) -> None:
    convert_elements(practitioner, _FIELDS, source, target)
    for qualification in items(practitioner.get("qualification")):
        convert_elements(qualification, _QUALIFICATION_FIELDS, source, target)


def r4_to_stu3(practitioner: Resource) -> Resource:
    """R4 Practitioner → STU3: same elements; data-type codes STU3 lacks are carried."""
    _all_elements(practitioner, "r4", "stu3")
    return practitioner


def stu3_to_r4(practitioner: Resource) -> Resource:
    """STU3 Practitioner → R4: same elements; carried data-type codes restored."""
    _all_elements(practitioner, "stu3", "r4")
    return practitioner


def stu3_to_dstu2(practitioner: Resource) -> Resource:
    """STU3 Practitioner → DSTU2: the first name becomes ``name``; the others are carried."""
    _all_elements(practitioner, "stu3", "dstu2")
    names: list[Any] = items(practitioner.pop("name", None))
    practitioner.pop("_name", None)
    if names:
        # The first name keeps list order on the way back (the app shows this one).
        practitioner["name"] = names[0]
        for extra in names[1:]:
            add_xver(practitioner, "stu3", _EXTRA_NAME, "valueHumanName", extra)
    return practitioner


def dstu2_to_stu3(practitioner: Resource) -> Resource:
    """DSTU2 Practitioner → STU3: ``name`` becomes a list; practitionerRole is dropped."""
    prune_empty_twins(practitioner)  # stripped fhir_comments leave empty "_x" objects
    # STU3 models roles as PractitionerRole resources, which one resource cannot become.
    drop(practitioner, ["practitionerRole"])
    name = practitioner.pop("name", None)
    practitioner.pop("_name", None)
    names = [name] if isinstance(name, dict) else []
    names += take_all_xver(practitioner, "stu3", _EXTRA_NAME)
    if names:
        practitioner["name"] = names
    _all_elements(practitioner, "dstu2", "stu3")
    return practitioner
