"""Telemetry without an exporter: W3C trace context, the invocation span, the attribute rules."""

from __future__ import annotations

import subprocess
import sys

import pytest

from shared.fhir.errors import Unavailable, UpstreamError, UpstreamTimeout
from shared.http import Headers, Response
from shared.telemetry import attributes, invocation, tracing
from shared.telemetry.context import SpanContext, parse_traceparent
from shared.telemetry.provider import outcome_of
from tools.testkit.data import REPO

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_valid_traceparent_names_its_trace_span_and_sampling():
    assert parse_traceparent(CALLER) == SpanContext(
        "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", sampled=True
    )


@pytest.mark.parametrize(
    "value",
    [
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero span id
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # v00 with more
        "not a traceparent",
    ],
)
def test_an_invalid_traceparent_is_ignored(value: str):
    assert parse_traceparent(value) is None


def test_the_invocation_continues_the_hosts_context_before_the_callers():
    host = "00-11111111111111111111111111111111-2222222222222222-01"
    parent = invocation.parent_of(host, Headers({"traceparent": CALLER}))
    assert parent is not None and parent.trace_id == "1" * 32


def test_without_a_host_context_the_invocation_continues_the_callers_traceparent():
    parent = invocation.parent_of(None, Headers({"traceparent": CALLER}))
    assert parent is not None and parent.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_every_answer_carries_the_trace_id_of_its_invocation():
    with invocation.serving("health", "GET", parse_traceparent(CALLER)) as span:
        answered = invocation.answered(span, Response(status=200))
    assert answered.headers.get("X-Trace-Id") == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_a_call_upstream_gets_a_traceparent_of_its_own_span_in_the_callers_trace():
    with (
        tracing.invocation("GET fhir_proxy", parse_traceparent(CALLER)),
        tracing.span("provider GET", tracing.CLIENT) as client,
    ):
        sent = parse_traceparent(client.context.traceparent())
    assert sent is not None
    assert sent.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert sent.span_id != "00f067aa0ba902b7"


def test_a_worker_thread_runs_in_the_trace_of_the_request_that_started_it():
    from concurrent.futures import ThreadPoolExecutor

    with tracing.invocation("POST fhir_proxy", parse_traceparent(CALLER)):
        job = tracing.in_this_trace(lambda _: tracing.current_trace_id())
        with ThreadPoolExecutor(2) as pool:
            seen = set(pool.map(job, range(4)))
    assert seen == {"4bf92f3577b34da6a3ce929d0e0e4736"}


def test_row_140_an_attribute_outside_the_vocabulary_is_a_bug():
    with pytest.raises(KeyError):
        attributes.clean({"url": "https://fhir.hospital.example/r4"})


def test_row_140_a_value_that_is_a_url_or_free_text_is_not_exported():
    cleaned = attributes.clean(
        {"peer": "https://fhir.hospital.example/r4", "reason": "x" * 200, "tenant": "t-1"}
    )
    assert cleaned == {"ehrbridge.tenant_id": "t-1"}


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (UpstreamTimeout("slow"), "timeout"),
        (Unavailable("paused"), "paused"),
        (UpstreamError("no answer"), "unreachable"),
    ],
)
def test_a_provider_call_without_an_answer_is_counted_by_why(error: Exception, outcome: str):
    assert outcome_of(error) == outcome


def test_importing_the_app_without_a_connection_string_loads_no_opentelemetry():
    probe = (
        "import os, sys; os.environ.pop('APPLICATIONINSIGHTS_CONNECTION_STRING', None);"
        "import function_app;"
        "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry', 'azure.monitor'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_row_141_a_refused_token_of_an_unknown_client_counts_as_no_client(monkeypatch):
    from shared.telemetry import metrics, signals

    counted: list[dict[str, object]] = []
    monkeypatch.setattr(metrics, "token", lambda **tags: counted.append(tags))
    random_id = "3f2b1c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
    signals.audited({"event": "token.denied", "client_id": random_id, "reason": "unknown client"})
    assert counted == [{"client": None, "outcome": "denied", "reason": "unknown client"}]


def test_row_141_a_wrong_secret_for_a_registered_client_counts_against_that_client(monkeypatch):
    from shared.telemetry import metrics, signals

    counted: list[dict[str, object]] = []
    monkeypatch.setattr(metrics, "token", lambda **tags: counted.append(tags))
    client = "3f2b1c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
    signals.audited({"event": "token.denied", "client_id": client, "reason": "secret mismatch"})
    assert counted[0]["client"] == client
