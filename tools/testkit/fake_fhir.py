"""A real HTTP FHIR server on 127.0.0.1 for tests, with an OAuth token endpoint and fault injection.

It stands in for a provider FHIR server behind EHR Bridge, so that transport and proxy tests
drive real sockets, keep-alive, paging links and failures:

- Resources: every HL7 example of its FHIR version from ``tests/data/hl7-examples/<version>``
  (Bundles, OperationOutcomes and capability statements excepted), keyed by (type, id); DSTU2's
  ``fhir_comments`` are left as they are. ``add()`` adds more.
- Interactions (under ``base_path``): ``GET metadata`` (CapabilityStatement, or Conformance for
  DSTU2, declaring the configured ``capabilities``); ``GET [type]/[id]`` (404 OperationOutcome
  when missing) and ``[type]/[id]/_history/[vid]``; ``GET [type]?…`` searches (``patient`` /
  ``subject`` reference ending in the id, ``_id``, ``_count`` (capped at ``max_page_size``)
  with real paging through an opaque ``_page`` token, ``total``, ``_summary=count``,
  ``_sort=[-]date`` / ``_sort:desc=date`` when sort is enabled); ``POST [type]/_search``
  (form body; 405 when post_search is disabled);
  ``POST [base]`` with a batch Bundle of GETs (``batch_refused_status`` when batch is disabled);
  ``POST [type]``, ``PUT [type]/[id]``, ``DELETE [type]/[id]``. Every ``fullUrl``, link,
  ``Location`` and ``Content-Location`` uses the server's own absolute base URL, so URL rewriting
  is exercised.
- Auth: ``require_bearer`` ("token": that static token or any issued one; ``True``: issued tokens
  only; ``None``: no auth). ``metadata`` is always open. A client-credentials token endpoint at
  ``/oauth/token`` (``token_url``) issues tokens to clients registered with ``issue_tokens``,
  and to clients registered with ``require_assertion`` that authenticate with a signed
  ``client_assertion`` (RFC 7523; checked as ``tools/testkit/assertion_check.py`` says, against
  their JWKS URL over HTTP); ``rotate_tokens()`` revokes every token issued so far.
- Faults are queued and consumed one per matching request, in order (``fail``, ``slow``,
  ``slow_body``, ``drop``, ``truncate``, ``garbage``, ``redirect``, ``oversize``);
  ``extra_headers`` adds headers to every answer until cleared. By default a fault matches any
  request except the token endpoint; ``path=`` (relative to the base, or absolute from "/") and
  ``method=`` narrow it.
- Every request is recorded (method, path, raw query, headers, body, client port, connection
  number, status, fault): ``requests()``, ``last()``, ``count()``, ``connections()``, ``reset()``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import gzip
import json
import secrets
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from tools.testkit.assertion_check import AssertionChecker, AssertionClient, Refused
from tools.testkit.data import HL7_EXAMPLES, data_files
from tools.testkit.loopback import BackgroundServer, LoopbackServer

TOKEN_PATH = "/oauth/token"
FHIR_VERSIONS = {"dstu2": "1.0.2", "stu3": "3.0.2", "r4": "4.0.1"}
MIME_TYPES = {
    "dstu2": "application/json+fhir",
    "stu3": "application/fhir+json",
    "r4": "application/fhir+json",
}
NOT_STORED = frozenset({"Bundle", "OperationOutcome", "CapabilityStatement", "Conformance"})
KNOWN_TYPES = frozenset(
    {
        "AllergyIntolerance",
        "CarePlan",
        "Condition",
        "Coverage",
        "DiagnosticReport",
        "DocumentReference",
        "Encounter",
        "Immunization",
        "Location",
        "Medication",
        "MedicationOrder",
        "MedicationRequest",
        "MedicationStatement",
        "Observation",
        "Organization",
        "Patient",
        "Practitioner",
        "Procedure",
    }
)
CAPABILITY_NAMES = ("batch", "sort", "post_search")
# Faults that replace the answer (the others delay, pace, cut or drop the normal one).
_ANSWERING_FAULTS = frozenset({"status", "garbage", "redirect", "oversize"})
_CAPABILITY_ALIASES = {"sort_by_date": "sort"}

# Where each type keeps "the" date that _sort=date orders by (first present wins).
DATE_PATHS: dict[str, tuple[tuple[str, ...], ...]] = {
    "Observation": (("effectiveDateTime",), ("effectivePeriod", "start"), ("issued",)),
    "Condition": (("recordedDate",), ("assertedDate",), ("dateRecorded",), ("onsetDateTime",)),
    "Encounter": (("period", "start"),),
    "AllergyIntolerance": (("recordedDate",), ("assertedDate",), ("onsetDateTime",), ("onset",)),
    "MedicationRequest": (("authoredOn",),),
    "MedicationOrder": (("dateWritten",),),
    "Coverage": (("period", "start"),),
}

# A provider's 500 page as some servers send it: HTML, a stack trace, internal host names.
HTML_STACK_TRACE = (
    "<html><head><title>500 Internal Server Error</title></head><body>"
    "<h1>HTTP Status 500 - Internal Server Error</h1><pre>"
    "java.lang.NullPointerException: patient index unavailable\n"
    "\tat org.hospital.fhir.internal.PatientDao.search(PatientDao.java:412)\n"
    "\tat org.hospital.fhir.internal.SearchServlet.doGet(SearchServlet.java:88)\n"
    "upstream: http://fhir-db-01.hospital.internal:5432/ehr?user=svc_fhir\n"
    "</pre><address>Apache Tomcat/9.0.31 at fhir-app-07.hospital.internal</address>"
    "</body></html>"
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def operation_outcome(code: str, diagnostics: str, severity: str = "error") -> dict[str, Any]:
    """A minimal OperationOutcome (the same shape in DSTU2, STU3 and R4)."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }


