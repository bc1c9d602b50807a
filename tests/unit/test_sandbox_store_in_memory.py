"""The sandbox store over the ``EntityTable`` seam, on the in-memory table: no Azurite needed.

The store's behaviour against Table Storage itself is tests/integration/test_sandbox_store.py;
these show that the store needs nothing beyond the seam (tests/support/memory_table.py).
"""

from __future__ import annotations

import pytest

from shared.sandbox.errors import ResourceNotFound
from shared.sandbox.locator import Locator, Place
from shared.sandbox.store import SandboxStore
from tests.support.memory_table import MemoryEntityTable
from tests.support.sandbox import condition, encounter, observation, patient


@pytest.fixture
def table() -> MemoryEntityTable:
    return MemoryEntityTable()


@pytest.fixture
def store(table: MemoryEntityTable) -> SandboxStore:
    return SandboxStore(table)


def test_a_created_resource_reads_back_and_a_deleted_one_is_gone(store: SandboxStore) -> None:
    stored = store.create(patient(family="Black"))
    assert store.read("Patient", stored["id"]) == stored
    store.delete("Patient", stored["id"])
    with pytest.raises(ResourceNotFound):
        store.read("Patient", stored["id"])


def test_an_update_moves_a_chart_resource_to_its_new_patient(
    store: SandboxStore, table: MemoryEntityTable
) -> None:
    store.update("Observation", "hr-1", observation("p1", "hr-1"))
    moved, created = store.update("Observation", "hr-1", observation("p2", "hr-1"))
    assert (created, moved["meta"]["versionId"]) == (False, "2")
    assert table.query_partition("patient-p1") == []
    [row] = table.query_partition("patient-p2")
    assert row.row_key == "Observation|hr-1"
    assert Locator(table).find("Observation", "hr-1") == Place("p2")


def test_a_loaded_chart_is_searched_by_patient_newest_first(store: SandboxStore) -> None:
    store.load(
        [
            patient("p1"),
            observation("p1", "hr-1", effective="2024-05-01T10:00:00Z"),
            observation("p1", "hr-2", effective="2024-05-03T10:00:00Z"),
            observation("p2", "hr-9", effective="2024-06-01T10:00:00Z"),
            encounter("p1", "enc-1"),
            condition("p1", "cond-1"),
        ]
    )
    page = store.search("Observation", [("patient", "p1"), ("_sort", "-date")])
    assert [r["id"] for r in page.resources] == ["hr-2", "hr-1"]
    assert page.total == 2


def test_patients_are_searched_by_family_with_the_server_side_filter(store: SandboxStore) -> None:
    store.load([patient("p1", family="Black"), patient("p2", family="White")])
    page = store.search("Patient", [("family", "bla")])
    assert [r["id"] for r in page.resources] == ["p1"]
