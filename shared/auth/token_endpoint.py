"""The token endpoint: OAuth 2.0 client credentials (RFC 6749 §4.4), written as the RFC reads.

Order of checks: request syntax (invalid_request), grant type (unsupported_grant_type), client
authentication (invalid_client), grant allowed for the client (unauthorized_client), scope
(invalid_scope). A store that cannot answer is a 503 ``temporarily_unavailable``, never
``invalid_client``: a client told its good secret is bad would rotate it for nothing.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from shared.audit import audit
from shared.auth.client_assertions import AssertionKeysUnavailable
from shared.auth.client_auth import (
    ClientAuthentication,
    default_client_authentication,
)
from shared.auth.client_gate import ClientGate, parse_form
from shared.auth.client_keys import is_key_credential
from shared.auth.errors import NO_STORE, OAuthError
from shared.auth.secret_usage import SecretUsage
from shared.auth.signing_keys import NoSigningKey, SigningKeys
from shared.auth.smart_scopes import InvalidScope, parse_scopes
from shared.auth.throttle import FailureThrottle
from shared.auth.tokens import issue_access_token
from shared.http import Request, Response, json_response
from shared.ids import canonical_guid, is_guid
from shared.lookups import Lookups
from shared.secret_store import SecretStoreUnavailable
from shared.settings import Settings
from shared.tables import StoreUnavailable

if TYPE_CHECKING:
    from shared.auth.clients import ClientRecord

log = logging.getLogger(__name__)

CLIENT_CREDENTIALS = "client_credentials"


def _invalid_scope() -> OAuthError:
    # One description for every cause: a caller must not learn whether another tenant exists.
    return OAuthError(
        "invalid_scope", "scope must name exactly one tenant id this client is allowed to use"
    )


def grant_type_of(form: dict[str, str]) -> str:
    """The grant type, accepting the Patients-app guide's ``grant-type`` spelling too."""
    if "grant_type" in form and "grant-type" in form:
        raise OAuthError("invalid_request", "send grant_type once")
    grant = form.get("grant_type", form.get("grant-type"))
    if grant is None:
        raise OAuthError("invalid_request", "grant_type is required")
    if grant != CLIENT_CREDENTIALS:
        raise OAuthError("unsupported_grant_type", "only client_credentials is supported")
    return grant


class TokenEndpoint:
    """Handles ``POST oauth2/token``."""

    def __init__(
        self,
        settings: Settings,
        lookups: Lookups,
        signing_keys: SigningKeys,
        throttle: FailureThrottle,
        client_auth: ClientAuthentication | None = None,
        usage: SecretUsage | None = None,
    ) -> None:
        self._settings = settings
        self._usage = usage
        self._lookups = lookups
        self._keys = signing_keys
        self._gate = ClientGate(
            lookups,
            throttle,
            client_auth or default_client_authentication(),
            settings.trusted_proxy_hops,
        )

    @property
    def gate(self) -> ClientGate:
        """Client authentication with its throttle (introspection and revocation use it too)."""
        return self._gate

    def handle(self, request: Request) -> Response:
        """Answer one token request."""
        try:
            return self._token(request)
        except OAuthError as error:
            return error.response()
        except (SecretStoreUnavailable, StoreUnavailable, AssertionKeysUnavailable) as error:
            log.warning("token endpoint dependency unavailable: %s", error)
            return self._unavailable(getattr(error, "retry_after", 5))
        except NoSigningKey:
            log.error("no usable token signing key; run the bootstrap or rotate the key")
            return self._unavailable(30)

    @staticmethod
    def _unavailable(retry_after: int) -> Response:
        # RFC 6749 §4.1.2.1's temporarily_unavailable, borrowed for the token endpoint.
        return OAuthError(
            "temporarily_unavailable",
            "the service cannot issue tokens right now; retry later",
            status=503,
            headers={"Retry-After": str(retry_after)},
        ).response()

    def _token(self, request: Request) -> Response:
        if request.method != "POST":
            raise OAuthError("invalid_request", "use POST", status=405, headers={"Allow": "POST"})
        form = parse_form(request)
        grant_type_of(form)
        record, version, method = self._gate.authenticate(request, form, "token")

        if CLIENT_CREDENTIALS not in record.grant_types:
            audit("token.denied", client_id=record.client_id, reason="grant not allowed")
            raise OAuthError(
                "unauthorized_client", "this client may not use the client_credentials grant"
            )

        tenant_id, granted, asked = self._scope_of(form.get("scope"), record)
        issued = issue_access_token(
            self._keys.current(),
            issuer=self._settings.token_issuer,
            audience=self._settings.token_audience,
            client_id=record.client_id,
            tenant_id=tenant_id,
            secret_version=version,
            lifetime_seconds=self._settings.token_lifetime_seconds,
            now=time.time(),
            scopes=granted,
        )
        audit(
            "token.issued",
            client_id=record.client_id,
            tenant_id=tenant_id,
            jti=issued.claims["jti"],
            secret_version=version,
            method=method,
        )
        if self._usage is not None and not is_key_credential(version):
            # At most one background write per version per interval: the console's "last used".
            self._usage.record(record.client_id, version)
        # RFC 6749 §4.4.3: no refresh token for client credentials.
        return json_response(
            200,
            {
                "access_token": issued.access_token,
                "token_type": "Bearer",
                "expires_in": issued.expires_in,
                # RFC 6749 §5.1: the scope granted when it differs from the one requested. The
                # tenant GUID alone stands for the client's registered default, so a request
                # naming only its tenant (the Patients app) gets its tenant back, as before.
                "scope": issued.scope if asked else tenant_id,
            },
            headers=NO_STORE,
        )

    def _scope_of(
        self, scope: str | None, record: ClientRecord
    ) -> tuple[str, tuple[str, ...], bool]:
        """The tenant, the SMART scopes granted, and whether the request named any."""
        # RFC 6749 §3.3: the tenant has no default, so a missing scope is invalid_scope.
        if scope is None:
            raise _invalid_scope()
        values = scope.split(" ")
        tenants = [value for value in values if is_guid(value)]
        if len(tenants) != 1:
            raise _invalid_scope()
        smart = [value for value in values if not is_guid(value)]
        granted = self._granted(smart, record)
        return self._tenant_of(tenants[0], record.client_id), granted, bool(smart)

    @staticmethod
    def _granted(requested: list[str], record: ClientRecord) -> tuple[str, ...]:
        """SMART scopes for the token: the requested ones the registration allows, else its
        default (docs/security.md table N)."""
        if not requested:
            return record.default_scopes
        try:
            grant = parse_scopes(requested)
        except InvalidScope as error:
            raise OAuthError("invalid_scope", str(error)) from None
        # RFC 6749 §3.3: the server may grant less than asked; the response says what it did.
        kept = grant.within(parse_scopes(record.allowed_scopes))
        if kept.empty:
            audit("token.denied", client_id=record.client_id, reason="scope not allowed")
            raise OAuthError(
                "invalid_scope", "none of the requested scopes is allowed to this client"
            )
        return kept.scopes()

    def _tenant_of(self, value: str, client_id: str) -> str:
        tenant_id = canonical_guid(value)
        mapping = self._lookups.tenant(tenant_id)
        if mapping is None or not mapping.enabled or not mapping.allows_client(client_id):
            audit(
                "token.denied", client_id=client_id, tenant_id=tenant_id, reason="scope not allowed"
            )
            raise _invalid_scope()
        return tenant_id
