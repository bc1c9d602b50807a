"""Unit tests of the FHIR version converters (shared/fhir/convert)."""
