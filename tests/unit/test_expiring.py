"""ExpiringRows: shared counters and markers that expire, bounded in time and in count
(docs/security.md table K)."""

from __future__ import annotations

import threading

import pytest

from shared.expiring import BUCKET_SECONDS, LEASE_ROW, CapReached, ExpiringRows, digest
from tests.support.memory_table import MemoryEntityTable

START = 1_800_000_000.0  # a whole number of buckets


class Clock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def rows(table: MemoryEntityTable, clock: Clock, **kw) -> ExpiringRows:
    return ExpiringRows(table, "test", clock=clock, background=False, **kw)


def every_row(table: MemoryEntityTable) -> list:
    """Every row but the sweep leases."""
    return [r for r in table.query("PartitionKey ge @a", {"a": ""}) if r.row_key != LEASE_ROW]


def test_a_counter_returns_its_count_before_each_increment():
    store = rows(MemoryEntityTable(), Clock())
    expires = START + 60
    assert [store.increment("k", expires) for _ in range(3)] == [0, 1, 2]
    assert store.count("k", expires) == 3


def test_an_expired_counter_reads_as_zero_and_starts_again():
    clock = Clock()
    store = rows(MemoryEntityTable(), clock)
    store.increment("k", START + 10)
    clock.now = START + 10
    assert store.count("k", START + 10) == 0
    assert store.increment("k", START + 10) == 0


def test_concurrent_increments_lose_no_count():
    table = MemoryEntityTable()
    clock = Clock()
    instances = [rows(table, clock) for _ in range(3)]
    barrier = threading.Barrier(30)

    def bump(store: ExpiringRows) -> None:
        barrier.wait()
        for _ in range(5):
            store.increment("k", START + 60)

    threads = [threading.Thread(target=bump, args=(instances[n % 3],)) for n in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert instances[0].count("k", START + 60) == 150


def test_insert_if_absent_writes_once_until_the_row_expires():
    table, clock = MemoryEntityTable(), Clock()
    first, second = rows(table, clock), rows(table, clock)
    assert first.insert_if_absent("jti-1", START + 30) is True
    assert second.insert_if_absent("jti-1", START + 30) is False
    clock.now = START + 30
    assert second.insert_if_absent("jti-1", START + 30) is True


def test_keys_are_stored_as_digests_never_in_clear():
    table = MemoryEntityTable()
    store = rows(table, Clock())
    store.increment("pair\0client\0203.0.113.9", START + 60)
    [row] = every_row(table)
    assert row.row_key == digest("pair\0client\0203.0.113.9")
    assert "203.0.113.9" not in repr(row)


def test_each_instance_creates_at_most_its_share_of_new_rows_a_minute():
    store = rows(MemoryEntityTable(), Clock(), max_new=5)
    for n in range(5):
        store.increment(f"k{n}", START + 60)
    with pytest.raises(CapReached):
        store.increment("one more", START + 60)


def test_rows_that_exist_already_cost_no_share():
    store = rows(MemoryEntityTable(), Clock(), max_new=3)
    store.increment("a", START + 60)
    store.insert_if_absent("a-marker", START + 60)
    for _ in range(10):
        store.increment("a", START + 60)
        store.insert_if_absent("a-marker", START + 60)
    store.increment("b", START + 120)  # the third of three new rows this minute


def test_the_share_renews_every_minute():
    clock = Clock()
    store = rows(MemoryEntityTable(), clock, max_new=1)
    store.increment("a", START + 60)
    clock.now += BUCKET_SECONDS
    store.increment("b", clock.now + 60)


def test_closed_buckets_are_swept_and_open_ones_kept():
    table = MemoryEntityTable()
    clock = Clock()
    store = rows(table, clock)
    for n in range(250):
        store.increment(f"old{n}", START + 30)
    store.increment("new", START + 200)
    clock.now = START + 2 * BUCKET_SECONDS
    store.sweep()
    assert store.count("new", START + 200) == 1
    assert {row.row_key for row in every_row(table)} == {digest("new")}


def test_one_instance_sweeps_each_minute_the_one_that_wins_its_lease():
    table = MemoryEntityTable()
    clock = Clock()
    first, second = rows(table, clock), rows(table, clock)
    first.increment("old", START + 30)
    clock.now = START + 2 * BUCKET_SECONDS
    first.increment("a", clock.now + 60)  # wins this minute's lease and sweeps
    old_left = [r for r in every_row(table) if r.row_key == digest("old")]
    assert old_left == []
    second.increment("stale", clock.now - 10)  # an expired row written late...
    clock.now += 1
    second.increment("b", clock.now + 60)  # ...is not swept again this minute
    assert any(r.row_key == digest("stale") for r in every_row(table))


def test_a_flood_of_random_keys_leaves_a_bounded_table():
    table = MemoryEntityTable()
    clock = Clock()
    store = rows(table, clock, max_new=100)
    refused = 0
    for minute in range(10):
        for n in range(1_000):
            try:
                store.increment(f"flood-{minute}-{n}", clock.now + BUCKET_SECONDS)
            except CapReached:
                refused += 1
        clock.now += BUCKET_SECONDS
    assert refused == 10 * 900
    # This minute's share and the last one's (not closed when it was swept), and two leases.
    assert len(table) <= 2 * 100 + 2


def test_live_lists_only_unexpired_rows():
    clock = Clock()
    store = rows(MemoryEntityTable(), clock)
    store.put("instance-a", START + 30)
    store.put("instance-b", START + 90)
    clock.now = START + 45
    assert [row.row_key for row in store.live()] == [digest("instance-b")]
