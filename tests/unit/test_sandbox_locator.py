"""The sandbox's locator: which patient holds a compartment resource, in bucket rows."""

from __future__ import annotations

import threading

from shared.sandbox.locator import BUCKETS, Locator, Place, bucket, partition
from tests.support.memory_table import MemoryEntityTable


def test_an_entry_placed_is_found_and_a_removed_one_is_not():
    locator = Locator(MemoryEntityTable())
    locator.place("Observation", "o1", Place("p1"))
    assert locator.find("Observation", "o1") == Place("p1")
    locator.place("Observation", "o1", None)
    assert locator.find("Observation", "o1") is None


def test_a_move_under_way_keeps_where_it_comes_from():
    locator = Locator(MemoryEntityTable())
    locator.place("Observation", "o1", Place("p2", moving_from="p1"))
    assert locator.find("Observation", "o1") == Place("p2", "p1")


def test_entries_of_one_type_are_never_found_under_another():
    locator = Locator(MemoryEntityTable())
    locator.place("Observation", "x", Place("p1"))
    assert locator.find("Condition", "x") is None


def test_many_entries_cost_a_row_per_bucket_not_per_id():
    table = MemoryEntityTable()
    ids = [f"obs-{n}" for n in range(20_000)]
    Locator(table).place_many("Observation", {i: Place(f"p{n % 500}") for n, i in enumerate(ids)})
    assert len(table) == len({bucket(i) for i in ids}) <= BUCKETS
    locator = Locator(table)
    assert all(locator.find("Observation", i) == Place(f"p{n % 500}") for n, i in enumerate(ids))


def test_a_bucket_emptied_is_deleted():
    table = MemoryEntityTable()
    locator = Locator(table)
    locator.place("Observation", "o1", Place("p1"))
    locator.place("Observation", "o1", None)
    assert table.query_partition(partition("Observation")) == []


def test_concurrent_placements_in_one_bucket_lose_none():
    table = MemoryEntityTable()
    ids = [f"o{n}" for n in range(5_000)]
    # Fewer writers than a placement's attempts: each round one of them wins, so none gives up.
    same = [i for i in ids if bucket(i) == bucket(ids[0])][:6]
    barrier = threading.Barrier(len(same))

    def place(resource_id: str) -> None:
        barrier.wait()
        Locator(table).place("Observation", resource_id, Place("p1"))

    threads = [threading.Thread(target=place, args=(i,)) for i in same]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(Locator(table).find("Observation", i) == Place("p1") for i in same)
