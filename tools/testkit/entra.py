"""A local stand-in for Microsoft Entra ID: an issuer on 127.0.0.1 over HTTPS, for tests and demos.

Azure and Entra cannot be reached from here, so EHR Bridge's check of Entra app-only tokens
(``shared/proxy/entra.py``) is tested against this server, which serves what the real authority
serves for a tenant, at the same paths (Microsoft identity platform, "Access tokens", "Validate
tokens"; OpenID Connect Discovery 1.0):

- ``GET /{tenant}/v2.0/.well-known/openid-configuration``: ``issuer``
  ``{authority}/{tenant}/v2.0``, ``jwks_uri`` ``{authority}/{tenant}/discovery/v2.0/keys``,
  ``token_endpoint``; ``Cache-Control`` as Entra sends it (a day);
- ``GET /{tenant}/discovery/v2.0/keys``: the signing keys as a JWK Set, each with Entra's
  ``issuer`` member (the templated ``{authority}/{tenantid}/v2.0``);
- ``POST /{tenant}/oauth2/v2.0/token``: the client-credentials grant for a registered app and
  secret (in the form or by HTTP Basic) with ``scope=<application ID URI>/.default``, answering
  a v2.0 app-only access token (``aud`` the API's client id, ``azp`` the caller's app id,
  ``roles``, ``idtyp`` app, ``oid`` = ``sub``, ``uti``, ``ver`` 2.0), signed RS256 with joserfc
  (not pyjwt, which EHR Bridge verifies with). A tenant not added answers 400, as Entra does
  for an unknown tenant.

``token()`` mints a token in-process with any claim or header replaced, for negative tests;
``rotate()``, ``keys_cache_control``, ``fail_next`` and the per-path counters drive the cache
and fault tests. What it is not: Entra's own rules (consent, app role assignment, conditional
access) are not modelled; an app gets the roles it was registered with.

``python -m tools.testkit.entra`` runs one in the foreground for a manual walkthrough and
prints its authority, CA file, tenant, app and secret as JSON.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import secrets
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tools.testkit.loopback import BackgroundServer, LoopbackServer

ONE_DAY = 86_400
TOKEN_LIFETIME = 3_600


@dataclass
class App:
    """A client application registered in a tenant: its id, secret and assigned app roles."""

    app_id: str
    secret: str = field(repr=False)
    roles: tuple[str, ...] = ()
    object_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class Api:
    """A resource application (EHR Bridge's registration): its client id and ID URI."""

    client_id: str
    id_uri: str


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        self.server.entra.handle(self, "GET")

    def do_POST(self) -> None:
        self.server.entra.handle(self, "POST")


class _Server(LoopbackServer):
    def __init__(self, entra: LocalEntra, context: Any) -> None:
        self.entra = entra
        super().__init__(_Handler, context)


class LocalEntra(BackgroundServer):
    """The stand-in issuer; ``authority`` and ``ca_path`` are set by ``start``."""

    def __init__(self) -> None:
        from joserfc.jwk import RSAKey

        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.authority = ""
        self.tenants: dict[str, dict[str, App]] = {}
        self.apis: dict[str, Api] = {}  # by ID URI
        self._keys = [RSAKey.generate_key(2048, parameters={"kid": _kid()}, private=True)]
        self.published_extra: list[dict[str, Any]] = []
        self.keys_cache_control: str | None = f"max-age={ONE_DAY}, private"
        self.oidc_overrides: dict[str, Any] = {}
        self.keys_body: bytes | None = None
        self.requests: Counter[str] = Counter()
        self._failures: list[tuple[str, int]] = []
        self._delays: list[tuple[str, float]] = []

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> LocalEntra:
        """Serve HTTPS on a free port of 127.0.0.1 in a daemon thread."""
        context = self._tls_context("local-entra-")
        self._stop.clear()
        server = _Server(self, context)
        self.authority = f"https://127.0.0.1:{server.server_address[1]}"
        self._serve(server, "local-entra")
        return self

    # -- directory -------------------------------------------------------------------------

    def add_tenant(self, tenant_id: str | None = None) -> str:
        """A tenant the authority knows (a fresh GUID unless given)."""
        tid = tenant_id or str(uuid.uuid4())
        with self._lock:
            self.tenants.setdefault(tid, {})
        return tid

    def register_api(self, id_uri: str, client_id: str | None = None) -> Api:
        """EHR Bridge's app registration: the ID URI callers ask for, the client id in ``aud``."""
        api = Api(client_id or str(uuid.uuid4()), id_uri)
        with self._lock:
            self.apis[id_uri] = api
        return api

    def register_app(self, tenant_id: str, roles: tuple[str, ...] = ()) -> App:
        """A client app in ``tenant_id`` with a fresh id and secret."""
        app = App(str(uuid.uuid4()), secrets.token_urlsafe(24), roles)
        with self._lock:
            self.tenants[tenant_id][app.app_id] = app
        return app

    def issuer(self, tenant_id: str) -> str:
        """The v2.0 issuer of a tenant at this authority."""
        return f"{self.authority}/{tenant_id}/v2.0"

    def token_url(self, tenant_id: str) -> str:
        """The tenant's v2.0 token endpoint."""
        return f"{self.authority}/{tenant_id}/oauth2/v2.0/token"

    # -- keys ------------------------------------------------------------------------------

    @property
    def kid(self) -> str:
        """The ``kid`` of the key that signs now."""
        return str(self._keys[-1].kid)

    def rotate(self, *, publish_old: bool = True) -> str:
        """A new signing key; the old ones stay published unless ``publish_old`` is False."""
        from joserfc.jwk import RSAKey

        key = RSAKey.generate_key(2048, parameters={"kid": _kid()}, private=True)
        with self._lock:
            self._keys = [*self._keys, key] if publish_old else [key]
        return str(key.kid)

    def public_key_pem(self) -> bytes:
        """The signing key's public half as PEM (what a key-confusion attacker would use)."""
        return bytes(self._keys[-1].as_pem(private=False))

    def jwks(self) -> dict[str, Any]:
        """The JWK Set the keys endpoint serves."""
        with self._lock:
            keys = [
                {
                    **key.as_dict(private=False),
                    "use": "sig",
                    "issuer": f"{self.authority}/{{tenantid}}/v2.0",
                }
                for key in self._keys
            ]
        return {"keys": keys + list(self.published_extra)}

    # -- tokens ----------------------------------------------------------------------------

    def claims(self, tenant_id: str, app_id: str, audience: str, **changes: Any) -> dict[str, Any]:
        """The claims of a v2.0 app-only token; ``changes`` replace claims (None drops one)."""
        now = int(time.time())
        object_id = str(uuid.uuid4())
        claims: dict[str, Any] = {
            "aud": audience,
            "iss": self.issuer(tenant_id),
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_LIFETIME,
            "aio": secrets.token_urlsafe(16),
            "azp": app_id,
            "azpacr": "1",
            "idtyp": "app",
            "oid": object_id,
            "rh": secrets.token_urlsafe(8),
            "roles": ["FHIR.Read"],
            "sub": object_id,
            "tid": tenant_id,
            "uti": secrets.token_urlsafe(16),
            "ver": "2.0",
        }
        for name, value in changes.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def token(
        self,
        tenant_id: str,
        app_id: str,
        audience: str,
        *,
        header: Mapping[str, Any] | None = None,
        **changes: Any,
    ) -> str:
        """A signed app-only token (RS256, the current key) with the changes applied."""
        return self.sign(self.claims(tenant_id, app_id, audience, **changes), header=header)

    def sign(self, claims: Mapping[str, Any], *, header: Mapping[str, Any] | None = None) -> str:
        """``claims`` signed RS256 with the current key; ``header`` entries override."""
        from joserfc import jwt

        with self._lock:
            key = self._keys[-1]
        protected = {"typ": "JWT", "alg": "RS256", "kid": str(key.kid), **(header or {})}
        return str(jwt.encode(protected, dict(claims), key))

    # -- faults ----------------------------------------------------------------------------

    def fail_next(self, path_suffix: str, status: int, times: int = 1) -> None:
        """Answer the next ``times`` requests whose path ends in ``path_suffix`` with ``status``."""
        with self._lock:
            self._failures.extend([(path_suffix, status)] * times)

    def delay_next(self, path_suffix: str, seconds: float) -> None:
        """Hold the next matching request ``seconds`` before answering."""
        with self._lock:
            self._delays.append((path_suffix, seconds))

    def count(self, path_suffix: str) -> int:
        """Requests received whose path ends in ``path_suffix``."""
        with self._lock:
            return sum(n for path, n in self.requests.items() if path.endswith(path_suffix))

    # -- HTTP ------------------------------------------------------------------------------

    def handle(self, handler: _Handler, method: str) -> None:
        """Route one request."""
        path = urlsplit(handler.path).path
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self._lock:
            self.requests[path] += 1
            failure = next((f for f in self._failures if path.endswith(f[0])), None)
            if failure is not None:
                self._failures.remove(failure)
            delay = next((d for d in self._delays if path.endswith(d[0])), None)
            if delay is not None:
                self._delays.remove(delay)
        if delay is not None and self._stop.wait(delay[1]):
            return
        if failure is not None:
            self._send(handler, failure[1], {"error": "temporarily_unavailable"})
            return
        parts = path.strip("/").split("/")
        tenant = parts[0] if parts else ""
        if tenant not in self.tenants:
            self._send(handler, 400, {"error": "invalid_tenant", "error_codes": [90002]})
            return
        rest = "/".join(parts[1:])
        if method == "GET" and rest == "v2.0/.well-known/openid-configuration":
            self._send(handler, 200, self._configuration(tenant), cache=f"max-age={ONE_DAY}")
        elif method == "GET" and rest == "discovery/v2.0/keys":
            if self.keys_body is not None:
                self._send_raw(handler, 200, self.keys_body, self.keys_cache_control)
            else:
                self._send(handler, 200, self.jwks(), cache=self.keys_cache_control)
        elif method == "POST" and rest == "oauth2/v2.0/token":
            status, document = self._grant(tenant, body, handler.headers.get("Authorization"))
            self._send(handler, status, document, cache="no-store")
        else:
            self._send(handler, 404, {"error": "not_found"})

    def _configuration(self, tenant: str) -> dict[str, Any]:
        return {
            "issuer": self.issuer(tenant),
            "jwks_uri": f"{self.authority}/{tenant}/discovery/v2.0/keys",
            "token_endpoint": self.token_url(tenant),
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "tenant_region_scope": "EU",
            **self.oidc_overrides,
        }

    def _grant(
        self, tenant: str, body: bytes, authorization: str | None
    ) -> tuple[int, dict[str, Any]]:
        form = dict(parse_qsl(body.decode("utf-8", "replace")))
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if authorization and authorization.lower().startswith("basic "):
            with contextlib.suppress(ValueError):
                decoded = base64.b64decode(authorization[6:].strip()).decode()
                client_id, _, secret = (unquote(part) for part in decoded.partition(":"))
        app = self.tenants[tenant].get(client_id)
        if app is None or not secrets.compare_digest(app.secret.encode(), secret.encode()):
            return 401, {"error": "invalid_client"}
        scope = form.get("scope", "")
        api = (
            self.apis.get(scope.removesuffix("/.default")) if scope.endswith("/.default") else None
        )
        if api is None:
            return 400, {"error": "invalid_scope"}
        token = self.token(
            tenant,
            app.app_id,
            api.client_id,
            roles=list(app.roles) or None,
            oid=app.object_id,
            sub=app.object_id,
        )
        return 200, {"token_type": "Bearer", "expires_in": TOKEN_LIFETIME, "access_token": token}

    @staticmethod
    def _send(
        handler: _Handler, status: int, document: dict[str, Any], *, cache: str | None = None
    ) -> None:
        LocalEntra._send_raw(handler, status, json.dumps(document).encode(), cache)

    @staticmethod
    def _send_raw(handler: _Handler, status: int, body: bytes, cache: str | None) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(body)))
        if cache is not None:
            handler.send_header("Cache-Control", cache)
        handler.end_headers()
        with contextlib.suppress(OSError):
            handler.wfile.write(body)


