"""Revoked access tokens (RFC 7009): shared by every instance, learnt by each once an interval.

A revocation is a row of the ``expiring`` table (namespace ``revoked``), keyed by the token's
``jti`` and expiring with the token: once the token would have expired anyway the row is worth
nothing and is swept. Each instance keeps the digests of the live rows in memory and reads them
again at most once per ``interval`` seconds (``EHRB_CACHE_TTL_SECONDS``, the documented delay
for every way of stopping a token), with one range query that costs what it returns: no table
read per request. The instance that records a revocation knows it at once. When the set is due
and the table cannot be read, requests fail closed (503), as every cached lookup does
(docs/security.md §3, "Failing closed"): a revocation is never missed for an outage.

Bounded: each instance records at most ``MAX_NEW_PER_MINUTE`` revocations a minute (past that,
``CapReached``: the client is told to retry), so the table, and the set every instance keeps,
hold at most that many x instances x the token lifetime in minutes. Only an authenticated
client can revoke, and only its own tokens.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Final

from shared.expiring import ExpiringRows, digest
from shared.tables import StoreUnavailable, TableError

log = logging.getLogger(__name__)

NAMESPACE: Final = "revoked"
MAX_NEW_PER_MINUTE: Final = 1_000
RETRY_SECONDS: Final = 5.0
"""After a failed read, the next attempt waits this long; requests meanwhile fail closed."""


class RevokedTokens:
    """Which token ids are revoked, as this instance last read them."""

    def __init__(
        self,
        rows: ExpiringRows,
        interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rows = rows
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._known: frozenset[str] = frozenset()
        self._mine: set[str] = set()
        self._next_read = float("-inf")
        self._failed_until = float("-inf")

    def revoke(self, jti: str, expires_at: float) -> None:
        """Record ``jti`` as revoked until ``expires_at``; CapReached past this instance's share."""
        self._rows.put(jti, expires_at, {"kind": "access_token"})
        with self._lock:
            self._mine.add(digest(jti))

    def is_revoked(self, jti: str) -> bool:
        """Whether ``jti`` was revoked (anywhere at the last read, or here at any time)."""
        self._read_if_due()
        key = digest(jti)
        return key in self._known or key in self._mine

    def _read_if_due(self) -> None:
        now = self._clock()
        if now < self._next_read:
            return
        with self._lock:
            if now < self._next_read:
                return  # another thread read meanwhile
            if now < self._failed_until:
                # No stale serving (docs/security.md §3): the set is past its interval.
                raise StoreUnavailable("the revoked-token list cannot be read")
            try:
                rows = self._rows.live()
            except (StoreUnavailable, TableError) as error:
                # One attempt per RETRY_SECONDS; the requests between fail closed at once.
                self._failed_until = now + RETRY_SECONDS
                log.warning("revoked tokens cannot be read: %s", error)
                raise StoreUnavailable("the revoked-token list cannot be read") from None
            self._known = frozenset(row.row_key for row in rows)
            # What this instance wrote is in the table now; the set it kept can start over.
            self._mine.clear()
            self._next_read = now + self._interval
