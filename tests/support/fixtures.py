"""The shared fixtures (../shared/fixtures) as pytest parameters for conversion tests."""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

import pytest

from shared.fhir.convert import VERSIONS
from tests.support.paths import FIXTURES

# Prefixes of HL7's cross-version extension URLs, by the release an element comes from.
XVER_DSTU2 = "http://hl7.org/fhir/1.0/StructureDefinition/extension-"
XVER_STU3 = "http://hl7.org/fhir/3.0/StructureDefinition/extension-"
XVER_R4 = "http://hl7.org/fhir/4.0/StructureDefinition/extension-"

# HAPI's converter test files end in the release: 10 = DSTU2, 30 = STU3, 40 = R4.
HAPI_VERSIONS = {"10": "dstu2", "30": "stu3", "40": "r4"}


@functools.cache
def _documents() -> tuple[tuple[str, str, dict[str, Any]], ...]:
    """(version, label, resource): HL7 examples, Synthea bundles and each of their entries,
    and HAPI's converter inputs (not its expected outputs, which carry known defects)."""
    found: list[tuple[str, str, dict[str, Any]]] = []
    for version in VERSIONS:
        for path in sorted((FIXTURES / "hl7-examples" / version).glob("*.json")):
            found.append((version, f"{version}/{path.name}", json.loads(path.read_text())))
        for path in sorted((FIXTURES / "synthea" / version).glob("*.json")):
            bundle = json.loads(path.read_text())
            label = f"synthea/{version}/{path.stem[:20]}"
            found.append((version, label, bundle))
            for index, entry in enumerate(bundle["entry"]):
                found.append((version, f"{label}#{index}", entry["resource"]))
    for path in sorted((FIXTURES / "hapi-converter-pairs").glob("*.json")):
        if path.stem[-2:] in HAPI_VERSIONS and "converted" not in path.stem:
            version = HAPI_VERSIONS[path.stem[-2:]]
            found.append((version, f"hapi/{path.name}", json.loads(path.read_text())))
    return tuple(found)


def fixtures_of(*resource_types: str) -> list[Any]:
    """pytest params (source, target, resource): every fixture of the types, paired with every
    other version; each param gets its own copy."""
    return [
        pytest.param(version, target, copy.deepcopy(resource), id=f"{label}->{target}")
        for version, label, resource in _documents()
        if resource.get("resourceType") in resource_types
        for target in VERSIONS
        if target != version
    ]
