"""A local HTTPS stand-in for Azure Key Vault's secrets REST API, with fault injection.

It speaks exactly the wire protocol ``azure-keyvault-secrets`` uses for the operations EHR Bridge
needs, so tests drive the real SDK (challenge authentication, paging, retries) end to end:

- ``PUT /secrets/{name}`` sets a new version; ``GET /secrets/{name}[/{version}]`` reads one;
  ``GET /secrets/{name}/versions`` lists versions (paged through ``nextLink``);
  ``PATCH /secrets/{name}/{version}`` updates attributes.
- Key Vault's quirks are reproduced: a disabled version answers 403 ``Forbidden`` with inner error
  ``SecretDisabled``; expiry and not-before are *not* enforced on reads; listings carry no values;
  attributes are Unix epoch seconds; an unauthenticated request gets the 401 bearer challenge.
- Faults are queued (``inject_status``, ``inject_delay``, ``inject_drop``) and consumed one per
  authenticated request, so a test controls exactly which attempt misbehaves.

Simplification: Key Vault stamps ``created`` in whole seconds, so versions set within one second
tie. The fake bumps each new version of a secret to at least one second after the previous one, so
tests can rely on "newest first"; it lists versions in version-id order (not creation order), as
Key Vault promises no order, so the store's own sorting is exercised.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import secrets
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from azure.core.credentials import AccessToken, AccessTokenInfo, TokenRequestOptions
from azure.core.exceptions import ClientAuthenticationError

from shared.keyvault_store import KeyVaultSecretStore
from tools.testkit.loopback import BackgroundServer, LoopbackServer

KEYVAULT_RESOURCE = "https://vault.azure.net"
_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
_VERSION = re.compile(r"^[0-9a-f]{32}$")
_RECOVERY_LEVEL = "Recoverable+Purgeable"

_DEFAULT_ERRORS: dict[int, tuple[str, str, str | None]] = {
    401: ("Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.", None),
    403: (
        "Forbidden",
        "Caller is not authorized to perform action on resource.\r\n"
        "Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'\r\n"
        "Assignment: (not found)\r\n",
        "ForbiddenByRbac",
    ),
    429: (
        "Throttled",
        "Request was not allowed because of throttling. Retry after some time.",
        None,
    ),
    500: ("InternalServerError", "An unexpected error occurred.", None),
    503: ("ServiceUnavailable", "The service is temporarily unavailable.", None),
}


def error_body(code: str, message: str, inner_code: str | None = None) -> dict[str, Any]:
    """Key Vault's error JSON: ``{"error": {"code", "message"[, "innererror": {"code"}]}}``."""
    error: dict[str, Any] = {"code": code, "message": message}
    if inner_code:
        error["innererror"] = {"code": inner_code}
    return {"error": error}


