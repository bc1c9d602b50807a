"""Rate limits shared by instances: each allows its share, counted from the instances alive
(shared/ratelimit.py, shared/instances.py; docs/security.md table K)."""

from __future__ import annotations

from shared.expiring import ExpiringRows
from shared.instances import HEARTBEAT_SECONDS, InstanceCount
from shared.ratelimit import RateLimiter
from shared.tables import Entity, StoreUnavailable
from tests.support.memory_table import MemoryEntityTable

START = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def allowed(limiter: RateLimiter, key: str, attempts: int) -> int:
    return sum(limiter.acquire(key) is None for _ in range(attempts))


def counter(table: MemoryEntityTable, clock: Clock) -> InstanceCount:
    rows = ExpiringRows(table, "instances", clock=clock, background=False)
    return InstanceCount(rows, clock=clock, background=False)


def test_each_of_four_instances_allows_a_quarter_of_the_rate_and_burst():
    clock = Clock()
    limiter = RateLimiter(40, 80, clock=clock, instances=lambda: 4)
    assert allowed(limiter, "tenant", 100) == 20  # a quarter of the burst
    clock.now += 1
    assert allowed(limiter, "tenant", 100) == 10  # a quarter of the rate


def test_a_share_of_the_burst_is_never_less_than_one_request():
    clock = Clock()
    limiter = RateLimiter(2, 4, clock=clock, instances=lambda: 40)
    assert allowed(limiter, "tenant", 5) == 1


def test_a_share_follows_the_count_as_instances_come_and_go():
    clock = Clock()
    instances = [1]
    limiter = RateLimiter(30, 30, clock=clock, instances=lambda: instances[0])
    assert allowed(limiter, "tenant", 100) == 30
    instances[0] = 3
    clock.now += 1
    assert allowed(limiter, "tenant", 100) == 10


def test_instances_that_serve_are_counted():
    table, clock = MemoryEntityTable(), Clock()
    three = [counter(table, clock) for _ in range(3)]
    for count in three:
        count()
    assert three[0].refresh() == 3


def test_an_instance_that_stopped_serving_drops_out_after_three_heartbeats():
    table, clock = MemoryEntityTable(), Clock()
    busy, idle = counter(table, clock), counter(table, clock)
    idle()
    assert busy() == 2
    clock.now += 3 * HEARTBEAT_SECONDS
    assert busy() == 1


class FlakyTable(MemoryEntityTable):
    """Counts the heartbeats written; answers nothing while ``down``."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.heartbeats = 0

    def upsert(self, entity: Entity) -> Entity:
        if self.down:
            raise StoreUnavailable("down")
        self.heartbeats += 1
        return super().upsert(entity)


def test_the_store_is_asked_once_a_heartbeat_not_on_every_request():
    table, clock = FlakyTable(), Clock()
    count = counter(table, clock)
    for _ in range(100):
        count()
        clock.now += HEARTBEAT_SECONDS / 50
    assert table.heartbeats == 2


def test_while_the_table_cannot_answer_the_last_count_stands():
    table, clock = FlakyTable(), Clock()
    counter(table, clock)()
    count = counter(table, clock)
    assert count() == 2
    table.down = True
    clock.now += HEARTBEAT_SECONDS
    assert count() == 2


def test_an_instance_that_never_got_a_count_counts_itself_alone():
    table, clock = FlakyTable(), Clock()
    table.down = True
    assert counter(table, clock)() == 1
