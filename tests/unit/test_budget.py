"""RequestBudget: provider calls and time one proxied request may spend (security.md row 81)."""

from __future__ import annotations

import threading

import pytest

from shared.fhir.errors import FhirError
from shared.proxy.budget import RequestBudget


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_calls_are_granted_until_the_budget_is_spent_then_refused_as_too_costly():
    budget = RequestBudget(3, 60, clock=Clock())
    for _ in range(3):
        budget.take()
    assert not budget.spent
    with pytest.raises(FhirError) as refused:
        budget.take()
    assert (refused.value.status, refused.value.code) == (400, "too-costly")
    assert budget.spent


def test_after_the_deadline_nothing_is_granted_and_take_is_a_timeout():
    clock = Clock()
    budget = RequestBudget(100, 10, clock=clock)
    clock.now += 10
    assert budget.take_up_to(5) == 0
    with pytest.raises(FhirError) as refused:
        budget.take()
    assert (refused.value.status, refused.value.code) == (504, "timeout")


def test_a_partial_grant_gives_what_is_left():
    budget = RequestBudget(4, 60, clock=Clock())
    assert budget.take_up_to(10) == 4
    assert budget.take_up_to(1) == 0
    assert not budget.try_take()


def test_concurrent_entries_never_overspend():
    budget = RequestBudget(50, 60)
    granted: list[bool] = []
    barrier = threading.Barrier(20)

    def entry() -> None:
        barrier.wait()
        for _ in range(10):
            granted.append(budget.try_take())

    threads = [threading.Thread(target=entry) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert granted.count(True) == 50


def test_reserved_calls_are_kept_for_essential_calls():
    budget = RequestBudget(5, 60, clock=Clock())
    budget.reserve(3)
    assert budget.take_up_to(10) == 2  # optional calls get only the surplus
    for _ in range(3):
        budget.take()  # each batch entry still gets its own answer
    with pytest.raises(FhirError):
        budget.take()
