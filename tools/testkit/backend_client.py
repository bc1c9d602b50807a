"""A SMART Backend Services client for tests: a key pair, its JWKS, and signed assertions.

``BackendKey`` holds a private key (RSA or EC) and makes the client assertions RFC 7523 and
SMART describe; ``JwksServer`` serves a JWK Set over HTTPS from a throwaway CA, as a client's
``jwks_uri`` would, counting fetches and answering with the ``Cache-Control`` a test chooses.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any

from tools.testkit.loopback import BackgroundServer, LoopbackServer

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class BackendKey:
    """A client's signing key: ``alg`` one of RS256/RS384/ES256/ES384."""

    def __init__(self, alg: str = "RS384", kid: str | None = None, *, rsa_bits: int = 2048) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec, rsa

        self.alg = alg
        self.kid = kid or f"key-{uuid.uuid4().hex[:12]}"
        if alg.startswith("RS"):
            self.private_key: Any = rsa.generate_private_key(65537, rsa_bits)
        else:
            curve = ec.SECP256R1() if alg == "ES256" else ec.SECP384R1()
            self.private_key = ec.generate_private_key(curve)

    def public_jwk(self, **extra: Any) -> dict[str, Any]:
        """The public JWK (with ``kid``, ``alg``, ``use``), as a client registers it."""
        import jwt

        jwk: dict[str, Any] = json.loads(
            jwt.algorithms.get_default_algorithms()[self.alg].to_jwk(self.private_key.public_key())
        )
        jwk.update({"kid": self.kid, "alg": self.alg, "use": "sig", **extra})
        return jwk

    def private_jwk(self) -> dict[str, Any]:
        """The private JWK (what must never be registered)."""
        import jwt

        jwk: dict[str, Any] = json.loads(
            jwt.algorithms.get_default_algorithms()[self.alg].to_jwk(self.private_key)
        )
        jwk.update({"kid": self.kid, "alg": self.alg})
        return jwk

    def private_pem(self) -> bytes:
        """The private key in PKCS#8 PEM."""
        from cryptography.hazmat.primitives import serialization

        return bytes(
            self.private_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    def jwks(self) -> dict[str, Any]:
        """A JWK Set of this key alone."""
        return {"keys": [self.public_jwk()]}

    def claims(self, client_id: str, audience: str, **changes: Any) -> dict[str, Any]:
        """SMART's claims: iss = sub = client, aud, exp four minutes ahead, a fresh jti."""
        now = int(changes.pop("now", time.time()))
        claims: dict[str, Any] = {
            "iss": client_id,
            "sub": client_id,
            "aud": audience,
            "exp": now + 240,
            "iat": now,
            "jti": str(uuid.uuid4()),
        }
        claims.update(changes)
        return {name: value for name, value in claims.items() if value is not None}

    def assertion(
        self,
        client_id: str,
        audience: str,
        *,
        header: Mapping[str, Any] | None = None,
        **changes: Any,
    ) -> str:
        """A signed client assertion; ``changes`` replace claims (None removes one)."""
        import jwt

        headers = {"kid": self.kid, "typ": "JWT", **(header or {})}
        return jwt.encode(
            self.claims(client_id, audience, **changes),
            self.private_key,
            algorithm=self.alg,
            headers=headers,
        )

    def form(self, client_id: str, audience: str, **changes: Any) -> dict[str, str]:
        """The token request's authentication fields for one fresh assertion."""
        return {
            "client_assertion_type": JWT_BEARER,
            "client_assertion": self.assertion(client_id, audience, **changes),
        }


class JwksServer(BackgroundServer):
    """Serves ``document`` at ``url`` over HTTPS with ``status``; ``fetches`` counts the GETs."""

    def __init__(self, document: Mapping[str, Any] | None = None) -> None:
        self._stop = threading.Event()
        self.document: Mapping[str, Any] = document or {"keys": []}
        self.cache_control: str | None = "max-age=300"
        self.fetches = 0
        self.status = 200
        self.url = ""

    def start(self) -> JwksServer:
        """Bind a free port of 127.0.0.1 and serve in a daemon thread."""
        jwks = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                jwks.fetches += 1
                body = json.dumps(jwks.document).encode()
                self.send_response(jwks.status if self.path == "/jwks.json" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if jwks.cache_control is not None:
                    self.send_header("Cache-Control", jwks.cache_control)
                self.end_headers()
                self.wfile.write(body)

        server = LoopbackServer(Handler, self._tls_context("client-jwks-"))
        self.url = f"https://127.0.0.1:{server.server_address[1]}/jwks.json"
        self._serve(server, "client-jwks")
        return self
