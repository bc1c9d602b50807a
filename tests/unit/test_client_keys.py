"""Registering a client's public keys (shared/auth/client_keys.py): refused with the reason."""

from __future__ import annotations

import json

import pytest

from shared.auth.client_keys import (
    MAX_INLINE_JWKS_BYTES,
    InvalidClientKeys,
    is_key_credential,
    key_credential,
    key_credential_current,
    keys_json,
    parse_registration,
    validate_inline_jwks,
    validate_jwks_uri,
)
from tools.testkit.backend_client import BackendKey


@pytest.fixture(scope="module")
def rsa_key() -> BackendKey:
    return BackendKey("RS384", kid="rsa-1")


@pytest.fixture(scope="module")
def ec_key() -> BackendKey:
    return BackendKey("ES384", kid="ec-1")


def refusal(value: object) -> str:
    with pytest.raises(InvalidClientKeys) as caught:
        validate_inline_jwks(value)
    return str(caught.value)


def test_a_public_rsa_and_ec_key_set_is_stored_as_compact_json(rsa_key, ec_key):
    stored = validate_inline_jwks({"keys": [rsa_key.public_jwk(), ec_key.public_jwk()]})
    assert [key["kid"] for key in json.loads(stored)["keys"]] == ["rsa-1", "ec-1"]
    assert " " not in stored


def test_a_jwks_given_as_json_text_is_accepted(rsa_key):
    assert validate_inline_jwks(json.dumps(rsa_key.jwks()))


def test_a_private_key_is_refused_naming_its_private_members(rsa_key):
    message = refusal({"keys": [rsa_key.private_jwk()]})
    assert "private members" in message
    assert "d" in message


def test_a_symmetric_key_is_refused():
    assert "symmetric" in refusal({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]})


def test_a_short_rsa_key_is_refused():
    short = BackendKey("RS256", kid="short", rsa_bits=1024)
    assert "not a usable public signing key" in refusal({"keys": [short.public_jwk()]})


def test_a_key_without_kid_is_refused(rsa_key):
    jwk = rsa_key.public_jwk()
    del jwk["kid"]
    assert "no kid" in refusal({"keys": [jwk]})


def test_two_keys_with_one_kid_are_refused(rsa_key):
    assert "used twice" in refusal({"keys": [rsa_key.public_jwk(), rsa_key.public_jwk()]})


def test_a_key_for_encryption_is_refused(rsa_key):
    assert "not a usable" in refusal({"keys": [rsa_key.public_jwk(use="enc")]})


def test_an_hmac_alg_on_a_public_key_is_refused(rsa_key):
    assert "not accepted" in refusal({"keys": [rsa_key.public_jwk(alg="HS256")]})


def test_an_empty_key_set_is_refused():
    assert "no keys" in refusal({"keys": []})


def test_something_that_is_no_jwk_set_is_refused():
    assert "JWK Set" in refusal([{"kty": "RSA"}])


def test_an_oversized_jwks_text_is_refused_before_parsing():
    assert "larger than" in refusal(" " * (MAX_INLINE_JWKS_BYTES + 1))


@pytest.mark.parametrize(
    "url",
    [
        "http://keys.example/jwks.json",
        "https://user:pw@keys.example/jwks.json",
        "https://keys.example/jwks.json#frag",
        "https://keys.example:99999/jwks.json",
        "https:///jwks.json",
        "https://keys.example/" + "a" * 2100,
        "",
        42,
    ],
)
def test_a_jwks_url_that_is_not_plain_https_is_refused(url):
    with pytest.raises(InvalidClientKeys):
        validate_jwks_uri(url)


def test_a_jwks_url_and_inline_keys_together_are_refused(rsa_key):
    with pytest.raises(InvalidClientKeys, match="not both"):
        parse_registration({"jwks_uri": "https://keys.example/jwks.json", "jwks": rsa_key.jwks()})


def test_the_shown_keys_carry_kid_kty_alg_and_size_only(rsa_key):
    shown = keys_json("", validate_inline_jwks(rsa_key.jwks()))
    assert shown["jwks"] == [
        {"kid": "rsa-1", "kty": "RSA", "alg": "RS384", "crv": None, "bits": 2048}
    ]


def test_an_inline_key_credential_holds_while_its_kid_is_registered(rsa_key, ec_key):
    sv = key_credential(kid="rsa-1")
    assert is_key_credential(sv)
    both = validate_inline_jwks({"keys": [rsa_key.public_jwk(), ec_key.public_jwk()]})
    assert key_credential_current(sv, "", both)
    assert not key_credential_current(sv, "", validate_inline_jwks(ec_key.jwks()))


def test_a_jwks_url_credential_holds_while_the_url_is_registered():
    sv = key_credential(jwks_uri="https://keys.example/a.json")
    assert key_credential_current(sv, "https://keys.example/a.json", "")
    assert not key_credential_current(sv, "https://keys.example/b.json", "")


def test_a_secret_version_is_no_key_credential():
    assert not is_key_credential("0123456789abcdef0123456789abcdef")
