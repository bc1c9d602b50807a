"""When each client-secret version was last used, recorded coarsely, and which were deleted.

The console shows "last used" beside each secret version so that an operator can see the old
secret has stopped being used before deleting it. The token endpoint calls ``record`` after a
token is issued; a version is written at most once per ``interval`` (five minutes) *per
instance*, and the write runs on a background thread, so the token path never waits for the
table and most token requests write nothing at all. With N instances a version is written at
most N times per interval; the time shown is the latest write, so it may be up to the interval
(plus the time a write takes) behind the real last use.

Rows live in the ``clients`` table, in partitions of their own (the client rows' partition is
``client``): ``secret-used`` (row ``<client_id>|<version>``: ``last_used_at``) and
``secret-deleted`` (the same key: ``deleted_at``). No secret is written: a version
id is Key Vault's name for it. Key Vault cannot delete one version of a secret, so "delete" in
the console disables the version and records it here, and the console lists it no more.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import datetime

from shared.secret_store import utcnow
from shared.tables import Entity, EntityTable

log = logging.getLogger(__name__)

USED_PARTITION = "secret-used"
DELETED_PARTITION = "secret-deleted"
WRITE_INTERVAL_SECONDS = 300
# Keys are client ids and versions that just authenticated (never a caller's guess): bounded
# anyway, in count, so a client with many versions cannot grow the map without end.
MAX_TRACKED = 10_000


def _row(client_id: str, version: str) -> str:
    return f"{client_id}|{version}"


def _times(rows: list[Entity], client_id: str, column: str) -> dict[str, datetime]:
    prefix = f"{client_id}|"
    found: dict[str, datetime] = {}
    for entity in rows:
        if not entity.row_key.startswith(prefix):
            continue
        try:
            found[entity.row_key[len(prefix) :]] = datetime.fromisoformat(
                str(entity.properties.get(column, ""))
            )
        except ValueError:
            continue
    return found


class SecretUsage:
    """Records and reads the last use of secret versions, and the versions deleted."""

    def __init__(
        self,
        table: EntityTable,
        *,
        interval: float = WRITE_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        executor: Executor | None = None,
    ) -> None:
        self._table = table
        self._interval = interval
        self._clock = clock
        self._executor = executor
        self._written: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def record(self, client_id: str, version: str) -> None:
        """Note that ``version`` just authenticated; writes at most once per interval."""
        key = (client_id, version)
        now = self._clock()
        with self._lock:
            last = self._written.get(key)
            if last is not None and now - last < self._interval:
                return
            self._written[key] = now
            self._written.move_to_end(key)
            while len(self._written) > MAX_TRACKED:
                self._written.popitem(last=False)
        moment = utcnow()
        # RuntimeError: the executor is shutting down with the process.
        with contextlib.suppress(RuntimeError):
            self._background().submit(self._write, client_id, version, moment)

    def _background(self) -> Executor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="secret-usage")
            return self._executor

    def _write(self, client_id: str, version: str, moment: datetime) -> None:
        try:
            self._table.upsert(
                Entity(
                    USED_PARTITION, _row(client_id, version), {"last_used_at": moment.isoformat()}
                )
            )
        except Exception as error:  # a missed "last used" must never disturb anything else
            log.warning(
                "could not record the last use of a secret version: %s", type(error).__name__
            )

    def last_used(self, client_id: str) -> dict[str, datetime]:
        """The recorded last use of each of a client's versions, by version id."""
        return _times(self._table.query_partition(USED_PARTITION), client_id, "last_used_at")

    def deleted(self, client_id: str) -> dict[str, datetime]:
        """When each deleted version of a client was deleted, by version id."""
        return _times(self._table.query_partition(DELETED_PARTITION), client_id, "deleted_at")

    def mark_deleted(self, client_id: str, version: str) -> None:
        """Record that a (disabled) version was deleted, so it is listed no more."""
        self._table.upsert(
            Entity(
                DELETED_PARTITION, _row(client_id, version), {"deleted_at": utcnow().isoformat()}
            )
        )
