"""One tenant's AuditEvents as a FHIR R4 ``searchset`` Bundle (``manage/tenants/{id}/audit``).

Events come oldest first, ``limit`` per page; a ``next`` link continues after the last one.
The store is asked for the tenant's events only: nothing of another tenant is read, let alone
answered (docs/security.md row 144).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlencode

from shared.auditevents.query import AuditQuery


class AuditReader(Protocol):
    """A store the export reads from (local file or Log Analytics)."""

    def read(self, query: AuditQuery) -> list[dict[str, Any]]:
        """The tenant's events in the window, oldest first, at most ``limit + 1``."""
        ...


def export_bundle(store: AuditReader, query: AuditQuery, base_url: str) -> dict[str, Any]:
    """The page ``query`` asks for, with ``self`` and ``next`` links under ``base_url``."""
    events = [e for e in store.read(query) if query.admits(e["recorded"], e["id"])]
    page = events[: query.limit]
    links = [{"relation": "self", "url": _url(base_url, query, query.since, query.after)}]
    if len(events) > query.limit:
        last = page[-1]
        since = datetime.fromisoformat(last["recorded"])
        links.append({"relation": "next", "url": _url(base_url, query, since, last["id"])})
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "searchset",
        "timestamp": datetime.now(UTC).isoformat(),
        "link": links,
        "entry": [
            {"fullUrl": f"urn:uuid:{event['id']}", "resource": event, "search": {"mode": "match"}}
            for event in page
        ],
    }


def _url(base_url: str, query: AuditQuery, since: datetime, after: str | None) -> str:
    params = {
        "since": since.astimezone(UTC).isoformat(),
        "until": query.until.astimezone(UTC).isoformat(),
        "count": str(query.limit),
    }
    if after is not None:
        params["after"] = after
    return f"{base_url}?{urlencode(params)}"
