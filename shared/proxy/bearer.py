"""Bearer-token verification for the FHIR proxy (RFC 6750, RFC 9068 access-token profile).

Order: find the one token (RFC 6750 §2) → cheap syntax and header checks, the algorithm pinned
before any key is touched (RFC 8725 §3.1) → signature with the key named by ``kid`` → claims →
revocation against the cached lookups (RFC 9700 §4.10; the cache TTL is the documented delay)
→ tenant policy. Claims are only read after the signature holds, so an unsigned token cannot
probe the lookups. A header shaped like Entra ID's (``typ`` ``JWT``) goes to ``entra.py``
instead, when Entra ID tokens are configured (``EHRB_ENTRA_AUDIENCE``); otherwise it fails the
``typ`` rule like any token that is not ours.

OperationOutcome issue codes (FHIR issue-type): ``login`` when no usable credential was sent
("the client needs to initiate an authentication process"); ``expired`` for an expired token;
``unknown`` for any other unacceptable token, the code FHIR defines for exactly that ("the
proffered token is unacceptable"); ``forbidden`` for a valid token whose tenant or client may
not be used; ``invalid`` for a malformed request; ``transient`` when a store cannot answer.

Nothing here logs or echoes the token, the Authorization header or the request URL (which may
carry an ``access_token`` query parameter).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shared.auth.client_keys import is_key_credential, key_credential_current
from shared.auth.signing_keys import SigningKeys
from shared.auth.smart_scopes import LEGACY_GRANT, InvalidScope, ScopeGrant, parse_scopes
from shared.cache import TTLCache
from shared.fhir.errors import FhirError, Forbidden, InvalidRequest, Unauthorized, Unavailable
from shared.http import Request
from shared.ids import is_guid
from shared.lookups import Lookups
from shared.proxy.model import Caller
from shared.secret_store import SecretStoreUnavailable
from shared.settings import Settings
from shared.tables import StoreUnavailable

if TYPE_CHECKING:
    from shared.auth.revocation import RevokedTokens
    from shared.proxy.entra import EntraTokens

log = logging.getLogger(__name__)

REALM = "fhir"
MAX_TOKEN_BYTES = 8 * 1024
MAX_KID_LENGTH = 128
MAX_ID_CLAIM_LENGTH = 128
# RFC 9068 §4: "at+jwt", or the full media type "application/at+jwt"; compared case-insensitively.
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
# Every claim our tokens carry (RFC 9068 §2.2 plus tid, scope, nbf and sv); all are required.
REQUIRED_CLAIMS = (
    "exp",
    "iat",
    "nbf",
    "iss",
    "aud",
    "sub",
    "client_id",
    "jti",
    "tid",
    "scope",
    "sv",
)
# A compact JWS: three base64url segments. The signature may be empty so that ``alg: none``
# reaches the algorithm check and is reported as such.
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# RFC 6750 §2.1 error_description: %x20-21 / %x23-5B / %x5D-7E (no quote, no backslash).
_DESCRIPTION_UNSAFE = re.compile(r"[^\x20-\x21\x23-\x5b\x5d-\x7e]")
# NumericDate bounds: anything outside is not a date this service could have written.
_MAX_NUMERIC_DATE = 253_402_300_799  # 9999-12-31T23:59:59Z

CHALLENGE = f'Bearer realm="{REALM}"'


def _challenge(error: str, description: str) -> str:
    safe = _DESCRIPTION_UNSAFE.sub("?", description)
    return f'{CHALLENGE}, error="{error}", error_description="{safe}"'


def _no_credentials(diagnostics: str) -> Unauthorized:
    # RFC 6750 §3: a request without (acceptable) credentials gets a bare challenge, no error.
    return Unauthorized(diagnostics, code="login", headers={"WWW-Authenticate": CHALLENGE})


def _invalid_request(diagnostics: str) -> InvalidRequest:
    # RFC 6750 §3.1: a malformed request, including more than one way of sending the token.
    return InvalidRequest(
        diagnostics,
        code="invalid",
        headers={"WWW-Authenticate": _challenge("invalid_request", diagnostics)},
    )


def decode_signed(
    token: str,
    key: Any,
    *,
    algorithm: str,
    audience: str,
    issuer: str,
    required: tuple[str, ...],
) -> dict[str, Any]:
    """Claims of a JWT whose signature, ``alg``, issuer, audience and required claims hold;
    times are the caller's to check, against its own clock. ``Unauthorized`` names the rule."""
    import jwt

    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=audience,
            issuer=issuer,
            options={
                "require": list(required),
                # Times are checked by the caller against the injected clock, with the same
                # rules (pyjwt 2.15 raises ImmatureSignatureError for a future iat and nbf alike).
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                # A token for us carries one audience; a multi-audience token is not ours.
                "strict_aud": True,
            },
        )
    except jwt.InvalidSignatureError:
        raise _invalid_token("token signature is invalid") from None
    except jwt.InvalidAlgorithmError:
        raise _invalid_token("algorithm not allowed") from None
    except jwt.MissingRequiredClaimError as error:
        claim = error.claim if error.claim in required else "unknown"
        raise _invalid_token(f"missing claim: {claim}") from None
    except jwt.InvalidIssuerError:
        raise _invalid_token("wrong issuer") from None
    except jwt.InvalidAudienceError:
        raise _invalid_token("wrong audience") from None
    except jwt.exceptions.InvalidSubjectError:
        raise _invalid_token("invalid claim: sub") from None
    except jwt.exceptions.InvalidJTIError:
        raise _invalid_token("invalid claim: jti") from None
    except (jwt.InvalidTokenError, ValueError, TypeError, RecursionError):
        raise _invalid_token("token is malformed") from None
    return claims


