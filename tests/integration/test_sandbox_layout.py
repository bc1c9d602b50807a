"""The sandbox's layout on Azurite: patient charts spread over chart tables, ids in the locator,
and data of the earlier one-table layout migrated (shared/sandbox/store.py, migrate.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from shared.sandbox.errors import LayoutOutdated
from shared.sandbox.layout import chart_shard, v1_lookup_partition
from shared.sandbox.migrate import migrate
from shared.sandbox.store import SandboxStore, _entity, _stamped
from shared.tables import AzureEntityTable, StoreUnavailable
from tests.support.sandbox import QuerySpy, all_rows, condition, observation, patient

SHARDS = 4


@pytest.fixture
def tables(azurite: str) -> Iterator[dict[str, Any]]:
    """A main table, a locator table and four chart tables, each new, deleted after."""
    from azure.data.tables import TableServiceClient

    service = TableServiceClient.from_connection_string(azurite)
    prefix = f"t{uuid.uuid4().hex[:12]}"
    names = {
        "main": f"{prefix}main",
        "locator": f"{prefix}loc",
        **{f"chart{n}": f"{prefix}chart{n}" for n in range(SHARDS)},
    }
    clients = {role: service.create_table(name) for role, name in names.items()}
    yield clients
    for name in names.values():
        service.delete_table(name)


def store_on(
    tables: dict[str, Any], chart: type[AzureEntityTable] = AzureEntityTable
) -> SandboxStore:
    return SandboxStore(
        AzureEntityTable(tables["main"]),
        charts=[chart(tables[f"chart{n}"]) for n in range(SHARDS)],
        locator=AzureEntityTable(tables["locator"]),
    )


class CutOff(AzureEntityTable):
    """A chart table whose transactions stop being answered after the first one."""

    answered = 0

    def upsert_batch(self, entities: Any) -> None:
        if CutOff.answered >= 1:
            raise StoreUnavailable("cut off")
        CutOff.answered += 1
        super().upsert_batch(entities)


def chart(patient_id: str) -> list[dict[str, Any]]:
    return [
        patient(patient_id),
        observation(patient_id, f"{patient_id}-obs-1"),
        observation(patient_id, f"{patient_id}-obs-2"),
        condition(patient_id, f"{patient_id}-cond-1"),
    ]


def write_layout_1(table: Any, resources: list[dict[str, Any]]) -> None:
    """Rows as the earlier layout wrote them: all in one table, one lookup row per id."""
    for resource in resources:
        stamped = _stamped(resource, resource["id"], "1", "2024-01-01T00:00:00.000Z")
        entity, patient_id = _entity(stamped)
        table.upsert_entity(
            {"PartitionKey": entity.partition_key, "RowKey": entity.row_key, **entity.properties}
        )
        if patient_id is not None:
            table.upsert_entity(
                {
                    "PartitionKey": v1_lookup_partition(resource["resourceType"]),
                    "RowKey": resource["id"],
                    "patient": patient_id,
                }
            )


def test_each_patients_chart_lives_in_the_one_chart_table_its_id_names(tables):
    store = store_on(tables)
    patients = [f"p{n}" for n in range(12)]
    store.load([r for p in patients for r in chart(p)])
    for shard in range(SHARDS):
        partitions = {row["PartitionKey"] for row in all_rows(tables[f"chart{shard}"])}
        expected = {f"patient-{p}" for p in patients if chart_shard(p, SHARDS) == shard}
        assert partitions == expected
    main = {row["PartitionKey"] for row in all_rows(tables["main"])}
    assert main == {"res-Patient"}


def test_a_search_by_patient_queries_only_its_chart_table(tables):
    store = store_on(tables)
    store.load(chart("p1") + chart("p2"))
    spies = [QuerySpy(tables[f"chart{n}"]) for n in range(SHARDS)]
    spied = SandboxStore(
        AzureEntityTable(tables["main"]),
        charts=[AzureEntityTable(spy) for spy in spies],
        locator=AzureEntityTable(tables["locator"]),
    )
    page = spied.search("Observation", [("patient", "p1")])
    assert sorted(r["id"] for r in page.resources) == ["p1-obs-1", "p1-obs-2"]
    queried = [n for n, spy in enumerate(spies) if spy.queries]
    assert queried == [chart_shard("p1", SHARDS)]
    assert len(spies[queried[0]].queries) == 1  # rows read whole: no second query for the page


def test_a_read_by_id_finds_its_patient_through_the_locator(tables):
    store = store_on(tables)
    store.load(chart("p7"))
    assert store.read("Observation", "p7-obs-2")["subject"]["reference"] == "Patient/p7"


def test_data_of_the_earlier_layout_is_refused_until_it_is_migrated(tables):
    write_layout_1(tables["main"], chart("p1"))
    with pytest.raises(LayoutOutdated):
        store_on(tables).read("Patient", "p1")


def test_a_migration_moves_the_earlier_layout_and_everything_reads_back(tables):
    write_layout_1(tables["main"], chart("p1") + chart("p2"))
    store = store_on(tables)
    report = migrate(store)
    assert (report.located, report.moved) == (6, 6)
    assert store.read("Observation", "p2-obs-1")["id"] == "p2-obs-1"
    page = store.search("Condition", [("patient", "p1")])
    assert [r["id"] for r in page.resources] == ["p1-cond-1"]
    main = {row["PartitionKey"] for row in all_rows(tables["main"])}
    assert main == {"res-Patient"}


def test_a_migration_stopped_part_way_is_finished_by_running_it_again(tables):
    write_layout_1(tables["main"], chart("p1") + chart("p2") + chart("p3"))
    CutOff.answered = 0
    with pytest.raises(StoreUnavailable):
        migrate(store_on(tables, chart=CutOff))
    with pytest.raises(LayoutOutdated):
        store_on(tables).read("Patient", "p1")
    store = store_on(tables)
    migrate(store)
    for p in ("p1", "p2", "p3"):
        assert len(store.search("Observation", [("patient", p)]).resources) == 2


def test_migrating_data_of_this_layout_changes_nothing(tables):
    store = store_on(tables)
    store.load(chart("p1"))
    before = {role: all_rows(table) for role, table in tables.items()}
    report = migrate(store)
    assert (report.located, report.moved) == (0, 0)
    assert {role: all_rows(table) for role, table in tables.items()} == before
