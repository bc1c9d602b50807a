"""Our own credential to a tenant's provider FHIR server, as request headers.

Auth kinds (``TenantMapping.provider_auth_kind``):

- ``none``: no header.
- ``client_credentials`` (RFC 6749 §4.4): POST ``grant_type=client_credentials``, ``client_id``,
  ``client_secret`` (the newest usable version of the Key Vault secret ``provider-<tenant>``) and
  ``scope`` (when the mapping has one) as a form to ``provider_token_url``; no redirects followed.
  The token is cached per tenant until ``expires_in`` − the refresh margin (``expires_in``
  defaults to 300 s when the provider omits it; a token shorter than twice the margin is kept for
  half its lifetime instead, so short-lived tokens are not fetched on every call).
- ``managed_identity``: ``azure.identity.DefaultAzureCredential`` (it reads ``AZURE_CLIENT_ID``,
  the user-assigned identity) for Azure Health Data Services or Azure API for FHIR. The scope is
  ``provider_scope`` when set (only an allow-listed one, never Azure management, Key Vault,
  Storage or Graph: ``shared/scopes.py``), else the **origin** of the provider base URL +
  ``/.default``:
  both services take their own URL as the token audience ("resource"), i.e.
  ``https://<workspace>-<service>.fhir.azurehealthcareapis.com/.default`` for an AHDS FHIR
  service and ``https://<name>.azurehealthcareapis.com/.default`` for Azure API for FHIR (see
  learn.microsoft.com/azure/healthcare-apis/get-access-token). Cached until ``expires_on`` −
  the margin.
- ``bearer``: the newest usable version of ``provider-<tenant>`` *is* the token; cached for the
  secret-cache TTL, so a rotated token is used within that TTL (or at once after a 401).

Every cache fill is single-flight per tenant (``TTLCache``), so a burst of calls makes one token
request. A refresh after a provider 401 (``force_refresh``) is single-flight too when the caller
says which header was rejected: of N concurrent 401s only the first fetches a new token.

Errors: ``ProviderAuthError`` when our credential does not work (no usable secret, the token
endpoint refuses it, a malformed token response) — the proxy answers 502 and logs an ALERT;
``ProviderAuthUnavailable`` (a subclass) when the token endpoint or the identity endpoint is down,
slow or answers 5xx; ``SecretStoreUnavailable`` propagates (the proxy answers 503). No message
carries a secret, a token or a response body.
"""

from __future__ import annotations

import functools
import http.cookiejar
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.cache import TTLCache
from shared.ids import provider_secret_name
from shared.net.addresses import AddressPolicy, AddressRefused
from shared.scopes import ScopeRefused, managed_identity_scope
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

__all__ = [
    "ProviderAuth",
    "ProviderAuthError",
    "ProviderAuthUnavailable",
    "upstream_session",
]

_LOGGER = logging.getLogger(__name__)

DEFAULT_EXPIRES_IN = 300
MAX_TOKEN_RESPONSE_BYTES = 64 * 1024
_OAUTH_ERROR = re.compile(r"[a-z_]{1,64}")


class ProviderAuthError(Exception):
    """Our credential to the provider does not work (the proxy answers 502 and alerts)."""


class ProviderAuthUnavailable(ProviderAuthError):
    """The provider's token endpoint (or the identity endpoint) is down, slow or failing."""


