"""A provider's check of a client assertion (RFC 7523 §3, SMART Backend Services), for the fake.

What an EHR's token endpoint (Epic's, Oracle Health's) does with the ``client_assertion`` EHR
Bridge posts, written independently of EHR Bridge's own code: the signature is verified with
joserfc (EHR Bridge signs with pyjwt), against the JWK Set fetched over HTTP(S) from the JWKS URL
registered for the client, fetched again once when the ``kid`` is unknown. Each rule that fails
answers 401 ``invalid_client`` (400 ``invalid_request`` for a malformed request) with an
``error_description`` naming the rule, so tests can see that EHR Bridge reports which one.
``echo_assertion`` makes the description repeat the assertion, as a careless server might.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class AssertionClient:
    """A client registered with a JWKS URL instead of a secret."""

    client_id: str
    jwks_url: str
    expires_in: int = 3600
    algorithms: tuple[str, ...] = ("RS384", "ES384")
    audience: str | None = None
    """The ``aud`` required; None: the token URL the assertion was posted to."""
    max_lifetime: int = 300
    """How far ahead ``exp`` may be (SMART: five minutes)."""
    ca_path: str | None = None


class Refused(Exception):
    """A refusal, as the token endpoint answers it."""

    def __init__(self, error: str, description: str, status: int = 401) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


class AssertionChecker:
    """Registered assertion clients, their fetched key sets and the ``jti`` values seen."""

    def __init__(self) -> None:
        self.clients: dict[str, AssertionClient] = {}
        self.echo_assertion = False
        self.jwks_fetches = 0
        self._key_sets: dict[str, Any] = {}
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def register(self, client: AssertionClient) -> None:
        """Accept assertions of ``client.client_id`` signed with keys from its JWKS URL."""
        with self._lock:
            self.clients[client.client_id] = client

    def check(self, form: dict[str, str], token_url: str) -> AssertionClient:
        """The client the form's assertion authenticates; Refused with the failed rule."""
        assertion = form.get("client_assertion", "")
        try:
            return self._check(form, assertion, token_url)
        except Refused as refused:
            if self.echo_assertion:
                refused.description += f"; received client_assertion={assertion}"
            raise

    def _check(self, form: dict[str, str], assertion: str, token_url: str) -> AssertionClient:
        from joserfc import jwt
        from joserfc.errors import JoseError

        if form.get("client_secret"):
            raise Refused("invalid_request", "a client secret and an assertion together", 400)
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise Refused("invalid_request", "client_assertion_type must be jwt-bearer", 400)
        parts = assertion.split(".")
        if len(parts) != 3:
            raise Refused("invalid_client", "client_assertion is not a compact JWS")
        header, unverified = _segment(parts[0]), _segment(parts[1])
        client = self.clients.get(str(unverified.get("iss")))
        if client is None:
            raise Refused("invalid_client", "unknown client (iss)")
        alg = header.get("alg")
        if alg not in client.algorithms:
            raise Refused("invalid_client", f"alg must be one of {', '.join(client.algorithms)}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Refused("invalid_client", "kid is required")
        key = self._key(client, kid)
        try:
            claims = jwt.decode(assertion, key, algorithms=[alg]).claims
        except JoseError:
            raise Refused("invalid_client", "signature does not verify") from None
        now = time.time()
        if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
            raise Refused("invalid_client", "iss and sub must both be the client id")
        if claims.get("aud") != (client.audience or token_url):
            raise Refused("invalid_client", "aud must be the token URL")
        exp = claims.get("exp")
        if not isinstance(exp, int | float):
            raise Refused("invalid_client", "exp is required")
        if exp <= now:
            raise Refused("invalid_client", "exp has passed")
        if exp > now + client.max_lifetime:
            raise Refused("invalid_client", f"exp is more than {client.max_lifetime} s ahead")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise Refused("invalid_client", "jti is required")
        with self._lock:
            self._seen = {k: v for k, v in self._seen.items() if v > now}
            if (client.client_id, jti) in self._seen:
                raise Refused("invalid_client", "jti was used before (replay)")
            self._seen[(client.client_id, jti)] = float(exp)
        return client

    def _key(self, client: AssertionClient, kid: str) -> Any:
        from joserfc.errors import JoseError

        for fresh in (False, True):
            key_set = self._key_set(client, fresh)
            try:
                return key_set.get_by_kid(kid)
            except (JoseError, ValueError):
                continue
        raise Refused("invalid_client", "unknown kid: no key of the registered JWKS has it")

    def _key_set(self, client: AssertionClient, fresh: bool) -> Any:
        import requests
        from joserfc.errors import JoseError
        from joserfc.jwk import KeySet

        with self._lock:
            cached = self._key_sets.get(client.jwks_url)
        if cached is not None and not fresh:
            return cached
        try:
            answer = requests.get(
                client.jwks_url,
                headers={"Accept": "application/json"},
                timeout=5,
                verify=client.ca_path or True,
            )
            with self._lock:
                self.jwks_fetches += 1
            document = answer.json()
        except (requests.RequestException, ValueError):
            raise Refused("invalid_client", "the registered JWKS URL could not be read") from None
        try:
            key_set = KeySet.import_key_set(document)
        except (JoseError, ValueError, TypeError):
            # An empty or unusable set holds no key of any kid.
            key_set = KeySet([])
        with self._lock:
            self._key_sets[client.jwks_url] = key_set
        return key_set


def _segment(text: str) -> dict[str, Any]:
    try:
        value = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, RecursionError):
        raise Refused("invalid_client", "client_assertion is not a compact JWS") from None
    if not isinstance(value, dict):
        raise Refused("invalid_client", "client_assertion is not a compact JWS")
    return value
