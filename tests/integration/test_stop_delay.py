"""Two instances on one Azurite: a revoked token, a deleted secret version, a disabled client or a
removed signing key stops working on the *other* instance within ``EHRB_CACHE_TTL_SECONDS``, the
documented delay (docs/security.md table N).

Each instance is a ``Services`` with its own caches; they share Table Storage, the secret store
and one fake clock, so the delay is counted in clock seconds (never waited for): the clock moves
one second at a time until the other instance refuses, and that count is the measured delay.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from shared.auth.signing_keys import SIGNING_KEY_NAME, ensure_signing_key, rotate_signing_key
from shared.services import Services
from shared.settings import Settings
from shared.tenants import TenantMapping
from tests.conftest import bearer_token
from tests.integration.test_proxy import send
from tools.testkit.inbound import form_request

TTL = 20


class Clock:
    """A wall clock that moves only when told (from the real time, so tokens are current)."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def two(
    settings: Settings, secret_store: Any, table_service: Any, clock: Clock
) -> Iterator[list[Services]]:
    configured = dataclasses.replace(
        settings, allow_insecure_provider_urls=True, cache_ttl_seconds=TTL
    )
    ensure_signing_key(secret_store, configured.token_algorithm)
    pair = [
        Services(configured, secret_store=secret_store, table_service=table_service, clock=clock)
        for _ in range(2)
    ]
    yield pair
    for services in pair:
        if "proxy" in services.__dict__:
            services.proxy.close()
        if "transport" in services.__dict__:
            services.transport.close()


@pytest.fixture
def setup(two: list[Services], fhir_server: Callable[..., Any]) -> tuple[Any, str]:
    """A client, a tenant on a fake provider, and a token the second instance has accepted."""
    first, second = two
    provider = fhir_server(version="r4")
    client = first.clients.register("Teams Patients app")
    tenant = first.tenants.put(
        TenantMapping(
            tenant_id=str(uuid.uuid4()),
            provider_base_url=provider.base_url,
            provider_fhir_version="r4",
            allowed_client_ids=(client.client.client_id,),
        )
    )[0]
    token = bearer_token(first, client, tenant.tenant_id)
    assert send(second, "GET", "Patient/example", token).status == 200
    return client, token


def seconds_until_refused(services: Services, token: str, clock: Clock) -> int:
    """Clock seconds until ``services`` refuses ``token`` (at most twice the TTL)."""
    for waited in range(2 * TTL + 1):
        if send(services, "GET", "Patient/example", token).status == 401:
            print(f"refused after {waited} s (EHRB_CACHE_TTL_SECONDS={TTL})")
            return waited
        clock.now += 1
    raise AssertionError("still accepted after twice the cache TTL")


def test_a_token_revoked_on_one_instance_stops_on_the_other_within_the_cache_ttl(two, setup, clock):
    first, second = two
    client, token = setup
    fields = {"token": token, "client_id": client.client.client_id, "client_secret": client.secret}
    revoked = first.revocation.handle(
        form_request(fields, url="https://bridge.test/api/oauth2/revoke")
    )
    assert revoked.status == 200
    assert seconds_until_refused(second, token, clock) <= TTL


def test_a_secret_version_disabled_on_one_instance_stops_its_tokens_on_the_other(two, setup, clock):
    first, second = two
    client, token = setup
    first.clients.rotate_secret(client.client.client_id, 0)  # the old version is disabled
    assert seconds_until_refused(second, token, clock) <= TTL


def test_a_client_disabled_on_one_instance_stops_its_tokens_on_the_other(two, setup, clock):
    first, second = two
    client, token = setup
    first.clients.update(client.client.client_id, enabled=False)
    assert seconds_until_refused(second, token, clock) <= TTL


def test_a_signing_key_removed_stops_its_tokens_on_the_other_instance(
    two, setup, clock, secret_store
):
    first, second = two
    _client, token = setup
    old = first.signing_keys.current()
    rotate_signing_key(secret_store, first.settings.token_algorithm)
    secret_store.update_version(SIGNING_KEY_NAME, old.kid, enabled=False)
    assert seconds_until_refused(second, token, clock) <= TTL
