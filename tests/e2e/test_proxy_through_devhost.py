"""End to end through the dev host: a real FHIR client library reads through the real function app.

Azurite holds the tables, the local store the secrets, the dev host serves function_app.app, and
a fake R4 provider on 127.0.0.1 is mapped to a tenant (hence EHRB_ALLOW_INSECURE_PROVIDER_URLS).
The FHIR client is fhirpy with a bearer token from the token endpoint, over HTTP.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from shared.services import Services
from shared.tenants import TenantMapping
from tests.support.app import app_services, served_app
from tools.testkit.fake_fhir import FakeFhirServer, running_fake_fhir

pytestmark = pytest.mark.e2e

ISSUER = "http://bridge.e2e/api/oauth2"
AUDIENCE = "http://bridge.e2e/api/fhir"
TIMEOUT = 10
# Observations of Patient/example in the R4 fixtures, newest first (the last three share a date).
EXAMPLE_OBSERVATIONS = 5


@dataclass
class Stack:
    base: str
    services: Services

    @property
    def token_url(self) -> str:
        return f"{self.base}/api/oauth2/token"

    @property
    def face(self) -> str:
        return f"{self.base}/api/fhir/r4"


@dataclass
class Tenant:
    provider: FakeFhirServer
    token: str


@pytest.fixture(scope="module")
def stack(azurite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with (
        app_services(
            azurite,
            Path(tmp_path_factory.mktemp("e2e-proxy")),
            EHRB_TOKEN_ISSUER=ISSUER,
            EHRB_TOKEN_AUDIENCE=AUDIENCE,
            EHRB_ALLOW_INSECURE_PROVIDER_URLS="true",
        ) as services,
        served_app() as base,
    ):
        yield Stack(base, services)


@pytest.fixture(scope="module")
def tenant(stack: Stack) -> Iterator[Tenant]:
    """A fake R4 provider mapped to a fresh tenant, and a token for it from the token endpoint."""
    with running_fake_fhir(version="r4") as provider:
        issued = stack.services.clients.register("Teams Patients app")
        mapping = TenantMapping(
            tenant_id=str(uuid.uuid4()),
            provider_base_url=provider.base_url,
            provider_fhir_version="r4",
            allowed_client_ids=(issued.client.client_id,),
        )
        stack.services.tenants.put(mapping)
        answer = requests.post(
            stack.token_url,
            data={"grant_type": "client_credentials", "scope": mapping.tenant_id},
            auth=(issued.client.client_id, issued.secret),
            timeout=TIMEOUT,
        )
        assert answer.status_code == 200, answer.text
        yield Tenant(provider, answer.json()["access_token"])


@pytest.fixture
def fhir(stack: Stack, tenant: Tenant):
    from fhirpy import SyncFHIRClient

    return SyncFHIRClient(url=stack.face, authorization=f"Bearer {tenant.token}")


def bearer(tenant: Tenant) -> dict[str, str]:
    return {"Authorization": f"Bearer {tenant.token}"}


# -- a FHIR client library through the proxy ------------------------------------------------


def test_fhirpy_reads_patient_example_through_the_proxy(fhir, tenant):
    patient = fhir.reference("Patient", "example").to_resource()
    assert patient["id"] == "example"
    assert patient["name"][0]["family"] == "Chalmers"
    last = tenant.provider.last()
    assert (last.method, last.path) == ("GET", "/fhir/Patient/example")
    assert last.bearer is None  # the caller's token never reaches the provider


def test_fhirpy_searches_observations_by_patient_latest_first_with_count(fhir, tenant):
    observations = (
        fhir.resources("Observation").search(patient="example").sort("-date").limit(2).fetch()
    )
    assert [o["id"] for o in observations] == ["example", "blood-pressure"]
    params = dict(tenant.provider.last().params)
    assert params == {"patient": "example", "_sort": "-date", "_count": "2"}


def test_fhirpy_fetch_all_follows_next_pages_through_the_proxy(fhir, tenant):
    before = tenant.provider.count(path="Observation")
    # fhirpy refuses (ValueError) a next link outside its base URL: the links name the face.
    observations = fhir.resources("Observation").search(patient="example").limit(2).fetch_all()
    ids = [o["id"] for o in observations]
    assert len(ids) == len(set(ids)) == EXAMPLE_OBSERVATIONS
    pages = tenant.provider.requests()[-3:]
    assert tenant.provider.count(path="Observation") - before == 3
    assert ["_page" in dict(r.params) for r in pages] == [False, True, True]


def test_search_pages_name_the_face_and_never_the_provider(stack, fhir, tenant):
    bundle = fhir.resources("Observation").search(patient="example").limit(2).fetch_raw()
    text = json.dumps(bundle)
    assert tenant.provider.origin not in text
    assert f":{urlsplit(tenant.provider.origin).port}/" not in text
    next_url = next(link["url"] for link in bundle["link"] if link["relation"] == "next")
    assert next_url.startswith(f"{stack.face}/Observation?")


# -- plain HTTP through the dev host --------------------------------------------------------


def test_metadata_is_ehr_bridges_own_not_the_providers(stack, tenant):
    before = tenant.provider.count()
    response = requests.get(f"{stack.face}/metadata", timeout=TIMEOUT)
    assert response.status_code == 200
    statement = response.json()
    assert statement["software"]["name"] == "EHR Bridge"
    assert statement["implementation"]["url"] == stack.face
    assert tenant.provider.count() == before


def test_batch_posted_to_the_base_without_a_trailing_slash_works(stack, tenant):
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": "Patient/example"}},
            {"request": {"method": "GET", "url": "Condition?patient=example&_count=10"}},
        ],
    }
    response = requests.post(
        stack.face,
        data=json.dumps(batch),
        headers={**bearer(tenant), "Content-Type": "application/fhir+json"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["type"] == "batch-response"
    first, second = bundle["entry"]
    assert first["resource"]["id"] == "example"
    assert second["resource"]["type"] == "searchset"
    last = tenant.provider.last()
    assert (last.method, last.path) == ("POST", "/fhir")
    assert tenant.provider.origin not in response.text


def test_no_token_is_401_with_a_bearer_challenge(stack, tenant):
    before = tenant.provider.count()
    response = requests.get(f"{stack.face}/Patient/example", timeout=TIMEOUT)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["resourceType"] == "OperationOutcome"
    assert tenant.provider.count() == before


def test_encoded_traversal_is_400_and_the_provider_sees_nothing(stack, tenant):
    before = tenant.provider.count()
    response = requests.get(
        f"{stack.face}/Patient/..%2F..%2Fx", headers=bearer(tenant), timeout=TIMEOUT
    )
    assert response.status_code == 400
    assert response.json()["issue"][0]["code"] == "invalid"
    assert tenant.provider.count() == before


def test_content_length_with_transfer_encoding_is_400_at_the_devhost(stack, tenant):
    before = tenant.provider.count()
    parts = urlsplit(stack.base)
    body = b'{"resourceType":"Bundle","type":"batch"}'
    head = (
        f"POST /api/fhir/r4 HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Authorization: Bearer {tenant.token}\r\nContent-Type: application/fhir+json\r\n"
        f"Content-Length: {len(body)}\r\nTransfer-Encoding: chunked\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    with socket.create_connection((parts.hostname, parts.port), timeout=TIMEOUT) as sock:
        sock.sendall(head + chunked)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400"), answer[:80]
    assert tenant.provider.count() == before


def test_query_reaches_the_provider_as_sent_through_the_devhost(stack, tenant):
    query = "patient=example&category=vital-signs&_sort=-date&_count=3"
    response = requests.get(
        f"{stack.face}/Observation?{query}", headers=bearer(tenant), timeout=TIMEOUT
    )
    assert response.status_code == 200
    assert tenant.provider.last().query == query
    assert parse_qsl(query) == tenant.provider.last().params
