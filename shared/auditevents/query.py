"""What a per-tenant export asks for: a tenant, a window of time and a page.

``since`` is inclusive and ``until`` exclusive (ISO 8601 with a zone; default: the last 24
hours), at most ``MAX_WINDOW`` apart. Events come oldest first, ``limit`` at a time; the next
page starts after the last one (``since`` = its time, ``after`` = its id), so events that share a
timestamp are neither repeated nor skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

MAX_WINDOW = timedelta(days=31)
DEFAULT_WINDOW = timedelta(days=1)
DEFAULT_LIMIT = 1000
MAX_LIMIT = 5000
_ID = re.compile(r"[A-Za-z0-9\-]{1,64}")
_DECODED_PLUS = re.compile(r"^(.*T[0-9:.]+) ([0-9]{2}:[0-9]{2})$")


class InvalidQuery(ValueError):
    """A parameter of the export is not usable; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class AuditQuery:
    """A page of one tenant's AuditEvents."""

    tenant_id: str
    since: datetime
    until: datetime
    after: str | None = None
    limit: int = DEFAULT_LIMIT

    def admits(self, recorded: str, event_id: str) -> bool:
        """True when an event recorded at ``recorded`` with ``event_id`` is on this page."""
        when = instant(recorded)
        if when < self.since or when >= self.until:
            return False
        return not (self.after is not None and when == self.since and event_id <= self.after)


def instant(value: str) -> datetime:
    """An ISO 8601 date-time with a zone, as an aware UTC datetime."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("a time zone is required")
    return parsed.astimezone(UTC)


def parse_query(tenant_id: str, params: dict[str, str], now: datetime | None = None) -> AuditQuery:
    """The query the export's parameters describe; raises ``InvalidQuery``."""
    now = now or datetime.now(UTC)
    until = _time(params, "until") or now
    since = _time(params, "since") or until - DEFAULT_WINDOW
    if since >= until:
        raise InvalidQuery("since", "since must be before until")
    if until - since > MAX_WINDOW:
        raise InvalidQuery("since", "the window may be at most 31 days")
    after = params.get("after")
    if after is not None and not _ID.fullmatch(after):
        raise InvalidQuery("after", "after must be an AuditEvent id")
    limit = DEFAULT_LIMIT
    if "count" in params:
        text = params["count"]
        if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
            raise InvalidQuery("count", f"count must be 1 to {MAX_LIMIT}")
        limit = int(text)
    return AuditQuery(tenant_id, since, until, after, limit)


def _time(params: dict[str, str], name: str) -> datetime | None:
    value = params.get(name)
    if value is None:
        return None
    # An unencoded "+01:00" arrives as " 01:00" (a form-encoded plus is a space).
    value = _DECODED_PLUS.sub(r"\1+\2", value)
    try:
        return instant(value)
    except ValueError:
        raise InvalidQuery(name, f"{name} must be an ISO 8601 date-time with a zone") from None
