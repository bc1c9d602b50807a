"""Slows down guessing at the token endpoint (RFC 6749 §2.3.1) without locking the client out.

Every authentication attempt counts against three limits, each over a fixed window that opens
at a key's first counted attempt:

- per client and source address (``limit``): a guesser is slowed down, the real client, which
  calls from elsewhere, is not;
- per source address across clients (``address_limit``): spraying client ids from one address;
- per client from every source (``client_ceiling``, much higher): many addresses guessing one
  client. Over it, a source that has already failed for that client is refused, while a source
  with a clean record still gets through, so even a botnet cannot lock the real client out.

The check is atomic: an attempt is *reserved* against every limit before the secret is looked
at, and pending attempts count, so a burst of concurrent guesses cannot all be evaluated. It
ends as a failure (counted) or not (forgotten).

Counts live in an ``AttemptStore``. ``MemoryAttemptStore`` is this instance's memory: per
instance, so with N instances a guesser gets N times the budget; a shared store can replace it
(the interface is two atomic calls). It is bounded in bytes, not only in count: keys are
16-byte digests and at most ``max_keys`` counters are kept, oldest window evicted first in O(1).
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol


class Throttled(Exception):
    """Too many failed attempts: try again after ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"throttled for {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Rule:
    """One limit an attempt counts against.

    ``exempt_while_clean`` names another key: while that key has no failure in its window,
    this limit is not enforced (the attempt still counts toward it).
    """

    key: str
    limit: int
    exempt_while_clean: str | None = None


class AttemptStore(Protocol):
    """Where attempt counts live; both calls are atomic over all the rules they are given."""

    def reserve(self, rules: Sequence[Rule], window: float) -> int | None:
        """Count one pending attempt against every rule and return None, or, when any rule is
        at its limit, count nothing and return the whole seconds to wait."""
        ...

    def settle(self, rules: Sequence[Rule], *, failed: bool) -> None:
        """End a reserved attempt: keep it as a failure, or forget it."""
        ...


class _Counter:
    __slots__ = ("closes_at", "failures", "pending")

    def __init__(self, closes_at: float) -> None:
        self.closes_at = closes_at
        self.failures = 0
        self.pending = 0


def _digest(key: str) -> bytes:
    # Fixed-size keys: however long a caller's client id or address, a counter costs the same.
    return hashlib.blake2b(key.encode("utf-8"), digest_size=16).digest()


class MemoryAttemptStore:
    """``AttemptStore`` in this process's memory, at most ``max_keys`` counters (~12 MB)."""

    def __init__(
        self, *, max_keys: int = 50_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max_keys = max_keys
        self._clock = clock
        # Ordered by when each counter's window opened, hence by when it closes.
        self._counters: OrderedDict[bytes, _Counter] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._counters)

    def reserve(self, rules: Sequence[Rule], window: float) -> int | None:
        """Count one pending attempt against every rule, or none and return the wait."""
        with self._lock:
            now = self._clock()
            counters = {rule.key: self._counter(_digest(rule.key), now, window) for rule in rules}
            wait = 0.0
            for rule in rules:
                counter = counters[rule.key]
                clean = rule.exempt_while_clean
                if clean is not None and counters[clean].failures == 0:
                    continue
                if counter.failures + counter.pending >= rule.limit:
                    # Pending attempts alone only hold a caller back until they settle.
                    left = counter.closes_at - now if counter.failures >= rule.limit else 1.0
                    wait = max(wait, left)
            if wait > 0:
                for rule in rules:
                    self._forget_if_empty(_digest(rule.key))
                return max(1, math.ceil(wait))
            for counter in counters.values():
                counter.pending += 1
            return None

    def settle(self, rules: Sequence[Rule], *, failed: bool) -> None:
        """Keep the reserved attempt as a failure, or forget it."""
        with self._lock:
            for rule in rules:
                digest = _digest(rule.key)
                counter = self._counters.get(digest)
                if counter is None:  # evicted meanwhile: nothing to settle
                    continue
                counter.pending = max(0, counter.pending - 1)
                if failed:
                    counter.failures += 1
                self._forget_if_empty(digest)

    def _counter(self, digest: bytes, now: float, window: float) -> _Counter:
        counter = self._counters.get(digest)
        if counter is None:
            self._make_room(now)
            counter = self._counters[digest] = _Counter(now + window)
        elif counter.closes_at <= now:
            counter.closes_at = now + window
            counter.failures = 0
            self._counters.move_to_end(digest)
        return counter

    def _forget_if_empty(self, digest: bytes) -> None:
        counter = self._counters.get(digest)
        if counter is not None and counter.failures == 0 and counter.pending == 0:
            del self._counters[digest]

    def _make_room(self, now: float) -> None:
        # O(1) amortised: closed windows leave from the front, each once; when the store is
        # still full of open windows, the oldest goes (its caller gets a fresh budget, which a
        # flood of distinct keys had to pay for with max_keys failed attempts).
        while self._counters and next(iter(self._counters.values())).closes_at <= now:
            self._counters.popitem(last=False)
        if len(self._counters) >= self._max_keys:
            self._counters.popitem(last=False)


class Attempt:
    """One reserved authentication attempt; end it exactly once."""

    def __init__(self, store: AttemptStore, rules: Sequence[Rule]) -> None:
        self._store = store
        self._rules = rules
        self._ended = False

    def failed(self) -> None:
        """The credentials were wrong: count it."""
        self._end(failed=True)

    def succeeded(self) -> None:
        """The credentials were right: forget it."""
        self._end(failed=False)

    def abandoned(self) -> None:
        """Nothing was decided (a store could not answer): forget it."""
        self._end(failed=False)

    def _end(self, *, failed: bool) -> None:
        if not self._ended:
            self._ended = True
            self._store.settle(self._rules, failed=failed)


class FailureThrottle:
    """The token endpoint's limits on failed client authentications."""

    def __init__(
        self,
        store: AttemptStore,
        *,
        limit: int,
        address_limit: int,
        client_ceiling: int,
        window_seconds: float,
    ) -> None:
        self._store = store
        self._limit = limit
        self._address_limit = address_limit
        self._ceiling = client_ceiling
        self._window = window_seconds

    def begin(self, client_key: str, source: str) -> Attempt:
        """Reserve an attempt by ``client_key`` from ``source``, or raise ``Throttled``."""
        pair = f"pair\0{client_key}\0{source}"
        rules = (
            Rule(pair, self._limit),
            Rule(f"source\0{source}", self._address_limit),
            Rule(f"client\0{client_key}", self._ceiling, exempt_while_clean=pair),
        )
        wait = self._store.reserve(rules, self._window)
        if wait is not None:
            raise Throttled(wait)
        return Attempt(self._store, rules)
