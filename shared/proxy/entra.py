"""Entra ID app-only access tokens, accepted per tenant beside our own (issue 17 section 5).

A tenant mapping that lists ``entra_app_ids`` accepts, besides EHR Bridge's access tokens, an
access token that Microsoft Entra ID issued in that very tenant to one of those applications,
for EHR Bridge's own application (``EHRB_ENTRA_AUDIENCE``, its application (client) ID: the
``aud`` of v2.0 tokens, which callers request with the scope ``<application ID URI>/.default``).
Off unless that setting is set. The checks, in order; nothing is fetched for a token that fails
one of the first three:

1. the header: at most 8 KiB in compact form (``bearer.py`` checked), ``typ`` ``JWT``, ``alg``
   RS256 only (what Entra signs with; never ``none`` or HMAC: RFC 8725 §3.1, §2.1), a plain
   ``kid``, no ``crit``; ``jku``, ``x5u``, ``jwk`` and ``x5c`` are never read (§3.10);
2. the claimed issuer, read before the signature: ``tid`` a canonical GUID and ``iss`` exactly
   ``{authority}/{tid}/v2.0`` ("Validate the issuer" in Microsoft's access-token documentation:
   the tenant in ``iss`` and ``tid`` must agree). v1.0 tokens (``https://sts.windows.net/{tid}/``)
   are refused by name: EHR Bridge's app registration chooses the token version
   (``accessTokenAcceptedVersion`` 2), so one issuer form, one app-id claim (``azp``) and one
   key document per tenant are enough;
3. that tenant is mapped, enabled and opted in (``EntraTenants``): an anonymous caller cannot make
   us fetch the keys of a tenant an operator did not choose;
4. the keys: the tenant's OpenID configuration (its ``issuer`` exactly the expected one, its
   ``jwks_uri`` on the authority's own origin), then the key named by ``kid`` from that JWK Set
   (``shared/jose``: address policy, size and time limits, ``Cache-Control``, one re-fetch per
   interval for an unknown ``kid``); an RSA key, and when the key carries Entra's ``issuer``
   member, the tenant's issuer or the ``{tenantid}`` template of it;
5. the signature, then the claims: ``aud`` exactly ``EHRB_ENTRA_AUDIENCE`` (one audience),
   ``iss`` exact, ``exp``/``nbf``/``iat`` with the leeway, ``tid`` again, ``ver`` 2.0, ``azp`` a
   GUID, and app-only: no ``scp`` (delegated tokens carry one), ``idtyp`` ``app`` when present,
   ``sub`` equal to ``oid`` when ``oid`` is present (an application's own object);
6. on every request, like our tokens: the mapping still exists, is enabled and lists ``azp``
   (403 otherwise), and the signing key is still in the tenant's key set.

Scopes: the token's ``roles`` (the app roles the tenant's admin granted the calling app on
EHR Bridge's registration) are what its ``scope`` is to our tokens. Roles whose value is a SMART
system scope (``system/Patient.rs``) are the grant on the ``Caller``, and one rule enforces both
kinds (``shared/proxy/scope_check.py``); other roles are ignored, and a token with no such role
gets the default, ``system/*.rs``, what these tokens allowed before scopes existed.

State per instance: verified signatures (10,000 digests, for the cache TTL), the directory of
opted-in tenants, and each opted-in tenant's configuration and key set (``shared/jose``).
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from shared.auth.smart_scopes import LEGACY_GRANT, InvalidScope, ScopeGrant, parse_scopes
from shared.cache import TTLCache
from shared.fhir.errors import Unavailable
from shared.ids import is_guid
from shared.jose.fetch import FetchRefused, FetchUnavailable
from shared.jose.remote import RemoteDocuments, RemoteKeySets
from shared.lookups import Lookups
from shared.proxy.bearer import (
    MAX_KID_LENGTH,
    _forbidden,
    _invalid_token,
    _iso,
    _numeric_date,
    _plain_id,
    decode_signed,
)
from shared.proxy.model import Caller
from shared.tenants import TenantRegistry

log = logging.getLogger(__name__)

ALGORITHM = "RS256"
VIA = "entra"
# Claims every v2.0 app-only access token carries (Microsoft's access-token claims reference).
REQUIRED_CLAIMS = ("aud", "iss", "iat", "nbf", "exp", "tid", "azp", "ver", "sub")
MAX_PAYLOAD_BYTES = 8 * 1024
UNAVAILABLE_RETRY_SECONDS = 5


def _canonical_guid(value: object) -> bool:
    return is_guid(value) and isinstance(value, str) and value == value.lower()


class EntraTenants:
    """The tenants whose mappings opt in to Entra ID tokens (mapped, enabled, with app ids).

    One listing of the tenants partition per cache TTL; a tenant id it lacks (a tenant opted in
    a moment ago, or an attacker's made-up one) re-reads it at most once per
    ``refresh_seconds``, so random ``tid`` values cost no more than one read per interval.
    """

    def __init__(
        self,
        tenants: TenantRegistry,
        ttl: float,
        *,
        refresh_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tenants = tenants
        self._refresh_seconds = refresh_seconds
        self._cache: TTLCache[frozenset[str]] = TTLCache(ttl, clock=clock)

    def opted_in(self, tenant_id: str) -> bool:
        """True when ``tenant_id``'s mapping accepts Entra ID tokens."""
        if tenant_id in self._cache.get("all", self._load):
            return True
        fresh = self._cache.refresh("all", self._load, min_interval=self._refresh_seconds)
        return tenant_id in fresh

    def _load(self) -> frozenset[str]:
        return frozenset(
            mapping.tenant_id
            for mapping in self._tenants.list_all()
            if mapping.enabled and mapping.entra_app_ids
        )


@dataclass(frozen=True)
class OpenIdConfiguration:
    """What we use of a tenant's OpenID configuration."""

    issuer: str
    jwks_uri: str


def configuration_parser(authority: str) -> Callable[[dict[str, Any]], OpenIdConfiguration]:
    """Reads an OpenID configuration whose ``jwks_uri`` lies on ``authority``'s origin."""

    def parse(document: dict[str, Any]) -> OpenIdConfiguration:
        issuer, jwks_uri = document.get("issuer"), document.get("jwks_uri")
        if not isinstance(issuer, str) or not isinstance(jwks_uri, str):
            raise ValueError("the OpenID configuration lacks issuer or jwks_uri")
        parts = urlsplit(jwks_uri)
        # A document must not send us to fetch keys elsewhere (RFC 8725 §3.10 in spirit).
        if f"{parts.scheme}://{parts.netloc}".lower() != authority or "@" in parts.netloc:
            raise ValueError("the OpenID configuration's jwks_uri is not on the authority")
        return OpenIdConfiguration(issuer, jwks_uri)

    return parse


class EntraTokens:
    """Turns an Entra ID app-only access token into a ``Caller``, or raises what to answer."""

    def __init__(
        self,
        *,
        audience: str,
        authority: str,
        lookups: Lookups,
        tenants: EntraTenants,
        configurations: RemoteDocuments[OpenIdConfiguration],
        keys: RemoteKeySets,
        ttl: float,
        leeway_seconds: int = 30,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._audience = audience
        self._authority = authority
        self._lookups = lookups
        self._tenants = tenants
        self._configurations = configurations
        self._keys = keys
        self._leeway = leeway_seconds
        self._clock = clock
        # Keyed by a digest of the token, like the bearer's cache: no token is kept in memory.
        self._verified: TTLCache[tuple[str, str, dict[str, Any]]] = TTLCache(
            ttl, failure_ttl=0, max_entries=10_000
        )

    @staticmethod
    def recognises(header: dict[str, Any]) -> bool:
        """True for a header shaped like Entra's (``typ`` JWT), not like ours (``at+jwt``)."""
        typ = header.get("typ")
        return isinstance(typ, str) and typ.lower() == "jwt"

    def issuer(self, tenant_id: str) -> str:
        """The v2.0 issuer of ``tenant_id`` at the configured authority."""
        return f"{self._authority}/{tenant_id}/v2.0"

    def verify(self, token: str, header: dict[str, Any], digest: bytes) -> Caller:
        """The verified caller; Unauthorized, Forbidden or Unavailable otherwise."""
        verified = self._verified.peek(digest)
        if verified is None:
            kid = self._checked_header(header)
            tenant_id = self._claimed_tenant(token)
            if not self._tenants.opted_in(tenant_id):
                # Same answer whether the tenant is unmapped, disabled or not opted in.
                raise _invalid_token("token issuer is not accepted")
            verified = self._verified.get(
                digest, lambda: self._verify_signature(token, kid, tenant_id)
            )
        kid, jwks_uri, claims = verified
        if self._key_set(jwks_uri).get(kid) is None:
            raise _invalid_token("unknown signing key")  # withdrawn since it was checked
        expires_at = self._check_times(claims)
        tenant_id, app_id = claims["tid"], claims["azp"].lower()
        mapping = self._lookups.tenant(tenant_id)
        if mapping is None:
            raise _forbidden("tenant is not mapped")
        if not mapping.enabled:
            raise _forbidden("tenant is disabled")
        if not mapping.allows_entra_app(app_id):
            raise _forbidden("application is not allowed for this tenant")
        uti = claims.get("uti")
        log.debug("entra token accepted: app %s tenant %s kid %s", app_id, tenant_id, kid)
        return Caller(
            client_id=app_id,
            tenant_id=tenant_id,
            jti=str(uti) if _plain_id(uti) else "",
            kid=kid,
            secret_version="",
            expires_at=expires_at,
            via=VIA,
            scopes=roles_as_scopes(claims.get("roles", [])),
        )

    # -- before anything is fetched ------------------------------------------------------------

    @staticmethod
    def _checked_header(header: dict[str, Any]) -> str:
        if header.get("alg") != ALGORITHM:
            raise _invalid_token("algorithm not allowed")
        if "crit" in header:
            raise _invalid_token("token is malformed")
        kid = header.get("kid")
        if kid is None:
            raise _invalid_token("missing header: kid")
        if not _plain_id(kid) or len(kid) > MAX_KID_LENGTH:
            raise _invalid_token("unknown signing key")
        return str(kid)

    def _claimed_tenant(self, token: str) -> str:
        """The ``tid`` the unverified payload claims, when ``iss`` is exactly its issuer."""
        segment = token.split(".")[1]
        if len(segment) > MAX_PAYLOAD_BYTES * 4 // 3 + 4:
            raise _invalid_token("token is too large")
        try:
            payload = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
        except (ValueError, RecursionError):
            raise _invalid_token("token is malformed") from None
        if not isinstance(payload, dict):
            raise _invalid_token("token is malformed")
        tenant_id, issuer = payload.get("tid"), payload.get("iss")
        if not isinstance(tenant_id, str) or not _canonical_guid(tenant_id):
            raise _invalid_token("invalid claim: tid")
        if isinstance(issuer, str) and issuer.startswith("https://sts.windows.net/"):
            raise _invalid_token("Entra ID v1.0 tokens are not accepted; use v2.0 tokens")
        if issuer != self.issuer(tenant_id):
            raise _invalid_token("wrong issuer")
        return str(tenant_id)

    # -- keys and signature ------------------------------------------------------------------

    def _verify_signature(
        self, token: str, kid: str, tenant_id: str
    ) -> tuple[str, str, dict[str, Any]]:

        issuer = self.issuer(tenant_id)
        configuration = self._fetched(
            lambda: self._configurations.get(f"{issuer}/.well-known/openid-configuration")
        )
        if configuration.issuer != issuer:
            log.warning(
                "ALERT the Entra authority's configuration for %s names another issuer", tenant_id
            )
            raise Unavailable(
                "the token issuer's configuration is unusable; retry later",
                headers={"Retry-After": str(UNAVAILABLE_RETRY_SECONDS)},
            )
        key = self._fetched(lambda: self._keys.key(configuration.jwks_uri, kid))
        if key is None:
            raise _invalid_token("unknown signing key")
        if not key.usable_with(ALGORITHM) or key.issuer not in (
            None,
            issuer,
            f"{self._authority}/{{tenantid}}/v2.0",
        ):
            raise _invalid_token("signing key is not one of this issuer's")
        claims = decode_signed(
            token,
            key.key,
            algorithm=ALGORITHM,
            audience=self._audience,
            issuer=issuer,
            required=REQUIRED_CLAIMS,
        )
        self._check_claims(claims, tenant_id, issuer)
        return kid, configuration.jwks_uri, claims

    def _check_claims(self, claims: dict[str, Any], tenant_id: str, issuer: str) -> None:
        if claims.get("iss") != issuer or claims.get("aud") != self._audience:
            raise _invalid_token("wrong issuer or audience")
        if claims["tid"] != tenant_id:
            raise _invalid_token("invalid claim: tid")
        if claims["ver"] != "2.0":
            raise _invalid_token("invalid claim: ver")
        if not is_guid(claims["azp"]):
            raise _invalid_token("invalid claim: azp")
        # App-only (client credentials): a delegated token names the user's scopes in scp.
        if "scp" in claims:
            raise _invalid_token("a token on behalf of a user is not accepted; use an app token")
        if claims.get("idtyp", "app") != "app":
            raise _invalid_token("invalid claim: idtyp")
        if "oid" in claims and claims["oid"] != claims["sub"]:
            raise _invalid_token("a token on behalf of a user is not accepted; use an app token")
        roles = claims.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
            raise _invalid_token("invalid claim: roles")

    def _check_times(self, claims: dict[str, Any]) -> int:
        now = self._clock()
        for name in ("exp", "nbf", "iat"):
            if not _numeric_date(claims[name]):
                raise _invalid_token(f"invalid claim: {name}")
        if claims["exp"] <= now - self._leeway:
            raise _invalid_token(f"token expired at {_iso(claims['exp'])}", code="expired")
        if claims["nbf"] > now + self._leeway or claims["iat"] > now + self._leeway:
            raise _invalid_token("token not yet valid")
        return int(claims["exp"])

    def _key_set(self, jwks_uri: str) -> Any:
        return self._fetched(lambda: self._keys.get(jwks_uri))

    @staticmethod
    def _fetched(fetch: Callable[[], Any]) -> Any:
        """``fetch()``; the authority's failures are answered 503: ours to fix, not the caller's."""
        try:
            return fetch()
        except FetchUnavailable as down:
            log.warning("Entra authority unavailable: %s", down)
        except FetchRefused as refused:
            log.warning("ALERT Entra authority answer refused: %s", refused)
        raise Unavailable(
            "the token issuer's keys cannot be read; retry later",
            headers={"Retry-After": str(UNAVAILABLE_RETRY_SECONDS)},
        )


def roles_as_scopes(roles: list[str]) -> ScopeGrant:
    """The SMART system scopes among an Entra token's app roles; the default when none."""
    smart: list[str] = []
    for role in roles:
        try:
            parse_scopes([role])
        except InvalidScope:
            continue
        smart.append(role)
    if not smart:
        return LEGACY_GRANT
    return parse_scopes(smart[:32])