def _kid() -> str:
    # Entra's kids are base64url thumbprints; any opaque text will do here.
    return secrets.token_urlsafe(20)


@contextlib.contextmanager
def running_entra() -> Iterator[LocalEntra]:
    """A started stand-in, stopped on exit."""
    entra = LocalEntra().start()
    try:
        yield entra
    finally:
        entra.stop()


def main(argv: list[str] | None = None) -> int:
    """Serve a stand-in with one tenant, EHR Bridge's API and one app, until Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenant", help="tenant GUID to add (default: a fresh one)")
    parser.add_argument("--api-id-uri", default="api://ehr-bridge", help="EHR Bridge's ID URI")
    parser.add_argument("--api-client-id", help="EHR Bridge's client id (the aud)")
    parser.add_argument("--role", action="append", default=[], help="app role of the app")
    args = parser.parse_args(argv)
    entra = LocalEntra().start()
    tenant = entra.add_tenant(args.tenant)
    api = entra.register_api(args.api_id_uri, args.api_client_id)
    app = entra.register_app(tenant, tuple(args.role) or ("FHIR.Read",))
    print(
        json.dumps(
            {
                "authority": entra.authority,
                "ca_bundle": entra.ca_path,
                "tenant_id": tenant,
                "token_url": entra.token_url(tenant),
                "audience": api.client_id,
                "scope": f"{api.id_uri}/.default",
                "app_id": app.app_id,
                "app_secret": app.secret,
            },
            indent=2,
        ),
        flush=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        entra.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
