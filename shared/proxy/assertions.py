"""The client assertion EHR Bridge presents to a provider's token endpoint (``private_key_jwt``).

RFC 7523 §3 and SMART Backend Services ("client-confidential-asymmetric"): a JWT whose ``iss``
and ``sub`` are our client id at the provider, ``aud`` the token URL we post it to, ``exp`` at
most five minutes ahead, a ``jti`` never used before, signed with our assertion key (RS384 or
ES384, the key of ``assertion-signing-key``, never the access-token key: RFC 8725 §3.12) and
naming it in ``kid``; header ``typ`` ``JWT``. The provider verifies it against the JWKS we
publish at ``oauth2/assertion-jwks``, the URL the partner registered with it.

No ``jku`` header: SMART makes it optional, and when present it must equal the JWKS URL
registered with the provider, which a change of public host name would silently break. The
provider uses the URL it has. No ``nbf``: a provider whose clock lags would refuse it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from shared.auth.signing_keys import SigningKey

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"  # RFC 7523 §2.2
# SMART: exp "no more than five minutes in the future". Two minutes leave room for a provider
# clock up to three minutes behind ours, and the assertion is posted at once.
ASSERTION_LIFETIME_SECONDS = 120


@dataclass(frozen=True)
class Assertion:
    """A signed assertion and its ``jti`` (which may be logged; the assertion never is)."""

    value: str = field(repr=False)
    jti: str
    kid: str


def client_assertion(key: SigningKey, *, client_id: str, token_url: str, now: float) -> Assertion:
    """A fresh assertion of ``client_id`` for ``token_url``, signed with ``key``."""
    import jwt

    issued_at = int(now)
    # 256 random bits: a jti a provider remembers must never repeat (RFC 7519 §4.1.7).
    jti = secrets.token_urlsafe(32)
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "iat": issued_at,
        "exp": issued_at + ASSERTION_LIFETIME_SECONDS,
        "jti": jti,
    }
    value = jwt.encode(
        claims, key.private_key, algorithm=key.algorithm, headers={"kid": key.kid, "typ": "JWT"}
    )
    return Assertion(value, jti, key.kid)
