"""A call to a tenant's provider as a client span, a ``traceparent`` and a latency metric.

The span is named by the method only and carries the tenant, the method and the status: never
the provider's URL, host or path (docs/security.md row 140). The provider receives our
``traceparent`` (never the caller's ``tracestate``), so a provider that traces joins the trace.
How the call ended is the metric's ``outcome``: the status class, or why there was no answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from shared.fhir.errors import Unavailable, UpstreamError, UpstreamTimeout
from shared.http import Headers
from shared.telemetry import metrics, tracing


class ProviderCall:
    """One call in flight: the headers to send, and how it ended."""

    __slots__ = ("outcome", "span")

    def __init__(self, span: tracing.Span) -> None:
        self.span = span
        self.outcome = "error"

    def headers(self, headers: Headers) -> Headers:
        """``headers`` plus this span's ``traceparent``."""
        out = Headers(headers.items())
        out.set("traceparent", self.span.context.traceparent())
        out.remove("tracestate")
        return out

    def answered(self, status: int) -> None:
        """The provider answered ``status``."""
        self.outcome = f"{status // 100}xx"
        self.span.tag(status=status)
        if status >= 500:
            self.span.fail("provider error")


@contextmanager
def provider_call(tenant_id: str, method: str) -> Iterator[ProviderCall]:
    """The span and metric of one provider call."""
    peer = f"provider:{tenant_id}"
    with tracing.span(
        f"provider {method}", tracing.CLIENT, tenant=tenant_id, method=method, peer=peer
    ) as span:
        call = ProviderCall(span)
        try:
            yield call
        except Exception as error:
            call.outcome = outcome_of(error)
            raise
        finally:
            if metrics.recording():
                metrics.provider_call(span.seconds(), tenant=tenant_id, outcome=call.outcome)


def outcome_of(error: Exception) -> str:
    """Why a call had no answer: ``timeout``, ``paused`` (circuit open), ``unreachable``
    (no answer, a redirect, a broken answer) or ``credential`` (ours was refused)."""
    if isinstance(error, UpstreamTimeout):
        return "timeout"
    if isinstance(error, Unavailable):
        return "paused"
    if isinstance(error, UpstreamError):
        return "unreachable"
    if type(error).__name__.startswith("ProviderAuth"):
        return "credential"
    return "error"
