"""A small TTL cache with single-flight fills, shared by every lookup that hits a store."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class TTLCache(Generic[V]):
    """Values expire ``ttl`` seconds after they were loaded; one loader runs per key at a time.

    Single-flight matters when Key Vault throttles: a burst of token requests for one client
    makes one Key Vault call, not a hundred. For the same reason a failed load is shared: the
    callers that waited for it, and those arriving within ``failure_ttl`` seconds, get the same
    error without calling the store again.
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
        self._failures: dict[Hashable, tuple[float, Exception]] = {}
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[Hashable, tuple[float, V]] = {}
        self._guard = threading.Lock()
        self._key_locks: dict[Hashable, threading.Lock] = {}

    def get(
        self,
        key: Hashable,
        load: Callable[[], V],
        *,
        ttl: float | Callable[[V], float] | None = None,
    ) -> V:
        """The cached value for ``key``, loading it (once, under a per-key lock) when stale.

        ``ttl`` overrides the default lifetime, or computes it from the loaded value.
        """
        hit = self._fresh(key)
        if hit is not None:
            return hit[1]
        with self._guard:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            hit = self._fresh(key)
            if hit is not None:
                return hit[1]
            failed = self._failures.get(key)
            if failed is not None and failed[0] > self._clock():
                raise failed[1]
            try:
                value = load()
            except Exception as error:
                self._remember_failure(key, error)
                raise
            self._failures.pop(key, None)
            lifetime = self._ttl if ttl is None else ttl(value) if callable(ttl) else ttl
            self._store(key, value, lifetime)
            return value

    def _remember_failure(self, key: Hashable, error: Exception) -> None:
        with self._guard:
            now = self._clock()
            if len(self._failures) >= self._max_entries:
                self._failures = {k: f for k, f in self._failures.items() if f[0] > now}
            if len(self._failures) < self._max_entries:
                self._failures[key] = (now + self._failure_ttl, error)

    def invalidate(self, key: Hashable) -> None:
        """Forget ``key`` so the next ``get`` loads it again."""
        with self._guard:
            self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget everything."""
        with self._guard:
            self._entries.clear()
            self._failures.clear()

    def _fresh(self, key: Hashable) -> tuple[float, V] | None:
        entry = self._entries.get(key)
        if entry is not None and entry[0] > self._clock():
            return entry
        return None

    def _store(self, key: Hashable, value: V, ttl: float) -> None:
        with self._guard:
            if len(self._entries) >= self._max_entries:
                now = self._clock()
                for stale in [k for k, (exp, _) in self._entries.items() if exp <= now]:
                    del self._entries[stale]
                if len(self._entries) >= self._max_entries:
                    # Still full of live entries: drop the oldest-expiring one.
                    del self._entries[min(self._entries, key=lambda k: self._entries[k][0])]
                # Keep locks someone holds: a loader may be running for a key not stored yet.
                self._key_locks = {
                    k: lock
                    for k, lock in self._key_locks.items()
                    if k in self._entries or lock.locked()
                }
            self._entries[key] = (self._clock() + ttl, value)
