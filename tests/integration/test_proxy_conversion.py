"""The Patients app's DSTU2 and STU3 calls through a converting proxy to an R4 provider.

Every test runs the whole pipeline (token endpoint, ``FhirProxy`` with
``FhirVersionConverter``, pooled transport, a fake R4 provider recording what it received) and
checks both sides: the provider received R4 spelling (docs/conversion/mapping.md §14.2), the
app got its own version back (resource names, media type, ``_sort`` syntax in links, no
provider URL).

Conversions whose resource module is not written yet are skipped (``needs``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from shared.proxy.conversion import FhirVersionConverter
from shared.proxy.handler import FhirProxy
from shared.services import Services
from shared.tenants import TenantMapping
from tests.conftest import bearer_token
from tools.testkit.inbound import fhir_request

MIME = {"dstu2": "application/json+fhir", "stu3": "application/fhir+json"}
FORM = "application/x-www-form-urlencoded"
R4_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
OLD_CATEGORY = "http://hl7.org/fhir/observation-category"
VITALS = (("vs-jan", "2026-01-10T08:00:00Z"), ("vs-mar", "2026-03-10T08:00:00Z"))
VITALS += (("vs-feb", "2026-02-10T08:00:00Z"),)


def r4_vital(resource_id: str, when: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": resource_id,
        "status": "final",
        "category": [{"coding": [{"system": R4_CATEGORY, "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": "Patient/example"},
        "effectiveDateTime": when,
        "valueQuantity": {"value": 60, "unit": "beats/minute"},
    }


def r4_medication_request() -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": "amoxicillin",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/example"},
        "authoredOn": "2026-02-01",
        "requester": {"reference": "Practitioner/example", "display": "Dr Adam Careful"},
        "medicationCodeableConcept": {"text": "Amoxicillin 250 mg capsule"},
    }


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def provider(fhir_server: Any) -> Any:
    server = fhir_server(version="r4")
    for resource_id, when in VITALS:
        server.add(r4_vital(resource_id, when))
    server.add(r4_medication_request())
    return server


@pytest.fixture
def proxy(proxy_services: Services) -> Iterator[FhirProxy]:
    converting = FhirProxy(
        proxy_services.settings,
        proxy_services.verifier,
        proxy_services.lookups,
        proxy_services.transport,
        converter=FhirVersionConverter(),
    )
    yield converting
    converting.close()


def map_tenant(services: Services, client: Any, server: Any) -> str:
    mapping = TenantMapping(
        tenant_id=str(uuid.uuid4()),
        provider_base_url=server.base_url,
        provider_fhir_version="r4",
        allowed_client_ids=(client.client.client_id,),
    )
    services.tenants.put(mapping)
    return bearer_token(services, client, mapping.tenant_id)


@pytest.fixture
def token(proxy_services: Services, client: Any, provider: Any) -> str:
    token = map_tenant(proxy_services, client, provider)
    provider.reset()
    return token


def get(proxy: FhirProxy, token: str, face: str, path: str, query: str = "") -> Any:
    return proxy.handle(fhir_request("GET", path, token, face=face, query=query), face)


def post(proxy: FhirProxy, token: str, face: str, path: str, body: bytes, content_type: str):
    request = fhir_request(
        "POST", path, token, face=face, body=body, headers={"Content-Type": content_type}
    )
    return proxy.handle(request, face)


def answered(response: Any, face: str) -> dict[str, Any]:
    assert response.status == 200, response.text
    assert response.headers.get("Content-Type").startswith(MIME[face])
    assert "127.0.0.1" not in response.text
    return dict(response.json())


def link(bundle: dict[str, Any], relation: str) -> str:
    return str(next(x["url"] for x in bundle["link"] if x["relation"] == relation))


def outcome(response: Any) -> dict[str, Any]:
    document = response.json()
    assert document["resourceType"] == "OperationOutcome"
    return dict(document["issue"][0])


# -- reads and searches ------------------------------------------------------------------------


@pytest.mark.parametrize("face", ["dstu2", "stu3"])
def test_patient_read_reaches_r4_and_comes_back_in_the_faces_version(proxy, provider, token, face):
    patient = answered(get(proxy, token, face, "Patient/example"), face)
    assert provider.last().path == "/fhir/Patient/example"
    family = patient["name"][0]["family"]
    assert family == (["Chalmers"] if face == "dstu2" else "Chalmers")
    mrn = next(i for i in patient["identifier"] if i["type"]["coding"][0]["code"] == "MR")
    assert mrn["type"]["coding"][0]["system"] == "http://hl7.org/fhir/v2/0203"


def test_dstu2_vital_signs_go_upstream_in_r4_spelling_and_come_back_in_dstu2(
    proxy, provider, token
):
    query = "patient=example&_sort:desc=date&category=vital-signs"
    bundle = answered(get(proxy, token, "dstu2", "Observation", query), "dstu2")
    received = provider.last()
    assert (received.path, received.query) == (
        "/fhir/Observation",
        "patient=example&_sort=-date&category=vital-signs",
    )
    observations = [e["resource"] for e in bundle["entry"]]
    assert [o["id"] for o in observations[:3]] == ["vs-mar", "vs-feb", "vs-jan"]
    assert observations[0]["category"]["coding"][0]["system"] == OLD_CATEGORY  # 0..1 in DSTU2
    assert link(bundle, "self") == (
        "https://bridge.test/api/fhir/dstu2/Observation"
        "?patient=example&_sort:desc=date&category=vital-signs"
    )


def test_stu3_vital_signs_keep_their_sort_and_get_the_r4_category_system(proxy, provider, token):
    query = f"patient=example&_sort=-date&category={OLD_CATEGORY}|vital-signs"
    bundle = answered(get(proxy, token, "stu3", "Observation", query), "stu3")
    assert provider.last().query == (
        f"patient=example&_sort=-date&category={R4_CATEGORY}%7Cvital-signs"
    )
    assert bundle["entry"][0]["resource"]["category"][0]["coding"][0]["system"] == OLD_CATEGORY


@pytest.mark.parametrize("face", ["dstu2", "stu3"])
def test_patient_search_form_goes_upstream_with_underscore_id(proxy, provider, token, face):
    response = post(proxy, token, face, "Patient/_search", b"id=example&_count=5", FORM)
    bundle = answered(response, face)
    received = provider.last()
    assert (received.method, received.path, received.body) == (
        "POST",
        "/fhir/Patient/_search",
        b"_id=example&_count=5",
    )
    assert bundle["total"] == 1
    assert bundle["entry"][0]["fullUrl"] == f"https://bridge.test/api/fhir/{face}/Patient/example"


def test_dstu2_paging_links_use_dstu2_sort_and_following_them_reaches_page_two(
    proxy, provider, token
):
    first = answered(
        get(proxy, token, "dstu2", "Patient", "_sort:desc=birthdate&_count=1"), "dstu2"
    )
    assert provider.last().query == "_sort=-birthdate&_count=1"
    assert link(first, "self") == (
        "https://bridge.test/api/fhir/dstu2/Patient?_sort:desc=birthdate&_count=1"
    )
    next_url = link(first, "next")
    assert next_url.startswith("https://bridge.test/api/fhir/dstu2/Patient?_count=1&_page=")
    path, _, query = next_url.removeprefix("https://bridge.test/api/fhir/dstu2/").partition("?")
    second = answered(get(proxy, token, "dstu2", path, query), "dstu2")
    assert provider.last().query == query  # the provider's paging token came back intact
    assert first["entry"][0]["resource"]["id"] != second["entry"][0]["resource"]["id"]


# -- what cannot be converted ------------------------------------------------------------------


def test_a_parameter_r4_cannot_express_is_a_400_outcome_and_nothing_goes_upstream(
    proxy, provider, token
):
    response = get(proxy, token, "dstu2", "Observation", "component-value-string=high")
    assert response.status == 400
    assert response.headers.get("Content-Type").startswith(MIME["dstu2"])
    issue = outcome(response)
    assert issue["code"] == "not-supported"
    assert "component-value-string" in issue["diagnostics"]
    assert provider.count() == 0


def test_organization_and_medication_reads_convert_to_the_face(proxy, provider, token):
    provider.add({"resourceType": "Organization", "id": "org1", "name": "General Hospital"})
    response = get(proxy, token, "stu3", "Organization/org1")
    assert response.status == 200
    assert response.json()["name"] == "General Hospital"


# -- medication: the renamed type --------------------------------------------------------------


def test_dstu2_medication_order_search_reaches_medication_request_and_comes_back_renamed(
    proxy, provider, token
):
    query = "patient=example&_count=10"
    bundle = answered(get(proxy, token, "dstu2", "MedicationOrder", query), "dstu2")
    assert (provider.last().path, provider.last().query) == ("/fhir/MedicationRequest", query)
    order = bundle["entry"][0]["resource"]
    assert order["resourceType"] == "MedicationOrder"
    assert order["dateWritten"] == "2026-02-01"
    assert order["prescriber"]["display"] == "Dr Adam Careful"
    assert bundle["entry"][0]["fullUrl"].startswith(
        "https://bridge.test/api/fhir/dstu2/MedicationOrder/"
    )
    assert link(bundle, "self").startswith("https://bridge.test/api/fhir/dstu2/MedicationOrder?")


# -- batches -----------------------------------------------------------------------------------


def batch(*urls: str) -> bytes:
    entries = [{"request": {"method": "GET", "url": url}} for url in urls]
    return json.dumps({"resourceType": "Bundle", "type": "batch", "entry": entries}).encode()


def test_a_dstu2_batch_goes_upstream_as_an_r4_batch_and_comes_back_in_dstu2(proxy, provider, token):
    body = batch("Patient/example", "Observation?patient=example&_sort:desc=date&_count=2")
    bundle = answered(post(proxy, token, "dstu2", "", body, MIME["dstu2"]), "dstu2")
    received = provider.last()
    assert (received.method, received.path) == ("POST", "/fhir")
    assert received.header("Content-Type").startswith("application/fhir+json")
    sent = json.loads(received.body)
    assert [e["request"]["url"] for e in sent["entry"]] == [
        "Patient/example",
        "Observation?patient=example&_sort=-date&_count=2",
    ]
    assert bundle["type"] == "batch-response"
    patient, searchset = (e["resource"] for e in bundle["entry"])
    assert patient["name"][0]["family"] == ["Chalmers"]
    assert link(searchset, "self") == (
        "https://bridge.test/api/fhir/dstu2/Observation?patient=example&_sort:desc=date&_count=2"
    )


class Recording(FhirVersionConverter):
    """Records the media type of every body it converts back to the face."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def response(self, face, provider, response, enrich=None):  # type: ignore[no-untyped-def]
        self.seen.append(str(response.headers.get("Content-Type")))
        return super().response(face, provider, response, enrich)


