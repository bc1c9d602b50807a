"""How many proxied requests one Flex Consumption instance can carry at once: the measurement
behind the ``httpPerInstanceConcurrency`` default (docs/runbook.md 1.6).

The handlers are synchronous and I/O-bound: each request holds one worker thread while the
provider answers, then spends CPU converting the answer. This probe plays one instance of the
size the template deploys (2048 MB, one core: learn.microsoft.com/azure/azure-functions/
flex-consumption-plan, Instance sizes) by pinning itself to one CPU, and runs ``threads``
requests at a time, closed loop, each one what a proxied search costs the app: a GET to a slow
local provider through the app's own pooled session, then the app's R4 to STU3 conversion of a
vital-signs searchset. The provider runs in another process on another CPU, so only the
instance's share is measured. It reports throughput and latency per concurrency and provider
delay, and the efficiency: throughput over what ``threads`` requests would give if the instance
added nothing (``threads / delay``).

Development only, loopback only, bounded in time::

    .venv/bin/python -m tools.concurrency_probe
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python tools/concurrency_probe.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

THREADS = (1, 4, 8, 16, 32, 64)
DELAYS_S = (0.05, 0.5)
ENTRIES = 100
DURATION_S = 4.0


def _serve(port_out: Any, delay_s: float, body: bytes) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(delay_s)
            self.send_response(200)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port_out.put(server.server_address[1])
    server.serve_forever()


@contextmanager
def slow_provider(delay_s: float, body: bytes, cpu: int | None) -> Iterator[str]:
    """A provider on 127.0.0.1 answering every GET with ``body`` after ``delay_s``."""
    context = multiprocessing.get_context("spawn")
    ports: Any = context.Queue()
    process = context.Process(target=_serve, args=(ports, delay_s, body), daemon=True)
    process.start()
    try:
        if cpu is not None and process.pid is not None:
            os.sched_setaffinity(process.pid, {cpu})
        port = ports.get(timeout=30)
        yield f"http://127.0.0.1:{port}/r4/Observation"
    finally:
        process.terminate()
        process.join(timeout=10)


def _searchset(entries: int) -> bytes:
    from tools.bench import vital_signs_searchset

    return json.dumps(vital_signs_searchset(entries), separators=(",", ":")).encode("utf-8")


def measure(
    threads: int, delay_s: float, url: str, *, duration_s: float = DURATION_S
) -> dict[str, float]:
    """``threads`` requests at a time for ``duration_s``: fetch ``url``, convert R4 to STU3."""
    from shared.http import Headers
    from shared.net.addresses import AddressPolicy
    from shared.proxy.conversion import FhirVersionConverter
    from shared.proxy.model import UpstreamResponse
    from shared.proxy.provider_auth import upstream_session

    # The probe's provider is on loopback: the development policy, as make run uses.
    session = upstream_session(threads, policy=AddressPolicy(allow_local=True))
    converter = FhirVersionConverter()
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + duration_s

    def client() -> None:
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            answer = session.get(url, timeout=30)
            answer.raise_for_status()
            upstream = UpstreamResponse(
                200, Headers({"Content-Type": "application/fhir+json"}), answer.content
            )
            converter.response("stu3", "r4", upstream)
            with lock:
                latencies.append(time.perf_counter() - began)

    cpu_began = time.process_time()
    wall_began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(client) for _ in range(threads)]:
            future.result()
    wall = time.perf_counter() - wall_began
    cpu = time.process_time() - cpu_began
    session.close()
    ordered = sorted(latencies)
    throughput = len(latencies) / wall
    return {
        "threads": threads,
        "delay_ms": delay_s * 1000,
        "requests": len(latencies),
        "per_s": throughput,
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000,
        "cpu_share": cpu / wall,
        "efficiency": throughput / (threads / delay_s),
    }


def run(
    threads: tuple[int, ...] = THREADS,
    delays_s: tuple[float, ...] = DELAYS_S,
    *,
    entries: int = ENTRIES,
    duration_s: float = DURATION_S,
    pin: bool = True,
) -> list[dict[str, float]]:
    """Every (delay, threads) cell, the probe pinned to one CPU and the provider to another."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    instance_cpu = cpus[0] if pin and cpus else None
    provider_cpu = cpus[1] if pin and len(cpus) > 1 else None
    if instance_cpu is not None:
        os.sched_setaffinity(0, {instance_cpu})
    body = _searchset(entries)
    rows: list[dict[str, float]] = []
    try:
        for delay in delays_s:
            with slow_provider(delay, body, provider_cpu) as url:
                measure(1, delay, url, duration_s=min(duration_s, 0.5))  # warm-up
                for count in threads:
                    rows.append(
                        {**measure(count, delay, url, duration_s=duration_s), "entries": entries}
                    )
    finally:
        if instance_cpu is not None:
            os.sched_setaffinity(0, set(cpus))
    return rows


def main(argv: list[str] | None = None) -> int:
    """Print the table (and JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--duration", type=float, default=DURATION_S, help="seconds per cell")
    parser.add_argument("--entries", type=int, default=ENTRIES, help="Observations per page")
    args = parser.parse_args(argv)
    rows = run(entries=args.entries, duration_s=args.duration)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(
        f"one CPU, R4 to STU3 searchset of {args.entries} entries; "
        "efficiency = throughput / (threads / provider delay)"
    )
    print(
        f"{'delay ms':>9} {'threads':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'cpu':>5} {'effic.':>7}"
    )
    for row in rows:
        print(
            f"{row['delay_ms']:9.0f} {row['threads']:7.0f} {row['per_s']:8.1f} "
            f"{row['p50_ms']:8.1f} {row['p99_ms']:8.1f} {row['cpu_share']:5.2f} "
            f"{row['efficiency']:7.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
