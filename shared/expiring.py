"""Rows every instance shares and that expire: counters, markers and leases in Table Storage.

Table Storage keeps no time to live, so a row's partition says when it expires:
``<namespace>.<bucket>.<shard>``, the bucket being its expiry time in whole ``BUCKET_SECONDS``
(zero-padded, so partitions sort by time) and the shard the first hex digit of its key's digest
(16 partitions share a bucket's writes; one partition serves about 2,000 entities a second).
Whoever knows a key and the expiry it was written with computes its partition, so every read
and write is a point operation. Keys are kept as 16-byte BLAKE2b digests: a client id or an
address is never written, and a long key costs what a short one does.

Bounded, because anonymous callers create these rows (a failed authentication does one):

- by time: a row is worth nothing once it has expired (reads ignore it), and the buckets that
  have closed are swept, at most once a bucket, by the one instance that wins that bucket's
  lease row: a PartitionKey range query (the table's one index is PartitionKey then RowKey, so a
  range costs what it returns) and transactions of up to 100 deletes;
- by count: each instance creates at most ``max_new`` rows a bucket; past that, creating calls
  raise ``CapReached`` and the caller falls back on what it keeps in memory. The table holds at
  most ``max_new`` x instances x the buckets not yet swept (two or three).

``increment`` is a shared counter (optimistic concurrency: read, replace at the ETag read, read
again on a conflict). ``insert_if_absent`` is what a replay cache needs: a ``jti`` already seen
before its expiry is a replay (none exists yet; SMART's signed client assertions will need it).
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any, Final

from shared.tables import (
    Entity,
    EntityChanged,
    EntityExists,
    EntityNotFound,
    EntityTable,
    StoreUnavailable,
    TableError,
)

log = logging.getLogger(__name__)

BUCKET_SECONDS: Final = 60
MAX_ATTEMPTS: Final = 16
"""Reads and replaces of one counter before ``Contended``: each lost round means another
writer won one, so this bounds how long a burst on one key can keep a writer waiting."""
SWEEP_ROWS: Final = 20_000
"""Most rows one sweep deletes; what is left waits for the next bucket's sweep."""
_PAGE: Final = 1_000
_LEASE: Final = "sweep"


class CapReached(Exception):
    """This instance has created its share of rows for the current bucket."""


class Contended(Exception):
    """A counter kept changing under us: another writer won every round."""


def digest(key: str) -> str:
    """The row key of ``key``: 32 hex characters whatever its length."""
    return hashlib.blake2b(key.encode("utf-8"), digest_size=16).hexdigest()


LEASE_ROW: Final = digest(_LEASE)
"""The row key of a bucket's sweep lease (a row like the others, swept with them)."""


