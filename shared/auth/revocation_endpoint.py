"""Token revocation (RFC 7009) for clients: ``POST oauth2/revoke``.

The client authenticates (§2.1) like at the token endpoint, and may revoke only its own tokens.
The answer is 200 with an empty body for every token it sends (§2.2): its own, revoked now;
one that is unknown, expired, malformed or another client's, left alone, so the answer never
tells whether a token exists. ``token_type_hint`` is only a hint (§2.1): we issue access tokens
alone, and look there whatever it says. A revoked token stops working on every instance within
``EHRB_CACHE_TTL_SECONDS`` (``shared/auth/revocation.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from shared.audit import audit
from shared.auth.client_assertions import AssertionKeysUnavailable
from shared.auth.client_gate import MAX_TOKEN_CHARS, ClientGate, token_parameter
from shared.auth.errors import NO_STORE, OAuthError
from shared.auth.revocation import RevokedTokens
from shared.expiring import CapReached
from shared.http import Headers, Request, Response
from shared.secret_store import SecretStoreUnavailable
from shared.tables import StoreUnavailable

log = logging.getLogger(__name__)


class RevocationEndpoint:
    """Handles ``POST oauth2/revoke``."""

    def __init__(
        self,
        gate: ClientGate,
        revoked: RevokedTokens,
        signed_claims: Callable[[str], dict[str, Any] | None],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._gate = gate
        self._revoked = revoked
        self._signed_claims = signed_claims
        self._clock = clock

    def handle(self, request: Request) -> Response:
        """Answer one revocation request."""
        try:
            return self._revoke(request)
        except OAuthError as error:
            return error.response()
        except (
            SecretStoreUnavailable,
            StoreUnavailable,
            CapReached,
            AssertionKeysUnavailable,
        ) as error:
            # §2.2.1: the token is not revoked; the client must retry (503 + Retry-After).
            log.warning("revocation not recorded: %s", error)
            return OAuthError(
                "temporarily_unavailable",
                "the token could not be revoked right now; retry later",
                status=503,
                headers={"Retry-After": str(getattr(error, "retry_after", 5))},
            ).response()
        except Exception:
            # A bug of ours (or a client-authentication method's): logged, never sent.
            log.exception("revocation failed")
            return OAuthError(
                "server_error", "the service failed; retry later", status=500
            ).response()

    def _revoke(self, request: Request) -> Response:
        record, form = self._gate.admit(request, "revocation")
        token = token_parameter(form)
        claims = self._signed_claims(token) if len(token) <= MAX_TOKEN_CHARS else None
        if (
            claims is not None
            and claims["client_id"] == record.client_id
            and isinstance(claims["exp"], int | float)
            and claims["exp"] > self._clock()
        ):
            self._revoked.revoke(str(claims["jti"]), float(claims["exp"]))
            audit("token.revoked", client_id=record.client_id, jti=claims["jti"])
        return Response(200, b"", Headers(NO_STORE))
