"""End to end through the dev host: an Entra ID app token in, a signed assertion out.

The whole path of issue 17 sections 4 and 5 over real HTTP: a calling app gets an app-only token
from the local Entra stand-in (tools/testkit/entra.py, HTTPS on loopback) with Authlib's OAuth
client; the dev host serving function_app.app verifies it against the stand-in's keys; the tenant's
provider requires private_key_jwt, and checks EHR Bridge's assertion against the JWKS that the dev
host itself publishes at /api/oauth2/assertion-jwks.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from shared.auth.signing_keys import ensure_signing_key
from shared.ids import ASSERTION_KEY_NAME
from shared.services import Services
from tests.conftest import ADMIN_KEY
from tests.support.app import app_services, served_app
from tools.testkit.entra import LocalEntra, running_entra
from tools.testkit.fake_fhir import FakeFhirServer, running_fake_fhir

pytestmark = pytest.mark.e2e

API_CLIENT_ID = "0a0b0c0d-1111-4222-8333-444455556666"
API_ID_URI = "api://ehr-bridge-e2e"
TIMEOUT = 10


@dataclass
class Stack:
    base: str
    services: Services
    entra: LocalEntra
    provider: FakeFhirServer

    def face(self, path: str) -> str:
        return f"{self.base}/api/fhir/stu3/{path}"


@pytest.fixture(scope="module")
def stack(azurite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with (
        running_entra() as entra,
        running_fake_fhir(version="r4", require_bearer=True) as provider,
        app_services(
            azurite,
            Path(tmp_path_factory.mktemp("e2e-signed")),
            EHRB_ALLOW_INSECURE_PROVIDER_URLS="true",
            EHRB_ENTRA_AUDIENCE=API_CLIENT_ID,
            EHRB_ENTRA_AUTHORITY=entra.authority,
            EHRB_ENTRA_CA_BUNDLE=entra.ca_path,
            EHRB_ASSERTION_ALGORITHM="ES384",
        ) as services,
    ):
        entra.register_api(API_ID_URI, API_CLIENT_ID)
        ensure_signing_key(services.secret_store, "ES384", secret_name=ASSERTION_KEY_NAME)
        with served_app() as base:
            provider.require_assertion("ehr-bridge", f"{base}/api/oauth2/assertion-jwks")
            yield Stack(base, services, entra, provider)


@pytest.fixture(scope="module")
def tenant(stack: Stack) -> tuple[str, str, str]:
    """A tenant opted in for one Entra app, its provider on private_key_jwt: (tid, app, secret)."""
    tenant_id = stack.entra.add_tenant()
    app = stack.entra.register_app(tenant_id, ("FHIR.Read",))
    answer = requests.put(
        f"{stack.base}/api/manage/tenants/{tenant_id}",
        json={
            "provider_base_url": stack.provider.base_url,
            "provider_fhir_version": "r4",
            "provider_auth_kind": "private_key_jwt",
            "provider_token_url": stack.provider.token_url,
            "provider_client_id": "ehr-bridge",
            "entra_app_ids": [app.app_id],
        },
        headers={"x-functions-key": ADMIN_KEY},
        timeout=TIMEOUT,
    )
    assert answer.status_code in (200, 201), answer.text
    return tenant_id, app.app_id, app.secret


def entra_token(stack: Stack, tenant_id: str, app_id: str, secret: str) -> str:
    """An app-only token from the stand-in's token endpoint, fetched by Authlib's client."""
    from authlib.integrations.requests_client import OAuth2Session

    session = OAuth2Session(app_id, secret, scope=f"{API_ID_URI}/.default")
    token = session.fetch_token(
        stack.entra.token_url(tenant_id),
        grant_type="client_credentials",
        verify=stack.entra.ca_path,
    )
    return str(token["access_token"])


def test_an_entra_app_token_reads_a_private_key_jwt_provider_through_the_dev_host(stack, tenant):
    tenant_id, app_id, secret = tenant
    token = entra_token(stack, tenant_id, app_id, secret)
    answer = requests.get(
        stack.face("Patient/example"), headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["resourceType"] == "Patient"
    assert stack.provider.last().bearer in stack.provider.issued_tokens
    assert stack.provider.assertions.jwks_fetches >= 1


def test_the_assertion_jwks_is_open_cacheable_and_holds_public_es384_keys(stack):
    answer = requests.get(f"{stack.base}/api/oauth2/assertion-jwks", timeout=TIMEOUT)
    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "public, max-age=60"
    keys = answer.json()["keys"]
    assert keys and all(k["alg"] == "ES384" and k["crv"] == "P-384" for k in keys)
    assert all("d" not in k for k in keys)
    access = requests.get(f"{stack.base}/api/oauth2/jwks", timeout=TIMEOUT).json()["keys"]
    assert {k["kid"] for k in keys}.isdisjoint(k["kid"] for k in access)


def test_an_entra_token_of_another_tenant_is_refused_over_http(stack, tenant):
    _, app_id, _ = tenant
    stranger = stack.entra.add_tenant()
    token = stack.entra.token(stranger, app_id, API_CLIENT_ID)
    answer = requests.get(
        stack.face("Patient/example"), headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT
    )
    assert answer.status_code == 401
    assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"]


def test_an_entra_token_cannot_buy_an_ehr_bridge_token(stack, tenant):
    tenant_id, app_id, secret = tenant
    token = entra_token(stack, tenant_id, app_id, secret)
    answer = requests.post(
        f"{stack.base}/api/oauth2/token",
        data={"grant_type": "client_credentials", "scope": tenant_id},
        headers={"Authorization": f"Bearer {token}"},
        timeout=TIMEOUT,
    )
    assert answer.status_code == 401
    assert uuid.UUID(tenant_id)  # the tenant exists, and still no token is issued
