"""End to end through the dev host: the sandbox provider over HTTP, and behind the proxy.

Azurite holds the tables (the sandbox's own among them), the local store the secrets, the dev
host serves function_app.app with EHRB_SANDBOX_ENABLED=true. One patient's R4 chart is loaded
into the sandbox under ids unique to this run. The proxy part maps a tenant to
``<devhost>/api/sandbox/fhir`` (auth kind ``bearer``, the sandbox key as its provider secret)
through the management API, then makes the Patients app's STU3 calls through the dev host.
"""

from __future__ import annotations

import dataclasses
import random
import string
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from shared.ids import provider_secret_name
from shared.sandbox.access import ensure_sandbox_key
from shared.services import Services, set_services
from tests.conftest import ADMIN_KEY
from tests.support.app import app_services, served_app
from tests.support.sandbox import (
    allergy,
    condition,
    coverage,
    encounter,
    medication_request,
    observation,
    patient,
    practitioner,
)

pytestmark = pytest.mark.e2e

ISSUER = "http://bridge.e2e/api/oauth2"
AUDIENCE = "http://bridge.e2e/api/fhir"
TIMEOUT = 15
FHIR_JSON = "application/fhir+json"
TERMINOLOGY = "http://terminology.hl7.org/CodeSystem/"
WARD_NAME = "Ward 4B, bed 12"


@dataclass
class Chart:
    """Ids of the chart loaded for this run (unique, so other modules' rows never interfere)."""

    patient: str
    family: str
    ward: str
    doctor: str

    def vitals(self) -> list[str]:
        """The vital-sign Observations, newest first."""
        return [f"{self.patient}-hr-3", f"{self.patient}-hr-2", f"{self.patient}-hr-1"]

    def resources(self) -> list[dict[str, Any]]:
        """The chart in R4, as a provider stores it."""
        p = self.patient
        active = {"coding": [{"system": TERMINOLOGY + "condition-clinical", "code": "active"}]}
        allergy_active = {
            "coding": [{"system": TERMINOLOGY + "allergyintolerance-clinical", "code": "active"}]
        }
        return [
            patient(p, family=self.family, given=("Ruth",)),
            practitioner(self.doctor),
            {"resourceType": "Location", "id": self.ward, "name": WARD_NAME},
            observation(p, f"{p}-hr-1", effective="2024-01-10T08:00:00Z", value=70),
            observation(p, f"{p}-hr-3", effective="2024-03-10T08:00:00Z", value=80),
            observation(p, f"{p}-hr-2", effective="2024-02-10T08:00:00Z", value=75),
            observation(p, f"{p}-lab-1", code="2345-7", category="laboratory"),
            condition(p, f"{p}-cond", recorded="2023-06-01", clinicalStatus=active),
            encounter(p, f"{p}-enc-old", start="2023-01-01T09:00:00Z"),
            # No display: the proxy fills it from the Location it reads in the sandbox.
            encounter(
                p,
                f"{p}-enc-new",
                start="2024-03-10T07:30:00Z",
                location=[{"location": {"reference": f"Location/{self.ward}"}}],
            ),
            allergy(p, f"{p}-allergy", clinicalStatus=allergy_active),
            medication_request(
                p, f"{p}-med", requester={"reference": f"Practitioner/{self.doctor}"}
            ),
            coverage(p, f"{p}-cov"),
        ]


@dataclass
class Stack:
    base: str
    services: Services
    key: str
    chart: Chart

    @property
    def sandbox(self) -> str:
        return f"{self.base}/api/sandbox/fhir"

    @property
    def stu3(self) -> str:
        return f"{self.base}/api/fhir/stu3"

    def keyed(self, **headers: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}", **headers}


def _unique_family() -> str:
    return "Black" + "".join(random.choices(string.ascii_lowercase, k=10))


