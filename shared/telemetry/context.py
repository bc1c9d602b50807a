"""W3C Trace Context (``traceparent``), read and written without OpenTelemetry.

A ``traceparent`` is ``version-traceid-parentid-flags``: two, 32, 16 and two lower-case hex
digits (W3C Trace Context, section 3.2). Version ``ff`` and all-zero ids are invalid; a version
``00`` value has exactly that length, and a higher version may carry more after the flags. An
invalid value is ignored and a new trace starts, as the recommendation asks of a receiver.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


@dataclass(frozen=True, slots=True)
class SpanContext:
    """One span's place in a trace: the trace id, its own id and whether it is sampled."""

    trace_id: str
    span_id: str
    sampled: bool = True

    def traceparent(self) -> str:
        """This span as the ``traceparent`` of a call it makes."""
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"


def parse_traceparent(value: str | None) -> SpanContext | None:
    """The span context a ``traceparent`` names, or None when it is missing or invalid."""
    if not value:
        return None
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == _ZERO_TRACE:
        return None
    if span_id == _ZERO_SPAN:
        return None
    return SpanContext(trace_id, span_id, sampled=bool(int(flags, 16) & 1))


# Ids need to be unique, not secret: the Mersenne Twister, as OpenTelemetry's own generator uses,
# costs no system call (os.urandom releases the GIL, and a thread exporting telemetry then holds
# the request up for a switch interval).
_random = random.Random()  # noqa: S311 - ids must be unique, not secret


def new_trace_id() -> str:
    """A random 128-bit trace id (never all zeros)."""
    while True:
        value = f"{_random.getrandbits(128):032x}"
        if value != _ZERO_TRACE:
            return value


def new_span_id() -> str:
    """A random 64-bit span id (never all zeros)."""
    while True:
        value = f"{_random.getrandbits(64):016x}"
        if value != _ZERO_SPAN:
            return value
