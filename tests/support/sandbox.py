"""Helpers for sandbox tests: a store on a fresh Azurite table, a query spy, R4 builders.

Use the fixtures by binding them in the test module (pytest finds fixtures among its names)::

    from tests.support import sandbox as support

    sandbox_store = support.sandbox_store  # a fixture

    def test_something(sandbox_store: SandboxStore) -> None:
        stored = sandbox_store.create(support.patient(family="Black"))

(``from tests.support.sandbox import sandbox_store`` works too, but ruff then flags each test
argument of that name as F811; ``pytest_plugins`` makes pytest warn that it cannot rewrite
this module's asserts.)

- ``sandbox_table``: a TableClient on a new, uniquely named table in the session's Azurite,
  deleted after the test (tests never share rows, so they run in parallel).
- ``sandbox_store``: a ``SandboxStore`` on that table (through ``AzureEntityTable``).
- ``fresh_table(connection_string)``: the same as a context manager, for tools and benchmarks.
- ``QuerySpy``: wraps a TableClient and records every ``query_entities`` filter and parameters
  (the store reaches it through ``AzureEntityTable``).
- ``all_rows(table)``: every entity in a table (to prove what was, or was not, written).
- builders (``patient``, ``observation``, ``encounter``, ``condition``, ``allergy``,
  ``medication_request``, ``coverage``, ``location``, ``practitioner``, ``organization``):
  small, valid, hand-written R4 resources; keyword arguments replace or add elements.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from shared.sandbox.store import SandboxStore
from shared.tables import AzureEntityTable

MRN_TYPE = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}
MRN_SYSTEM = "urn:oid:1.2.36.146.595.217.0.1"
CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
LOINC = "http://loinc.org"


@contextlib.contextmanager
def fresh_table(connection_string: str) -> Iterator[Any]:
    """A TableClient on a new, uniquely named table, deleted on exit."""
    from azure.data.tables import TableServiceClient

    service = TableServiceClient.from_connection_string(connection_string)
    name = f"sandbox{uuid.uuid4().hex}"
    table = service.create_table(name)
    try:
        yield table
    finally:
        service.delete_table(name)


@pytest.fixture
def sandbox_table(azurite: str) -> Iterator[Any]:
    """A TableClient on a fresh table in Azurite."""
    with fresh_table(azurite) as table:
        yield table


@pytest.fixture
def sandbox_store(sandbox_table: Any) -> SandboxStore:
    """A SandboxStore on a fresh table in Azurite."""
    return SandboxStore(AzureEntityTable(sandbox_table))


class QuerySpy:
    """A TableClient stand-in that records each query's filter and parameters, then runs it."""

    def __init__(self, table: Any) -> None:
        self._table = table
        self.queries: list[tuple[str, dict[str, Any]]] = []

    def query_entities(self, query_filter: str, **kwargs: Any) -> Any:
        """Record the query, then delegate it."""
        self.queries.append((query_filter, dict(kwargs.get("parameters") or {})))
        return self._table.query_entities(query_filter, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)


def all_rows(table: Any) -> list[dict[str, Any]]:
    """Every entity in ``table`` but the layout marker (which says how data is laid out)."""
    marker = ("layout", "version")
    return [
        dict(row) for row in table.list_entities() if (row["PartitionKey"], row["RowKey"]) != marker
    ]


def _resource(
    resource_type: str,
    resource_id: str | None,
    defaults: dict[str, Any],
    overrides: dict[str, Any],
) -> dict[str, Any]:
    """A resource of ``defaults`` replaced by ``overrides``; None values are left out."""
    resource: dict[str, Any] = {"resourceType": resource_type}
    if resource_id is not None:
        resource["id"] = resource_id
    for key, value in {**defaults, **overrides}.items():
        if value is not None:
            resource[key] = value
    return resource


def patient(
    resource_id: str | None = None,
    *,
    family: str | None = "Black",
    given: tuple[str, ...] = ("Ruth",),
    gender: str | None = "female",
    birth_date: str | None = "1970-03-12",
    mrn: str | None = "MRN-1001",
    **elements: Any,
) -> dict[str, Any]:
    """A Patient with an official name, gender, birth date and an MRN identifier."""
    name: dict[str, Any] = {"use": "official"}
    if family is not None:
        name["family"] = family
    if given:
        name["given"] = list(given)
    identifier = [{"type": MRN_TYPE, "system": MRN_SYSTEM, "value": mrn}] if mrn else None
    return _resource(
        "Patient",
        resource_id,
        dict(
            identifier=identifier,
            name=[name],
            gender=gender,
            birthDate=birth_date,
        ),
        elements,
    )


