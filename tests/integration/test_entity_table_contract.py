"""One contract for every ``EntityTable``: ``AzureEntityTable`` on Azurite and the in-memory
fake the unit tests use (``tests/support/memory_table.py``) must behave alike."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.tables import (
    AzureEntityTable,
    Entity,
    EntityChanged,
    EntityExists,
    EntityNotFound,
    EntityTable,
)
from tests.support.memory_table import MemoryEntityTable
from tests.support.sandbox import fresh_table


@pytest.fixture(params=["azurite", "memory"])
def table(request: pytest.FixtureRequest) -> Iterator[EntityTable]:
    if request.param == "memory":
        yield MemoryEntityTable()
        return
    with fresh_table(request.getfixturevalue("azurite")) as client:
        yield AzureEntityTable(client)


def test_a_missing_entity_is_not_found(table: EntityTable) -> None:
    with pytest.raises(EntityNotFound):
        table.get("p", "missing")


def test_create_stores_once_with_an_etag(table: EntityTable) -> None:
    created = table.create(Entity("p", "r", {"name": "Ruth", "n": 3, "flag": True}))
    assert created.etag
    read = table.get("p", "r")
    assert (read.properties, read.etag) == ({"name": "Ruth", "n": 3, "flag": True}, created.etag)
    with pytest.raises(EntityExists):
        table.create(Entity("p", "r", {"name": "Other"}))


def test_replace_holds_only_at_the_etag_it_was_read_with(table: EntityTable) -> None:
    read = table.create(Entity("p", "r", {"v": "1"}))
    replaced = table.replace(Entity("p", "r", {"v": "2"}, read.etag))
    assert replaced.etag != read.etag
    with pytest.raises(EntityChanged):
        table.replace(Entity("p", "r", {"v": "3"}, read.etag))
    assert table.get("p", "r").properties == {"v": "2"}
    with pytest.raises(EntityNotFound):
        table.replace(Entity("p", "gone", {"v": "1"}, read.etag))


def test_delete_of_a_missing_entity_is_no_error_and_a_stale_etag_is(table: EntityTable) -> None:
    table.delete("p", "missing")
    first = table.create(Entity("p", "r", {"v": "1"}))
    table.upsert(Entity("p", "r", {"v": "2"}))
    with pytest.raises(EntityChanged):
        table.delete("p", "r", etag=first.etag)
    table.delete("p", "r")
    with pytest.raises(EntityNotFound):
        table.get("p", "r")


def test_upsert_inserts_and_replaces_whatever_the_etag(table: EntityTable) -> None:
    table.upsert(Entity("p", "r", {"a": "1", "b": "1"}))
    table.upsert(Entity("p", "r", {"a": "2"}))
    assert table.get("p", "r").properties == {"a": "2"}


def test_a_batch_of_one_partition_is_stored_whole(table: EntityTable) -> None:
    table.upsert(Entity("p", "r0", {"v": "old"}))
    table.upsert_batch([Entity("p", f"r{i}", {"v": str(i)}) for i in range(3)])
    assert [(e.row_key, e.properties["v"]) for e in table.query_partition("p")] == [
        ("r0", "0"),
        ("r1", "1"),
        ("r2", "2"),
    ]


def test_a_query_binds_its_values_and_returns_keys_and_the_selected_columns(
    table: EntityTable,
) -> None:
    for pk, rk, props in (
        ("a", "Observation|1", {"fam": "black", "n": 1, "on": True, "j0": "{}"}),
        ("a", "Observation|2", {"fam": "blackwell", "n": 5, "on": False, "j0": "{}"}),
        ("a", "Observation|3", {"n": 9, "j0": "{}"}),
        ("a", "Condition|1", {"fam": "black", "j0": "{}"}),
        ("b", "Observation|1", {"fam": "black", "n": 1, "j0": "{}"}),
    ):
        table.create(Entity(pk, rk, props))
    text = (
        "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi and "
        "( ( fam ge @f and fam lt @g ) or n gt @n )"
    )
    parameters = {"pk": "a", "lo": "Observation|", "hi": "Observation}", "f": "bla", "g": "blb"}
    found = table.query(text, {**parameters, "n": 4}, select=["fam"])
    assert [(e.partition_key, e.row_key, e.properties) for e in found] == [
        ("a", "Observation|1", {"fam": "black"}),
        ("a", "Observation|2", {"fam": "blackwell"}),
        ("a", "Observation|3", {}),
    ]
    flagged = table.query("PartitionKey eq @pk and on eq @on", {"pk": "a", "on": True})
    assert [e.row_key for e in flagged] == ["Observation|1"]
    assert flagged[0].properties["j0"] == "{}"
    # A comparison with a column the row lacks selects nothing, "ne" included.
    assert table.query("fam ne @x", {"x": "nobody"}) == [
        e for e in table.query("PartitionKey ge @a", {"a": ""}) if "fam" in e.properties
    ]


def test_a_batch_of_deletes_removes_every_row_it_names(table: EntityTable) -> None:
    table.upsert_batch([Entity("p", f"r{i}", {"v": str(i)}) for i in range(4)])
    table.delete_batch("p", ["r0", "r2"])
    assert [e.row_key for e in table.query_partition("p")] == ["r1", "r3"]


def test_a_batch_of_deletes_naming_a_missing_row_deletes_nothing(table: EntityTable) -> None:
    table.upsert_batch([Entity("p", f"r{i}", {"v": str(i)}) for i in range(2)])
    with pytest.raises(EntityNotFound):
        table.delete_batch("p", ["r0", "gone"])
    assert [e.row_key for e in table.query_partition("p")] == ["r0", "r1"]


def test_a_batch_keeps_each_value_type_and_awkward_keys(table: EntityTable) -> None:
    properties = {"s": "é'\"\\ ✓", "i": -7, "f": 2.5, "b": True, "big": 2**31 - 1}
    table.upsert_batch([Entity("p'q r", "a'b c%2Fé", properties)])
    assert table.get("p'q r", "a'b c%2Fé").properties == properties


def test_a_query_stops_at_its_limit_in_key_order(table: EntityTable) -> None:
    table.upsert_batch([Entity("p", f"r{i}", {"v": str(i)}) for i in range(5)])
    table.upsert_batch([Entity("o", f"r{i}", {"v": str(i)}) for i in range(2)])
    found = table.query("PartitionKey ge @a", {"a": ""}, limit=3)
    assert [(e.partition_key, e.row_key) for e in found] == [("o", "r0"), ("o", "r1"), ("p", "r0")]


def test_a_written_batch_creates_new_rows_and_replaces_at_their_etags(table: EntityTable) -> None:
    old = table.create(Entity("p", "old", {"v": "1"}))
    table.write_batch([Entity("p", "old", {"v": "2"}, old.etag), Entity("p", "new", {"v": "n"})])
    assert [(e.row_key, e.properties["v"]) for e in table.query_partition("p")] == [
        ("new", "n"),
        ("old", "2"),
    ]


def test_a_written_batch_with_a_stale_etag_writes_nothing(table: EntityTable) -> None:
    old = table.create(Entity("p", "old", {"v": "1"}))
    table.replace(Entity("p", "old", {"v": "elsewhere"}, old.etag))
    with pytest.raises(EntityChanged):
        table.write_batch(
            [Entity("p", "new", {"v": "n"}), Entity("p", "old", {"v": "2"}, old.etag)]
        )
    assert [(e.row_key, e.properties["v"]) for e in table.query_partition("p")] == [
        ("old", "elsewhere")
    ]


def test_a_written_batch_creating_a_row_that_exists_writes_nothing(table: EntityTable) -> None:
    table.create(Entity("p", "taken", {"v": "1"}))
    with pytest.raises(EntityExists):
        table.write_batch([Entity("p", "new", {"v": "n"}), Entity("p", "taken", {"v": "2"})])
    assert [e.row_key for e in table.query_partition("p")] == ["taken"]
