"""Access tokens: signed JWTs (RFC 9068 profile) bound to one client and one tenant."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from shared.auth.signing_keys import SigningKey

TOKEN_TYPE_HEADER = "at+jwt"  # RFC 9068 §2.1


@dataclass(frozen=True)
class IssuedToken:
    """A signed access token and the claims inside it."""

    access_token: str = field(repr=False)
    expires_in: int
    scope: str
    claims: dict[str, Any]


def issue_access_token(
    key: SigningKey,
    *,
    issuer: str,
    audience: str,
    client_id: str,
    tenant_id: str,
    secret_version: str,
    lifetime_seconds: int,
    now: float | None = None,
    scopes: tuple[str, ...] = (),
) -> IssuedToken:
    """Sign a token carrying the RFC 9068 claims plus ``tid`` and ``sv``.

    ``scope`` (RFC 9068 §2.2.3) is the tenant GUID, which routes the token, then the SMART
    system scopes granted (``shared/auth/smart_scopes.py``).
    """
    scope = " ".join((tenant_id, *scopes))
    import jwt

    issued_at = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": client_id,
        "client_id": client_id,
        "tid": tenant_id,
        "scope": scope,
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + lifetime_seconds,
        "jti": str(uuid.uuid4()),
        "sv": secret_version,
    }
    token = jwt.encode(
        claims,
        key.private_key,
        algorithm=key.algorithm,
        headers={"kid": key.kid, "typ": TOKEN_TYPE_HEADER},
    )
    return IssuedToken(access_token=token, expires_in=lifetime_seconds, scope=scope, claims=claims)
