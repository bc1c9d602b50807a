"""A local stand-in for the Log Analytics query API, answering from what ``FakeIngestion`` got.

It takes ``POST /v1/workspaces/{id}/query`` with a bearer token and ``{"query", "timespan"}``
and answers ``{"tables": [{"name": "PrimaryResult", "columns", "rows"}]}``, as the API does. It
cannot run KQL: it reads the tenant, the window, the cursor and the page size out of the query
``shared.auditevents.loganalytics.kusto`` writes (failing loudly if that shape changes), and
applies them to the trace lines (``MessageData``) the exporter sent, as ``AppTraces`` would hold
them: ``Message`` and ``Properties`` (the envelope's ``properties``). Whether the real service
runs that KQL as intended is proved only against a real workspace.
"""

from __future__ import annotations

import json
import re
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from typing import Any, Self

from tools.testkit.ingestion import MESSAGE, FakeIngestion, base_data
from tools.testkit.loopback import BackgroundServer, LoopbackServer

WORKSPACE_ID = "5e1c1d2e-7a6b-4c3d-9e8f-0a1b2c3d4e5f"
TOKEN = "log-analytics-test-token"
_TENANT = re.compile(r'Properties\["ehrbridge\.tenant_id"\]\) == "([0-9a-f-]{36})"')
_WINDOW = re.compile(r"where recorded >= datetime\(([^)]+)\) and recorded < datetime\(([^)]+)\)")
_AFTER = re.compile(r'strcmp\(audit_id, "([A-Za-z0-9-]+)"\) <= 0')
_TAKE = re.compile(r"\| take (\d+)")
_KIND = 'Properties["ehrbridge.kind"]) == "AuditEvent"'


class FakeLogAnalytics(BackgroundServer):
    """Serves one workspace's ``AppTraces`` from a ``FakeIngestion``."""

    def __init__(self, ingestion: FakeIngestion) -> None:
        self._stop = threading.Event()
        self._ingestion = ingestion
        self.queries: list[dict[str, Any]] = []
        self.port = 0

    @property
    def endpoint(self) -> str:
        """What ``EHRB_LOG_ANALYTICS_ENDPOINT`` is set to."""
        return f"http://127.0.0.1:{self.port}"

    def _rows(self, body: dict[str, Any]) -> list[list[str]]:
        query = body["query"]
        tenant, window, take = _TENANT.search(query), _WINDOW.search(query), _TAKE.search(query)
        if not (query.startswith("AppTraces") and _KIND in query and tenant and window and take):
            raise ValueError("not the query shared/auditevents/loganalytics.py writes")
        since, until = (datetime.fromisoformat(t.replace("Z", "+00:00")) for t in window.groups())
        after = _AFTER.search(query)
        seen: dict[str, tuple[datetime, str, str]] = {}
        for envelope in self._ingestion.envelopes(MESSAGE):
            data = base_data(envelope)
            properties = data.get("properties") or {}
            if properties.get("ehrbridge.kind") != "AuditEvent":
                continue
            if properties.get("ehrbridge.tenant_id") != tenant.group(1):
                continue
            recorded = datetime.fromisoformat(properties["ehrbridge.recorded"])
            audit_id = properties["ehrbridge.audit_id"]
            if not since <= recorded < until:
                continue
            if after and recorded == since and audit_id <= after.group(1):
                continue
            seen.setdefault(audit_id, (recorded, audit_id, data["message"]))
        ordered = sorted(seen.values())[: int(take.group(1))]
        return [[message] for _, _, message in ordered]

    def start(self) -> Self:
        """Bind to a free loopback port and serve."""
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path != f"/v1/workspaces/{WORKSPACE_ID}/query":
                    self._answer(404, {"error": {"code": "PathNotFoundError"}})
                    return
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self._answer(403, {"error": {"code": "InsufficientAccessError"}})
                    return
                stand_in.queries.append(body)
                try:
                    rows = stand_in._rows(body)
                except (ValueError, KeyError) as error:
                    problem = {"code": "BadArgumentError", "message": str(error)}
                    self._answer(400, {"error": problem})
                    return
                table = {
                    "name": "PrimaryResult",
                    "columns": [{"name": "Message", "type": "string"}],
                    "rows": rows,
                }
                self._answer(200, {"tables": [table]})

            def _answer(self, status: int, document: dict[str, Any]) -> None:
                payload = json.dumps(document).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                """Quiet."""

        server = LoopbackServer(Handler, None)
        self.port = server.server_address[1]
        self._serve(server, "fake-log-analytics")
        return self


class StaticCredential:
    """A credential that hands out the stand-in's token and records the scopes asked for."""

    def __init__(self) -> None:
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **_: Any) -> Any:
        """A token for ``scopes``."""
        from azure.core.credentials import AccessToken

        self.scopes.extend(scopes)
        return AccessToken(TOKEN, 2**31 - 1)
