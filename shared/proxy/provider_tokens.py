"""How each provider auth kind obtains its credential: a token for the provider's requests.

The loaders of ``shared/proxy/auth_kinds.py``'s table; ``ProviderAuth`` caches what they return.

- ``bearer``: the newest usable version of ``provider-<tenant>`` *is* the token.
- ``client_credentials`` (RFC 6749 §4.4): POST ``grant_type=client_credentials``, ``client_id``,
  ``client_secret`` (the newest usable version of the Key Vault secret ``provider-<tenant>``) and
  ``scope`` (when the mapping has one) as a form to ``provider_token_url``; no redirects followed.
  ``expires_in`` defaults to 300 s when the provider omits it.
- ``private_key_jwt`` (RFC 7523 §2.2, SMART Backend Services): the same grant, but the client
  authenticates with a signed assertion (``client_assertion_type`` jwt-bearer and
  ``client_assertion``, ``shared/proxy/assertions.py``) instead of a secret: nothing is stored per
  tenant, the key is EHR Bridge's assertion key (``assertion-signing-key``).
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
a refusal carries the provider's OAuth ``error`` and ``error_description`` (``refusal``), so the
502 and the tenant check say which rule failed, sanitized: RFC 6749 §5.2's characters only, at
most 160 of them, with our assertion, its parts, our secret and anything shaped like a JWT or a
long base64 run replaced by ``[redacted]`` (a provider that echoes what it was sent must not make
us leak it);
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

    from shared.auth.signing_keys import SigningKey
    from shared.tenants import TenantMapping

_LOGGER = logging.getLogger(__name__)

DEFAULT_EXPIRES_IN = 300
MAX_TOKEN_RESPONSE_BYTES = 64 * 1024
_OAUTH_ERROR = re.compile(r"[a-z_]{1,64}")
MAX_DESCRIPTION_CHARS = 160
# RFC 6749 §5.2: error_description is %x20-21 / %x23-5B / %x5D-7E.
_DESCRIPTION_UNSAFE = re.compile(r"[^\x20-\x21\x23-\x5b\x5d-\x7e]")
# Three base64url runs joined by dots (a JWS, ours or any token, echoed back), or one run long
# enough to be a part of one: a Key Vault kid (32 hex digits) still shows, a signature does not.
_TOKEN_SHAPED = re.compile(
    r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*|[A-Za-z0-9_+/=-]{40,}"
)
REDACTED = "[redacted]"


class ProviderAuthError(Exception):
    """Our credential to the provider does not work (the proxy answers 502 and alerts).

    ``refusal`` is the provider's own word on why, when it refused us: its OAuth ``error`` and
    sanitized ``error_description``, fit to show the caller and the operator.
    """

    def __init__(self, message: str, refusal: str | None = None) -> None:
        super().__init__(message)
        self.refusal = refusal


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
    assertion_key: Callable[[], SigningKey]
    """The key our client assertions are signed with now (``assertion-signing-key``)."""


Loader = Callable[[Sources, "TenantMapping"], Token]


def load_bearer(sources: Sources, tenant: TenantMapping) -> Token:
    """The static token stored as the tenant's provider secret."""
    value = sources.secret(tenant).strip()
    if not _header_safe(value):
        raise ProviderAuthError("the provider bearer token is not a valid header value")
    return Token(value, None)


def load_client_credentials(sources: Sources, tenant: TenantMapping) -> Token:
    """A token from the provider's token endpoint, for our client id and stored secret."""
    if not tenant.provider_token_url or not tenant.provider_client_id:
        raise ProviderAuthError(
            "client_credentials needs provider_token_url and provider_client_id"
        )
    secret = sources.secret(tenant)
    form = {
        "grant_type": "client_credentials",
        "client_id": tenant.provider_client_id,
        "client_secret": secret,
    }
    return _request_token(sources, tenant, form, credential="credentials", redact=(secret,))


def load_private_key_jwt(sources: Sources, tenant: TenantMapping) -> Token:
    """A token from the provider's token endpoint, authenticated by our signed assertion."""
    from shared.auth.signing_keys import NoSigningKey
    from shared.proxy.assertions import ASSERTION_TYPE, client_assertion

    if not tenant.provider_token_url or not tenant.provider_client_id:
        raise ProviderAuthError("private_key_jwt needs provider_token_url and provider_client_id")
    try:
        key = sources.assertion_key()
    except NoSigningKey:
        raise ProviderAuthError(
            "no usable assertion key in assertion-signing-key (ops assertion-key rotate)"
        ) from None
    assertion = client_assertion(
        key,
        client_id=tenant.provider_client_id,
        token_url=tenant.provider_token_url,
        now=sources.clock(),
    )
    # RFC 7523 §3.1: the assertion identifies the client; no client_id or secret beside it.
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion.value,
    }
    _LOGGER.debug(
        "client assertion for tenant %s: kid %s jti %s", tenant.tenant_id, key.kid, assertion.jti
    )
    return _request_token(
        sources,
        tenant,
        form,
        credential="signed assertion",
        redact=(assertion.value, *assertion.value.split(".")[1:]),
    )


def _request_token(
    sources: Sources,
    tenant: TenantMapping,
    form: dict[str, str],
    *,
    credential: str,
    redact: tuple[str, ...],
) -> Token:
    """POST the grant to the tenant's token endpoint (no redirects) and read the token."""
    import requests

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
    return _token_from_answer(sources, status, body, credential=credential, redact=redact)


def _token_from_answer(
    sources: Sources,
    status: int,
    body: bytes,
    *,
    credential: str = "credentials",
    redact: tuple[str, ...] = (),
) -> Token:
    """The token in a token endpoint's answer, or why there is none."""
    if status >= 500 or status == 429:
        raise ProviderAuthUnavailable(f"the provider token endpoint answered HTTP {status}")
    if 300 <= status < 400:
        raise ProviderAuthError(
            f"the provider token endpoint redirected (HTTP {status}); not followed"
        )
    document = _json_object(body)
    if status != 200:
        refusal = _refusal(document, redact)
        detail = f" ({refusal})" if refusal else ""
        raise ProviderAuthError(
            f"the provider token endpoint refused our {credential}{detail}, HTTP {status}",
            refusal,
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


def _refusal(document: dict[str, Any] | None, redact: tuple[str, ...]) -> str | None:
    """``error: description`` from an RFC 6749 §5.2 answer, safe to show; None without one."""
    if document is None:
        return None
    code = document.get("error")
    if not isinstance(code, str) or not _OAUTH_ERROR.fullmatch(code):
        return None
    description = document.get("error_description")
    if not isinstance(description, str) or not description.strip():
        return code
    text = description
    for secret in sorted((r for r in redact if len(r) >= 8), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = _TOKEN_SHAPED.sub(REDACTED, text)
    text = _DESCRIPTION_UNSAFE.sub("?", " ".join(text.split()))
    if len(text) > MAX_DESCRIPTION_CHARS:
        text = text[: MAX_DESCRIPTION_CHARS - 3] + "..."
    return f"{code}: {text}"


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