def test_a_batch_the_provider_refuses_is_run_entry_by_entry_and_converted_once(
    proxy_services, client, fhir_server
):
    recording = Recording()
    proxy = FhirProxy(
        proxy_services.settings,
        proxy_services.verifier,
        proxy_services.lookups,
        proxy_services.transport,
        converter=recording,
    )
    refusing = fhir_server(version="r4", capabilities={"batch": False})
    token = map_tenant(proxy_services, client, refusing)
    body = batch("Patient/example", "Observation?patient=example&_sort:desc=date")
    try:
        bundle = answered(post(proxy, token, "dstu2", "", body, MIME["dstu2"]), "dstu2")
    finally:
        proxy.close()
    queries = sorted((r.path, r.query) for r in refusing.requests() if r.method == "GET")
    assert queries == [
        ("/fhir/Observation", "patient=example&_sort=-date"),
        ("/fhir/Patient/example", ""),
    ]
    patient, searchset = (e["resource"] for e in bundle["entry"])
    assert patient["name"][0]["family"] == ["Chalmers"]
    assert searchset["type"] == "searchset"
    # Only the provider's R4 answers are converted (the refused batch's 405 included), never the
    # DSTU2 batch-response the proxy assembled from them.
    assert all(seen.startswith("application/fhir+json") for seen in recording.seen)


