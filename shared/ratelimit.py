"""Token-bucket request rates per key (tenant, client), each instance enforcing its share.

A limit is for the whole app: with N instances alive (``shared/instances.py``) each allows
``rate / N`` a second with bursts of ``burst / N`` (never less than one request), so the app as a
whole allows about ``rate``. The error bound, stated in the README: when the platform spreads a
key's requests evenly the app allows its rate, plus at most N requests (one per instance); when
it spreads them unevenly it allows less, down to ``rate / N`` if they all reach one instance;
it allows more only while the count lags the platform (a heartbeat after an instance starts),
by at most one instance's share each. Counting every request in a shared table instead would
cost two Table Storage round trips on every proxied call (``make bench`` measures both).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from shared.settings import Settings


def _alone() -> int:
    return 1


class RateLimiter:
    """Allows ``rate`` requests per second per key, with bursts up to ``burst``, in all."""

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
        instances: Callable[[], int] = _alone,
    ) -> None:
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._max_keys = max_keys
        self._instances = instances
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str) -> int | None:
        """Take one token for ``key``: None when allowed, else whole seconds to wait."""
        share = max(1, self._instances())
        rate = self._rate / share
        burst = max(1.0, self._burst / share)
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (burst, now))
            tokens = min(burst, tokens + (now - last) * rate)
            if tokens >= 1:
                if key not in self._buckets and len(self._buckets) >= self._max_keys:
                    self._buckets.clear()  # full buckets only grant; forgetting them is safe
                self._buckets[key] = (tokens - 1, now)
                return None
            self._buckets[key] = (tokens, now)
            return max(1, math.ceil((1 - tokens) / rate))


@dataclass(frozen=True)
class RequestRates:
    """The proxy's two limits: per tenant and per client."""

    tenant: RateLimiter
    client: RateLimiter

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        instances: Callable[[], int] = _alone,
        clock: Callable[[], float] = time.monotonic,
    ) -> RequestRates:
        """Both limits from the settings, bursts of twice the rate, shared by ``instances``."""
        tenant = settings.tenant_rate_limit_per_second
        client = settings.client_rate_limit_per_second
        return cls(
            RateLimiter(tenant, tenant * 2, clock=clock, instances=instances),
            RateLimiter(client, client * 2, clock=clock, instances=instances),
        )
