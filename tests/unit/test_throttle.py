"""FailureThrottle: guessing at the token endpoint is slowed down, the real client is not locked
out (RFC 6749 §2.3.1; docs/security.md rows 20, 75-76)."""

from __future__ import annotations

import threading

import pytest

from shared.auth.throttle import FailureThrottle, MemoryAttemptStore, Rule, Throttled


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
        t.failed(client, source)


def test_a_pair_is_free_until_it_reaches_the_limit_then_waits_out_the_window():
    clock = Clock()
    t = throttle(clock)
    fail(t, "c", "1.1.1.1", 3)
    clock.now = 20
    with pytest.raises(Throttled) as refused:
        t.check("c", "1.1.1.1")
    assert refused.value.retry_after == 40
    clock.now = 60
    t.check("c", "1.1.1.1")


def test_the_failure_over_the_limit_is_itself_throttled():
    t = throttle(Clock())
    fail(t, "c", "1.1.1.1", 3)
    with pytest.raises(Throttled):
        t.failed("c", "1.1.1.1")


def test_guessing_from_one_source_leaves_the_client_free_from_another():
    t = throttle(Clock())
    fail(t, "c", "1.1.1.1", 3)
    with pytest.raises(Throttled):
        t.check("c", "1.1.1.1")
    t.check("c", "2.2.2.2")


def test_one_source_spraying_client_ids_is_slowed_down_across_them():
    t = throttle(Clock(), address=5)
    for n in range(5):
        fail(t, f"c{n}", "1.1.1.1")
    with pytest.raises(Throttled):
        t.check("fresh", "1.1.1.1")


def test_past_the_client_ceiling_failed_sources_wait_and_clean_sources_do_not():
    t = throttle(Clock(), limit=2, ceiling=6)
    for n in range(3):
        fail(t, "c", f"10.0.0.{n}", 2)  # 6 failures from 3 sources: the ceiling is reached
    fail(t, "c", "10.0.1.1")  # a fourth source has a clean record: its failure is judged a 401
    with pytest.raises(Throttled):
        t.check("c", "10.0.1.1")  # under its own limit, but over the ceiling and it failed
    t.check("c", "192.0.2.7")  # the real client, clean record


def test_concurrent_failures_are_counted_and_judged_in_one_step():
    t = throttle(Clock(), limit=10, address=1000)
    barrier = threading.Barrier(50)
    verdicts: list[str] = []
    lock = threading.Lock()

    def guess() -> None:
        barrier.wait()
        try:
            t.failed("c", "1.1.1.1")
            verdict = "401"
        except Throttled:
            verdict = "429"
        with lock:
            verdicts.append(verdict)

    threads = [threading.Thread(target=guess) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert verdicts.count("401") == 10 and verdicts.count("429") == 40


def test_checks_alone_keep_no_counter():
    store = MemoryAttemptStore(clock=Clock())
    t = FailureThrottle(store, limit=3, address_limit=15, client_ceiling=100, window_seconds=60)
    for n in range(100):
        t.check(f"c{n}", f"10.0.{n}.1")
    assert len(store) == 0


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

    store = MemoryAttemptStore(clock=Clock(), max_keys=10_000)
    store.fail([Rule("warm", 5)], 60)
    tracemalloc.start()
    try:
        for n in range(30_000):
            # Long keys: a counter must not cost more because a caller's key is long.
            store.fail([Rule(f"{n}-" + "x" * 2_000, 5)], 60)
        size = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(store) == 10_000
    # About 200 bytes a counter; a kept 2 KB key would be 20 MB.
    assert size < 4_000_000