@dataclass(frozen=True)
class _Token:
    value: str = field(repr=False)
    # Absolute time (the ``clock``'s) after which the token is not used any more; None: no expiry.
    refresh_at: float | None


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
    ) -> None:
        if refresh_margin_seconds < 0:
            raise ValueError("refresh_margin_seconds must not be negative")
        self._secrets = secrets
        self._session_factory = session_factory
        self._credential_factory = credential_factory
        self._margin = float(refresh_margin_seconds)
        self._clock = clock
        self._secret_ttl = float(secret_ttl_seconds)
        self._timeout = timeout
        # Production rules unless told otherwise: a token endpoint is a provider address too.
        self._policy = address_policy or AddressPolicy()
        self._scopes = managed_identity_scopes
        # Failed fills are shared for 1 s: a burst behind a failing token endpoint makes one call.
        self._cache: TTLCache[_Token] = TTLCache(self._secret_ttl, failure_ttl=1.0, clock=clock)
        self._lock = threading.Lock()
        self._refresh_locks: dict[tuple[str, ...], threading.Lock] = {}
        self._session: requests.Session | None = None
        self._credential: TokenCredential | None = None

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
        kind = tenant.provider_auth_kind
        if kind == "none":
            return {}
        if kind not in ("client_credentials", "managed_identity", "bearer"):
            raise ProviderAuthError(f"unknown provider auth kind {kind!r}")
        key = self._key(tenant)

        def load() -> _Token:
            return self._load(tenant)

        if force_refresh:
            token = self._refresh(key, load, rejected)
        else:
            token = self._cache.get(key, load, ttl=self._lifetime)
        return {"Authorization": f"Bearer {token.value}"}

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

    def _lifetime(self, token: _Token) -> float:
        if token.refresh_at is None:
            return self._secret_ttl
        return token.refresh_at - self._clock()

    def _refresh(
        self,
        key: tuple[str, ...],
        load: Callable[[], _Token],
        rejected: Mapping[str, str] | None,
    ) -> _Token:
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

    # -- loaders ----------------------------------------------------------------------------

    def _load(self, tenant: TenantMapping) -> _Token:
        kind = tenant.provider_auth_kind
        if kind == "bearer":
            value = self._secret(tenant).strip()
            if not _header_safe(value):
                raise ProviderAuthError("the provider bearer token is not a valid header value")
            return _Token(value, None)
        if kind == "client_credentials":
            return self._client_credentials(tenant)
        return self._managed_identity(tenant)

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

    def _client_credentials(self, tenant: TenantMapping) -> _Token:
        import requests

        if not tenant.provider_token_url or not tenant.provider_client_id:
            raise ProviderAuthError(
                "client_credentials needs provider_token_url and provider_client_id"
            )
        form = {
            "grant_type": "client_credentials",
            "client_id": tenant.provider_client_id,
            "client_secret": self._secret(tenant),
        }
        if tenant.provider_scope:
            form["scope"] = tenant.provider_scope
        try:
            response = self._token_session().post(
                tenant.provider_token_url,
                data=form,
                headers={"Accept": "application/json"},
                timeout=self._timeout,
                allow_redirects=False,
                verify=True,
                stream=True,
            )
        except AddressRefused as refused:
            _LOGGER.warning(
                "ALERT provider token endpoint of tenant %s is %s; not contacted",
                tenant.tenant_id,
                refused.reason,
            )
            raise ProviderAuthError(
                f"the provider token endpoint is {refused.reason}; EHR Bridge does not connect"
            ) from None
        except requests.exceptions.Timeout:
            _LOGGER.warning("provider token endpoint of tenant %s timed out", tenant.tenant_id)
            raise ProviderAuthUnavailable("the provider token endpoint timed out") from None
        except requests.exceptions.RequestException as error:
            _LOGGER.warning(
                "provider token endpoint of tenant %s unreachable (%s)",
                tenant.tenant_id,
                type(error).__name__,
            )
            raise ProviderAuthUnavailable("the provider token endpoint is unreachable") from None
        try:
            status = response.status_code
            body = _read_capped(response, MAX_TOKEN_RESPONSE_BYTES)
        finally:
            response.close()
        if status >= 500 or status == 429:
            raise ProviderAuthUnavailable(f"the provider token endpoint answered HTTP {status}")
        if 300 <= status < 400:
            raise ProviderAuthError(
                f"the provider token endpoint redirected (HTTP {status}); not followed"
            )
        document = _json_object(body)
        if status != 200:
            code = document.get("error") if document is not None else None
            detail = f" ({code})" if isinstance(code, str) and _OAUTH_ERROR.fullmatch(code) else ""
            raise ProviderAuthError(
                f"the provider token endpoint refused our credentials{detail}, HTTP {status}"
            )
        if document is None:
            raise ProviderAuthError("the provider token endpoint answered something not JSON")
        access_token = document.get("access_token")
        if not isinstance(access_token, str) or not _header_safe(access_token):
            raise ProviderAuthError("the provider token response has no usable access_token")
        token_type = document.get("token_type", "Bearer")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise ProviderAuthError("the provider token response is not a bearer token")
        return _Token(access_token, self._expiring(_expires_in(document.get("expires_in"))))

    def _managed_identity(self, tenant: TenantMapping) -> _Token:
        from azure.core.exceptions import ClientAuthenticationError

        try:
            # Checked again at use: a row stored before the rule, or edited in the table,
            # must not get our identity's token for Key Vault or Storage either.
            scope = managed_identity_scope(
                tenant.provider_scope, tenant.provider_base_url, self._scopes
            )
        except ScopeRefused as refused:
            _LOGGER.warning(
                "ALERT managed identity scope of tenant %s refused: %s", tenant.tenant_id, refused
            )
            raise ProviderAuthError(f"the managed identity scope is refused: {refused}") from None
        try:
            access = self._identity().get_token(scope)
        except ClientAuthenticationError:
            # No identity, or Entra ID refused it: a configuration problem, not an outage.
            _LOGGER.warning(
                "managed identity could not get a token for tenant %s", tenant.tenant_id
            )
            raise ProviderAuthError("the managed identity could not get a provider token") from None
        except Exception as error:
            _LOGGER.warning("managed identity endpoint failed (%s)", type(error).__name__)
            raise ProviderAuthUnavailable("the managed identity endpoint failed") from None
        if not _header_safe(access.token):
            raise ProviderAuthError("the managed identity returned an unusable token")
        return _Token(access.token, self._expiring(float(access.expires_on) - self._clock()))

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


def _read_capped(response: requests.Response, limit: int) -> bytes:
    """The body, or b"" when it is larger than ``limit`` (a token response never is)."""
    import requests

    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_content(8192):
            size += len(chunk)
            if size > limit:
                return b""
            chunks.append(chunk)
    except requests.exceptions.RequestException:
        raise ProviderAuthUnavailable("the provider token endpoint broke off its answer") from None
    return b"".join(chunks)


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        # RecursionError: deep nesting (docs/security.md §2, JSON bombs) is no token answer.
        return None
    return document if isinstance(document, dict) else None


def _expires_in(value: object) -> float:
    if isinstance(value, bool):
        return DEFAULT_EXPIRES_IN
    if isinstance(value, int | float) and value > 0:
        return float(value)
    if isinstance(value, str) and value.strip().isdigit() and int(value) > 0:
        return float(value)
    return DEFAULT_EXPIRES_IN


def _header_safe(token: str) -> bool:
    """Non-empty visible ASCII: never a CR/LF/space that could split or bend the header."""
    return bool(token) and all("!" <= c <= "~" for c in token)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None
