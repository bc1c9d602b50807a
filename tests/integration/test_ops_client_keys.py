"""``ops clients keys | set-keys | remove-keys``: a client's private_key_jwt keys from the CLI."""

from __future__ import annotations

import json

from shared.auth.clients import IssuedSecret
from shared.services import Services
from tests.integration.test_ops_cli import ops
from tools.testkit.backend_client import BackendKey


def test_set_keys_from_stdin_registers_the_public_keys(services: Services, client: IssuedSecret):
    key = BackendKey("ES384", kid="cli-key")
    run = ops(
        services,
        "clients",
        "set-keys",
        client.client.client_id,
        "--jwks-file",
        "-",
        stdin=json.dumps(key.jwks()),
    )
    assert run.code == 0, run.err
    assert [k["kid"] for k in run.json()["jwks"]] == ["cli-key"]
    shown = ops(services, "clients", "keys", client.client.client_id).json()
    assert shown["token_endpoint_auth_method"] == "private_key_jwt"


def test_set_keys_with_a_jwks_url_registers_it(services: Services, client: IssuedSecret):
    url = "https://keys.backend.example/jwks.json"
    run = ops(services, "clients", "set-keys", client.client.client_id, "--jwks-uri", url)
    assert run.code == 0, run.err
    assert run.json()["jwks_uri"] == url


def test_set_keys_refuses_a_private_key_with_exit_2(services: Services, client: IssuedSecret):
    key = BackendKey("RS384")
    run = ops(
        services,
        "clients",
        "set-keys",
        client.client.client_id,
        "--jwks-file",
        "-",
        stdin=json.dumps({"keys": [key.private_jwk()]}),
    )
    assert run.code == 2
    assert "private members" in run.err
    assert key.private_jwk()["d"] not in run.err + run.out


def test_remove_keys_leaves_no_private_key_jwt(services: Services, client: IssuedSecret):
    url = "https://keys.backend.example/jwks.json"
    ops(services, "clients", "set-keys", client.client.client_id, "--jwks-uri", url)
    run = ops(services, "clients", "remove-keys", client.client.client_id)
    assert run.code == 0
    assert run.json()["token_endpoint_auth_method"] is None


def test_set_keys_refuses_a_jwks_url_at_the_metadata_address(
    services: Services, client: IssuedSecret
):
    url = "https://169.254.169.254/metadata/jwks"
    run = ops(services, "clients", "set-keys", client.client.client_id, "--jwks-uri", url)
    assert run.code == 2
    assert "never connects to" in run.err
