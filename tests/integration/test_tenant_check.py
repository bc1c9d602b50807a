"""``POST manage/tenants/{id}/check`` and the check a tenant PUT runs, against real HTTP providers.

The report tells an operator whether a tenant's provider works (mapping, credential, metadata,
one search), records what the provider declared it can do, and never carries the provider's
URL, a token or a secret.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from shared.http import Headers, Request, Response
from shared.ids import provider_secret_name
from shared.services import Services
from shared.tenants import TenantMapping
from tests.conftest import ADMIN_KEY
from tools.testkit.fake_fhir import closed_port

BASE = "https://bridge.test/api/manage"
STEPS = ["mapping", "auth", "metadata", "search"]
PROVIDER_SECRET = "provider-secret-" + "s" * 24


def manage(
    services: Services,
    route: str,
    method: str,
    tenant_id: str,
    suffix: str = "",
    body: Any = None,
    *,
    key: str | None = ADMIN_KEY,
) -> Response:
    """One management request on a tenant route, with the admin key by default."""
    headers = Headers()
    if key is not None:
        headers.add("x-functions-key", key)
    payload = b"" if body is None else json.dumps(body).encode()
    if payload:
        headers.add("Content-Type", "application/json")
    request = Request(
        method, f"{BASE}/tenants/{tenant_id}{suffix}", headers, payload, {"tenant_id": tenant_id}
    )
    return services.management.handle(route, request)


def check(services: Services, tenant_id: str, **kwargs: Any) -> Response:
    return manage(services, "tenant_check", "POST", tenant_id, "/check", **kwargs)


def read_tenant(services: Services, tenant_id: str) -> dict[str, Any]:
    response = manage(services, "tenant", "GET", tenant_id)
    assert response.status == 200, response.text
    return dict(response.json())


def mapped(services: Services, provider_url: str, version: str = "r4", **fields: Any) -> str:
    mapping = TenantMapping(
        tenant_id=str(uuid.uuid4()),
        provider_base_url=provider_url,
        provider_fhir_version=version,
        **fields,
    )
    services.tenants.put(mapping)
    return mapping.tenant_id


def steps_of(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["step"]: step for step in report["steps"]}


def client_credentials_fields(server: Any) -> dict[str, Any]:
    return {
        "provider_auth_kind": "client_credentials",
        "provider_token_url": server.token_url,
        "provider_client_id": "bridge",
    }


@pytest.fixture
def provider(fhir_server: Any) -> Any:
    return fhir_server(version="r4")


# -- a provider that works ------------------------------------------------------------------


def test_reachable_provider_reports_ok_with_every_step_passing(proxy_services, provider):
    tenant_id = mapped(proxy_services, provider.base_url)
    response = check(proxy_services, tenant_id)
    assert response.status == 200
    report = response.json()
    assert report["tenant_id"] == tenant_id
    assert report["ok"] is True
    assert [step["step"] for step in report["steps"]] == STEPS
    assert all(step["ok"] for step in report["steps"])
    assert steps_of(report)["search"]["status"] == 200
    assert steps_of(report)["auth"]["sends_credentials"] is False


def test_auth_metadata_and_search_steps_carry_ms_timings(proxy_services, provider):
    report = check(proxy_services, mapped(proxy_services, provider.base_url)).json()
    for name in ("auth", "metadata", "search"):
        ms = steps_of(report)[name]["ms"]
        assert isinstance(ms, int | float) and ms >= 0, name


def test_every_step_including_mapping_carries_ms(proxy_services, provider):
    report = check(proxy_services, mapped(proxy_services, provider.base_url)).json()
    assert all("ms" in step for step in report["steps"])


def test_metadata_step_reports_the_providers_fhir_version(proxy_services, provider):
    report = check(proxy_services, mapped(proxy_services, provider.base_url)).json()
    metadata = steps_of(report)["metadata"]
    assert (metadata["fhir_version"], metadata["resource_type"]) == (
        "4.0.1",
        "CapabilityStatement",
    )


def test_dstu2_provider_reports_its_conformance_and_batch_from_transaction_mode(
    proxy_services, fhir_server
):
    server = fhir_server(version="dstu2")
    report = check(proxy_services, mapped(proxy_services, server.base_url, "dstu2")).json()
    assert report["ok"] is True
    metadata = steps_of(report)["metadata"]
    assert (metadata["fhir_version"], metadata["resource_type"]) == ("1.0.2", "Conformance")
    assert report["detected_capabilities"]["batch"] is True
    assert server.last().header("Accept") == "application/json+fhir"


def test_detected_capabilities_are_recorded_on_the_mapping(proxy_services, provider):
    tenant_id = mapped(proxy_services, provider.base_url)
    assert read_tenant(proxy_services, tenant_id)["capabilities_checked_at"] is None
    report = check(proxy_services, tenant_id).json()
    assert report["detected_capabilities"] == {"batch": True, "sort_by_date": True}
    stored = read_tenant(proxy_services, tenant_id)
    assert stored["detected_capabilities"] == {"batch": True, "sort_by_date": True}
    assert stored["capabilities_checked_at"]


def test_provider_declaring_no_batch_is_recorded_and_used(proxy_services, fhir_server):
    server = fhir_server(version="r4", capabilities={"batch": False})
    tenant_id = mapped(proxy_services, server.base_url)
    report = check(proxy_services, tenant_id).json()
    assert report["detected_capabilities"]["batch"] is False
    assert report["capabilities"]["batch"] is False
    assert read_tenant(proxy_services, tenant_id)["detected_capabilities"]["batch"] is False


def test_capability_overrides_in_the_mapping_win_over_detected(proxy_services, provider, client):
    tenant_id = str(uuid.uuid4())
    body = {
        "provider_base_url": provider.base_url,
        "provider_fhir_version": "r4",
        "allowed_client_ids": [client.client.client_id],
        "capabilities": {"batch": False, "post_search": False},
    }
    assert manage(proxy_services, "tenant", "PUT", tenant_id, body=body).status == 201
    report = check(proxy_services, tenant_id).json()
    assert report["detected_capabilities"]["batch"] is True
    assert report["capabilities"] == {"batch": False, "sort_by_date": True, "post_search": False}
    stored = read_tenant(proxy_services, tenant_id)
    assert stored["capabilities"] == {"batch": False, "post_search": False}
    assert stored["detected_capabilities"]["batch"] is True


# -- providers that do not work -------------------------------------------------------------


def test_provider_reporting_another_version_than_mapped_is_not_ok(proxy_services, fhir_server):
    stu3 = fhir_server(version="stu3")
    tenant_id = mapped(proxy_services, stu3.base_url, "r4")
    report = check(proxy_services, tenant_id).json()
    assert report["ok"] is False
    metadata = steps_of(report)["metadata"]
    assert metadata["ok"] is False
    assert metadata["fhir_version"] == "3.0.2"
    assert "another FHIR version" in metadata["error"]
    assert "search" not in steps_of(report)
    assert report["detected_capabilities"] is None
    assert read_tenant(proxy_services, tenant_id)["capabilities_checked_at"] is None


def test_unreachable_provider_is_not_ok_and_names_no_address(proxy_services):
    port = closed_port()
    tenant_id = mapped(proxy_services, f"http://127.0.0.1:{port}/fhir")
    response = check(proxy_services, tenant_id)
    assert response.status == 200
    report = response.json()
    assert report["ok"] is False
    metadata = steps_of(report)["metadata"]
    assert metadata["ok"] is False and metadata["error"]
    assert "127.0.0.1" not in response.text
    assert str(port) not in response.text


def test_missing_provider_secret_fails_the_auth_step_naming_the_key_vault_secret(
    proxy_services, fhir_server
):
    server = fhir_server(version="r4", require_bearer=True)
    server.issue_tokens("bridge", PROVIDER_SECRET)
    tenant_id = mapped(proxy_services, server.base_url, **client_credentials_fields(server))
    response = check(proxy_services, tenant_id)
    assert response.status == 200
    report = response.json()
    assert report["ok"] is False
    assert [step["step"] for step in report["steps"]] == ["mapping", "auth"]
    auth = steps_of(report)["auth"]
    assert auth["ok"] is False
    # The operator learns which Key Vault secret to set; no value, URL or token is shown.
    assert provider_secret_name(tenant_id) in auth["error"]
    for leak in (PROVIDER_SECRET, server.token_url, "127.0.0.1"):
        assert leak not in response.text, leak
    assert server.token_requests() == 0  # nothing to present, so nothing was sent


def test_report_never_carries_the_provider_url_a_token_or_a_secret(
    proxy_services, fhir_server, secret_store
):
    server = fhir_server(version="r4", require_bearer=True)
    server.issue_tokens("bridge", PROVIDER_SECRET)
    tenant_id = mapped(proxy_services, server.base_url, **client_credentials_fields(server))
    secret_store.set_secret(provider_secret_name(tenant_id), PROVIDER_SECRET)
    response = check(proxy_services, tenant_id)
    report = response.json()
    assert report["ok"] is True, response.text
    assert steps_of(report)["auth"]["sends_credentials"] is True
    assert server.issued_tokens  # a provider token was obtained and used
    text = response.text
    leaks = [server.base_url, server.origin, server.token_url, "127.0.0.1", PROVIDER_SECRET]
    leaks += [*server.issued_tokens, "Bearer", "access_token"]
    for leak in leaks:
        assert leak not in text, leak


# -- through the management API -------------------------------------------------------------


def test_tenant_put_runs_the_check_and_returns_it(proxy_services, provider, client):
    tenant_id = str(uuid.uuid4())
    body = {
        "provider_base_url": provider.base_url,
        "provider_fhir_version": "r4",
        "allowed_client_ids": [client.client.client_id],
    }
    response = manage(proxy_services, "tenant", "PUT", tenant_id, body=body)
    assert response.status == 201
    document = response.json()
    assert document["check"]["ok"] is True
    assert [step["step"] for step in document["check"]["steps"]] == STEPS
    assert document["detected_capabilities"] == {"batch": True, "sort_by_date": True}
    assert document["capabilities_checked_at"]
    assert provider.count(path="metadata") == 1


def test_tenant_put_of_an_unreachable_provider_still_maps_it(proxy_services, client):
    tenant_id = str(uuid.uuid4())
    body = {
        "provider_base_url": f"http://127.0.0.1:{closed_port()}/fhir",
        "provider_fhir_version": "r4",
        "allowed_client_ids": [client.client.client_id],
    }
    response = manage(proxy_services, "tenant", "PUT", tenant_id, body=body)
    assert response.status == 201
    assert response.json()["check"]["ok"] is False
    assert read_tenant(proxy_services, tenant_id)["provider_fhir_version"] == "r4"


def test_check_of_an_unknown_tenant_is_404(proxy_services):
    response = check(proxy_services, str(uuid.uuid4()))
    assert response.status == 404
    assert response.json()["error"] == "not_found"


def test_check_without_the_admin_key_is_401_and_nothing_is_called(proxy_services, provider):
    tenant_id = mapped(proxy_services, provider.base_url)
    response = check(proxy_services, tenant_id, key=None)
    assert response.status == 401
    assert response.json()["error"] == "unauthorized"
    assert provider.count() == 0
