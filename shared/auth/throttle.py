"""Slows down guessing at the token endpoint (RFC 6749 §2.3.1) without locking the client out.

Every authentication attempt counts against three limits, each over a fixed window that opens
at a key's first counted attempt:

- per client and source address (``limit``): a guesser is slowed down, the real client, which
  calls from elsewhere, is not;
- per source address across clients (``address_limit``): spraying client ids from one address;
- per client from every source (``client_ceiling``, much higher): many addresses guessing one
  client. Over it, a source that has already failed for that client is refused, while a source
  with a clean record still gets through, so even a botnet cannot lock the real client out.

The verdict is atomic with the count: a failure is counted and judged in one step, so of any
number of concurrent wrong guesses at most ``limit`` are answered 401 and the rest 429 (a
check-then-act throttle let a concurrent burst through whole). A right secret is judged
against the counts too, so during a lockout it gets 429 like a wrong one and a guesser learns
nothing. Successful attempts are never counted: a burst of the real client's requests is
never slowed down.

Counts live in an ``AttemptStore``. ``MemoryAttemptStore`` is this instance's memory: per
instance, so on its own a guesser gets N times the budget from N instances.
``shared.auth.shared_attempts.SharedAttemptStore`` puts the counts every instance shares in Table
Storage, over this memory store, which keeps counting on its own if the table cannot answer. The
memory store is bounded in bytes, not only in count: keys are 16-byte digests and at most
``max_keys`` counters are kept, oldest window evicted first in O(1); only failures create one.
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
    this limit is not enforced (a failure still counts toward it).
    """

    key: str
    limit: int
    exempt_while_clean: str | None = None


class AttemptStore(Protocol):
    """Where failure counts live; each call is atomic over all the rules it is given."""

    def screen(self, rules: Sequence[Rule]) -> int | None:
        """What this instance already knows, without asking a shared store: whole seconds to
        wait, or None (which proves nothing: ``blocked`` decides)."""
        ...

    def blocked(self, rules: Sequence[Rule]) -> int | None:
        """Whole seconds to wait when any rule is at its limit, else None."""
        ...

    def fail(self, rules: Sequence[Rule], window: float) -> int | None:
        """Count one failure against every rule and judge it in the same step: None when it
        was within every limit, else the whole seconds to wait."""
        ...


class _Counter:
    __slots__ = ("closes_at", "failures")

    def __init__(self, closes_at: float) -> None:
        self.closes_at = closes_at
        self.failures = 0


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

    def screen(self, rules: Sequence[Rule]) -> int | None:
        """Whole seconds to wait (everything this store knows is local): as ``blocked``."""
        return self.blocked(rules)

    def blocked(self, rules: Sequence[Rule]) -> int | None:
        """Whole seconds to wait when any rule is at its limit, else None."""
        with self._lock:
            now = self._clock()
            failures = {rule.key: self._failures(rule.key, now) for rule in rules}
            return self._verdict(rules, failures, now)

    def fail(self, rules: Sequence[Rule], window: float) -> int | None:
        """Count one failure against every rule, judged on the counts before it."""
        with self._lock:
            now = self._clock()
            counters = {rule.key: self._counter(rule.key, now, window) for rule in rules}
            verdict = self._verdict(rules, {k: c.failures for k, c in counters.items()}, now)
            for counter in counters.values():
                counter.failures += 1
            return verdict

    def _verdict(self, rules: Sequence[Rule], failures: dict[str, int], now: float) -> int | None:
        wait = 0.0
        for rule in rules:
            clean = rule.exempt_while_clean
            if clean is not None and failures.get(clean, 0) == 0:
                continue
            if failures[rule.key] >= rule.limit:
                counter = self._counters[_digest(rule.key)]
                wait = max(wait, counter.closes_at - now, 1.0)
        return max(1, math.ceil(wait)) if wait else None

    def _failures(self, key: str, now: float) -> int:
        counter = self._counters.get(_digest(key))
        return counter.failures if counter is not None and counter.closes_at > now else 0

    def _counter(self, key: str, now: float, window: float) -> _Counter:
        digest = _digest(key)
        counter = self._counters.get(digest)
        if counter is None:
            self._make_room(now)
            counter = self._counters[digest] = _Counter(now + window)
        elif counter.closes_at <= now:
            counter.closes_at = now + window
            counter.failures = 0
            self._counters.move_to_end(digest)
        return counter

    def _make_room(self, now: float) -> None:
        # O(1) amortised: closed windows leave from the front, each once; when the store is
        # still full of open windows, the oldest goes (its caller gets a fresh budget, which a
        # flood of distinct keys had to pay for with max_keys failed attempts).
        while self._counters and next(iter(self._counters.values())).closes_at <= now:
            self._counters.popitem(last=False)
        if len(self._counters) >= self._max_keys:
            self._counters.popitem(last=False)


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

    def screen(self, client_key: str, source: str) -> None:
        """Raise ``Throttled`` when this instance already knows the caller must wait (a cheap
        look before checking a secret; ``check`` afterwards is the verdict)."""
        wait = self._store.screen(self._rules(client_key, source))
        if wait is not None:
            raise Throttled(wait)

    def check(self, client_key: str, source: str) -> None:
        """Raise ``Throttled`` when ``client_key`` from ``source`` must wait; a right secret too."""
        wait = self._store.blocked(self._rules(client_key, source))
        if wait is not None:
            raise Throttled(wait)

    def failed(self, client_key: str, source: str) -> None:
        """Count a failed attempt; raise ``Throttled`` when it was over a limit."""
        wait = self._store.fail(self._rules(client_key, source), self._window)
        if wait is not None:
            raise Throttled(wait)

    def _rules(self, client_key: str, source: str) -> tuple[Rule, ...]:
        pair = f"pair\0{client_key}\0{source}"
        # The source first: a shared store stops counting at the first rule over its limit, so
        # a source spraying client ids past its limit writes no new counters.
        return (
            Rule(f"source\0{source}", self._address_limit),
            Rule(pair, self._limit),
            Rule(f"client\0{client_key}", self._ceiling, exempt_while_clean=pair),
        )
