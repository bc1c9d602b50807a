"""What the proxy forwards is what it validated: body parameters, batch bytes, writes (table H)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import bearer_token, writer_token
from tests.integration.test_proxy import mapped, outcome, send

FHIR_JSON = "application/fhir+json"
FORM = "application/x-www-form-urlencoded"
JSON_PATCH = "application/json-patch+json"
PATCH_BODY = b'[{"op":"replace","path":"/active","value":false}]'
OTHER_TENANT = "0f5d2a52-1b3e-4c1f-9b6a-3b8f1a2c4d5e"


@pytest.fixture
def provider(fhir_server):
    return fhir_server(version="r4")


@pytest.fixture
def tenant(proxy_services, client, provider):
    return mapped(proxy_services, client, provider.base_url)


@pytest.fixture
def token(proxy_services, client, tenant):
    return bearer_token(proxy_services, client, tenant.tenant_id)


def test_row_101_another_tenant_in_a_search_body_is_403_like_in_the_query(
    proxy_services, provider, token
):
    body = f"family=Chalmers&tenant={OTHER_TENANT}".encode()
    response = send(
        proxy_services, "POST", "Patient/_search", token, body=body, headers={"Content-Type": FORM}
    )
    assert response.status == 403
    assert outcome(response)["code"] == "forbidden"
    assert provider.count() == 0


def test_row_101_another_tenant_in_a_batch_entry_is_403(proxy_services, provider, token):
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": f"Patient?tenant={OTHER_TENANT}"}}],
    }
    response = send(
        proxy_services,
        "POST",
        "",
        token,
        body=json.dumps(bundle).encode(),
        headers={"Content-Type": FHIR_JSON},
    )
    assert response.status == 403
    assert provider.count() == 0


def test_row_102_a_batch_is_forwarded_as_validated_not_as_sent(proxy_services, provider, token):
    # A provider keeping the first of two repeated keys would read this entry as a DELETE.
    body = (
        b'{"resourceType":"Bundle","type":"batch","entry":[{"request":'
        b'{"method":"DELETE","method":"GET","url":"Patient/example"}}]}'
    )
    response = send(
        proxy_services, "POST", "", token, body=body, headers={"Content-Type": FHIR_JSON}
    )
    assert response.status == 200
    forwarded = provider.last()
    assert forwarded.path == "/fhir"
    assert b"DELETE" not in forwarded.body
    assert json.loads(forwarded.body)["entry"][0]["request"]["method"] == "GET"


def test_row_103_json_patch_on_a_read_only_tenant_is_405_with_allow(
    proxy_services, provider, token
):
    response = send(
        proxy_services,
        "PATCH",
        "Patient/example",
        token,
        body=PATCH_BODY,
        headers={"Content-Type": JSON_PATCH},
    )
    assert response.status == 405
    assert response.headers.get("Allow") == "GET, POST"
    assert provider.count() == 0


def test_row_103_a_write_in_any_media_type_is_405_before_the_type_is_judged(
    proxy_services, provider, token
):
    response = send(
        proxy_services,
        "PUT",
        "Patient/example",
        token,
        body=b"<Patient/>",
        headers={"Content-Type": "application/fhir+xml"},
    )
    assert response.status == 405
    assert provider.count() == 0


def test_row_103_json_patch_is_forwarded_when_the_tenant_allows_writes(
    proxy_services, client, provider
):
    writable = mapped(proxy_services, client, provider.base_url, allow_writes=True)
    token = writer_token(proxy_services, client, writable.tenant_id)
    response = send(
        proxy_services,
        "PATCH",
        "Patient/example",
        token,
        body=PATCH_BODY,
        headers={"Content-Type": JSON_PATCH},
    )
    assert response.status < 500
    received = provider.last()
    assert received.method == "PATCH"
    assert received.header("Content-Type") == JSON_PATCH
    assert received.body == PATCH_BODY


def test_a_json_patch_across_fhir_versions_is_501(proxy_services, client, fhir_server):
    stu3 = fhir_server(version="stu3")
    writable = mapped(proxy_services, client, stu3.base_url, "stu3", allow_writes=True)
    token = writer_token(proxy_services, client, writable.tenant_id)
    response = send(
        proxy_services,
        "PATCH",
        "Patient/example",
        token,
        body=PATCH_BODY,
        headers={"Content-Type": JSON_PATCH},
    )
    assert response.status == 501
    assert stu3.count() == 0
