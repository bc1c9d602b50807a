"""The token endpoint over the real Key Vault SDK when Key Vault misbehaves (table F, 68–70).

Key Vault has no emulator: these run the real azure-keyvault-secrets client against the local
HTTPS server in tests/support/fake_keyvault.py, which follows the Key Vault REST API.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from shared.auth.client_secrets import hash_secret
from shared.auth.signing_keys import ensure_signing_key
from shared.ids import SIGNING_KEY_NAME, client_secret_name
from shared.keyvault_store import KeyVaultSecretStore
from shared.secret_store import utcnow
from shared.services import Services
from tests.conftest import request_token
from tests.support.fake_keyvault import FakeKeyVault, keyvault_store, running_fake_keyvault

TIMEOUT = 1.0  # per Key Vault attempt; a failing call ends within 3x this


@pytest.fixture(scope="module")
def vault() -> Iterator[FakeKeyVault]:
    with running_fake_keyvault() as kv:
        yield kv


@pytest.fixture
def kv_store(vault: FakeKeyVault) -> Iterator[KeyVaultSecretStore]:
    vault.clear_faults()
    with keyvault_store(vault, timeout_seconds=TIMEOUT, max_retries=2) as store:
        yield store
    vault.clear_faults()


@pytest.fixture
def kv_services(settings, kv_store, table_service) -> Services:
    services = Services(settings, secret_store=kv_store, table_service=table_service)
    ensure_signing_key(kv_store, settings.token_algorithm)
    return services


@pytest.fixture
def registered(kv_services, make_tenant_for):
    issued = kv_services.clients.register("Teams Patients app")
    tenant = make_tenant_for(kv_services, issued.client.client_id)
    return issued, tenant


@pytest.fixture
def make_tenant_for():
    import uuid

    from shared.tenants import TenantMapping

    def build(services: Services, client_id: str) -> TenantMapping:
        mapping = TenantMapping(
            tenant_id=str(uuid.uuid4()),
            provider_base_url="https://fhir.example.org/r4",
            provider_fhir_version="r4",
            allowed_client_ids=(client_id,),
        )
        return services.tenants.put(mapping)[0]

    return build


def fields(issued, tenant, secret: str | None = None) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "scope": tenant.tenant_id,
        "client_id": issued.client.client_id,
        "client_secret": secret or issued.secret,
    }


def test_token_is_issued_with_secrets_read_from_key_vault(kv_services, registered):
    issued, tenant = registered
    assert request_token(kv_services, fields(issued, tenant)).status == 200


def test_key_vault_timing_out_is_503_with_retry_after_within_ten_seconds(
    kv_services, registered, vault
):
    issued, tenant = registered
    kv_services.lookups.forget()
    vault.inject_delay(TIMEOUT + 1, times=10)
    started = time.monotonic()
    response = request_token(kv_services, fields(issued, tenant))
    elapsed = time.monotonic() - started
    assert response.status == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert "Retry-After" in response.headers
    assert "access_token" not in response.json()
    assert elapsed < 10


def test_key_vault_refusing_connections_is_503_not_invalid_client(
    settings, table_service, registered
):
    from tests.support.fake_keyvault import FakeCredential
    from tools.azurite import free_port

    issued, tenant = registered
    unreachable = KeyVaultSecretStore(
        f"https://127.0.0.1:{free_port()}",
        FakeCredential(),
        timeout_seconds=TIMEOUT,
        verify_challenge_resource=False,
    )
    services = Services(settings, secret_store=unreachable, table_service=table_service)
    response = request_token(services, fields(issued, tenant))
    assert response.status == 503
    assert response.json()["error"] == "temporarily_unavailable"


def test_throttled_key_vault_with_a_burst_of_token_requests_makes_few_calls_then_503(
    kv_services, registered, vault
):
    issued, tenant = registered
    kv_services.lookups.forget()
    vault.reset_requests()
    vault.inject_status(429, retry_after=1, times=1000)
    statuses: list[int] = []
    lock = threading.Lock()

    def call() -> None:
        status = request_token(kv_services, fields(issued, tenant)).status
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=call) for _ in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert statuses == [503] * 100
    # Single-flight plus a shared failure: a handful of Key Vault calls, not hundreds.
    assert vault.count() <= 12


def test_expired_version_that_key_vault_still_returns_does_not_authenticate(
    kv_services, kv_store, registered
):
    issued, tenant = registered
    name = client_secret_name(issued.client.client_id)
    kv_store.update_version(
        name, issued.version.version, expires_on=utcnow() - timedelta(seconds=5)
    )
    assert kv_store.get_secret(name, issued.version.version).value == hash_secret(issued.secret)
    kv_services.lookups.forget()
    response = request_token(kv_services, fields(issued, tenant))
    assert response.status == 401
    assert response.json()["error"] == "invalid_client"


def test_disabled_version_in_key_vault_is_a_bad_credential_not_a_server_error(
    kv_services, kv_store, registered
):
    issued, tenant = registered
    kv_store.update_version(
        client_secret_name(issued.client.client_id), issued.version.version, enabled=False
    )
    kv_services.lookups.forget()
    response = request_token(kv_services, fields(issued, tenant))
    assert response.status == 401
    assert response.json()["error"] == "invalid_client"


def test_rbac_denial_is_503_and_an_alert_in_the_log(kv_services, registered, vault, caplog):
    issued, tenant = registered
    kv_services.lookups.forget()
    vault.inject_status(403, times=10)
    caplog.set_level(logging.WARNING)
    response = request_token(kv_services, fields(issued, tenant))
    assert response.status == 503
    assert "ALERT" in caplog.text
    assert issued.secret not in caplog.text


def test_rotating_through_key_vault_makes_the_new_secret_work_at_once(kv_services, registered):
    issued, tenant = registered
    assert request_token(kv_services, fields(issued, tenant)).status == 200
    rotated = kv_services.clients.rotate_secret(issued.client.client_id, grace_seconds=60)
    assert request_token(kv_services, fields(issued, tenant, rotated.secret)).status == 200
    assert request_token(kv_services, fields(issued, tenant)).status == 200


def test_signing_key_is_read_from_key_vault(kv_services, kv_store):
    versions = kv_store.list_versions(SIGNING_KEY_NAME)
    assert kv_services.signing_keys.current().kid == versions[0].version
