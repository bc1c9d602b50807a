"""The FHIR releases, defined once (shared/fhir/versions.py), and the places that spell them."""

from __future__ import annotations

import json

import pytest

from shared import settings, tenants
from shared.fhir import convert
from shared.fhir.convert.common import add_xver
from shared.fhir.versions import VERSIONS, FhirVersion, version_of
from shared.metadata import capability_statement
from shared.proxy.conversion import LABELS


def test_the_releases_oldest_first_with_their_labels_and_published_numbers() -> None:
    assert [(v.value, v.label, v.fhir_version, v.release) for v in VERSIONS] == [
        ("dstu2", "DSTU2", "1.0.2", "1.0"),
        ("stu3", "STU3", "3.0.2", "3.0"),
        ("r4", "R4", "4.0.1", "4.0"),
    ]


def test_a_version_is_the_plain_string_routes_settings_and_tables_use() -> None:
    assert FhirVersion("stu3") is FhirVersion.STU3
    assert FhirVersion.STU3 == "stu3" and hash(FhirVersion.STU3) == hash("stu3")
    assert f"/fhir/{FhirVersion.DSTU2}" == "/fhir/dstu2"
    assert json.dumps({FhirVersion.R4: [FhirVersion.R4]}) == '{"r4": ["r4"]}'


def test_every_set_of_versions_is_the_one_set() -> None:
    assert settings.FACES == VERSIONS
    assert tenants.FHIR_VERSIONS == VERSIONS
    assert convert.VERSIONS == VERSIONS
    assert set(LABELS) == set(VERSIONS)


@pytest.mark.parametrize("version", VERSIONS)
def test_each_face_publishes_its_releases_number(version: FhirVersion) -> None:
    statement = capability_statement(
        version, "https://bridge.example/token", software_version="1", published="2026-01-01"
    )
    assert statement["fhirVersion"] == version.fhir_version
    assert f"FHIR {version.label} face" in statement["implementation"]["description"]


@pytest.mark.parametrize(
    ("fhir_version", "expected"),
    [
        ("1.0.2", FhirVersion.DSTU2),
        ("1.0.0", FhirVersion.DSTU2),
        ("3.0.1", FhirVersion.STU3),
        ("3.0.2", FhirVersion.STU3),
        ("4.0.0", FhirVersion.R4),
        ("4.0.1", FhirVersion.R4),
        ("4.3.0", None),
        ("5.0.0", None),
        ("4.0", None),
        ("40.1", None),
        ("", None),
        (4.0, None),
        (None, None),
    ],
)
def test_a_providers_fhir_version_names_its_release(fhir_version: object, expected: object) -> None:
    assert version_of(fhir_version) == expected


def test_cross_version_extensions_name_the_release_the_value_came_from() -> None:
    for version in VERSIONS:
        holder: dict[str, object] = {}
        add_xver(holder, version, "Patient.x", "valueCode", "c")
        assert holder["extension"] == [
            {
                "url": f"http://hl7.org/fhir/{version.release}/StructureDefinition/"
                "extension-Patient.x",
                "valueCode": "c",
            }
        ]
