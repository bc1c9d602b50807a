"""A circuit breaker per dependency: stop calling one that keeps failing, probe it later.

The proxy keeps one per provider base URL (``shared/proxy/transport.py``); Table Storage and
Key Vault have one each (``shared/tables.py``, ``shared/keyvault_store.py``), so a hung store
costs a few timed-out calls, not every request's worker for the SDK's whole timeout.

States, per key:

- **closed**: calls pass; consecutive failures are counted, a success resets the count.
  ``failure_threshold`` consecutive failures open the circuit.
- **open**: ``before_call`` raises the caller's ``refusal`` (a 503 with ``Retry-After`` = the
  seconds left), so a dead dependency costs its callers nothing and gets no traffic meanwhile.
- **half-open**: once ``open_seconds`` have passed, exactly one caller (the probe) is let through;
  everyone else is still refused while it runs. The probe's ``record_success`` closes the
  circuit, its ``record_failure`` opens it again for another ``open_seconds``.

A caller that was let through must report exactly one of ``record_success``, ``record_failure``
or ``release`` (it made no call after all, e.g. its credential could not be obtained). A probe that
never reports is not fatal: its lease runs out after ``open_seconds`` and another probe is let
through.

State is per process (per Functions instance): each instance learns about a failing dependency
on its own, after ``failure_threshold`` failures of its own.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "CircuitBreaker", "CircuitOpen", "guarded"]

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half-open"

T = TypeVar("T")


class CircuitOpen(Exception):
    """The dependency's calls are paused; retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"calls are paused for {retry_after} s")
        self.retry_after = retry_after


@dataclass
class _Circuit:
    failures: int = 0
    opened_at: float | None = None
    probe_started_at: float | None = None


class CircuitBreaker:
    """Consecutive-failure circuit breaker keyed by provider; thread-safe."""

    def __init__(
        self,
        failure_threshold: int,
        open_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        refusal: Callable[[int], Exception] = CircuitOpen,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if open_seconds <= 0:
            raise ValueError("open_seconds must be positive")
        self._threshold = failure_threshold
        self._open_seconds = float(open_seconds)
        self._clock = clock
        self._refusal = refusal
        self._lock = threading.Lock()
        self._circuits: dict[str, _Circuit] = {}

    @property
    def failure_threshold(self) -> int:
        """Consecutive failures that open a circuit."""
        return self._threshold

    @property
    def open_seconds(self) -> float:
        """How long an open circuit refuses calls before it lets one probe through."""
        return self._open_seconds

    def before_call(self, key: str) -> None:
        """Return when a call to ``key`` may go ahead; raise the refusal (a 503) otherwise."""
        with self._lock:
            circuit = self._circuits.get(key)
            if circuit is None or circuit.opened_at is None:
                return
            now = self._clock()
            reopen_at = circuit.opened_at + self._open_seconds
            if now < reopen_at:
                raise self._refused(reopen_at - now)
            probe = circuit.probe_started_at
            if probe is not None and now < probe + self._open_seconds:
                # One probe is in flight: the others wait for its verdict (or its lease to end).
                raise self._refused(probe + self._open_seconds - now)
            circuit.probe_started_at = now

    def record_success(self, key: str) -> None:
        """The call reached the provider and it answered: close the circuit."""
        with self._lock:
            self._circuits.pop(key, None)

    def record_failure(self, key: str) -> None:
        """The call failed (no answer, timeout, 502/503/504)."""
        with self._lock:
            circuit = self._circuits.setdefault(key, _Circuit())
            now = self._clock()
            if circuit.opened_at is not None:
                if circuit.probe_started_at is not None:
                    # The probe failed (or a straggler failed during the probe): open again.
                    circuit.opened_at = now
                    circuit.probe_started_at = None
                # Stragglers that started before the circuit opened change nothing.
                return
            circuit.failures += 1
            if circuit.failures >= self._threshold:
                circuit.opened_at = now
                circuit.probe_started_at = None

    def release(self, key: str) -> None:
        """The caller was let through but made no call: give the probe slot back, if it held it."""
        with self._lock:
            circuit = self._circuits.get(key)
            if circuit is not None and circuit.opened_at is not None:
                circuit.probe_started_at = None

    def _refused(self, seconds: float) -> Exception:
        return self._refusal(max(1, math.ceil(seconds)))

    def state(self, key: str) -> str:
        """``closed``, ``open`` or ``half-open`` (the open period is over, a probe may run)."""
        with self._lock:
            circuit = self._circuits.get(key)
            if circuit is None or circuit.opened_at is None:
                return CLOSED
            if self._clock() < circuit.opened_at + self._open_seconds:
                return OPEN
            return HALF_OPEN


def guarded(
    breaker: CircuitBreaker,
    key: str,
    call: Callable[[], T],
    *,
    failure: type[Exception],
    answer: type[Exception],
) -> T:
    """``call()`` through ``breaker``: ``failure`` counts against the dependency, a result or an
    ``answer`` (not found, disabled, ...) shows it alive, anything else decides nothing."""
    breaker.before_call(key)
    try:
        result = call()
    except failure:
        breaker.record_failure(key)
        raise
    except answer:
        breaker.record_success(key)
        raise
    except BaseException:
        breaker.release(key)
        raise
    breaker.record_success(key)
    return result
