"""Provider addresses are checked where connections are made, not only where URLs are typed.

A resolver the test controls stands in for DNS: names under ``.provider.test`` answer with
whatever the test says, so a name can point at a fake provider on 127.0.0.1, at the metadata
address, or change its answer between the mapping's check and a later connection (table H).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from shared.ids import provider_secret_name
from shared.net.addresses import AddressPolicy
from shared.services import Services
from shared.tenants import TenantMapping
from tests.conftest import bearer_token
from tests.integration.test_manage_api import put_tenant
from tools.testkit.fake_fhir import FakeFhirServer
from tools.testkit.inbound import fhir_request

METADATA = "169.254.169.254"


class Resolver:
    """Answers for names under .provider.test; each name's answer can be changed at any time."""

    def __init__(self) -> None:
        self.answers: dict[str, str] = {}
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> list[tuple[int, int, int, tuple[Any, ...]]]:
        self.asked.append(host)
        address = self.answers.get(host)
        if address is None:
            raise socket.gaierror(socket.EAI_NONAME, "unknown name")
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, (address, port))]


@pytest.fixture
def resolver() -> Resolver:
    return Resolver()


@pytest.fixture
def services_with(
    make_services: Callable[..., Services], resolver: Resolver
) -> Iterator[Callable[[bool], Services]]:
    built: list[Services] = []

    def build(allow_local: bool) -> Services:
        services = make_services(
            allow_insecure_provider_urls=allow_local,
            upstream_connect_timeout_seconds=1,
            upstream_read_timeout_seconds=1,
        )
        # Before the transport and provider auth are built: they take the policy from here.
        services.__dict__["address_policy"] = AddressPolicy(allow_local, resolver)
        built.append(services)
        return services

    yield build
    for services in built:
        if "transport" in services.__dict__:
            services.transport.close()
        if "proxy" in services.__dict__:
            services.proxy.close()


def named_url(fhir: FakeFhirServer, name: str) -> str:
    """The fake provider's base URL with ``name`` in place of 127.0.0.1."""
    return fhir.base_url.replace("127.0.0.1", name)


def map_directly(services: Services, client: Any, url: str, **fields: Any) -> TenantMapping:
    # Stored as an older release (or a row edited by hand) would have stored it: no checks.
    mapping = TenantMapping(
        tenant_id=str(uuid.uuid4()),
        provider_base_url=url,
        provider_fhir_version="r4",
        allowed_client_ids=(client.client.client_id,),
        **fields,
    )
    return services.tenants.put(mapping)[0]


def read_patient(services: Services, client: Any, tenant: TenantMapping) -> Any:
    token = bearer_token(services, client, tenant.tenant_id)
    return services.proxy.handle(fhir_request("GET", "Patient/example", token), "r4")


def test_row_100_a_name_resolving_to_a_refused_address_is_502_and_nothing_connects(
    services_with, resolver, client, fhir_server
):
    fhir = fhir_server(version="r4")
    resolver.answers["fhir.provider.test"] = "127.0.0.1"  # the fake provider, but production
    services = services_with(False)
    tenant = map_directly(services, client, named_url(fhir, "fhir.provider.test"))
    response = read_patient(services, client, tenant)
    assert response.status == 502
    issue = response.json()["issue"][0]
    assert "not one EHR Bridge connects to" in issue["diagnostics"]
    assert "127.0.0.1" not in response.text and "provider.test" not in response.text
    assert fhir.connections() == 0


def test_row_100_a_mapping_whose_name_resolves_to_metadata_is_400_and_not_stored(
    services_with, resolver, client, fhir_server
):
    fhir = fhir_server(version="r4")
    resolver.answers["fhir.provider.test"] = METADATA
    services = services_with(True)
    tenant_id = str(uuid.uuid4())
    body = {
        "provider_base_url": named_url(fhir, "fhir.provider.test"),
        "provider_fhir_version": "r4",
        "allowed_client_ids": [client.client.client_id],
    }
    response = put_tenant(services, tenant_id, body)
    assert response.status == 400
    assert response.json()["field"] == "provider_base_url"
    assert services.tenants.list_all() == []
    assert fhir.connections() == 0


def test_row_100_a_token_url_resolving_to_a_refused_address_is_400(
    services_with, resolver, client, fhir_server
):
    fhir = fhir_server(version="r4")
    resolver.answers["auth.provider.test"] = METADATA
    services = services_with(True)
    tenant_id = str(uuid.uuid4())
    body = {
        "provider_base_url": fhir.base_url,
        "provider_fhir_version": "r4",
        "provider_auth_kind": "client_credentials",
        "provider_token_url": fhir.token_url.replace("127.0.0.1", "auth.provider.test"),
        "provider_client_id": "ehr-bridge",
    }
    response = put_tenant(services, tenant_id, body)
    assert response.status == 400
    assert response.json()["field"] == "provider_token_url"


def test_row_100_an_answer_that_changes_after_the_check_is_refused_at_connect(
    services_with, resolver, client, fhir_server
):
    fhir = fhir_server(version="r4")
    resolver.answers["fhir.provider.test"] = "127.0.0.1"
    services = services_with(True)
    tenant_id = str(uuid.uuid4())
    body = {
        "provider_base_url": named_url(fhir, "fhir.provider.test"),
        "provider_fhir_version": "r4",
        "allowed_client_ids": [client.client.client_id],
    }
    created = put_tenant(services, tenant_id, body)
    assert created.status == 201, created.text
    assert created.json()["check"]["ok"] is True
    services.transport.close()  # the pooled connection goes: the next call connects anew
    fhir.reset()
    resolver.answers["fhir.provider.test"] = METADATA  # rebinding after the check
    response = read_patient(services, client, services.tenants.get(tenant_id))
    assert response.status == 502
    assert fhir.count() == 0


def test_row_100_a_dropped_pooled_connection_reconnects_through_the_check(
    services_with, resolver, client, fhir_server
):
    fhir = fhir_server(version="r4")
    resolver.answers["fhir.provider.test"] = "127.0.0.1"
    services = services_with(True)
    tenant = map_directly(services, client, named_url(fhir, "fhir.provider.test"))
    assert read_patient(services, client, tenant).status == 200
    resolver.answers["fhir.provider.test"] = "::ffff:127.0.0.1"  # a mapped form: never
    fhir.drop(times=1)  # drops the kept-alive connection mid-request: the retry reconnects
    connections_before = fhir.connections()
    response = read_patient(services, client, tenant)
    assert response.status == 502
    assert fhir.connections() == connections_before


def test_row_100_a_provider_token_endpoint_at_a_refused_address_gets_no_request(
    services_with, resolver, client, fhir_server, secret_store
):
    fhir = fhir_server(version="r4", require_bearer=True)
    fhir.issue_tokens("ehr-bridge", "provider-secret")
    services = services_with(False)
    tenant = map_directly(
        services,
        client,
        "https://20.50.2.1/fhir",
        provider_auth_kind="client_credentials",
        provider_token_url=fhir.token_url,  # 127.0.0.1: loopback, refused in production
        provider_client_id="ehr-bridge",
    )
    secret_store.set_secret(provider_secret_name(tenant.tenant_id), "provider-secret")
    response = read_patient(services, client, tenant)
    assert response.status == 502
    assert fhir.token_requests() == 0
    assert fhir.connections() == 0
