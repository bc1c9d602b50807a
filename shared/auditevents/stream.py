"""The audit stream: every AuditEvent as one JSON line on the ``ehrbridge.auditevent`` logger.

In Azure the Azure Monitor distro ships the logger's lines to Application Insights, which keeps
them in the workspace's ``AppTraces`` table with the log record's attributes as ``Properties``:
``ehrbridge.kind`` (``AuditEvent``), ``ehrbridge.tenant_id``, ``ehrbridge.recorded`` and
``ehrbridge.audit_id``, which the per-tenant export filters on (``loganalytics.py``). The line
is written inside the request's span, so it carries the request's trace id too.

Locally (``make run``) the process's local store also gets each event (``local.py``), through a
bounded queue a background thread drains: nothing on the hot path waits for a disk or a table.

Writing the audit trail never fails a request: a record that cannot be turned into AuditEvents
is an ``ALERT`` line instead.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from shared.auditevents.build import audit_events, tenant_of

LOGGER = "ehrbridge.auditevent"
KIND = "AuditEvent"
stream_log = logging.getLogger(LOGGER)
# The trail is written whatever the root logger's level; handlers decide where it goes.
stream_log.setLevel(logging.INFO)
_log = logging.getLogger(__name__)


class Sink(Protocol):
    """Where a process keeps its AuditEvents besides the log stream (the local store)."""

    def put(self, tenant_id: str | None, event: dict[str, Any]) -> None:
        """Accept one event without blocking."""
        ...


_sink: Sink | None = None


def use_sink(sink: Sink | None) -> None:
    """Also hand every AuditEvent to ``sink`` (the local store), or stop (None)."""
    global _sink
    _sink = sink


def record(audit_record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Write the AuditEvents of one audit record to the stream; return them."""
    try:
        events = audit_events(audit_record)
        tenant = tenant_of(audit_record)
        for event in events:
            stream_log.info(
                json.dumps(event, separators=(",", ":")),
                extra={
                    "ehrbridge.kind": KIND,
                    "ehrbridge.tenant_id": tenant or "",
                    "ehrbridge.recorded": event["recorded"],
                    "ehrbridge.audit_id": event["id"],
                },
            )
            sink = _sink
            if sink is not None:
                sink.put(tenant, event)
    except Exception as error:  # a bug here must cost the trail one event, not the request
        _log.error(
            "ALERT audit event not recorded for %s: %s",
            audit_record.get("event"),
            type(error).__name__,
        )
        return []
    return events
