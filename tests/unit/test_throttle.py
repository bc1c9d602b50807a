"""FailureThrottle: brute-force resistance for the token endpoint (RFC 6749 §2.3.1)."""

from __future__ import annotations

from shared.throttle import FailureThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_key_is_free_until_it_reaches_the_limit():
    throttle = FailureThrottle(3, 60, clock=Clock())
    for _ in range(2):
        throttle.record_failure("a")
    assert throttle.retry_after("a") is None
    throttle.record_failure("a")
    assert throttle.retry_after("a") == 60


def test_retry_after_counts_down_to_when_the_oldest_failure_leaves_the_window():
    clock = Clock()
    throttle = FailureThrottle(2, 60, clock=clock)
    throttle.record_failure("a")
    clock.now = 10
    throttle.record_failure("a")
    clock.now = 30
    assert throttle.retry_after("a") == 30
    clock.now = 60.5
    assert throttle.retry_after("a") is None


def test_keys_are_independent():
    throttle = FailureThrottle(1, 60, clock=Clock())
    throttle.record_failure("a")
    assert throttle.retry_after("a") is not None
    assert throttle.retry_after("b") is None


def test_memory_stays_bounded_under_a_flood_of_keys():
    clock = Clock()
    throttle = FailureThrottle(5, 60, clock=clock, max_keys=100)
    for i in range(10_000):
        clock.now += 0.001
        throttle.record_failure(f"k{i}")
    assert len(throttle._failures) <= 100
    for _ in range(50):
        throttle.record_failure("hot")
    assert len(throttle._failures["hot"]) == 5
