"""Rows of one partition cut into the chunks one entity-group transaction takes."""

from __future__ import annotations

from shared.sandbox.layout import (
    MAX_BATCH_BYTES,
    MAX_BATCH_OPERATIONS,
    entity_bytes,
    transactions,
)
from shared.tables import Entity


def rows(count: int, chars: int = 1) -> list[Entity]:
    return [Entity("p", f"r{n:05d}", {"j0": "x" * chars}) for n in range(count)]


def test_at_most_a_hundred_rows_go_in_one_transaction_in_their_order():
    chunks = transactions(rows(250))
    assert [len(chunk) for chunk in chunks] == [MAX_BATCH_OPERATIONS, MAX_BATCH_OPERATIONS, 50]
    assert [e.row_key for chunk in chunks for e in chunk] == [e.row_key for e in rows(250)]


def test_large_rows_are_cut_by_bytes_before_the_row_count():
    large = rows(100, chars=32_000)
    weight = entity_bytes({"PartitionKey": "p", "RowKey": "r00000", **large[0].properties})
    chunks = transactions(large)
    assert [len(chunk) for chunk in chunks[:-1]] == [MAX_BATCH_BYTES // weight] * (len(chunks) - 1)
    assert sum(len(chunk) for chunk in chunks) == 100


def test_nothing_makes_no_transaction():
    assert transactions([]) == []
