"""How many instances are serving, as each of them tells the others in the ``expiring`` table.

An instance that serves requests writes a row under a random id of its own that expires
``3 x HEARTBEAT_SECONDS`` later, at most once every ``HEARTBEAT_SECONDS`` (from a short-lived
thread, so no request waits for it but an instance's very first); the live rows are the
instances. So the count is of the instances that served a request in the last half minute,
which is who shares the load. The per-tenant and per-client rate limits divide by it
(``shared/ratelimit.py``), so the whole app allows about what a limit says rather than N times
it. The count lags by up to a heartbeat when an instance starts serving, and by up to three when
one stops (idle, scaled in or frozen). While the table cannot answer, the last count stands; an
instance that never got one counts itself alone (the limits as they were before).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Final

from shared.expiring import CapReached, ExpiringRows
from shared.tables import TableError

log = logging.getLogger(__name__)

NAMESPACE: Final = "instances"
HEARTBEAT_SECONDS: Final = 10.0
FIRST_COUNT_WAIT_SECONDS: Final = 2.0
"""How long the first request waits for the first count before counting this instance alone."""


class InstanceCount:
    """The number of live instances, this one included; call it for the current count."""

    def __init__(
        self,
        rows: ExpiringRows,
        *,
        clock: Callable[[], float] = time.time,
        background: bool = True,
    ) -> None:
        self._rows = rows
        self._clock = clock
        self._background = background
        self.instance_id = uuid.uuid4().hex
        self._count = 1
        self._counted_at: float | None = None
        self._refreshing = False
        self._first = threading.Event()
        self._lock = threading.Lock()

    def __call__(self) -> int:
        """The live instances (at least 1); a store call is made for it only once in a while."""
        stale = self._counted_at is None or self._clock() - self._counted_at >= HEARTBEAT_SECONDS
        if not stale:
            return self._count
        if not self._background:
            return self.refresh()
        with self._lock:
            start, self._refreshing = not self._refreshing, True
        if start:
            threading.Thread(target=self._refresh_once, name="instance-count", daemon=True).start()
        if self._counted_at is None and not self._first.wait(FIRST_COUNT_WAIT_SECONDS):
            log.warning("instance count: no answer yet; counting this instance alone meanwhile")
        return self._count

    def refresh(self) -> int:
        """Say this instance is alive, then count the live ones; the last count if that fails."""
        now = self._clock()
        try:
            self._rows.put(self.instance_id, now + 3 * HEARTBEAT_SECONDS)
            alive = {row.row_key for row in self._rows.live()}
        except (TableError, CapReached) as error:
            log.warning("instance count: kept at %d (%s)", self._count, error)
        else:
            self._count = max(1, len(alive))
        self._counted_at = now
        self._first.set()
        return self._count

    def _refresh_once(self) -> None:
        try:
            self.refresh()
        except Exception:  # a bug here must not leave the count stuck as "refreshing"
            log.exception("instance count: refresh failed")
        finally:
            with self._lock:
                self._refreshing = False