def _invalid_token(diagnostics: str, code: str = "unknown") -> Unauthorized:
    return Unauthorized(
        diagnostics,
        code=code,
        headers={"WWW-Authenticate": _challenge("invalid_token", diagnostics)},
    )


def _forbidden(diagnostics: str) -> Forbidden:
    # RFC 6750 §3.1: a valid token that does not allow this request.
    return Forbidden(
        diagnostics,
        headers={"WWW-Authenticate": _challenge("insufficient_scope", diagnostics)},
    )


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _numeric_date(value: object) -> bool:
    # bool is an int in Python; JSON true is not a date.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and 0 <= value <= _MAX_NUMERIC_DATE


def _plain_id(value: object) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_ID_CLAIM_LENGTH
        and value.isascii()
        and value.isprintable()
    )


def _canonical_guid(value: object) -> bool:
    # One spelling only: an upper-case or braced GUID must not name a second principal.
    return is_guid(value) and isinstance(value, str) and value == value.lower()


class BearerVerifier:
    """Turns a request's bearer token into a ``Caller``, or raises the FhirError to answer."""

    def __init__(
        self,
        settings: Settings,
        signing_keys: SigningKeys,
        lookups: Lookups,
        *,
        leeway_seconds: int = 30,
        clock: Callable[[], float] = time.time,
        entra: EntraTokens | None = None,
        revoked: RevokedTokens | None = None,
    ) -> None:
        self._settings = settings
        self._revoked = revoked
        self._keys = signing_keys
        self._lookups = lookups
        self._entra = entra
        self._leeway = leeway_seconds
        self._clock = clock
        # The signature check of a token already seen is skipped for the cache TTL; that its
        # key is still published, its times, client, secret version and tenant are checked on
        # every request. Keyed by a digest, so no token is kept in memory.
        self._verified: TTLCache[tuple[str, dict[str, Any]]] = TTLCache(
            settings.cache_ttl_seconds, failure_ttl=0, max_entries=10_000
        )

    def verify(self, request: Request) -> Caller:
        """The verified caller of ``request``; raises Unauthorized, Forbidden, etc."""
        try:
            return self._verify(request)
        except (SecretStoreUnavailable, StoreUnavailable) as error:
            # Fail closed: without the key or the lookups nothing is known about the caller.
            log.warning("bearer verification dependency unavailable: %s", type(error).__name__)
            raise Unavailable(
                "a service dependency is unavailable; retry later",
                headers={"Retry-After": str(error.retry_after)},
            ) from None
        except (Unauthorized, InvalidRequest, Forbidden) as error:
            log.info("bearer token refused (%d): %s", error.status, error.diagnostics)
            raise

    def _verify(self, request: Request) -> Caller:
        return self._caller_of(self._token_of(request), entra=True)

    def _caller_of(self, token: str, *, entra: bool) -> Caller:
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        verified = self._verified.peek(digest)  # a token seen before passed every check below
        if verified is None:
            # Every check that needs no key runs before the cache can be filled, so a token
            # that is garbage at sight costs no flight, entry or key lookup.
            header = self._jose_header(token)
            if entra and self._entra is not None and self._entra.recognises(header):
                return self._entra.verify(token, header, digest)
            self._check_header(header)
            verified = self._verified.get(digest, lambda: self._verify_signature(token, header))
        kid, claims = verified
        if self._keys.verification_key(kid) is None:
            # Retired since the signature was checked (a cheap lookup in the cached key list).
            raise _invalid_token("unknown signing key")
        now = self._clock()
        expires_at = self._check_times(claims, now)
        client_id, tenant_id, jti, secret_version = self._check_identity(claims)
        scopes = self._scopes(claims, tenant_id)
        self._check_not_revoked(client_id, secret_version, now)
        if self._revoked is not None and self._revoked.is_revoked(jti):
            raise _invalid_token("token is revoked")
        self._check_tenant(client_id, tenant_id)
        log.debug(
            "bearer token accepted: client %s tenant %s kid %s jti %s",
            client_id,
            tenant_id,
            kid,
            jti,
        )
        return Caller(
            client_id=client_id,
            tenant_id=tenant_id,
            jti=jti,
            kid=kid,
            secret_version=secret_version,
            expires_at=expires_at,
            scopes=scopes,
        )

    @staticmethod
    def _scopes(claims: dict[str, Any], tenant_id: str) -> ScopeGrant:
        """The SMART scopes after the tenant in ``scope``; a token naming only its tenant was
        issued before scopes existed and keeps what such tokens allowed (the default)."""
        scopes = _smart_scopes_of(claims["scope"], tenant_id)
        if scopes is None:
            raise _invalid_token("invalid claim: scope")
        return scopes

    def verify_token(self, token: str) -> Caller:
        """The caller a token of ours stands for, after every check a request gets (RFC 7662
        introspection: "active"); FhirError otherwise. Entra ID tokens are not ours."""
        try:
            return self._caller_of(token, entra=False)
        except (SecretStoreUnavailable, StoreUnavailable) as error:
            raise Unavailable(
                "a service dependency is unavailable; retry later",
                headers={"Retry-After": str(error.retry_after)},
            ) from None

    def signed_claims(self, token: str) -> dict[str, Any] | None:
        """The claims of a token we signed with a published key (issuer and audience ours),
        whatever else holds of it now; None for anything else (RFC 7009 revocation)."""
        try:
            header = self._jose_header(token)
            self._check_header(header)
            _kid, claims = self._verify_signature(token, header)
            self._check_identity(claims)
        except FhirError:
            return None
        return claims

    def _verify_signature(self, token: str, header: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The token's kid and claims once its key and signature check out."""
        kid: str = header["kid"]
        key = self._keys.verification_key(kid)
        if key is None:
            raise _invalid_token("unknown signing key")
        return kid, self._decode(token, key)

    @staticmethod
    def _token_of(request: Request) -> str:
        """The one bearer token of the request (RFC 6750 §2)."""
        authorizations = request.headers.get_all("Authorization")
        in_query = any(name == "access_token" for name, _ in request.query)
        if len(authorizations) > 1:
            raise _invalid_request("send one Authorization header")
        if not authorizations:
            if in_query:
                # §2.3 and §5.3: a token in the URL ends up in logs and history; refused.
                raise _no_credentials(
                    "access tokens in the URL are refused; send an Authorization: Bearer header"
                )
            raise _no_credentials("a bearer token is required")
        parts = authorizations[0].split()
        # RFC 9110 §11.1: the scheme name is case-insensitive.
        if not parts or parts[0].lower() != "bearer":
            raise _no_credentials("the Authorization scheme must be Bearer")
        if in_query:
            # §2: a client uses exactly one method to send the token.
            raise _invalid_request("send the token in the Authorization header only")
        if len(parts) != 2:
            raise _invalid_request("the Authorization header must be 'Bearer <token>'")
        return parts[1]

    @staticmethod
    def _jose_header(token: str) -> dict[str, Any]:
        """The decoded JOSE header of a compact token of at most ``MAX_TOKEN_BYTES``."""
        if len(token) > MAX_TOKEN_BYTES:
            raise _invalid_token("token is too large")
        if _COMPACT_JWS.fullmatch(token) is None:
            raise _invalid_token("token is malformed")
        # Decoded here rather than by pyjwt (whose get_unverified_header costs ~100 µs): this
        # runs on every request, before the verified-token cache. pyjwt decodes it again when
        # it checks the signature.
        segment = token.partition(".")[0]
        try:
            header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
        except (ValueError, RecursionError):  # binascii.Error, UnicodeDecodeError included
            raise _invalid_token("token is malformed") from None
        if not isinstance(header, dict):
            raise _invalid_token("token is malformed")
        return header

    def _check_header(self, header: dict[str, Any]) -> None:
        """Every check of our own tokens' header that needs no key."""
        # RFC 8725 §3.1-3.2: the one configured algorithm, checked before any key is looked
        # up; this refuses "none" and HS* signed with our public key (§2.1 key confusion).
        if header.get("alg") != self._settings.token_algorithm:
            raise _invalid_token("algorithm not allowed")
        typ = header.get("typ")
        # RFC 9068 §4 / RFC 8725 §3.11: only access tokens; an assertion or ID token signed
        # with a key we trust is still not one.
        if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
            raise _invalid_token("token is not an access token (typ)")
        if "crit" in header:
            # RFC 7515 §4.1.11: we understand no extension, so a critical one cannot be honoured.
            raise _invalid_token("token is malformed")
        kid = header.get("kid")
        if kid is None:
            raise _invalid_token("missing header: kid")
        if not _plain_id(kid) or len(kid) > MAX_KID_LENGTH:
            raise _invalid_token("unknown signing key")
        # jwk, jku, x5u and x5c are never read (RFC 8725 §3.10): keys come only from our store.

    def _decode(self, token: str, key: Any) -> dict[str, Any]:
        """Claims of a token whose signature, issuer and audience hold."""
        claims = decode_signed(
            token,
            key,
            algorithm=self._settings.token_algorithm,
            audience=self._settings.token_audience,
            issuer=self._settings.token_issuer,
            required=REQUIRED_CLAIMS,
        )
        # pyjwt already compared these; exact equality again costs nothing and does not depend
        # on the library's container rules (pyjwt 2.10.0 matched issuer substrings).
        if claims.get("iss") != self._settings.token_issuer:
            raise _invalid_token("wrong issuer")
        if claims.get("aud") != self._settings.token_audience:
            raise _invalid_token("wrong audience")
        return claims

    def _check_times(self, claims: dict[str, Any], now: float) -> int:
        """``exp`` as an int, after exp, nbf and iat pass with the leeway (RFC 7519 §4.1.4-6)."""
        for name in ("exp", "nbf", "iat"):
            if not _numeric_date(claims[name]):
                raise _invalid_token(f"invalid claim: {name}")
        exp, nbf, iat = claims["exp"], claims["nbf"], claims["iat"]
        if exp <= now - self._leeway:
            raise _invalid_token(f"token expired at {_iso(exp)}", code="expired")
        # RFC 7519 §4.1.6 leaves a future iat to policy: ours are minted "now", so a future
        # one is as suspect as a future nbf.
        if nbf > now + self._leeway or iat > now + self._leeway:
            raise _invalid_token("token not yet valid")
        return int(exp)

    @staticmethod
    def _check_identity(claims: dict[str, Any]) -> tuple[str, str, str, str]:
        """client_id, tid, jti and sv, each in the one form the token endpoint writes."""
        client_id, tenant_id = claims["client_id"], claims["tid"]
        if not _canonical_guid(client_id):
            raise _invalid_token("invalid claim: client_id")
        if not _canonical_guid(tenant_id):
            raise _invalid_token("invalid claim: tid")
        # RFC 9068 §2.2: for a client-credentials token the subject is the client itself.
        if claims["sub"] != client_id:
            raise _invalid_token("invalid claim: sub")
        if not isinstance(claims["scope"], str) or claims["scope"].split(" ")[0] != tenant_id:
            raise _invalid_token("invalid claim: scope")
        jti, secret_version = claims["jti"], claims["sv"]
        if not _plain_id(jti):
            raise _invalid_token("invalid claim: jti")
        if not _plain_id(secret_version):
            raise _invalid_token("invalid claim: sv")
        return client_id, tenant_id, jti, secret_version

    def _check_not_revoked(self, client_id: str, secret_version: str, now: float) -> None:
        """RFC 9700 §4.10: a disabled client or secret stops its tokens within the cache TTL."""
        record = self._lookups.client(client_id)
        if record is None or not record.enabled:
            raise _invalid_token("client is disabled")
        if is_key_credential(secret_version):
            # private_key_jwt: valid while the client keeps the key (or JWKS URL) it used.
            if not key_credential_current(secret_version, record.jwks_uri, record.jwks):
                raise _invalid_token("client key is no longer registered")
            return
        version = self._lookups.secret_version(client_id, secret_version)
        if version is None:
            # Rotated in elsewhere since this instance cached the versions: look once more.
            # Only holders of a token we signed get here, and the refresh is shared and
            # rate-limited per client, so random `sv` values cannot make Key Vault calls.
            version = self._lookups.secret_version(client_id, secret_version, refresh=True)
        if version is None or not version.is_usable(datetime.fromtimestamp(now, UTC)):
            raise _invalid_token("secret version is disabled or expired")

    def _check_tenant(self, client_id: str, tenant_id: str) -> None:
        """The tenant is mapped, enabled and allows the client; else 403, never a default."""
        mapping = self._lookups.tenant(tenant_id)
        if mapping is None:
            raise _forbidden("tenant is not mapped")
        if not mapping.enabled:
            raise _forbidden("tenant is disabled")
        if not mapping.allows_client(client_id):
            raise _forbidden("client is not allowed for this tenant")


def _smart_scopes_of(scope: str, tenant_id: str) -> ScopeGrant | None:
    """The grant of a ``scope`` claim that starts with ``tenant_id``; None when malformed."""
    values = scope.split(" ")
    if values[0] != tenant_id:
        return None
    if len(values) == 1:
        return LEGACY_GRANT
    try:
        grant = parse_scopes(values[1:])
    except InvalidScope:
        return None
    return None if grant.empty else grant
