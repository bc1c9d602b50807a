"""The management API's ``manage/clients/{id}/keys`` (docs/security.md table M)."""

from __future__ import annotations

import pytest

from shared.services import Services
from tests.integration.test_manage_api import call, register
from tools.testkit.backend_client import BackendKey


@pytest.fixture(scope="module")
def key() -> BackendKey:
    return BackendKey("RS384", kid="backend-1")


def keys_path(client_id: str) -> str:
    return f"/clients/{client_id}/keys"


def put_keys(services: Services, client_id: str, body: object, **kwargs):
    params = {"client_id": client_id}
    return call(services, "client_keys", "PUT", keys_path(client_id), body, params=params, **kwargs)


def keys_call(services: Services, method: str, client_id: str):
    params = {"client_id": client_id}
    return call(services, "client_keys", method, keys_path(client_id), params=params)


def test_an_inline_jwks_is_registered_and_shown_without_key_material(services, key):
    client_id = register(services)["client_id"]
    response = put_keys(services, client_id, {"jwks": key.jwks()})
    assert response.status == 200
    shown = keys_call(services, "GET", client_id).json()
    assert shown["jwks"] == [
        {"kid": "backend-1", "kty": "RSA", "alg": "RS384", "crv": None, "bits": 2048}
    ]
    assert shown["token_endpoint_auth_method"] == "private_key_jwt"
    assert key.public_jwk()["n"] not in keys_call(services, "GET", client_id).text


def test_a_jwks_url_is_registered_and_shown(services):
    client_id = register(services)["client_id"]
    url = "https://keys.backend.example/.well-known/jwks.json"
    assert put_keys(services, client_id, {"jwks_uri": url}).status == 200
    shown = keys_call(services, "GET", client_id).json()
    assert shown["jwks_uri"] == url
    assert shown["jwks"] == []


def test_registering_a_url_replaces_the_inline_keys(services, key):
    client_id = register(services)["client_id"]
    put_keys(services, client_id, {"jwks": key.jwks()})
    put_keys(services, client_id, {"jwks_uri": "https://keys.backend.example/jwks.json"})
    shown = keys_call(services, "GET", client_id).json()
    assert shown["jwks"] == []


def test_deleting_the_keys_leaves_the_client_and_its_secret(services, key):
    client_id = register(services)["client_id"]
    put_keys(services, client_id, {"jwks": key.jwks()})
    response = keys_call(services, "DELETE", client_id)
    assert response.status == 200
    assert response.json()["token_endpoint_auth_method"] is None
    assert (
        call(
            services, "client", "GET", f"/clients/{client_id}", params={"client_id": client_id}
        ).status
        == 200
    )


def test_a_private_key_is_refused_with_400_and_nothing_stored(services, key):
    client_id = register(services)["client_id"]
    response = put_keys(services, client_id, {"jwks": {"keys": [key.private_jwk()]}})
    assert response.status == 400
    assert "private members" in response.json()["message"]
    assert key.private_jwk()["d"] not in response.text
    shown = keys_call(services, "GET", client_id).json()
    assert shown["token_endpoint_auth_method"] is None


def test_a_plain_http_jwks_url_is_refused(services):
    client_id = register(services)["client_id"]
    response = put_keys(services, client_id, {"jwks_uri": "http://keys.backend.example/j"})
    assert response.status == 400


def test_both_a_url_and_inline_keys_are_refused(services, key):
    client_id = register(services)["client_id"]
    body = {"jwks_uri": "https://keys.backend.example/j", "jwks": key.jwks()}
    assert put_keys(services, client_id, body).status == 400


def test_an_unknown_field_is_refused(services):
    client_id = register(services)["client_id"]
    assert put_keys(services, client_id, {"jwk": {}}).status == 400


def test_keys_of_an_unknown_client_are_404(services, key):
    response = put_keys(services, "00000000-0000-4000-8000-000000000000", {"jwks": key.jwks()})
    assert response.status == 404


def test_keys_need_the_admin_key(services, key):
    client_id = register(services)["client_id"]
    assert put_keys(services, client_id, {"jwks": key.jwks()}, key=None).status == 401


def test_a_stale_if_match_is_refused(services, key):
    client_id = register(services)["client_id"]
    response = put_keys(services, client_id, {"jwks": key.jwks()}, headers={"If-Match": 'W/"x"'})
    assert response.status == 412


def test_registering_keys_is_audited_without_the_url(services, key, caplog):
    import logging

    client_id = register(services)["client_id"]
    url = "https://keys.backend.example/secret-path/jwks.json"
    caplog.set_level(logging.INFO, logger="ehrbridge.audit")
    put_keys(services, client_id, {"jwks_uri": url})
    events = [r.message for r in caplog.records if r.name == "ehrbridge.audit"]
    assert any("client.keys_registered" in event for event in events)
    assert not any("secret-path" in event for event in events)


@pytest.mark.parametrize(
    "url", ["https://169.254.169.254/jwks.json", "https://127.0.0.1/jwks.json", "https://[::1]/j"]
)
def test_a_jwks_url_at_a_refused_address_is_refused_when_registered(services, url):
    client_id = register(services)["client_id"]
    response = put_keys(services, client_id, {"jwks_uri": url})
    assert response.status == 400
    assert "never connects to" in response.json()["message"]
