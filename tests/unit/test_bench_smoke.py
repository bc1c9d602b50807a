"""``make bench`` keeps working: every measurement runs with tiny sizes and returns figures.

No timings are asserted: a loaded CI machine must not fail this. Only the shape is checked.
"""

from __future__ import annotations

from typing import Any

from tools import bench

RATE_KEYS = {"requests", "seconds", "tokens_per_s", "p50_ms", "p99_ms"}


def assert_positive(result: dict[str, Any], keys: set[str]) -> None:
    assert keys <= result.keys()
    for key in keys:
        assert isinstance(result[key], int | float), key
        assert result[key] > 0, key


def test_percentile_is_nearest_rank() -> None:
    assert bench.percentile([3.0], 0.99) == 3.0
    assert bench.percentile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.0
    assert bench.percentile([float(n) for n in range(1, 101)], 0.99) == 99.0


def test_parse_importtime_reads_cumulative_and_depth() -> None:
    stderr = (
        "import time: self [us] | cumulative | imported package\n"
        "import time:       500 |       1500 |   azure.functions\n"
        "import time:      2000 |       4000 | function_app\n"
    )
    assert bench.parse_importtime(stderr) == [
        ("azure.functions", 0.5, 1.5, 1),
        ("function_app", 2.0, 4.0, 0),
    ]


def test_bench_measurements_return_positive_figures(azurite: str) -> None:
    cold = bench.measure_import(repetitions=1)
    assert_positive(cold, {"runs", "min_ms", "median_ms", "goal_ms"})
    assert set(cold["lazy"]) == set(bench.HEAVY_MODULES)
    assert all(isinstance(lazy, bool) for lazy in cold["lazy"].values())

    profiled = bench.measure_importtime(repetitions=1, top=3)
    assert_positive(profiled, {"runs", "min_ms", "median_ms"})
    assert len(profiled["top"]) == 3
    for entry in profiled["top"]:
        assert entry["module"] != "function_app"
        assert_positive(entry, {"cumulative_ms"})

    with bench.bench_fixture(azurite) as fixture:
        for algorithm in bench.ALGORITHMS:
            result = bench.measure_inprocess(fixture, algorithm, requests=5)
            assert result["algorithm"] == algorithm
            assert result["requests"] == 5
            assert_positive(result, RATE_KEYS | {"sign_p50_ms", "sign_share"})
        with bench.devhost_for(fixture) as base_url:
            for threads in (1, 2):
                result = bench.measure_http(base_url, fixture, threads=threads, requests=4)
                assert result["threads"] == threads
                assert result["requests"] == 4
                assert_positive(result, RATE_KEYS)
