"""The FHIR releases EHR Bridge speaks, defined once: each face, provider version and converter
step is one of these.

Plain data and an enum, free of any FHIR library: every module that names a version imports
it, including ``shared.settings`` at cold start.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class FhirVersion(StrEnum):
    """A FHIR release, by the lower-case key used in routes, settings and tenant mappings.

    Members are strings (``FhirVersion.STU3 == "stu3"``), listed oldest first.
    """

    DSTU2 = "dstu2"
    STU3 = "stu3"
    R4 = "r4"

    @property
    def label(self) -> str:
        """How people write the release: DSTU2, STU3, R4."""
        return _LABELS[self]

    @property
    def fhir_version(self) -> str:
        """The ``fhirVersion`` a face of this release publishes (1.0.2, 3.0.2, 4.0.1)."""
        return _PUBLISHED[self]

    @property
    def release(self) -> str:
        """major.minor, as HL7's cross-version extension URLs name the release (1.0, 3.0, 4.0)."""
        return _PUBLISHED[self].rpartition(".")[0]


_LABELS: Final = {FhirVersion.DSTU2: "DSTU2", FhirVersion.STU3: "STU3", FhirVersion.R4: "R4"}
_PUBLISHED: Final = {
    FhirVersion.DSTU2: "1.0.2",
    FhirVersion.STU3: "3.0.2",
    FhirVersion.R4: "4.0.1",
}

VERSIONS: Final[tuple[FhirVersion, ...]] = tuple(FhirVersion)
"""Every release, oldest first."""


def version_of(fhir_version: object) -> FhirVersion | None:
    """The release a ``fhirVersion`` string names (1.0.x, 3.0.x, 4.0.x); None for anything else."""
    if isinstance(fhir_version, str):
        for version in VERSIONS:
            if fhir_version.startswith(version.release + "."):
                return version
    return None