class ExpiringRows:
    """One namespace of the ``expiring`` table."""

    def __init__(
        self,
        table: EntityTable,
        namespace: str,
        *,
        max_new: int = 20_000,
        clock: Callable[[], float] = time.time,
        background: bool = True,
    ) -> None:
        if not namespace.isalnum():
            raise ValueError("a namespace is letters and digits (it prefixes partition keys)")
        self._table = table
        self._namespace = namespace
        self._max_new = max_new
        self._clock = clock
        self._background = background
        self._lock = threading.Lock()
        self._created: defaultdict[int, int] = defaultdict(int)
        self._swept_bucket = -1

    # -- reads and writes ------------------------------------------------------------------------

    def count(self, key: str, expires_at: float) -> int:
        """The counter ``key`` written with ``expires_at``; 0 when absent or expired."""
        row = self._get(key, expires_at)
        return _count(row) if row is not None and self._live(row) else 0

    def increment(self, key: str, expires_at: float) -> int:
        """Add one to the counter ``key`` (expiring at ``expires_at``); its value before.

        CapReached when it would be a new row past this instance's share; Contended when every
        round of read-and-replace lost to another writer.
        """
        self._maybe_sweep()
        partition, row_key = self._keys(key, expires_at)
        for _ in range(MAX_ATTEMPTS):
            row = self._get(key, expires_at)
            fresh = {"expires": float(expires_at), "count": 1}
            try:
                if row is None:
                    self._create(Entity(partition, row_key, fresh))
                    return 0
                if not self._live(row):
                    self._table.replace(Entity(partition, row_key, fresh, row.etag))
                    return 0
                before = _count(row)
                counted = {**row.properties, "count": before + 1}
                self._table.replace(Entity(partition, row_key, counted, row.etag))
                return before
            except (EntityExists, EntityChanged, EntityNotFound):
                continue  # another writer came first: read its count and try again
        raise Contended(f"{self._namespace}: {MAX_ATTEMPTS} rounds lost")

    def insert_if_absent(
        self, key: str, expires_at: float, properties: Mapping[str, Any] | None = None
    ) -> bool:
        """Write ``key`` unless a live row has it: True when this call wrote it."""
        self._maybe_sweep()
        partition, row_key = self._keys(key, expires_at)
        fresh = {**(properties or {}), "expires": float(expires_at)}
        try:
            self._create(Entity(partition, row_key, fresh))
            return True
        except EntityExists:
            pass
        row = self._get(key, expires_at)
        if row is not None and self._live(row):
            return False
        try:
            if row is None:
                self._table.create(Entity(partition, row_key, fresh))
            else:
                self._table.replace(Entity(partition, row_key, fresh, row.etag))
        except (EntityExists, EntityChanged, EntityNotFound):
            return False  # another writer took it in between: theirs
        return True

    def put(self, key: str, expires_at: float, properties: Mapping[str, Any] | None = None) -> None:
        """Write ``key`` whatever was there (the same key at another expiry is another row)."""
        self._maybe_sweep()
        partition, row_key = self._keys(key, expires_at)
        self._charge()
        self._table.upsert(
            Entity(partition, row_key, {**(properties or {}), "expires": float(expires_at)})
        )

    def live(self) -> list[Entity]:
        """Every unexpired row of the namespace (for small namespaces: instances alive)."""
        now = self._clock()
        rows = self._table.query(
            "PartitionKey ge @lo and PartitionKey lt @hi",
            {"lo": self._partition_prefix(int(now // BUCKET_SECONDS)), "hi": self._namespace + "/"},
        )
        return [row for row in rows if self._live(row, now) and row.row_key != LEASE_ROW]

    # -- bounds ----------------------------------------------------------------------------------

    def sweep(self) -> int:
        """Delete the rows of buckets that have closed (at most ``SWEEP_ROWS``); how many."""
        closed = int(self._clock() // BUCKET_SECONDS)
        deleted = 0
        while deleted < SWEEP_ROWS:
            rows = self._table.query(
                "PartitionKey ge @lo and PartitionKey lt @hi",
                {"lo": self._namespace + ".", "hi": self._partition_prefix(closed)},
                select=["expires"],
                limit=_PAGE,
            )
            if not rows:
                break
            by_partition: defaultdict[str, list[str]] = defaultdict(list)
            for row in rows:
                by_partition[row.partition_key].append(row.row_key)
            for partition, keys in by_partition.items():
                for start in range(0, len(keys), 100):
                    deleted += self._delete(partition, keys[start : start + 100])
        return deleted

    def _delete(self, partition: str, keys: list[str]) -> int:
        try:
            self._table.delete_batch(partition, keys)
        except EntityNotFound:
            # Another sweeper took some of them: the rest one by one (a missing row is no error).
            for key in keys:
                self._table.delete(partition, key)
        return len(keys)

    def _create(self, entity: Entity) -> None:
        """Create a row, counted against this instance's share (a row that exists costs none)."""
        self._charge()
        try:
            self._table.create(entity)
        except EntityExists:
            with self._lock:
                self._created[int(self._clock() // BUCKET_SECONDS)] -= 1
            raise

    def _charge(self) -> None:
        bucket = int(self._clock() // BUCKET_SECONDS)
        with self._lock:
            if self._created[bucket] >= self._max_new:
                raise CapReached(f"{self._namespace}: {self._max_new} new rows this minute")
            self._created[bucket] += 1
            for old in [b for b in self._created if b < bucket]:
                del self._created[old]

    def _maybe_sweep(self) -> None:
        bucket = int(self._clock() // BUCKET_SECONDS)
        with self._lock:
            if bucket <= self._swept_bucket:
                return
            self._swept_bucket = bucket
        if self._background:
            threading.Thread(target=self._sweep_once, name="expiring-sweep", daemon=True).start()
        else:
            self._sweep_once()

    def _sweep_once(self) -> None:
        """Sweep if this instance wins the lease of the current bucket; never raises."""
        now = self._clock()
        lease_ends = (math.floor(now / BUCKET_SECONDS) + 1) * BUCKET_SECONDS
        partition, row_key = self._keys(_LEASE, lease_ends)
        try:
            self._table.create(Entity(partition, row_key, {"expires": float(lease_ends)}))
        except EntityExists:
            return  # another instance sweeps this bucket
        except TableError as error:
            log.warning("expiring rows (%s): no sweep this minute: %s", self._namespace, error)
            return
        try:
            deleted = self.sweep()
        except (StoreUnavailable, TableError) as error:
            log.warning("expiring rows (%s): sweep stopped: %s", self._namespace, error)
            return
        if deleted:
            log.info("expiring rows (%s): swept %d expired rows", self._namespace, deleted)

    # -- keys ------------------------------------------------------------------------------------

    def _keys(self, key: str, expires_at: float) -> tuple[str, str]:
        row_key = digest(key)
        bucket = int(expires_at // BUCKET_SECONDS)
        return f"{self._partition_prefix(bucket)}.{row_key[0]}", row_key

    def _partition_prefix(self, bucket: int) -> str:
        return f"{self._namespace}.{bucket:010d}"

    def _get(self, key: str, expires_at: float) -> Entity | None:
        try:
            return self._table.get(*self._keys(key, expires_at))
        except EntityNotFound:
            return None

    def _live(self, row: Entity, now: float | None = None) -> bool:
        expires = row.properties.get("expires")
        moment = self._clock() if now is None else now
        return isinstance(expires, int | float) and expires > moment


def _count(row: Entity) -> int:
    value = row.properties.get("count")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
