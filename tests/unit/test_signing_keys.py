"""Signing keys in the token-signing-key secret: which key signs, which keys are published."""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest

from shared.auth.signing_keys import (
    NoSigningKey,
    SigningKeys,
    ensure_signing_key,
    generate_private_key_pem,
    rotate_signing_key,
)
from shared.auth.tokens import issue_access_token
from shared.ids import SIGNING_KEY_NAME
from shared.secret_store import LocalSecretStore, utcnow


@pytest.fixture
def store() -> LocalSecretStore:
    return LocalSecretStore(None)


def keys(store: LocalSecretStore, algorithm: str = "RS256") -> SigningKeys:
    return SigningKeys(store, algorithm, ttl=60)


def sign(key) -> str:
    return issue_access_token(
        key,
        issuer="iss",
        audience="aud",
        client_id="c",
        tenant_id="t",
        secret_version="v",
        lifetime_seconds=300,
    ).access_token


def verify(store: LocalSecretStore, token: str) -> dict:
    jwks = jwt.PyJWKSet.from_dict(keys(store).jwks())
    kid = jwt.get_unverified_header(token)["kid"]
    return jwt.decode(token, jwks[kid].key, algorithms=["RS256"], audience="aud")


def test_no_key_means_no_signing(store):
    with pytest.raises(NoSigningKey):
        keys(store).current()


def test_ensure_signing_key_is_idempotent(store):
    first = ensure_signing_key(store, "RS256")
    assert ensure_signing_key(store, "RS256").version == first.version
    assert len(store.list_versions(SIGNING_KEY_NAME)) == 1


def test_newest_usable_key_signs_and_kid_is_its_version(store):
    rotate_signing_key(store, "RS256")
    newest = rotate_signing_key(store, "RS256")
    assert keys(store).current().kid == newest.version


def test_pending_key_is_published_before_it_signs(store):
    active = rotate_signing_key(store, "RS256")
    pending = rotate_signing_key(store, "RS256", activate_in=timedelta(minutes=5))
    signing = keys(store)
    assert signing.current().kid == active.version
    published = {k["kid"] for k in signing.jwks()["keys"]}
    assert published == {active.version, pending.version}


def test_tokens_of_the_previous_key_verify_until_it_retires(store):
    old = rotate_signing_key(store, "RS256")
    token = sign(keys(store).current())
    rotate_signing_key(store, "RS256", retire_previous_after=timedelta(minutes=20))
    assert keys(store).current().kid != old.version
    assert verify(store, token)["tid"] == "t"
    props = {v.version: v for v in store.list_versions(SIGNING_KEY_NAME)}
    assert props[old.version].expires_on is not None


def test_retired_key_leaves_the_jwks(store):
    old = rotate_signing_key(store, "RS256")
    rotate_signing_key(store, "RS256")
    store.update_version(SIGNING_KEY_NAME, old.version, expires_on=utcnow() - timedelta(seconds=1))
    assert old.version not in {k["kid"] for k in keys(store).jwks()["keys"]}


def test_disabled_key_neither_signs_nor_is_published(store):
    good = rotate_signing_key(store, "RS256")
    bad = rotate_signing_key(store, "RS256")
    store.update_version(SIGNING_KEY_NAME, bad.version, enabled=False)
    signing = keys(store)
    assert signing.current().kid == good.version
    assert {k["kid"] for k in signing.jwks()["keys"]} == {good.version}


def test_a_key_of_another_algorithm_is_never_used(store):
    rsa = rotate_signing_key(store, "RS256")
    rotate_signing_key(store, "ES256")
    assert keys(store, "RS256").current().kid == rsa.version
    assert all(k["kty"] == "RSA" for k in keys(store, "RS256").jwks()["keys"])


def test_jwks_carries_no_private_key_material(store):
    rotate_signing_key(store, "RS256")
    rotate_signing_key(store, "ES256")
    for algorithm in ("RS256", "ES256"):
        for jwk in keys(store, algorithm).jwks()["keys"]:
            assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk)
            assert jwk["use"] == "sig"
            assert jwk["alg"] == algorithm


def test_generated_keys_are_rsa_2048_and_p256():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    rsa_key = serialization.load_pem_private_key(generate_private_key_pem("RS256").encode(), None)
    ec_key = serialization.load_pem_private_key(generate_private_key_pem("ES256").encode(), None)
    assert isinstance(rsa_key, rsa.RSAPrivateKey) and rsa_key.key_size == 2048
    assert isinstance(ec_key, ec.EllipticCurvePrivateKey) and ec_key.curve.name == "secp256r1"
    with pytest.raises(ValueError):
        generate_private_key_pem("HS256")
