"""Serve a few of the app's own responses over HTTP on 127.0.0.1 (e.g. its assertion JWKS).

For tests and ``make bench`` that need a document of EHR Bridge reachable by URL (a fake provider
fetching our assertion JWKS) without the whole dev host: each path maps to a function returning
a ``shared.http.Response``, called on every GET, so a key rotation shows at once. ``requests``
counts the GETs per path.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any

from shared.http import Response
from tools.testkit.loopback import BackgroundServer, LoopbackServer


class ServedResponses(BackgroundServer):
    """GET ``path`` → ``routes[path]()``; anything else 404."""

    def __init__(self, routes: Mapping[str, Callable[[], Response]]) -> None:
        self.routes = dict(routes)
        self.requests: Counter[str] = Counter()
        self._stop = threading.Event()
        self.origin = ""

    def url(self, path: str) -> str:
        """The absolute URL of ``path``."""
        return f"{self.origin}{path}"

    def start(self) -> ServedResponses:
        """Serve plain HTTP on a free port of 127.0.0.1."""
        served = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

            def do_GET(self) -> None:
                served.requests[self.path] += 1
                route = served.routes.get(self.path)
                response = route() if route is not None else Response(404, b"")
                self.send_response(response.status)
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(response.body)

        server = LoopbackServer(Handler, None)
        self.origin = f"http://127.0.0.1:{server.server_address[1]}"
        self._serve(server, "served")
        return self


@contextlib.contextmanager
def serving(routes: Mapping[str, Callable[[], Response]]) -> Iterator[ServedResponses]:
    """A started ``ServedResponses``, stopped on exit."""
    server = ServedResponses(routes).start()
    try:
        yield server
    finally:
        server.stop()