@dataclass
class Fault:
    """One injected misbehaviour, consumed by the next matching authenticated request."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    delay: float = 0.0
    drop: bool = False
    method: str | None = None
    path_contains: str | None = None

    def matches(self, method: str, path: str) -> bool:
        """Whether this fault applies to a request."""
        if self.method is not None and self.method.upper() != method:
            return False
        return self.path_contains is None or self.path_contains in path

    def kind(self) -> str:
        """A short label for request records."""
        if self.drop:
            return "drop"
        if self.status is not None:
            return f"status:{self.status}"
        return f"delay:{self.delay}"


@dataclass
class RecordedRequest:
    """What the fake saw of one request and how it answered (``status`` None: dropped)."""

    method: str
    path: str
    query: dict[str, str]
    authorized: bool
    token: str | None
    received_at: float
    body_length: int = 0
    status: int | None = None
    fault: str | None = None
    answered_at: float | None = None


@dataclass
class _StoredVersion:
    version: str
    value: str
    enabled: bool
    created: int
    updated: int
    exp: int | None
    nbf: int | None
    tags: dict[str, str]
    content_type: str | None


@dataclass
class TokenRequest:
    """One call to ``FakeCredential``."""

    scopes: tuple[str, ...]
    tenant_id: str | None
    claims: str | None
    enable_cae: bool
    via: str


class FakeCredential:
    """A ``TokenCredential`` and ``SupportsTokenInfo`` issuing opaque test tokens.

    The Key Vault SDK prefers ``get_token_info`` when a credential has it and falls back to
    ``get_token``; both are here and both record the request (scope, tenant from the challenge).
    """

    def __init__(
        self,
        on_issue: Callable[[str], None] | None = None,
        *,
        lifetime_seconds: int = 3600,
        fail: bool = False,
    ) -> None:
        self._on_issue = on_issue
        self._lifetime = lifetime_seconds
        self._lock = threading.Lock()
        self.fail = fail
        self.calls: list[TokenRequest] = []
        self.issued: list[str] = []

    def _issue(self, request: TokenRequest) -> tuple[str, int]:
        with self._lock:
            self.calls.append(request)
        if self.fail:
            raise ClientAuthenticationError("FakeCredential: no identity available")
        token = f"fake-kv-token-{secrets.token_hex(16)}"
        with self._lock:
            self.issued.append(token)
        if self._on_issue is not None:
            self._on_issue(token)
        return token, int(time.time()) + self._lifetime

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        """A token for ``scopes`` (the TokenCredential protocol)."""
        token, expires_on = self._issue(
            TokenRequest(tuple(scopes), tenant_id, claims, enable_cae, "get_token")
        )
        return AccessToken(token, expires_on)

    def get_token_info(
        self, *scopes: str, options: TokenRequestOptions | None = None
    ) -> AccessTokenInfo:
        """A token for ``scopes`` (the SupportsTokenInfo protocol)."""
        opts = options or {}
        token, expires_on = self._issue(
            TokenRequest(
                tuple(scopes),
                opts.get("tenant_id"),
                opts.get("claims"),
                bool(opts.get("enable_cae", False)),
                "get_token_info",
            )
        )
        return AccessTokenInfo(token, expires_on)

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> FakeCredential:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def reset_challenge_cache() -> None:
    """Forget the Key Vault challenges the SDK caches process-wide.

    The SDK keys that cache by host:port, so a fake started on a port an earlier fake used would
    otherwise skip the challenge; tests asserting the challenge need a clean slate.
    """
    from azure.keyvault.secrets._shared import http_challenge_cache

    http_challenge_cache.clear()


class _Server(LoopbackServer):
    def __init__(self, vault: FakeKeyVault, context: ssl.SSLContext) -> None:
        self.vault = vault
        super().__init__(_Handler, context)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeKeyVault/1.0"
    # Idle keep-alive connections give up their thread after this long.
    timeout = 30
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest output stays readable."""

    def do_GET(self) -> None:
        self.server.vault._handle(self)

    do_PUT = do_GET
    do_PATCH = do_GET
    do_POST = do_GET
    do_DELETE = do_GET

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def send_json(
        self, status: int, payload: dict[str, Any] | None, headers: dict[str, str] | None = None
    ) -> None:
        body = b"" if payload is None else json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        self.send_header("x-ms-keyvault-service-version", "1.9.0.0")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class FakeKeyVault(BackgroundServer):
    """An HTTPS Key Vault (secrets only) on 127.0.0.1 in a background thread."""

    def __init__(
        self,
        *,
        page_size: int = 2,
        tenant_id: str | None = None,
        unknown_versions_status: int = 200,
    ) -> None:
        self.page_size = page_size
        self.tenant_id = tenant_id or str(uuid.uuid4())
        # Key Vault answers an empty page for the versions of an unknown name; 404 is the
        # alternative some API versions/proxies produce, so tests can switch to it.
        self.unknown_versions_status = unknown_versions_status
        self._lock = threading.Lock()
        self._secrets: dict[str, list[_StoredVersion]] = {}
        self._faults: list[Fault] = []
        self._records: list[RecordedRequest] = []
        self._accepted_tokens: set[str] = set()
        self._stop = threading.Event()
        self._tmp: Path | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.vault_url = ""
        self.ca_path = ""

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeKeyVault:
        """Generate TLS material, bind a free port and serve in a daemon thread."""
        context = self._tls_context("fake-keyvault-")
        server = _Server(self, context)
        self.vault_url = f"https://127.0.0.1:{server.server_address[1]}"
        reset_challenge_cache()
        self._serve(server, "fake-keyvault")
        return self

    # -- authentication ----------------------------------------------------------------------

    def credential(self, **kwargs: Any) -> FakeCredential:
        """A credential whose tokens this vault accepts."""
        return FakeCredential(on_issue=self.accept_token, **kwargs)

    def accept_token(self, token: str) -> None:
        """Treat ``token`` as a valid bearer token from now on."""
        with self._lock:
            self._accepted_tokens.add(token)

    @property
    def challenge(self) -> str:
        """The ``WWW-Authenticate`` value Key Vault sends with a 401."""
        return (
            f'Bearer authorization="https://login.microsoftonline.com/{self.tenant_id}", '
            f'resource="{KEYVAULT_RESOURCE}"'
        )

    # -- fault injection and observation -----------------------------------------------------

    def inject(self, fault: Fault, times: int = 1) -> None:
        """Queue ``fault`` for the next ``times`` matching authenticated requests."""
        with self._lock:
            self._faults.extend(Fault(**vars(fault)) for _ in range(times))

    def inject_status(
        self,
        status: int,
        *,
        times: int = 1,
        retry_after: float | None = None,
        code: str | None = None,
        inner_code: str | None = None,
        method: str | None = None,
        path_contains: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests with ``status`` and Key Vault's error JSON."""
        default_code, message, default_inner = _DEFAULT_ERRORS.get(
            status, ("Error", "Injected failure.", None)
        )
        headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
        body = error_body(code or default_code, message, inner_code or default_inner)
        self.inject(
            Fault(
                status=status,
                headers=headers,
                body=body,
                method=method,
                path_contains=path_contains,
            ),
            times,
        )

    def inject_delay(self, seconds: float, *, times: int = 1, method: str | None = None) -> None:
        """Sleep ``seconds`` before answering the next ``times`` requests (normally)."""
        self.inject(Fault(delay=seconds, method=method), times)

    def inject_drop(self, *, times: int = 1, method: str | None = None) -> None:
        """Close the connection without answering the next ``times`` requests."""
        self.inject(Fault(drop=True, method=method), times)

    def clear_faults(self) -> None:
        """Forget every queued fault."""
        with self._lock:
            self._faults.clear()

    def pending_faults(self) -> int:
        """How many queued faults are still unconsumed."""
        with self._lock:
            return len(self._faults)

    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first."""
        with self._lock:
            return list(self._records)

    def reset_requests(self) -> None:
        """Forget recorded requests (counters start again from zero)."""
        with self._lock:
            self._records.clear()

    def count(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        authorized: bool | None = None,
    ) -> int:
        """Requests received, optionally filtered by method, exact path and authorization."""
        return sum(
            1
            for r in self.requests()
            if (method is None or r.method == method.upper())
            and (path is None or r.path.rstrip("/") == path.rstrip("/"))
            and (authorized is None or r.authorized == authorized)
        )

    def counts_by_path(self) -> dict[str, int]:
        """Requests received per ``METHOD path``."""
        counts: dict[str, int] = {}
        for r in self.requests():
            key = f"{r.method} {r.path}"
            counts[key] = counts.get(key, 0) + 1
        return counts

    @property
    def bearer_tokens(self) -> list[str]:
        """Bearer tokens presented on accepted requests, in order."""
        return [r.token for r in self.requests() if r.authorized and r.token]

    # -- direct state access (test setup that bypasses the SDK) ------------------------------

    def stored_versions(self, name: str) -> list[dict[str, Any]]:
        """The raw stored versions of ``name`` in creation order, values included."""
        with self._lock:
            return [dict(vars(v)) for v in self._secrets.get(name, [])]

    # -- request handling ----------------------------------------------------------------------

    def _handle(self, handler: _Handler) -> None:
        split = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        method = handler.command
        body = handler.read_body()
        token = _bearer(handler.headers.get("Authorization"))
        with self._lock:
            authorized = token is not None and token in self._accepted_tokens
            record = RecordedRequest(
                method=method,
                path=split.path,
                query=query,
                authorized=authorized,
                token=token,
                received_at=time.monotonic(),
                body_length=len(body),
            )
            self._records.append(record)
            fault = None
            if authorized:
                for index, candidate in enumerate(self._faults):
                    if candidate.matches(method, split.path):
                        fault = self._faults.pop(index)
                        break

        def answer(status: int, payload: dict[str, Any] | None, **headers: str) -> None:
            record.status = status
            record.answered_at = time.monotonic()
            handler.send_json(status, payload, headers)

        if not authorized:
            answer(
                401,
                error_body(*_DEFAULT_ERRORS[401][:2]),
                **{"WWW-Authenticate": self.challenge},
            )
            return
        if fault is not None:
            record.fault = fault.kind()
            if fault.delay and self._stop.wait(fault.delay):
                handler.drop()
                return
            if fault.drop:
                record.answered_at = time.monotonic()
                handler.drop()
                return
            if fault.status is not None:
                answer(fault.status, fault.body, **fault.headers)
                return
        if not query.get("api-version"):
            answer(400, error_body("BadParameter", "The api-version parameter is missing."))
            return
        status, payload = self._route(method, split.path, query, body)
        answer(status, payload)

    def _route(
        self, method: str, path: str, query: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        parts = path.strip("/").split("/")
        if len(parts) < 2 or parts[0] != "secrets" or len(parts) > 3:
            return 404, error_body("NotFound", "No such operation.")
        name = parts[1]
        rest = parts[2] if len(parts) == 3 else ""
        if not _NAME.match(name):
            return 400, error_body("BadParameter", "The secret name is invalid.")
        if rest == "versions":
            if method != "GET":
                return 405, error_body("MethodNotAllowed", "Method not allowed.")
            return self._list(name, query)
        if rest and not _VERSION.match(rest):
            return 400, error_body("BadParameter", "The secret version is invalid.")
        try:
            document = json.loads(body) if body else {}
        except ValueError:
            return 400, error_body("BadParameter", "The request body is not JSON.")
        if method == "PUT" and not rest:
            return self._set(name, document)
        if method == "GET":
            return self._get(name, rest or None)
        if method == "PATCH":
            return self._update(name, rest or None, document)
        return 405, error_body("MethodNotAllowed", "Method not allowed.")

    def _id(self, name: str, version: str) -> str:
        return f"{self.vault_url}/secrets/{name}/{version}"

    @staticmethod
    def _attributes(v: _StoredVersion) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "enabled": v.enabled,
            "created": v.created,
            "updated": v.updated,
            "recoveryLevel": _RECOVERY_LEVEL,
            "recoverableDays": 90,
        }
        if v.exp is not None:
            attributes["exp"] = v.exp
        if v.nbf is not None:
            attributes["nbf"] = v.nbf
        return attributes

    def _item(self, name: str, v: _StoredVersion) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": self._id(name, v.version),
            "attributes": self._attributes(v),
            "tags": dict(v.tags),
        }
        if v.content_type is not None:
            item["contentType"] = v.content_type
        return item

    def _bundle(self, name: str, v: _StoredVersion, with_value: bool) -> dict[str, Any]:
        bundle = self._item(name, v)
        if with_value:
            bundle["value"] = v.value
        return bundle

    def _set(self, name: str, document: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        value = document.get("value")
        if not isinstance(value, str):
            return 400, error_body("BadParameter", "Property value is required.")
        attributes = document.get("attributes") or {}
        now = int(time.time())
        with self._lock:
            versions = self._secrets.setdefault(name, [])
            created = max(now, versions[-1].created + 1) if versions else now
            enabled = attributes.get("enabled")
            stored = _StoredVersion(
                version=uuid.uuid4().hex,
                value=value,
                enabled=True if enabled is None else bool(enabled),
                created=created,
                updated=created,
                exp=_epoch(attributes.get("exp")),
                nbf=_epoch(attributes.get("nbf")),
                tags=dict(document.get("tags") or {}),
                content_type=document.get("contentType"),
            )
            versions.append(stored)
            return 200, self._bundle(name, stored, with_value=True)

    def _find(self, name: str, version: str | None) -> _StoredVersion | None:
        versions = self._secrets.get(name) or []
        if not versions:
            return None
        if version is None:
            return versions[-1]
        return next((v for v in versions if v.version == version), None)

    @staticmethod
    def _not_found(name: str) -> tuple[int, dict[str, Any]]:
        return 404, error_body(
            "SecretNotFound",
            f"A secret with (name/id) {name} was not found in this key vault.",
        )

    def _get(self, name: str, version: str | None) -> tuple[int, dict[str, Any]]:
        with self._lock:
            found = self._find(name, version)
            if found is None:
                return self._not_found(name if version is None else f"{name}/{version}")
            if not found.enabled:
                return 403, error_body(
                    "Forbidden",
                    "Operation get is not allowed on a disabled secret.",
                    "SecretDisabled",
                )
            # Expiry and not-before are deliberately not checked: Key Vault does not either.
            return 200, self._bundle(name, found, with_value=True)

    def _update(
        self, name: str, version: str | None, document: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        attributes = document.get("attributes") or {}
        with self._lock:
            found = self._find(name, version)
            if found is None:
                return self._not_found(name if version is None else f"{name}/{version}")
            if attributes.get("enabled") is not None:
                found.enabled = bool(attributes["enabled"])
            if attributes.get("exp") is not None:
                found.exp = _epoch(attributes["exp"])
            if attributes.get("nbf") is not None:
                found.nbf = _epoch(attributes["nbf"])
            if document.get("tags") is not None:
                found.tags = dict(document["tags"])
            if document.get("contentType") is not None:
                found.content_type = document["contentType"]
            found.updated = max(int(time.time()), found.created)
            # Key Vault's update response carries the attributes but not the value.
            return 200, self._bundle(name, found, with_value=False)

    def _list(self, name: str, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        page_size = self.page_size
        if query.get("maxresults"):
            page_size = max(1, min(page_size, int(query["maxresults"])))
        offset = _decode_skiptoken(query.get("$skiptoken"))
        with self._lock:
            versions = self._secrets.get(name)
            if not versions and self.unknown_versions_status == 404:
                return self._not_found(name)
            ordered = sorted(versions or [], key=lambda v: v.version)
            page = [self._item(name, v) for v in ordered[offset : offset + page_size]]
            more = offset + page_size < len(ordered)
        next_link = None
        if more:
            next_link = (
                f"{self.vault_url}/secrets/{name}/versions?api-version="
                f"{query.get('api-version', '')}&$skiptoken={_encode_skiptoken(offset + page_size)}"
                f"&maxresults={page_size}"
            )
        return 200, {"value": page, "nextLink": next_link}


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _epoch(value: Any) -> int | None:
    if value is None:
        return None
    return int(value)


def _encode_skiptoken(offset: int) -> str:
    # Opaque like Key Vault's, and made of URL-safe characters only.
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _decode_skiptoken(token: str | None) -> int:
    if not token:
        return 0
    padded = token + "=" * (-len(token) % 4)
    return int(base64.urlsafe_b64decode(padded).decode().split(":", 1)[1])


@contextlib.contextmanager
def running_fake_keyvault(**kwargs: Any) -> Iterator[FakeKeyVault]:
    """A started ``FakeKeyVault`` for the duration of the block."""
    vault = FakeKeyVault(**kwargs).start()
    try:
        yield vault
    finally:
        vault.stop()


def keyvault_store(
    vault: FakeKeyVault,
    *,
    credential: Any = None,
    timeout_seconds: float = 1.0,
    max_retries: int = 2,
    **client_kwargs: Any,
) -> KeyVaultSecretStore:
    """A ``KeyVaultSecretStore`` (the real SDK) pointed at ``vault``, trusting its CA."""
    return KeyVaultSecretStore(
        vault.vault_url,
        credential if credential is not None else vault.credential(),
        timeout_seconds=timeout_seconds,
        max_retries=max_retries,
        verify_challenge_resource=False,
        connection_verify=vault.ca_path,
        **client_kwargs,
    )
