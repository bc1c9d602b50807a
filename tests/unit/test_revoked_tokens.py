"""The per-instance view of revoked tokens: read once per interval, known at once where revoked,
fail closed when it cannot be read for too long (shared/auth/revocation.py)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.auth.revocation import RETRY_SECONDS, RevokedTokens
from shared.expiring import ExpiringRows
from shared.tables import Entity, StoreUnavailable
from tests.support.memory_table import MemoryEntityTable

INTERVAL = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class CountingTable(MemoryEntityTable):
    def __init__(self) -> None:
        super().__init__()
        self.queries = 0
        self.down = False

    def query(self, *args: Any, **kwargs: Any) -> list[Entity]:
        if self.down:
            raise StoreUnavailable("table storage unreachable")
        self.queries += 1
        return super().query(*args, **kwargs)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def table() -> CountingTable:
    return CountingTable()


def instance(table: CountingTable, clock: Clock) -> RevokedTokens:
    rows = ExpiringRows(table, "revoked", clock=clock, background=False)
    return RevokedTokens(rows, INTERVAL, clock=clock)


def test_the_revoking_instance_knows_at_once(table, clock):
    here = instance(table, clock)
    here.is_revoked("warm-up")
    here.revoke("jti-1", clock.now + 600)
    assert here.is_revoked("jti-1")


def test_another_instance_learns_of_it_at_its_next_read(table, clock):
    here, there = instance(table, clock), instance(table, clock)
    assert not there.is_revoked("jti-1")
    here.revoke("jti-1", clock.now + 600)
    clock.now += INTERVAL
    assert there.is_revoked("jti-1")


def test_many_checks_within_an_interval_make_one_table_read(table, clock):
    there = instance(table, clock)
    for n in range(100):
        there.is_revoked(f"jti-{n}")
    assert table.queries == 1


def test_a_revocation_is_forgotten_once_the_token_has_expired(table, clock):
    here, there = instance(table, clock), instance(table, clock)
    here.revoke("jti-1", clock.now + 30)
    clock.now += INTERVAL
    assert not there.is_revoked("jti-1")


def test_a_set_that_is_due_and_cannot_be_read_fails_closed(table, clock):
    there = instance(table, clock)
    there.is_revoked("x")
    table.down = True
    clock.now += INTERVAL
    with pytest.raises(StoreUnavailable):
        there.is_revoked("x")


def test_after_a_failed_read_the_table_is_tried_again_only_after_the_retry_delay(table, clock):
    there = instance(table, clock)
    table.down = True
    with pytest.raises(StoreUnavailable):
        there.is_revoked("x")
    table.down = False
    with pytest.raises(StoreUnavailable):
        there.is_revoked("x")
    clock.now += RETRY_SECONDS
    assert not there.is_revoked("x")
