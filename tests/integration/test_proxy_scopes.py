"""The proxy enforces the token's SMART system scopes: a read, search or write of a type the token
does not grant is 403 insufficient_scope, batch entries included, before anything reaches the
provider (docs/security.md table N)."""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest

from shared.auth.tokens import issue_access_token
from tests.conftest import bearer_token, writer_token
from tests.integration.test_proxy import FHIR_JSON, batch, mapped, outcome, send

DOCTOR = {
    "resourceType": "Practitioner",
    "id": "doc",
    "name": [{"family": "Careful", "given": ["Adam"], "prefix": ["Dr"]}],
}


@pytest.fixture
def provider(fhir_server):
    return fhir_server(version="r4")


@pytest.fixture
def tenant(proxy_services, client, provider):
    return mapped(proxy_services, client, provider.base_url)


def scoped(services: Any, client: Any, tenant: Any, *scopes: str) -> str:
    return bearer_token(services, client, tenant.tenant_id, *scopes)


def assert_insufficient_scope(response: Any, needed: str) -> None:
    assert response.status == 403
    issue = outcome(response)
    assert issue["code"] == "forbidden"
    assert issue["diagnostics"].startswith("insufficient_scope")
    assert response.headers.get("WWW-Authenticate") == (
        f'Bearer realm="fhir", error="insufficient_scope", scope="{needed}"'
    )


def test_a_read_of_a_granted_type_reaches_the_provider(proxy_services, client, tenant, provider):
    token = scoped(proxy_services, client, tenant, "system/Patient.read")
    assert send(proxy_services, "GET", "Patient/example", token).status == 200


def test_a_read_of_a_type_outside_the_scopes_is_403_insufficient_scope(
    proxy_services, client, tenant, provider
):
    token = scoped(proxy_services, client, tenant, "system/Patient.read")
    response = send(proxy_services, "GET", "Observation/1", token)
    assert_insufficient_scope(response, "system/Observation.r")
    assert provider.count() == 0


def test_a_search_needs_the_search_permission_not_only_read(
    proxy_services, client, tenant, provider
):
    token = scoped(proxy_services, client, tenant, "system/Patient.r")
    response = send(proxy_services, "GET", "Patient", token, query="name=x")
    assert_insufficient_scope(response, "system/Patient.s")
    assert provider.count() == 0


