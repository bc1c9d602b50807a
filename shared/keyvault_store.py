"""The Key Vault implementation of ``SecretStore``, failing closed within a deadline.

Azure SDKs are imported inside functions only: importing this module must stay cheap, because
cold start is a feature (see docs/architecture.md).

Error mapping (docs/security.md §3 and table F):

- 404 → ``SecretNotFound`` (``[]`` from ``list_versions``).
- 403 with inner error ``SecretDisabled`` → ``SecretDisabled``: a bad credential, not an outage.
- any other 403 (RBAC, access policy, firewall), 401 after the challenge, a credential that cannot
  get a token → ``SecretStoreUnavailable`` plus a warning-level ``ALERT`` log line.
- 429, 5xx, timeouts, dropped connections, anything else → after bounded retries,
  ``SecretStoreUnavailable`` with the server's ``Retry-After`` when it sent one.

No exception or log line carries a secret value, a token or an SDK exception object: the SDK's
exception holds the request, and ``set_secret``'s request body is the secret.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from shared.circuit import CircuitBreaker, guarded
from shared.secret_store import (
    Secret,
    SecretDisabled,
    SecretNotFound,
    SecretStoreError,
    SecretStoreUnavailable,
    SecretVersion,
)
from shared.settings import Settings, SettingsError

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.keyvault.secrets import SecretClient, SecretProperties

__all__ = ["KeyVaultSecretStore", "build_keyvault_store", "vault_breaker"]

_LOGGER = logging.getLogger(__name__)
_T = TypeVar("_T")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def build_keyvault_store(
    settings: Settings, credential: TokenCredential | None = None
) -> KeyVaultSecretStore:
    """A store for ``settings.keyvault_url``; ``DefaultAzureCredential`` unless one is given."""
    if not settings.keyvault_url.lower().startswith("https://"):
        raise SettingsError("EHRB_KEYVAULT_URL must be the https:// URI of the Key Vault")
    if credential is None:
        from azure.identity import DefaultAzureCredential

        # It reads AZURE_CLIENT_ID itself (the user-assigned managed identity).
        credential = DefaultAzureCredential()
    return KeyVaultSecretStore(
        settings.keyvault_url,
        credential,
        timeout_seconds=settings.keyvault_timeout_seconds,
        breaker=vault_breaker(settings),
    )


def vault_breaker(settings: Settings) -> CircuitBreaker:
    """The breaker of the vault's calls, from the store circuit settings."""
    return CircuitBreaker(
        settings.store_circuit_failure_threshold,
        settings.store_circuit_open_seconds,
        refusal=_paused,
    )


def _paused(retry_after: int) -> SecretStoreUnavailable:
    return SecretStoreUnavailable("Key Vault is not answering; calls are paused", retry_after)


