"""TTLCache: expiry, single-flight fills and shared failures."""

from __future__ import annotations

import threading
import time

import pytest

from shared.cache import TTLCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_value_is_reused_until_the_ttl_passes():
    clock, loads = Clock(), []
    cache: TTLCache[int] = TTLCache(60, clock=clock)
    assert cache.get("k", lambda: loads.append(1) or len(loads)) == 1
    clock.now += 59
    assert cache.get("k", lambda: loads.append(1) or len(loads)) == 1
    clock.now += 2
    assert cache.get("k", lambda: loads.append(1) or len(loads)) == 2


def test_ttl_can_depend_on_the_loaded_value():
    clock = Clock()
    cache: TTLCache[int | None] = TTLCache(60, clock=clock)
    cache.get("missing", lambda: None, ttl=lambda v: 60 if v is not None else 5)
    clock.now += 6
    assert cache.get("missing", lambda: 7) == 7


def test_concurrent_misses_load_once():
    cache: TTLCache[str] = TTLCache(60)
    calls = []
    barrier = threading.Barrier(20)

    def slow_load() -> str:
        calls.append(1)
        time.sleep(0.2)
        return "v"

    def worker() -> None:
        barrier.wait()
        assert cache.get("k", slow_load) == "v"

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1


def test_a_failed_load_is_shared_by_waiters_instead_of_retried_by_each():
    cache: TTLCache[str] = TTLCache(60, failure_ttl=5)
    calls, errors = [], []
    barrier = threading.Barrier(10)

    def failing_load() -> str:
        calls.append(1)
        time.sleep(0.1)
        raise ConnectionError("store down")

    def worker() -> None:
        barrier.wait()
        try:
            cache.get("k", failing_load)
        except ConnectionError as error:
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert len(errors) == 10


def test_a_failure_is_forgotten_after_the_failure_ttl():
    clock = Clock()
    cache: TTLCache[str] = TTLCache(60, failure_ttl=1, clock=clock)

    def fail() -> str:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        cache.get("k", fail)
    with pytest.raises(ConnectionError):
        cache.get("k", lambda: "never called")
    clock.now += 1.5
    assert cache.get("k", lambda: "back") == "back"


def test_invalidate_forces_a_reload():
    cache: TTLCache[int] = TTLCache(60)
    cache.get("k", lambda: 1)
    cache.invalidate("k")
    assert cache.get("k", lambda: 2) == 2


def test_entries_stay_bounded():
    clock = Clock()
    cache: TTLCache[int] = TTLCache(60, max_entries=10, clock=clock)
    for i in range(100):
        clock.now += 0.01
        cache.get(i, lambda i=i: i)
    assert len(cache._entries) <= 10
    assert cache.get(99, lambda: -1) == 99


# -- what anonymous callers can make the cache keep (docs/security.md table G) ---------------


class Payload:
    """Stands for a request body: something a failed load's frames would keep alive."""


def _failing_load(payload_ref: list[Payload]) -> str:
    payload = payload_ref.pop()  # a local of the failing frame, as the request is in the proxy
    raise ConnectionError(f"refused while holding {type(payload).__name__}")


def _payload_survives(cache: TTLCache[str], key: str) -> bool:
    import gc
    import weakref

    payload = Payload()
    alive = weakref.ref(payload)
    holder = [payload]
    del payload
    with pytest.raises(ConnectionError):
        cache.get(key, lambda: _failing_load(holder))
    gc.collect()
    return alive() is not None


def test_a_failure_with_a_zero_failure_ttl_leaves_nothing_behind():
    cache: TTLCache[str] = TTLCache(60, failure_ttl=0)
    assert not _payload_survives(cache, "k")


def test_a_remembered_failure_keeps_no_traceback_of_the_request():
    cache: TTLCache[str] = TTLCache(60, failure_ttl=5)
    assert not _payload_survives(cache, "k")
    with pytest.raises(ConnectionError):  # still remembered: the store is not called again
        cache.get("k", lambda: "never called")


def test_memory_stays_flat_after_many_distinct_keys_fail():
    import tracemalloc

    cache: TTLCache[str] = TTLCache(60, failure_ttl=0)

    def fail() -> str:
        raise ValueError("bad token")

    for i in range(100):  # warm-up: first-use allocations are not growth
        with pytest.raises(ValueError):
            cache.get(f"warm{i}", fail)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for i in range(20_000):
            with pytest.raises(ValueError):
                cache.get(i.to_bytes(32, "big"), fail)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    # One lock per key used to stay behind (~100 bytes each, 2 MB here).
    assert grown < 200_000


class CountingKey:
    """A key that counts how often the cache hashes it: a scan of every key shows up."""

    hashed = 0

    def __init__(self, n: int) -> None:
        self.n = n

    def __hash__(self) -> int:
        CountingKey.hashed += 1
        return hash(self.n)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CountingKey) and other.n == self.n


def test_inserting_into_a_full_cache_does_not_scan_its_entries():
    clock = Clock()
    cache: TTLCache[int] = TTLCache(60, max_entries=1_000, clock=clock)
    for i in range(1_000):
        cache.get(CountingKey(i), lambda i=i: i)
    CountingKey.hashed = 0
    for i in range(1_000, 1_100):
        cache.get(CountingKey(i), lambda i=i: i)
    # A constant handful of hashes per insert (about ten), not one or two per cached entry.
    assert CountingKey.hashed <= 100 * 20
    assert len(cache._entries) == 1_000


def test_refresh_makes_one_load_for_concurrent_misses_and_none_again_within_the_interval():
    clock = Clock()
    cache: TTLCache[str] = TTLCache(60, clock=clock)
    cache.get("k", lambda: "old")
    calls = []
    barrier = threading.Barrier(20)

    def slow_load() -> str:
        calls.append(1)
        time.sleep(0.2)
        return "new"

    results = []

    def worker() -> None:
        barrier.wait()
        results.append(cache.refresh("k", slow_load, min_interval=5))

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and set(results) == {"new"}
    clock.now += 4
    assert cache.refresh("k", lambda: "newer", min_interval=5) == "new"
    clock.now += 2
    assert cache.refresh("k", lambda: "newer", min_interval=5) == "newer"


def test_refresh_of_a_value_loaded_by_its_ttl_looks_again_at_once():
    cache: TTLCache[str] = TTLCache(60, clock=Clock())
    cache.get("k", lambda: "cached before a rotation")
    assert cache.refresh("k", lambda: "rotated", min_interval=5) == "rotated"
    assert cache.get("k", lambda: "never called") == "rotated"


def test_peek_answers_from_the_cache_only():
    clock = Clock()
    cache: TTLCache[str] = TTLCache(60, clock=clock)
    assert cache.peek("k") is None
    cache.get("k", lambda: "v")
    assert cache.peek("k") == "v"
    clock.now += 61
    assert cache.peek("k") is None


def test_an_interrupted_load_ends_its_flight_for_everyone():
    cache: TTLCache[str] = TTLCache(60)

    def interrupted() -> str:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.get("k", interrupted)
    assert cache.get("k", lambda: "loaded") == "loaded"  # no dead flight left to wait on
