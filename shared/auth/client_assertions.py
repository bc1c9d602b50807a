"""``private_key_jwt``: a client proves who it is with a JWT it signed (RFC 7523 §2.2, §3).

SMART Backend Services' profile of it: ``iss`` = ``sub`` = the client id, ``aud`` = our token
URL, ``exp`` at most five minutes ahead, a ``jti`` never seen before within the assertion's
life, and a ``kid`` naming one of the client's registered public keys (a JWKS URL or an inline
JWK Set, ``shared/auth/client_keys.py``). RS384 and ES384 (SMART's required pair), RS256 and
ES256 are accepted; ``none``, HMAC and everything else are refused before any key is looked at
(RFC 8725 §3.1). Header members that point at keys (``jku``, ``jwk``, ``x5u``, ``x5c``) are never
read: keys come only from the registration (RFC 8725 §3.10).

Bounds, because anonymous callers reach this: an assertion longer than ``MAX_ASSERTION_BYTES``
is refused before it is decoded; nothing is fetched or kept for an unknown or disabled client
(the client is looked up first); a JWKS URL is fetched through ``RemoteKeySets`` (address
policy, size and time limits, its ``Cache-Control``, one re-fetch per interval for an unknown
``kid``); only an assertion whose signature, audience and times hold writes a replay row, and
that row expires with the assertion.

The replay cache is the ``jti`` namespace of the shared ``expiring`` table, so a ``jti`` used on
one instance is refused on every other (``ExpiringRows.insert_if_absent``).

Every refusal after the client is known is the same ``invalid_client`` "client authentication
failed" (counted by the throttle like a wrong secret); the reason goes to the log only.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from shared.auth.client_auth import ClientCredentials
from shared.auth.client_keys import inline_key_set, key_credential
from shared.auth.errors import OAuthError, invalid_client
from shared.http import Request, public_origin
from shared.lookups import Lookups
from shared.routes import token_url

if TYPE_CHECKING:
    from shared.auth.clients import ClientRecord
    from shared.expiring import ExpiringRows
    from shared.jose.remote import RemoteKeySets
    from shared.settings import Settings

log = logging.getLogger(__name__)

JWT_BEARER: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_BYTES: Final = 8 * 1024
"""An RS384 assertion from a 4096-bit key is about 1 KiB; eight leave room for extra claims,
and bound what is base64-decoded and parsed for a caller nobody has identified yet."""
CLOCK_SKEW_SECONDS: Final = 60
"""Leeway for ``exp`` in the past and ``iat``/``nbf`` in the future: the same minute the bearer
check allows, enough for clocks kept by NTP, short against a stolen assertion."""
MAX_LIFETIME_SECONDS: Final = 300
"""SMART: ``exp`` no more than five minutes in the future (of our clock, without leeway)."""
ALGORITHMS: Final = ("RS384", "ES384", "RS256", "ES256")
REPLAY_NAMESPACE: Final = "jti"
MAX_JTI_LENGTH: Final = 255
MAX_KID_LENGTH: Final = 128


class AssertionKeysUnavailable(Exception):
    """The client's JWKS URL or the replay cache cannot answer now; a retry may work."""

    retry_after = 5


@dataclass(frozen=True)
class _Unverified:
    """Header and claims of a compact JWS, read without checking anything yet."""

    header: dict[str, Any]
    claims: dict[str, Any]


def read_unverified(assertion: str) -> _Unverified:
    """The header and claims of a compact JWS; ``invalid_client`` when it is not one."""
    if len(assertion) > MAX_ASSERTION_BYTES:
        raise invalid_client("client assertion is too large")
    parts = assertion.split(".")
    # An empty signature is left for the alg check to refuse by name (alg none).
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise invalid_client("client assertion is malformed")
    try:
        header = json.loads(_b64(parts[0]))
        claims = json.loads(_b64(parts[1]))
    except (ValueError, RecursionError, binascii.Error):
        raise invalid_client("client assertion is malformed") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise invalid_client("client assertion is malformed")
    return _Unverified(header, claims)


