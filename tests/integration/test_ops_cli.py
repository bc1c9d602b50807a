"""The ops CLI (tools/ops.py) against Azurite and the local secret store."""

from __future__ import annotations

import dataclasses
import io
import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.auth.clients import IssuedSecret
from shared.ids import (
    ASSERTION_KEY_NAME,
    SIGNING_KEY_NAME,
    client_secret_name,
    provider_secret_name,
)
from shared.secret_store import LocalSecretStore, SecretStoreUnavailable, utcnow
from shared.services import Services
from shared.settings import SETTINGS
from shared.tables import CLIENTS_TABLE
from shared.tenants import TenantMapping
from tests.conftest import PROVIDER_URL, request_token
from tools.ops import main


@dataclasses.dataclass
class Run:
    """One CLI run: exit code, stdout and stderr."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def ops(services: Services, *argv: str, stdin: str | None = None) -> Run:
    """Run the CLI in-process with injected services and captured output."""
    out, err = io.StringIO(), io.StringIO()
    code = main(
        list(argv),
        services=services,
        stdin=io.StringIO(stdin) if stdin is not None else None,
        stdout=out,
        stderr=err,
    )
    return Run(code, out.getvalue(), err.getvalue())


def token_status(services: Services, client_id: str, secret: str, tenant_id: str) -> int:
    """HTTP status of a client-credentials token request."""
    fields = {
        "grant_type": "client_credentials",
        "scope": tenant_id,
        "client_id": client_id,
        "client_secret": secret,
    }
    return request_token(services, fields).status


def assert_one_line_error(run: Run, code: int) -> str:
    assert run.code == code
    assert run.out == ""
    assert run.err.startswith("error: ")
    assert run.err.count("\n") == 1
    assert "Traceback" not in run.err
    return run.err


def put_tenant_args(tenant_id: str, *extra: str) -> list[str]:
    return [
        "tenants",
        "put",
        tenant_id,
        "--provider-url",
        PROVIDER_URL,
        "--fhir-version",
        "r4",
        *extra,
    ]


# Clients


def test_register_prints_a_secret_that_gets_a_token(
    services: Services, make_tenant: Callable[..., TenantMapping]
) -> None:
    run = ops(services, "clients", "register", "--name", "Teams Patients app")
    assert run.code == 0
    document = run.json()
    assert document["display_name"] == "Teams Patients app"
    assert document["secret_version"]
    tenant = make_tenant(document["client_id"])
    status = token_status(
        services, document["client_id"], document["client_secret"], tenant.tenant_id
    )
    assert status == 200


def test_register_with_a_blank_name_is_exit_2(services: Services) -> None:
    err = assert_one_line_error(ops(services, "clients", "register", "--name", " "), 2)
    assert "display_name" in err


def test_list_shows_registered_clients_without_secrets(
    services: Services, client: IssuedSecret
) -> None:
    run = ops(services, "clients", "list")
    assert run.code == 0
    assert [c["client_id"] for c in run.json()["clients"]] == [client.client.client_id]
    assert client.secret not in run.out


def test_show_prints_one_client(services: Services, client: IssuedSecret) -> None:
    run = ops(services, "clients", "show", client.client.client_id.upper())
    assert run.code == 0
    assert run.json()["client_id"] == client.client.client_id
    assert client.secret not in run.out


def test_show_unknown_client_is_exit_3(services: Services) -> None:
    assert_one_line_error(ops(services, "clients", "show", str(uuid.uuid4())), 3)


def test_non_guid_client_id_is_exit_2(services: Services) -> None:
    err = assert_one_line_error(ops(services, "clients", "show", "admin"), 2)
    assert "CLIENT_ID" in err


def test_disabled_client_gets_no_token(
    services: Services, client: IssuedSecret, tenant: TenantMapping
) -> None:
    client_id = client.client.client_id
    assert token_status(services, client_id, client.secret, tenant.tenant_id) == 200
    run = ops(services, "clients", "disable", client_id)
    assert run.code == 0
    assert run.json()["enabled"] is False
    assert token_status(services, client_id, client.secret, tenant.tenant_id) == 401


def test_enable_lets_a_disabled_client_get_tokens_again(
    services: Services, client: IssuedSecret, tenant: TenantMapping
) -> None:
    client_id = client.client.client_id
    assert ops(services, "clients", "disable", client_id).code == 0
    run = ops(services, "clients", "enable", client_id)
    assert run.code == 0
    assert run.json()["enabled"] is True
    assert token_status(services, client_id, client.secret, tenant.tenant_id) == 200


def test_rotate_with_grace_keeps_the_old_secret_working(
    services: Services, client: IssuedSecret, tenant: TenantMapping
) -> None:
    client_id = client.client.client_id
    run = ops(services, "clients", "rotate", client_id, "--grace-seconds", "3600")
    assert run.code == 0
    new_secret = run.json()["client_secret"]
    assert new_secret != client.secret
    assert run.json()["grace_seconds"] == 3600
    assert token_status(services, client_id, client.secret, tenant.tenant_id) == 200
    assert token_status(services, client_id, new_secret, tenant.tenant_id) == 200


def test_rotate_without_grace_stops_the_old_secret(
    services: Services, client: IssuedSecret, tenant: TenantMapping
) -> None:
    client_id = client.client.client_id
    # Authenticate first so the old secret sits in the token endpoint's cache.
    assert token_status(services, client_id, client.secret, tenant.tenant_id) == 200
    run = ops(services, "clients", "rotate", client_id)
    assert run.code == 0
    assert token_status(services, client_id, client.secret, tenant.tenant_id) == 401
    assert token_status(services, client_id, run.json()["client_secret"], tenant.tenant_id) == 200


def test_rotate_with_negative_grace_is_exit_2(services: Services, client: IssuedSecret) -> None:
    run = ops(services, "clients", "rotate", client.client.client_id, "--grace-seconds", "-1")
    assert_one_line_error(run, 2)


def test_versions_show_states_but_never_values(
    services: Services, client: IssuedSecret, secret_store: LocalSecretStore
) -> None:
    rotated = ops(services, "clients", "rotate", client.client.client_id).json()
    run = ops(services, "clients", "versions", client.client.client_id)
    assert run.code == 0
    versions = run.json()["versions"]
    assert [(v["version"], v["state"]) for v in versions] == [
        (rotated["secret_version"], "active"),
        (client.version.version, "disabled"),
    ]
    assert client.secret not in run.out
    assert rotated["client_secret"] not in run.out
    assert all("value" not in v for v in versions)


def test_disable_version_stops_that_secret(
    services: Services, client: IssuedSecret, tenant: TenantMapping
) -> None:
    client_id = client.client.client_id
    assert token_status(services, client_id, client.secret, tenant.tenant_id) == 200
    run = ops(services, "clients", "disable-version", client_id, client.version.version)
    assert run.code == 0
    assert run.json()["state"] == "disabled"
    assert client.secret not in run.out
    assert token_status(services, client_id, client.secret, tenant.tenant_id) == 401


def test_disable_unknown_version_is_exit_3(services: Services, client: IssuedSecret) -> None:
    run = ops(services, "clients", "disable-version", client.client.client_id, "ab" * 16)
    assert_one_line_error(run, 3)


# Tenants


def test_tenants_put_with_flags_creates_the_mapping(
    services: Services, client: IssuedSecret
) -> None:
    tenant_id = str(uuid.uuid4())
    args = put_tenant_args(
        tenant_id, "--allow-client", client.client.client_id, "--display-name", "Hospital A"
    )
    run = ops(services, *args)
    assert run.code == 0
    assert run.json()["created"] is True
    stored = services.tenants.get(tenant_id)
    assert stored.provider_base_url == PROVIDER_URL
    assert stored.allowed_client_ids == (client.client.client_id,)
    assert stored.display_name == "Hospital A"
    assert stored.enabled is True


def test_tenants_put_again_replaces_the_mapping(services: Services, tenant: TenantMapping) -> None:
    run = ops(services, *put_tenant_args(tenant.tenant_id, "--disabled"))
    assert run.code == 0
    assert run.json()["created"] is False
    assert services.tenants.get(tenant.tenant_id).enabled is False


def test_tenants_put_from_file_takes_the_management_api_document(
    services: Services, client: IssuedSecret, tmp_path: Path
) -> None:
    tenant_id = str(uuid.uuid4())
    document = {
        "provider_base_url": PROVIDER_URL,
        "provider_fhir_version": "stu3",
        "provider_auth_kind": "client_credentials",
        "provider_token_url": "https://fhir.hospital-a.example/oauth2/token",
        "provider_client_id": "bridge",
        "allowed_client_ids": [client.client.client_id],
    }
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps(document))
    run = ops(services, "tenants", "put", tenant_id, "--file", str(path))
    assert run.code == 0
    assert run.json()["tenant"]["provider_auth_kind"] == "client_credentials"
    assert services.tenants.get(tenant_id).provider_fhir_version == "stu3"


def test_tenants_put_with_an_http_url_is_exit_2_naming_the_field(services: Services) -> None:
    args = ["tenants", "put", str(uuid.uuid4()), "--provider-url", "http://fhir.example/r4"]
    err = assert_one_line_error(ops(services, *args, "--fhir-version", "r4"), 2)
    assert "provider_base_url" in err
    assert "--provider-url" in err


def test_tenants_put_with_an_unknown_allowed_client_is_exit_2(services: Services) -> None:
    unknown = str(uuid.uuid4())
    args = put_tenant_args(str(uuid.uuid4()), "--allow-client", unknown)
    err = assert_one_line_error(ops(services, *args), 2)
    assert "allowed_client_ids" in err
    assert unknown in err


def test_tenants_put_without_provider_url_is_exit_2(services: Services) -> None:
    run = ops(services, "tenants", "put", str(uuid.uuid4()), "--fhir-version", "r4")
    assert "--provider-url" in assert_one_line_error(run, 2)


def test_tenants_put_with_file_and_flags_together_is_exit_2(
    services: Services, tmp_path: Path
) -> None:
    path = tmp_path / "mapping.json"
    path.write_text("{}")
    run = ops(services, "tenants", "put", str(uuid.uuid4()), "--file", str(path), "--disabled")
    assert_one_line_error(run, 2)


def test_tenants_put_create_only_on_a_mapped_tenant_is_exit_4(
    services: Services, tenant: TenantMapping
) -> None:
    run = ops(services, *put_tenant_args(tenant.tenant_id, "--create-only"))
    assert_one_line_error(run, 4)


def test_tenants_show_prints_the_mapping(services: Services, tenant: TenantMapping) -> None:
    run = ops(services, "tenants", "show", tenant.tenant_id)
    assert run.code == 0
    assert run.json() == tenant.to_json()


def test_tenants_list_prints_every_mapping(
    services: Services, make_tenant: Callable[..., TenantMapping]
) -> None:
    first, second = make_tenant(), make_tenant()
    run = ops(services, "tenants", "list")
    assert run.code == 0
    listed = {t["tenant_id"] for t in run.json()["tenants"]}
    assert listed == {first.tenant_id, second.tenant_id}


def test_tenants_delete_removes_the_mapping(services: Services, tenant: TenantMapping) -> None:
    run = ops(services, "tenants", "delete", tenant.tenant_id)
    assert run.code == 0
    assert run.json() == {"deleted": tenant.tenant_id}
    assert_one_line_error(ops(services, "tenants", "show", tenant.tenant_id), 3)


def test_tenants_delete_of_an_unknown_tenant_is_exit_3(services: Services) -> None:
    assert_one_line_error(ops(services, "tenants", "delete", str(uuid.uuid4())), 3)


def test_set_provider_secret_stores_stdin_and_does_not_print_it(
    services: Services,
    make_tenant: Callable[..., TenantMapping],
    secret_store: LocalSecretStore,
) -> None:
    tenant = make_tenant(provider_auth_kind="bearer")
    credential = "provider-credential-" + uuid.uuid4().hex
    run = ops(services, "tenants", "set-provider-secret", tenant.tenant_id, stdin=credential + "\n")
    assert run.code == 0
    assert credential not in run.out
    assert run.json()["secret_name"] == provider_secret_name(tenant.tenant_id)
    stored = secret_store.get_secret(provider_secret_name(tenant.tenant_id))
    assert stored.value == credential
    assert stored.properties.version == run.json()["secret_version"]


def test_set_provider_secret_with_empty_stdin_is_exit_2(
    services: Services, make_tenant: Callable[..., TenantMapping]
) -> None:
    tenant = make_tenant(provider_auth_kind="bearer")
    run = ops(services, "tenants", "set-provider-secret", tenant.tenant_id, stdin="\n")
    assert_one_line_error(run, 2)


def test_set_provider_secret_for_a_tenant_without_credential_auth_is_exit_2(
    services: Services, tenant: TenantMapping, secret_store: LocalSecretStore
) -> None:
    run = ops(services, "tenants", "set-provider-secret", tenant.tenant_id, stdin="x")
    assert "provider_auth_kind" in assert_one_line_error(run, 2)
    assert secret_store.list_versions(provider_secret_name(tenant.tenant_id)) == []


# Signing keys


def test_signing_key_rotate_publishes_a_new_kid_and_expires_the_previous_key(
    services: Services, secret_store: LocalSecretStore
) -> None:
    previous = services.signing_keys.current().kid
    before = utcnow()
    run = ops(
        services,
        "signing-key",
        "rotate",
        "--activate-in-seconds",
        "0",
        "--retire-previous-after-seconds",
        "300",
    )
    assert run.code == 0
    kid = run.json()["kid"]
    services.signing_keys.refresh()
    assert kid in {key["kid"] for key in services.signing_keys.jwks()["keys"]}
    assert services.signing_keys.current().kid == kid
    old = next(v for v in secret_store.list_versions(SIGNING_KEY_NAME) if v.version == previous)
    assert old.expires_on is not None
    assert before + timedelta(seconds=299) <= old.expires_on <= utcnow() + timedelta(seconds=300)


def test_signing_key_rotate_defaults_publish_first_and_retire_after_token_lifetime(
    services: Services, secret_store: LocalSecretStore
) -> None:
    settings = services.settings
    previous = services.signing_keys.current().kid
    before = utcnow()
    run = ops(services, "signing-key", "rotate")
    assert run.code == 0
    kid = run.json()["kid"]
    services.signing_keys.refresh()
    # Published at once, signing only after every cache has seen it.
    assert kid in {key["kid"] for key in services.signing_keys.jwks()["keys"]}
    assert services.signing_keys.current().kid == previous
    activate = settings.cache_ttl_seconds + 60
    retire = settings.token_lifetime_seconds + 2 * settings.cache_ttl_seconds + 60
    new = next(v for v in secret_store.list_versions(SIGNING_KEY_NAME) if v.version == kid)
    old = next(v for v in secret_store.list_versions(SIGNING_KEY_NAME) if v.version == previous)
    assert new.not_before is not None
    assert abs(new.not_before - (before + timedelta(seconds=activate))) < timedelta(seconds=5)
    assert old.expires_on is not None
    expected = before + timedelta(seconds=activate + retire)
    assert abs(old.expires_on - expected) < timedelta(seconds=5)


def test_assertion_key_rotate_creates_a_separate_rs384_key_that_signs_at_once_when_asked(
    services: Services, secret_store: LocalSecretStore
) -> None:
    run = ops(services, "assertion-key", "rotate", "--activate-in-seconds", "0")
    assert run.code == 0
    kid = run.json()["kid"]
    assert run.json()["alg"] == "RS384"
    assert services.assertion_keys.current().kid == kid
    assert [v.version for v in secret_store.list_versions(ASSERTION_KEY_NAME)] == [kid]
    assert kid not in {v.version for v in secret_store.list_versions(SIGNING_KEY_NAME)}


def test_assertion_key_rotate_defaults_publish_first_and_retire_after_the_assertion_lifetime(
    services: Services, secret_store: LocalSecretStore
) -> None:
    settings = services.settings
    first = ops(services, "assertion-key", "rotate", "--activate-in-seconds", "0").json()["kid"]
    before = utcnow()
    kid = ops(services, "assertion-key", "rotate").json()["kid"]
    services.assertion_keys.refresh()
    assert kid in {key["kid"] for key in services.assertion_keys.jwks()["keys"]}
    assert services.assertion_keys.current().kid == first
    activate = settings.cache_ttl_seconds + 60
    retire = settings.cache_ttl_seconds + 120 + 60
    old = next(v for v in secret_store.list_versions(ASSERTION_KEY_NAME) if v.version == first)
    assert old.expires_on is not None
    assert abs(old.expires_on - (before + timedelta(seconds=activate + retire))) < timedelta(
        seconds=5
    )


def test_assertion_key_list_shows_versions_and_state_but_no_pem(services: Services) -> None:
    kid = ops(services, "assertion-key", "rotate", "--activate-in-seconds", "0").json()["kid"]
    run = ops(services, "assertion-key", "list")
    assert run.code == 0
    assert run.json()["signing_kid"] == kid
    assert "PRIVATE KEY" not in run.out


def test_a_private_key_jwt_tenant_has_no_provider_secret_to_set(
    services: Services, client: IssuedSecret, secret_store: LocalSecretStore
) -> None:
    tenant_id = str(uuid.uuid4())
    put = ops(
        services,
        *put_tenant_args(
            tenant_id,
            "--auth-kind",
            "private_key_jwt",
            "--token-url",
            "https://fhir.hospital-a.example/oauth2/token",
            "--provider-client-id",
            "ehr-bridge",
        ),
    )
    assert put.code == 0, put.err
    assert put.json()["tenant"]["provider_auth_kind"] == "private_key_jwt"
    run = ops(services, "tenants", "set-provider-secret", tenant_id, stdin="x")
    assert "provider_auth_kind" in assert_one_line_error(run, 2)
    assert secret_store.list_versions(provider_secret_name(tenant_id)) == []


def test_tenants_put_takes_the_entra_app_ids_of_the_tenant(services: Services) -> None:
    tenant_id, app_id = str(uuid.uuid4()), str(uuid.uuid4())
    run = ops(services, *put_tenant_args(tenant_id, "--entra-app-id", app_id.upper()))
    assert run.code == 0, run.err
    assert run.json()["tenant"]["entra_app_ids"] == [app_id]


def test_a_malformed_entra_app_id_names_the_flag(services: Services) -> None:
    run = ops(services, *put_tenant_args(str(uuid.uuid4()), "--entra-app-id", "my-app"))
    assert "(--entra-app-id)" in assert_one_line_error(run, 2)


def test_signing_key_list_shows_versions_and_state_but_no_pem(services: Services) -> None:
    current = services.signing_keys.current().kid
    run = ops(services, "signing-key", "list")
    assert run.code == 0
    document = run.json()
    assert document["signing_kid"] == current
    assert [(k["kid"], k["alg"], k["state"]) for k in document["keys"]] == [
        (current, "RS256", "active")
    ]
    assert "PRIVATE KEY" not in run.out
    assert "BEGIN" not in run.out


# Tables


def test_tables_init_creates_missing_tables(services: Services, table_service: Any) -> None:
    table_service.delete_table(CLIENTS_TABLE)
    run = ops(services, "tables", "init")
    assert run.code == 0
    assert CLIENTS_TABLE in {t.name for t in table_service.list_tables()}


# Failures


def test_unreachable_table_storage_is_exit_5_without_a_traceback(
    settings: Any, secret_store: LocalSecretStore
) -> None:
    from azure.data.tables import TableServiceClient

    from tools.azurite import connection_string, free_port

    dead = TableServiceClient.from_connection_string(
        connection_string(free_port()), retry_total=0, connection_timeout=1
    )
    services = Services(settings, secret_store=secret_store, table_service=dead)
    err = assert_one_line_error(ops(services, "clients", "list"), 5)
    assert "table storage" in err


class UnavailableStore:
    """A secret store that is down."""

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise SecretStoreUnavailable("down", retry_after=7)

        return fail


def test_unavailable_secret_store_is_exit_5_without_a_traceback(
    settings: Any, table_service: Any
) -> None:
    services = Services(settings, secret_store=UnavailableStore(), table_service=table_service)
    err = assert_one_line_error(ops(services, "clients", "register", "--name", "App"), 5)
    assert "secret store" in err


def test_unknown_command_is_exit_2_with_one_line(services: Services) -> None:
    assert_one_line_error(ops(services, "clients", "explode"), 2)


def test_help_goes_to_stdout_with_exit_0(services: Services) -> None:
    run = ops(services, "signing-key", "rotate", "--help")
    assert run.code == 0
    assert "--retire-previous-after-seconds" in run.out


# Settings file


def test_encrypted_settings_file_is_refused_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"IsEncrypted": True, "Values": {"A": "x"}}))
    err = io.StringIO()
    assert main(["--settings", str(path), "clients", "list"], stderr=err) == 2
    assert "encrypted" in err.getvalue()


def test_missing_settings_file_is_exit_2(tmp_path: Path) -> None:
    err = io.StringIO()
    assert main(["--settings", str(tmp_path / "nope.json"), "clients", "list"], stderr=err) == 2


def test_local_settings_json_in_the_working_directory_configures_the_cli(
    azurite: str, table_service: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for setting in SETTINGS:
        monkeypatch.delenv(setting.name, raising=False)
    values = {
        "EHRB_SECRET_STORE": "local",
        "EHRB_LOCAL_SECRETS_PATH": "state/secrets.json",
        "EHRB_TABLES_CONNECTION_STRING": azurite,
    }
    for name in values:
        # setenv first so that monkeypatch removes what the CLI adds to os.environ.
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    (tmp_path / "local.settings.json").write_text(json.dumps({"Values": values}))
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    assert main(["clients", "register", "--name", "From settings"], stdout=out) == 0
    client_id = json.loads(out.getvalue())["client_id"]
    store = LocalSecretStore(tmp_path / "state" / "secrets.json")
    assert len(store.list_versions(client_secret_name(client_id))) == 1


def test_tenants_check_reports_an_unreachable_provider_without_its_url(
    services: Services,
) -> None:
    tenant_id = str(uuid.uuid4())
    provider = "https://fhir.unreachable.example/r4"
    assert (
        main(
            ["tenants", "put", tenant_id, "--provider-url", provider, "--fhir-version", "r4"],
            services=services,
            stdout=io.StringIO(),
        )
        == 0
    )
    out = io.StringIO()
    assert main(["tenants", "check", tenant_id], services=services, stdout=out) == 0
    report = json.loads(out.getvalue())
    assert report["ok"] is False
    assert [step["step"] for step in report["steps"]][:2] == ["mapping", "auth"]
    assert provider not in out.getvalue()


# -- scopes (docs/security.md table N) ----------------------------------------------------------


def test_clients_scopes_sets_the_allowed_and_default_scopes(services, client):
    run = ops(
        services,
        "clients",
        "scopes",
        client.client.client_id,
        "--allowed",
        "system/*.read system/Patient.write",
        "--default",
        "system/Patient.read",
    )
    assert run.code == 0, run.err
    shown = json.loads(run.out)
    assert shown["allowed_scopes"] == ["system/*.rs", "system/Patient.cud"]
    assert shown["default_scopes"] == ["system/Patient.rs"]


def test_clients_scopes_refuses_a_patient_scope_and_changes_nothing(services, client):
    run = ops(services, "clients", "scopes", client.client.client_id, "--allowed", "patient/*.read")
    assert run.code != 0
    assert "only system/ scopes" in run.err
    assert services.clients.get(client.client.client_id).allowed_scopes == ("system/*.rs",)


def test_clients_scopes_flags_a_resource_server(services, client):
    run = ops(services, "clients", "scopes", client.client.client_id, "--resource-server")
    assert json.loads(run.out)["resource_server"] is True


def test_tokens_revoke_revokes_a_leaked_token_read_from_stdin(services, client, tenant):
    from tests.conftest import bearer_token
    from tools.testkit.inbound import fhir_request

    token = bearer_token(services, client, tenant.tenant_id)
    run = ops(services, "tokens", "revoke", stdin=token + "\n")
    assert run.code == 0, run.err
    assert run.json()["revoked"] is True
    assert run.json()["client_id"] == client.client.client_id
    assert token not in run.out
    refused = services.proxy.handle(fhir_request("GET", "Patient/example", token), "r4")
    assert refused.status == 401


def test_tokens_revoke_refuses_what_is_not_our_token(services):
    run = ops(services, "tokens", "revoke", stdin="eyJhbGciOiJub25lIn0.e30.\n")
    assert run.code == 2
    assert "not an access token of this app" in run.err
