"""Structured audit events: one JSON line per event on the ``ehrbridge.audit`` logger.

Application Insights collects these as traces; operators query ``customDimensions`` or the
message. Callers pass identifiers only: never a secret, token, body or provider URL.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

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
    return record
