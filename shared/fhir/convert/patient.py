"""Patient between R4, STU3 and DSTU2 (§3); its identifiers, names, telecoms, addresses and
references follow the data-type rules in datatypes.py (§2.3, §2.5). Section numbers (§) refer
to docs/conversion/mapping.md. Decisions: docs/conversion/patient.md.
"""

from __future__ import annotations

from collections.abc import Mapping

from shared.fhir.convert.common import (
    Resource,
    add_xver,
    items,
    narrow_reference,
    prune_empty_twins,
    rename,
    restore_reference,
    take_xver,
)
from shared.fhir.convert.datatypes import convert_elements

_FIELDS = {
    "identifier": "Identifier",
    "name": "HumanName",
    "telecom": "ContactPoint",
    "address": "Address",
    "managingOrganization": "Reference",
    "generalPractitioner": "Reference",
    "careProvider": "Reference",
}
_CONTACT_FIELDS = {
    "name": "HumanName",
    "telecom": "ContactPoint",
    "address": "Address",
    "organization": "Reference",
}
_LINK_FIELDS = {"other": "Reference"}

# Allowed reference targets in the older release of a step (§3.1).
_GP_TARGETS_STU3 = frozenset({"Organization", "Practitioner"})
_LINK_TARGETS_DSTU2 = frozenset({"Patient"})

# STU3/R4 link.type → DSTU2 (§3.1). DSTU2's "replace" says the resource holding the link must
# no longer be used: it is STU3's "replaced-by". The surviving record's "replaces" has no DSTU2
# code; "seealso" (in use and valid, the other holds data about the same person) is what
# DSTU2 can say of it without declaring the survivor obsolete (HL7's map copies the code).
_LINK_TYPE_DSTU2 = {"replaced-by": "replace", "replaces": "seealso"}
_LINK_TYPE_STU3 = {"replace": "replaced-by"}  # DSTU2's "replace" points forward (HAPI agrees)

# The official R4 extension that replaced Patient.animal (§3.1).
_ANIMAL = "http://hl7.org/fhir/StructureDefinition/patient-animal"
_ANIMAL_PARTS = ("species", "breed", "genderStatus")


def _all_elements(patient: Resource, source: str, target: str) -> None:
    convert_elements(patient, _FIELDS, source, target)
    for contact in items(patient.get("contact")):
        convert_elements(contact, _CONTACT_FIELDS, source, target)
    for link in items(patient.get("link")):
        convert_elements(link, _LINK_FIELDS, source, target)


def _animal_from_extension(patient: Resource) -> None:
    extensions = patient.get("extension")
    if not isinstance(extensions, list):
        return
    for extension in [e for e in extensions if isinstance(e, dict) and e.get("url") == _ANIMAL]:
        extensions.remove(extension)
        parts = {
            part["url"]: part["valueCodeableConcept"]
            for part in items(extension.get("extension"))
            if part.get("url") in _ANIMAL_PARTS and "valueCodeableConcept" in part
        }
        if parts:
            patient["animal"] = parts
    if not extensions:
        patient.pop("extension")


def _animal_to_extension(patient: Resource) -> None:
    animal = patient.pop("animal", None)
    if not isinstance(animal, dict):
        return
    parts = [
        {"url": part, "valueCodeableConcept": animal[part]}
        for part in _ANIMAL_PARTS
        if part in animal
    ]
    patient.setdefault("extension", []).append({"url": _ANIMAL, "extension": parts})


def _link_types(patient: Resource, table: Mapping[str, str], source: str, target: str) -> None:
    for link in items(patient.get("link")):
        if source == "stu3":
            if link.get("type") in table:
                if link["type"] == "replaces":  # replaced-by comes back from replace alone
                    add_xver(link, "stu3", "Patient.link.type", "valueCode", link["type"])
                link["type"] = table[link["type"]]
            narrow_reference(link.get("other"), _LINK_TARGETS_DSTU2, "stu3")
        else:
            restored = take_xver(link, "stu3", "Patient.link.type")
            link["type"] = restored or table.get(link.get("type", ""), link.get("type"))
            restore_reference(link.get("other"), "stu3")


def r4_to_stu3(patient: Resource) -> Resource:
    """R4 Patient → STU3: patient-animal extension → animal; GP PractitionerRole narrowed."""
    _animal_from_extension(patient)
    _all_elements(patient, "r4", "stu3")
    for reference in items(patient.get("generalPractitioner")):
        narrow_reference(reference, _GP_TARGETS_STU3, "r4")
    return patient


def stu3_to_r4(patient: Resource) -> Resource:
    """STU3 Patient → R4: animal → patient-animal extension; carried codes restored."""
    for reference in items(patient.get("generalPractitioner")):
        restore_reference(reference, "r4")
    _animal_to_extension(patient)
    _all_elements(patient, "stu3", "r4")
    return patient


def stu3_to_dstu2(patient: Resource) -> Resource:
    """STU3 Patient → DSTU2: generalPractitioner → careProvider, family as a list."""
    _link_types(patient, _LINK_TYPE_DSTU2, "stu3", "dstu2")
    _all_elements(patient, "stu3", "dstu2")
    rename(patient, [("generalPractitioner", "careProvider")])
    return patient


def dstu2_to_stu3(patient: Resource) -> Resource:
    """DSTU2 Patient → STU3: careProvider → generalPractitioner, family list joined."""
    prune_empty_twins(patient)
    rename(patient, [("careProvider", "generalPractitioner")])
    _all_elements(patient, "dstu2", "stu3")
    _link_types(patient, _LINK_TYPE_STU3, "dstu2", "stu3")
    return patient
