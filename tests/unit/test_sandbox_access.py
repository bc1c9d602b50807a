"""The sandbox API key: provisioning, constant-time matching, caching and derived values."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta

import pytest

from shared.sandbox.access import (
    SANDBOX_KEY_SECRET,
    SandboxKey,
    SandboxKeyMissing,
    ensure_sandbox_key,
)
from shared.secret_store import LocalSecretStore, SecretStoreUnavailable, utcnow


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingStore(LocalSecretStore):
    """An in-memory store that counts version listings (one per key load)."""

    def __init__(self) -> None:
        super().__init__(None)
        self.listings = 0

    def list_versions(self, name: str):  # type: ignore[no-untyped-def]
        self.listings += 1
        return super().list_versions(name)


class DownStore(LocalSecretStore):
    def __init__(self) -> None:
        super().__init__(None)

    def list_versions(self, name: str):  # type: ignore[no-untyped-def]
        raise SecretStoreUnavailable("throttled", retry_after=7)


@pytest.fixture
def store() -> CountingStore:
    return CountingStore()


def test_ensure_creates_a_256_bit_urlsafe_key_once(store):
    key = ensure_sandbox_key(store)
    assert len(base64.urlsafe_b64decode(key + "=")) == 32
    assert ensure_sandbox_key(store) == key
    assert len(store.list_versions(SANDBOX_KEY_SECRET)) == 1


def test_ensure_replaces_a_key_whose_only_version_is_disabled(store):
    old = store.set_secret(SANDBOX_KEY_SECRET, "old-key")
    store.update_version(SANDBOX_KEY_SECRET, old.version, enabled=False)
    assert ensure_sandbox_key(store) != "old-key"


def test_the_provisioned_key_matches(store):
    key = SandboxKey(store, 60)
    assert key.matches(ensure_sandbox_key(store))


def test_another_value_does_not_match(store):
    value = ensure_sandbox_key(store)
    key = SandboxKey(store, 60)
    assert not key.matches(value[:-1])
    assert not key.matches(value + "x")
    assert not key.matches("")


def test_a_non_ascii_presented_value_does_not_match_and_does_not_raise(store):
    ensure_sandbox_key(store)
    assert not SandboxKey(store, 60).matches("clé-ünïcode")


def test_a_missing_key_raises_key_missing_naming_the_secret(store):
    with pytest.raises(SandboxKeyMissing, match=SANDBOX_KEY_SECRET):
        SandboxKey(store, 60).matches("anything")


def test_an_unavailable_store_propagates(store):
    with pytest.raises(SecretStoreUnavailable):
        SandboxKey(DownStore(), 60).matches("anything")


def test_the_newest_usable_version_is_the_key(store):
    store.set_secret(SANDBOX_KEY_SECRET, "first-key")
    store.set_secret(SANDBOX_KEY_SECRET, "second-key")
    key = SandboxKey(store, 60)
    assert key.matches("second-key")
    assert not key.matches("first-key")


def test_an_expired_newest_version_falls_back_to_the_previous_one(store):
    store.set_secret(SANDBOX_KEY_SECRET, "first-key")
    store.set_secret(SANDBOX_KEY_SECRET, "expired-key", expires_on=utcnow() - timedelta(hours=1))
    assert SandboxKey(store, 60).matches("first-key")


def test_the_key_is_read_once_per_ttl(store):
    ensure_sandbox_key(store)
    clock = Clock()
    key = SandboxKey(store, 60, clock=clock)
    before = store.listings
    for _ in range(5):
        key.matches("x")
    assert store.listings - before == 1
    clock.now += 61
    key.matches("x")
    assert store.listings - before == 2


def test_a_rotated_key_takes_effect_after_the_ttl(store):
    store.set_secret(SANDBOX_KEY_SECRET, "old-key")
    clock = Clock()
    key = SandboxKey(store, 60, clock=clock)
    assert key.matches("old-key")
    store.set_secret(SANDBOX_KEY_SECRET, "new-key")
    assert key.matches("old-key")
    clock.now += 61
    assert key.matches("new-key")
    assert not key.matches("old-key")


def test_derive_is_hmac_sha256_of_the_purpose_under_the_key(store):
    store.set_secret(SANDBOX_KEY_SECRET, "the-key")
    derived = SandboxKey(store, 60).derive("ui-session")
    # RFC 4231 construction, computed here independently of the implementation's helpers.
    block = b"the-key".ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block) + b"ui-session").digest()
    assert derived == hashlib.sha256(bytes(b ^ 0x5C for b in block) + inner).hexdigest()


def test_derived_values_differ_by_purpose_and_by_key(store):
    store.set_secret(SANDBOX_KEY_SECRET, "key-one")
    one = SandboxKey(store, 60)
    other_store = LocalSecretStore(None)
    other_store.set_secret(SANDBOX_KEY_SECRET, "key-two")
    two = SandboxKey(other_store, 60)
    assert one.derive("a") != one.derive("b")
    assert one.derive("a") != two.derive("a")