def _b64(segment: str) -> bytes:
    if not segment.isascii():
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _check_header(header: Mapping[str, Any]) -> None:
    """alg from the allow-list, a kid, no critical extensions: or ``invalid_client``."""
    if header.get("alg") not in ALGORITHMS:
        raise invalid_client("client assertion alg must be RS384, ES384, RS256 or ES256")
    kid = header.get("kid")
    if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH or not kid.isprintable():
        raise invalid_client("client assertion must name its key (kid)")
    if "crit" in header:
        # RFC 7515 §4.1.11: we understand no extension, so a critical one cannot be honoured.
        raise invalid_client("client assertion carries critical header parameters")


class AssertionVerifier:
    """Checks a known, enabled client's assertion: key, signature, claims, then replay."""

    def __init__(
        self,
        key_sets: RemoteKeySets,
        replay: ExpiringRows,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key_sets = key_sets
        self._replay = replay
        self._clock = clock

    def verify(self, record: ClientRecord, assertion: str, audience: str) -> str | None:
        """The token's ``sv`` for a valid, unreplayed assertion of ``record``; None otherwise."""
        reason = self._refusal(record, assertion, audience)
        if isinstance(reason, _Accepted):
            return reason.credential
        log.info("client assertion refused for client %s: %s", record.client_id, reason)
        return None

    def _refusal(self, record: ClientRecord, assertion: str, audience: str) -> _Accepted | str:
        import jwt

        from shared.jose.fetch import FetchRefused, FetchUnavailable

        unverified = read_unverified(assertion)
        alg, kid = unverified.header["alg"], unverified.header["kid"]
        if record.jwks_uri:
            try:
                key = self._key_sets.key(record.jwks_uri, kid)
            except FetchRefused as refused:
                return f"the client's JWKS URL cannot be used: {refused}"
            except FetchUnavailable as down:
                log.warning("client %s: JWKS URL unavailable: %s", record.client_id, down)
                raise AssertionKeysUnavailable(str(down)) from None
        else:
            key = inline_key_set(record.jwks).get(kid)
        if key is None:
            return "unknown kid"
        if not key.usable_with(alg):
            return f"key {kid!r} does not sign with {alg}"
        now = self._clock()
        try:
            claims = jwt.decode(
                assertion,
                key.key,
                algorithms=[alg],
                audience=audience,
                issuer=record.client_id,
                leeway=CLOCK_SKEW_SECONDS,
                # Times are judged below against our clock, the one the replay cache uses.
                options={
                    "require": ["exp", "iss", "sub", "aud", "jti"],
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.InvalidTokenError as invalid:
            return f"invalid assertion ({type(invalid).__name__})"
        if claims["sub"] != record.client_id:
            return "sub is not the client id"
        times = _times(claims)
        if times is None:
            return "exp, iat or nbf is not a number"
        exp, not_before = times
        if exp <= now - CLOCK_SKEW_SECONDS:
            return "expired"
        if exp > now + MAX_LIFETIME_SECONDS:
            return "exp is more than five minutes ahead"
        if not_before > now + CLOCK_SKEW_SECONDS:
            return "iat or nbf is in the future"
        jti = claims["jti"]
        if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_LENGTH:
            return "jti is not a string of 1 to 255 characters"
        if not self._first_use(record.client_id, jti, float(exp) + CLOCK_SKEW_SECONDS):
            return "jti already used (replay)"
        credential = (
            key_credential(jwks_uri=record.jwks_uri) if record.jwks_uri else key_credential(kid=kid)
        )
        return _Accepted(credential)

    def _first_use(self, client_id: str, jti: str, expires_at: float) -> bool:
        from shared.expiring import CapReached

        try:
            # Keyed by client too: two clients may pick the same jti (RFC 7519 §4.1.7 makes it
            # unique per issuer). The row's partition is the minute of the signed exp, so a
            # captured assertion replayed finds its row at once (and of two concurrent uses
            # exactly one creates it); a new assertion that reuses a jti with an exp in another
            # minute is not caught, but only the holder of the private key can sign one.
            return self._replay.insert_if_absent(f"{client_id}\n{jti}", expires_at)
        except CapReached:
            # Only assertions with a valid signature get here, so this is a real flood of
            # tokens; refusing is safer than accepting assertions we cannot check for replay.
            log.warning("ALERT the jti replay cache is full on this instance this minute")
            raise AssertionKeysUnavailable("replay cache full") from None


def _times(claims: Mapping[str, Any]) -> tuple[float, float] | None:
    """``exp`` and the later of ``iat``/``nbf`` (RFC 7519 NumericDate), or None if malformed."""
    values = [claims.get(name) for name in ("exp", "iat", "nbf")]
    for value in values:
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or value != value
        ):
            return None
    exp, iat, nbf = values
    if exp is None:
        return None
    return float(exp), float(max(iat or 0, nbf or 0))


@dataclass(frozen=True)
class _Accepted:
    credential: str


@dataclass(frozen=True, repr=False)  # the parent's repr, which never shows the proof
class AssertionCredentials(ClientCredentials):
    """A client assertion, with the token URL it must be addressed to."""

    audience: str = ""


class PrivateKeyJwt:
    """``private_key_jwt``: a jwt-bearer ``client_assertion_type`` and a signed assertion."""

    name = "private_key_jwt"
    description = "a JWT signed with the client's registered private key (private_key_jwt)"
    signing_algorithms = ALGORITHMS

    def __init__(
        self, settings: Settings | None = None, verifier: AssertionVerifier | None = None
    ) -> None:
        self._settings = settings
        self._verifier = verifier

    def presented(self, request: Request, form: Mapping[str, str]) -> bool:
        """A ``client_assertion`` or ``client_assertion_type`` in the body."""
        return "client_assertion" in form or "client_assertion_type" in form

    def credentials(self, request: Request, form: Mapping[str, str]) -> ClientCredentials:
        """The client id (``sub``) and the assertion, after the checks that need no key."""
        assertion_type, assertion = form.get("client_assertion_type"), form.get("client_assertion")
        if assertion_type is None or assertion is None:
            raise OAuthError(
                "invalid_request", "send client_assertion_type and client_assertion together"
            )
        if assertion_type != JWT_BEARER:
            raise invalid_client("unsupported client_assertion_type")
        unverified = read_unverified(assertion)
        _check_header(unverified.header)
        iss, sub = unverified.claims.get("iss"), unverified.claims.get("sub")
        if not isinstance(sub, str) or not sub or iss != sub:
            raise invalid_client("client assertion iss and sub must both be the client_id")
        return AssertionCredentials(sub, assertion, self.name, audience=self._audience(request))

    def _audience(self, request: Request) -> str:
        settings = self._settings
        if settings is None:
            return ""
        origin = public_origin(request, settings.public_base_url, settings.trust_forwarded_headers)
        return token_url(origin)

    def verify(
        self, credentials: ClientCredentials, client_id: str, lookups: Lookups
    ) -> str | None:
        """The key registration the assertion rests on (the token's ``sv``), or None."""
        record = lookups.client(client_id)
        # Nothing fetched or stored for a client that could not be issued a token anyway.
        if record is None or not record.enabled or not record.has_keys:
            return None
        if self._verifier is None or not isinstance(credentials, AssertionCredentials):
            return None
        settings = self._settings
        if settings is not None and settings.hosting.maybe_azure and not settings.public_base_url:
            # The audience would come from the caller's Host header: refuse rather than guess.
            log.warning("ALERT private_key_jwt refused: EHRB_PUBLIC_BASE_URL is not set in Azure")
            return None
        return self._verifier.verify(record, credentials.proof, credentials.audience)
