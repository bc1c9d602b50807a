"""Organization between R4, STU3 and DSTU2: the target of Patient.generalPractitioner,
Coverage.payor and Medication.manufacturer, converted so read or ``_include``d Organizations
reach the app. docs/conversion/mapping.md has no Organization section;
docs/conversion/organization.md is the reference.

R4 and STU3 Organization have the same elements. DSTU2 has one ``type`` (0..1) and neither
``alias`` nor ``endpoint``.
"""

from __future__ import annotations

from shared.fhir.convert.common import (
    Resource,
    add_xver,
    items,
    prune_empty_twins,
    take_all_xver,
)
from shared.fhir.convert.datatypes import convert_elements

_FIELDS = {
    "identifier": "Identifier",
    "telecom": "ContactPoint",
    "address": "Address",
    "partOf": "Reference",
    "endpoint": "Reference",
}
_CONTACT_FIELDS = {"name": "HumanName", "telecom": "ContactPoint", "address": "Address"}


def _all_elements(organization: Resource, source: str, target: str) -> None:
    convert_elements(organization, _FIELDS, source, target)
    for contact in items(organization.get("contact")):
        convert_elements(contact, _CONTACT_FIELDS, source, target)


def r4_to_stu3(organization: Resource) -> Resource:
    """R4 Organization → STU3: same elements; data-type codes STU3 lacks are carried."""
    _all_elements(organization, "r4", "stu3")
    return organization


def stu3_to_r4(organization: Resource) -> Resource:
    """STU3 Organization → R4: same elements; carried data-type codes restored."""
    _all_elements(organization, "stu3", "r4")
    return organization


def stu3_to_dstu2(organization: Resource) -> Resource:
    """STU3 Organization → DSTU2: first type only; other types, alias and endpoint carried."""
    _all_elements(organization, "stu3", "dstu2")
    types = items(organization.pop("type", None))
    if types:
        organization["type"] = types[0]
    for extra in types[1:]:
        add_xver(organization, "stu3", "Organization.type", "valueCodeableConcept", extra)
    aliases = organization.pop("alias", None) or []
    organization.pop("_alias", None)
    for alias in aliases if isinstance(aliases, list) else [aliases]:
        add_xver(organization, "stu3", "Organization.alias", "valueString", alias)
    for endpoint in items(organization.pop("endpoint", None)):
        add_xver(organization, "stu3", "Organization.endpoint", "valueReference", endpoint)
    return organization


def dstu2_to_stu3(organization: Resource) -> Resource:
    """DSTU2 Organization → STU3: type becomes a list; carried STU3 elements restored."""
    prune_empty_twins(organization)  # stripped fhir_comments leave empty "_x" objects
    first = organization.pop("type", None)
    types = ([first] if isinstance(first, dict) else []) + take_all_xver(
        organization, "stu3", "Organization.type"
    )
    if types:
        organization["type"] = types
    for key, path in (("alias", "Organization.alias"), ("endpoint", "Organization.endpoint")):
        carried = take_all_xver(organization, "stu3", path)
        if carried:
            organization[key] = carried
    _all_elements(organization, "dstu2", "stu3")
    return organization
