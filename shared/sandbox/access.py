"""The sandbox's API key: one secret-store secret every sandbox caller presents as a Bearer token.

A tenant mapped to the sandbox uses provider auth kind ``bearer`` with the same value in its
``provider-<tenant>`` secret, so the proxy reaches the sandbox like any other provider.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from typing import Final

from shared.cache import TTLCache
from shared.secret_store import SecretStore, usable_secrets

SANDBOX_KEY_SECRET: Final = "sandbox-api-key"
# 32 bytes from a CSPRNG: 256 bits, as for client secrets (shared/ids.py).
KEY_BYTES: Final = 32
_CACHE_KEY: Final = "sandbox-key"


class SandboxKeyMissing(Exception):
    """No usable version of the sandbox key exists: it has not been provisioned."""


def ensure_sandbox_key(secret_store: SecretStore) -> str:
    """The key, created (256-bit, urlsafe) if missing."""
    usable = usable_secrets(secret_store, SANDBOX_KEY_SECRET)
    if usable:
        return usable[0].value
    value = secrets.token_urlsafe(KEY_BYTES)
    secret_store.set_secret(SANDBOX_KEY_SECRET, value, tags={"purpose": "sandbox-api-key"})
    return value


def share_sandbox_key(secret_store: SecretStore, tenant_id: str) -> bool:
    """Make the sandbox key a tenant's provider bearer token; True when a version was added."""
    from shared.ids import provider_secret_name

    key = ensure_sandbox_key(secret_store)
    name = provider_secret_name(tenant_id)
    usable = usable_secrets(secret_store, name)
    # A new version only when the key changed, so restarts do not pile up identical versions.
    if usable and hmac.compare_digest(usable[0].value.encode(), key.encode()):
        return False
    secret_store.set_secret(name, key)
    return True


class SandboxKey:
    """The current sandbox key (the newest usable version), cached for ``ttl_seconds``.

    Caching keeps Key Vault off the request path; a rotated or disabled key takes effect within
    the TTL, as for client secrets. Raises ``SandboxKeyMissing`` while none is provisioned and
    lets ``SecretStoreUnavailable`` through.
    """

    def __init__(
        self,
        secret_store: SecretStore,
        ttl_seconds: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = secret_store
        self._cache: TTLCache[str] = TTLCache(ttl_seconds, clock=clock)

    def matches(self, presented: str) -> bool:
        """Constant-time check against the current key."""
        # Bytes: compare_digest raises on non-ASCII str, and a caller controls ``presented``.
        return hmac.compare_digest(presented.encode("utf-8"), self._current().encode("utf-8"))

    def derive(self, purpose: str) -> str:
        """HMAC-SHA256(key, purpose) hex, e.g. for a UI cookie."""
        key = self._current().encode("utf-8")
        return hmac.new(key, purpose.encode("utf-8"), hashlib.sha256).hexdigest()

    def _current(self) -> str:
        return self._cache.get(_CACHE_KEY, self._load)

    def _load(self) -> str:
        usable = usable_secrets(self._store, SANDBOX_KEY_SECRET)
        if not usable:
            raise SandboxKeyMissing(
                f"the sandbox key is not provisioned (secret {SANDBOX_KEY_SECRET})"
            )
        return usable[0].value
