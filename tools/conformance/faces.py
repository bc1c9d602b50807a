"""How each FHIR version spells what the Patients app reads and sends.

The app reads ``fhirVersion`` and takes its DSTU2 or STU3 code path; an R4 server is checked
in "R4 provider" mode with R4's names (what EHR Bridge sends a provider and reads back).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

MR_SYSTEM_OLD: Final = "http://hl7.org/fhir/v2/0203"
MR_SYSTEM_R4: Final = "http://terminology.hl7.org/CodeSystem/v2-0203"
OAUTH_URIS: Final = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


@dataclass(frozen=True)
class Face:
    """One FHIR version's spellings, as the checker uses them."""

    key: str
    label: str
    statement_type: str
    mime_type: str
    medication_type: str
    practitioner_field: str
    condition_date_field: str
    allergy_date_field: str
    # Result parameters of the app's sorted searches, in this version's syntax.
    observation_sort: tuple[str, str]
    encounter_sort: tuple[str, str]
    # True for the versions the Patients app itself reads.
    app_reads: bool

    @property
    def mode(self) -> str:
        """The report's mode: the face key, or "r4-provider"."""
        return self.key if self.app_reads else "r4-provider"

    @property
    def mr_system(self) -> str:
        """This version's URI of the v2 identifier-type table (code MR)."""
        return MR_SYSTEM_R4 if self.key == "r4" else MR_SYSTEM_OLD


_DESC_DSTU2: Final = ("_sort:desc", "date")
_DESC_STU3: Final = ("_sort", "-date")

DSTU2: Final = Face(
    key="dstu2",
    label="DSTU2",
    statement_type="Conformance",
    mime_type="application/json+fhir",
    medication_type="MedicationOrder",
    practitioner_field="careProvider",
    condition_date_field="dateRecorded",
    allergy_date_field="recordedDate",
    observation_sort=_DESC_DSTU2,
    encounter_sort=_DESC_DSTU2,
    app_reads=True,
)
STU3: Final = Face(
    key="stu3",
    label="STU3",
    statement_type="CapabilityStatement",
    mime_type="application/fhir+json",
    medication_type="MedicationRequest",
    practitioner_field="generalPractitioner",
    condition_date_field="assertedDate",
    allergy_date_field="assertedDate",
    observation_sort=_DESC_STU3,
    # Both interface specifications write the Encounter query in DSTU2's sort syntax.
    encounter_sort=_DESC_DSTU2,
    app_reads=True,
)
R4: Final = Face(
    key="r4",
    label="R4",
    statement_type="CapabilityStatement",
    mime_type="application/fhir+json",
    medication_type="MedicationRequest",
    practitioner_field="generalPractitioner",
    condition_date_field="recordedDate",
    allergy_date_field="recordedDate",
    observation_sort=_DESC_STU3,
    # R4 has no :desc modifier on _sort; EHR Bridge sends R4 providers "_sort=-date".
    encounter_sort=_DESC_STU3,
    app_reads=False,
)

_BY_MAJOR_MINOR: Final = {"1.0": DSTU2, "3.0": STU3, "4.0": R4}


def face_for(fhir_version: object) -> Face | None:
    """The face a ``fhirVersion`` value selects (1.0.x, 3.0.x, 4.0.x), or None."""
    if not isinstance(fhir_version, str):
        return None
    parts = fhir_version.strip().split(".")
    if len(parts) < 2:
        return None
    return _BY_MAJOR_MINOR.get(".".join(parts[:2]))