class KeyVaultSecretStore:
    """``SecretStore`` over ``azure.keyvault.secrets.SecretClient``.

    Each attempt gets ``timeout_seconds`` to connect and to read; a call makes at most
    ``max_retries + 1`` attempts with exponential backoff, honours ``Retry-After``, and gives up
    once ``(max_retries + 1) * timeout_seconds`` has passed (3x the timeout by default). With a
    ``breaker``, calls stop for a while after a few consecutive unavailable answers, so a hung
    vault costs a request nothing instead of that deadline.
    """

    def __init__(
        self,
        vault_url: str,
        credential: TokenCredential,
        *,
        timeout_seconds: float = 5,
        max_retries: int = 2,
        breaker: CircuitBreaker | None = None,
        **client_kwargs: Any,
    ) -> None:
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")
        if max_retries < 0:
            raise ValueError("max_retries must not be negative")
        from azure.keyvault.secrets import SecretClient

        self._vault_host = urlsplit(vault_url).netloc
        self._breaker = breaker
        self._timeout = float(timeout_seconds)
        self._deadline = self._timeout * (max_retries + 1)
        retry_policy = _deadline_retry_policy_class()(
            deadline_seconds=self._deadline,
            retry_total=max_retries,
            retry_connect=max_retries,
            retry_read=max_retries,
            retry_status=max_retries,
            # Exponential: 0 s before the first retry, then factor * 2**n, capped.
            retry_backoff_factor=min(0.5, self._timeout / 4),
            retry_backoff_max=self._timeout,
        )
        # Network tracing logs request and response bodies, i.e. secret values: never allow it.
        client_kwargs["logging_enable"] = False
        self._client: SecretClient = SecretClient(
            vault_url,
            credential,
            retry_policy=retry_policy,
            connection_timeout=self._timeout,
            read_timeout=self._timeout,
            **client_kwargs,
        )

    @property
    def timeout_seconds(self) -> float:
        """Connect and read timeout of one attempt."""
        return self._timeout

    @property
    def deadline_seconds(self) -> float:
        """Budget of one call, retries and waits included."""
        return self._deadline

    def close(self) -> None:
        """Close the client's pooled connections."""
        self._client.close()

    def __enter__(self) -> KeyVaultSecretStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def set_secret(
        self,
        name: str,
        value: str,
        *,
        expires_on: datetime | None = None,
        not_before: datetime | None = None,
        tags: dict[str, str] | None = None,
    ) -> SecretVersion:
        """Create a new, enabled version of ``name``."""
        created = self._call(
            "set",
            name,
            None,
            lambda: self._client.set_secret(
                name,
                value,
                expires_on=expires_on,
                not_before=not_before,
                tags=dict(tags) if tags else None,
            ),
        )
        return _version(created.properties, name)

    def get_secret(self, name: str, version: str | None = None) -> Secret:
        """One version's value (the latest when ``version`` is None)."""
        found = self._call("get", name, version, lambda: self._client.get_secret(name, version))
        value = found.value if found.value is not None else ""
        return Secret(properties=_version(found.properties, name), value=value)

    def list_versions(self, name: str) -> list[SecretVersion]:
        """Every version's properties, newest first; [] for an unknown secret. No values.

        Key Vault stamps ``created`` in whole seconds and lists versions in no documented order,
        so versions created within the same second have no defined order between them.
        """

        def collect() -> list[SecretProperties]:
            return list(self._client.list_properties_of_secret_versions(name))

        try:
            items = self._call("list", name, None, collect)
        except SecretNotFound:
            # Key Vault answers an empty page for an unknown name; a 404 means the same.
            return []
        versions = [_version(item, name) for item in items]
        versions.sort(key=lambda v: v.created_on, reverse=True)
        return versions

    def update_version(
        self,
        name: str,
        version: str,
        *,
        enabled: bool | None = None,
        expires_on: datetime | None = None,
    ) -> SecretVersion:
        """Change a version's ``enabled`` flag or expiry."""
        if not version:
            # The SDK would silently update the latest version instead.
            raise SecretNotFound(f"{name}/<empty version>")
        updated = self._call(
            "update",
            name,
            version,
            lambda: self._client.update_secret_properties(
                name, version, enabled=enabled, expires_on=expires_on
            ),
        )
        return _version(updated, name)

    def _call(self, operation: str, name: str, version: str | None, run: Callable[[], _T]) -> _T:
        """Run one SDK call (through the breaker, if any) and translate its failure."""
        if self._breaker is None:
            return self._translated(operation, name, version, run)
        return guarded(
            self._breaker,
            self._vault_host,
            lambda: self._translated(operation, name, version, run),
            failure=SecretStoreUnavailable,
            answer=SecretStoreError,
        )

    def _translated(
        self, operation: str, name: str, version: str | None, run: Callable[[], _T]
    ) -> _T:
        """Run one SDK call and translate its failure; never chains the SDK's exception."""
        started = time.monotonic()
        try:
            return run()
        except Exception as exc:  # translated below; anything unknown is re-raised
            mapped = self._translate(exc, operation, name, version, time.monotonic() - started)
            if mapped is None:
                raise
        # Raised outside the except block so the SDK exception (and its request) is not attached
        # as __context__ where a log handler or error reporter would walk it.
        raise mapped

    def _translate(
        self,
        exc: Exception,
        operation: str,
        name: str,
        version: str | None,
        elapsed: float,
    ) -> SecretStoreError | None:
        from azure.core.exceptions import (
            AzureError,
            ClientAuthenticationError,
            HttpResponseError,
            ResourceNotFoundError,
        )

        target = f"{name}/{version}" if version else name
        where = f"Key Vault {self._vault_host} {operation} {target}"
        if isinstance(exc, ResourceNotFoundError):
            return SecretNotFound(target)
        if isinstance(exc, HttpResponseError) and exc.response is not None:
            status = exc.status_code or 0
            code, inner = _error_codes(exc)
            request_id = _header(exc.response, "x-ms-request-id") or "-"
            detail = f"{where}: HTTP {status} {code}/{inner} (request id {request_id})"
            if status == 403 and inner == "SecretDisabled":
                return SecretDisabled(target)
            if status in (401, 403):
                self._alert(detail)
                return SecretStoreUnavailable(detail)
            retry_after = _retry_after(_header(exc.response, "Retry-After"))
            _LOGGER.warning("key vault unavailable: %s after %.1f s", detail, elapsed)
            if retry_after is None:
                return SecretStoreUnavailable(detail)
            return SecretStoreUnavailable(detail, retry_after=retry_after)
        if isinstance(exc, ClientAuthenticationError):
            # The credential could not get a token (no managed identity, wrong client id, ...).
            self._alert(f"{where}: cannot authenticate ({type(exc).__name__})")
            return SecretStoreUnavailable(f"{where}: cannot authenticate")
        if isinstance(exc, AzureError):
            detail = f"{where}: {type(exc).__name__} after {elapsed:.1f} s"
            _LOGGER.warning("key vault unavailable: %s", detail)
            return SecretStoreUnavailable(detail)
        if isinstance(exc, ValueError):
            # Raised by the SDK's challenge handling for a vault URL / challenge mismatch.
            self._alert(f"{where}: rejected challenge or request ({type(exc).__name__})")
            return SecretStoreUnavailable(f"{where}: misconfigured")
        return None

    @staticmethod
    def _alert(detail: str) -> None:
        # Operators alert on this line: access is misconfigured, not a transient fault.
        _LOGGER.warning("ALERT key vault access denied: %s", detail)


