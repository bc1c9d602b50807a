"""AuditEvents from audit records: what each kind of record becomes, and what it never carries."""

from __future__ import annotations

import json

from shared.auditevents.build import MAX_PATIENTS, audit_events, tenant_of
from shared.auditevents.local import LocalAuditStore
from shared.auditevents.query import AuditQuery, instant

TIME = "2030-01-01T09:12:00.000001+00:00"
TENANT = "6c3f0d1e-2a5b-4c8d-9e0f-1a2b3c4d5e6f"
CLIENT = "0b6e4a1c-9d2f-4e8a-b7c3-5f1e2d3c4b5a"


def request(**fields):
    return {
        "event": "fhir.request",
        "time": TIME,
        "request_id": "r-1",
        "client_id": CLIENT,
        "tenant_id": TENANT,
        "method": "GET",
        "status": 200,
        **fields,
    }


def test_a_request_naming_more_patients_than_one_event_holds_is_split_without_losing_any():
    patients = [f"p{i}" for i in range(MAX_PATIENTS + 5)]
    events = audit_events(
        request(interaction="search", resource_type="Observation", patient_ids=patients)
    )
    named = [
        entity["what"]["reference"]
        for event in events
        for entity in event["entity"]
        if entity.get("role", {}).get("code") == "1"
    ]
    assert len(events) == 2
    assert named == [f"Patient/{p}" for p in patients]


def test_a_provider_failure_is_a_serious_failure_with_both_statuses():
    (event,) = audit_events(
        request(
            interaction="read",
            resource_type="Patient",
            resource_id="x",
            status=502,
            provider_status=500,
        )
    )
    assert (event["outcome"], event["outcomeDesc"]) == ("8", "HTTP 502 (provider 500)")


def test_a_refused_token_names_the_reason_and_no_token_entity():
    (event,) = audit_events(
        {"event": "token.denied", "time": TIME, "client_id": CLIENT, "reason": "secret mismatch"}
    )
    assert (event["outcome"], event["outcomeDesc"]) == ("4", "token refused: secret mismatch")
    assert "entity" not in event


def test_a_revoked_token_is_a_successful_logout_naming_its_jti():
    jti = "6f0fa3cf-fafb-45e7-b869-e313bebf4865"
    (event,) = audit_events(
        {"event": "token.revoked", "time": TIME, "client_id": CLIENT, "jti": jti}
    )
    assert (event["outcome"], event["outcomeDesc"]) == ("0", "token revoked")
    assert event["subtype"][0]["code"] == "110123"
    assert event["entity"][0]["what"]["identifier"]["value"] == jti


def test_row_142_a_management_change_names_the_fields_changed_not_their_values():
    record = {
        "event": "tenant.replaced",
        "time": TIME,
        "tenant_id": TENANT,
        "actor": {"kind": "admin_key", "name": "local admin key"},
        "changes": {"provider_base_url": {"old": "sha256:aaaa", "new": "sha256:bbbb"}},
    }
    (event,) = audit_events(record)
    assert event["entity"][0]["detail"] == [{"type": "changed", "valueString": "provider_base_url"}]
    assert "sha256:" not in json.dumps(event)


def test_a_record_of_another_kind_is_no_audit_event():
    assert audit_events({"event": "hosting.detected", "time": TIME}) == []


def test_an_unmapped_or_malformed_tenant_belongs_to_no_tenants_export():
    assert tenant_of(request(tenant_id=None)) is None
    assert tenant_of(request(tenant_id="x'; drop")) is None


def test_the_local_store_keeps_at_most_two_files_of_its_size(tmp_path):
    store = LocalAuditStore(tmp_path / "audit.jsonl", max_bytes=2_000)
    for number in range(60):
        store.put(TENANT, {"id": f"e{number:03}", "recorded": TIME, "resourceType": "AuditEvent"})
        store.flush()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["audit.jsonl", "audit.jsonl.1"]
    assert all(p.stat().st_size < 4_000 for p in tmp_path.iterdir())


def test_the_local_store_answers_one_tenant_in_time_order(tmp_path):
    store = LocalAuditStore(tmp_path / "audit.jsonl")
    store.put("other", {"id": "b", "recorded": TIME, "resourceType": "AuditEvent"})
    store.put(
        TENANT, {"id": "c", "recorded": "2030-01-01T09:13:00+00:00", "resourceType": "AuditEvent"}
    )
    store.put(TENANT, {"id": "a", "recorded": TIME, "resourceType": "AuditEvent"})
    query = AuditQuery(TENANT, instant("2030-01-01T00:00:00Z"), instant("2030-01-02T00:00:00Z"))
    assert [e["id"] for e in store.read(query)] == ["a", "c"]


def test_row_146_the_local_store_never_blocks_a_request_and_counts_what_it_dropped(
    tmp_path, monkeypatch
):
    import queue

    store = LocalAuditStore(tmp_path / "audit.jsonl")
    monkeypatch.setattr(store, "_queue", queue.Queue(1))
    store._queue.put_nowait((TENANT, {}))  # the writer is stuck elsewhere; the queue is full
    store.put(TENANT, {"id": "x", "recorded": TIME})
    assert store.dropped == 1


def test_row_146_the_local_store_file_is_owner_only(tmp_path):
    store = LocalAuditStore(tmp_path / "audit.jsonl")
    store.put(TENANT, {"id": "a", "recorded": TIME, "resourceType": "AuditEvent"})
    store.flush()
    assert (tmp_path / "audit.jsonl").stat().st_mode & 0o077 == 0


def test_row_146_in_azure_the_export_without_a_workspace_is_a_misconfiguration():
    import pytest

    from shared.hosting import detect
    from shared.services import Services
    from shared.settings import Settings, SettingsError

    azure = detect({"CONTAINER_NAME": "c", "WEBSITE_SKU": "FlexConsumption"})
    services = Services(Settings(hosting=azure))
    with pytest.raises(SettingsError):
        services.audit_store  # noqa: B018 - building it is what raises
