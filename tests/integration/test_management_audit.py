"""Management changes name who made them and what changed (table H)."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from typing import Any

import pytest

from shared.audit import fingerprint
from tests.conftest import PROVIDER_URL
from tests.integration.test_manage_api import call, put_tenant, register, tenant_body
from tests.integration.test_ops_cli import ops

NEW_URL = "https://fhir.hospital-b.example/r4"


def events(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.message) for r in caplog.records if r.name == "ehrbridge.audit"]


@pytest.fixture
def audit_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="ehrbridge.audit")
    return caplog


def test_row_110_a_replaced_tenant_records_the_actor_and_every_changed_field(services, audit_log):
    tenant_id = str(uuid.uuid4())
    put_tenant(services, tenant_id, tenant_body())
    audit_log.clear()
    body = {
        **tenant_body(),
        "provider_base_url": NEW_URL,
        "allow_writes": True,
        "provider_auth_kind": "client_credentials",
        "provider_token_url": "https://fhir.hospital-b.example/token",
        "provider_client_id": "ehr-bridge",
        "provider_scope": "system/*.read",
    }
    assert put_tenant(services, tenant_id, body).status == 200
    (replaced,) = [e for e in events(audit_log) if e["event"] == "tenant.replaced"]
    assert replaced["actor"] == {"kind": "admin_key", "name": "local admin key"}
    changes = replaced["changes"]
    assert changes["allow_writes"] == {"old": False, "new": True}
    assert changes["provider_auth_kind"] == {"old": "none", "new": "client_credentials"}
    assert changes["provider_client_id"] == {"old": "", "new": "ehr-bridge"}
    assert changes["provider_base_url"] == {
        "old": fingerprint(PROVIDER_URL),
        "new": fingerprint(NEW_URL),
    }
    assert changes["provider_token_url"]["new"] == fingerprint(
        "https://fhir.hospital-b.example/token"
    )
    assert changes["provider_scope"] == {"old": None, "new": fingerprint("system/*.read")}
    assert "display_name" not in changes  # unchanged fields are not listed


def test_row_110_provider_urls_appear_in_the_audit_only_as_fingerprints(services, audit_log):
    tenant_id = str(uuid.uuid4())
    put_tenant(services, tenant_id, tenant_body())
    put_tenant(services, tenant_id, {**tenant_body(), "provider_base_url": NEW_URL})
    call(services, "tenant", "DELETE", f"/tenants/{tenant_id}", params={"tenant_id": tenant_id})
    assert PROVIDER_URL not in audit_log.text and NEW_URL not in audit_log.text
    # A fingerprint is checkable by anyone who has the URL: printf %s URL | sha256sum
    digest = hashlib.sha256(NEW_URL.encode()).hexdigest()[:16]
    assert f"sha256:{digest}" in audit_log.text


def test_row_110_client_changes_name_the_actor_and_old_and_new_values(services, audit_log):
    client = register(services, "Before")
    client_id = client["client_id"]
    call(
        services,
        "client",
        "PUT",
        f"/clients/{client_id}",
        {"display_name": "After", "enabled": False},
        params={"client_id": client_id},
    )
    found = {e["event"]: e for e in events(audit_log)}
    assert found["client.registered"]["actor"]["kind"] == "admin_key"
    updated = found["client.updated"]
    assert updated["actor"]["kind"] == "admin_key"
    assert updated["changes"] == {
        "display_name": {"old": "Before", "new": "After"},
        "enabled": {"old": True, "new": False},
    }


def test_row_110_ops_cli_changes_name_the_operator(services, audit_log, client):
    run = ops(services, "clients", "rotate", client.client.client_id)
    assert run.code == 0
    (rotated,) = [e for e in events(audit_log) if e["event"] == "client.secret_rotated"]
    assert rotated["actor"]["kind"] == "ops_cli"
    assert rotated["actor"]["name"]


def test_row_110_a_deleted_tenant_records_what_it_was(services, audit_log):
    tenant_id = str(uuid.uuid4())
    put_tenant(services, tenant_id, tenant_body())
    call(services, "tenant", "DELETE", f"/tenants/{tenant_id}", params={"tenant_id": tenant_id})
    (deleted,) = [e for e in events(audit_log) if e["event"] == "tenant.deleted"]
    assert deleted["actor"]["kind"] == "admin_key"
    assert deleted["changes"]["provider_fhir_version"] == {"old": "r4", "new": None}
