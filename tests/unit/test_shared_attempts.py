"""SharedAttemptStore: the failure throttle's limits are totals across instances, and each
instance still limits on its own when the shared table cannot answer (docs/security.md
table K)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pytest

from shared.auth.shared_attempts import SharedAttemptStore
from shared.auth.throttle import FailureThrottle, MemoryAttemptStore, Rule, Throttled
from shared.expiring import ExpiringRows
from shared.tables import Entity, StoreUnavailable
from tests.support.memory_table import MemoryEntityTable

START = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


class CountingTable(MemoryEntityTable):
    """Records each call by name."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def get(self, partition_key: str, row_key: str) -> Entity:
        self.calls.append("get")
        return super().get(partition_key, row_key)

    def create(self, entity: Entity) -> Entity:
        self.calls.append("create")
        return super().create(entity)

    def replace(self, entity: Entity) -> Entity:
        self.calls.append("replace")
        return super().replace(entity)


class DownTable(MemoryEntityTable):
    """A table service that does not answer."""

    def get(self, partition_key: str, row_key: str) -> Entity:
        raise StoreUnavailable("down")

    def create(self, entity: Entity) -> Entity:
        raise StoreUnavailable("down")

    def query(self, *args: Any, **kwargs: Any) -> list[Entity]:
        raise StoreUnavailable("down")


def instance(
    table: MemoryEntityTable,
    clock: Clock,
    *,
    limit: int = 3,
    address: int = 15,
    ceiling: int = 100,
    max_new: int = 20_000,
) -> FailureThrottle:
    rows = ExpiringRows(table, "throttle", clock=clock, background=False, max_new=max_new)
    store = SharedAttemptStore(
        rows, MemoryAttemptStore(clock=clock), window_seconds=60, clock=clock
    )
    return FailureThrottle(
        store, limit=limit, address_limit=address, client_ceiling=ceiling, window_seconds=60
    )


def verdicts(throttles: Sequence[FailureThrottle], client: str, source: str, n: int) -> list[int]:
    """n failures, round-robin over the instances: 401 when let through, 429 when throttled."""
    found = []
    for index in range(n):
        try:
            throttles[index % len(throttles)].failed(client, source)
            found.append(401)
        except Throttled:
            found.append(429)
    return found


def test_the_limit_holds_in_total_across_instances():
    table, clock = MemoryEntityTable(), Clock()
    three = [instance(table, clock) for _ in range(3)]
    assert verdicts(three, "c", "198.51.100.7", 9) == [401, 401, 401] + [429] * 6


