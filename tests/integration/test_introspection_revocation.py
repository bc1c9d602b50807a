"""RFC 7662 introspection and RFC 7009 revocation: who may ask about or revoke which token, and
what every other request is answered (docs/security.md table N)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from shared.expiring import CapReached
from tests.conftest import bearer_token
from tests.integration.test_proxy import mapped, send
from tools.testkit.inbound import form_request

INTROSPECT = "https://bridge.test/api/oauth2/introspect"
REVOKE = "https://bridge.test/api/oauth2/revoke"


def introspect(services: Any, client: Any, token: str, **kwargs: Any) -> Any:
    fields = {"token": token, "client_id": client.client.client_id, "client_secret": client.secret}
    return services.introspection.handle(form_request(fields, url=INTROSPECT, **kwargs))


def revoke(services: Any, client: Any, token: str, **extra: str) -> Any:
    fields = {
        "token": token,
        "client_id": client.client.client_id,
        "client_secret": client.secret,
        **extra,
    }
    return services.revocation.handle(form_request(fields, url=REVOKE))


@pytest.fixture
def provider(fhir_server):
    return fhir_server(version="r4")


@pytest.fixture
def tenant(proxy_services, client, provider):
    return mapped(proxy_services, client, provider.base_url)


@pytest.fixture
def token(proxy_services, client, tenant):
    return bearer_token(proxy_services, client, tenant.tenant_id)


@pytest.fixture
def other(proxy_services):
    return proxy_services.clients.register("Another partner")


# -- introspection -------------------------------------------------------------------------------


def test_a_client_introspecting_its_own_token_learns_it_is_active_and_what_it_grants(
    proxy_services, client, tenant, token
):
    response = introspect(proxy_services, client, token)
    assert response.status == 200
    answer = response.json()
    assert answer["active"] is True
    assert answer["scope"] == f"{tenant.tenant_id} system/*.rs"
    assert answer["client_id"] == answer["sub"] == client.client.client_id
    assert answer["token_type"] == "Bearer"
    assert answer["tid"] == tenant.tenant_id
    assert answer["iss"] == proxy_services.settings.token_issuer
    assert answer["aud"] == proxy_services.settings.token_audience
    assert isinstance(answer["exp"], int) and answer["jti"]


def test_introspection_answers_are_never_stored(proxy_services, client, token):
    assert introspect(proxy_services, client, token).headers.get("Cache-Control") == "no-store"


def test_another_clients_token_is_inactive_to_a_client(proxy_services, client, other, token):
    assert introspect(proxy_services, other, token).json() == {"active": False}


def test_a_resource_server_allowed_by_the_tenant_may_introspect_its_tokens(
    proxy_services, client, other, tenant, token
):
    proxy_services.clients.update(other.client.client_id, resource_server=True)
    proxy_services.tenants.put(
        tenant.__class__(
            **{
                **tenant.__dict__,
                "allowed_client_ids": (client.client.client_id, other.client.client_id),
                "etag": None,
            }
        )
    )
    proxy_services.lookups.forget()
    assert introspect(proxy_services, other, token).json()["active"] is True


def test_a_resource_server_the_tenant_does_not_allow_learns_nothing(
    proxy_services, client, other, token
):
    proxy_services.clients.update(other.client.client_id, resource_server=True)
    proxy_services.lookups.forget()
    assert introspect(proxy_services, other, token).json() == {"active": False}


@pytest.mark.parametrize("garbage", ["not-a-token", "a.b.c", "x" * 9000])
def test_anything_that_is_not_a_live_token_of_ours_is_inactive(proxy_services, client, garbage):
    assert introspect(proxy_services, client, garbage).json() == {"active": False}


def test_a_revoked_token_is_inactive(proxy_services, client, token):
    assert revoke(proxy_services, client, token).status == 200
    assert introspect(proxy_services, client, token).json() == {"active": False}


def test_a_token_of_a_disabled_client_is_inactive(proxy_services, client, token):
    proxy_services.clients.update(client.client.client_id, enabled=False)
    proxy_services.lookups.forget()
    other = proxy_services.clients.register("Resource server")
    proxy_services.clients.update(other.client.client_id, resource_server=True)
    proxy_services.lookups.forget()
    assert introspect(proxy_services, other, token).json() == {"active": False}


def test_introspection_without_client_authentication_is_401_invalid_client(proxy_services, token):
    request = form_request({"token": token}, url=INTROSPECT)
    response = proxy_services.introspection.handle(request)
    assert response.status == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers.get("WWW-Authenticate", "").startswith("Basic")


def test_introspection_with_a_wrong_secret_is_401(proxy_services, client, token):
    fields = {"token": token, "client_id": client.client.client_id, "client_secret": "wrong"}
    response = proxy_services.introspection.handle(form_request(fields, url=INTROSPECT))
    assert response.status == 401


def test_failed_introspection_authentication_counts_toward_the_token_endpoints_throttle(
    make_services, client, tenant
):
    services = make_services(token_failure_limit=3)
    fields = {"token": "x", "client_id": client.client.client_id, "client_secret": "wrong"}
    statuses = [
        services.introspection.handle(form_request(fields, url=INTROSPECT)).status for _ in range(3)
    ]
    right = {
        "grant_type": "client_credentials",
        "scope": tenant.tenant_id,
        "client_id": client.client.client_id,
        "client_secret": client.secret,
    }
    assert statuses == [401, 401, 401]
    assert services.token_endpoint.handle(form_request(right)).status == 429


def test_introspection_without_a_token_is_invalid_request(proxy_services, client):
    fields = {"client_id": client.client.client_id, "client_secret": client.secret}
    response = proxy_services.introspection.handle(form_request(fields, url=INTROSPECT))
    assert response.status == 400
    assert response.json()["error"] == "invalid_request"


def test_introspection_by_get_is_405_with_allow_post(proxy_services, client, token):
    response = introspect(proxy_services, client, token, method="GET")
    assert response.status == 405
    assert response.headers.get("Allow") == "POST"


def test_introspection_with_basic_authentication_works_too(proxy_services, client, token):
    basic = base64.b64encode(f"{client.client.client_id}:{client.secret}".encode()).decode()
    request = form_request(
        {"token": token}, url=INTROSPECT, headers={"Authorization": f"Basic {basic}"}
    )
    assert proxy_services.introspection.handle(request).json()["active"] is True


# -- revocation ----------------------------------------------------------------------------------


def test_a_revoked_token_is_refused_by_the_proxy_at_once_on_the_revoking_instance(
    proxy_services, client, token
):
    assert send(proxy_services, "GET", "Patient/example", token).status == 200
    response = revoke(proxy_services, client, token, token_type_hint="access_token")
    assert (response.status, response.body) == (200, b"")
    assert response.headers.get("Cache-Control") == "no-store"
    refused = send(proxy_services, "GET", "Patient/example", token)
    assert refused.status == 401
    assert refused.json()["issue"][0]["diagnostics"] == "token is revoked"


def test_revoking_another_clients_token_answers_200_and_revokes_nothing(
    proxy_services, other, token
):
    assert revoke(proxy_services, other, token).status == 200
    assert send(proxy_services, "GET", "Patient/example", token).status == 200


@pytest.mark.parametrize("garbage", ["not-a-token", "a.b.c"])
def test_revoking_an_unknown_token_answers_200(proxy_services, client, garbage):
    assert revoke(proxy_services, client, garbage).status == 200


def test_an_unknown_token_type_hint_is_ignored_and_the_token_revoked(proxy_services, client, token):
    assert revoke(proxy_services, client, token, token_type_hint="refresh_token").status == 200
    assert send(proxy_services, "GET", "Patient/example", token).status == 401


def test_revocation_without_client_authentication_is_401(proxy_services, token):
    response = proxy_services.revocation.handle(form_request({"token": token}, url=REVOKE))
    assert response.status == 401
    assert response.json()["error"] == "invalid_client"


def test_a_revocation_that_cannot_be_recorded_is_503_and_the_token_still_works(
    proxy_services, client, token, monkeypatch
):
    def full(*args: Any, **kwargs: Any) -> None:
        raise CapReached("revoked: 1000 new rows this minute")

    monkeypatch.setattr(proxy_services.revoked_tokens._rows, "put", full)
    response = revoke(proxy_services, client, token)
    assert response.status == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert response.headers.get("Retry-After")
    assert send(proxy_services, "GET", "Patient/example", token).status == 200


def test_a_revoked_token_is_kept_in_the_shared_table_until_it_expires(
    proxy_services, client, token
):
    import jwt

    revoke(proxy_services, client, token)
    claims = jwt.decode(token, options={"verify_signature": False})
    rows = proxy_services.revoked_tokens._rows.live()
    assert [row.properties["expires"] for row in rows] == [float(claims["exp"])]


def test_a_failure_of_ours_during_introspection_is_a_500_without_a_trace(
    proxy_services, client, token, monkeypatch
):
    def broken(token: str) -> Any:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(proxy_services.introspection, "_verify", broken)
    response = introspect(proxy_services, client, token)
    assert response.status == 500
    assert response.json()["error"] == "server_error"
    assert "secret detail" not in response.text


def test_a_failure_of_ours_during_revocation_is_a_500_without_a_trace(
    proxy_services, client, token, monkeypatch
):
    def broken(token: str) -> Any:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(proxy_services.revocation, "_signed_claims", broken)
    response = revoke(proxy_services, client, token)
    assert response.status == 500
    assert "secret detail" not in response.text