# -- enrichment ------------------------------------------------------------------------------

DOCTOR = {
    "resourceType": "Practitioner",
    "id": "doc",
    "name": [{"use": "official", "prefix": ["Dr"], "given": ["Adam"], "family": "Careful"}],
}


def patient_with_gp(*references: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": "with-gp",
        "name": [{"family": "Careful-Patient"}],
        "generalPractitioner": [{"reference": reference} for reference in references],
    }


def test_a_missing_practitioner_display_is_filled_with_one_provider_batch(proxy, provider, token):
    provider.add(DOCTOR)
    provider.add(patient_with_gp("Practitioner/doc"))
    patient = answered(get(proxy, token, "dstu2", "Patient/with-gp"), "dstu2")
    assert patient["careProvider"] == [
        {"reference": "Practitioner/doc", "display": "Dr Adam Careful"}
    ]
    reads = [r for r in provider.requests() if r.method == "POST" and r.path == "/fhir"]
    assert [e["request"]["url"] for e in json.loads(reads[0].body)["entry"]] == ["Practitioner/doc"]


def test_without_batch_the_display_comes_from_a_plain_read(
    proxy, proxy_services, client, fhir_server
):
    refusing = fhir_server(version="r4", capabilities={"batch": False})
    refusing.add(DOCTOR)
    refusing.add(patient_with_gp("Practitioner/doc"))
    token = map_tenant(proxy_services, client, refusing)
    patient = answered(get(proxy, token, "stu3", "Patient/with-gp"), "stu3")
    assert patient["generalPractitioner"][0]["display"] == "Dr Adam Careful"
    assert refusing.count(method="GET", path="Practitioner/doc") == 1


def test_a_display_that_cannot_be_resolved_is_a_warning_in_the_searchset(proxy, provider, token):
    provider.add(patient_with_gp("Practitioner/gone"))
    bundle = answered(get(proxy, token, "dstu2", "Patient", "_id=with-gp"), "dstu2")
    outcomes = [e for e in bundle["entry"] if e.get("search", {}).get("mode") == "outcome"]
    assert outcomes[0]["resource"]["issue"][0]["severity"] == "warning"
    assert bundle["total"] == 1
