"""End to end through the dev host: real OAuth client libraries against the real function app.

Azurite holds the tables, the local store the secrets; the dev host serves function_app.app.
The dev host speaks plain HTTP, so oauthlib's HTTPS check is relaxed here (OAUTHLIB_INSECURE_
TRANSPORT); in Azure the app is HTTPS-only with TLS 1.2 or later.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jwt
import pytest
import requests

from shared.services import Services
from shared.tables import EXPIRING_TABLE
from shared.tenants import TenantMapping
from tests.conftest import ADMIN_KEY, empty_tables
from tests.support.app import app_services, served_app

pytestmark = pytest.mark.e2e

ISSUER = "http://bridge.e2e/api/oauth2"
AUDIENCE = "http://bridge.e2e/api/fhir"


@dataclass
class Stack:
    base: str
    services: Services

    @property
    def token_url(self) -> str:
        return f"{self.base}/api/oauth2/token"


@pytest.fixture(scope="module")
def stack(azurite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with (
        app_services(
            azurite,
            Path(tmp_path_factory.mktemp("e2e")),
            OAUTHLIB_INSECURE_TRANSPORT="1",
            EHRB_TOKEN_ISSUER=ISSUER,
            EHRB_TOKEN_AUDIENCE=AUDIENCE,
            EHRB_TOKEN_FAILURE_LIMIT="5",
        ) as services,
        served_app() as base,
    ):
        yield Stack(base, services)


@pytest.fixture
def registered(stack: Stack) -> tuple[str, str, str]:
    """A fresh client and a tenant that allows it: (client_id, secret, tenant_id)."""
    issued = stack.services.clients.register("Teams Patients app")
    tenant = TenantMapping(
        tenant_id=str(uuid.uuid4()),
        provider_base_url="https://fhir.hospital.example/r4",
        provider_fhir_version="r4",
        allowed_client_ids=(issued.client.client_id,),
    )
    stack.services.tenants.put(tenant)
    # As the management API does after a change: this instance sees the new client at once.
    stack.services.lookups.forget()
    return issued.client.client_id, issued.secret, tenant.tenant_id


def verify_over_http(stack: Stack, token: str) -> dict:
    """Verify the way a resource server would: fetch the JWKS over HTTP, check everything."""
    jwks = jwt.PyJWKClient(f"{stack.base}/api/oauth2/jwks")
    key = jwks.get_signing_key_from_jwt(token)
    return jwt.decode(token, key.key, algorithms=["RS256"], audience=AUDIENCE, issuer=ISSUER)


def test_requests_oauthlib_backend_client_gets_a_token_with_basic_auth(stack, registered):
    from oauthlib.oauth2 import BackendApplicationClient
    from requests.auth import HTTPBasicAuth
    from requests_oauthlib import OAuth2Session

    client_id, secret, tenant_id = registered
    session = OAuth2Session(client=BackendApplicationClient(client_id=client_id))
    token = session.fetch_token(
        stack.token_url, auth=HTTPBasicAuth(client_id, secret), scope=[tenant_id]
    )
    assert token["token_type"] == "Bearer"
    assert token["scope"] == [tenant_id]
    claims = verify_over_http(stack, token["access_token"])
    assert claims["tid"] == tenant_id
    assert claims["client_id"] == client_id


def test_requests_oauthlib_with_credentials_in_the_body_gets_a_token(stack, registered):
    from oauthlib.oauth2 import BackendApplicationClient
    from requests_oauthlib import OAuth2Session

    client_id, secret, tenant_id = registered
    session = OAuth2Session(client=BackendApplicationClient(client_id=client_id))
    token = session.fetch_token(
        stack.token_url, client_secret=secret, include_client_id=True, scope=[tenant_id]
    )
    assert token["expires_in"] == stack.services.settings.token_lifetime_seconds


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_authlib_session_gets_a_token(stack, registered, method):
    from authlib.integrations.requests_client import OAuth2Session

    client_id, secret, tenant_id = registered
    with OAuth2Session(
        client_id, secret, scope=tenant_id, token_endpoint_auth_method=method
    ) as session:
        token = session.fetch_token(stack.token_url, grant_type="client_credentials")
    assert verify_over_http(stack, token["access_token"])["sub"] == client_id


def test_authlib_sees_invalid_client_for_a_wrong_secret(stack, registered):
    from authlib.integrations.base_client.errors import OAuthError
    from authlib.integrations.requests_client import OAuth2Session

    client_id, _, tenant_id = registered
    with (
        OAuth2Session(client_id, "wrong-secret", scope=tenant_id) as session,
        pytest.raises(OAuthError) as raised,
    ):
        session.fetch_token(stack.token_url, grant_type="client_credentials")
    assert raised.value.error == "invalid_client"


def test_the_patients_app_flow_discovers_the_token_url_in_metadata(stack, registered):
    client_id, secret, tenant_id = registered
    metadata = requests.get(f"{stack.base}/api/fhir/stu3/metadata", timeout=5).json()
    extension = metadata["rest"][0]["security"]["extension"][0]
    token_url = next(e["valueUri"] for e in extension["extension"] if e["url"] == "token")
    assert token_url == stack.token_url
    # The guide's own example misspells grant_type; the partner accepts it.
    response = requests.post(
        token_url,
        data={
            "grant-type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
            "scope": tenant_id,
        },
        timeout=5,
    )
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"


def test_wrong_basic_secret_gets_401_with_a_basic_challenge_over_http(stack, registered):
    client_id, _, tenant_id = registered
    response = requests.post(
        stack.token_url,
        auth=(client_id, "wrong"),
        data={"grant_type": "client_credentials", "scope": tenant_id},
        timeout=5,
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert response.json()["error"] == "invalid_client"


def test_get_on_the_token_endpoint_is_405_allow_post(stack):
    response = requests.get(stack.token_url, timeout=5)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert response.json()["error"] == "invalid_request"


def test_repeated_failures_are_slowed_down_over_http(stack, registered):
    client_id, _, tenant_id = registered
    data = {"grant_type": "client_credentials", "scope": tenant_id}
    statuses = [
        requests.post(stack.token_url, auth=(client_id, "bad"), data=data, timeout=5).status_code
        for _ in range(6)
    ]
    assert statuses[:5] == [401] * 5
    assert statuses[5] == 429


def test_forged_forwarded_hops_do_not_escape_the_address_limit_over_http(stack):
    """Row 77: the dev host appends the peer as the front end does; the caller's hops count
    for nothing."""
    statuses: list[int] = []
    try:
        for n in range(27):  # 5 x EHRB_TOKEN_FAILURE_LIMIT per address, and two more
            data = {"grant_type": "client_credentials", "client_id": str(uuid.uuid4())}
            headers = {"X-Forwarded-For": f"198.51.100.{n}"}
            response = requests.post(
                stack.token_url, data={**data, "client_secret": "x"}, headers=headers, timeout=5
            )
            statuses.append(response.status_code)
    finally:
        # The tests that follow share this stack and its address (127.0.0.1): a fresh throttle,
        # in this instance's memory and in the counts every instance shares.
        del stack.services.token_endpoint
        empty_tables(stack.services.table_service, EXPIRING_TABLE)
    # Earlier tests of this module may have failed from 127.0.0.1 too: 429 comes at the latest
    # after 25 failures, and stays.
    first = statuses.index(429)
    assert set(statuses[:first]) == {401} and set(statuses[first:]) == {429}


def test_management_over_http_needs_the_admin_key(stack):
    assert requests.get(f"{stack.base}/api/manage/clients", timeout=5).status_code == 401
    response = requests.get(
        f"{stack.base}/api/manage/clients", headers={"x-functions-key": ADMIN_KEY}, timeout=5
    )
    assert response.status_code == 200


def test_client_registered_over_http_gets_a_token_and_rotation_invalidates_it(stack):
    headers = {"x-functions-key": ADMIN_KEY}
    created = requests.post(
        f"{stack.base}/api/manage/clients",
        json={"display_name": "Registered over HTTP"},
        headers=headers,
        timeout=5,
    ).json()
    tenant_id = str(uuid.uuid4())
    mapped = requests.put(
        f"{stack.base}/api/manage/tenants/{tenant_id}",
        json={
            "provider_base_url": "https://fhir.hospital.example/r4",
            "provider_fhir_version": "r4",
            "allowed_client_ids": [created["client_id"]],
        },
        headers=headers,
        timeout=5,
    )
    assert mapped.status_code == 201

    def token_status(secret: str) -> int:
        basic = base64.b64encode(f"{created['client_id']}:{secret}".encode()).decode()
        return requests.post(
            stack.token_url,
            headers={"Authorization": f"Basic {basic}"},
            data={"grant_type": "client_credentials", "scope": tenant_id},
            timeout=5,
        ).status_code

    assert token_status(created["client_secret"]) == 200
    rotated = requests.post(
        f"{stack.base}/api/manage/clients/{created['client_id']}/secrets",
        headers=headers,
        timeout=5,
    )
    assert rotated.status_code == 201
    assert token_status(rotated.json()["client_secret"]) == 200
    assert token_status(created["client_secret"]) == 401


def test_health_reports_dependencies_without_addresses(stack):
    response = requests.get(f"{stack.base}/api/health", timeout=5)
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"tables": "ok", "signing_key": "ok"},
    }
    assert "127.0.0.1" not in response.text


def test_jwks_serves_public_keys_only(stack):
    keys = requests.get(f"{stack.base}/api/oauth2/jwks", timeout=5).json()["keys"]
    assert keys
    for key in keys:
        assert {"kty", "kid", "alg", "use", "n", "e"} <= set(key)
        assert "d" not in key and "p" not in key


def test_host_admin_routes_are_not_served_by_the_app(stack):
    for path in ("/admin/host/status", "/api/admin/host/status", "/runtime/webhooks/x"):
        assert requests.get(f"{stack.base}{path}", timeout=5).status_code == 404
