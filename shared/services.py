"""The app's services, built once per process from settings and injected everywhere.

Nothing here connects at import time: each service is built on first use, so a missing setting
shows as a clear error on the first request rather than "0 functions loaded" at start-up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from shared.hosting import log_hosting
from shared.settings import Settings

if TYPE_CHECKING:
    import requests
    from azure.data.tables import TableServiceClient

    from shared.auditevents.export import AuditReader
    from shared.auth.client_auth import ClientAuthentication
    from shared.auth.client_gate import ClientGate
    from shared.auth.clients import ClientRegistry
    from shared.auth.introspection import IntrospectionEndpoint
    from shared.auth.revocation import RevokedTokens
    from shared.auth.revocation_endpoint import RevocationEndpoint
    from shared.auth.secret_usage import SecretUsage
    from shared.auth.signing_keys import SigningKeys
    from shared.auth.token_endpoint import TokenEndpoint
    from shared.circuit import CircuitBreaker
    from shared.console.app import Console
    from shared.instances import InstanceCount
    from shared.lookups import Lookups
    from shared.manage_api import ManagementApi
    from shared.net.addresses import AddressPolicy
    from shared.operators import AdminKey
    from shared.proxy.bearer import BearerVerifier
    from shared.proxy.check import TenantChecker
    from shared.proxy.entra import EntraTokens
    from shared.proxy.handler import FhirProxy
    from shared.proxy.provider_auth import ProviderAuth
    from shared.proxy.transport import ProviderTransport
    from shared.sandbox.access import SandboxKey
    from shared.sandbox.api import SandboxApi
    from shared.sandbox.store import SandboxStore
    from shared.sandbox.ui import SandboxUi
    from shared.secret_store import SecretStore
    from shared.tables import EntityTable
    from shared.tenants import TenantRegistry


def build_secret_store(settings: Settings, credential: Any = None) -> SecretStore:
    """The configured secret store: Key Vault in Azure, a local file in development."""
    if settings.secret_store == "local":
        from shared.secret_store import LocalSecretStore

        return LocalSecretStore(
            settings.local_secrets_path,
            running_in_azure=settings.hosting.maybe_azure,
            allow_in_azure=settings.allow_local_secret_store_in_azure,
        )
    from shared.keyvault_store import build_keyvault_store

    return build_keyvault_store(settings, credential=credential)


class Services:
    """Lazily built, shared service objects; pass parts in to replace them in tests."""

    def __init__(
        self,
        settings: Settings,
        *,
        secret_store: SecretStore | None = None,
        table_service: TableServiceClient | None = None,
        credential: Any = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.settings = settings
        self._credential = credential
        # One clock for every timed rule (tests pass a fake one); None: the real clocks.
        self.clock = clock
        if secret_store is not None:
            self.__dict__["secret_store"] = secret_store
        if table_service is not None:
            self.__dict__["table_service"] = table_service

    @cached_property
    def secret_store(self) -> SecretStore:
        """Key Vault or the local store."""
        return build_secret_store(self.settings, self._credential)

    @cached_property
    def table_service(self) -> TableServiceClient:
        """Table Storage (Azurite locally)."""
        from shared.tables import table_service

        return table_service(self.settings, self._credential)

    @cached_property
    def table_breaker(self) -> CircuitBreaker:
        """Pauses Table Storage calls after consecutive failures (all tables share it)."""
        from shared.tables import store_breaker

        return store_breaker(self.settings)

    @cached_property
    def expiring_table(self) -> EntityTable:
        """The rows every instance shares that expire (failure counts, instances alive)."""
        from shared.tables import EXPIRING_TABLE, AzureEntityTable, store_breaker

        # A breaker of its own: trouble with this table alone must not pause the tables that
        # every request needs, and its users carry on without it (per instance).
        client = self.table_service.get_table_client(EXPIRING_TABLE)
        return AzureEntityTable(client, store_breaker(self.settings))

    @cached_property
    def instance_count(self) -> InstanceCount:
        """How many instances share the rate limits (each says so in the expiring table)."""
        from shared.expiring import ExpiringRows
        from shared.instances import NAMESPACE, InstanceCount

        wall = self.clock or time.time
        rows = ExpiringRows(self.expiring_table, NAMESPACE, clock=wall)
        # A fake clock means a test: it counts when asked rather than from a thread.
        return InstanceCount(rows, clock=wall, background=self.clock is None)

    @cached_property
    def clients(self) -> ClientRegistry:
        """Client registrations and their secrets."""
        from shared.auth.clients import ClientRegistry
        from shared.tables import CLIENTS_TABLE, AzureEntityTable

        client = self.table_service.get_table_client(CLIENTS_TABLE)
        return ClientRegistry(AzureEntityTable(client, self.table_breaker), self.secret_store)

    @cached_property
    def tenants(self) -> TenantRegistry:
        """Tenant → provider mappings."""
        from shared.tables import TENANTS_TABLE, AzureEntityTable
        from shared.tenants import TenantRegistry

        client = self.table_service.get_table_client(TENANTS_TABLE)
        return TenantRegistry(AzureEntityTable(client, self.table_breaker))

    @cached_property
    def lookups(self) -> Lookups:
        """Cached lookups used on every request."""
        from shared.lookups import Lookups

        return Lookups(
            self.clients,
            self.tenants,
            self.secret_store,
            self.settings.cache_ttl_seconds,
            clock=self.clock,
        )

    @cached_property
    def signing_keys(self) -> SigningKeys:
        """Token signing keys from the secret store."""
        from shared.auth.signing_keys import SigningKeys
        from shared.telemetry import metrics

        keys = SigningKeys(
            self.secret_store,
            self.settings.token_algorithm,
            self.settings.cache_ttl_seconds,
            clock=self.clock or time.monotonic,
        )
        metrics.observe_signing_key(self.signing_key_days_left)
        return keys

    def signing_key_days_left(self) -> list[tuple[float, dict[str, str | None]]]:
        """Days until the signing key retires, when it has a date (a metric; none on errors)."""
        from datetime import UTC, datetime

        try:
            expires = self.signing_keys.current().properties.expires_on
        except Exception:  # no key, or the vault cannot answer: health and alerts say so
            return []
        if expires is None:
            return []
        return [((expires - datetime.now(UTC)).total_seconds() / 86400, {})]

    @cached_property
    def assertion_keys(self) -> SigningKeys:
        """The keys of the client assertions we sign for private_key_jwt providers."""
        from shared.auth.signing_keys import SigningKeys
        from shared.ids import ASSERTION_KEY_NAME

        return SigningKeys(
            self.secret_store,
            self.settings.assertion_algorithm,
            self.settings.cache_ttl_seconds,
            secret_name=ASSERTION_KEY_NAME,
        )

    @cached_property
    def token_endpoint(self) -> TokenEndpoint:
        """The OAuth token endpoint."""
        from shared.auth.shared_attempts import NAMESPACE, SharedAttemptStore
        from shared.auth.throttle import FailureThrottle, MemoryAttemptStore
        from shared.auth.token_endpoint import TokenEndpoint
        from shared.expiring import ExpiringRows

        limit = self.settings.token_failure_limit
        window = self.settings.token_failure_window_seconds
        wall = self.clock or time.time
        store = SharedAttemptStore(
            ExpiringRows(self.expiring_table, NAMESPACE, clock=wall),
            MemoryAttemptStore(clock=self.clock or time.monotonic),
            window_seconds=window,
            clock=wall,
        )
        throttle = FailureThrottle(
            store,
            limit=limit,
            # Per source address: five clients' worth, so one office behind NAT still works.
            address_limit=limit * 5,
            client_ceiling=self.settings.token_client_failure_ceiling,
            window_seconds=window,
        )
        return TokenEndpoint(
            self.settings,
            self.lookups,
            self.signing_keys,
            throttle,
            client_auth=self.client_authentication,
            usage=self.secret_usage,
        )

    @cached_property
    def client_authentication(self) -> ClientAuthentication:
        """The token endpoint's client-authentication methods, private_key_jwt wired."""
        from shared.auth.client_assertions import REPLAY_NAMESPACE, AssertionVerifier, PrivateKeyJwt
        from shared.auth.client_auth import default_client_authentication
        from shared.expiring import ExpiringRows
        from shared.jose.remote import RemoteKeySets

        def session() -> requests.Session:
            from shared.proxy.provider_auth import upstream_session

            # The address policy of provider URLs: a client's JWKS URL is another party's URL.
            made = upstream_session(4, policy=self.address_policy)
            if self.settings.client_jwks_ca_bundle:
                made.verify = self.settings.client_jwks_ca_bundle
            return made

        wall = self.clock or time.time
        verifier = AssertionVerifier(
            RemoteKeySets(session, clock=self.clock or time.monotonic),
            ExpiringRows(self.expiring_table, REPLAY_NAMESPACE, clock=wall),
            clock=wall,
        )
        return default_client_authentication(PrivateKeyJwt(self.settings, verifier))

    @cached_property
    def secret_usage(self) -> SecretUsage:
        """When each client-secret version was last used (coarse, per instance), and deletions."""
        from shared.auth.secret_usage import SecretUsage
        from shared.tables import CLIENTS_TABLE, AzureEntityTable

        client = self.table_service.get_table_client(CLIENTS_TABLE)
        # Without the breaker: a failed background write must never pause the token endpoint.
        return SecretUsage(AzureEntityTable(client))

    @cached_property
    def address_policy(self) -> AddressPolicy:
        """Which provider addresses may be connected to (public only, unless developing)."""
        from shared.net.addresses import AddressPolicy

        return AddressPolicy(allow_local=self.settings.allow_insecure_provider_urls)

    @cached_property
    def management(self) -> ManagementApi:
        """The management API."""
        from shared.manage_api import ManagementApi

        return ManagementApi(
            self.settings,
            self.clients,
            self.tenants,
            self.lookups,
            checker=self.checker,
            address_policy=self.address_policy,
            admin_key=self.admin_key,
            audit_store=lambda: self.audit_store,
        )

    @cached_property
    def admin_key(self) -> AdminKey:
        """The management key (local setting, or Key Vault's ``manage-admin-key`` in Azure)."""
        from shared.operators import AdminKey

        return AdminKey(self.settings, lambda: self.secret_store)

    @cached_property
    def audit_store(self) -> AuditReader:
        """Where the per-tenant audit export reads: Log Analytics in Azure, else a local file
        that this process's audit stream also writes to (``shared/auditevents/``)."""
        from shared.settings import SettingsError

        settings = self.settings
        if settings.audit_workspace_id:
            from shared.auditevents.loganalytics import LogAnalyticsAuditStore

            credential = self._credential
            if credential is None:
                from azure.identity import DefaultAzureCredential

                credential = DefaultAzureCredential()
            return LogAnalyticsAuditStore(
                settings.audit_workspace_id, settings.log_analytics_endpoint, credential
            )
        if settings.hosting.maybe_azure:
            raise SettingsError("EHRB_AUDIT_WORKSPACE_ID is required in Azure (audit export)")
        from shared.auditevents.local import LocalAuditStore
        from shared.auditevents.stream import use_sink

        store = LocalAuditStore(settings.local_audit_path)
        use_sink(store)
        return store

    def keep_local_audit(self) -> None:
        """Outside Azure, have the audit stream write the local store from the first request."""
        if not self.settings.audit_workspace_id and not self.settings.hosting.maybe_azure:
            self.audit_store  # noqa: B018 - built for its effect: the stream's local sink

    @cached_property
    def verifier(self) -> BearerVerifier:
        """Bearer-token verification for the FHIR routes."""
        from shared.proxy.bearer import BearerVerifier

        return BearerVerifier(
            self.settings,
            self.signing_keys,
            self.lookups,
            entra=self.entra_tokens,
            revoked=self.revoked_tokens,
        )

    @cached_property
    def revoked_tokens(self) -> RevokedTokens:
        """Revoked token ids: shared rows, read again by each instance once per cache TTL."""
        from shared.auth.revocation import MAX_NEW_PER_MINUTE, NAMESPACE, RevokedTokens
        from shared.expiring import ExpiringRows

        rows = ExpiringRows(
            self.expiring_table,
            NAMESPACE,
            max_new=MAX_NEW_PER_MINUTE,
            clock=self.clock or time.time,
            background=self.clock is None,
        )
        return RevokedTokens(
            rows, self.settings.cache_ttl_seconds, clock=self.clock or time.monotonic
        )

    @cached_property
    def client_gate(self) -> ClientGate:
        """Client authentication for introspection and revocation (the token endpoint's)."""
        return self.token_endpoint.gate

    @cached_property
    def introspection(self) -> IntrospectionEndpoint:
        """RFC 7662 token introspection."""
        from shared.auth.introspection import IntrospectionEndpoint

        return IntrospectionEndpoint(
            self.settings, self.client_gate, self.lookups, self.verifier.verify_token
        )

    @cached_property
    def revocation(self) -> RevocationEndpoint:
        """RFC 7009 token revocation."""
        from shared.auth.revocation_endpoint import RevocationEndpoint

        return RevocationEndpoint(
            self.client_gate,
            self.revoked_tokens,
            self.verifier.signed_claims,
            clock=self.clock or time.time,
        )

    @cached_property
    def entra_tokens(self) -> EntraTokens | None:
        """Entra ID app-only tokens for opted-in tenants; None unless EHRB_ENTRA_AUDIENCE."""
        if not self.settings.entra_audience:
            return None
        from shared.jose.remote import RemoteDocuments, RemoteKeySets
        from shared.proxy.entra import EntraTenants, EntraTokens, configuration_parser

        def session() -> requests.Session:
            from shared.proxy.provider_auth import upstream_session

            made = upstream_session(4, policy=self.address_policy)
            if self.settings.entra_ca_bundle:
                made.verify = self.settings.entra_ca_bundle
            return made

        settings = self.settings
        return EntraTokens(
            audience=settings.entra_audience,
            authority=settings.entra_authority,
            lookups=self.lookups,
            tenants=EntraTenants(self.tenants, settings.cache_ttl_seconds),
            configurations=RemoteDocuments(configuration_parser(settings.entra_authority), session),
            keys=RemoteKeySets(session),
            ttl=settings.cache_ttl_seconds,
        )

    @cached_property
    def provider_auth(self) -> ProviderAuth:
        """Credentials EHR Bridge presents to providers."""
        from shared.proxy.provider_auth import ProviderAuth

        return ProviderAuth(
            self.secret_store,
            secret_ttl_seconds=self.settings.cache_ttl_seconds,
            timeout=(
                self.settings.upstream_connect_timeout_seconds,
                self.settings.upstream_read_timeout_seconds,
            ),
            address_policy=self.address_policy,
            managed_identity_scopes=self.settings.managed_identity_scopes,
            assertion_keys=self.assertion_keys,
        )

    @cached_property
    def transport(self) -> ProviderTransport:
        """Pooled HTTP to provider FHIR servers."""
        from shared.proxy.transport import ProviderTransport

        transport = ProviderTransport(
            self.settings, self.provider_auth, address_policy=self.address_policy
        )
        from shared.telemetry import metrics

        metrics.observe_circuits(transport.open_circuits)
        metrics.observe_circuits(self.store_circuits)
        return transport

    def store_circuits(self) -> list[tuple[float, dict[str, str | None]]]:
        """1 for Table Storage's circuit when it is not closed (a metric)."""
        from shared.circuit import CLOSED

        if "table_breaker" not in self.__dict__:
            return []
        state = self.table_breaker.state("tables")  # the key every table shares
        return [] if state == CLOSED else [(1.0, {"circuit": "tables"})]

    @cached_property
    def proxy(self) -> FhirProxy:
        """The FHIR proxy."""
        from shared.proxy.handler import FhirProxy
        from shared.ratelimit import RequestRates

        rates = RequestRates.from_settings(
            self.settings, instances=self.instance_count, clock=self.clock or time.monotonic
        )
        return FhirProxy(self.settings, self.verifier, self.lookups, self.transport, rates=rates)

    @cached_property
    def checker(self) -> TenantChecker:
        """The per-tenant provider diagnosis."""
        from shared.proxy.check import TenantChecker

        return TenantChecker(self.tenants, self.transport, self.provider_auth)

    @cached_property
    def sandbox_store(self) -> SandboxStore:
        """The sandbox provider's resources (Table Storage)."""
        from shared.sandbox.store import SandboxStore
        from shared.tables import (
            SANDBOX_CHART_TABLES,
            SANDBOX_LOCATOR_TABLE,
            SANDBOX_TABLE,
            AzureEntityTable,
        )

        # Without the tables' breaker, as before: a bulk load or a scan of the sandbox failing
        # must not pause the token endpoint and the proxy, which share it.
        def table(name: str) -> AzureEntityTable:
            return AzureEntityTable(self.table_service.get_table_client(name))

        return SandboxStore(
            table(SANDBOX_TABLE),
            charts=[table(name) for name in SANDBOX_CHART_TABLES],
            locator=table(SANDBOX_LOCATOR_TABLE),
        )

    @cached_property
    def sandbox_key(self) -> SandboxKey:
        """The sandbox's API key, cached like every other secret."""
        from shared.sandbox.access import SandboxKey

        return SandboxKey(self.secret_store, self.settings.cache_ttl_seconds)

    @cached_property
    def sandbox_api(self) -> SandboxApi:
        """The sandbox provider's FHIR R4 API."""
        from shared.sandbox.api import SandboxApi

        return SandboxApi(self.settings, self.sandbox_store, self.sandbox_key)

    @cached_property
    def sandbox_ui(self) -> SandboxUi:
        """The sandbox's editor page."""
        from shared.sandbox.ui import SandboxUi

        return SandboxUi(self.settings, self.sandbox_store, self.sandbox_key)

    @cached_property
    def console(self) -> Console:
        """The partner console's pages."""
        from shared.console.access import SESSION_PARTITION, SESSION_SECONDS, ConsoleAccess
        from shared.console.app import Console
        from shared.console.appview import AppView
        from shared.console.key import ConsoleKey
        from shared.console.onboarding import CheckResults
        from shared.sessions import SessionStore
        from shared.tables import CLIENTS_TABLE, TENANTS_TABLE, AzureEntityTable

        clients_table = AzureEntityTable(
            self.table_service.get_table_client(CLIENTS_TABLE), self.table_breaker
        )
        tenants_table = AzureEntityTable(
            self.table_service.get_table_client(TENANTS_TABLE), self.table_breaker
        )
        sessions = SessionStore(clients_table, SESSION_PARTITION, SESSION_SECONDS)
        return Console(
            self.settings,
            access=ConsoleAccess(self.settings, sessions, self.admin_key),
            console_key=ConsoleKey(self.secret_store, self.settings.cache_ttl_seconds),
            clients=self.clients,
            tenants=self.tenants,
            lookups=self.lookups,
            secret_store=self.secret_store,
            usage=self.secret_usage,
            checks=CheckResults(tenants_table),
            checker=self.checker,
            address_policy=self.address_policy,
            appview=AppView(self.settings, self.tenants, self.clients, self.address_policy),
        )


_lock = threading.Lock()
_services: Services | None = None


def get_services() -> Services:
    """The process-wide services, built from the environment on first call."""
    global _services
    if _services is None:
        with _lock:
            if _services is None:
                settings = Settings.from_env()
                log_hosting(settings.hosting)
                _services = Services(settings)
                _services.keep_local_audit()
    return _services


def set_services(services: Services | None) -> None:
    """Replace the process-wide services (tests and tools)."""
    global _services
    with _lock:
        _services = services
