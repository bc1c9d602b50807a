"""One behaviour suite for every SecretStore: the local stores and Key Vault (real SDK, fake KV)."""

from __future__ import annotations

import json
import os
import stat
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.secret_store import (
    LocalSecretStore,
    LocalStoreRefused,
    SecretDisabled,
    SecretNotFound,
    SecretStore,
    disable_version,
    usable_secrets,
)
from tests.support.fake_keyvault import FakeKeyVault, keyvault_store, running_fake_keyvault


@pytest.fixture(scope="module")
def vault() -> Iterator[FakeKeyVault]:
    with running_fake_keyvault() as kv:
        yield kv


@pytest.fixture(params=["local-file", "local-memory", "keyvault"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SecretStore]:
    if request.param == "local-file":
        yield LocalSecretStore(tmp_path / "secrets.json")
    elif request.param == "local-memory":
        yield LocalSecretStore(None)
    else:
        # Started only when a Key Vault case runs, so local-only selections need no server.
        kv: FakeKeyVault = request.getfixturevalue("vault")
        with keyvault_store(kv, timeout_seconds=2.0) as s:
            yield s


@pytest.fixture
def name() -> str:
    return f"client-{uuid.uuid4().hex[:12]}"


def whole_seconds(moment: datetime) -> datetime:
    # Key Vault keeps attribute times in whole seconds; local stores keep microseconds.
    return moment.replace(microsecond=0)


# -- the shared contract -------------------------------------------------------------------------


def test_new_version_is_enabled_and_listed_newest_first(store: SecretStore, name: str) -> None:
    first = store.set_secret(name, "one")
    second = store.set_secret(name, "two")

    assert first.enabled and second.enabled
    assert first.is_usable() and second.state() == "active"
    assert first.version != second.version
    assert [v.version for v in store.list_versions(name)] == [second.version, first.version]
    assert all(v.name == name for v in store.list_versions(name))


def test_get_latest_returns_the_newest(store: SecretStore, name: str) -> None:
    store.set_secret(name, "old")
    newest = store.set_secret(name, "new")

    latest = store.get_secret(name)

    assert latest.value == "new"
    assert latest.properties.version == newest.version
    assert store.get_secret(name, newest.version).value == "new"


def test_disabled_version_refuses_reads_and_is_not_usable(store: SecretStore, name: str) -> None:
    kept = store.set_secret(name, "kept")
    dropped = store.set_secret(name, "dropped")

    result = disable_version(store, name, dropped.version)

    assert result.enabled is False and not result.is_usable() and result.state() == "disabled"
    with pytest.raises(SecretDisabled):
        store.get_secret(name, dropped.version)
    assert store.get_secret(name, kept.version).value == "kept"
    listed = {v.version: v for v in store.list_versions(name)}
    assert not listed[dropped.version].is_usable()
    assert listed[kept.version].is_usable()


def test_expired_version_is_readable_but_not_usable(store: SecretStore, name: str) -> None:
    past = whole_seconds(datetime.now(UTC) - timedelta(minutes=5))
    version = store.set_secret(name, "stale", expires_on=past).version

    got = store.get_secret(name, version)

    assert got.value == "stale"
    assert got.properties.expires_on == past
    assert not got.properties.is_usable() and got.properties.state() == "expired"


def test_expiry_set_later_takes_effect(store: SecretStore, name: str) -> None:
    version = store.set_secret(name, "rotating").version
    past = whole_seconds(datetime.now(UTC) - timedelta(seconds=30))

    updated = store.update_version(name, version, expires_on=past)

    assert updated.expires_on == past and not updated.is_usable()
    assert store.list_versions(name)[0].expires_on == past


def test_usable_secrets_returns_only_usable_versions_newest_first(
    store: SecretStore, name: str
) -> None:
    now = datetime.now(UTC)
    oldest = store.set_secret(name, "usable-1")
    store.set_secret(name, "expired", expires_on=whole_seconds(now - timedelta(hours=1)))
    pending = store.set_secret(name, "pending", not_before=whole_seconds(now + timedelta(hours=1)))
    disabled = store.set_secret(name, "disabled")
    disable_version(store, name, disabled.version)
    newest = store.set_secret(name, "usable-2", expires_on=whole_seconds(now + timedelta(days=1)))

    usable = usable_secrets(store, name)

    assert [s.value for s in usable] == ["usable-2", "usable-1"]
    assert [s.properties.version for s in usable] == [newest.version, oldest.version]
    assert pending.version not in {s.properties.version for s in usable}
    # Once its not-before has passed the pending version becomes usable: the store never checks.
    later = now + timedelta(hours=2)
    assert "pending" in [s.value for s in usable_secrets(store, name, now=later)]


def test_listings_carry_no_values(store: SecretStore, name: str) -> None:
    values = [f"value-{uuid.uuid4().hex}" for _ in range(3)]
    for value in values:
        store.set_secret(name, value, tags={"kind": "client-secret"})

    listed = store.list_versions(name)

    assert len(listed) == 3
    for item in listed:
        assert not hasattr(item, "value")
        assert item.tags == {"kind": "client-secret"}
    assert not any(v in repr(listed) for v in values)


def test_unknown_secret(store: SecretStore, name: str) -> None:
    assert store.list_versions(name) == []
    assert usable_secrets(store, name) == []
    with pytest.raises(SecretNotFound):
        store.get_secret(name)
    with pytest.raises(SecretNotFound):
        store.update_version(name, uuid.uuid4().hex, enabled=False)


def test_unknown_version_of_a_known_secret(store: SecretStore, name: str) -> None:
    store.set_secret(name, "known")
    with pytest.raises(SecretNotFound):
        store.get_secret(name, uuid.uuid4().hex)


def test_times_are_timezone_aware_utc(store: SecretStore, name: str) -> None:
    expires = whole_seconds(datetime.now(UTC) + timedelta(days=1))
    version = store.set_secret(name, "v", expires_on=expires)
    for props in (version, store.list_versions(name)[0], store.get_secret(name).properties):
        assert props.created_on.utcoffset() == timedelta(0)
        assert props.expires_on == expires


# -- LocalSecretStore only -----------------------------------------------------------------------


def test_local_store_refuses_to_start_in_azure(tmp_path: Path) -> None:
    with pytest.raises(LocalStoreRefused):
        LocalSecretStore(tmp_path / "secrets.json", running_in_azure=True)
    with pytest.raises(LocalStoreRefused):
        LocalSecretStore(None, running_in_azure=True)
    allowed = LocalSecretStore(
        tmp_path / "secrets.json", running_in_azure=True, allow_in_azure=True
    )
    allowed.set_secret("client-x", "throwaway")
    assert allowed.get_secret("client-x").value == "throwaway"


def test_two_local_instances_on_one_file_see_each_others_writes(tmp_path: Path) -> None:
    path = tmp_path / "shared" / "secrets.json"
    host = LocalSecretStore(path)
    cli = LocalSecretStore(path)

    first = host.set_secret("client-a", "from-host")
    second = cli.set_secret("client-a", "from-cli")
    disable_version(cli, "client-a", first.version)

    assert host.get_secret("client-a").value == "from-cli"
    assert [v.version for v in host.list_versions("client-a")] == [second.version, first.version]
    with pytest.raises(SecretDisabled):
        host.get_secret("client-a", first.version)


def test_local_file_is_written_atomically_with_owner_only_permissions(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    store = LocalSecretStore(path)
    for i in range(5):
        version = store.set_secret("client-a", f"value-{i}").version
    store.update_version("client-a", version, enabled=False)

    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secrets.json", "secrets.json.lock"]
    document = json.loads(path.read_text("utf-8"))
    assert len(document["secrets"]["client-a"]) == 5


def test_local_file_survives_a_failed_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "secrets.json"
    store = LocalSecretStore(path)
    store.set_secret("client-a", "safe")
    before = path.read_bytes()

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(json, "dump", crash)
    with pytest.raises(OSError, match="disk full"):
        store.set_secret("client-a", "lost")
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secrets.json", "secrets.json.lock"]
    assert store.get_secret("client-a").value == "safe"
