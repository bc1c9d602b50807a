"""Trace context across the proxy: the provider joins the caller's trace, and nothing else of
the caller's crosses (docs/security.md row 145)."""

from __future__ import annotations

from shared.telemetry import invocation
from shared.telemetry.context import parse_traceparent
from tests.integration.test_proxy import provider, send, tenant_a, token

__all__ = ["provider", "tenant_a", "token"]  # the proxy tests' fixtures, used here too

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_row_145_the_provider_gets_our_span_in_the_callers_trace(proxy_services, provider, token):
    with invocation.serving("fhir_proxy", "GET", parse_traceparent(CALLER)):
        assert send(proxy_services, "GET", "Patient/example", token).status == 200
    sent = parse_traceparent(provider.last().header("traceparent"))
    assert sent is not None and sent.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert sent.span_id != "00f067aa0ba902b7"


def test_row_145_the_callers_tracestate_and_traceparent_do_not_cross_as_sent(
    proxy_services, provider, token
):
    headers = {"traceparent": CALLER, "tracestate": "vendor=secret-ish"}
    assert send(proxy_services, "GET", "Patient/example", token, headers=headers).status == 200
    assert provider.last().header("tracestate") is None
    assert provider.last().header("traceparent") != CALLER


def test_without_its_own_request_id_the_correlation_id_is_the_trace_id(
    proxy_services, provider, token
):
    with invocation.serving("fhir_proxy", "GET", parse_traceparent(CALLER)):
        response = send(proxy_services, "GET", "Patient/example", token)
    assert response.headers.get("X-Request-Id") == "4bf92f3577b34da6a3ce929d0e0e4736"
