"""The invocation ``context`` the Functions host and Python worker hand a function, for the dev
host and for tests that call a function directly.

The host starts its own request span for every invocation, continuing the caller's W3C
``traceparent`` when it is valid and starting a trace otherwise, and passes that span to the
worker as ``Context.trace_context.trace_parent`` (azure-functions-python-worker, ``bindings/
context.py``). This module does the same: the trace id is the caller's, the parent id is new.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Mapping

import azure.functions as func
from azure.functions._abc import RetryContext, TraceContext

from shared.telemetry.context import SpanContext, new_span_id, new_trace_id, parse_traceparent


class _Trace(TraceContext):
    def __init__(self, trace_parent: str, trace_state: str) -> None:
        self._parent = trace_parent
        self._state = trace_state

    @property
    def trace_parent(self) -> str:
        return self._parent

    @property
    def trace_state(self) -> str:
        return self._state

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class InvocationContext(func.Context):
    """One invocation's context, as the worker builds it."""

    def __init__(self, function_name: str, trace_parent: str, trace_state: str = "") -> None:
        self._invocation_id = str(uuid.uuid4())
        self._function_name = function_name
        self._trace = _Trace(trace_parent, trace_state)
        self._local = threading.local()

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> threading.local:  # type: ignore[override]
        return self._local

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return os.getcwd()

    @property
    def trace_context(self) -> TraceContext:
        return self._trace

    @property
    def retry_context(self) -> RetryContext:
        raise NotImplementedError("HTTP triggers have no retry context")


def invocation_context(function_name: str, headers: Mapping[str, str]) -> InvocationContext:
    """The context the host would pass for a request with ``headers``."""
    lowered = {name.lower(): value for name, value in headers.items()}
    caller = parse_traceparent(lowered.get("traceparent"))
    host_span = SpanContext(
        caller.trace_id if caller else new_trace_id(),
        new_span_id(),
        caller.sampled if caller else True,
    )
    state = lowered.get("tracestate", "") if caller else ""
    return InvocationContext(function_name, host_span.traceparent(), state)
