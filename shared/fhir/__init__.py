"""Facts about the FHIR faces that every FHIR-speaking module needs, free of any FHIR library."""

from __future__ import annotations

from typing import Final

from shared.fhir.versions import FhirVersion

# The JSON media type each release defines: STU3 moved to the RFC 6839 structured-syntax suffix,
# DSTU2 clients still expect the older form.
JSON_MIME_TYPES: Final[dict[str, str]] = {
    FhirVersion.DSTU2: "application/json+fhir",
    FhirVersion.STU3: "application/fhir+json",
    FhirVersion.R4: "application/fhir+json",
}

# What we answer in when there is no (valid) face to speak, e.g. a 404 for an unknown face.
DEFAULT_FACE: Final = FhirVersion.R4


def json_mime_type(face: str | None) -> str:
    """The FHIR JSON media type of ``face``; R4's for None or an unknown face."""
    return JSON_MIME_TYPES.get(face or DEFAULT_FACE, JSON_MIME_TYPES[DEFAULT_FACE])