def test_a_post_search_needs_the_search_permission(proxy_services, client, tenant, provider):
    token = scoped(proxy_services, client, tenant, "system/Patient.r")
    response = send(
        proxy_services,
        "POST",
        "Patient/_search",
        token,
        body=b"name=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_insufficient_scope(response, "system/Patient.s")


def test_a_batch_entry_outside_the_scopes_refuses_the_batch_and_nothing_is_forwarded(
    proxy_services, client, tenant, provider
):
    token = scoped(proxy_services, client, tenant, "system/Patient.rs")
    response = send(
        proxy_services,
        "POST",
        "",
        token,
        body=batch("Patient/example", "Observation?patient=example"),
        headers={"Content-Type": FHIR_JSON},
    )
    assert_insufficient_scope(response, "system/Observation.s")
    assert outcome(response)["diagnostics"].startswith("insufficient_scope: entry 1:")
    assert provider.count() == 0


def test_a_batch_run_by_the_proxy_is_refused_alike(proxy_services, client, fhir_server):
    refusing = fhir_server(version="r4", capabilities={"batch": False})
    tenant = mapped(proxy_services, client, refusing.base_url)
    token = scoped(proxy_services, client, tenant, "system/Patient.rs")
    response = send(
        proxy_services,
        "POST",
        "",
        token,
        body=batch("Observation/1"),
        headers={"Content-Type": FHIR_JSON},
    )
    assert_insufficient_scope(response, "system/Observation.r")
    assert refusing.count() == 0


def test_a_batch_within_the_scopes_is_forwarded(proxy_services, client, tenant, provider):
    token = scoped(proxy_services, client, tenant, "system/Patient.rs", "system/Observation.rs")
    response = send(
        proxy_services,
        "POST",
        "",
        token,
        body=batch("Patient/example", "Observation?patient=example"),
        headers={"Content-Type": FHIR_JSON},
    )
    assert response.status == 200


def test_a_write_without_a_write_scope_is_403_on_a_tenant_that_allows_writes(
    proxy_services, client, provider
):
    writable = mapped(proxy_services, client, provider.base_url, allow_writes=True)
    token = scoped(proxy_services, client, writable)
    response = send(
        proxy_services,
        "POST",
        "Patient",
        token,
        body=json.dumps({"resourceType": "Patient"}).encode(),
        headers={"Content-Type": FHIR_JSON},
    )
    assert_insufficient_scope(response, "system/Patient.c")
    assert provider.count() == 0


@pytest.mark.parametrize(("method", "letter"), [("PUT", "u"), ("DELETE", "d")])
def test_an_update_needs_u_and_a_delete_needs_d(proxy_services, client, provider, method, letter):
    writable = mapped(proxy_services, client, provider.base_url, allow_writes=True)
    proxy_services.clients.update(client.client.client_id, allowed_scopes="system/*.cruds")
    proxy_services.lookups.forget()
    token = scoped(proxy_services, client, writable, "system/Patient.crs")
    body = json.dumps({"resourceType": "Patient", "id": "example"}).encode()
    response = send(
        proxy_services,
        method,
        "Patient/example",
        token,
        body=body if method == "PUT" else b"",
        headers={"Content-Type": FHIR_JSON} if method == "PUT" else {},
    )
    assert_insufficient_scope(response, f"system/Patient.{letter}")


def test_a_write_with_a_write_scope_is_forwarded(proxy_services, client, provider):
    writable = mapped(proxy_services, client, provider.base_url, allow_writes=True)
    token = writer_token(proxy_services, client, writable.tenant_id)
    response = send(
        proxy_services,
        "POST",
        "Patient",
        token,
        body=json.dumps({"resourceType": "Patient"}).encode(),
        headers={"Content-Type": FHIR_JSON},
    )
    assert response.status == 201


def test_an_include_of_a_type_outside_the_scopes_is_refused(proxy_services, client, tenant):
    token = scoped(proxy_services, client, tenant, "system/Observation.rs")
    response = send(
        proxy_services,
        "GET",
        "Observation",
        token,
        query="patient=example&_include=Observation:patient:Patient",
    )
    assert_insufficient_scope(response, "system/Patient.r")


def test_an_include_without_a_target_type_needs_read_of_every_type(proxy_services, client, tenant):
    token = scoped(proxy_services, client, tenant, "system/Observation.rs")
    response = send(
        proxy_services, "GET", "Observation", token, query="_include=Observation:patient"
    )
    assert_insufficient_scope(response, "system/*.r")


def test_a_revinclude_of_a_type_outside_the_scopes_is_refused(proxy_services, client, tenant):
    token = scoped(proxy_services, client, tenant, "system/Patient.rs")
    response = send(
        proxy_services, "GET", "Patient", token, query="_revinclude=Observation:patient"
    )
    assert_insufficient_scope(response, "system/Observation.s")


def test_an_include_in_a_post_search_body_is_judged_too(proxy_services, client, tenant):
    token = scoped(proxy_services, client, tenant, "system/Observation.rs")
    response = send(
        proxy_services,
        "POST",
        "Observation/_search",
        token,
        body=b"_include=Observation:patient:Patient",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_insufficient_scope(response, "system/Patient.r")


def test_a_medication_request_scope_grants_the_dstu2_medication_order(
    proxy_services, client, tenant, provider
):
    token = scoped(proxy_services, client, tenant, "system/MedicationRequest.rs")
    response = send(
        proxy_services, "GET", "MedicationOrder", token, face="dstu2", query="patient=x"
    )
    assert response.status == 200


def test_displays_are_not_filled_from_types_the_token_may_not_read(
    proxy_services, client, tenant, provider
):
    provider.add(DOCTOR)
    provider.add(
        {
            "resourceType": "Patient",
            "id": "with-gp",
            "generalPractitioner": [{"reference": "Practitioner/doc"}],
        }
    )
    token = scoped(proxy_services, client, tenant, "system/Patient.rs")
    response = send(proxy_services, "GET", "Patient/with-gp", token)
    assert response.status == 200
    assert "Careful" not in response.text
    assert provider.count(path="/fhir/Practitioner/doc") == 0


def test_a_token_issued_before_scopes_existed_reads_as_the_default(
    proxy_services, client, tenant, provider
):
    # Its scope claim names only its tenant, as every token did before this change.
    issued = issue_access_token(
        proxy_services.signing_keys.current(),
        issuer=proxy_services.settings.token_issuer,
        audience=proxy_services.settings.token_audience,
        client_id=client.client.client_id,
        tenant_id=tenant.tenant_id,
        secret_version=client.version.version,
        lifetime_seconds=300,
    )
    assert jwt.decode(issued.access_token, options={"verify_signature": False})["scope"] == (
        tenant.tenant_id
    )
    assert send(proxy_services, "GET", "Observation/1", issued.access_token).status != 403


def test_a_token_whose_scope_claim_names_a_bad_scope_is_refused(proxy_services, client, tenant):
    issued = issue_access_token(
        proxy_services.signing_keys.current(),
        issuer=proxy_services.settings.token_issuer,
        audience=proxy_services.settings.token_audience,
        client_id=client.client.client_id,
        tenant_id=tenant.tenant_id,
        secret_version=client.version.version,
        lifetime_seconds=300,
        scopes=("patient/*.read",),
    )
    response = send(proxy_services, "GET", "Patient/example", issued.access_token)
    assert response.status == 401
    assert outcome(response)["diagnostics"] == "invalid claim: scope"
