"""``make bench`` keeps working: every measurement runs with tiny sizes and returns figures.

No timings are asserted: a loaded CI machine must not fail this. Only the shape is checked.
"""

from __future__ import annotations

import json
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


def test_patients_app_mix_has_every_call_and_a_batch_of_the_reads() -> None:
    calls = bench.patients_app_mix("p1")
    assert [c.method for c in calls].count("POST") == 2
    batch = json.loads(calls[-1].body)
    assert batch["type"] == "batch"
    assert {e["request"]["url"] for e in batch["entry"]} == {
        f"{c.path}?{c.query}" if c.query else c.path for c in calls if c.method == "GET"
    }


def test_proxy_measurements_return_positive_figures(azurite: str) -> None:
    with bench.bench_fixture(azurite) as fixture:
        result = bench.measure_proxy(
            fixture, inprocess_requests=5, rounds=1, warmup_rounds=0, use_nginx=False
        )
    assert result["nginx"] == "skipped"
    assert result["upstream"]["Observation"] > bench.SEARCHSET_ENTRIES
    handler = result["handler"]
    assert handler["requests"] == 5
    assert handler["entries"] == bench.SEARCHSET_ENTRIES
    assert handler["upstream_calls"] >= 5
    assert_positive(
        handler,
        {"p50_us", "p99_us", "mean_us", "urls_rewritten", "verify_p50_us", "rewrite_p50_us"},
    )
    calls = len(bench.patients_app_mix())
    assert list(result["paths"]) == ["direct", "dev host + proxy"]
    for path in result["paths"].values():
        assert path["rounds"] == 1
        assert path["requests"] == calls
        assert len(path["by_call_p50_ms"]) == calls
        assert_positive(path, {"p50_ms", "p99_ms", "mean_ms"})
    assert result["paths"]["direct"]["added_p50_ms"] == 0
    assert_positive(result["paths"]["dev host + proxy"], {"devhost_floor_p50_ms"})


def test_vital_signs_searchset_is_an_r4_page_of_every_vital_sign() -> None:
    page = bench.vital_signs_searchset(16, base="https://fhir.example/r4")
    assert (page["type"], len(page["entry"])) == ("searchset", 16)
    assert {link["relation"] for link in page["link"]} == {"self", "next"}
    observations = [entry["resource"] for entry in page["entry"]]
    assert all(
        e["fullUrl"].startswith("https://fhir.example/r4/Observation/") for e in page["entry"]
    )
    codes = {o["code"]["coding"][0]["code"] for o in observations}
    assert codes == {"8867-4", "9279-1", "8310-5", "59408-5", "29463-7", "8302-2", "39156-5"} | {
        "85354-9"
    }
    panel = next(o for o in observations if o["code"]["coding"][0]["code"] == "85354-9")
    assert [c["code"]["coding"][0]["code"] for c in panel["component"]] == ["8480-6", "8462-4"]
    assert all(c["valueQuantity"]["code"] == "mm[Hg]" for c in panel["component"])
    times = [o["effectiveDateTime"] for o in observations]
    assert times == sorted(times, reverse=True)  # newest first, as _sort=-date answers
    category = observations[0]["category"][0]["coding"][0]
    assert category["system"] == "http://terminology.hl7.org/CodeSystem/observation-category"


def test_conversion_measurement_returns_positive_figures() -> None:
    result = bench.measure_conversion(entries=3, runs=2)
    assert result["entries"] == 3
    assert result["goal_ms"] == bench.CONVERSION_GOAL_MS
    assert_positive(result, {"body_bytes"})
    for face in bench.CONVERSION_FACES:
        assert result[face]["runs"] == 2
        assert_positive(result[face], {"p50_ms", "p99_ms", "mean_ms"})


def test_sandbox_measurements_load_every_resource_and_return_positive_figures(
    azurite: str,
) -> None:
    from tools.bench_sandbox import measure_sandbox

    with bench.bench_fixture(azurite) as fixture:
        result = measure_sandbox(fixture, patients=3, searches=2, batches=2)
    assert result["patients"] == 3
    assert result["stored"] == result["resources"] > 3
    assert_positive(result, {"generate_s", "load_s", "resources_per_s"})
    for name in ("search_direct", "search_proxy", "batch_proxy"):
        assert result[name]["requests"] == 2
        assert_positive(result[name], {"p50_ms", "p99_ms"})
    # Every search is for a family some generated patient has.
    assert result["search_direct"]["mean_total"] >= 1


def test_denial_of_service_measurements_return_figures(azurite: str, table_service: Any) -> None:
    # table_service empties the failure throttle's shared counts: the refusals of earlier tests
    # on this worker's Azurite must not throttle the token the measurement starts with.
    from tools import bench_dos

    with bench.bench_fixture(azurite) as fixture:
        memory = bench_dos.measure_refused_memory(fixture, requests=8, body_bytes=1024, threads=2)
        assert memory["requests"] == 8
        assert set(memory["statuses"]) == {401}
        refusals = bench_dos.measure_token_refusals(fixture, requests=5)
        assert_positive(refusals, {"unknown_p50_us", "known_wrong_p50_us"})
        hung = bench_dos.measure_hung_tables(
            fixture,
            threads=2,
            budget_s=20,
            table_options={"retry_total": 0, "connection_timeout": 0.5, "read_timeout": 0.2},
        )
        assert hung["first_fast_503_s"] is not None
        assert hung["store_calls"] >= 1


def test_signed_credential_measurements_return_positive_figures(azurite: str) -> None:
    from tools.bench_signed import (
        ASSERTION_ALGORITHMS,
        measure_assertions,
        measure_entra_verification,
        measure_provider_tokens,
    )

    for algorithm in ASSERTION_ALGORITHMS:
        assert_positive(measure_assertions(algorithm, requests=3), RATE_KEYS)
    for kind in ("client_credentials", "private_key_jwt"):
        result = measure_provider_tokens(kind, requests=3)
        assert result["kind"] == kind
        assert_positive(result, RATE_KEYS)
    with bench.bench_fixture(azurite) as fixture:
        entra = measure_entra_verification(fixture, requests=3)
    for figures in (entra["first_seen"], entra["seen_before"]):
        assert_positive(figures, RATE_KEYS)


def test_scope_rule_measurements_return_positive_figures() -> None:
    from tools.bench_scopes import measure_scope_check

    figures = measure_scope_check(runs=50)
    assert set(figures) == {"grant_from_claim_p50_us", "read_p50_us", "batch_of_6_p50_us"}
    assert all(value > 0 for value in figures.values())
