"""Fixtures shared by every test: Azurite, a local secret store, wired services, factories."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.auth.clients import IssuedSecret
from shared.auth.signing_keys import ensure_signing_key
from shared.http import Response
from shared.secret_store import LocalSecretStore
from shared.services import Services
from shared.settings import Settings
from shared.tables import CLIENTS_TABLE, EXPIRING_TABLE, TENANTS_TABLE, ensure_tables
from shared.tenants import TenantMapping
from tools.azurite import running_azurite
from tools.testkit.inbound import form_request

pytest_plugins = ["tests.support.skip_report"]

ADMIN_KEY = "test-admin-key-" + "k" * 32
PROVIDER_URL = "https://fhir.hospital-a.example/r4"


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Connection string of an Azurite table service for this test session (or worker)."""
    with running_azurite(tmp_path_factory.mktemp("azurite")) as connection:
        yield connection


@pytest.fixture
def table_service(azurite: str) -> Any:
    """A TableServiceClient on Azurite with empty ``clients``, ``tenants`` and ``expiring``
    tables (the last holds the failure throttle's shared counts)."""
    from azure.data.tables import TableServiceClient

    service = TableServiceClient.from_connection_string(azurite)
    ensure_tables(service)
    empty_tables(service, CLIENTS_TABLE, TENANTS_TABLE, EXPIRING_TABLE)
    return service


def empty_tables(service: Any, *names: str) -> None:
    """Delete every row of the named tables (a worker's Azurite outlives each test)."""
    for name in names:
        table = service.get_table_client(name)
        for entity in table.list_entities(select=["PartitionKey", "RowKey"]):
            table.delete_entity(entity["PartitionKey"], entity["RowKey"])


@pytest.fixture
def secret_store(tmp_path: Path) -> LocalSecretStore:
    """A file-backed local secret store in this test's temporary folder."""
    return LocalSecretStore(tmp_path / "secrets.json")


@pytest.fixture
def settings(azurite: str, tmp_path: Path) -> Settings:
    """Settings for a local run against Azurite; tests replace fields with ``dataclasses``."""
    return Settings(
        public_base_url="",
        secret_store="local",
        local_secrets_path=str(tmp_path / "secrets.json"),
        tables_connection_string=azurite,
        local_admin_key=ADMIN_KEY,
        token_issuer="https://bridge.test/api/oauth2",
        token_audience="https://bridge.test/api/fhir",
    )


@pytest.fixture
def make_services(
    settings: Settings, secret_store: LocalSecretStore, table_service: Any
) -> Callable[..., Services]:
    """Build Services over Azurite and the local store, with settings overrides."""

    def build(**overrides: Any) -> Services:
        services = Services(
            dataclasses.replace(settings, **overrides),
            secret_store=secret_store,
            table_service=table_service,
        )
        ensure_signing_key(secret_store, services.settings.token_algorithm)
        return services

    return build


@pytest.fixture
def services(make_services: Callable[..., Services]) -> Services:
    """Services with the default test settings."""
    return make_services()


@pytest.fixture
def client(services: Services) -> IssuedSecret:
    """A registered, enabled client and its one secret."""
    return services.clients.register("Teams Patients app")


def writer_token(services: Services, client: IssuedSecret, tenant_id: str) -> str:
    """A token with every permission (``system/*.cruds``), the client allowed it first."""
    services.clients.update(client.client.client_id, allowed_scopes="system/*.cruds")
    services.lookups.forget()
    return bearer_token(services, client, tenant_id, "system/*.cruds")


@pytest.fixture
def make_tenant(services: Services) -> Callable[..., TenantMapping]:
    """Map a fresh tenant (random GUID) allowing the given clients."""

    def build(*client_ids: str, **fields: Any) -> TenantMapping:
        mapping = TenantMapping(
            tenant_id=fields.pop("tenant_id", str(uuid.uuid4())),
            provider_base_url=fields.pop("provider_base_url", PROVIDER_URL),
            provider_fhir_version=fields.pop("provider_fhir_version", "r4"),
            allowed_client_ids=tuple(client_ids),
            **fields,
        )
        stored, _ = services.tenants.put(mapping)
        return stored

    return build


@pytest.fixture
def tenant(client: IssuedSecret, make_tenant: Callable[..., TenantMapping]) -> TenantMapping:
    """A tenant mapped to a provider, allowing ``client``."""
    return make_tenant(client.client.client_id)


def request_token(services: Services, fields: Any, **kwargs: Any) -> Response:
    """Send one token request through the token endpoint."""
    return services.token_endpoint.handle(form_request(fields, **kwargs))


# -- FHIR proxy -------------------------------------------------------------------------------


@pytest.fixture
def fhir_server() -> Iterator[Callable[..., Any]]:
    """Start fake provider FHIR servers (real HTTP on 127.0.0.1); all stop after the test."""
    from tools.testkit.fake_fhir import FakeFhirServer

    started: list[Any] = []

    def start(**kwargs: Any) -> Any:
        server = FakeFhirServer(**kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def proxy_services(make_services: Callable[..., Services]) -> Iterator[Services]:
    """Services whose tenants may point at loopback providers, with short upstream timeouts."""
    services = make_services(
        allow_insecure_provider_urls=True,
        upstream_connect_timeout_seconds=1,
        upstream_read_timeout_seconds=1,
    )
    yield services
    if "proxy" in services.__dict__:
        services.proxy.close()
    if "transport" in services.__dict__:
        services.transport.close()


def bearer_token(services: Services, client: IssuedSecret, tenant_id: str, *scopes: str) -> str:
    """An access token from the token endpoint for ``client`` and ``tenant_id`` (and SMART
    ``scopes``, when given; the client's registered default otherwise)."""
    response = request_token(
        services,
        {
            "grant_type": "client_credentials",
            "scope": " ".join((tenant_id, *scopes)),
            "client_id": client.client.client_id,
            "client_secret": client.secret,
        },
    )
    assert response.status == 200, response.text
    return str(response.json()["access_token"])
