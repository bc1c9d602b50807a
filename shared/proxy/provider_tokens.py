"""How each provider auth kind obtains its credential: a token for the provider's requests.

The loaders of ``shared/proxy/auth_kinds.py``'s table; ``ProviderAuth`` caches what they return.

- ``bearer``: the newest usable version of ``provider-<tenant>`` *is* the token.
- ``client_credentials`` (RFC 6749 §4.4): POST ``grant_type=client_credentials``, ``client_id``,
  ``client_secret`` (the newest usable version of the Key Vault secret ``provider-<tenant>``) and
  ``scope`` (when the mapping has one) as a form to ``provider_token_url``; no redirects followed.
  ``expires_in`` defaults to 300 s when the provider omits it.
- ``managed_identity``: ``azure.identity.DefaultAzureCredential`` (it reads ``AZURE_CLIENT_ID``,
  the user-assigned identity) for Azure Health Data Services or Azure API for FHIR. The scope is
  ``provider_scope`` when set (only an allow-listed one, never Azure management, Key Vault,
  Storage or Graph: ``shared/scopes.py``), else the **origin** of the provider base URL +
  ``/.default``: both services take their own URL as the token audience ("resource"), i.e.
  ``https://<workspace>-<service>.fhir.azurehealthcareapis.com/.default`` for an AHDS FHIR
  service and ``https://<name>.azurehealthcareapis.com/.default`` for Azure API for FHIR (see
  learn.microsoft.com/azure/healthcare-apis/get-access-token).

Errors: ``ProviderAuthError`` when our credential does not work (no usable secret, the token
endpoint refuses it, a malformed token response) — the proxy answers 502 and logs an ALERT;
``ProviderAuthUnavailable`` (a subclass) when the token endpoint or the identity endpoint is down,
slow or answers 5xx; ``SecretStoreUnavailable`` propagates (the proxy answers 503). No message
carries a secret, a token or a response body.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.net.addresses import AddressRefused
from shared.scopes import ScopeRefused, managed_identity_scope

if TYPE_CHECKING:
    import requests
    from azure.core.credentials import TokenCredential

    from shared.tenants import TenantMapping

_LOGGER = logging.getLogger(__name__)

DEFAULT_EXPIRES_IN = 300
MAX_TOKEN_RESPONSE_BYTES = 64 * 1024
_OAUTH_ERROR = re.compile(r"[a-z_]{1,64}")


class ProviderAuthError(Exception):
    """Our credential to the provider does not work (the proxy answers 502 and alerts)."""


class ProviderAuthUnavailable(ProviderAuthError):
    """The provider's token endpoint (or the identity endpoint) is down, slow or failing."""


@dataclass(frozen=True)
class Token:
    """A credential for the provider's requests, and until when it is used."""

    value: str = field(repr=False)
    # Absolute time (the ``clock``'s) after which the token is not used any more; None: no expiry
    # of its own (it is kept for the secret-cache TTL).
    refresh_at: float | None


@dataclass(frozen=True)
class Sources:
    """What a loader draws on; ``ProviderAuth`` provides them."""

    secret: Callable[[TenantMapping], str]
    """The newest usable value of the tenant's ``provider-<tenant>`` secret."""
    token_session: Callable[[], requests.Session]
    """The HTTP session for provider token endpoints."""
    identity: Callable[[], TokenCredential]
    """The app's managed identity."""
    expiring: Callable[[float], float]
    """When a token valid for that many seconds from now stops being used."""
    clock: Callable[[], float]
    timeout: tuple[float, float]
    """(connect, read) timeout of a call to a provider token endpoint."""
    managed_identity_scopes: tuple[str, ...]
    """Scopes a managed identity tenant may name besides its provider's origin."""


Loader = Callable[[Sources, "TenantMapping"], Token]


def load_bearer(sources: Sources, tenant: TenantMapping) -> Token:
    """The static token stored as the tenant's provider secret."""
    value = sources.secret(tenant).strip()
    if not _header_safe(value):
        raise ProviderAuthError("the provider bearer token is not a valid header value")
    return Token(value, None)


def load_client_credentials(sources: Sources, tenant: TenantMapping) -> Token:
    """A token from the provider's token endpoint, for our client id and stored secret."""
    import requests

    if not tenant.provider_token_url or not tenant.provider_client_id:
        raise ProviderAuthError(
            "client_credentials needs provider_token_url and provider_client_id"
        )
    form = {
        "grant_type": "client_credentials",
        "client_id": tenant.provider_client_id,
        "client_secret": sources.secret(tenant),
    }
    if tenant.provider_scope:
        form["scope"] = tenant.provider_scope
    try:
        response = sources.token_session().post(
            tenant.provider_token_url,
            data=form,
            headers={"Accept": "application/json"},
            timeout=sources.timeout,
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
    return _token_from_answer(sources, status, body)


def _token_from_answer(sources: Sources, status: int, body: bytes) -> Token:
    """The token in a token endpoint's answer, or why there is none."""
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
    return Token(access_token, sources.expiring(_expires_in(document.get("expires_in"))))


def load_managed_identity(sources: Sources, tenant: TenantMapping) -> Token:
    """A token of the app's own identity, for the provider's audience only."""
    from azure.core.exceptions import ClientAuthenticationError

    try:
        # Checked again at use: a row stored before the rule, or edited in the table,
        # must not get our identity's token for Key Vault or Storage either.
        scope = managed_identity_scope(
            tenant.provider_scope, tenant.provider_base_url, sources.managed_identity_scopes
        )
    except ScopeRefused as refused:
        _LOGGER.warning(
            "ALERT managed identity scope of tenant %s refused: %s", tenant.tenant_id, refused
        )
        raise ProviderAuthError(f"the managed identity scope is refused: {refused}") from None
    try:
        access = sources.identity().get_token(scope)
    except ClientAuthenticationError:
        # No identity, or Entra ID refused it: a configuration problem, not an outage.
        _LOGGER.warning("managed identity could not get a token for tenant %s", tenant.tenant_id)
        raise ProviderAuthError("the managed identity could not get a provider token") from None
    except Exception as error:
        _LOGGER.warning("managed identity endpoint failed (%s)", type(error).__name__)
        raise ProviderAuthUnavailable("the managed identity endpoint failed") from None
    if not _header_safe(access.token):
        raise ProviderAuthError("the managed identity returned an unusable token")
    return Token(access.token, sources.expiring(float(access.expires_on) - sources.clock()))


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
