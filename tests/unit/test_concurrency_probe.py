"""tools/concurrency_probe.py, run tiny, so the measurement behind httpPerInstanceConcurrency's
default keeps running (docs/runbook.md 1.6)."""

from __future__ import annotations

from tools.concurrency_probe import run


def test_the_probe_measures_every_concurrency_through_the_apps_own_path():
    rows = run((1, 2), (0.01,), entries=3, duration_s=0.3, pin=False)
    assert [row["threads"] for row in rows] == [1, 2]
    assert all(row["requests"] > 0 and row["efficiency"] > 0 for row in rows)
