"""Management API (docs/security.md table E) against Azurite and the local store."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import pytest

from shared.auth.client_secrets import hash_secret
from shared.hosting import detect
from shared.http import Headers, Request, Response
from shared.ids import client_secret_name
from shared.operators import ADMIN_KEY_SECRET, OPERATOR_ROLE, PRINCIPAL_HEADER, READER_ROLE
from shared.secret_store import SecretStoreUnavailable
from shared.services import Services
from tests.conftest import ADMIN_KEY, PROVIDER_URL, request_token
from tests.support.app import registered_functions
from tests.support.console import entra_hosting, principal_header

BASE = "https://bridge.test/api/manage"


def call(
    services: Services,
    route: str,
    method: str,
    path: str = "",
    body: Any = None,
    *,
    key: str | None = ADMIN_KEY,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> Response:
    """One management request, authenticated with the local admin key by default."""
    all_headers = Headers(headers or {})
    if key is not None:
        all_headers.add("x-functions-key", key)
    payload = raw if raw is not None else b"" if body is None else json.dumps(body).encode()
    if payload and "Content-Type" not in all_headers:
        all_headers.add("Content-Type", "application/json")
    request = Request(method, f"{BASE}{path}", all_headers, payload, params or {})
    return services.management.handle(route, request)


def register(services: Services, name: str = "Teams Patients app") -> dict:
    response = call(services, "clients", "POST", "/clients", {"display_name": name})
    assert response.status == 201, response.text
    return response.json()


def token_status(services: Services, client_id: str, secret: str, tenant_id: str) -> int:
    fields = {
        "grant_type": "client_credentials",
        "scope": tenant_id,
        "client_id": client_id,
        "client_secret": secret,
    }
    return request_token(services, fields).status


def put_tenant(services: Services, tenant_id: str, body: dict, **kwargs: Any) -> Response:
    return call(
        services,
        "tenant",
        "PUT",
        f"/tenants/{tenant_id}",
        body,
        params={"tenant_id": tenant_id},
        **kwargs,
    )


def tenant_body(*clients: str, **extra: Any) -> dict:
    return {
        "provider_base_url": PROVIDER_URL,
        "provider_fhir_version": "r4",
        "allowed_client_ids": list(clients),
        "display_name": "Hospital A",
        **extra,
    }


# 63: never anonymous, client tokens are not admin credentials


def test_management_without_a_key_is_401(services):
    response = call(services, "clients", "GET", "/clients", key=None)
    assert response.status == 401
    assert response.json()["error"] == "unauthorized"


def test_management_with_a_wrong_key_is_401(services):
    assert call(services, "clients", "GET", "/clients", key="wrong").status == 401


def test_management_with_a_client_access_token_is_401(services, client, tenant):
    fields = {
        "grant_type": "client_credentials",
        "scope": tenant.tenant_id,
        "client_id": client.client.client_id,
        "client_secret": client.secret,
    }
    token = request_token(services, fields).json()["access_token"]
    response = call(
        services,
        "clients",
        "GET",
        "/clients",
        key=None,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status == 401


def test_management_key_in_code_query_parameter_is_accepted(services):
    request = Request("GET", f"{BASE}/clients?code={ADMIN_KEY}", Headers(), b"", {})
    assert services.management.handle("clients", request).status == 200


def test_management_refuses_everything_when_no_local_key_is_configured(make_services):
    services = make_services(local_admin_key="")
    assert call(services, "clients", "GET", "/clients").status == 401


FLEX = {"WEBSITE_SKU": "FlexConsumption", "CONTAINER_NAME": "c", "LEGION_SERVICE_HOST": "1"}


def test_in_azure_the_admin_key_is_key_vaults_manage_admin_key(make_services, secret_store):
    # Routes are anonymous at the host, which never tells the worker which key a caller sent:
    # in Azure the app compares x-functions-key with the hash kept in Key Vault.
    secret_store.set_secret(ADMIN_KEY_SECRET, hash_secret("vault-admin-key-" + "v" * 32))
    services = make_services(local_admin_key="", hosting=detect(FLEX))
    assert call(services, "clients", "GET", "/clients", key=None).status == 401
    assert (
        call(services, "clients", "GET", "/clients", key="vault-admin-key-" + "v" * 32).status
        == 200
    )


def test_in_azure_the_local_admin_key_setting_is_not_accepted(make_services):
    services = make_services(hosting=detect(FLEX))
    assert call(services, "clients", "GET", "/clients").status == 401


def test_a_lone_platform_marker_does_not_lift_the_local_key_check(make_services):
    services = make_services(local_admin_key="", hosting=detect({"WEBSITE_SKU": "FlexConsumption"}))
    assert call(services, "clients", "GET", "/clients", key=None).status == 401


def test_every_management_route_is_anonymous_at_the_host_and_checked_by_the_app():
    import azure.functions as func

    manage = {n: f for n, f in registered_functions().items() if n.startswith("manage_")}
    assert len(manage) == 9
    for function in manage.values():
        trigger = function.get_trigger()
        assert trigger.auth_level == func.AuthLevel.ANONYMOUS
        assert trigger.route.startswith("manage/")


def entra(make_services: Any) -> Services:
    return make_services(local_admin_key="", entra_auth=True, hosting=entra_hosting())


def test_an_entra_operator_may_change_and_is_named_in_the_audit(make_services, caplog):
    caplog.set_level(logging.INFO, logger="ehrbridge.audit")
    services = entra(make_services)
    headers = {PRINCIPAL_HEADER: principal_header(OPERATOR_ROLE)}
    response = call(
        services, "clients", "POST", "/clients", {"display_name": "App"}, key=None, headers=headers
    )
    assert response.status == 201
    event = next(json.loads(r.message) for r in caplog.records if "client.registered" in r.message)
    assert event["actor"]["kind"] == "entra"


def test_an_entra_reader_may_read_but_not_change(make_services):
    services = entra(make_services)
    headers = {PRINCIPAL_HEADER: principal_header(READER_ROLE)}
    assert call(services, "clients", "GET", "/clients", key=None, headers=headers).status == 200
    refused = call(
        services, "clients", "POST", "/clients", {"display_name": "App"}, key=None, headers=headers
    )
    assert refused.status == 403
    assert refused.json()["error"] == "forbidden"
    assert services.clients.list_all() == []


def test_an_unreadable_principal_is_401(make_services):
    services = entra(make_services)
    headers = {PRINCIPAL_HEADER: "not base64 json"}
    assert call(services, "clients", "GET", "/clients", key=None, headers=headers).status == 401


def test_a_principal_header_sent_to_a_local_app_is_ignored(services):
    headers = {PRINCIPAL_HEADER: principal_header(OPERATOR_ROLE)}
    assert call(services, "clients", "GET", "/clients", key=None, headers=headers).status == 401


# 64, 65: registration


def test_register_shows_a_256_bit_secret_once_with_no_store(services):
    response = call(services, "clients", "POST", "/clients", {"display_name": "App"})
    assert response.status == 201
    assert response.headers.get("Cache-Control") == "no-store"
    body = response.json()
    uuid.UUID(body["client_id"])
    assert len(body["client_secret"]) >= 43  # 32 random bytes, base64url
    assert body["enabled"] is True
    shown = call(
        services,
        "client",
        "GET",
        f"/clients/{body['client_id']}",
        params={"client_id": body["client_id"]},
    )
    assert body["client_secret"] not in shown.text
    versions = call(
        services,
        "client_secrets",
        "GET",
        f"/clients/{body['client_id']}/secrets",
        params={"client_id": body["client_id"]},
    )
    assert body["client_secret"] not in versions.text
    assert [v["state"] for v in versions.json()["versions"]] == ["active"]


def test_registered_secrets_are_distinct(services):
    assert register(services)["client_secret"] != register(services)["client_secret"]


def test_registered_secret_never_reaches_logs(services, caplog):
    caplog.set_level(logging.DEBUG)
    body = register(services)
    assert body["client_secret"] not in caplog.text
    assert any("client.registered" in r.message for r in caplog.records)


def test_no_secret_is_written_to_the_clients_table(services, table_service):
    body = register(services)
    entity = table_service.get_table_client("clients").get_entity("client", body["client_id"])
    assert body["client_secret"] not in json.dumps(dict(entity), default=str)


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"display_name": "App", "client_id": str(uuid.uuid4())}, "client_id"),
        ({"display_name": "App", "client_id": "admin"}, "client_id"),
        ({"display_name": "App", "scope": "x"}, "scope"),
        ({}, "display_name"),
    ],
)
def test_register_rejects_client_chosen_ids_and_unknown_fields(services, document, field):
    response = call(services, "clients", "POST", "/clients", document)
    assert response.status == 400
    assert response.json()["field"] == field


@pytest.mark.parametrize("name", ["", "   ", "x" * 1024, "line\nbreak", 42])
def test_register_rejects_bad_display_names(services, name):
    response = call(services, "clients", "POST", "/clients", {"display_name": name})
    assert response.status == 400
    assert "display_name" in response.json()["message"]


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"[1, 2]",
        b"[" * 20_000 + b"]" * 20_000,
        b'{"display_name": ' + b"9" * 5000 + b"}",
        b"\xff\xfe",
    ],
)
def test_malformed_bodies_are_400_not_500(services, raw):
    response = call(services, "clients", "POST", "/clients", raw=raw)
    assert response.status == 400
    assert response.json()["error"] == "invalid_request"


def test_non_json_content_type_is_415(services):
    response = call(
        services,
        "clients",
        "POST",
        "/clients",
        raw=b"display_name=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status == 415


def test_oversized_body_is_413(services):
    response = call(services, "clients", "POST", "/clients", {"display_name": "x" * 70_000})
    assert response.status == 413


def test_wrong_method_is_405_with_allow(services):
    response = call(services, "clients", "DELETE", "/clients")
    assert response.status == 405
    assert response.headers.get("Allow") == "GET, POST"


# Client reads and updates


def test_unknown_client_is_404(services):
    cid = str(uuid.uuid4())
    response = call(services, "client", "GET", f"/clients/{cid}", params={"client_id": cid})
    assert response.status == 404


@pytest.mark.parametrize(
    "cid", ["admin", "{0f5d2a52-1b3e-4c1f-9b6a-3b8f1a2c4d5e}", "x" * 1024, "ｃｌｉｅｎｔ"]
)
def test_malformed_client_id_in_path_is_400(services, cid):
    response = call(services, "client", "GET", f"/clients/{cid}", params={"client_id": cid})
    assert response.status == 400


def test_list_clients_shows_registered_clients_without_secrets(services):
    first, second = register(services, "Alpha"), register(services, "Beta")
    listing = call(services, "clients", "GET", "/clients")
    ids = [c["client_id"] for c in listing.json()["clients"]]
    assert ids == [first["client_id"], second["client_id"]]
    assert first["client_secret"] not in listing.text


def test_disabling_a_client_stops_its_tokens(services, make_tenant):
    body = register(services)
    tenant = make_tenant(body["client_id"])
    cid = body["client_id"]
    assert token_status(services, cid, body["client_secret"], tenant.tenant_id) == 200
    response = call(services, "client", "DELETE", f"/clients/{cid}", params={"client_id": cid})
    assert response.status == 200
    assert response.json()["enabled"] is False
    assert token_status(services, cid, body["client_secret"], tenant.tenant_id) == 401


def test_update_with_a_stale_etag_is_412(services):
    body = register(services)
    cid = body["client_id"]
    current = call(services, "client", "GET", f"/clients/{cid}", params={"client_id": cid})
    etag = current.headers.get("ETag")
    assert etag
    first = call(
        services,
        "client",
        "PUT",
        f"/clients/{cid}",
        {"display_name": "Renamed"},
        params={"client_id": cid},
        headers={"If-Match": etag},
    )
    assert first.status == 200
    stale = call(
        services,
        "client",
        "PUT",
        f"/clients/{cid}",
        {"enabled": False},
        params={"client_id": cid},
        headers={"If-Match": etag},
    )
    assert stale.status == 412
    again = call(services, "client", "GET", f"/clients/{cid}", params={"client_id": cid})
    assert again.json()["enabled"] is True
    assert again.json()["display_name"] == "Renamed"


def test_update_rejects_non_boolean_enabled(services):
    cid = register(services)["client_id"]
    response = call(
        services,
        "client",
        "PUT",
        f"/clients/{cid}",
        {"enabled": "false"},
        params={"client_id": cid},
    )
    assert response.status == 400
    assert response.json()["field"] == "enabled"


# 66: rotation


def rotate(services: Services, cid: str, body: dict | None = None) -> Response:
    return call(
        services,
        "client_secrets",
        "POST",
        f"/clients/{cid}/secrets",
        body,
        params={"client_id": cid},
    )


def test_rotation_with_grace_keeps_the_old_secret_until_it_expires(services, make_tenant):
    body = register(services)
    cid = body["client_id"]
    tenant = make_tenant(cid)
    rotated = rotate(services, cid, {"grace_period_seconds": 3600})
    assert rotated.status == 201
    assert rotated.headers.get("Cache-Control") == "no-store"
    new_secret = rotated.json()["client_secret"]
    assert token_status(services, cid, new_secret, tenant.tenant_id) == 200
    assert token_status(services, cid, body["client_secret"], tenant.tenant_id) == 200
    versions = call(
        services, "client_secrets", "GET", f"/clients/{cid}/secrets", params={"client_id": cid}
    ).json()["versions"]
    assert [v["state"] for v in versions] == ["active", "active"]
    assert versions[0]["expires_on"] is None
    assert versions[1]["expires_on"] is not None


def test_rotation_without_grace_invalidates_the_old_secret(services, make_tenant):
    body = register(services)
    cid = body["client_id"]
    tenant = make_tenant(cid)
    new_secret = rotate(services, cid).json()["client_secret"]
    assert token_status(services, cid, body["client_secret"], tenant.tenant_id) == 401
    assert token_status(services, cid, new_secret, tenant.tenant_id) == 200


def test_disabling_one_version_stops_it_immediately(services, make_tenant):
    body = register(services)
    cid = body["client_id"]
    tenant = make_tenant(cid)
    assert token_status(services, cid, body["client_secret"], tenant.tenant_id) == 200
    version = body["secret_version"]
    response = call(
        services,
        "client_secret",
        "DELETE",
        f"/clients/{cid}/secrets/{version}",
        params={"client_id": cid, "version": version},
    )
    assert response.status == 200
    assert response.json()["state"] == "disabled"
    assert token_status(services, cid, body["client_secret"], tenant.tenant_id) == 401


def test_one_version_can_be_read_without_its_value(services):
    body = register(services)
    cid, version = body["client_id"], body["secret_version"]
    response = call(
        services,
        "client_secret",
        "GET",
        f"/clients/{cid}/secrets/{version}",
        params={"client_id": cid, "version": version},
    )
    assert response.status == 200
    assert response.json()["version"] == version
    assert body["client_secret"] not in response.text


@pytest.mark.parametrize("grace", [-1, "60", 31 * 24 * 3600, 1.5, True])
def test_rotation_rejects_bad_grace_periods(services, grace):
    cid = register(services)["client_id"]
    response = rotate(services, cid, {"grace_period_seconds": grace})
    assert response.status == 400
    assert "grace_period_seconds" in response.json()["message"]


def test_unknown_secret_version_is_404_and_malformed_is_400(services):
    cid = register(services)["client_id"]
    for version, status in (("0" * 32, 404), ("../x", 400)):
        response = call(
            services,
            "client_secret",
            "DELETE",
            f"/clients/{cid}/secrets/{version}",
            params={"client_id": cid, "version": version},
        )
        assert response.status == status


# Tenants


def test_tenant_mapping_lifecycle_with_etags(services):
    cid = register(services)["client_id"]
    tenant_id = str(uuid.uuid4())
    created = put_tenant(services, tenant_id, tenant_body(cid))
    assert created.status == 201
    assert created.json()["allowed_client_ids"] == [cid]
    etag = created.headers.get("ETag")
    replaced = put_tenant(
        services, tenant_id, tenant_body(cid, enabled=False), headers={"If-Match": etag}
    )
    assert replaced.status == 200
    assert replaced.json()["enabled"] is False
    stale = put_tenant(services, tenant_id, tenant_body(cid), headers={"If-Match": etag})
    assert stale.status == 412
    listing = call(services, "tenants", "GET", "/tenants").json()["tenants"]
    assert [t["tenant_id"] for t in listing] == [tenant_id]
    deleted = call(
        services, "tenant", "DELETE", f"/tenants/{tenant_id}", params={"tenant_id": tenant_id}
    )
    assert deleted.status == 204
    gone = call(services, "tenant", "GET", f"/tenants/{tenant_id}", params={"tenant_id": tenant_id})
    assert gone.status == 404


def test_create_only_put_on_an_existing_tenant_is_409(services):
    tenant_id = str(uuid.uuid4())
    assert put_tenant(services, tenant_id, tenant_body()).status == 201
    again = put_tenant(services, tenant_id, tenant_body(), headers={"If-None-Match": "*"})
    assert again.status == 409


def test_tenant_with_an_unknown_client_is_400_naming_the_field(services):
    tenant_id = str(uuid.uuid4())
    response = put_tenant(services, tenant_id, tenant_body(str(uuid.uuid4())))
    assert response.status == 400
    assert response.json()["field"] == "allowed_client_ids"
    gone = call(services, "tenant", "GET", f"/tenants/{tenant_id}", params={"tenant_id": tenant_id})
    assert gone.status == 404


def test_http_provider_url_needs_the_development_setting(make_services):
    strict = make_services()
    tenant_id = str(uuid.uuid4())
    body = tenant_body(provider_base_url="http://127.0.0.1:8080/fhir")
    response = put_tenant(strict, tenant_id, body)
    assert response.status == 400
    assert response.json()["field"] == "provider_base_url"
    relaxed = make_services(allow_insecure_provider_urls=True)
    assert put_tenant(relaxed, tenant_id, body).status == 201


@pytest.mark.parametrize("tenant_id", ["not-a-guid", "0f5d2a521b3e4c1f9b6a3b8f1a2c4d5e"])
def test_malformed_tenant_id_in_path_is_400(services, tenant_id):
    assert put_tenant(services, tenant_id, tenant_body()).status == 400


def test_tenant_changes_are_audited_without_the_provider_url(services, caplog):
    caplog.set_level(logging.INFO, logger="ehrbridge.audit")
    put_tenant(services, str(uuid.uuid4()), tenant_body())
    events = [json.loads(r.message) for r in caplog.records if r.name == "ehrbridge.audit"]
    assert [e["event"] for e in events] == ["tenant.created"]
    assert PROVIDER_URL not in caplog.text


def test_remapping_a_tenant_to_another_client_takes_effect_for_tokens(services):
    first, second = register(services, "First"), register(services, "Second")
    tenant_id = str(uuid.uuid4())
    put_tenant(services, tenant_id, tenant_body(first["client_id"]))
    assert token_status(services, first["client_id"], first["client_secret"], tenant_id) == 200
    put_tenant(services, tenant_id, tenant_body(second["client_id"]))
    assert token_status(services, first["client_id"], first["client_secret"], tenant_id) == 400
    assert token_status(services, second["client_id"], second["client_secret"], tenant_id) == 200


# Nothing half-written


class FlakyStore:
    """Wraps a secret store; the named operation fails on the given call numbers (1-based)."""

    def __init__(self, inner: Any, operation: str, failing_calls: range | set[int]) -> None:
        self._inner = inner
        self._operation = operation
        self._failing = failing_calls
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)
        if name != self._operation:
            return target

        def maybe_fail(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls in self._failing:
                raise SecretStoreUnavailable("injected", retry_after=3)
            return target(*args, **kwargs)

        return maybe_fail


def test_register_with_key_vault_down_is_503_and_writes_nothing(
    settings, secret_store, table_service
):
    services = Services(
        settings,
        secret_store=FlakyStore(secret_store, "set_secret", range(1, 99)),
        table_service=table_service,
    )
    response = call(services, "clients", "POST", "/clients", {"display_name": "App"})
    assert response.status == 503
    assert response.headers.get("Retry-After") == "3"
    assert list(table_service.get_table_client("clients").list_entities()) == []


def test_register_with_table_storage_down_leaves_no_usable_secret(settings, secret_store, tmp_path):
    from azure.data.tables import TableServiceClient

    from tools.azurite import connection_string, free_port

    dead = TableServiceClient.from_connection_string(
        connection_string(free_port()), retry_total=0, connection_timeout=1
    )
    services = Services(settings, secret_store=secret_store, table_service=dead)
    response = call(services, "clients", "POST", "/clients", {"display_name": "App"})
    assert response.status == 503
    stored = json.loads((tmp_path / "secrets.json").read_text())["secrets"]
    orphans = [
        v for name, versions in stored.items() if name.startswith("client-") for v in versions
    ]
    assert orphans and all(v["enabled"] is False for v in orphans)


def test_rotation_failing_part_way_keeps_the_old_secret_and_disables_the_new(
    settings, secret_store, table_service, make_tenant
):
    healthy = Services(settings, secret_store=secret_store, table_service=table_service)
    body = register(healthy)
    cid = body["client_id"]
    tenant = make_tenant(cid)
    # The new version is written, then retiring the old one fails; the undo then succeeds.
    flaky = FlakyStore(secret_store, "update_version", {1})
    broken = Services(settings, secret_store=flaky, table_service=table_service)
    response = rotate(broken, cid)
    assert response.status == 503
    assert "client_secret" not in response.json()
    assert token_status(healthy, cid, body["client_secret"], tenant.tenant_id) == 200
    newest, original = secret_store.list_versions(client_secret_name(cid))
    assert original.is_usable()
    assert newest.state() == "disabled"
