"""Spans: how the code marks the steps of a request, whether or not telemetry is exported.

Every invocation runs in one span (``invocation``), the steps inside it in child spans (``span``),
and a call to a provider in a client span whose ``traceparent`` goes upstream. Without
``APPLICATIONINSIGHTS_CONNECTION_STRING`` nothing is exported and OpenTelemetry is never
imported: the spans are only W3C ids kept in a context variable, so the trace id still reaches
the caller (``X-Trace-Id``), the provider (``traceparent``) and the audit trail. With it,
``shared.telemetry.setup`` hands this module an OpenTelemetry tracer and the same calls make
real spans, exported by the Azure Monitor distro.

Attributes go through ``shared.telemetry.attributes``: a fixed vocabulary, never a patient
identifier, token, secret or provider URL. An exception is recorded as the span's error status
with its type name only: its message could carry what the attributes must not.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from shared.telemetry import attributes
from shared.telemetry.context import SpanContext, new_span_id, new_trace_id

SERVER, CLIENT, INTERNAL = "server", "client", "internal"
T = TypeVar("T")
R = TypeVar("R")


class Span:
    """A span of ours: its W3C context, the attributes set on it, and the exported span."""

    __slots__ = ("_exported", "context", "name", "started", "tags")

    def __init__(self, name: str, context: SpanContext, exported: Any = None) -> None:
        self.name = name
        self.context = context
        self.started = time.perf_counter()
        self.tags: dict[str, attributes.Value] = {}
        self._exported = exported

    @property
    def trace_id(self) -> str:
        """The 32-hex-digit trace id."""
        return self.context.trace_id

    def tag(self, **values: attributes.Value | None) -> None:
        """Set attributes by their names in ``shared.telemetry.attributes.NAMES``."""
        for name, value in values.items():
            if value is not None:
                self.tags[name] = value
        if self._exported is not None:
            self._exported.set_attributes(attributes.clean(values))

    def fail(self, reason: str) -> None:
        """Mark the span as failed (a short fixed reason, never caller input)."""
        if self._exported is not None and _exporting is not None:
            _exporting.set_error(self._exported, reason)

    def seconds(self) -> float:
        """Time since the span started."""
        return time.perf_counter() - self.started


class _Detached(Span):
    """Stands in for a step outside any request when nothing is exported; keeps nothing."""

    def tag(self, **values: attributes.Value | None) -> None:
        """Nothing to tag."""


_DETACHED = _Detached("detached", SpanContext("0" * 32, "0" * 16, sampled=False))
_current: contextvars.ContextVar[Span | None] = contextvars.ContextVar(
    "ehrbridge_span", default=None
)
# Set by shared.telemetry.setup when the distro is configured: the OpenTelemetry side.
_exporting: Any = None


def use_exporter(exporting: Any) -> None:
    """Make spans real OpenTelemetry spans from now on (``shared.telemetry.setup``)."""
    global _exporting
    _exporting = exporting


def exporting() -> bool:
    """True when spans are exported."""
    return _exporting is not None


def current() -> Span | None:
    """The innermost span of this request, if any."""
    return _current.get()


def current_trace_id() -> str | None:
    """The trace id of the request being served, if any."""
    span = _current.get()
    return span.trace_id if span is not None else None


@contextmanager
def invocation(
    name: str, parent: SpanContext | None, **tags: attributes.Value | None
) -> Iterator[Span]:
    """The span of one invocation: a server span continuing ``parent`` (else a new trace)."""
    with _start(name, SERVER, parent, tags) as started:
        yield started


@contextmanager
def span(name: str, kind: str = INTERNAL, **tags: attributes.Value | None) -> Iterator[Span]:
    """A child of the current span (a new trace when there is none)."""
    with _start(name, kind, None, tags) as started:
        yield started


@contextmanager
def _start(
    name: str, kind: str, parent: SpanContext | None, tags: dict[str, attributes.Value | None]
) -> Iterator[Span]:
    exporter = _exporting
    if exporter is None and kind == INTERNAL:
        # Nothing is exported and no id leaves the process: the step is the enclosing span.
        yield _current.get() or _DETACHED
        return
    if exporter is None:
        enclosing = parent or _context_of(_current.get())
        context = SpanContext(
            enclosing.trace_id if enclosing else new_trace_id(),
            new_span_id(),
            enclosing.sampled if enclosing else True,
        )
        started = Span(name, context)
        started.tag(**tags)
        token = _current.set(started)
        try:
            yield started
        finally:
            _current.reset(token)
        return
    with exporter.start(name, kind, parent, attributes.clean(tags)) as (context, exported):
        started = Span(name, context, exported)
        for key, value in tags.items():
            if value is not None:
                started.tags[key] = value
        token = _current.set(started)
        try:
            yield started
        except BaseException as error:
            exporter.set_error(exported, type(error).__name__)
            raise
        finally:
            _current.reset(token)


def _context_of(span: Span | None) -> SpanContext | None:
    return span.context if span is not None else None


def in_this_trace(function: Callable[[T], R]) -> Callable[[T], R]:
    """``function`` as it would run here, for a worker thread: inside the current span.

    Thread pools do not carry context variables over; each call runs in its own copy of the
    caller's context (one Context cannot be entered by two threads at once).
    """
    context = contextvars.copy_context()

    def run(argument: T) -> R:
        return context.copy().run(function, argument)

    return run
