"""Client authentication at the token endpoint: one registered method per request (§2.3)."""

from __future__ import annotations

import base64

import pytest

from shared.auth.client_auth import ClientCredentials, default_client_authentication
from shared.auth.errors import OAuthError
from shared.http import Headers, Request

CLIENT = "6f1c2a4e-8d0b-4d2e-9a51-0c6f3b7e2d10"


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def request(*authorization: str) -> Request:
    headers = Headers()
    for value in authorization:
        headers.add("Authorization", value)
    return Request("POST", "https://bridge.test/api/oauth2/token", headers, b"")


def refusal(call) -> tuple[str, int]:
    with pytest.raises(OAuthError) as caught:
        call()
    return caught.value.error, caught.value.status


def test_the_registry_advertises_basic_then_post_then_private_key_jwt() -> None:
    names = default_client_authentication().method_names
    assert names == ("client_secret_basic", "client_secret_post", "private_key_jwt")


def test_basic_credentials_name_their_method() -> None:
    auth = default_client_authentication()
    found = auth.credentials(request(basic(CLIENT, "s3cret")), {})
    assert found == ClientCredentials(CLIENT, "s3cret", "client_secret_basic")


def test_post_credentials_name_their_method() -> None:
    auth = default_client_authentication()
    found = auth.credentials(request(), {"client_id": CLIENT, "client_secret": "s3cret"})
    assert found == ClientCredentials(CLIENT, "s3cret", "client_secret_post")


def test_two_methods_in_one_request_are_invalid_request() -> None:
    auth = default_client_authentication()
    form = {"client_id": CLIENT, "client_secret": "s3cret"}
    assert refusal(lambda: auth.credentials(request(basic(CLIENT, "s3cret")), form)) == (
        "invalid_request",
        400,
    )


def test_no_method_is_invalid_client() -> None:
    auth = default_client_authentication()
    assert refusal(lambda: auth.credentials(request(), {"client_id": CLIENT})) == (
        "invalid_client",
        401,
    )


def test_a_client_id_parameter_must_name_the_authenticated_client() -> None:
    auth = default_client_authentication()
    other = {"client_id": "0" * 8 + CLIENT[8:]}
    assert refusal(lambda: auth.credentials(request(basic(CLIENT, "s3cret")), other)) == (
        "invalid_request",
        400,
    )


def test_the_proof_never_appears_in_a_repr() -> None:
    assert "s3cret" not in repr(ClientCredentials(CLIENT, "s3cret", "client_secret_post"))
