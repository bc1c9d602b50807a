"""Location between R4, STU3 and DSTU2 (§10 of docs/conversion/mapping.md). The app only shows
a Location's name through ``Encounter.location.display``; the resource converts anyway so
included or read Locations reach the app. Decisions: docs/conversion/location.md.
"""

from __future__ import annotations

from typing import Any

from shared.fhir.convert.common import (
    Resource,
    add_xver,
    items,
    prune_empty_twins,
    take_all_xver,
    take_complex_xver,
    take_xver,
)
from shared.fhir.convert.datatypes import convert_elements

_FIELDS = {
    "identifier": "Identifier",
    "telecom": "ContactPoint",
    "address": "Address",
    "managingOrganization": "Reference",
    "partOf": "Reference",
    "endpoint": "Reference",
}
# The DSTU2-era standard extension for Location.alias (the DSTU2 examples use it).
_ALIAS = "http://hl7.org/fhir/StructureDefinition/location-alias"
# Location.hoursOfOperation children and the value[x] each takes in the complex extension.
_HOURS = {
    "daysOfWeek": "valueCode",
    "allDay": "valueBoolean",
    "openingTime": "valueTime",
    "closingTime": "valueTime",
}
_HOURS_PATH = "Location.hoursOfOperation"


def _carry_all(location: Resource, source: str, path: str, key: str, values: list[Any]) -> None:
    for value in values:
        add_xver(location, source, path, key, value)


def _values(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _hours_to_extensions(location: Resource) -> None:
    for hours in items(location.pop("hoursOfOperation", None)):
        parts = [
            {"url": child, key: value}
            for child, key in _HOURS.items()
            for value in _values(hours.get(child))
        ]
        add_xver(location, "r4", _HOURS_PATH, "extension", parts)


def _hours_from_extensions(location: Resource) -> None:
    carried = take_complex_xver(location, "r4", _HOURS_PATH)
    if not carried:
        return
    hours = []
    for parts in carried:
        entry: dict[str, Any] = {}
        for part in items(parts):
            child, key = part.get("url"), _HOURS.get(str(part.get("url")))
            if key and key in part:
                if child == "daysOfWeek":
                    entry.setdefault(child, []).append(part[key])
                else:
                    entry[str(child)] = part[key]
        hours.append(entry)
    location["hoursOfOperation"] = hours


def r4_to_stu3(location: Resource) -> Resource:
    """R4 Location → STU3: first type only; hours and availability carried in extensions."""
    convert_elements(location, _FIELDS, "r4", "stu3")
    types = items(location.pop("type", None))
    if types:
        location["type"] = types[0]
        _carry_all(location, "r4", "Location.type", "valueCodeableConcept", types[1:])
    _hours_to_extensions(location)
    exceptions = location.pop("availabilityExceptions", None)
    location.pop("_availabilityExceptions", None)
    add_xver(location, "r4", "Location.availabilityExceptions", "valueString", exceptions)
    return location


def stu3_to_r4(location: Resource) -> Resource:
    """STU3 Location → R4: type becomes a list; carried R4 elements restored."""
    convert_elements(location, _FIELDS, "stu3", "r4")
    first = location.pop("type", None)
    extra = take_all_xver(location, "r4", "Location.type")
    types = ([first] if isinstance(first, dict) else []) + extra
    if types:
        location["type"] = types
    _hours_from_extensions(location)
    exceptions = take_xver(location, "r4", "Location.availabilityExceptions")
    if exceptions is not None:
        location["availabilityExceptions"] = exceptions
    return location


def stu3_to_dstu2(location: Resource) -> Resource:
    """STU3 Location → DSTU2: alias → location-alias; operationalStatus, endpoint carried."""
    convert_elements(location, _FIELDS, "stu3", "dstu2")
    for alias in location.pop("alias", None) or []:
        location.setdefault("extension", []).append({"url": _ALIAS, "valueString": alias})
    location.pop("_alias", None)
    status = location.pop("operationalStatus", None)
    add_xver(location, "stu3", "Location.operationalStatus", "valueCoding", status)
    endpoints = items(location.pop("endpoint", None))
    _carry_all(location, "stu3", "Location.endpoint", "valueReference", endpoints)
    return location


def dstu2_to_stu3(location: Resource) -> Resource:
    """DSTU2 Location → STU3: location-alias → alias; carried STU3 elements restored."""
    prune_empty_twins(location)  # stripped fhir_comments leave empty "_x" objects
    extensions = items(location.get("extension"))
    aliases = [
        e["valueString"] for e in extensions if e.get("url") == _ALIAS and "valueString" in e
    ]
    if aliases:
        location["alias"] = aliases
        location["extension"] = [e for e in extensions if e.get("url") != _ALIAS]
        if not location["extension"]:
            location.pop("extension")
    status = take_xver(location, "stu3", "Location.operationalStatus")
    if status is not None:
        location["operationalStatus"] = status
    endpoints = take_all_xver(location, "stu3", "Location.endpoint")
    if endpoints:
        location["endpoint"] = endpoints
    convert_elements(location, _FIELDS, "dstu2", "stu3")
    return location
