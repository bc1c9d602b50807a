"""The circuit breaker (providers, Table Storage, Key Vault), driven by a fake clock."""

from __future__ import annotations

import threading

import pytest

from shared.circuit import CircuitBreaker
from shared.fhir.errors import Unavailable
from shared.proxy.transport import provider_paused

A = "https://fhir.hospital-a.example/r4"
B = "https://fhir.hospital-b.example/r4"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(3, 30, clock=clock, refusal=provider_paused)


def fail_times(breaker: CircuitBreaker, key: str, times: int) -> None:
    for _ in range(times):
        breaker.before_call(key)
        breaker.record_failure(key)


def test_a_new_provider_is_closed_and_lets_calls_through(breaker: CircuitBreaker) -> None:
    breaker.before_call(A)
    assert breaker.state(A) == "closed"


def test_failures_below_the_threshold_keep_it_closed(breaker: CircuitBreaker) -> None:
    fail_times(breaker, A, 2)
    assert breaker.state(A) == "closed"
    breaker.before_call(A)


def test_the_threshold_of_consecutive_failures_opens_it(breaker: CircuitBreaker) -> None:
    fail_times(breaker, A, 3)
    assert breaker.state(A) == "open"


def test_a_success_resets_the_failure_count(breaker: CircuitBreaker) -> None:
    fail_times(breaker, A, 2)
    breaker.record_success(A)
    fail_times(breaker, A, 2)
    assert breaker.state(A) == "closed"


def test_an_open_circuit_answers_503_with_the_seconds_left_as_retry_after(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    fail_times(breaker, A, 3)
    clock.advance(10.2)
    with pytest.raises(Unavailable) as refused:
        breaker.before_call(A)
    assert refused.value.status == 503
    assert refused.value.code == "transient"
    assert refused.value.headers["Retry-After"] == "20"
    assert "hospital" not in refused.value.diagnostics


def test_retry_after_is_at_least_one_second(breaker: CircuitBreaker, clock: FakeClock) -> None:
    fail_times(breaker, A, 3)
    clock.advance(29.99)
    with pytest.raises(Unavailable) as refused:
        breaker.before_call(A)
    assert refused.value.headers["Retry-After"] == "1"


def test_circuits_are_per_provider(breaker: CircuitBreaker) -> None:
    fail_times(breaker, A, 3)
    breaker.before_call(B)
    assert breaker.state(B) == "closed"


def test_after_the_open_period_it_is_half_open_and_lets_one_probe_through(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    fail_times(breaker, A, 3)
    clock.advance(30)
    assert breaker.state(A) == "half-open"
    breaker.before_call(A)  # the probe


def test_callers_during_the_probe_still_get_503(breaker: CircuitBreaker, clock: FakeClock) -> None:
    fail_times(breaker, A, 3)
    clock.advance(30)
    breaker.before_call(A)
    for _ in range(5):
        with pytest.raises(Unavailable) as refused:
            breaker.before_call(A)
        assert int(refused.value.headers["Retry-After"]) >= 1


def test_exactly_one_of_many_concurrent_callers_becomes_the_probe(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    fail_times(breaker, A, 3)
    clock.advance(31)
    admitted: list[int] = []
    start = threading.Barrier(20)

    def call(n: int) -> None:
        start.wait()
        try:
            breaker.before_call(A)
        except Unavailable:
            return
        admitted.append(n)

    threads = [threading.Thread(target=call, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(admitted) == 1


def test_a_successful_probe_closes_the_circuit(breaker: CircuitBreaker, clock: FakeClock) -> None:
    fail_times(breaker, A, 3)
    clock.advance(30)
    breaker.before_call(A)
    breaker.record_success(A)
    assert breaker.state(A) == "closed"
    breaker.before_call(A)
    breaker.before_call(A)


def test_a_failed_probe_opens_it_for_another_full_period(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    fail_times(breaker, A, 3)
    clock.advance(30)
    breaker.before_call(A)
    breaker.record_failure(A)
    assert breaker.state(A) == "open"
    with pytest.raises(Unavailable) as refused:
        breaker.before_call(A)
    assert refused.value.headers["Retry-After"] == "30"


def test_a_released_probe_lets_the_next_caller_probe(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    fail_times(breaker, A, 3)
    clock.advance(30)
    breaker.before_call(A)
    breaker.release(A)  # e.g. the probe's credential could not be obtained
    breaker.before_call(A)


def test_a_probe_that_never_reports_loses_its_slot_after_the_open_period(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    fail_times(breaker, A, 3)
    clock.advance(30)
    breaker.before_call(A)
    clock.advance(29)
    with pytest.raises(Unavailable):
        breaker.before_call(A)
    clock.advance(1)
    breaker.before_call(A)


def test_failures_of_calls_that_started_before_it_opened_do_not_extend_it(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    for _ in range(5):
        breaker.before_call(A)
    for _ in range(3):
        breaker.record_failure(A)
    clock.advance(20)
    breaker.record_failure(A)  # a straggler
    breaker.record_failure(A)
    clock.advance(10)
    assert breaker.state(A) == "half-open"


def test_invalid_configuration_is_refused() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(0, 30)
    with pytest.raises(ValueError):
        CircuitBreaker(3, 0)


# -- guarded(): the stores' use of the breaker -----------------------------------------------


class Down(Exception):
    """The dependency did not answer."""


class Answered(Exception):
    """The dependency answered, with a refusal (not found, disabled)."""


def test_guarded_counts_failures_and_an_answer_closes_the_circuit(clock: FakeClock) -> None:
    from shared.circuit import CircuitOpen, guarded

    breaker = CircuitBreaker(2, 10, clock=clock)

    def down() -> None:
        raise Down

    def not_found() -> None:
        raise Answered

    for _ in range(2):
        with pytest.raises(Down):
            guarded(breaker, "tables", down, failure=Down, answer=Answered)
    with pytest.raises(CircuitOpen) as refused:
        guarded(breaker, "tables", lambda: "never called", failure=Down, answer=Answered)
    assert refused.value.retry_after == 10
    clock.advance(10)
    with pytest.raises(Answered):  # the probe: the store answers, if only "not found"
        guarded(breaker, "tables", not_found, failure=Down, answer=Answered)
    assert breaker.state("tables") == "closed"


def test_guarded_lets_an_unexpected_error_decide_nothing(clock: FakeClock) -> None:
    from shared.circuit import guarded

    breaker = CircuitBreaker(1, 10, clock=clock)
    breaker.record_failure("tables")
    clock.advance(10)

    def bug() -> None:
        raise KeyError("ours")

    with pytest.raises(KeyError):
        guarded(breaker, "tables", bug, failure=Down, answer=Answered)
    assert breaker.state("tables") == "half-open"  # the probe slot is free again
    assert guarded(breaker, "tables", lambda: 7, failure=Down, answer=Answered) == 7
