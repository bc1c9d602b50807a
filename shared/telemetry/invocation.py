"""One invocation of a trigger as a span: where its trace comes from, and what its answer carries.

The trace is continued from the Functions host's invocation context when there is one: the host
has already continued the caller's ``traceparent`` (or started a trace) for its own request
telemetry, and hands the worker that context (``Context.trace_context``, azure-functions-python-
worker). Without it (a host that passes no context), the caller's own ``traceparent`` is
continued, and failing that a new trace starts.

Every answer carries the trace id as ``X-Trace-Id``: the id an operator pastes into a query.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from shared.http import Headers, Response
from shared.telemetry import metrics, tracing
from shared.telemetry.context import SpanContext, parse_traceparent

TRACE_HEADER = "X-Trace-Id"
_METRIC_TAGS = ("route", "method", "face", "tenant", "status")


def parent_of(host_traceparent: str | None, headers: Headers) -> SpanContext | None:
    """The span this invocation continues: the host's, else the caller's ``traceparent``."""
    return parse_traceparent(host_traceparent) or parse_traceparent(headers.get("traceparent"))


@contextmanager
def serving(route: str, method: str, parent: SpanContext | None) -> Iterator[tracing.Span]:
    """The invocation's span; ``answered`` records its outcome."""
    with tracing.invocation(f"{method} {route}", parent, route=route, method=method) as span:
        yield span


def answered(span: tracing.Span, response: Response) -> Response:
    """``response`` with the trace id; the span tagged with its status, the request counted."""
    span.tag(status=response.status)
    if response.status >= 500:
        span.fail("server error")
    response.headers.set(TRACE_HEADER, span.trace_id)
    if metrics.recording():
        metrics.request(span.seconds(), **{name: span.tags.get(name) for name in _METRIC_TAGS})
    return response