@pytest.fixture(scope="module")
def stack(azurite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with app_services(
        azurite,
        Path(tmp_path_factory.mktemp("e2e-sandbox")),
        EHRB_TOKEN_ISSUER=ISSUER,
        EHRB_TOKEN_AUDIENCE=AUDIENCE,
        EHRB_ALLOW_INSECURE_PROVIDER_URLS="true",
        EHRB_SANDBOX_ENABLED="true",
    ) as services:
        key = ensure_sandbox_key(services.secret_store)
        run = uuid.uuid4().hex[:8]
        chart = Chart(f"e2e-{run}", _unique_family(), f"ward-{run}", f"dr-{run}")
        services.sandbox_store.load(chart.resources())
        with served_app() as base:
            yield Stack(base, services, key, chart)


def outcome(response: requests.Response) -> dict[str, Any]:
    document = response.json()
    assert document["resourceType"] == "OperationOutcome"
    return dict(document["issue"][0])


def ids(bundle: dict[str, Any]) -> list[str]:
    return [entry["resource"]["id"] for entry in bundle.get("entry", [])]


def links(bundle: dict[str, Any]) -> dict[str, str]:
    return {link["relation"]: link["url"] for link in bundle.get("link", [])}


# -- the sandbox over HTTP -----------------------------------------------------------------------


def test_metadata_is_open_and_names_the_sandbox_base(stack):
    response = requests.get(f"{stack.sandbox}/metadata", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith(FHIR_JSON)
    statement = response.json()
    assert statement["fhirVersion"] == "4.0.1"
    assert statement["implementation"]["url"] == stack.sandbox


def test_a_read_without_the_key_is_401_and_with_it_200(stack):
    url = f"{stack.sandbox}/Patient/{stack.chart.patient}"
    refused = requests.get(url, timeout=TIMEOUT)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="sandbox"'
    answered = requests.get(url, headers=stack.keyed(), timeout=TIMEOUT)
    assert answered.status_code == 200
    assert answered.json()["name"][0]["family"] == stack.chart.family
    assert answered.headers["ETag"].startswith('W/"')


def test_next_links_work_when_followed_over_http(stack):
    url = f"{stack.sandbox}/Observation?patient={stack.chart.patient}&_count=2"
    seen: list[str] = []
    while url:
        response = requests.get(url, headers=stack.keyed(), timeout=TIMEOUT)
        assert response.status_code == 200
        bundle = response.json()
        assert bundle["total"] == 4
        seen += ids(bundle)
        url = links(bundle).get("next", "")
        assert not url or url.startswith(f"{stack.sandbox}/Observation?")
    assert sorted(seen) == sorted([*stack.chart.vitals(), f"{stack.chart.patient}-lab-1"])


def test_post_search_over_http_answers_like_get(stack):
    query = f"given=ruth&family={stack.chart.family}"
    got = requests.get(f"{stack.sandbox}/Patient?{query}", headers=stack.keyed(), timeout=TIMEOUT)
    posted = requests.post(
        f"{stack.sandbox}/Patient/_search",
        data=query,
        headers=stack.keyed(**{"Content-Type": "application/x-www-form-urlencoded"}),
        timeout=TIMEOUT,
    )
    assert posted.status_code == 200
    assert ids(posted.json()) == ids(got.json()) == [stack.chart.patient]


def test_a_batch_posted_to_the_base_without_a_trailing_slash_works(stack):
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": f"Patient/{stack.chart.patient}"}},
            {"request": {"method": "GET", "url": "Patient/not-there"}},
        ],
    }
    response = requests.post(
        stack.sandbox,
        json=batch,
        headers=stack.keyed(**{"Content-Type": FHIR_JSON}),
        timeout=TIMEOUT,
    )
    assert response.status_code == 200
    statuses = [entry["response"]["status"] for entry in response.json()["entry"]]
    assert statuses == ["200 OK", "404 Not Found"]


