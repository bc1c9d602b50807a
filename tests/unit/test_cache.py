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
