"""The OpenTelemetry side of ``shared.telemetry``: imported only when telemetry is exported.

``shared.telemetry.tracing`` and ``shared.telemetry.metrics`` call this module's adapters once
``shared.telemetry.setup`` has configured the Azure Monitor distro, which installs the global
tracer and meter providers this module reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import NonRecordingSpan, SpanKind, Status, StatusCode, TraceFlags

from shared.telemetry.context import SpanContext

SCOPE = "ehrbridge"
_KINDS = {"server": SpanKind.SERVER, "client": SpanKind.CLIENT, "internal": SpanKind.INTERNAL}


class Spans:
    """Starts OpenTelemetry spans for ``shared.telemetry.tracing``."""

    def __init__(self) -> None:
        self._tracer = trace.get_tracer(SCOPE)

    @contextmanager
    def start(
        self, name: str, kind: str, parent: SpanContext | None, attributes: dict[str, Any]
    ) -> Iterator[tuple[SpanContext, Any]]:
        """A span (the current one inside the block), a child of ``parent`` when one is given."""
        context = None
        if parent is not None:
            remote = trace.SpanContext(
                int(parent.trace_id, 16),
                int(parent.span_id, 16),
                is_remote=True,
                trace_flags=TraceFlags(TraceFlags.SAMPLED if parent.sampled else 0),
            )
            context = trace.set_span_in_context(NonRecordingSpan(remote))
        # Exceptions become an error status with their type only (tracing.py): no message,
        # no stack trace in the exported span.
        with self._tracer.start_as_current_span(
            name,
            context=context,
            kind=_KINDS[kind],
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            ids = span.get_span_context()
            yield (
                SpanContext(
                    format(ids.trace_id, "032x"),
                    format(ids.span_id, "016x"),
                    ids.trace_flags.sampled,
                ),
                span,
            )

    @staticmethod
    def set_error(span: Any, reason: str) -> None:
        """Mark ``span`` as failed."""
        span.set_status(Status(StatusCode.ERROR, reason))


class Instruments:
    """Creates the meter's instruments for ``shared.telemetry.metrics``."""

    def __init__(self) -> None:
        self._meter = metrics.get_meter(SCOPE)

    def histogram(self, name: str, unit: str, description: str) -> Any:
        """A histogram (count, sum, min and max reach Application Insights)."""
        return self._meter.create_histogram(name, unit=unit, description=description)

    def counter(self, name: str, description: str) -> Any:
        """A monotonic counter."""
        return self._meter.create_counter(name, description=description)

    def gauge(
        self,
        name: str,
        description: str,
        read: Callable[[], Iterable[tuple[float, dict[str, Any]]]],
    ) -> Any:
        """An observable gauge whose values ``read`` gives at each collection."""

        def observe(_: CallbackOptions) -> Iterable[Observation]:
            return [Observation(value, attributes) for value, attributes in read()]

        return self._meter.create_observable_gauge(name, [observe], description=description)


def flush(timeout_millis: int = 10_000) -> None:
    """Export what the providers hold now (tests, and a clean shutdown)."""
    from opentelemetry import _logs

    for provider in (
        trace.get_tracer_provider(),
        metrics.get_meter_provider(),
        _logs.get_logger_provider(),
    ):
        force_flush = getattr(provider, "force_flush", None)
        if force_flush is not None:
            force_flush(timeout_millis)