def test_create_then_delete_over_http(stack):
    created = requests.post(
        f"{stack.sandbox}/Patient",
        json=patient(family=_unique_family()),
        headers=stack.keyed(**{"Content-Type": FHIR_JSON}),
        timeout=TIMEOUT,
    )
    assert created.status_code == 201
    location_url = created.headers["Location"]
    assert location_url.startswith(f"{stack.sandbox}/Patient/")
    assert requests.get(location_url, headers=stack.keyed(), timeout=TIMEOUT).status_code == 200
    instance = location_url.split("/_history/")[0]
    deleted = requests.delete(instance, headers=stack.keyed(), timeout=TIMEOUT)
    assert deleted.status_code == 204
    assert requests.get(instance, headers=stack.keyed(), timeout=TIMEOUT).status_code == 404


def test_both_sandbox_routes_are_404_when_the_sandbox_is_off(stack):
    on = stack.services
    set_services(
        Services(
            dataclasses.replace(on.settings, sandbox_enabled=False),
            secret_store=on.secret_store,
            table_service=on.table_service,
        )
    )
    try:
        for url in (f"{stack.sandbox}/metadata", f"{stack.base}/api/sandbox/ui/"):
            response = requests.get(url, headers=stack.keyed(), timeout=TIMEOUT)
            assert response.status_code == 404, url
            assert outcome(response)["code"] == "not-found"
    finally:
        set_services(on)


# -- behind the proxy: a tenant mapped to the sandbox --------------------------------------------


@dataclass
class Tenant:
    tenant_id: str
    token: str
    check: dict[str, Any]

    def bearer(self, **headers: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **headers}


@pytest.fixture(scope="module")
def tenant(stack: Stack) -> Tenant:
    """A tenant mapped to the sandbox through the management API, and a token for it."""
    issued = stack.services.clients.register("Teams Patients app")
    tenant_id = str(uuid.uuid4())
    stack.services.secret_store.set_secret(provider_secret_name(tenant_id), stack.key)
    mapped = requests.put(
        f"{stack.base}/api/manage/tenants/{tenant_id}",
        json={
            "provider_base_url": stack.sandbox,
            "provider_fhir_version": "r4",
            "provider_auth_kind": "bearer",
            "allowed_client_ids": [issued.client.client_id],
        },
        headers={"x-functions-key": ADMIN_KEY},
        timeout=TIMEOUT,
    )
    assert mapped.status_code == 201, mapped.text
    answer = requests.post(
        f"{stack.base}/api/oauth2/token",
        data={"grant_type": "client_credentials", "scope": tenant_id},
        auth=(issued.client.client_id, issued.secret),
        timeout=TIMEOUT,
    )
    assert answer.status_code == 200, answer.text
    return Tenant(tenant_id, answer.json()["access_token"], mapped.json()["check"])


def test_the_tenant_check_reaches_the_sandbox_and_detects_batch_and_sort(stack, tenant):
    assert tenant.check["ok"], tenant.check
    mapping = stack.services.tenants.get(tenant.tenant_id)
    assert mapping.detected_capabilities == {"batch": True, "sort_by_date": True}


