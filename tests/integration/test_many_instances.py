"""Three instances on one Azurite: the protections hold for the app, not for each instance
(docs/security.md table K).

An instance is a ``Services``: everything a worker process keeps in memory (caches, throttle
counts, rate buckets) is its own, and what it shares goes through Table Storage and the secret
store, as in Azure. The three share one fake clock, so "within the cache TTL" and "per window"
are counted, never waited for.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from shared.auth.signing_keys import ensure_signing_key
from shared.http import Headers, Request, Response
from shared.instances import HEARTBEAT_SECONDS
from shared.services import Services
from shared.settings import Settings
from shared.tables import Entity, StoreUnavailable
from shared.tenants import TenantMapping
from tests.conftest import ADMIN_KEY, request_token
from tests.integration.test_proxy import send
from tests.support.memory_table import MemoryEntityTable

START = 1_800_000_000.0  # a whole number of minutes: the throttle's windows start here
TTL = 60


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def instances(
    settings: Settings, secret_store: Any, table_service: Any, clock: Clock
) -> Callable[..., list[Services]]:
    """``instances(n, **settings)``: n Services on one Azurite and one secret store."""
    built: list[Services] = []

    def build(count: int = 3, **overrides: Any) -> list[Services]:
        configured = dataclasses.replace(
            settings,
            allow_insecure_provider_urls=True,
            cache_ttl_seconds=TTL,
            **overrides,
        )
        ensure_signing_key(secret_store, configured.token_algorithm)
        fresh = [
            Services(
                configured, secret_store=secret_store, table_service=table_service, clock=clock
            )
            for _ in range(count)
        ]
        built.extend(fresh)
        return fresh

    yield build
    for services in built:
        if "proxy" in services.__dict__:
            services.proxy.close()
        if "transport" in services.__dict__:
            services.transport.close()


def grant(client_id: str, secret: str, tenant_id: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "scope": tenant_id,
        "client_id": client_id,
        "client_secret": secret,
    }


def from_source(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": f"{address}:40000"}


def manage(services: Services, route: str, method: str, path: str, **kwargs: Any) -> Response:
    body: bytes = kwargs.pop("body", b"")
    headers = Headers({"x-functions-key": ADMIN_KEY, **kwargs.pop("headers", {})})
    if body:
        headers.add("Content-Type", "application/json")
    request = Request(
        method, f"https://bridge.test/api/manage{path}", headers, body, kwargs.pop("params", {})
    )
    return services.management.handle(route, request)


def map_tenant(services: Services, provider_url: str, *client_ids: str) -> TenantMapping:
    mapping = TenantMapping(
        tenant_id=str(uuid.uuid4()),
        provider_base_url=provider_url,
        provider_fhir_version="r4",
        allowed_client_ids=client_ids,
    )
    return services.tenants.put(mapping)[0]


def token_for(services: Services, client: Any, tenant_id: str) -> str:
    response = request_token(services, grant(client.client.client_id, client.secret, tenant_id))
    assert response.status == 200, response.text
    return str(response.json()["access_token"])


# -- the failure throttle ------------------------------------------------------------------------


def test_a_guesser_is_stopped_after_the_limit_in_total_not_per_instance(instances, client, tenant):
    three = instances(token_failure_limit=5)
    wrong = grant(client.client.client_id, "wrong", tenant.tenant_id)
    guesser = from_source("198.51.100.66")
    statuses = [request_token(three[n % 3], wrong, headers=guesser).status for n in range(12)]
    assert statuses == [401] * 5 + [429] * 7


def test_the_right_secret_is_refused_on_every_instance_during_a_lockout(instances, client, tenant):
    three = instances(token_failure_limit=3)
    wrong = grant(client.client.client_id, "wrong", tenant.tenant_id)
    guesser = from_source("198.51.100.66")
    for _ in range(3):
        assert request_token(three[0], wrong, headers=guesser).status == 401
    right = grant(client.client.client_id, client.secret, tenant.tenant_id)
    assert [request_token(s, right, headers=guesser).status for s in three] == [429] * 3
    # The real client, from its own address, is not locked out anywhere.
    own = from_source("203.0.113.20")
    assert [request_token(s, right, headers=own).status for s in three] == [200] * 3


def test_a_source_spraying_client_ids_is_stopped_at_its_limit_in_total(instances, tenant):
    three = instances(token_failure_limit=2)  # 10 per source across clients
    sprayer = from_source("198.51.100.77")
    statuses = [
        request_token(
            three[n % 3], grant(str(uuid.uuid4()), "x", tenant.tenant_id), headers=sprayer
        ).status
        for n in range(14)
    ]
    assert statuses == [401] * 10 + [429] * 4


def test_concurrent_guesses_on_three_instances_get_exactly_the_limit_of_401s(
    instances, client, tenant
):
    three = instances(token_failure_limit=10, token_client_failure_ceiling=10_000)
    wrong = grant(client.client.client_id, "wrong", tenant.tenant_id)
    guesser = from_source("198.51.100.66")
    barrier = threading.Barrier(45)
    statuses: list[int] = []
    lock = threading.Lock()

    def guess(services: Services) -> None:
        barrier.wait()
        status = request_token(services, wrong, headers=guesser).status
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=guess, args=(three[n % 3],)) for n in range(45)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (statuses.count(401), statuses.count(429)) == (10, 35)


def test_without_the_shared_table_each_instance_still_limits_on_its_own(instances, client, tenant):
    three = instances(token_failure_limit=3)
    for services in three:
        services.__dict__["expiring_table"] = Unreachable()
    wrong = grant(client.client.client_id, "wrong", tenant.tenant_id)
    guesser = from_source("198.51.100.66")
    statuses = [request_token(three[n % 3], wrong, headers=guesser).status for n in range(12)]
    # Three per instance while the table is away: nine in all, then each instance refuses.
    assert statuses == [401] * 9 + [429] * 3


class Unreachable(MemoryEntityTable):
    """A table whose every call fails as an unreachable Table Storage does."""

    def get(self, partition_key: str, row_key: str) -> Entity:
        raise StoreUnavailable("table storage unreachable")

    def create(self, entity: Entity) -> Entity:
        raise StoreUnavailable("table storage unreachable")

    def upsert(self, entity: Entity) -> Entity:
        raise StoreUnavailable("table storage unreachable")

    def query(self, *args: Any, **kwargs: Any) -> list[Entity]:
        raise StoreUnavailable("table storage unreachable")


# -- revocation ----------------------------------------------------------------------------------


def test_a_disabled_secret_version_is_refused_by_every_instance_within_the_cache_ttl(
    instances, client, fhir_server, clock
):
    three = instances()
    tenant = map_tenant(three[0], fhir_server(version="r4").base_url, client.client.client_id)
    token = token_for(three[0], client, tenant.tenant_id)
    assert [send(s, "GET", "Patient/example", token).status for s in three] == [200] * 3
    cid, version = client.client.client_id, client.version.version
    disabled = manage(
        three[0],
        "client_secret",
        "DELETE",
        f"/clients/{cid}/secrets/{version}",
        params={"client_id": cid, "version": version},
    )
    assert disabled.status == 200, disabled.text
    clock.now += TTL
    assert [send(s, "GET", "Patient/example", token).status for s in three] == [401] * 3
    right = grant(cid, client.secret, tenant.tenant_id)
    assert [request_token(s, right).status for s in three] == [401] * 3


def test_a_disabled_client_is_refused_by_every_instance_within_the_cache_ttl(
    instances, client, fhir_server, clock
):
    three = instances()
    tenant = map_tenant(three[0], fhir_server(version="r4").base_url, client.client.client_id)
    token = token_for(three[0], client, tenant.tenant_id)
    assert [send(s, "GET", "Patient/example", token).status for s in three] == [200] * 3
    cid = client.client.client_id
    disabled = manage(three[1], "client", "DELETE", f"/clients/{cid}", params={"client_id": cid})
    assert disabled.status == 200, disabled.text
    clock.now += TTL
    assert [send(s, "GET", "Patient/example", token).status for s in three] == [401] * 3


def test_a_removed_tenant_is_refused_by_every_instance_within_the_cache_ttl(
    instances, client, fhir_server, clock
):
    three = instances()
    tenant = map_tenant(three[0], fhir_server(version="r4").base_url, client.client.client_id)
    token = token_for(three[0], client, tenant.tenant_id)
    assert [send(s, "GET", "Patient/example", token).status for s in three] == [200] * 3
    tid = tenant.tenant_id
    removed = manage(three[2], "tenant", "DELETE", f"/tenants/{tid}", params={"tenant_id": tid})
    assert removed.status == 204
    clock.now += TTL
    assert [send(s, "GET", "Patient/example", token).status for s in three] == [403] * 3


# -- rate limits ---------------------------------------------------------------------------------


def test_a_tenants_rate_limit_holds_across_three_instances_within_its_stated_bound(
    instances, client, fhir_server, clock
):
    rate = 12
    three = instances(tenant_rate_limit_per_second=rate, client_rate_limit_per_second=10_000)
    tenant = map_tenant(three[0], fhir_server(version="r4").base_url, client.client.client_id)
    token = token_for(three[0], client, tenant.tenant_id)
    for services in three:
        services.instance_count()  # each serves, and says so
    clock.now += HEARTBEAT_SECONDS  # ...and has since counted the other two
    assert [s.instance_count() for s in three] == [3, 3, 3]
    seconds, per_second = 5, 60
    admitted = 0
    for step in range(seconds * per_second):
        clock.now += 1 / per_second
        status = send(three[step % 3], "GET", "Patient/example", token).status
        assert status in (200, 429)
        admitted += status == 200
    # The bound of the README: the rate, plus the burst (twice the rate) and one per instance.
    assert rate * seconds <= admitted <= rate * seconds + 2 * rate + 3


# -- concurrent edits ----------------------------------------------------------------------------


def test_concurrent_edits_of_one_mapping_on_three_instances_lose_nothing(
    instances, client, fhir_server
):
    three = instances()
    provider = fhir_server(version="r4").base_url
    tenant = map_tenant(three[0], provider, client.client.client_id)
    tid = tenant.tenant_id
    added = [three[0].clients.register(f"app {n}").client.client_id for n in range(9)]
    barrier = threading.Barrier(3)
    conflicts: list[int] = []

    def add_each(services: Services, client_ids: list[str]) -> None:
        barrier.wait()
        for client_id in client_ids:
            while True:  # read, change, write at the ETag read; again when someone came first
                current = manage(
                    services, "tenant", "GET", f"/tenants/{tid}", params={"tenant_id": tid}
                )
                document = current.json()
                allowed = [*document["allowed_client_ids"], client_id]
                body = {
                    "provider_base_url": provider,
                    "provider_fhir_version": "r4",
                    "allowed_client_ids": allowed,
                }
                written = manage(
                    services,
                    "tenant",
                    "PUT",
                    f"/tenants/{tid}",
                    body=json.dumps(body).encode(),
                    headers={"If-Match": current.headers.get("ETag") or ""},
                    params={"tenant_id": tid},
                )
                if written.status in (409, 412):
                    conflicts.append(written.status)
                    continue
                assert written.status == 200, written.text
                break

    threads = [threading.Thread(target=add_each, args=(three[n], added[n::3])) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = three[1].tenants.get(tid)
    assert sorted(final.allowed_client_ids) == sorted([client.client.client_id, *added])


def test_concurrent_rotations_of_one_client_on_three_instances_lose_no_secret(
    instances, client, fhir_server, clock
):
    three = instances()
    tenant = map_tenant(three[0], fhir_server(version="r4").base_url, client.client.client_id)
    cid = client.client.client_id
    barrier = threading.Barrier(3)
    secrets: list[str] = []
    lock = threading.Lock()

    def rotate(services: Services) -> None:
        barrier.wait()
        while True:
            answer = manage(
                services,
                "client_secrets",
                "POST",
                f"/clients/{cid}/secrets",
                body=b'{"grace_period_seconds": 3600}',
                params={"client_id": cid},
            )
            if answer.status == 409:
                time.sleep(0.01)  # another instance's rotation holds the client: after it
                continue
            assert answer.status == 201, answer.text
            with lock:
                secrets.append(answer.json()["client_secret"])
            return

    threads = [threading.Thread(target=rotate, args=(services,)) for services in three]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(secrets)) == 3
    clock.now += TTL  # every instance reads the versions again
    every_secret = [client.secret, *secrets]
    for services in three:
        for secret in every_secret:
            assert request_token(services, grant(cid, secret, tenant.tenant_id)).status == 200
