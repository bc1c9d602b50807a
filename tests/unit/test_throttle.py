"""FailureThrottle: guessing at the token endpoint is slowed down, the real client is not locked
out (RFC 6749 §2.3.1; docs/security.md rows 20, 75-76)."""

from __future__ import annotations

import threading

import pytest

from shared.throttle import FailureThrottle, MemoryAttemptStore, Rule, Throttled


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def throttle(clock: Clock, *, limit: int = 3, address: int = 15, ceiling: int = 100, **kw):
    store = MemoryAttemptStore(clock=clock, **kw)
    return FailureThrottle(
        store, limit=limit, address_limit=address, client_ceiling=ceiling, window_seconds=60
    )


def fail(t: FailureThrottle, client: str, source: str, times: int = 1) -> None:
    for _ in range(times):
        t.begin(client, source).failed()


def test_a_pair_is_free_until_it_reaches_the_limit_then_waits_out_the_window():
    clock = Clock()
    t = throttle(clock)
    fail(t, "c", "1.1.1.1", 2)
    t.begin("c", "1.1.1.1").abandoned()
    fail(t, "c", "1.1.1.1")
    clock.now = 20
    with pytest.raises(Throttled) as refused:
        t.begin("c", "1.1.1.1")
    assert refused.value.retry_after == 40
    clock.now = 60
    t.begin("c", "1.1.1.1").succeeded()


def test_guessing_from_one_source_leaves_the_client_free_from_another():
    t = throttle(Clock())
    fail(t, "c", "1.1.1.1", 3)
    with pytest.raises(Throttled):
        t.begin("c", "1.1.1.1")
    t.begin("c", "2.2.2.2").succeeded()


def test_one_source_spraying_client_ids_is_slowed_down_across_them():
    t = throttle(Clock(), address=5)
    for n in range(5):
        fail(t, f"c{n}", "1.1.1.1")
    with pytest.raises(Throttled):
        t.begin("fresh", "1.1.1.1")


def test_past_the_client_ceiling_failed_sources_wait_and_clean_sources_do_not():
    t = throttle(Clock(), limit=2, ceiling=6)
    for n in range(3):
        fail(t, "c", f"10.0.0.{n}", 2)  # 6 failures from 3 sources: the ceiling is reached
    fail(t, "c", "10.0.1.1")  # a fourth source has a clean record: one try
    with pytest.raises(Throttled):
        t.begin("c", "10.0.1.1")  # under its own limit, but over the ceiling and it failed
    t.begin("c", "192.0.2.7").succeeded()  # the real client, clean record


def test_concurrent_attempts_are_reserved_so_no_more_than_the_limit_are_evaluated():
    t = throttle(Clock(), limit=10, address=1000)
    barrier = threading.Barrier(50)
    admitted: list[object] = []
    refused: list[int] = []
    lock = threading.Lock()

    def guess() -> None:
        barrier.wait()
        try:
            attempt = t.begin("c", "1.1.1.1")
        except Throttled as error:
            with lock:
                refused.append(error.retry_after)
            return
        with lock:
            admitted.append(attempt)

    threads = [threading.Thread(target=guess) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Nobody has settled yet: every admitted attempt is still being evaluated.
    assert len(admitted) == 10 and len(refused) == 40


def test_successes_and_abandoned_attempts_leave_no_counter_behind():
    store = MemoryAttemptStore(clock=Clock())
    t = FailureThrottle(store, limit=3, address_limit=15, client_ceiling=100, window_seconds=60)
    for n in range(100):
        t.begin(f"c{n}", f"10.0.{n}.1").succeeded()
        t.begin(f"d{n}", f"10.1.{n}.1").abandoned()
    assert len(store) == 0


def test_a_refused_attempt_counts_nothing():
    clock = Clock()
    t = throttle(clock, limit=1)
    fail(t, "c", "1.1.1.1")
    for _ in range(100):
        with pytest.raises(Throttled):
            t.begin("c", "1.1.1.1")
    clock.now = 60
    t.begin("c", "1.1.1.1").succeeded()


def test_keys_are_bounded_in_count_and_eviction_is_cheap():
    clock = Clock()
    store = MemoryAttemptStore(clock=clock, max_keys=300)
    t = FailureThrottle(store, limit=5, address_limit=25, client_ceiling=100, window_seconds=60)
    for n in range(10_000):
        clock.now += 0.001
        fail(t, f"client-{n}", f"10.{n // 256 % 256}.{n % 256}.1")
    assert len(store) <= 300


def test_memory_stays_bounded_in_bytes_whatever_the_keys_look_like():
    import tracemalloc

    clock = Clock()
    store = MemoryAttemptStore(clock=clock, max_keys=10_000)
    rules = [Rule("warm", 5)]
    store.reserve(rules, 60)
    store.settle(rules, failed=True)
    tracemalloc.start()
    try:
        for n in range(30_000):
            # Long keys: a counter must not cost more because a caller's key is long.
            key = f"{n}-" + "x" * 2_000
            store.reserve([Rule(key, 5)], 60)
            store.settle([Rule(key, 5)], failed=True)
        size = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(store) == 10_000
    # About 250 bytes a counter; a kept 2 KB key would be 20 MB.
    assert size < 4_000_000
