"""``private_key_jwt`` checks that need no store (shared/auth/client_assertions.py)."""

from __future__ import annotations

import base64
import json

import pytest

from shared.auth.client_assertions import (
    JWT_BEARER,
    MAX_ASSERTION_BYTES,
    AssertionCredentials,
    PrivateKeyJwt,
)
from shared.auth.client_auth import default_client_authentication
from shared.auth.errors import OAuthError
from shared.http import Headers, Request

CLIENT = "6f1c2a4e-8d0b-4d2e-9a51-0c6f3b7e2d10"


def segment(value: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def assertion(header: dict, claims: dict) -> str:
    return f"{segment(header)}.{segment(claims)}.c2ln"


def request() -> Request:
    return Request("POST", "https://bridge.test/api/oauth2/token", Headers(), b"")


def refusal(form: dict[str, str]) -> OAuthError:
    with pytest.raises(OAuthError) as caught:
        PrivateKeyJwt().credentials(request(), form)
    return caught.value


def form(value: str) -> dict[str, str]:
    return {"client_assertion_type": JWT_BEARER, "client_assertion": value}


GOOD_HEADER = {"alg": "RS384", "kid": "k1"}
GOOD_CLAIMS = {"iss": CLIENT, "sub": CLIENT}


def test_the_assertion_never_appears_in_a_repr() -> None:
    text = assertion(GOOD_HEADER, GOOD_CLAIMS)
    credentials = AssertionCredentials(CLIENT, text, "private_key_jwt", audience="https://a")
    assert text not in repr(credentials)


def test_the_client_id_is_the_assertions_sub() -> None:
    found = PrivateKeyJwt().credentials(request(), form(assertion(GOOD_HEADER, GOOD_CLAIMS)))
    assert found.client_id == CLIENT
    assert found.method == "private_key_jwt"


@pytest.mark.parametrize("alg", ["none", "HS256", "HS384", "PS256", "RS512", "EdDSA", None])
def test_an_algorithm_off_the_list_is_refused_before_any_key_is_looked_at(alg) -> None:
    error = refusal(form(assertion({"alg": alg, "kid": "k1"}, GOOD_CLAIMS)))
    assert (error.error, error.status) == ("invalid_client", 401)
    assert "alg" in error.description


def test_an_assertion_without_kid_is_refused() -> None:
    error = refusal(form(assertion({"alg": "ES384"}, GOOD_CLAIMS)))
    assert "kid" in error.description


def test_a_critical_header_is_refused() -> None:
    error = refusal(form(assertion({**GOOD_HEADER, "crit": ["exp"]}, GOOD_CLAIMS)))
    assert error.error == "invalid_client"


@pytest.mark.parametrize("text", ["abc", "a.b", "a.b.c.d", "!!.!!.!!", "..", "é.é.é"])
def test_something_that_is_no_compact_jws_is_malformed(text: str) -> None:
    error = refusal(form(text))
    assert (error.error, error.description) == ("invalid_client", "client assertion is malformed")


def test_an_assertion_over_the_cap_is_refused_as_too_large() -> None:
    error = refusal(form("a" * (MAX_ASSERTION_BYTES + 1)))
    assert error.description == "client assertion is too large"


def test_a_refusal_never_echoes_the_assertion() -> None:
    text = assertion({"alg": "none", "kid": "<script>"}, GOOD_CLAIMS)
    error = refusal(form(text))
    assert "<script>" not in error.description and text not in error.description


def test_two_methods_are_refused_before_the_assertion_is_read() -> None:
    both = {**form("not-even-a-jws"), "client_secret": "s3cret", "client_id": CLIENT}
    with pytest.raises(OAuthError) as caught:
        default_client_authentication().credentials(request(), both)
    assert (caught.value.error, caught.value.status) == ("invalid_request", 400)


def test_the_registry_names_the_assertion_algorithms_smart_requires_first() -> None:
    assert default_client_authentication().signing_algorithms[:2] == ("RS384", "ES384")


def test_alg_none_with_an_empty_signature_is_refused_by_its_alg() -> None:
    unsigned = f"{segment({'alg': 'none', 'kid': 'k1'})}.{segment(GOOD_CLAIMS)}."
    assert "alg" in refusal(form(unsigned)).description
