"""Client secrets at rest: hashed in Key Vault, either form authenticates, rotations queue."""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

import pytest

from shared.auth.client_secrets import hash_secret, is_hashed
from shared.auth.clients import ClientConflict, ClientRegistry
from shared.ids import client_secret_name
from shared.secret_store import LocalSecretStore, SecretVersion, utcnow
from shared.services import Services
from tests.conftest import request_token
from tests.integration.test_ops_cli import ops


def token_status(services: Services, client: Any, secret: str, tenant_id: str) -> int:
    fields = {
        "grant_type": "client_credentials",
        "scope": tenant_id,
        "client_id": client.client.client_id,
        "client_secret": secret,
    }
    services.lookups.forget()
    return request_token(services, fields).status


def stored_values(store: LocalSecretStore, client: Any) -> list[str]:
    name = client_secret_name(client.client.client_id)
    return [store.get_secret(name, v.version).value for v in store.list_versions(name) if v.enabled]


def test_row_106_key_vault_holds_the_secrets_hash_not_the_secret(
    services, secret_store, client, tenant
):
    (stored,) = stored_values(secret_store, client)
    assert stored == "sha256:" + hashlib.sha256(client.secret.encode()).hexdigest()
    assert client.secret not in stored
    assert token_status(services, client, client.secret, tenant.tenant_id) == 200


def test_row_106_a_rotated_secret_is_stored_hashed_and_shown_once_in_clear(
    services, secret_store, client, tenant
):
    issued = services.clients.rotate_secret(client.client.client_id)
    assert not is_hashed(issued.secret)
    assert stored_values(secret_store, client) == [hash_secret(issued.secret)]
    assert token_status(services, client, issued.secret, tenant.tenant_id) == 200


def test_row_106_a_plain_version_added_by_hand_still_authenticates(
    services, secret_store, client, tenant
):
    name = client_secret_name(client.client.client_id)
    secret_store.set_secret(name, "hand-made-plain-secret-" + "p" * 20)
    assert (
        token_status(services, client, "hand-made-plain-secret-" + "p" * 20, tenant.tenant_id)
        == 200
    )


def test_row_106_a_hashed_version_made_with_sha256sum_authenticates(
    services, secret_store, client, tenant
):
    # What `printf %s "$NEW" | sha256sum` prints, with the prefix, as the runbook makes it.
    new = "hand-rotated-secret-" + "h" * 24
    name = client_secret_name(client.client.client_id)
    secret_store.set_secret(name, "sha256:" + hashlib.sha256(new.encode()).hexdigest() + "\n")
    assert token_status(services, client, new, tenant.tenant_id) == 200
    # The hash itself is not a secret that works.
    assert token_status(services, client, hash_secret(new), tenant.tenant_id) == 401


def test_row_106_hash_secrets_migrates_plain_versions_without_changing_the_secret(
    services, secret_store, client, tenant
):
    name = client_secret_name(client.client.client_id)
    plain = "older-plain-secret-" + "o" * 24
    secret_store.set_secret(name, plain)
    run = ops(services, "clients", "hash-secrets", client.client.client_id)
    assert run.code == 0, run.err
    result = run.json()["clients"][client.client.client_id]
    assert len(result["hashed_versions"]) == 1 and len(result["disabled_versions"]) == 1
    assert all(is_hashed(value) for value in stored_values(secret_store, client))
    assert token_status(services, client, plain, tenant.tenant_id) == 200
    assert token_status(services, client, client.secret, tenant.tenant_id) == 200


class SlowStore(LocalSecretStore):
    """A store whose writes take a while: rotations that are not serialised overlap."""

    def set_secret(self, name: str, value: str, **kwargs: Any) -> SecretVersion:
        time.sleep(0.2)
        return super().set_secret(name, value, **kwargs)


def test_row_107_concurrent_rotations_of_one_client_run_one_after_the_other(
    services, tmp_path, client
):
    store = SlowStore(tmp_path / "slow-secrets.json")
    registry = ClientRegistry(services.clients._table, store)
    name = client_secret_name(client.client.client_id)
    store.set_secret(name, hash_secret(client.secret))
    issued: list[Any] = []

    def rotate() -> None:
        issued.append(registry.rotate_secret(client.client.client_id, 0))

    threads = [threading.Thread(target=rotate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(issued) == 2
    usable = [v.version for v in store.list_versions(name) if v.is_usable(utcnow())]
    # Grace 0: only the secret handed out last works; it was never disabled by the other.
    assert usable == [issued[-1].version.version]


def test_row_107_a_rotation_elsewhere_is_a_conflict_while_one_runs(services, tmp_path, client):
    other_instance = ClientRegistry(services.clients._table, services.secret_store)
    outcome: list[BaseException] = []

    class RotatingElsewhere(LocalSecretStore):
        def set_secret(self, name: str, value: str, **kwargs: Any) -> SecretVersion:
            try:
                other_instance.rotate_secret(client.client.client_id, 0)
            except BaseException as error:
                outcome.append(error)
            return super().set_secret(name, value, **kwargs)

    registry = ClientRegistry(services.clients._table, RotatingElsewhere(tmp_path / "s.json"))
    registry.rotate_secret(client.client.client_id, 0)
    assert len(outcome) == 1 and isinstance(outcome[0], ClientConflict)
    # The lease is released: the next rotation goes through.
    other_instance.rotate_secret(client.client.client_id, 0)


@pytest.mark.parametrize("stored", ["plain-secret", "sha256:" + "0" * 64])
def test_a_wrong_secret_matches_neither_form(stored):
    from shared.auth.client_secrets import secret_matches

    assert not secret_matches("another-secret", stored)
