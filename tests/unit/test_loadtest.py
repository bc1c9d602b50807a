"""The load test's own rules (tools/loadtest.py): the front it builds, how it reads locust's
figures, and how the soak judges what failed during and outside its faults."""

from __future__ import annotations

from pathlib import Path

from tools.loadtest import Fault, judge_failures, nginx_config, read_stats

LOCUST_HEADER = (
    "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
    "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,"
    "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
)


def test_the_front_listens_on_loopback_and_spreads_over_every_instance(tmp_path: Path):
    config = nginx_config(tmp_path, 8080, [9001, 9002, 9003])
    assert "listen 127.0.0.1:8080;" in config
    for port in (9001, 9002, 9003):
        assert f"server 127.0.0.1:{port};" in config
    # Round robin is nginx's default: no other balancing method is named.
    assert "least_conn" not in config and "hash " not in config and "ip_hash" not in config


def test_the_front_never_retries_a_request_on_another_instance(tmp_path: Path):
    assert "proxy_next_upstream off;" in nginx_config(tmp_path, 8080, [9001])


def test_locust_figures_are_read_per_call(tmp_path: Path):
    stats = tmp_path / "locust_stats.csv"
    stats.write_text(
        LOCUST_HEADER
        + "\nPOST,chart batch,1200,3,41,45.2,9,380,9000,20.1,0.05,41,50,55,60,80,120,200,250,"
        "380,380,380\n,Aggregated,1200,3,41,45.2,9,380,9000,20.1,0.05,41,50,55,60,80,120,200,"
        "250,380,380,380\n"
    )
    [batch, total] = read_stats(stats)
    assert (batch["name"], batch["requests"], batch["failures"]) == ("chart batch", 1200, 3)
    assert (batch["p50"], batch["p95"], batch["p99"]) == (41.0, 120.0, 250.0)
    assert total["name"] == "Aggregated"


def test_502_503_and_504_during_a_fault_are_its_documented_answers():
    fault = Fault("provider drops connections", began=100.0, ended=110.0)
    events = [{"t": 101.0, "kind": kind} for kind in ("502", "503", "504")]
    during, outside, problems = judge_failures(events, [fault], grace=5.0)
    assert problems == [] and sum(during.values()) == 3 and not outside


def test_another_answer_during_a_fault_is_a_problem():
    fault = Fault("Table Storage paused", began=100.0, ended=110.0)
    _, _, problems = judge_failures([{"t": 105.0, "kind": "500"}], [fault], grace=5.0)
    assert problems == ["1 answer(s) 500 during a fault (expected 502, 503 or 504)"]


def test_a_failure_outside_every_fault_and_its_recovery_is_a_problem():
    fault = Fault("Table Storage paused", began=100.0, ended=110.0)
    events = [{"t": 114.0, "kind": "503"}, {"t": 130.0, "kind": "503"}]
    during, outside, problems = judge_failures(events, [fault], grace=5.0)
    assert during["503"] == 1 and outside["503"] == 1
    assert problems == ["1 failure(s) 503 outside the faults"]
