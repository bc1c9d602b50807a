"""Our own credential to a tenant's provider FHIR server, as request headers.

The tenant's auth kind (``TenantMapping.provider_auth_kind``, one row of
``shared/proxy/auth_kinds.py``) says whether calls carry a credential and which loader
(``shared/proxy/provider_tokens.py``) obtains it. This module caches what the loaders return:

- ``client_credentials`` and ``private_key_jwt``: until ``expires_in`` − the refresh margin (a
  token shorter than twice the margin is kept for half its lifetime instead, so short-lived
  tokens are not fetched on every call);
- ``managed_identity``: until ``expires_on`` − the margin;
- ``bearer``: for the secret-cache TTL, so a rotated token is used within that TTL (or at once
  after a 401).

Every cache fill is single-flight per tenant (``TTLCache``), so a burst of calls makes one token
request. A refresh after a provider 401 (``force_refresh``) is single-flight too when the caller
says which header was rejected: of N concurrent 401s only the first fetches a new token.

Errors (``provider_tokens``): ``ProviderAuthError`` when our credential does not work — the
proxy answers 502 and logs an ALERT; ``ProviderAuthUnavailable`` (a subclass) when the token
endpoint or the identity endpoint is down, slow or answers 5xx; ``SecretStoreUnavailable``
propagates (the proxy answers 503). No message carries a secret, a token or a response body.
"""

from __future__ import annotations

import functools
import http.cookiejar
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from shared.cache import TTLCache
from shared.ids import provider_secret_name
from shared.net.addresses import AddressPolicy
from shared.proxy.auth_kinds import UnknownAuthKind, auth_kind
from shared.proxy.provider_tokens import (
    ProviderAuthError,
    ProviderAuthUnavailable,
    Sources,
    Token,
)
from shared.secret_store import (
    SecretStore,
    SecretStoreError,
    SecretStoreUnavailable,
    usable_secrets,
)
from shared.tenants import TenantMapping

if TYPE_CHECKING:
    import requests
    from azure.core.credentials import TokenCredential

    from shared.auth.signing_keys import SigningKey, SigningKeys

__all__ = [
    "ProviderAuth",
    "ProviderAuthError",
    "ProviderAuthUnavailable",
    "upstream_session",
]