@dataclass
class Fault:
    """One queued misbehaviour, consumed by the next matching request."""

    kind: str
    status: int = 200
    body: bytes = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    delay: float = 0.0
    rate: float = 0.0
    chunked: bool = False
    path: str | None = None
    method: str | None = None

    def matches(self, method: str, path: str, base_path: str) -> bool:
        """Whether this fault applies to a request (by default: any but the token endpoint)."""
        if self.method is not None and self.method.upper() != method:
            return False
        if self.path is None:
            return path != TOKEN_PATH
        wanted = self.path if self.path.startswith("/") else f"{base_path}/{self.path}"
        return path.startswith(wanted)


@dataclass
class RecordedRequest:
    """What the server saw of one request, and what it did (``status`` None: dropped)."""

    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    client_port: int
    connection: int
    received_at: float
    status: int | None = None
    fault: str | None = None

    def header(self, name: str) -> str | None:
        """The first value of a request header, or None."""
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), None)

    @property
    def params(self) -> list[tuple[str, str]]:
        """The query parameters in order (blank values kept)."""
        return parse_qsl(self.query, keep_blank_values=True)

    @property
    def bearer(self) -> str | None:
        """The bearer token presented, if any."""
        return _bearer(self.header("Authorization"))


@dataclass
class _Answer:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    chunked: bool = False
    rate: float = 0.0
    truncate: bool = False


@dataclass
class _Snapshot:
    resource_type: str
    keys: list[tuple[str, str]]
    count: int
    created: float = field(default_factory=time.monotonic)


class _Server(LoopbackServer):
    def __init__(self, fake: FakeFhirServer, context: ssl.SSLContext | None) -> None:
        self.fake = fake
        super().__init__(_Handler, context)


