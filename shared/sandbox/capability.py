"""The sandbox's R4 CapabilityStatement, generated from what its store really searches.

The search parameters come from ``shared.sandbox.query`` so the statement cannot promise a
parameter the store refuses. ``shared.proxy.capabilities.detect`` reads the ``batch`` system
interaction and the ``_sort`` parameters from it, so a tenant mapped to the sandbox needs no
overrides.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from shared.fhir.catalog import RESOURCE_TYPES
from shared.fhir.versions import FhirVersion
from shared.metadata import SOFTWARE_NAME, SOFTWARE_VERSION
from shared.sandbox.query import DATED_TYPES, DEFAULT_COUNT, MAX_COUNT, SEARCH_PARAMETERS

# CapabilityStatement.date is when the statement last changed: bump it with what it declares.
STATEMENT_DATE: Final = "2026-11-29"
_SEARCH_PARAMETER_BASE: Final = "http://hl7.org/fhir/SearchParameter/"
_INTERACTIONS: Final = ("read", "search-type", "create", "update", "delete")

# Ids of the official R4 SearchParameters behind each parameter: the catalogue's, and
# Resource-id for the _id of every type; tests/integration/test_sandbox_api.py checks them
# against that bundle (search-parameters.json of 4.0.1).
_DEFINITIONS: Final = {
    (t.name, param.name): param.definitions[FhirVersion.R4]
    for t in RESOURCE_TYPES
    if t.sandbox
    for param in t.search
    if param.sandbox
}
_ID_DEFINITION: Final = "Resource-id"


def capability_statement(base_url: str) -> dict[str, Any]:
    """The sandbox's CapabilityStatement, naming ``base_url`` as its implementation."""
    return {
        "resourceType": "CapabilityStatement",
        "name": "EHRBridgeSandbox",
        "title": f"{SOFTWARE_NAME} sandbox FHIR server",
        "status": "active",
        "date": STATEMENT_DATE,
        "publisher": SOFTWARE_NAME,
        "kind": "instance",
        "software": {"name": f"{SOFTWARE_NAME} sandbox", "version": SOFTWARE_VERSION},
        "implementation": {
            "description": f"{SOFTWARE_NAME}'s built-in sandbox R4 provider (synthetic data only)",
            "url": base_url,
        },
        "fhirVersion": FhirVersion.R4.fhir_version,
        "format": ["json", "application/fhir+json"],
        "rest": [
            {
                "mode": "server",
                "documentation": _DOCUMENTATION,
                "security": {
                    "cors": False,
                    "service": [{"text": "Bearer API key"}],
                    "description": (
                        "Send the sandbox API key (secret sandbox-api-key) as "
                        "Authorization: Bearer <key>. Only this metadata is open."
                    ),
                },
                "resource": [_resource(t, params) for t, params in SEARCH_PARAMETERS.items()],
                "interaction": [{"code": "batch"}],
            }
        ],
    }


_DOCUMENTATION: Final = (
    f"{SOFTWARE_NAME} sandbox: a small R4 server holding synthetic patients for trying the "
    "Patients app end to end. Every search may also be sent as POST [type]/_search with a form "
    f"body and answers a Bundle with total; _count defaults to {DEFAULT_COUNT} (at most "
    f"{MAX_COUNT}) and _offset pages. Searches of a patient's records need patient (or _id). "
    "Parameters not listed are refused with 400, never ignored. POST a batch Bundle to the base "
    "to run several interactions; transactions and history are not supported."
)


def _resource(resource_type: str, params: Mapping[str, str]) -> dict[str, Any]:
    search = [_search_param(resource_type, name, kind) for name, kind in params.items()]
    if resource_type in DATED_TYPES:
        # _sort is a result parameter, not a SearchParameter; declared as "special" because
        # this is where clients (and shared.proxy.capabilities) look for sort support.
        search.append(
            {
                "name": "_sort",
                "type": "special",
                "documentation": "date or -date (newest first).",
            }
        )
    return {
        "type": resource_type,
        "interaction": [{"code": code} for code in _INTERACTIONS],
        "versioning": "versioned",
        "readHistory": False,
        "updateCreate": True,
        "searchParam": search,
    }


def _search_param(resource_type: str, name: str, kind: str) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name}
    definition = _DEFINITIONS.get((resource_type, name), _ID_DEFINITION if name == "_id" else None)
    if definition:
        out["definition"] = _SEARCH_PARAMETER_BASE + definition
    out["type"] = kind
    return out