def _version(props: SecretProperties, fallback_name: str) -> SecretVersion:
    """Our ``SecretVersion`` from the SDK's ``SecretProperties``; every datetime UTC-aware."""
    return SecretVersion(
        name=props.name or fallback_name,
        version=props.version or "",
        enabled=bool(props.enabled),
        created_on=_utc(props.created_on) or _EPOCH,
        updated_on=_utc(props.updated_on),
        expires_on=_utc(props.expires_on),
        not_before=_utc(props.not_before),
        tags=dict(props.tags or {}),
    )


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _error_codes(exc: Any) -> tuple[str, str]:
    """Key Vault's ``error.code`` and ``error.innererror.code`` (either may be missing)."""
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None) or "-"
    inner = getattr(error, "innererror", None) or {}
    inner_code = inner.get("code") if isinstance(inner, dict) else None
    return str(code), str(inner_code or "-")


def _header(response: Any, name: str) -> str | None:
    """A response header, whatever the transport's response type (headers are case-insensitive)."""
    headers = getattr(response, "headers", None)
    value = headers.get(name) if headers is not None else None
    return str(value) if value is not None else None


def _retry_after(header: str | None) -> int | None:
    """Whole seconds from a ``Retry-After`` header (delta-seconds only), or None."""
    if not header:
        return None
    try:
        seconds = float(header.strip())
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return max(1, math.ceil(seconds))


@functools.cache
def _deadline_retry_policy_class() -> type[Any]:
    """azure-core's ``RetryPolicy`` bounded by a wall-clock deadline (built lazily: no import)."""
    from azure.core.pipeline import PipelineRequest, PipelineResponse
    from azure.core.pipeline.policies import RetryPolicy

    class DeadlineRetryPolicy(RetryPolicy[Any, Any]):
        """Stops retrying when the next wait would end past the deadline; caps read timeouts.

        Stock ``RetryPolicy(timeout=...)`` checks its budget only before an attempt: it still
        sleeps a long ``Retry-After`` in full and lets the last attempt read for the whole
        ``read_timeout``.
        """

        def __init__(self, *, deadline_seconds: float, **kwargs: Any) -> None:
            super().__init__(timeout=deadline_seconds, **kwargs)
            # update_version's PATCH is idempotent (it sets absolute values), so retry it too.
            self._method_whitelist = frozenset(self._method_whitelist | {"PATCH"})

        def configure_retries(self, options: dict[str, Any]) -> dict[str, Any]:
            settings = super().configure_retries(options)
            settings["deadline"] = time.monotonic() + float(settings["timeout"])
            return settings

        def increment(
            self,
            settings: dict[str, Any],
            response: Any = None,
            error: Exception | None = None,
        ) -> bool:
            if not super().increment(settings, response=response, error=error):
                return False
            wait = None
            if isinstance(response, PipelineResponse):
                wait = self.get_retry_after(response)
            if wait is None:
                wait = self.get_backoff_time(settings)
            # Not worth sleeping if the retry could not even start before the deadline.
            return bool(time.monotonic() + wait < settings["deadline"])

        def _configure_timeout(
            self,
            request: PipelineRequest[Any],
            absolute_timeout: float,
            is_response_error: bool,
        ) -> None:
            super()._configure_timeout(request, absolute_timeout, is_response_error)
            config = getattr(request.context.transport, "connection_config", None)
            read_timeout = request.context.options.get(
                "read_timeout", getattr(config, "read_timeout", absolute_timeout)
            )
            if isinstance(read_timeout, int | float):
                request.context.options["read_timeout"] = min(read_timeout, absolute_timeout)

    return DeadlineRetryPolicy
