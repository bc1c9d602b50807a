"""shared/jose/jwk.py: a JWK Set keeps only the public keys we would verify with."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from shared.jose.fetch import cache_max_age
from shared.jose.jwk import InvalidKeySet, parse_key_set


def b64(number: int, size: int | None = None) -> str:
    raw = number.to_bytes(size or (number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def rsa_jwk(kid: str = "r1", bits: int = 2048, **extra: Any) -> dict[str, Any]:
    numbers = rsa.generate_private_key(65537, bits).public_key().public_numbers()
    return {"kty": "RSA", "kid": kid, "n": b64(numbers.n), "e": b64(numbers.e), **extra}


def ec_jwk(kid: str = "e1", curve: str = "P-384", **extra: Any) -> dict[str, Any]:
    size = 48 if curve == "P-384" else 32
    key = ec.generate_private_key(ec.SECP384R1() if curve == "P-384" else ec.SECP256R1())
    point = key.public_key().public_numbers()
    return {
        "kty": "EC",
        "kid": kid,
        "crv": curve,
        "x": b64(point.x, size),
        "y": b64(point.y, size),
        **extra,
    }


def test_rsa_and_ec_public_keys_are_kept_by_kid():
    keys = parse_key_set({"keys": [rsa_jwk("r"), ec_jwk("e")]})
    assert set(keys.keys) == {"r", "e"}
    assert keys.get("r").usable_with("RS384")
    assert keys.get("e").usable_with("ES384")


def test_a_key_is_usable_only_with_algorithms_of_its_type_and_curve():
    keys = parse_key_set({"keys": [rsa_jwk("r"), ec_jwk("e", "P-256")]})
    assert not keys.get("r").usable_with("ES256")
    assert not keys.get("e").usable_with("ES384")
    assert keys.get("e").usable_with("ES256")


def test_a_keys_own_alg_restricts_it_to_that_algorithm():
    key = parse_key_set({"keys": [rsa_jwk("r", alg="RS256")]}).get("r")
    assert key.usable_with("RS256")
    assert not key.usable_with("RS384")


@pytest.mark.parametrize("algorithm", ["HS256", "none", "", "RS1"])
def test_no_key_is_usable_with_an_algorithm_outside_the_table(algorithm):
    assert not parse_key_set({"keys": [rsa_jwk("r")]}).get("r").usable_with(algorithm)


@pytest.mark.parametrize("member", ["d", "p", "q", "dp", "dq", "qi", "k"])
def test_a_key_carrying_a_private_member_is_left_out(member):
    keys = parse_key_set({"keys": [rsa_jwk("r", **{member: "AQAB"})]})
    assert keys.get("r") is None
    assert keys.skipped == 1


def test_a_symmetric_key_is_left_out():
    keys = parse_key_set({"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]})
    assert keys.keys == {}


def test_an_rsa_key_shorter_than_2048_bits_is_left_out():
    assert parse_key_set({"keys": [rsa_jwk("r", bits=1024)]}).get("r") is None


def test_a_key_for_encryption_or_without_verify_is_left_out():
    keys = parse_key_set({"keys": [rsa_jwk("enc", use="enc"), rsa_jwk("ops", key_ops=["encrypt"])]})
    assert keys.keys == {}


def test_a_key_without_a_kid_is_left_out():
    jwk = rsa_jwk()
    del jwk["kid"]
    assert parse_key_set({"keys": [jwk]}).keys == {}


def test_two_keys_with_one_kid_are_both_left_out():
    keys = parse_key_set({"keys": [rsa_jwk("same"), rsa_jwk("same"), rsa_jwk("other")]})
    assert set(keys.keys) == {"other"}


def test_an_ec_point_off_the_curve_is_left_out():
    jwk = ec_jwk("e")
    jwk["y"] = jwk["x"]
    assert parse_key_set({"keys": [jwk]}).get("e") is None


def test_an_ec_coordinate_of_the_wrong_length_is_left_out():
    jwk = ec_jwk("e", "P-384")
    jwk["x"] = b64(5, 32)
    assert parse_key_set({"keys": [jwk]}).get("e") is None


def test_malformed_base64_leaves_the_key_out():
    assert parse_key_set({"keys": [rsa_jwk("r", n="not base64!")]}).get("r") is None


def test_entras_issuer_member_is_kept_with_the_key():
    key = parse_key_set({"keys": [rsa_jwk("r", issuer="https://x/{tenantid}/v2.0")]}).get("r")
    assert key.issuer == "https://x/{tenantid}/v2.0"


@pytest.mark.parametrize("document", [[], {"keys": "x"}, {"kid": "r"}, "keys", None])
def test_a_document_that_is_no_jwk_set_is_refused(document):
    with pytest.raises(InvalidKeySet):
        parse_key_set(document)


def test_a_set_of_more_than_a_hundred_keys_is_refused():
    with pytest.raises(InvalidKeySet):
        parse_key_set({"keys": [{"kty": "oct"}] * 101})


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("max-age=86400, private", 86400),
        ("public, max-age=60", 60),
        ('max-age="30"', 30),
        ("no-store", 0),
        ("no-cache, max-age=600", 0),
        ("private", None),
    ],
)
def test_cache_control_gives_the_reuse_time(value, seconds):
    assert cache_max_age({"Cache-Control": value}) == seconds


def test_no_cache_control_gives_no_reuse_time():
    assert cache_max_age({"Content-Type": "application/json"}) is None