def test_concurrent_failures_on_one_instance_let_exactly_the_limit_through():
    """Row 76 with the shared counts: this instance's verdict and the table's agree on order."""
    import threading
    import time

    class SlowTable(MemoryEntityTable):
        """Each write yields, so threads would interleave between the two counts."""

        def create(self, entity: Entity) -> Entity:
            time.sleep(0.001)
            return super().create(entity)

        def replace(self, entity: Entity) -> Entity:
            time.sleep(0.001)
            return super().replace(entity)

    throttle = instance(SlowTable(), Clock(), limit=10, address=50)
    barrier = threading.Barrier(40)
    found: list[int] = []

    def guess() -> None:
        barrier.wait()
        found.extend(verdicts([throttle], "c", "198.51.100.7", 1))

    threads = [threading.Thread(target=guess) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert found.count(401) == 10


def test_a_right_secret_on_another_instance_is_refused_during_a_lockout():
    table, clock = MemoryEntityTable(), Clock()
    first, second = instance(table, clock), instance(table, clock)
    verdicts([first], "c", "198.51.100.7", 3)
    second.screen("c", "198.51.100.7")  # it has counted nothing itself...
    with pytest.raises(Throttled):
        second.check("c", "198.51.100.7")  # ...but the shared counts hold


def test_the_wait_is_the_rest_of_the_window_every_instance_agrees_on():
    table, clock = MemoryEntityTable(), Clock()
    first, second = instance(table, clock), instance(table, clock)
    clock.now = START + 45
    verdicts([first], "c", "198.51.100.7", 3)
    with pytest.raises(Throttled) as refused:
        second.check("c", "198.51.100.7")
    assert refused.value.retry_after == 15
    clock.now = START + 60
    second.check("c", "198.51.100.7")


def test_a_success_reads_two_counts_and_writes_nothing():
    table, clock = CountingTable(), Clock()
    throttle = instance(table, clock)
    throttle.screen("c", "198.51.100.7")
    throttle.check("c", "198.51.100.7")
    assert table.calls == ["get", "get"]


def test_the_look_before_the_secret_asks_no_store():
    table, clock = CountingTable(), Clock()
    throttle = instance(table, clock)
    throttle.screen("c", "198.51.100.7")
    assert table.calls == []


def test_an_instance_that_saw_a_lockout_refuses_without_asking_the_store():
    table, clock = CountingTable(), Clock()
    first, second = instance(table, clock), instance(table, clock)
    verdicts([first], "c", "198.51.100.7", 2)
    verdicts([second], "c", "198.51.100.7", 1)  # the third failure, counted here
    table.calls.clear()
    with pytest.raises(Throttled):
        second.screen("c", "198.51.100.7")
    assert table.calls == []


def test_a_source_over_its_limit_writes_no_new_counters():
    table, clock = MemoryEntityTable(), Clock()
    throttle = instance(table, clock, limit=3, address=5)
    for n in range(5):
        verdicts([throttle], f"client-{n}", "198.51.100.7", 1)
    rows_before = len(table)
    assert verdicts([throttle], "fresh-client", "198.51.100.7", 20) == [429] * 20
    assert len(table) == rows_before


def test_past_the_ceiling_across_instances_a_clean_source_gets_through():
    table, clock = MemoryEntityTable(), Clock()
    three = [instance(table, clock, limit=2, ceiling=6) for _ in range(3)]
    for n in range(3):
        verdicts(three, "c", f"10.0.0.{n}", 2)  # 6 failures from 3 sources
    assert verdicts(three, "c", "10.0.1.1", 2) == [401, 429]  # clean once, then held back
    for throttle in three:
        throttle.check("c", "192.0.2.7")  # the real client, clean record


def test_while_the_table_is_down_each_instance_still_limits_on_its_own():
    clock = Clock()
    three = [instance(DownTable(), clock) for _ in range(3)]
    # Per instance: three failures each before its own limit, so nine in all.
    assert verdicts(three, "c", "198.51.100.7", 12) == [401] * 9 + [429] * 3


def test_an_alert_says_when_the_limits_are_per_instance(caplog):
    throttle = instance(DownTable(), Clock())
    caplog.set_level(logging.WARNING, logger="shared.auth.shared_attempts")
    verdicts([throttle], "c", "198.51.100.7", 2)
    alerts = [r.message for r in caplog.records if r.message.startswith("ALERT")]
    assert len(alerts) == 1
    assert "own limits" in alerts[0]


def test_past_its_share_of_new_rows_an_instance_counts_on_its_own():
    table, clock = MemoryEntityTable(), Clock()
    throttle = instance(table, clock, limit=3, max_new=2)
    verdicts([throttle], "other", "203.0.113.1", 1)  # two new rows: the share is used up
    assert verdicts([throttle], "c", "198.51.100.7", 4) == [401, 401, 401, 429]


def test_while_the_table_answers_its_counts_decide_not_this_instances():
    """Concurrent failures reach the two counters in different orders: the local verdict alone
    could refuse one of the first `limit` (integration row 76 saw 9 of 10 let through)."""
    table, clock = MemoryEntityTable(), Clock()
    local = MemoryAttemptStore(clock=clock)
    rows = ExpiringRows(table, "throttle", clock=clock, background=False)
    store = SharedAttemptStore(rows, local, window_seconds=60, clock=clock)
    rule = Rule("pair", 3)
    for _ in range(3):
        local.fail([rule], 60)  # this instance has counted three already...
    assert store.fail([rule], 60) is None  # ...but the shared count was at 0: let through
