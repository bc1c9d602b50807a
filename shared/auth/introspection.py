"""Token introspection (RFC 7662) for resource servers and clients: ``POST oauth2/introspect``.

The caller authenticates as a registered client (§2.1: the endpoint is protected), with the
token endpoint's methods and throttle. Who may learn what (§4, "to prevent token scanning"):

- a client, about its own tokens;
- a client registered as a resource server (``resource_server``), about any token of a tenant
  whose mapping allows that client too.

Anything else is answered ``{"active": false}``, exactly as a token that does not exist, is
expired, revoked or was never ours: the answer never tells a caller that a token it may not
describe is real. ``active`` means what the proxy would do with the token now: every check of
``shared/proxy/bearer.py`` (signature with a published key, times, client enabled, secret
version usable, not revoked, tenant mapped, enabled and allowing the client).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from shared.audit import audit
from shared.auth.client_assertions import AssertionKeysUnavailable
from shared.auth.client_gate import MAX_TOKEN_CHARS, ClientGate, token_parameter
from shared.auth.clients import ClientRecord
from shared.auth.errors import NO_STORE, OAuthError
from shared.fhir.errors import FhirError, Unavailable
from shared.http import Request, Response, json_response
from shared.lookups import Lookups
from shared.proxy.model import Caller
from shared.secret_store import SecretStoreUnavailable
from shared.settings import Settings
from shared.tables import StoreUnavailable

log = logging.getLogger(__name__)

INACTIVE: dict[str, Any] = {"active": False}


class IntrospectionEndpoint:
    """Handles ``POST oauth2/introspect``."""

    def __init__(
        self,
        settings: Settings,
        gate: ClientGate,
        lookups: Lookups,
        verify: Callable[[str], Caller],
    ) -> None:
        self._settings = settings
        self._gate = gate
        self._lookups = lookups
        self._verify = verify

    def handle(self, request: Request) -> Response:
        """Answer one introspection request."""
        try:
            return self._introspect(request)
        except OAuthError as error:
            return error.response()
        except (SecretStoreUnavailable, StoreUnavailable, AssertionKeysUnavailable) as error:
            log.warning("introspection dependency unavailable: %s", error)
            return _unavailable(getattr(error, "retry_after", 5))
        except Exception:
            # A bug of ours (or a client-authentication method's): logged, never sent.
            log.exception("introspection failed")
            return _server_error()

    def _introspect(self, request: Request) -> Response:
        record, form = self._gate.admit(request, "introspection")
        token = token_parameter(form)
        # token_type_hint (§2.1) is only a hint: we issue access tokens alone, and look there.
        answer = self._describe(token, record) if len(token) <= MAX_TOKEN_CHARS else None
        audit(
            "introspection.answered",
            client_id=record.client_id,
            active=answer is not None,
            jti=answer["jti"] if answer else None,
        )
        return json_response(200, answer or INACTIVE, headers=NO_STORE)

    def _describe(self, token: str, record: ClientRecord) -> dict[str, Any] | None:
        try:
            caller = self._verify(token)
        except Unavailable as down:
            # Not "inactive": a resource server told so would refuse a good token.
            raise OAuthError(
                "temporarily_unavailable",
                "the token cannot be checked right now; retry later",
                status=503,
                headers=down.headers,
            ) from None
        except FhirError:
            return None
        if not self._may_describe(record, caller):
            return None
        return {
            "active": True,
            "scope": " ".join((caller.tenant_id, *caller.scopes.scopes())),
            "client_id": caller.client_id,
            "token_type": "Bearer",
            "exp": caller.expires_at,
            "sub": caller.client_id,
            "aud": self._settings.token_audience,
            "iss": self._settings.token_issuer,
            "jti": caller.jti,
            "tid": caller.tenant_id,
        }

    def _may_describe(self, record: ClientRecord, caller: Caller) -> bool:
        if caller.client_id == record.client_id:
            return True
        if not record.resource_server:
            return False
        mapping = self._lookups.tenant(caller.tenant_id)
        return mapping is not None and mapping.allows_client(record.client_id)


def _unavailable(retry_after: int) -> Response:
    return OAuthError(
        "temporarily_unavailable",
        "the service cannot answer right now; retry later",
        status=503,
        headers={"Retry-After": str(retry_after)},
    ).response()


def _server_error() -> Response:
    return OAuthError("server_error", "the service failed; retry later", status=500).response()
