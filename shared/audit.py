"""Structured audit events: one JSON line per event on the ``ehrbridge.audit`` logger.

Application Insights collects these as traces; operators query ``customDimensions`` or the
message. Callers pass identifiers only: never a secret, token, body or provider URL. Each
record also becomes an R4 AuditEvent on the audit stream (``shared.auditevents``) and tags the
request's span and metrics (``shared.telemetry.signals``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.auditevents import stream as auditevents
from shared.telemetry import signals

audit_log = logging.getLogger("ehrbridge.audit")

# Names that must never reach a log line, whatever a caller passes by mistake.
_FORBIDDEN = frozenset(
    {"secret", "client_secret", "token", "access_token", "authorization", "password", "value"}
)


def audit(event: str, **fields: Any) -> dict[str, Any]:
    """Log one audit event and return the record that was logged."""
    record: dict[str, Any] = {"event": event, "time": datetime.now(UTC).isoformat()}
    for name, value in fields.items():
        if name.lower() in _FORBIDDEN:
            raise ValueError(f"audit field {name!r} may carry a secret")
        record[name] = value
    audit_log.info(json.dumps(record, separators=(",", ":"), default=str))
    auditevents.record(record)
    signals.audited(record)
    return record


@dataclass(frozen=True)
class Actor:
    """Who makes a management change: ``kind`` (how they were authenticated) and a name.

    Kinds today: ``admin_key`` (the management API; the host's master key in Azure, the local
    admin key elsewhere), ``ops_cli`` (named by the operator's login; Key Vault and Storage logs
    carry their Entra identity), ``bootstrap``, ``console`` (a local console session) and
    ``entra`` (the sign-in name and object id from App Service Authentication).
    """

    kind: str
    name: str = ""

    def to_json(self) -> dict[str, str]:
        """The actor as audit events carry it."""
        return {"kind": self.kind, "name": self.name} if self.name else {"kind": self.kind}


UNATTRIBUTED = Actor("unattributed")
_ACTOR: ContextVar[Actor | None] = ContextVar("ehrbridge_actor", default=None)


@contextmanager
def acting_as(actor: Actor) -> Iterator[Actor]:
    """Attribute every management change made inside the block to ``actor``."""
    token = _ACTOR.set(actor)
    try:
        yield actor
    finally:
        _ACTOR.reset(token)


def change(event: str, **fields: Any) -> dict[str, Any]:
    """Log a management change, naming the actor the caller set with ``acting_as``."""
    actor = _ACTOR.get() or UNATTRIBUTED
    return audit(event, actor=actor.to_json(), **fields)


def fingerprint(value: str) -> str | None:
    """A short digest of a value that may be compared but must not be logged (a provider URL)."""
    if not value:
        return None
    return "sha256:" + hashlib.sha256(value.encode("utf-8")).hexdigest()[:16]
