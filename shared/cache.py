"""A small TTL cache with single-flight fills, shared by every lookup that hits a store.

Anonymous callers can make this cache load keys of their choosing (a random bearer token, an
unknown client id), so everything it keeps is bounded: at most ``max_entries`` values and
``max_entries`` remembered failures, evicted oldest first in O(1); a per-key flight exists only
while that key's load runs; and a failure is kept without its traceback, whose frames would
otherwise keep the request that caused it (1 MiB of body, say) alive.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


def detached(error: Exception) -> Exception:
    """A copy of ``error`` with no traceback, cause or context: nothing that holds a frame.

    Raising one exception object from several threads would also grow its traceback with
    each raise, so every waiter gets a copy of its own.
    """
    clone = error.__class__.__new__(error.__class__)
    clone.__dict__.update(error.__dict__)
    clone.args = error.args
    return clone


class _Entry(Generic[V]):
    __slots__ = ("expires", "refreshed", "value")

    def __init__(self, expires: float, value: V, refreshed: float | None) -> None:
        self.expires = expires
        self.value = value
        self.refreshed = refreshed


class _Flight(Generic[V]):
    """One load in progress; the callers that arrive meanwhile wait for its outcome."""

    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: V | None = None
        self.error: Exception | None = None

    def outcome(self) -> V:
        self.done.wait()
        if self.error is not None:
            raise detached(self.error)
        return self.value  # type: ignore[return-value]


class TTLCache(Generic[V]):
    """Values expire ``ttl`` seconds after they were loaded; one loader runs per key at a time.

    Single-flight matters when Key Vault throttles: a burst of token requests for one client
    makes one Key Vault call, not a hundred. For the same reason a failed load is shared: the
    callers that waited for it, and those arriving within ``failure_ttl`` seconds, get the same
    error without calling the store again. With ``failure_ttl`` 0 nothing of a failure is kept.
    """

    def __init__(
        self,
        ttl: float,
        *,
        failure_ttl: float = 1.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._failure_ttl = failure_ttl
        self._max_entries = max_entries
        self._clock = clock
        # Insertion order is (nearly) expiry order: the front is what to evict first.
        self._entries: OrderedDict[Hashable, _Entry[V]] = OrderedDict()
        self._failures: OrderedDict[Hashable, tuple[float, Exception]] = OrderedDict()
        self._flights: dict[Hashable, _Flight[V]] = {}
        self._guard = threading.Lock()

    def get(
        self,
        key: Hashable,
        load: Callable[[], V],
        *,
        ttl: float | Callable[[V], float] | None = None,
    ) -> V:
        """The cached value for ``key``, loading it (once, whoever else asks) when stale.

        ``ttl`` overrides the default lifetime, or computes it from the loaded value.
        """
        entry = self._entries.get(key)
        if entry is not None and entry.expires > self._clock():
            return entry.value
        return self._load(key, load, ttl, refresh_interval=None)

    def peek(self, key: Hashable) -> V | None:
        """The fresh value for ``key`` without loading anything, else None."""
        entry = self._entries.get(key)
        if entry is not None and entry.expires > self._clock():
            return entry.value
        return None

    def refresh(
        self,
        key: Hashable,
        load: Callable[[], V],
        *,
        min_interval: float,
        ttl: float | Callable[[V], float] | None = None,
    ) -> V:
        """``key`` loaded again, unless a refresh loaded it less than ``min_interval`` ago.

        For "the cached value may be stale, look again" on a miss: however many callers miss
        at once or in a row, the store sees at most one refresh per key per interval.
        """
        return self._load(key, load, ttl, refresh_interval=min_interval)

    def invalidate(self, key: Hashable) -> None:
        """Forget ``key`` so the next ``get`` loads it again."""
        with self._guard:
            self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget everything."""
        with self._guard:
            self._entries.clear()
            self._failures.clear()

    def _load(
        self,
        key: Hashable,
        load: Callable[[], V],
        ttl: float | Callable[[V], float] | None,
        *,
        refresh_interval: float | None,
    ) -> V:
        with self._guard:
            now = self._clock()
            entry = self._entries.get(key)
            if entry is not None and entry.expires > now:
                if refresh_interval is None:
                    return entry.value
                if entry.refreshed is not None and now - entry.refreshed < refresh_interval:
                    return entry.value
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                failed = self._failures.get(key)
                if failed is not None and failed[0] > now:
                    raise detached(failed[1])
                flight = self._flights[key] = _Flight()
        if not leader:
            return flight.outcome()
        try:
            value = load()
            lifetime = self._ttl if ttl is None else ttl(value) if callable(ttl) else ttl
        except BaseException as error:
            # Whatever happens, the flight ends: waiters must never wait on a dead one.
            shared = isinstance(error, Exception)
            if isinstance(error, Exception):
                flight.error = detached(error)
            else:
                flight.error = RuntimeError("the load was interrupted")
            with self._guard:
                del self._flights[key]
                if shared and self._failure_ttl > 0:
                    self._remember_failure(key, flight.error)
            flight.done.set()
            raise
        flight.value = value
        with self._guard:
            del self._flights[key]
            self._failures.pop(key, None)
            refreshed = now if refresh_interval is not None else None
            self._store(key, _Entry(self._clock() + lifetime, value, refreshed))
        flight.done.set()
        return value

    def _remember_failure(self, key: Hashable, error: Exception) -> None:
        # Under the guard. Failures share one lifetime, so the front is the oldest.
        self._failures.pop(key, None)
        if len(self._failures) >= self._max_entries:
            self._failures.popitem(last=False)
        self._failures[key] = (self._clock() + self._failure_ttl, error)

    def _store(self, key: Hashable, entry: _Entry[V]) -> None:
        # Under the guard. O(1) amortised: expired entries leave from the front, each once;
        # when the cache is still full the oldest entry goes.
        self._entries.pop(key, None)
        if len(self._entries) >= self._max_entries:
            now = self._clock()
            while self._entries and next(iter(self._entries.values())).expires <= now:
                self._entries.popitem(last=False)
            if len(self._entries) >= self._max_entries:
                self._entries.popitem(last=False)
        self._entries[key] = entry