def test_the_app_finds_the_patient_by_name_through_the_stu3_face(stack, tenant):
    response = requests.post(
        f"{stack.stu3}/Patient/_search",
        data=f"given=ruth&family={stack.chart.family}",
        headers=tenant.bearer(**{"Content-Type": "application/x-www-form-urlencoded"}),
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert (bundle["type"], bundle["total"], ids(bundle)) == ("searchset", 1, [stack.chart.patient])
    (entry,) = bundle["entry"]
    assert entry["fullUrl"] == f"{stack.stu3}/Patient/{stack.chart.patient}"
    # STU3's spelling of the identifier type system (R4 moved it to terminology.hl7.org).
    mrn_type = entry["resource"]["identifier"][0]["type"]["coding"][0]
    assert (mrn_type["system"], mrn_type["code"]) == ("http://hl7.org/fhir/v2/0203", "MR")
    assert stack.sandbox not in response.text


def test_the_app_reads_the_patient_through_the_stu3_face(stack, tenant):
    response = requests.get(
        f"{stack.stu3}/Patient/{stack.chart.patient}", headers=tenant.bearer(), timeout=TIMEOUT
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith(FHIR_JSON)
    body = response.json()
    assert (body["resourceType"], body["id"]) == ("Patient", stack.chart.patient)
    assert body["name"][0]["family"] == stack.chart.family


@pytest.fixture(scope="module")
def chart_batch(stack: Stack, tenant: Tenant) -> dict[str, Any]:
    """The app's batch of chart queries through the STU3 face, as it answered."""
    p = stack.chart.patient
    urls = [
        f"Observation?patient={p}&category=vital-signs&_sort=-date",
        f"Condition?patient={p}&_count=10",
        f"Encounter?patient={p}&_sort=-date&_count=1",
        f"AllergyIntolerance?patient={p}",
        f"MedicationRequest?patient={p}&_count=10",
        f"Coverage?patient={p}",
    ]
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": url}} for url in urls],
    }
    response = requests.post(
        stack.stu3,
        json=batch,
        headers=tenant.bearer(**{"Content-Type": FHIR_JSON}),
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    assert stack.sandbox not in response.text
    answer: dict[str, Any] = response.json()
    assert answer["type"] == "batch-response"
    return answer


def entry_bundle(answer: dict[str, Any], index: int) -> dict[str, Any]:
    entry = answer["entry"][index]
    assert entry["response"]["status"].startswith("200"), entry
    bundle: dict[str, Any] = entry["resource"]
    assert bundle["type"] == "searchset"
    return bundle


def test_vital_signs_come_newest_first_in_stu3(stack, chart_batch):
    bundle = entry_bundle(chart_batch, 0)
    assert ids(bundle) == stack.chart.vitals()
    category = bundle["entry"][0]["resource"]["category"][0]["coding"][0]
    assert category["system"] == "http://hl7.org/fhir/observation-category"


def test_conditions_come_in_stu3_shape(stack, chart_batch):
    (condition_stu3,) = [e["resource"] for e in entry_bundle(chart_batch, 1)["entry"]]
    assert condition_stu3["id"] == f"{stack.chart.patient}-cond"
    assert condition_stu3["clinicalStatus"] == "active"  # a code in STU3, a concept in R4
    assert condition_stu3["assertedDate"] == "2023-06-01"  # R4 recordedDate


def test_only_the_latest_encounter_comes_with_its_ward_name(stack, chart_batch):
    bundle = entry_bundle(chart_batch, 2)
    assert ids(bundle) == [f"{stack.chart.patient}-enc-new"]
    ward = bundle["entry"][0]["resource"]["location"][0]["location"]
    assert ward["display"] == WARD_NAME


def test_allergies_come_in_stu3_shape(stack, chart_batch):
    (allergy_stu3,) = [e["resource"] for e in entry_bundle(chart_batch, 3)["entry"]]
    assert allergy_stu3["clinicalStatus"] == "active"


def test_medication_requests_come_in_stu3_shape(stack, chart_batch):
    (request_stu3,) = [e["resource"] for e in entry_bundle(chart_batch, 4)["entry"]]
    assert request_stu3["requester"]["agent"]["reference"].endswith(
        f"Practitioner/{stack.chart.doctor}"
    )


def test_coverage_is_found_by_patient(stack, chart_batch):
    assert ids(entry_bundle(chart_batch, 5)) == [f"{stack.chart.patient}-cov"]


def test_search_pages_through_the_proxy_name_the_face_and_work(stack, tenant):
    url = f"{stack.stu3}/Observation?patient={stack.chart.patient}&_count=2"
    seen: list[str] = []
    while url:
        response = requests.get(url, headers=tenant.bearer(), timeout=TIMEOUT)
        assert response.status_code == 200, response.text
        bundle = response.json()
        seen += ids(bundle)
        url = links(bundle).get("next", "")
        assert not url or urlsplit(url).path == urlsplit(f"{stack.stu3}/Observation").path
    assert len(seen) == len(set(seen)) == 4
