"""A hung Table Storage or Key Vault (it accepts connections and never answers) costs a few
timed-out calls; then every request that needs it answers 503 with Retry-After at once, until
one probe is let through (docs/security.md rows 79-80).

Timeouts are cut to fractions of a second so each hung call is short; what is asserted is who
reached the hung store, never how long anything took.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from shared.auth.signing_keys import ensure_signing_key
from shared.health import health_response
from shared.http import Headers, Request, Response
from shared.keyvault_store import vault_breaker
from shared.services import Services
from shared.settings import Settings
from tests.conftest import ADMIN_KEY, request_token
from tests.support.fake_keyvault import FakeKeyVault, keyvault_store, running_fake_keyvault
from tools.testkit.loopback import HungServer

# Azurite's published development account key: the hung endpoint never checks it.
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def hung_table_service(port: int) -> Any:
    from azure.data.tables import TableServiceClient

    connection = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={DEV_KEY};TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )
    return TableServiceClient.from_connection_string(
        connection, retry_total=0, connection_timeout=0.5, read_timeout=0.2
    )


@pytest.fixture
def hung() -> Iterator[HungServer]:
    with HungServer() as server:
        yield server


def services_over(settings: Settings, secret_store: Any, table_service: Any, **fields) -> Services:
    circuit = {"store_circuit_failure_threshold": 2, "store_circuit_open_seconds": 60}
    tuned = dataclasses.replace(settings, **{**circuit, **fields})
    services = Services(tuned, secret_store=secret_store, table_service=table_service)
    ensure_signing_key(secret_store, tuned.token_algorithm)
    return services


def token_request(services: Services) -> Response:
    fields = {
        "grant_type": "client_credentials",
        "scope": str(uuid.uuid4()),
        "client_id": str(uuid.uuid4()),
        "client_secret": "s",
    }
    return request_token(services, fields)


def list_clients(services: Services) -> Response:
    request = Request(
        "GET", "https://bridge.test/api/manage/clients", Headers({"x-functions-key": ADMIN_KEY})
    )
    return services.management.handle("clients", request)


def assert_fast_503(response: Response) -> None:
    assert response.status == 503
    assert int(response.headers.get("Retry-After") or 0) >= 1


def test_a_hung_table_service_is_answered_at_once_after_a_few_timeouts(
    settings, secret_store, hung
):
    services = services_over(settings, secret_store, hung_table_service(hung.port))
    assert token_request(services).status == 503  # the client listing times out: 1
    assert list_clients(services).status == 503  # another table call times out: 2, open
    assert hung.accepted == 2
    time.sleep(1.1)  # past the 1 s a failed cache fill is shared: the breaker alone answers
    for response in (token_request(services), list_clients(services), health_response(services)):
        assert_fast_503(response)
    assert hung.accepted == 2


def test_after_the_cool_down_one_probe_reaches_the_hung_table_service(settings, secret_store, hung):
    services = services_over(
        settings, secret_store, hung_table_service(hung.port), store_circuit_open_seconds=1
    )
    list_clients(services)
    list_clients(services)
    assert hung.accepted == 2
    time.sleep(1.1)
    barrier = threading.Barrier(6)
    statuses: list[int] = []

    def call() -> None:
        barrier.wait()
        statuses.append(list_clients(services).status)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [503] * 6
    assert hung.accepted == 3  # the probe; the five others were answered without a call


def test_an_expired_entry_is_not_served_while_the_table_service_is_down(
    make_services, client, tenant, monkeypatch
):
    """Fail closed: no stale entry outlives the TTL, so revocation keeps its documented delay."""
    from shared.tables import StoreUnavailable

    services = make_services(cache_ttl_seconds=1)
    fields = {
        "grant_type": "client_credentials",
        "scope": tenant.tenant_id,
        "client_id": client.client.client_id,
        "client_secret": client.secret,
    }
    assert request_token(services, fields).status == 200

    def down() -> Any:
        raise StoreUnavailable("table storage unreachable (ServiceRequestError)")

    monkeypatch.setattr(services.clients, "list_all", down)
    time.sleep(1.1)
    assert request_token(services, fields).status == 503


# -- Key Vault ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vault() -> Iterator[FakeKeyVault]:
    with running_fake_keyvault() as kv:
        yield kv


def test_a_hung_key_vault_is_answered_at_once_after_a_few_timeouts(settings, table_service, vault):
    vault.clear_faults()
    tuned = dataclasses.replace(
        settings, store_circuit_failure_threshold=2, store_circuit_open_seconds=60
    )
    with keyvault_store(
        vault, timeout_seconds=0.3, max_retries=0, breaker=vault_breaker(tuned)
    ) as store:
        services = Services(tuned, secret_store=store, table_service=table_service)
        ensure_signing_key(store, tuned.token_algorithm)
        issued = [services.clients.register(f"app {n}") for n in range(3)]
        vault.reset_requests()
        vault.inject_delay(2, times=50)  # hung: longer than any attempt waits
        statuses = []
        for one in issued:
            fields = {
                "grant_type": "client_credentials",
                "scope": str(uuid.uuid4()),
                "client_id": one.client.client_id,
                "client_secret": one.secret,
            }
            statuses.append(request_token(services, fields))
        assert [r.status for r in statuses] == [503, 503, 503]
        assert vault.count() == 2  # the third client's secrets were never asked for
        assert_fast_503(statuses[-1])
        assert_fast_503(health_response(services))
        assert vault.count() == 2
    vault.clear_faults()
