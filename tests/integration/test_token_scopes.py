"""The token endpoint's scopes: the tenant GUID routes, SMART system scopes say what the token
may do, the registration caps them (docs/security.md table N)."""

from __future__ import annotations

import json
from typing import Any

import jwt

from shared.http import Headers, Request
from shared.tables import CLIENTS_TABLE, AzureEntityTable
from tests.conftest import ADMIN_KEY, request_token


def ask(services: Any, client: Any, scope: str) -> Any:
    return request_token(
        services,
        {
            "grant_type": "client_credentials",
            "scope": scope,
            "client_id": client.client.client_id,
            "client_secret": client.secret,
        },
    )


def claims_of(response: Any) -> dict[str, Any]:
    assert response.status == 200, response.text
    return jwt.decode(response.json()["access_token"], options={"verify_signature": False})


def allow(services: Any, client: Any, allowed: str, default: str | None = None) -> None:
    services.clients.update(
        client.client.client_id, allowed_scopes=allowed, default_scopes=default or allowed
    )
    services.lookups.forget()


def test_a_tenant_only_request_gets_the_registered_default_in_the_token(services, client, tenant):
    claims = claims_of(ask(services, client, tenant.tenant_id))
    assert claims["scope"] == f"{tenant.tenant_id} system/*.rs"


def test_a_tenant_only_request_gets_its_tenant_back_as_the_scope_as_before(
    services, client, tenant
):
    response = ask(services, client, tenant.tenant_id)
    assert response.json()["scope"] == tenant.tenant_id


def test_requested_smart_scopes_are_granted_and_named_in_the_response(services, client, tenant):
    response = ask(services, client, f"{tenant.tenant_id} system/Patient.read")
    assert response.json()["scope"] == f"{tenant.tenant_id} system/Patient.rs"
    assert claims_of(response)["scope"] == f"{tenant.tenant_id} system/Patient.rs"


def test_the_tenant_may_come_after_the_smart_scopes(services, client, tenant):
    response = ask(services, client, f"system/Observation.rs {tenant.tenant_id}")
    assert claims_of(response)["tid"] == tenant.tenant_id


def test_a_request_beyond_the_registration_is_cut_down_to_it(services, client, tenant):
    allow(services, client, "system/Patient.rs system/Observation.r")
    response = ask(services, client, f"{tenant.tenant_id} system/*.cruds")
    granted = f"{tenant.tenant_id} system/Observation.r system/Patient.rs"
    assert response.json()["scope"] == granted


def test_a_request_wholly_outside_the_registration_is_invalid_scope(services, client, tenant):
    allow(services, client, "system/Patient.rs")
    response = ask(services, client, f"{tenant.tenant_id} system/Observation.read")
    assert response.status == 400
    assert response.json()["error"] == "invalid_scope"


def test_a_write_scope_is_not_granted_to_a_client_registered_for_reads(services, client, tenant):
    response = ask(services, client, f"{tenant.tenant_id} system/Patient.write")
    assert response.json()["error"] == "invalid_scope"


def test_a_patient_scope_is_invalid_scope(services, client, tenant):
    response = ask(services, client, f"{tenant.tenant_id} patient/Patient.read")
    assert response.status == 400
    assert response.json() == {
        "error": "invalid_scope",
        "error_description": "only system/ scopes are granted to client-credentials tokens",
    }


def test_smart_scopes_without_a_tenant_are_invalid_scope(services, client):
    assert ask(services, client, "system/Patient.read").json()["error"] == "invalid_scope"


def test_two_tenants_in_one_request_are_invalid_scope(services, client, tenant, make_tenant):
    other = make_tenant(client.client.client_id)
    response = ask(services, client, f"{tenant.tenant_id} {other.tenant_id}")
    assert response.json()["error"] == "invalid_scope"


def test_a_bad_smart_scope_is_answered_alike_whether_the_tenant_is_allowed_or_not(
    services, client, tenant
):
    ours = ask(services, client, f"{tenant.tenant_id} user/*.read").json()
    unknown = ask(services, client, "8b0c1a4e-0000-4000-8000-000000000001 user/*.read").json()
    assert ours == unknown


def test_the_registered_default_is_what_a_tenant_only_request_gets(services, client, tenant):
    allow(services, client, "system/*.rs", "system/Patient.rs")
    claims = claims_of(ask(services, client, tenant.tenant_id))
    assert claims["scope"] == f"{tenant.tenant_id} system/Patient.rs"


def test_a_client_row_stored_before_scopes_existed_gets_the_default(services, client, tenant):
    table = AzureEntityTable(services.table_service.get_table_client(CLIENTS_TABLE))
    row = table.get("client", client.client.client_id)
    for name in ("allowed_scopes", "default_scopes", "resource_server"):
        row.properties.pop(name, None)
    table.upsert(type(row)(row.partition_key, row.row_key, row.properties))
    services.lookups.forget()
    assert claims_of(ask(services, client, tenant.tenant_id))["scope"].endswith(" system/*.rs")


# -- registering scopes ----------------------------------------------------------------------------


def patch_client(services: Any, client_id: str, body: dict[str, Any]) -> Any:
    request = Request(
        "PUT",
        f"https://bridge.test/api/manage/clients/{client_id}",
        Headers({"x-functions-key": ADMIN_KEY, "Content-Type": "application/json"}),
        json.dumps(body).encode(),
        {"client_id": client_id},
    )
    return services.management.handle("client", request)


def test_the_management_api_sets_a_clients_allowed_and_default_scopes(services, client):
    response = patch_client(
        services,
        client.client.client_id,
        {
            "allowed_scopes": ["system/*.read", "system/Patient.write"],
            "default_scopes": "system/Patient.rs",
        },
    )
    assert response.status == 200, response.text
    assert response.json()["allowed_scopes"] == ["system/*.rs", "system/Patient.cud"]
    assert response.json()["default_scopes"] == ["system/Patient.rs"]


def test_a_default_outside_the_allowed_scopes_is_refused(services, client):
    response = patch_client(
        services,
        client.client.client_id,
        {"allowed_scopes": "system/Patient.rs", "default_scopes": "system/*.rs"},
    )
    assert response.status == 400
    assert "default_scopes must lie within allowed_scopes" in response.text


def test_an_invalid_registered_scope_is_refused_naming_the_field(services, client):
    response = patch_client(services, client.client.client_id, {"allowed_scopes": "patient/*.read"})
    assert response.status == 400
    assert "allowed_scopes: only system/" in response.text


def test_the_resource_server_flag_must_be_a_boolean(services, client):
    response = patch_client(services, client.client.client_id, {"resource_server": "yes"})
    assert response.status == 400
