"""The repository's FHIR test documents (tests/data, the demo's Synthea R4 bundles) as pytest
parameters for conversion tests."""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import pytest

from shared.fhir.convert import VERSIONS
from tools.testkit.data import HAPI_PAIRS, HL7_EXAMPLES, SYNTHEA, data_file, data_files

# Prefixes of HL7's cross-version extension URLs, by the release an element comes from.
XVER_DSTU2 = "http://hl7.org/fhir/1.0/StructureDefinition/extension-"
XVER_STU3 = "http://hl7.org/fhir/3.0/StructureDefinition/extension-"
XVER_R4 = "http://hl7.org/fhir/4.0/StructureDefinition/extension-"

# HAPI's converter test files end in the release: 10 = DSTU2, 30 = STU3, 40 = R4.
HAPI_VERSIONS = {"10": "dstu2", "30": "stu3", "40": "r4"}


def hl7_example_files(version: str) -> list[Path]:
    """HL7's example resources of one release."""
    return data_files(HL7_EXAMPLES / version)


def synthea_files(version: str) -> list[Path]:
    """The Synthea bundles of one release."""
    return data_files(SYNTHEA[version], "*.json")


def hapi_files(*, expected: bool = True) -> list[tuple[str, Path]]:
    """(version, path) of HAPI's converter files; ``expected=False`` keeps only its inputs."""
    return [
        (HAPI_VERSIONS[path.stem[-2:]], path)
        for path in data_files(HAPI_PAIRS)
        if expected or "converted" not in path.stem
    ]


def documents() -> tuple[tuple[str, str, dict[str, Any]], ...]:
    """(version, label, resource) of every test document (shared: never change them)."""
    return _documents()


@functools.cache
def _documents() -> tuple[tuple[str, str, dict[str, Any]], ...]:
    """(version, label, resource): HL7 examples, Synthea bundles and each of their entries,
    and HAPI's converter inputs (not its expected outputs, which carry known defects)."""
    found: list[tuple[str, str, dict[str, Any]]] = []
    for version in VERSIONS:
        for path in hl7_example_files(version):
            found.append((version, f"{version}/{path.name}", json.loads(path.read_text())))
        for path in synthea_files(version):
            bundle = json.loads(path.read_text())
            label = f"synthea/{version}/{path.stem[:20]}"
            found.append((version, label, bundle))
            for index, entry in enumerate(bundle["entry"]):
                found.append((version, f"{label}#{index}", entry["resource"]))
    for version, path in hapi_files(expected=False):
        found.append((version, f"hapi/{path.name}", json.loads(path.read_text())))
    return tuple(found)


def fixtures_of(*resource_types: str) -> list[Any]:
    """pytest params (source, target, resource): every fixture of the types, paired with every
    other version; each param gets its own copy. Never empty: no document of the types raises."""
    params = [
        pytest.param(version, target, copy.deepcopy(resource), id=f"{label}->{target}")
        for version, label, resource in _documents()
        if resource.get("resourceType") in resource_types
        for target in VERSIONS
        if target != version
    ]
    if not params:
        raise LookupError(f"no test document of type {', '.join(resource_types)} in tests/data")
    return params


def hl7_example(version: str, name: str) -> dict[str, Any]:
    """One HL7 example resource, parsed (a fresh copy on every call)."""
    return dict(json.loads(data_file(HL7_EXAMPLES / version / name).read_text()))
