"""What telemetry costs: the proxy handler and the token endpoint, exported or not.

OpenTelemetry's providers are global to a process and cannot be set twice, so each mode runs
in a fresh interpreter (``python -m tools.bench_telemetry --child``): once without
``APPLICATIONINSIGHTS_CONNECTION_STRING``, once with the real Azure Monitor exporter sending to
a local ingestion endpoint (``tools/testkit/ingestion.py``) in this process. Both time the
calls inside the invocation span every trigger runs in, as ``functions/_adapter.serve`` does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from shared.telemetry.setup import CONNECTION_STRING as CONNECTION
from tools.bench import (
    ALGORITHMS,
    ROOT,
    _table,
    bench_fixture,
    measure_inprocess,
    measure_proxy_inprocess,
    running_upstream,
    upstream_searchset,
)


def measure_telemetry() -> dict[str, dict[str, Any]]:
    """Proxy handler and in-process token figures without and with export."""
    from tools.testkit.ingestion import FakeIngestion

    figures = {}
    # The ingestion endpoint runs here, so that its work is not the measured process's.
    with FakeIngestion() as ingestion:
        for mode in ("off", "on"):
            env = {k: v for k, v in os.environ.items() if k != CONNECTION}
            if mode == "on":
                env[CONNECTION] = ingestion.connection_string
            result = subprocess.run(
                [sys.executable, "-m", "tools.bench_telemetry", "--child"],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
                check=True,
            )
            figures[mode] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def print_telemetry(figures: dict[str, dict[str, Any]]) -> None:
    """The figures as a table."""
    print("Telemetry: in-process calls inside the invocation span, export off and on")
    rows = []
    for mode, label in (("off", "off (no connection string)"), ("on", "on (local ingestion)")):
        f = figures[mode]
        rows.append(
            (
                label,
                f"{f['proxy']['p50_us']:.0f} µs",
                f"{f['proxy']['p99_us']:.0f} µs",
                f"{f['token']['p50_ms']:.2f} ms",
                f"{f['token']['tokens_per_s']:.0f}",
            )
        )
    print(_table(("telemetry", "proxy p50", "proxy p99", "token p50", "tokens/s"), rows))
    added = figures["on"]["proxy"]["p50_us"] - figures["off"]["proxy"]["p50_us"]
    print(f"  export adds {added:.0f} µs to the proxy handler's p50 (spans, metrics, log lines)")


def _child() -> dict[str, Any]:
    from shared.telemetry import setup

    setup.ensure()
    with bench_fixture() as fixture, running_upstream() as upstream:
        searchset, content_type = upstream_searchset(upstream.base_url)
        proxy = measure_proxy_inprocess(fixture, searchset, content_type, traced=True)
        token = measure_inprocess(fixture, ALGORITHMS[0], traced=True)
    return {"proxy": proxy, "token": token}


if __name__ == "__main__":
    if sys.argv[1:] == ["--child"]:
        print(json.dumps(_child(), default=str))
    else:
        print_telemetry(measure_telemetry())
