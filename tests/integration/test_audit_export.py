"""The per-tenant audit export from the local store: R4 AuditEvents, one per request, one tenant.

Requests go through the real token endpoint and proxy (Azurite, a fake R4 provider); the audit
stream writes the local store in the background; ``manage/tenants/{id}/audit`` reads it back.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import pytest

from shared.auditevents.stream import use_sink
from shared.http import Headers, Request, Response
from shared.services import Services
from shared.tenants import TenantMapping
from tests.conftest import ADMIN_KEY, bearer_token
from tools.testkit.inbound import fhir_request

FHIR_JSON = "application/fhir+json"


@dataclass
class Audited:
    services: Services
    client_id: str
    tenant_a: str
    tenant_b: str
    token_a: str


def _map(services: Services, client_id: str, url: str) -> str:
    tenant_id = str(uuid.uuid4())
    services.tenants.put(
        TenantMapping(
            tenant_id=tenant_id,
            provider_base_url=url,
            provider_fhir_version="r4",
            allowed_client_ids=(client_id,),
        )
    )
    return tenant_id


def _proxy(services: Services, path: str, token: str | None, **kwargs: Any) -> Response:
    return services.proxy.handle(fhir_request("GET", path, token, **kwargs), "r4")


@pytest.fixture
def audited(make_services, client, fhir_server, tmp_path) -> Iterator[Audited]:
    services = make_services(
        allow_insecure_provider_urls=True, local_audit_path=str(tmp_path / "audit.jsonl")
    )
    services.keep_local_audit()
    try:
        client_id = client.client.client_id
        tenant_a = _map(services, client_id, fhir_server(version="r4").base_url)
        tenant_b = _map(services, client_id, fhir_server(version="r4").base_url)
        token_a = bearer_token(services, client, tenant_a)
        token_b = bearer_token(services, client, tenant_b)
        assert _proxy(services, "Patient/example", token_a).status == 200
        query = "patient=example&code=http://loinc.org|8867-4"
        assert _proxy(services, "Observation", token_a, query=query).status == 200
        assert _proxy(services, "Patient/example", token_b).status == 200
        yield Audited(services, client_id, tenant_a, tenant_b, token_a)
    finally:
        use_sink(None)
        services.proxy.close()
        services.transport.close()


def export(services: Services, tenant_id: str, key: str | None = ADMIN_KEY, **params: str):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    headers = Headers({"x-functions-key": key} if key else {})
    url = f"http://localhost:7071/api/manage/tenants/{tenant_id}/audit" + (
        f"?{query}" if query else ""
    )
    request = Request("GET", url, headers, b"", {"tenant_id": tenant_id})
    return services.management.handle("tenant_audit", request)


def events(response: Response) -> list[dict[str, Any]]:
    assert response.status == 200, response.body
    return [entry["resource"] for entry in json.loads(response.body)["entry"]]


def test_row_142_the_export_is_a_valid_r4_bundle_of_valid_audit_events(audited: Audited):
    from fhir.resources.R4B.auditevent import AuditEvent
    from fhir.resources.R4B.bundle import Bundle

    response = export(audited.services, audited.tenant_a)
    assert response.headers.get("Content-Type").startswith(FHIR_JSON)
    Bundle.model_validate(json.loads(response.body))
    for event in events(response):
        AuditEvent.model_validate(event)


def test_the_export_has_one_event_per_request_made_for_the_tenant(audited: Audited):
    kinds = [
        event["subtype"][0]["code"] for event in events(export(audited.services, audited.tenant_a))
    ]
    # The mapping's creation, the token, the read, the search: in the order they happened.
    assert kinds == ["110129", "110122", "read", "search-type"]


def test_row_144_the_export_holds_nothing_of_another_tenant(audited: Audited):
    text = json.dumps(events(export(audited.services, audited.tenant_a)))
    assert audited.tenant_b not in text
    other = events(export(audited.services, audited.tenant_b))
    assert [e["subtype"][0]["code"] for e in other] == ["110129", "110122", "read"]


def test_a_read_names_the_client_its_token_the_tenant_and_the_patient(audited: Audited):
    (read,) = [
        e
        for e in events(export(audited.services, audited.tenant_a))
        if e["subtype"][0]["code"] == "read"
    ]
    client, tenant, _ = read["agent"]
    assert client["requestor"] is True
    assert client["who"]["identifier"]["value"] == audited.client_id
    assert client["policy"]  # the token's jti
    assert tenant["who"]["identifier"]["value"] == audited.tenant_a
    assert {"reference": "Patient/example"} in [entity.get("what") for entity in read["entity"]]
    assert (read["action"], read["outcome"]) == ("R", "0")


def test_row_142_a_search_names_its_patient_but_none_of_its_other_parameters(audited: Audited):
    (search,) = [
        e
        for e in events(export(audited.services, audited.tenant_a))
        if e["subtype"][0]["code"] == "search-type"
    ]
    assert {"reference": "Patient/example"} in [entity.get("what") for entity in search["entity"]]
    assert "8867-4" not in json.dumps(search)
    assert audited.token_a not in json.dumps(search)


def test_row_143_the_export_needs_the_admin_key(audited: Audited):
    assert export(audited.services, audited.tenant_a, key=None).status == 401


def test_the_export_pages_with_a_next_link_that_repeats_nothing(audited: Audited):
    first = json.loads(export(audited.services, audited.tenant_a, count="3").body)
    (next_link,) = [link["url"] for link in first["link"] if link["relation"] == "next"]
    params = dict(pair.split("=", 1) for pair in next_link.split("?", 1)[1].split("&"))
    rest = events(
        export(audited.services, audited.tenant_a, **{k: unquote(v) for k, v in params.items()})
    )
    ids = [entry["resource"]["id"] for entry in first["entry"]] + [e["id"] for e in rest]
    assert len(ids) == len(set(ids)) == 4


def test_a_window_that_ends_before_it_starts_is_400_naming_since(audited: Audited):
    response = export(
        audited.services,
        audited.tenant_a,
        since="2030-01-02T00:00:00Z",
        until="2030-01-01T00:00:00Z",
    )
    assert response.status == 400
    assert json.loads(response.body)["field"] == "since"
