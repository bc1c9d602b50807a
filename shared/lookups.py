"""Cached reads of clients, tenants and client secrets: what every request looks up.

Every entry lives for the cache TTL (``EHRB_CACHE_TTL_SECONDS``), which is therefore the delay
before a disabled client, a retired secret or a changed tenant mapping takes effect on an
instance. Clients are read as one listing of the ``clients`` partition, so an unknown client id
costs exactly what a known one does (a lookup in the cached listing: same work, same TTL) and a
stream of random ids makes no table reads. Unmapped tenants are cached for at most 30 s so a
new mapping shows up quickly.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from shared.auth.clients import ClientRecord, ClientRegistry
from shared.cache import TTLCache
from shared.ids import client_secret_name
from shared.secret_store import (
    Secret,
    SecretDisabled,
    SecretNotFound,
    SecretStore,
    SecretVersion,
)
from shared.tenants import TenantMapping, TenantNotFound, TenantRegistry

NEGATIVE_TTL = 30.0
# A miss re-reads a client's secret versions at most this often (token endpoint and bearer).
SECRET_REFRESH_SECONDS = 5.0


class Lookups:
    """Cached lookups over the registries and the secret store."""

    def __init__(
        self,
        clients: ClientRegistry,
        tenants: TenantRegistry,
        secrets: SecretStore,
        ttl: float,
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._clients = clients
        self._tenants = tenants
        self._secrets = secrets
        self._ttl = ttl
        self._negative_ttl = min(ttl, NEGATIVE_TTL)
        now = clock or time.monotonic
        self._client_cache: TTLCache[dict[str, ClientRecord]] = TTLCache(ttl, clock=now)
        self._tenant_cache: TTLCache[TenantMapping | None] = TTLCache(ttl, clock=now)
        self._secret_cache: TTLCache[list[Secret]] = TTLCache(ttl, clock=now)

    def client(self, client_id: str) -> ClientRecord | None:
        """The client record, or None when unknown."""
        return self._client_cache.get("all", self._load_clients).get(client_id.lower())

    def _load_clients(self) -> dict[str, ClientRecord]:
        return {record.client_id: record for record in self._clients.list_all()}

    def _ttl_for(self, value: object) -> float:
        return self._ttl if value is not None else self._negative_ttl

    def tenant(self, tenant_id: str) -> TenantMapping | None:
        """The tenant mapping, or None when unmapped."""
        key = tenant_id.lower()
        return self._tenant_cache.get(key, lambda: self._load_tenant(key), ttl=self._ttl_for)

    def _load_tenant(self, tenant_id: str) -> TenantMapping | None:
        try:
            return self._tenants.get(tenant_id)
        except TenantNotFound:
            return None

    def client_secrets(self, client_id: str, *, refresh: bool = False) -> list[Secret]:
        """Every enabled version of a client's secret with its value (validity not yet checked).

        Validity (``not_before``/``expires_on``) is checked by the caller at use time, so a
        grace period ends on the second, not a cache TTL later. ``refresh`` reads the versions
        again (a miss may be a rotation on another instance), at most once per
        ``SECRET_REFRESH_SECONDS`` per client, one read shared by every concurrent miss.
        """
        key = client_id.lower()
        if refresh:
            return self._secret_cache.refresh(
                key, lambda: self._load_secrets(key), min_interval=SECRET_REFRESH_SECONDS
            )
        return self._secret_cache.get(key, lambda: self._load_secrets(key))

    def _load_secrets(self, client_id: str) -> list[Secret]:
        name = client_secret_name(client_id)
        found: list[Secret] = []
        for props in self._secrets.list_versions(name):
            if not props.enabled:
                continue
            try:
                found.append(self._secrets.get_secret(name, props.version))
            except (SecretDisabled, SecretNotFound):
                continue
        return found

    def secret_version(
        self, client_id: str, version: str, *, refresh: bool = False
    ) -> SecretVersion | None:
        """Properties of one enabled secret version of a client, or None."""
        for secret in self.client_secrets(client_id, refresh=refresh):
            if secret.properties.version == version:
                return secret.properties
        return None

    def forget(self) -> None:
        """Drop every cached entry (tests, and after local management changes)."""
        self._client_cache.clear()
        self._tenant_cache.clear()
        self._secret_cache.clear()