def observation(
    patient_id: str,
    resource_id: str | None = None,
    *,
    code: str = "8867-4",
    category: str | None = "vital-signs",
    effective: str | None = "2024-05-01T10:00:00Z",
    value: float = 72,
    **elements: Any,
) -> dict[str, Any]:
    """A vital-signs Observation (heart rate by default) of ``patient_id``."""
    categories = [{"coding": [{"system": CATEGORY_SYSTEM, "code": category}]}] if category else None
    return _resource(
        "Observation",
        resource_id,
        dict(
            status="final",
            category=categories,
            code={"coding": [{"system": LOINC, "code": code, "display": "Heart rate"}]},
            subject={"reference": f"Patient/{patient_id}"},
            effectiveDateTime=effective,
            valueQuantity={
                "value": value,
                "unit": "/min",
                "system": "http://unitsofmeasure.org",
                "code": "/min",
            },
        ),
        elements,
    )


def encounter(
    patient_id: str,
    resource_id: str | None = None,
    *,
    start: str | None = "2024-05-01T09:00:00Z",
    **elements: Any,
) -> dict[str, Any]:
    """A finished ambulatory Encounter of ``patient_id`` starting at ``start``."""
    return _resource(
        "Encounter",
        resource_id,
        dict(
            status="finished",
            **{
                "class": {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": "AMB",
                }
            },
            type=[{"coding": [{"system": "http://snomed.info/sct", "code": "185349003"}]}],
            subject={"reference": f"Patient/{patient_id}"},
            period={"start": start} if start else None,
        ),
        elements,
    )


def condition(
    patient_id: str,
    resource_id: str | None = None,
    *,
    recorded: str | None = "2024-01-15",
    **elements: Any,
) -> dict[str, Any]:
    """A Condition (hypertension) of ``patient_id`` recorded on ``recorded``."""
    return _resource(
        "Condition",
        resource_id,
        dict(
            code={"coding": [{"system": "http://snomed.info/sct", "code": "38341003"}]},
            subject={"reference": f"Patient/{patient_id}"},
            recordedDate=recorded,
        ),
        elements,
    )


def allergy(
    patient_id: str,
    resource_id: str | None = None,
    *,
    recorded: str | None = "2023-06-01",
    **elements: Any,
) -> dict[str, Any]:
    """An AllergyIntolerance (penicillin) of ``patient_id``."""
    return _resource(
        "AllergyIntolerance",
        resource_id,
        dict(
            code={"text": "Penicillin"},
            patient={"reference": f"Patient/{patient_id}"},
            recordedDate=recorded,
        ),
        elements,
    )


def medication_request(
    patient_id: str,
    resource_id: str | None = None,
    *,
    authored: str | None = "2024-02-01",
    **elements: Any,
) -> dict[str, Any]:
    """An active MedicationRequest of ``patient_id`` authored on ``authored``."""
    return _resource(
        "MedicationRequest",
        resource_id,
        dict(
            status="active",
            intent="order",
            medicationCodeableConcept={"text": "Lisinopril 10 mg"},
            subject={"reference": f"Patient/{patient_id}"},
            authoredOn=authored,
        ),
        elements,
    )


def coverage(patient_id: str, resource_id: str | None = None, **elements: Any) -> dict[str, Any]:
    """An active Coverage whose beneficiary is ``patient_id``."""
    return _resource(
        "Coverage",
        resource_id,
        dict(
            status="active",
            beneficiary={"reference": f"Patient/{patient_id}"},
            payor=[{"display": "Acme Health"}],
        ),
        elements,
    )


def location(resource_id: str | None = None, **elements: Any) -> dict[str, Any]:
    """A Location (a ward)."""
    return _resource("Location", resource_id, {"name": "Ward 3"}, elements)


def practitioner(resource_id: str | None = None, **elements: Any) -> dict[str, Any]:
    """A Practitioner."""
    return _resource("Practitioner", resource_id, {"name": [{"family": "Osler"}]}, elements)


def organization(resource_id: str | None = None, **elements: Any) -> dict[str, Any]:
    """An Organization."""
    return _resource("Organization", resource_id, {"name": "Acme Health"}, elements)
