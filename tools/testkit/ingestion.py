"""A local Application Insights ingestion endpoint, for the real Azure Monitor exporter.

Azure cannot be reached from here, so tests point ``APPLICATIONINSIGHTS_CONNECTION_STRING`` at
this server (``IngestionEndpoint=http://127.0.0.1:<port>/``) and read what the exporter sent.
It speaks the part of the ingestion protocol the exporter uses: ``POST /v2.1/track`` (and the
older ``/v2/track``) with a JSON array of telemetry envelopes (``name``, ``time``, ``iKey``,
``tags`` such as ``ai.operation.id``, and ``data`` = ``{"baseType", "baseData"}``), gzip or
not, answered ``200 {"itemsReceived", "itemsAccepted", "errors": []}``. Nothing is validated
beyond that shape: a real workspace applies its own schema, which only a deployment shows.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any, Self

from tools.testkit.loopback import BackgroundServer, LoopbackServer

INSTRUMENTATION_KEY = "00000000-0000-4000-8000-000000000000"
REQUEST = "RequestData"
DEPENDENCY = "RemoteDependencyData"
MESSAGE = "MessageData"
METRIC = "MetricData"
EXCEPTION = "ExceptionData"


class FakeIngestion(BackgroundServer):
    """Records every envelope the exporter posts."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._envelopes: list[dict[str, Any]] = []
        self.posts: list[dict[str, str]] = []
        self.port = 0

    @property
    def connection_string(self) -> str:
        """What ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set to."""
        return (
            f"InstrumentationKey={INSTRUMENTATION_KEY};"
            f"IngestionEndpoint=http://127.0.0.1:{self.port}/"
        )

    def envelopes(self, base_type: str | None = None) -> list[dict[str, Any]]:
        """What arrived so far, of one ``baseType`` or all."""
        with self._lock:
            found = list(self._envelopes)
        return [e for e in found if base_type is None or _base_type(e) == base_type]

    def wait_for(
        self, found: Callable[[list[dict[str, Any]]], bool], timeout: float = 60.0
    ) -> list[dict[str, Any]]:
        """Every envelope, once ``found(envelopes)`` holds (the exporter sends in batches)."""
        deadline = time.monotonic() + timeout
        while True:
            everything = self.envelopes()
            if found(everything):
                return everything
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not received within {timeout:.0f} s ({len(everything)} items)"
                )
            time.sleep(0.2)

    def _receive(self, headers: dict[str, str], body: bytes) -> int:
        if headers.get("content-encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        text = body.decode("utf-8")
        try:
            items = json.loads(text)
        except ValueError:  # the classic SDKs send newline-delimited JSON
            items = [json.loads(line) for line in text.splitlines() if line.strip()]
        if isinstance(items, dict):
            items = [items]
        with self._lock:
            self._envelopes.extend(item for item in items if isinstance(item, dict))
            self.posts.append(headers)
        return len(items)

    def start(self) -> Self:
        """Bind to a free loopback port and serve."""
        ingestion = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if self.path.split("?")[0].rstrip("/") not in ("/v2.1/track", "/v2/track"):
                    self._answer(404, {"error": "unknown path"})
                    return
                headers = {name.lower(): value for name, value in self.headers.items()}
                count = ingestion._receive(headers, body)
                self._answer(200, {"itemsReceived": count, "itemsAccepted": count, "errors": []})

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
        self._serve(server, "fake-ingestion")
        return self


def _base_type(envelope: dict[str, Any]) -> str | None:
    data = envelope.get("data")
    return data.get("baseType") if isinstance(data, dict) else None


def base_data(envelope: dict[str, Any]) -> dict[str, Any]:
    """An envelope's ``data.baseData``."""
    data: dict[str, Any] = envelope["data"]["baseData"]
    return data


def operation_id(envelope: dict[str, Any]) -> str | None:
    """The trace id an envelope belongs to (``ai.operation.id``)."""
    tags = envelope.get("tags") or {}
    value = tags.get("ai.operation.id")
    return value if isinstance(value, str) else None
