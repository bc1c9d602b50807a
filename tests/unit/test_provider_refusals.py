"""A provider's refusal of our credentials is reported by its rule, never with what we sent."""

from __future__ import annotations

import json

import jwt
import pytest

from shared.auth.signing_keys import SigningKey, generate_private_key_pem
from shared.proxy.assertions import ASSERTION_LIFETIME_SECONDS, client_assertion
from shared.proxy.provider_tokens import (
    MAX_DESCRIPTION_CHARS,
    ProviderAuthError,
    Sources,
    _token_from_answer,
)

SOURCES = Sources(
    secret=lambda tenant: "",
    token_session=lambda: None,  # type: ignore[arg-type,return-value]
    identity=lambda: None,  # type: ignore[arg-type,return-value]
    expiring=lambda seconds: seconds,
    clock=lambda: 0.0,
    timeout=(1.0, 1.0),
    managed_identity_scopes=(),
    assertion_key=lambda: None,  # type: ignore[arg-type,return-value]
)
ASSERTION = (
    "eyJhbGciOiJSUzM4NCJ9.eyJpc3MiOiJicmlkZ2UiLCJqdGkiOiJ4In0.c2lnbmF0dXJlLW9mLXRoZS1hc3NlcnRpb24"
)


def refusal(document: object, redact: tuple[str, ...] = ()) -> ProviderAuthError:
    with pytest.raises(ProviderAuthError) as refused:
        _token_from_answer(SOURCES, 401, json.dumps(document).encode(), redact=redact)
    return refused.value


def test_the_oauth_error_and_description_are_the_refusal():
    refused = refusal({"error": "invalid_client", "error_description": "aud is wrong"})
    assert refused.refusal == "invalid_client: aud is wrong"
    assert "(invalid_client: aud is wrong)" in str(refused)


def test_an_error_without_a_description_is_the_code_alone():
    assert refusal({"error": "invalid_client"}).refusal == "invalid_client"


def test_an_error_code_outside_the_oauth_grammar_is_no_refusal():
    assert refusal({"error": "<script>", "error_description": "x"}).refusal is None


def test_our_assertion_echoed_in_the_description_is_redacted():
    refused = refusal(
        {"error": "invalid_client", "error_description": f"bad assertion {ASSERTION} here"},
        redact=(ASSERTION, *ASSERTION.split(".")[1:]),
    )
    assert refused.refusal == "invalid_client: bad assertion [redacted] here"


def test_a_part_of_the_assertion_echoed_alone_is_redacted():
    signature = ASSERTION.split(".")[2]
    refused = refusal(
        {"error": "invalid_client", "error_description": f"signature {signature} invalid"},
        redact=(ASSERTION, *ASSERTION.split(".")[1:]),
    )
    assert signature not in str(refused)


def test_any_jwt_shaped_text_is_redacted_even_when_it_is_not_ours():
    other = "eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiJzb21lb25lIn0.YWJjZGVmZ2hpams"
    assert "[redacted]" in (
        refusal({"error": "invalid_client", "error_description": other}).refusal or ""
    )


def test_our_secret_echoed_in_the_description_is_redacted():
    secret = "provider-secret-" + "s" * 24
    refused = refusal(
        {"error": "invalid_client", "error_description": f"secret {secret} is wrong"},
        redact=(secret,),
    )
    assert secret not in str(refused)


def test_control_characters_and_quotes_are_replaced():
    refused = refusal({"error": "invalid_client", "error_description": 'a\r\nb"c\\d\x00'})
    assert refused.refusal == "invalid_client: a b?c?d?"


def test_a_long_description_is_cut():
    refused = refusal({"error": "invalid_client", "error_description": "word " * 200})
    assert refused.refusal is not None
    assert len(refused.refusal) <= len("invalid_client: ") + MAX_DESCRIPTION_CHARS


# -- the assertion we sign ------------------------------------------------------------------


def key(algorithm: str) -> SigningKey:
    from cryptography.hazmat.primitives import serialization

    private = serialization.load_pem_private_key(generate_private_key_pem(algorithm).encode(), None)
    return SigningKey("kid-1", algorithm, private, None)  # type: ignore[arg-type]


@pytest.mark.parametrize("algorithm", ["RS384", "ES384"])
def test_an_assertion_verifies_with_the_public_key_and_carries_rfc_7523_claims(algorithm):
    signing = key(algorithm)
    made = client_assertion(signing, client_id="bridge", token_url="https://ehr/token", now=1000)
    claims = jwt.decode(
        made.value,
        signing.private_key.public_key(),
        algorithms=[algorithm],
        audience="https://ehr/token",
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["iss"] == claims["sub"] == "bridge"
    assert claims["exp"] - 1000 == ASSERTION_LIFETIME_SECONDS <= 300
    assert claims["jti"] == made.jti
    assert jwt.get_unverified_header(made.value) == {"alg": algorithm, "kid": "kid-1", "typ": "JWT"}


def test_two_assertions_never_share_a_jti():
    signing = key("RS384")
    jtis = {
        client_assertion(signing, client_id="b", token_url="https://e/t", now=0).jti
        for _ in range(100)
    }
    assert len(jtis) == 100


def test_an_assertion_is_never_shown_by_repr():
    made = client_assertion(key("RS384"), client_id="b", token_url="https://e/t", now=0)
    assert made.value not in repr(made)
