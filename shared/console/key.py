"""The console's own secret: ``console-key`` in the secret store, made on first use.

Form tokens (CSRF) are HMACs under keys derived from it, so they need no table and die when it
is rotated. Made lazily, once: two instances making it at the same moment each use their own
version for at most the cache TTL, after which both use the newest (a form shown in between is
refused as expired and works on reload).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Final

from shared.cache import TTLCache
from shared.secret_store import SecretStore, usable_secrets

CONSOLE_KEY_SECRET: Final = "console-key"
KEY_BYTES: Final = 32
_CACHE_KEY: Final = "console-key"


class ConsoleKey:
    """The newest usable ``console-key`` version, cached for the TTL; created when missing."""

    def __init__(self, secret_store: SecretStore, ttl_seconds: int) -> None:
        self._store = secret_store
        self._cache: TTLCache[str] = TTLCache(ttl_seconds)

    def derive(self, purpose: str) -> str:
        """HMAC-SHA256(key, purpose) as hex: one key per use."""
        key = self._cache.get(_CACHE_KEY, self._load).encode("utf-8")
        return hmac.new(key, purpose.encode("utf-8"), hashlib.sha256).hexdigest()

    def _load(self) -> str:
        usable = usable_secrets(self._store, CONSOLE_KEY_SECRET)
        if usable:
            return usable[0].value
        value = secrets.token_urlsafe(KEY_BYTES)
        self._store.set_secret(CONSOLE_KEY_SECRET, value, tags={"purpose": "console-forms"})
        return value
