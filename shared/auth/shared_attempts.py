"""The failure throttle's counts, shared by every instance (Table Storage), over each one's own.

``SharedAttemptStore`` keeps the three counts of ``FailureThrottle`` (per source, per client and
source, per client) in the ``expiring`` table, so N instances hold a guesser to the same budget
as one: the limits are totals. Windows there are aligned to whole multiples of the window on
the wall clock (every instance computes the same one), so a count never needs more than its one
row; a burst that straddles two windows can fit twice a limit into one window's length, never
more.

- Failures write, successes only read: a failure increments each count at the ETag it read
  (optimistic concurrency), and its verdict is judged on the counts before it, rule by rule; a
  rule over its limit ends the failure's counting, so a throttled source writes no new rows.
  Within one instance, failures on one key take turns (striped locks): contention on a counter
  is between instances only.
- ``check`` reads the source's and the pair's counts (and the client's only when the pair has
  failed): two point reads on a successful token request. ``screen``, the look before a secret
  is checked, asks nothing: it knows what this instance has counted and the verdicts it has seen.
- This instance's ``MemoryAttemptStore`` counts every failure too. When the table cannot answer
  (unreachable, its circuit open, or this instance's share of new rows for the minute used up),
  the verdicts are that store's alone: per instance, so N instances allow N times a limit while
  it lasts, and an ``ALERT`` says so once a minute. Failing closed instead would turn a storage
  hiccup into refusing every token, and the token endpoint fails closed anyway once its cached
  list of clients expires (the cache TTL) while Table Storage is down.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from shared.auth.throttle import MemoryAttemptStore, Rule
from shared.expiring import CapReached, Contended, ExpiringRows, digest
from shared.tables import TableError

log = logging.getLogger(__name__)

NAMESPACE = "throttle"
_STRIPES = 64
_ALERT_EVERY = 60.0


class SharedAttemptStore:
    """``AttemptStore`` whose counts every instance shares, over this instance's own."""

    def __init__(
        self,
        rows: ExpiringRows,
        local: MemoryAttemptStore,
        *,
        window_seconds: float,
        clock: Callable[[], float] = time.time,
        max_known: int = 50_000,
    ) -> None:
        self._rows = rows
        self._local = local
        self._window = window_seconds
        self._clock = clock
        self._max_known = max_known
        # Verdicts seen here: key digest -> end of the window it is blocked for (bounded).
        self._known: OrderedDict[str, float] = OrderedDict()
        self._known_lock = threading.Lock()
        self._stripes = [threading.Lock() for _ in range(_STRIPES)]
        self._alerted_at = -math.inf

    def screen(self, rules: Sequence[Rule]) -> int | None:
        """What this instance knows without a store call: its own counts and verdicts seen."""
        now = self._clock()
        waits = [self._local.blocked(rules), self._known_wait(rules, now)]
        return max((w for w in waits if w is not None), default=None)

    def blocked(self, rules: Sequence[Rule]) -> int | None:
        """Whole seconds to wait when any rule is at its limit across instances, else None."""
        known = self.screen(rules)
        if known is not None:
            return known
        now = self._clock()
        closes = self._closes(now)
        failures: dict[str, int] = {}
        try:
            for rule in rules:
                clean = rule.exempt_while_clean
                if clean is not None and failures.get(clean, 0) == 0:
                    failures[rule.key] = 0  # not enforced for this caller: no need to read it
                    continue
                failures[rule.key] = self._rows.count(rule.key, closes)
        except (TableError, CapReached) as error:
            self._degraded(error)
            return None
        over = [rule for rule in rules if _over(rule, failures)]
        self._remember(over, closes)
        return _wait(closes, now) if over else None

    def fail(self, rules: Sequence[Rule], window: float) -> int | None:
        """Count one failure here and across instances; judged on the counts before it."""
        local = self._local.fail(rules, window)
        now = self._clock()
        closes = self._closes(now)
        before: dict[str, int] = {}
        shared: int | None = None
        answered = True
        try:
            for rule in rules:
                with self._stripes[hash(rule.key) % _STRIPES]:
                    before[rule.key] = self._rows.increment(rule.key, closes)
                if _over(rule, before):
                    shared = _wait(closes, now)
                    break
        except Contended:
            shared = 1  # a burst on this very key from every instance: it is over, surely
        except (TableError, CapReached) as error:
            self._degraded(error)
            answered = False
        # What the next attempt will meet: a count now at its limit blocks it.
        after = {key: count + 1 for key, count in before.items()}
        self._remember([rule for rule in rules if rule.key in after and _over(rule, after)], closes)
        if not answered:
            return local  # the table cannot answer: this instance's counts alone decide
        # The shared counts decide: concurrent failures reach the local and the shared counter
        # in different orders, so the local verdict could refuse one of the first `limit`.
        return shared

    # -- helpers ---------------------------------------------------------------------------------

    def _closes(self, now: float) -> float:
        return (math.floor(now / self._window) + 1) * self._window

    def _known_wait(self, rules: Sequence[Rule], now: float) -> int | None:
        with self._known_lock:
            ends = [self._known.get(digest(rule.key), 0.0) for rule in rules]
        latest = max(ends, default=0.0)
        return _wait(latest, now) if latest > now else None

    def _remember(self, rules: Sequence[Rule], closes: float) -> None:
        # Only rules that bind whoever calls: a client's ceiling spares sources with a clean
        # record, so it is never remembered as a verdict on the client alone.
        keys = [digest(rule.key) for rule in rules if rule.exempt_while_clean is None]
        if not keys:
            return
        with self._known_lock:
            for key in keys:
                self._known[key] = closes
                self._known.move_to_end(key)
            while len(self._known) > self._max_known:
                self._known.popitem(last=False)

    def _degraded(self, error: Exception) -> None:
        now = time.monotonic()
        if now - self._alerted_at >= _ALERT_EVERY:
            self._alerted_at = now
            log.warning(
                "ALERT failure throttle: shared counts unavailable (%s); this instance's own "
                "limits apply alone until they are back",
                error,
            )


def _over(rule: Rule, failures: dict[str, int]) -> bool:
    clean = rule.exempt_while_clean
    if clean is not None and failures.get(clean, 0) == 0:
        return False
    return failures.get(rule.key, 0) >= rule.limit


def _wait(until: float, now: float) -> int:
    return max(1, math.ceil(until - now))