class _Handler(BaseHTTPRequestHandler):
    # Headers and body leave in separate writes: without TCP_NODELAY each response waits
    # ~40 ms for the client's delayed ACK.
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    server_version = "FakeFHIR/1.0"
    sys_version = ""
    # Idle keep-alive connections give their thread up after this long.
    timeout = 30
    server: _Server

    @property
    def connection_serial(self) -> int:
        """Which accepted TCP connection (1, 2, ...) this request came on."""
        with self.server.connections_lock:
            return self.server.serials.get(self.client_address, 0)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest output stays readable."""

    def version_string(self) -> str:
        override = self.server.fake._server_header()
        return override if override is not None else self.server_version

    def handle(self) -> None:
        with contextlib.suppress(ConnectionError, TimeoutError, OSError):
            super().handle()

    def do_GET(self) -> None:
        self.server.fake._handle(self)

    do_POST = do_GET
    do_PUT = do_GET
    do_DELETE = do_GET
    do_PATCH = do_GET
    do_HEAD = do_GET

    def read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class FakeFhirServer(BackgroundServer):
    """A FHIR server of one version on 127.0.0.1 in a background thread."""

    def __init__(
        self,
        version: str = "r4",
        base_path: str = "/fhir",
        fixtures_dir: str | Path | None = None,
        *,
        capabilities: Mapping[str, bool] | None = None,
        require_bearer: str | bool | None = None,
        batch_refused_status: int = 405,
        default_page_size: int = 50,
        max_page_size: int | None = None,
        tls: bool = False,
        gzip_responses: bool = False,
    ) -> None:
        if version not in FHIR_VERSIONS:
            raise ValueError(f"version must be one of {', '.join(FHIR_VERSIONS)}")
        if batch_refused_status not in (400, 404, 405, 501):
            raise ValueError("batch_refused_status must be 400, 404, 405 or 501")
        self.version = version
        self.base_path = "/" + base_path.strip("/") if base_path.strip("/") else ""
        self.capabilities: dict[str, bool] = dict.fromkeys(CAPABILITY_NAMES, True)
        for name, value in (capabilities or {}).items():
            self.set_capability(name, value)
        self.require_bearer = require_bearer
        self.batch_refused_status = batch_refused_status
        self.default_page_size = default_page_size
        # Real servers cap _count; with a small cap one search takes many pages.
        self.max_page_size = max_page_size
        self.tls = tls
        self.gzip_responses = gzip_responses
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._resources: dict[tuple[str, str], dict[str, Any]] = {}
        self._snapshots: dict[str, _Snapshot] = {}
        self._faults: list[Fault] = []
        self._records: list[RecordedRequest] = []
        self._extra_headers: list[tuple[str, str]] = []
        self._clients: dict[str, tuple[str, int]] = {}
        self._issued: dict[str, float] = {}
        self.assertions = AssertionChecker()
        self._token_requests = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._tmp: Path | None = None
        self.origin = ""
        self.base_url = ""
        self.token_url = ""
        self.ca_path = ""
        # An explicit folder may be empty on purpose; the default one never is.
        self._load(
            sorted(Path(fixtures_dir).glob("*.json"))
            if fixtures_dir
            else data_files(HL7_EXAMPLES / version)
        )

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeFhirServer:
        """Bind a free port and serve in a daemon thread."""
        context = self._tls_context("fake-fhir-") if self.tls else None
        self._stop.clear()
        server = _Server(self, context)
        port = server.server_address[1]
        self.origin = f"{'https' if self.tls else 'http'}://127.0.0.1:{port}"
        self.base_url = f"{self.origin}{self.base_path}"
        self.token_url = f"{self.origin}{TOKEN_PATH}"
        self._serve(server, "fake-fhir")
        return self

    # -- data ------------------------------------------------------------------------------

    def _load(self, paths: list[Path]) -> None:
        for path in paths:
            resource = json.loads(path.read_text("utf-8"))
            if isinstance(resource, dict) and resource.get("resourceType") not in NOT_STORED:
                self.add(resource)

    def add(self, resource: Mapping[str, Any]) -> dict[str, Any]:
        """Store a resource (an id is assigned when it has none); returns the stored copy."""
        stored = copy.deepcopy(dict(resource))
        resource_type = stored.get("resourceType")
        if not isinstance(resource_type, str) or not resource_type:
            raise ValueError("a resource needs a resourceType")
        stored.setdefault("id", uuid.uuid4().hex[:16])
        with self._lock:
            self._resources[(resource_type, str(stored["id"]))] = stored
        return copy.deepcopy(stored)

    def get(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        """A stored resource, or None."""
        with self._lock:
            found = self._resources.get((resource_type, resource_id))
        return copy.deepcopy(found) if found is not None else None

    def remove(self, resource_type: str, resource_id: str) -> None:
        """Forget a resource."""
        with self._lock:
            self._resources.pop((resource_type, resource_id), None)

    def resources(self, resource_type: str | None = None) -> list[dict[str, Any]]:
        """Stored resources (of one type), in insertion order."""
        with self._lock:
            return [
                copy.deepcopy(r)
                for (t, _), r in self._resources.items()
                if resource_type is None or t == resource_type
            ]

    def set_capability(self, name: str, enabled: bool) -> None:
        """Turn ``batch``, ``sort`` (alias ``sort_by_date``) or ``post_search`` on or off."""
        canonical = _CAPABILITY_ALIASES.get(name, name)
        if canonical not in CAPABILITY_NAMES:
            raise ValueError(f"unknown capability {name!r}")
        self.capabilities[canonical] = bool(enabled)

    # -- auth ------------------------------------------------------------------------------

    def issue_tokens(self, client_id: str, secret: str, expires_in: int = 3600) -> None:
        """Let ``client_id``/``secret`` obtain tokens valid ``expires_in`` seconds (reported)."""
        with self._lock:
            self._clients[client_id] = (secret, expires_in)

    def require_assertion(self, client_id: str, jwks_url: str, **rules: Any) -> AssertionClient:
        """Let ``client_id`` obtain tokens with an assertion signed by a key of ``jwks_url``.

        ``rules`` are ``AssertionClient``'s: ``expires_in``, ``algorithms``, ``audience``,
        ``max_lifetime``, ``ca_path``.
        """
        client = AssertionClient(client_id, jwks_url, **rules)
        self.assertions.register(client)
        return client

    def rotate_tokens(self) -> None:
        """Revoke every token issued so far: they get 401 from now on."""
        with self._lock:
            self._issued.clear()

    def accept_token(self, token: str) -> None:
        """Accept ``token`` as if it had been issued here."""
        with self._lock:
            self._issued[token] = time.time() + 3600

    def token_requests(self) -> int:
        """Requests to the token endpoint since the start (or the last ``reset``)."""
        with self._lock:
            return self._token_requests

    @property
    def issued_tokens(self) -> list[str]:
        """Tokens issued and not revoked, oldest first."""
        with self._lock:
            return list(self._issued)

    def _authorized(self, token: str | None) -> bool:
        if self.require_bearer is None or self.require_bearer is False:
            return True
        if token is None:
            return False
        if isinstance(self.require_bearer, str) and secrets.compare_digest(
            token.encode(), self.require_bearer.encode()
        ):
            return True
        with self._lock:
            expires = self._issued.get(token)
        return expires is not None and expires > time.time()

    # -- faults ----------------------------------------------------------------------------

    def _queue(self, fault: Fault, times: int) -> None:
        with self._lock:
            self._faults.extend(copy.deepcopy(fault) for _ in range(times))

    def fail(
        self,
        status: int,
        body: str | bytes | Mapping[str, Any] | None = None,
        content_type: str | None = None,
        times: int = 1,
        *,
        headers: Mapping[str, str] | None = None,
        path: str | None = None,
        method: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests with ``status`` and ``body``.

        ``body`` None: an OperationOutcome (FHIR JSON); a dict: JSON; str/bytes: as given
        (e.g. ``HTML_STACK_TRACE`` with ``content_type="text/html"``).
        """
        if body is None:
            payload = _json(operation_outcome("exception", f"injected failure {status}"))
            kind_type = content_type or self.mime_type
        elif isinstance(body, Mapping):
            payload = _json(body)
            kind_type = content_type or self.mime_type
        else:
            payload = body.encode("utf-8") if isinstance(body, str) else body
            kind_type = content_type or "text/plain"
        self._queue(
            Fault(
                "status",
                status=status,
                body=payload,
                content_type=kind_type,
                headers=list((headers or {}).items()),
                path=path,
                method=method,
            ),
            times,
        )

    def slow(
        self, seconds: float, times: int = 1, *, path: str | None = None, method: str | None = None
    ) -> None:
        """Hold the status line and headers back ``seconds``, then answer normally."""
        self._queue(Fault("slow", delay=seconds, path=path, method=method), times)

    def slow_body(
        self,
        bytes_per_second: float,
        times: int = 1,
        *,
        path: str | None = None,
        method: str | None = None,
    ) -> None:
        """Answer normally, but send the body at ``bytes_per_second`` (headers at once)."""
        self._queue(Fault("slow_body", rate=bytes_per_second, path=path, method=method), times)

    def drop(self, times: int = 1, *, path: str | None = None, method: str | None = None) -> None:
        """Read the request, then close the connection without answering."""
        self._queue(Fault("drop", path=path, method=method), times)

    def truncate(
        self, times: int = 1, *, path: str | None = None, method: str | None = None
    ) -> None:
        """Answer normally, but close the connection halfway through the body."""
        self._queue(Fault("truncate", path=path, method=method), times)

    def garbage(
        self,
        times: int = 1,
        *,
        status: int = 200,
        path: str | None = None,
        method: str | None = None,
    ) -> None:
        """Answer ``status`` with a FHIR JSON content type and a body that is not JSON."""
        self._queue(
            Fault(
                "garbage",
                status=status,
                body=b"<html><body>\x00\xff not json {{{",
                content_type=self.mime_type,
                path=path,
                method=method,
            ),
            times,
        )

    def redirect(
        self,
        location: str,
        status: int = 302,
        times: int = 1,
        *,
        path: str | None = None,
        method: str | None = None,
    ) -> None:
        """Answer ``status`` with ``Location: location``."""
        self._queue(
            Fault(
                "redirect",
                status=status,
                body=b"",
                content_type="text/plain",
                headers=[("Location", location)],
                path=path,
                method=method,
            ),
            times,
        )

    def oversize(
        self,
        nbytes: int,
        times: int = 1,
        *,
        chunked: bool = False,
        path: str | None = None,
        method: str | None = None,
    ) -> None:
        """Answer 200 with ``nbytes`` of JSON (Content-Length, or chunked without one)."""
        head, tail = b'{"resourceType":"Bundle","pad":"', b'"}'
        body = head + b"x" * max(0, nbytes - len(head) - len(tail)) + tail
        self._queue(
            Fault(
                "oversize",
                status=200,
                body=body,
                content_type=self.mime_type,
                chunked=chunked,
                path=path,
                method=method,
            ),
            times,
        )

    def extra_headers(self, headers: Mapping[str, str] | Iterable[tuple[str, str]] | None) -> None:
        """Add these headers to every answer from now on (``None`` or ``{}`` clears them).

        Pairs allow repeats (two ``Set-Cookie``); a ``Server`` value replaces the default one.
        """
        pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
        with self._lock:
            self._extra_headers = pairs

    def clear_faults(self) -> None:
        """Forget every queued fault."""
        with self._lock:
            self._faults.clear()

    def pending_faults(self) -> int:
        """Queued faults not consumed yet."""
        with self._lock:
            return len(self._faults)

    def _server_header(self) -> str | None:
        with self._lock:
            return next((v for k, v in self._extra_headers if k.lower() == "server"), None)

    # -- observation -----------------------------------------------------------------------

    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first."""
        with self._lock:
            return list(self._records)

    def last(self) -> RecordedRequest:
        """The latest request (AssertionError when there was none)."""
        with self._lock:
            assert self._records, "the fake FHIR server received no request"
            return self._records[-1]

    def count(self, *, method: str | None = None, path: str | None = None) -> int:
        """Requests received, optionally by method and by path prefix (relative to the base
        unless it starts with "/"; the token endpoint is counted only when asked for)."""
        wanted = None
        if path is not None:
            wanted = path if path.startswith("/") else f"{self.base_path}/{path}"
        return sum(
            1
            for r in self.requests()
            if (method is None or r.method == method.upper())
            and (r.path.startswith(wanted) if wanted is not None else r.path != TOKEN_PATH)
        )

    def connections(self) -> int:
        """TCP connections accepted since the start (or the last ``reset``)."""
        server = self._server
        if server is None:
            return 0
        with server.connections_lock:
            return server.accepted

    def client_ports(self) -> set[int]:
        """Distinct client ports seen: one per TCP connection that sent a request."""
        return {r.client_port for r in self.requests()}

    def reset(self) -> None:
        """Forget recorded requests and counters (not resources, faults or tokens)."""
        with self._lock:
            self._records.clear()
            self._token_requests = 0
        server = self._server
        if server is not None:
            with server.connections_lock:
                server.accepted = 0

    @property
    def mime_type(self) -> str:
        """The FHIR JSON media type of this server's version."""
        return MIME_TYPES[self.version]

    # -- request handling ------------------------------------------------------------------

    def _handle(self, handler: _Handler) -> None:
        split = urlsplit(handler.path)
        method = handler.command
        body = handler.read_body()
        with self._lock:
            record = RecordedRequest(
                method=method,
                path=split.path,
                query=split.query,
                headers=list(handler.headers.items()),
                body=body,
                client_port=handler.client_address[1],
                connection=handler.connection_serial,
                received_at=time.monotonic(),
            )
            self._records.append(record)
            fault = next(
                (f for f in self._faults if f.matches(method, split.path, self.base_path)), None
            )
            if fault is not None:
                self._faults.remove(fault)
                record.fault = fault.kind
        rate = 0.0
        truncate = False
        if fault is not None:
            if fault.kind == "drop":
                handler.drop()
                return
            if fault.kind == "slow" and self._stop.wait(fault.delay):
                handler.drop()
                return
            if fault.kind == "slow_body":
                rate = fault.rate
            truncate = fault.kind == "truncate"
            if fault.kind in _ANSWERING_FAULTS:
                if fault.kind == "status":
                    record.fault = f"status:{fault.status}"
                self._send(
                    handler,
                    record,
                    _Answer(
                        fault.status,
                        fault.body,
                        fault.content_type,
                        list(fault.headers),
                        chunked=fault.chunked,
                    ),
                )
                return
        try:
            answer = self._route(handler, method, split.path, split.query, body)
        except _BadRequest as bad:
            answer = self._outcome(bad.status, bad.code, str(bad))
        answer.rate = rate
        answer.truncate = truncate
        self._send(handler, record, answer)

    def _route(self, handler: _Handler, method: str, path: str, query: str, body: bytes) -> _Answer:
        if path == TOKEN_PATH:
            return self._token(method, handler, body)
        if not (path == self.base_path or path.startswith(self.base_path + "/")):
            return self._outcome(404, "not-found", "no FHIR endpoint here")
        relative = path[len(self.base_path) :].strip("/")
        segments = relative.split("/") if relative else []
        if segments == ["metadata"]:
            if method not in ("GET", "HEAD"):
                return self._outcome(405, "not-supported", "metadata is read-only")
            return self._resource_answer(200, self.capability_statement())
        token = _bearer(handler.headers.get("Authorization"))
        if not self._authorized(token):
            challenge = 'Bearer realm="fhir"'
            if token is not None:
                challenge += ', error="invalid_token"'
            answer = self._outcome(401, "login", "a valid bearer token is required")
            answer.headers.append(("WWW-Authenticate", challenge))
            return answer
        return self._interaction(method, segments, query, body, handler.headers)

    def _interaction(
        self,
        method: str,
        segments: list[str],
        query: str,
        body: bytes,
        headers: Any,
    ) -> _Answer:
        if not segments:
            if method == "POST":
                return self._batch(body)
            return self._outcome(405, "not-supported", "only batch Bundles are posted to the base")
        resource_type = segments[0]
        if not resource_type[:1].isupper() or not resource_type.isalpha():
            return self._outcome(400, "invalid", "not a resource type")
        if resource_type not in KNOWN_TYPES and not self.resources(resource_type):
            return self._outcome(404, "not-supported", f"unknown resource type {resource_type}")
        params = parse_qsl(query, keep_blank_values=True)
        if len(segments) == 1:
            if method in ("GET", "HEAD"):
                return self._search(resource_type, params)
            if method == "POST":
                return self._create(resource_type, body)
            return self._outcome(405, "not-supported", "method not allowed here")
        if segments[1] == "_search":
            if len(segments) != 2 or method != "POST":
                return self._outcome(405, "not-supported", "_search takes POST")
            if not self.capabilities["post_search"]:
                return self._outcome(405, "not-supported", "POST _search is not supported")
            content_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if content_type != "application/x-www-form-urlencoded":
                return self._outcome(415, "not-supported", "_search takes a form body")
            form = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
            return self._search(resource_type, params + form)
        resource_id = segments[1]
        if len(segments) == 2:
            if method in ("GET", "HEAD"):
                return self._read(resource_type, resource_id)
            if method == "PUT":
                return self._update(resource_type, resource_id, body)
            if method == "DELETE":
                self.remove(resource_type, resource_id)
                return _Answer(204)
            return self._outcome(405, "not-supported", "method not allowed here")
        if len(segments) == 4 and segments[2] == "_history" and method in ("GET", "HEAD"):
            return self._read(resource_type, resource_id)
        return self._outcome(404, "not-found", "no such interaction")

    # -- interactions ----------------------------------------------------------------------

    def _read(self, resource_type: str, resource_id: str) -> _Answer:
        found = self.get(resource_type, resource_id)
        if found is None:
            return self._outcome(404, "not-found", f"{resource_type}/{resource_id} is not known")
        version = str((found.get("meta") or {}).get("versionId") or "1")
        answer = self._resource_answer(200, found)
        answer.headers += [
            ("ETag", f'W/"{version}"'),
            (
                "Content-Location",
                f"{self.base_url}/{resource_type}/{resource_id}/_history/{version}",
            ),
        ]
        return answer

    def _create(self, resource_type: str, body: bytes) -> _Answer:
        resource = _parse_resource(body, resource_type)
        resource["id"] = uuid.uuid4().hex[:16]
        stored = self.add(resource)
        answer = self._resource_answer(201, stored)
        answer.headers += [
            ("Location", f"{self.base_url}/{resource_type}/{stored['id']}/_history/1"),
            ("ETag", 'W/"1"'),
        ]
        return answer

    def _update(self, resource_type: str, resource_id: str, body: bytes) -> _Answer:
        resource = _parse_resource(body, resource_type)
        if str(resource.get("id")) != resource_id:
            return self._outcome(400, "invalid", "the resource id does not match the URL")
        existed = self.get(resource_type, resource_id) is not None
        stored = self.add(resource)
        answer = self._resource_answer(200 if existed else 201, stored)
        answer.headers.append(
            ("Location", f"{self.base_url}/{resource_type}/{resource_id}/_history/1")
        )
        return answer

    def _search(self, resource_type: str, params: list[tuple[str, str]]) -> _Answer:
        page_token = _last(params, "_page")
        count = self.default_page_size
        raw_count = _last(params, "_count")
        if raw_count is not None:
            if not raw_count.isdigit():
                return self._outcome(400, "invalid", "_count must be a number")
            count = int(raw_count)
        if self.max_page_size is not None:
            count = min(count, self.max_page_size)
        if page_token is not None:
            try:
                snapshot_id, offset = _decode_page(page_token)
            except ValueError:
                return self._outcome(400, "invalid", "bad _page token")
            with self._lock:
                snapshot = self._snapshots.get(snapshot_id)
            if snapshot is None or snapshot.resource_type != resource_type:
                return self._outcome(410, "not-found", "the search has expired")
            return self._searchset(snapshot_id, snapshot, offset, params)
        keys = self._matches(resource_type, params)
        if _last(params, "_summary") == "count":
            count = 0
        snapshot = _Snapshot(resource_type, keys, count)
        snapshot_id = uuid.uuid4().hex
        with self._lock:
            self._snapshots[snapshot_id] = snapshot
        return self._searchset(snapshot_id, snapshot, 0, params)

    def _matches(self, resource_type: str, params: list[tuple[str, str]]) -> list[tuple[str, str]]:
        with self._lock:
            candidates = [
                (key, resource)
                for key, resource in self._resources.items()
                if key[0] == resource_type
            ]
        for name, value in params:
            base = name.split(":")[0]
            if base in ("patient", "subject"):
                wanted = {v.rstrip("/").split("/")[-1] for v in value.split(",") if v}
                candidates = [(k, r) for k, r in candidates if _reference_id(r, base) in wanted]
            elif base == "_id":
                wanted = set(value.split(","))
                candidates = [(k, r) for k, r in candidates if k[1] in wanted]
        order = self._sort_order(params)
        if order is not None:
            field_name, descending = order
            candidates.sort(key=lambda item: _sort_value(item[1], field_name), reverse=descending)
        return [k for k, _ in candidates]

    def _sort_order(self, params: list[tuple[str, str]]) -> tuple[str, bool] | None:
        if not self.capabilities["sort"]:
            return None
        for name, value in params:
            if name == "_sort" and value:
                first = value.split(",")[0]
                return first.lstrip("-"), first.startswith("-")
            if name in ("_sort:desc", "_sort:asc") and value:
                return value.split(",")[0], name.endswith("desc")
        return None

    def _searchset(
        self,
        snapshot_id: str,
        snapshot: _Snapshot,
        offset: int,
        params: list[tuple[str, str]],
    ) -> _Answer:
        resource_type = snapshot.resource_type
        page = snapshot.keys[offset : offset + snapshot.count] if snapshot.count else []
        shown = [p for p in params if p[0] != "_page"]
        self_url = f"{self.base_url}/{resource_type}"
        if shown:
            self_url += "?" + urlencode(shown)
        links = [{"relation": "self", "url": self_url}]

        def page_url(at: int) -> str:
            token = _encode_page(snapshot_id, at)
            return f"{self.base_url}/{resource_type}?_count={snapshot.count}&_page={token}"

        if snapshot.count and offset + snapshot.count < len(snapshot.keys):
            links.append({"relation": "next", "url": page_url(offset + snapshot.count)})
        if snapshot.count and offset > 0:
            links.append({"relation": "previous", "url": page_url(max(0, offset - snapshot.count))})
        entries = []
        for key in page:
            resource = self.get(*key)
            if resource is None:
                continue
            entries.append(
                {
                    "fullUrl": f"{self.base_url}/{key[0]}/{key[1]}",
                    "resource": resource,
                    "search": {"mode": "match"},
                }
            )
        bundle: dict[str, Any] = {
            "resourceType": "Bundle",
            "id": uuid.uuid4().hex,
            "meta": {"lastUpdated": _now()},
            "type": "searchset",
            "total": len(snapshot.keys),
            "link": links,
        }
        if entries:
            bundle["entry"] = entries
        answer = self._resource_answer(200, bundle)
        return answer

    def _batch(self, body: bytes) -> _Answer:
        if not self.capabilities["batch"]:
            status = self.batch_refused_status
            return self._outcome(status, "not-supported", "batch is not supported")
        try:
            bundle = json.loads(body)
        except ValueError:
            return self._outcome(400, "structure", "the body is not JSON")
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            return self._outcome(400, "structure", "a Bundle is expected")
        if bundle.get("type") != "batch":
            return self._outcome(400, "not-supported", "only batch Bundles are processed")
        entries = []
        for entry in bundle.get("entry") or []:
            request = entry.get("request") if isinstance(entry, dict) else None
            request = request if isinstance(request, dict) else {}
            entries.append(self._batch_entry(str(request.get("method", "")), request.get("url")))
        response = {
            "resourceType": "Bundle",
            "id": uuid.uuid4().hex,
            "type": "batch-response",
            "link": [{"relation": "self", "url": self.base_url}],
            "entry": entries,
        }
        return self._resource_answer(200, response)

    def _batch_entry(self, method: str, url: object) -> dict[str, Any]:
        if method.upper() != "GET":
            answer = self._outcome(405, "not-supported", "only GET entries are executed")
        elif not isinstance(url, str) or not url:
            answer = self._outcome(400, "invalid", "an entry needs request.url")
        else:
            relative = url
            if relative.startswith(self.base_url + "/"):
                relative = relative[len(self.base_url) + 1 :]
            relative = relative.lstrip("/")
            if "://" in relative:
                answer = self._outcome(400, "invalid", "a foreign absolute URL")
            else:
                path, _, query = relative.partition("?")
                segments = [s for s in path.split("/") if s]
                try:
                    answer = self._interaction("GET", segments, query, b"", {})
                except _BadRequest as bad:
                    answer = self._outcome(bad.status, bad.code, str(bad))
        document = json.loads(answer.body) if answer.body else None
        phrase = HTTPStatus(answer.status).phrase
        entry: dict[str, Any] = {"response": {"status": f"{answer.status} {phrase}"}}
        if isinstance(document, dict):
            entry["resource"] = document
            if document.get("resourceType") not in ("Bundle", "OperationOutcome"):
                entry["fullUrl"] = f"{self.base_url}/{document['resourceType']}/{document['id']}"
        for name, value in answer.headers:
            if name == "ETag":
                entry["response"]["etag"] = value
        return entry

    def _token(self, method: str, handler: _Handler, body: bytes) -> _Answer:
        with self._lock:
            self._token_requests += 1
        if method != "POST":
            return _oauth_error(405, "invalid_request")
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        if "client_assertion" in form or "client_assertion_type" in form:
            return self._assertion_token(form)
        client_id = form.get("client_id")
        secret = form.get("client_secret")
        authorization = handler.headers.get("Authorization") or ""
        if authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization[6:].strip()).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return _oauth_error(401, "invalid_client")
            client_id, _, secret = decoded.partition(":")
        if form.get("grant_type") != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type")
        with self._lock:
            registered = self._clients.get(client_id or "")
        if (
            registered is None
            or secret is None
            or not secrets.compare_digest(registered[0].encode(), secret.encode())
        ):
            return _oauth_error(401, "invalid_client")
        token = f"fake-fhir-{secrets.token_hex(16)}"
        with self._lock:
            self._issued[token] = time.time() + registered[1]
        document: dict[str, Any] = {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": registered[1],
        }
        if form.get("scope"):
            document["scope"] = form["scope"]
        return _Answer(
            200,
            _json(document),
            "application/json",
            [("Cache-Control", "no-store"), ("Pragma", "no-cache")],
        )

    def _assertion_token(self, form: dict[str, str]) -> _Answer:
        if form.get("grant_type") != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type")
        try:
            client = self.assertions.check(form, self.token_url)
        except Refused as refused:
            return _oauth_error(refused.status, refused.error, refused.description)
        token = f"fake-fhir-{secrets.token_hex(16)}"
        with self._lock:
            self._issued[token] = time.time() + client.expires_in
        document: dict[str, Any] = {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": client.expires_in,
        }
        if form.get("scope"):
            document["scope"] = form["scope"]
        return _Answer(
            200,
            _json(document),
            "application/json",
            [("Cache-Control", "no-store"), ("Pragma", "no-cache")],
        )

    # -- capability statement --------------------------------------------------------------

    def capability_statement(self) -> dict[str, Any]:
        """The CapabilityStatement (Conformance for DSTU2) this server answers at metadata."""
        types = sorted({t for t, _ in self._resources} | {"Patient"})
        search_params = [
            {"name": "_id", "type": "token"},
            {"name": "patient", "type": "reference"},
            {"name": "subject", "type": "reference"},
            {"name": "_count", "type": "number"},
        ]
        if self.capabilities["sort"]:
            search_params.append({"name": "_sort", "type": "string"})
        interactions = [{"code": c} for c in ("read", "vread", "search-type", "create", "update")]
        rest: dict[str, Any] = {
            "mode": "server",
            "resource": [
                {"type": t, "interaction": interactions, "searchParam": search_params}
                for t in types
            ],
            "searchParam": [p for p in search_params if p["name"].startswith("_")],
        }
        if self.require_bearer:
            rest["security"] = {
                "extension": [
                    {
                        "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/"
                        "oauth-uris",
                        "extension": [{"url": "token", "valueUri": self.token_url}],
                    }
                ]
            }
        statement: dict[str, Any] = {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": "2024-01-01",
            "kind": "instance",
            "software": {"name": "FakeFhirServer", "version": "1.0"},
            "implementation": {"description": "EHR Bridge test server", "url": self.base_url},
            "fhirVersion": FHIR_VERSIONS[self.version],
            "format": ["json"],
            "rest": [rest],
        }
        if self.version == "dstu2":
            statement["resourceType"] = "Conformance"
            statement["acceptUnknown"] = "no"
            # DSTU2 has no "batch" interaction code; it declares batch with transactionMode.
            rest["transactionMode"] = "batch" if self.capabilities["batch"] else "not-supported"
        else:
            if self.version == "stu3":
                statement["acceptUnknown"] = "no"
            if self.capabilities["batch"]:
                rest["interaction"] = [{"code": "batch"}]
        return statement

    # -- answers ---------------------------------------------------------------------------

    def _resource_answer(self, status: int, document: Mapping[str, Any]) -> _Answer:
        return _Answer(status, _json(document), f"{self.mime_type}; charset=utf-8")

    def _outcome(self, status: int, code: str, diagnostics: str) -> _Answer:
        return self._resource_answer(status, operation_outcome(code, diagnostics))

    def _send(self, handler: _Handler, record: RecordedRequest, answer: _Answer) -> None:
        record.status = answer.status
        payload = answer.body
        headers = list(answer.headers)
        with self._lock:
            extra = [(k, v) for k, v in self._extra_headers if k.lower() != "server"]
        accepts_gzip = "gzip" in (handler.headers.get("Accept-Encoding") or "").lower()
        if self.gzip_responses and accepts_gzip and payload and not answer.chunked:
            payload = gzip.compress(payload)
            headers.append(("Content-Encoding", "gzip"))
        handler.send_response(answer.status)
        if answer.content_type:
            handler.send_header("Content-Type", answer.content_type)
        if answer.chunked:
            handler.send_header("Transfer-Encoding", "chunked")
        elif answer.status != 204 and not 100 <= answer.status < 200:
            handler.send_header("Content-Length", str(len(payload)))
        for name, value in headers + extra:
            handler.send_header(name, value)
        handler.end_headers()
        if handler.command == "HEAD" or answer.status == 204:
            return
        try:
            if answer.chunked:
                for start in range(0, len(payload), 65536):
                    piece = payload[start : start + 65536]
                    handler.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                handler.wfile.write(b"0\r\n\r\n")
            elif answer.truncate:
                handler.wfile.write(payload[: len(payload) // 2])
                handler.wfile.flush()
                handler.drop()
                return
            elif answer.rate > 0:
                self._trickle(handler, payload, answer.rate)
            else:
                handler.wfile.write(payload)
            handler.wfile.flush()
        except OSError:
            handler.close_connection = True

    def _trickle(self, handler: _Handler, body: bytes, rate: float) -> None:
        step = max(1, int(rate / 10))
        for start in range(0, len(body), step):
            handler.wfile.write(body[start : start + step])
            handler.wfile.flush()
            if self._stop.wait(step / rate):
                handler.drop()
                return


class _BadRequest(Exception):
    def __init__(self, message: str, status: int = 400, code: str = "invalid") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _json(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


def _oauth_error(status: int, error: str, description: str | None = None) -> _Answer:
    headers = [("Cache-Control", "no-store"), ("Pragma", "no-cache")]
    if status == 401:
        headers.append(("WWW-Authenticate", 'Basic realm="token"'))
    document = {"error": error}
    if description is not None:
        document["error_description"] = description
    return _Answer(status, _json(document), "application/json", headers)


def _parse_resource(body: bytes, resource_type: str) -> dict[str, Any]:
    try:
        resource = json.loads(body)
    except ValueError:
        raise _BadRequest("the body is not JSON", code="structure") from None
    if not isinstance(resource, dict) or resource.get("resourceType") != resource_type:
        raise _BadRequest(f"a {resource_type} resource is expected", code="structure")
    return resource


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _last(params: list[tuple[str, str]], name: str) -> str | None:
    values = [v for k, v in params if k == name]
    return values[-1] if values else None


def _reference_id(resource: Mapping[str, Any], param: str) -> str | None:
    """The id at the end of ``resource[param].reference`` (patient, or subject)."""
    fields = ("patient", "subject") if param == "patient" else ("subject", "patient")
    for name in fields:
        value = resource.get(name)
        if isinstance(value, dict) and isinstance(value.get("reference"), str):
            return str(value["reference"]).rstrip("/").split("/")[-1]
    if resource.get("resourceType") == "Patient" and param == "patient":
        return str(resource.get("id"))
    return None


def _sort_value(resource: Mapping[str, Any], field_name: str) -> str:
    """A comparable date string ("" when the resource has none)."""
    if field_name == "_lastUpdated":
        return str((resource.get("meta") or {}).get("lastUpdated") or "")
    if field_name != "date":
        return ""
    for path in DATE_PATHS.get(str(resource.get("resourceType")), ()):
        value: Any = resource
        for step in path:
            value = value.get(step) if isinstance(value, dict) else None
        if isinstance(value, str):
            return value
    for name in ("date", "issued", "authoredOn", "recordedDate", "effectiveDateTime"):
        if isinstance(resource.get(name), str):
            return str(resource[name])
    return ""


def _encode_page(snapshot_id: str, offset: int) -> str:
    raw = f"{snapshot_id}:{offset}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_page(token: str) -> tuple[str, int]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        snapshot_id, _, offset = raw.partition(":")
        return snapshot_id, int(offset)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("bad page token") from None


def closed_port() -> int:
    """A local port nothing listens on (connections to it are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def running_fake_fhir(**kwargs: Any) -> Iterator[FakeFhirServer]:
    """A started ``FakeFhirServer`` for the duration of the block."""
    server = FakeFhirServer(**kwargs).start()
    try:
        yield server
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    """Serve one fake provider in the foreground (manual walkthroughs), until SIGTERM or Ctrl-C."""
    import argparse
    import signal
    import sys

    parser = argparse.ArgumentParser(prog="python -m tools.testkit.fake_fhir")
    parser.add_argument("--version", choices=sorted(FHIR_VERSIONS), default="r4")
    parser.add_argument(
        "--require-assertion",
        nargs=2,
        metavar=("CLIENT_ID", "JWKS_URL"),
        help="issue tokens only to CLIENT_ID's assertions, checked against JWKS_URL",
    )
    args = parser.parse_args(argv)
    server = FakeFhirServer(args.version, require_bearer=bool(args.require_assertion)).start()
    if args.require_assertion:
        server.require_assertion(*args.require_assertion)
    print(json.dumps({"base_url": server.base_url, "token_url": server.token_url}), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
