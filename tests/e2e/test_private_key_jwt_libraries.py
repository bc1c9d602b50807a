"""Real client libraries get tokens with ``private_key_jwt`` over HTTP, through the dev host.

Two independent implementations sign the assertions: Authlib's ``PrivateKeyJWT`` (JOSE by
joserfc) and requests-oauth2client's ``PrivateKeyJwt`` (JOSE by jwskate); the app verifies
them with PyJWT. Keys are registered through the management API, as an operator would, once
inline and once as a JWKS URL served over HTTPS from a throwaway CA.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from shared.services import Services
from shared.tables import EXPIRING_TABLE
from shared.tenants import TenantMapping
from tests.conftest import ADMIN_KEY, empty_tables
from tests.support.app import app_services, served_app
from tools.testkit.backend_client import BackendKey, JwksServer

pytestmark = pytest.mark.e2e


@dataclass
class Stack:
    base: str
    services: Services
    jwks_server: JwksServer

    @property
    def token_url(self) -> str:
        return f"{self.base}/api/oauth2/token"


@pytest.fixture(scope="module")
def stack(azurite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with (
        JwksServer() as jwks_server,
        app_services(
            azurite,
            Path(tmp_path_factory.mktemp("pkjwt")),
            # The JWKS server is on loopback: the development address policy, and its CA.
            EHRB_ALLOW_INSECURE_PROVIDER_URLS="true",
            EHRB_CLIENT_JWKS_CA_BUNDLE=jwks_server.ca_path,
        ) as services,
    ):
        with served_app() as base:
            yield Stack(base, services, jwks_server)
        # The refusal below failed from 127.0.0.1: leave no shared throttle count behind.
        empty_tables(services.table_service, EXPIRING_TABLE)


def register(stack: Stack, keys: dict[str, Any]) -> tuple[str, str]:
    """A client registered and given keys through the management API; (client_id, tenant)."""
    admin = {"x-functions-key": ADMIN_KEY}
    created = requests.post(
        f"{stack.base}/api/manage/clients",
        json={"display_name": "Backend service"},
        headers=admin,
        timeout=10,
    )
    assert created.status_code == 201
    client_id = created.json()["client_id"]
    put = requests.put(
        f"{stack.base}/api/manage/clients/{client_id}/keys", json=keys, headers=admin, timeout=10
    )
    assert put.status_code == 200, put.text
    tenant = TenantMapping(
        tenant_id=str(uuid.uuid4()),
        provider_base_url="https://fhir.hospital.example/r4",
        provider_fhir_version="r4",
        allowed_client_ids=(client_id,),
    )
    stack.services.tenants.put(tenant)
    stack.services.lookups.forget()
    return client_id, tenant.tenant_id


def authlib_session(stack: Stack, client_id: str, key: BackendKey) -> Any:
    from authlib.integrations.requests_client import OAuth2Session
    from authlib.oauth2.rfc7523 import PrivateKeyJWT
    from joserfc.jwk import import_key

    class FiveMinutePrivateKeyJWT(PrivateKeyJWT):  # type: ignore[misc]
        """Authlib's method with SMART's lifetime: its default ``exp`` is an hour ahead.

        Fresh claims for every assertion: Authlib adds the ``jti`` to the dict it is given,
        so a dict passed once would carry one ``jti`` into every request (a replay).
        """

        def sign(self, auth: Any, token_endpoint: str) -> str:
            self.claims = {"exp": int(time.time()) + 240}
            return str(super().sign(auth, token_endpoint))

    private = import_key(key.private_jwk())
    method = FiveMinutePrivateKeyJWT(stack.token_url, headers={"kid": key.kid}, alg=key.alg)
    session = OAuth2Session(client_id, private, token_endpoint_auth_method=method)
    session.register_client_auth_method(method)
    return session


def test_authlib_private_key_jwt_gets_a_token_with_an_inline_rs384_key(stack):
    key = BackendKey("RS384")
    client_id, tenant_id = register(stack, {"jwks": key.jwks()})
    with authlib_session(stack, client_id, key) as session:
        token = session.fetch_token(
            stack.token_url, grant_type="client_credentials", scope=tenant_id
        )
    claims = jwt.decode(token["access_token"], options={"verify_signature": False})
    assert claims["client_id"] == client_id
    assert claims["tid"] == tenant_id


def test_authlib_private_key_jwt_gets_two_tokens_with_two_assertions(stack):
    key = BackendKey("ES384")
    client_id, tenant_id = register(stack, {"jwks": key.jwks()})
    with authlib_session(stack, client_id, key) as session:
        for _ in range(2):
            token = session.fetch_token(
                stack.token_url, grant_type="client_credentials", scope=tenant_id
            )
            assert token["token_type"].lower() == "bearer"


def oauth2client(stack: Stack, auth: Any) -> Any:
    from requests_oauth2client import OAuth2Client

    # testing=True lifts only its https check: the dev host speaks plain HTTP (in Azure the
    # app is HTTPS-only), as OAUTHLIB_INSECURE_TRANSPORT does for oauthlib elsewhere.
    return OAuth2Client(token_endpoint=stack.token_url, auth=auth, testing=True)


def test_requests_oauth2client_private_key_jwt_gets_a_token_with_a_jwks_url(stack):
    from jwskate import Jwk
    from requests_oauth2client import PrivateKeyJwt

    key = BackendKey("ES384")
    stack.jwks_server.document = key.jwks()
    client_id, tenant_id = register(stack, {"jwks_uri": stack.jwks_server.url})
    auth = PrivateKeyJwt(client_id, Jwk(key.private_jwk()), alg="ES384", lifetime=240)
    client = oauth2client(stack, auth)
    token = client.client_credentials(scope=tenant_id)
    claims = jwt.decode(str(token.access_token), options={"verify_signature": False})
    assert claims["client_id"] == client_id
    assert claims["sv"].startswith("jku.")


def test_requests_oauth2client_rs384_with_an_inline_key_gets_a_token(stack):
    from jwskate import Jwk
    from requests_oauth2client import PrivateKeyJwt

    key = BackendKey("RS384")
    client_id, tenant_id = register(stack, {"jwks": key.jwks()})
    auth = PrivateKeyJwt(client_id, Jwk(key.private_jwk()), alg="RS384", lifetime=240)
    client = oauth2client(stack, auth)
    assert client.client_credentials(scope=tenant_id).access_token


def test_requests_oauth2client_with_its_default_lifetime_is_refused_when_over_five_minutes(
    stack,
):
    from jwskate import Jwk
    from requests_oauth2client import InvalidClient, PrivateKeyJwt

    key = BackendKey("RS384")
    client_id, tenant_id = register(stack, {"jwks": key.jwks()})
    auth = PrivateKeyJwt(client_id, Jwk(key.private_jwk()), alg="RS384", lifetime=3600)
    client = oauth2client(stack, auth)
    with pytest.raises(InvalidClient):
        client.client_credentials(scope=tenant_id)
