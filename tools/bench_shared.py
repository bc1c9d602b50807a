"""``make bench``, shared-state part: what sharing the protections across instances costs.

The rate limits' hot path (every proxied request) with each instance's share of the limit,
against a count kept in Table Storage for every request (what the rate limits would cost if they
counted every request in a shared row: a read and a replace at its ETag, and with three
instances on one tenant, conflicts); and the failure throttle's success path (two point reads of
the shared counts) against the per-instance store alone. Azurite on loopback, so the Table
Storage figures are a floor for Azure's (a round trip in a region is a few milliseconds).
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from tools.bench import percentile

if TYPE_CHECKING:
    from tools.bench import BenchFixture


def _timed(call: Any, count: int) -> list[float]:
    latencies = []
    for _ in range(count):
        began = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - began)
    return latencies


def _figures(latencies: list[float], scale: float = 1e3) -> dict[str, float]:
    return {
        "p50": percentile(latencies, 0.50) * scale,
        "p99": percentile(latencies, 0.99) * scale,
        "count": len(latencies),
    }


def measure_shared(fixture: BenchFixture, *, calls: int = 400) -> dict[str, Any]:
    """The figures, each over ``calls`` calls (the contended one over three threads)."""
    from shared.auth.shared_attempts import SharedAttemptStore
    from shared.auth.throttle import FailureThrottle, MemoryAttemptStore
    from shared.expiring import Contended, ExpiringRows
    from shared.ratelimit import RateLimiter
    from shared.services import Services

    services = Services(fixture.settings("RS256"))
    table = services.expiring_table
    results: dict[str, Any] = {}

    share = RateLimiter(1e9, 1e9, instances=lambda: 3)
    results["rate_share"] = _figures(_timed(lambda: share.acquire("tenant"), calls * 25), scale=1e6)

    rows = ExpiringRows(table, "bench")
    closes = (time.time() // 60 + 1) * 60
    key = f"tenant-{uuid.uuid4()}"
    results["shared_count"] = _figures(_timed(lambda: rows.increment(key, closes), calls))

    contended_key = f"tenant-{uuid.uuid4()}"
    latencies: list[float] = []
    gave_up: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        mine = ExpiringRows(table, "bench")
        found, lost = [], 0
        for _ in range(calls // 3):
            began = time.perf_counter()
            try:
                mine.increment(contended_key, closes)
            except Contended:
                lost += 1  # every round of read-and-replace lost to the other two
            found.append(time.perf_counter() - began)
        with lock:
            latencies.extend(found)
            gave_up.append(lost)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results["shared_count_contended"] = _figures(latencies)
    results["shared_count_total"] = rows.count(contended_key, closes)
    results["shared_count_gave_up"] = sum(gave_up)

    def throttle(store: Any) -> FailureThrottle:
        return FailureThrottle(
            store, limit=10, address_limit=50, client_ceiling=1000, window_seconds=60
        )

    local = throttle(MemoryAttemptStore())
    shared = throttle(
        SharedAttemptStore(
            ExpiringRows(table, "benchthrottle"), MemoryAttemptStore(), window_seconds=60
        )
    )
    results["throttle_local"] = _figures(
        _timed(lambda: local.check("client", "203.0.113.7"), calls * 25), scale=1e6
    )
    results["throttle_shared"] = _figures(
        _timed(lambda: shared.check("client", "203.0.113.7"), calls)
    )
    return results


def print_shared(result: dict[str, Any]) -> None:
    """The figures as a table."""
    from tools.bench import _table

    rows = [
        (
            "rate limit, each instance's share (in memory), per request",
            f"{result['rate_share']['p50']:.1f} µs",
            f"{result['rate_share']['p99']:.1f} µs",
        ),
        (
            "rate limit counted in Table Storage, per request (read + replace at ETag)",
            f"{result['shared_count']['p50']:.2f} ms",
            f"{result['shared_count']['p99']:.2f} ms",
        ),
        (
            "  the same, three instances on one tenant's row at once",
            f"{result['shared_count_contended']['p50']:.2f} ms",
            f"{result['shared_count_contended']['p99']:.2f} ms",
        ),
        (
            "failure throttle, a success's check, per-instance counts only",
            f"{result['throttle_local']['p50']:.1f} µs",
            f"{result['throttle_local']['p99']:.1f} µs",
        ),
        (
            "failure throttle, a success's check, shared counts (two point reads)",
            f"{result['throttle_shared']['p50']:.2f} ms",
            f"{result['throttle_shared']['p99']:.2f} ms",
        ),
    ]
    print("Sharing the protections across instances: the hot paths (Azurite on loopback)")
    print(_table(("what", "p50", "p99"), rows))
    contended = result["shared_count_contended"]["count"]
    gave_up = result["shared_count_gave_up"]
    print(
        f"  three contending writers: {result['shared_count_total']} of {contended} increments "
        f"counted, {gave_up} gave up after losing every round (none counted twice or lost)"
    )
