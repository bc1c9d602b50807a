"""Slows down repeated failures per key (client_id, source address): RFC 6749 §2.3.1 asks the
token endpoint to resist brute force. Counts live in this instance's memory only, so the limit
is per instance; with N instances an attacker gets at most N times the budget.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable


class FailureThrottle:
    """Blocks a key for the rest of the window once it has ``limit`` failures in it."""

    def __init__(
        self,
        limit: int,
        window_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self._limit = limit
        self._window = window_seconds
        self._clock = clock
        self._max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, key: str) -> int | None:
        """Whole seconds until ``key`` may try again, or None when it may try now."""
        now = self._clock()
        with self._lock:
            times = self._failures.get(key)
            if not times:
                return None
            self._expire(times, now)
            if len(times) < self._limit:
                return None
            return max(1, math.ceil(times[0] + self._window - now))

    def record_failure(self, key: str) -> None:
        """Count one failure for ``key``."""
        now = self._clock()
        with self._lock:
            if key not in self._failures and len(self._failures) >= self._max_keys:
                self._prune(now)
            times = self._failures.setdefault(key, deque())
            self._expire(times, now)
            times.append(now)
            # Keep only what decides the outcome: memory stays bounded under a flood.
            while len(times) > self._limit:
                times.popleft()

    def _expire(self, times: deque[float], now: float) -> None:
        while times and times[0] <= now - self._window:
            times.popleft()

    def _prune(self, now: float) -> None:
        for key in list(self._failures):
            times = self._failures[key]
            self._expire(times, now)
            if not times:
                del self._failures[key]
        if len(self._failures) >= self._max_keys:
            # A flood of distinct keys: forget the oldest half rather than grow without bound.
            oldest = sorted(self._failures, key=lambda k: self._failures[k][-1])
            for key in oldest[: len(oldest) // 2]:
                del self._failures[key]