class ProviderAuth:
    """Authorization headers for calls to a tenant's provider; thread-safe.

    ``secret_ttl_seconds`` bounds how long a ``bearer`` token read from Key Vault is reused
    (normally the app's cache TTL); ``timeout`` is the (connect, read) timeout of a call to a
    provider token endpoint.
    """

    def __init__(
        self,
        secrets: SecretStore,
        *,
        session_factory: Callable[[], requests.Session] | None = None,
        credential_factory: Callable[[], TokenCredential] | None = None,
        refresh_margin_seconds: int = 60,
        clock: Callable[[], float] = time.time,
        secret_ttl_seconds: float = 60,
        timeout: tuple[float, float] = (5.0, 10.0),
        address_policy: AddressPolicy | None = None,
        managed_identity_scopes: tuple[str, ...] = (),
        assertion_keys: SigningKeys | None = None,
    ) -> None:
        if refresh_margin_seconds < 0:
            raise ValueError("refresh_margin_seconds must not be negative")
        self._secrets = secrets
        self._session_factory = session_factory
        self._credential_factory = credential_factory
        self._margin = float(refresh_margin_seconds)
        self._clock = clock
        self._secret_ttl = float(secret_ttl_seconds)
        # Production rules unless told otherwise: a token endpoint is a provider address too.
        self._policy = address_policy or AddressPolicy()
        # Failed fills are shared for 1 s: a burst behind a failing token endpoint makes one call.
        self._cache: TTLCache[Token] = TTLCache(self._secret_ttl, failure_ttl=1.0, clock=clock)
        self._lock = threading.Lock()
        self._refresh_locks: dict[tuple[str, ...], threading.Lock] = {}
        self._session: requests.Session | None = None
        self._credential: TokenCredential | None = None
        self._assertion_keys = assertion_keys
        self._sources = Sources(
            secret=self._secret,
            token_session=self._token_session,
            identity=self._identity,
            expiring=self._expiring,
            clock=clock,
            timeout=timeout,
            managed_identity_scopes=managed_identity_scopes,
            assertion_key=self._assertion_key,
        )

    # -- public -----------------------------------------------------------------------------

    def headers_for(
        self,
        tenant: TenantMapping,
        *,
        force_refresh: bool = False,
        rejected: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """``{}`` for ``none``; ``{"Authorization": "Bearer …"}`` otherwise.

        ``force_refresh`` drops the cached token (or re-reads the bearer secret) first. Pass the
        headers the provider just refused as ``rejected`` to make concurrent refreshes
        single-flight: when another caller already replaced that token, its new token is
        returned without another fetch.
        """
        try:
            loader = auth_kind(tenant.provider_auth_kind).load
        except UnknownAuthKind as unknown:
            raise ProviderAuthError(str(unknown)) from None
        if loader is None:
            return {}
        key = self._key(tenant)

        def load() -> Token:
            return loader(self._sources, tenant)

        if force_refresh:
            token = self._refresh(key, load, rejected)
        else:
            token = self._cache.get(key, load, ttl=self._lifetime)
        return {"Authorization": f"Bearer {token.value}"}

    def sends_credential(self, tenant: TenantMapping) -> bool:
        """True when the tenant's calls carry a credential of ours (one a 401 may refresh)."""
        try:
            return auth_kind(tenant.provider_auth_kind).sends_credential
        except UnknownAuthKind:
            return False

    def invalidate(self, tenant: TenantMapping) -> None:
        """Forget the tenant's cached token (after a mapping change or a secret rotation)."""
        self._cache.invalidate(self._key(tenant))

    def close(self) -> None:
        """Close the token endpoint session and the credential, if they were created."""
        with self._lock:
            session, self._session = self._session, None
            credential, self._credential = self._credential, None
        if session is not None:
            session.close()
        closer = getattr(credential, "close", None)
        if callable(closer):
            closer()

    # -- caching ----------------------------------------------------------------------------

    @staticmethod
    def _key(tenant: TenantMapping) -> tuple[str, ...]:
        # Everything the token depends on: a remapped tenant never reuses a stale token.
        return (
            tenant.tenant_id,
            tenant.provider_auth_kind,
            tenant.provider_base_url,
            tenant.provider_token_url,
            tenant.provider_client_id,
            tenant.provider_scope,
        )

    def _lifetime(self, token: Token) -> float:
        if token.refresh_at is None:
            return self._secret_ttl
        return token.refresh_at - self._clock()

    def _refresh(
        self,
        key: tuple[str, ...],
        load: Callable[[], Token],
        rejected: Mapping[str, str] | None,
    ) -> Token:
        with self._lock:
            lock = self._refresh_locks.setdefault(key, threading.Lock())
        with lock:
            if rejected is not None:
                refused = _header(rejected, "Authorization")
                current = self._cache.get(key, load, ttl=self._lifetime)
                if refused is not None and f"Bearer {current.value}" != refused:
                    return current
            self._cache.invalidate(key)
            return self._cache.get(key, load, ttl=self._lifetime)

    def _expiring(self, lifetime: float) -> float:
        """When a token valid for ``lifetime`` seconds from now stops being used."""
        keep = lifetime - self._margin if lifetime > 2 * self._margin else lifetime / 2
        return self._clock() + max(0.0, keep)

    # -- what the loaders draw on --------------------------------------------------------------

    def _secret(self, tenant: TenantMapping) -> str:
        name = provider_secret_name(tenant.tenant_id)
        try:
            found = usable_secrets(self._secrets, name)
        except SecretStoreUnavailable:
            raise
        except SecretStoreError:
            raise ProviderAuthError(f"the provider credential {name} cannot be read") from None
        if not found or not found[0].value:
            raise ProviderAuthError(f"no usable version of the provider credential {name}")
        return found[0].value

    def _assertion_key(self) -> SigningKey:
        from shared.auth.signing_keys import NoSigningKey

        if self._assertion_keys is None:
            raise NoSigningKey("no assertion keys are configured")
        return self._assertion_keys.current()

    # -- lazily built clients ---------------------------------------------------------------

    def _token_session(self) -> requests.Session:
        with self._lock:
            if self._session is None:
                self._session = (
                    self._session_factory()
                    if self._session_factory
                    else upstream_session(8, pool_connections=4, policy=self._policy)
                )
            return self._session

    def _identity(self) -> TokenCredential:
        with self._lock:
            if self._credential is None:
                if self._credential_factory is not None:
                    self._credential = self._credential_factory()
                else:
                    from azure.identity import DefaultAzureCredential

                    self._credential = DefaultAzureCredential()
            return self._credential


def upstream_session(
    pool_maxsize: int, *, policy: AddressPolicy, pool_connections: int = 1
) -> requests.Session:
    """A ``requests`` session for calls to providers and their token endpoints.

    Every connection it opens obeys ``policy`` (``shared/net/guard.py``). No retries below us
    (callers decide what to retry), no cookies kept, and redirects not even
    looked at: with ``allow_redirects=False`` a plain session still reads a 3xx answer's whole
    body (uncapped) to prepare the next hop. Pass ``allow_redirects=False`` anyway.
    """
    from shared.net.guard import guarded_adapter

    session = _no_redirect_session_class()()
    session.cookies.set_policy(_NoCookies())
    # No proxy variables or ~/.netrc credentials from the host apply to provider calls (and
    # looking them up costs ~0.2 ms per request).
    session.trust_env = False
    adapter = guarded_adapter(policy, pool_connections=pool_connections, pool_maxsize=pool_maxsize)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


@functools.cache
def _no_redirect_session_class() -> type[requests.Session]:
    import requests

    class NoRedirectSession(requests.Session):
        """A session for which no answer is a redirect to follow: a 3xx is just an answer."""

        def get_redirect_target(self, resp: requests.Response) -> str | None:
            return None

    return NoRedirectSession


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """Refuse every cookie: provider state never rides along with a later request."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False

    def return_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None
