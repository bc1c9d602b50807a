"""The Patients app's exact calls (DSTU2 and STU3 interface specs) through same-version faces.

Each test sends what the app sends, as the app spells it in that release
(docs/patients-app.md; docs/conversion/mapping.md §1), through the whole pipeline: a token
from the token endpoint, the proxy, a fake provider of the same release that records what it
received. It checks (a) what the provider received, byte for byte, and (b) that the answer
has the shape the app reads.

Patient ``example`` comes from the HL7 fixtures (its Conditions, Encounters and allergies
too); the vital signs, the latest Encounter and the medication order are added here so that
the app's fields and the "latest first" order are known.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from shared.http import Request
from shared.metadata import OAUTH_URIS_EXTENSION, metadata_response
from shared.services import Services
from shared.tenants import TenantMapping
from tests.conftest import bearer_token
from tools.testkit.inbound import fhir_request

FACES = ("dstu2", "stu3")
FHIR_VERSION = {"dstu2": "1.0.2", "stu3": "3.0.2"}
MIME = {"dstu2": "application/json+fhir", "stu3": "application/fhir+json"}
MEDICATION = {"dstu2": "MedicationOrder", "stu3": "MedicationRequest"}
FORM = "application/x-www-form-urlencoded"
MR_SYSTEM = "http://hl7.org/fhir/v2/0203"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"

# The app's by-patient queries, exactly as each spec writes them (mapping reference §1).
APP_QUERIES: dict[str, tuple[tuple[str, str], ...]] = {
    "dstu2": (
        ("Observation", "patient=example&_sort:desc=date&category=vital-signs"),
        ("Condition", "patient=example&_count=10"),
        ("Encounter", "patient=example&_sort:desc=date&_count=1"),
        ("AllergyIntolerance", "patient=example"),
        ("MedicationOrder", "patient=example&_count=10"),
        ("Coverage", "patient=example"),
    ),
    "stu3": (
        ("Observation", "patient=example&_sort=-date&category=vital-signs"),
        ("Condition", "patient=example&_count=10"),
        # Both specs sort Encounters with _sort:desc.
        ("Encounter", "patient=example&_sort:desc=date&_count=1"),
        ("AllergyIntolerance", "patient=example"),
        ("MedicationRequest", "patient=example&_count=10"),
        ("Coverage", "patient=example"),
    ),
}


def query_of(face: str, resource_type: str) -> str:
    return dict(APP_QUERIES[face])[resource_type]


# -- provider data --------------------------------------------------------------------------

VITALS = (("vs-jan", "2026-01-10T08:00:00Z", 61), ("vs-mar", "2026-03-10T08:00:00Z", 72))
VITALS += (("vs-feb", "2026-02-10T08:00:00Z", 66),)
VITALS_LATEST_FIRST = ["vs-mar", "vs-feb", "vs-jan"]


def _vital(face: str, resource_id: str, when: str, value: int) -> dict[str, Any]:
    category = {
        "coding": [{"system": "http://hl7.org/fhir/observation-category", "code": "vital-signs"}]
    }
    return {
        "resourceType": "Observation",
        "id": resource_id,
        "status": "final",
        "category": category if face == "dstu2" else [category],
        "code": {"coding": [{"system": LOINC, "code": "8867-4", "display": "Heart rate"}]},
        "subject": {"reference": "Patient/example"},
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": "beats/minute", "system": UCUM, "code": "/min"},
    }


def _latest_encounter(face: str) -> dict[str, Any]:
    encounter: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": "latest-stay",
        "status": "in-progress",
        "type": [
            {
                "coding": [
                    {"system": "http://snomed.info/sct", "code": "183807002", "display": "Ward"}
                ]
            }
        ],
        "period": {"start": "2026-04-01T08:00:00Z"},
        "location": [{"location": {"reference": "Location/1", "display": "South Wing, room 2"}}],
    }
    if face == "dstu2":
        encounter.update({"class": "inpatient", "patient": {"reference": "Patient/example"}})
    else:
        encounter.update(
            {
                "class": {"system": "http://hl7.org/fhir/v3/ActCode", "code": "IMP"},
                "subject": {"reference": "Patient/example"},
            }
        )
    return encounter


def _medication(face: str) -> dict[str, Any]:
    medication = {"text": "Amoxicillin 250 mg capsule"}
    dosage = [{"text": "one capsule three times a day"}]
    doctor = {"reference": "Practitioner/example", "display": "Dr Adam Careful"}
    if face == "dstu2":
        return {
            "resourceType": "MedicationOrder",
            "id": "amoxicillin",
            "status": "active",
            "patient": {"reference": "Patient/example"},
            "dateWritten": "2026-02-01",
            "prescriber": doctor,
            "medicationCodeableConcept": medication,
            "dosageInstruction": dosage,
        }
    return {
        "resourceType": "MedicationRequest",
        "id": "amoxicillin",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/example"},
        "authoredOn": "2026-02-01",
        "requester": {"agent": doctor},
        "medicationCodeableConcept": medication,
        "dosageInstruction": dosage,
    }


# -- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture(params=FACES)
def face(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def start_provider(fhir_server: Any, face: str, **kwargs: Any) -> Any:
    server = fhir_server(version=face, **kwargs)
    for resource_id, when, value in VITALS:
        server.add(_vital(face, resource_id, when, value))
    server.add(_latest_encounter(face))
    server.add(_medication(face))
    return server


def map_tenant(services: Services, client: Any, server: Any, face: str) -> str:
    mapping = TenantMapping(
        tenant_id=str(uuid.uuid4()),
        provider_base_url=server.base_url,
        provider_fhir_version=face,
        allowed_client_ids=(client.client.client_id,),
    )
    services.tenants.put(mapping)
    return bearer_token(services, client, mapping.tenant_id)


@pytest.fixture
def provider(fhir_server: Any, face: str) -> Any:
    return start_provider(fhir_server, face)


@pytest.fixture
def token(proxy_services: Services, client: Any, provider: Any, face: str) -> str:
    return map_tenant(proxy_services, client, provider, face)


def get(services: Services, token: str, face: str, path: str, query: str = "") -> Any:
    return services.proxy.handle(fhir_request("GET", path, token, face=face, query=query), face)


def post(services: Services, token: str, face: str, path: str, body: bytes, content_type: str):
    request = fhir_request(
        "POST", path, token, face=face, body=body, headers={"Content-Type": content_type}
    )
    return services.proxy.handle(request, face)


def received(server: Any) -> tuple[str, str, str, bytes]:
    last = server.last()
    return last.method, last.path, last.query, last.body


def searchset(response: Any, face: str) -> dict[str, Any]:
    assert response.status == 200, response.text
    assert response.headers.get("Content-Type").startswith(MIME[face])
    bundle = response.json()
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "searchset"
    assert isinstance(bundle["total"], int)
    return dict(bundle)


def resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", [])]


def self_link(bundle: dict[str, Any]) -> str:
    return str(next(link["url"] for link in bundle["link"] if link["relation"] == "self"))


def batch_body(face: str) -> bytes:
    entries = [
        {"request": {"method": "GET", "url": f"{resource_type}?{query}"}}
        for resource_type, query in APP_QUERIES[face]
    ]
    return json.dumps({"resourceType": "Bundle", "type": "batch", "entry": entries}).encode()


# -- metadata -------------------------------------------------------------------------------


def test_metadata_is_ehr_bridges_own_statement_in_the_faces_version(proxy_services, face):
    request = Request("GET", f"https://bridge.test/api/fhir/{face}/metadata")
    response = metadata_response(request, face, proxy_services.settings)
    assert response.status == 200
    assert response.headers.get("Content-Type").startswith(MIME[face])
    statement = response.json()
    assert statement["resourceType"] == (
        "Conformance" if face == "dstu2" else "CapabilityStatement"
    )
    assert statement["fhirVersion"] == FHIR_VERSION[face]
    rest = statement["rest"][0]
    assert rest["mode"] == "server"
    oauth = next(e for e in rest["security"]["extension"] if e["url"] == OAUTH_URIS_EXTENSION)
    token_url = next(e["valueUri"] for e in oauth["extension"] if e["url"] == "token")
    assert token_url == "https://bridge.test/api/oauth2/token"
    assert rest["security"]["service"][0]["coding"][0]["code"] == "OAuth"
    types = {resource["type"] for resource in rest["resource"]}
    assert {"Patient", "Observation", "Condition", "Encounter", "AllergyIntolerance"} <= types
    assert {"Coverage", MEDICATION[face]} <= types
    assert all(resource["interaction"] for resource in rest["resource"])
    if face == "dstu2":
        assert rest["transactionMode"] == "batch"
    else:
        assert {"code": "batch"} in rest["interaction"]


def test_metadata_through_the_proxy_catch_all_never_reaches_the_provider(
    proxy_services, provider, token, face
):
    response = get(proxy_services, token, face, "metadata")
    assert response.status == 404
    assert provider.count() == 0


# -- Patient --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("face", "form"),
    [
        ("dstu2", b"family:contains=chal&given=peter&_count=10"),
        ("dstu2", b"name=chalmers"),
        ("dstu2", b"birthdate=1974-12-25"),
        ("dstu2", b"identifier=12345"),
        ("dstu2", b"_id=example"),
        ("stu3", b"given=peter&family=chalmers"),
        ("stu3", b"family=chal&gender=male&birthdate=1974-12-25"),
        ("stu3", b"identifier=12345&_count=5"),
        ("stu3", b"_id=example"),
    ],
)
def test_patient_search_form_reaches_the_provider_byte_for_byte(
    proxy_services, provider, token, face, form
):
    response = post(proxy_services, token, face, "Patient/_search", form, FORM)
    searchset(response, face)
    assert received(provider) == ("POST", "/fhir/Patient/_search", "", form)
    assert provider.last().header("Content-Type").startswith(FORM)


def test_patient_search_answers_a_searchset_with_total_and_the_mrn(
    proxy_services, provider, token, face
):
    form = b"family:contains=chal" if face == "dstu2" else b"given=peter&family=chalmers"
    bundle = searchset(post(proxy_services, token, face, "Patient/_search", form, FORM), face)
    patients = resources(bundle)
    assert bundle["total"] == len(patients)
    assert {p["resourceType"] for p in patients} == {"Patient"}
    example = next(p for p in patients if p["id"] == "example")
    mrn = next(i for i in example["identifier"] if i["type"]["coding"][0]["code"] == "MR")
    assert (mrn["type"]["coding"][0]["system"], mrn["value"]) == (MR_SYSTEM, "12345")
    assert all(
        e["fullUrl"].startswith(f"https://bridge.test/api/fhir/{face}/Patient/")
        for e in (bundle["entry"])
    )


def test_patient_read_has_name_gender_birthdate_and_mrn(proxy_services, provider, token, face):
    response = get(proxy_services, token, face, "Patient/example")
    assert response.status == 200
    assert response.headers.get("Content-Type").startswith(MIME[face])
    assert received(provider) == ("GET", "/fhir/Patient/example", "", b"")
    patient = response.json()
    official = next(n for n in patient["name"] if n["use"] == "official")
    # DSTU2 HumanName.family is a list; STU3 a string.
    assert official["family"] == (["Chalmers"] if face == "dstu2" else "Chalmers")
    assert official["given"] == ["Peter", "James"]
    assert (patient["gender"], patient["birthDate"]) == ("male", "1974-12-25")
    assert any(i["type"]["coding"][0]["code"] == "MR" for i in patient["identifier"])


# -- the by-patient queries -----------------------------------------------------------------


def test_vital_signs_search_passes_the_faces_sort_and_answers_latest_first(
    proxy_services, provider, token, face
):
    query = query_of(face, "Observation")
    bundle = searchset(get(proxy_services, token, face, "Observation", query), face)
    assert received(provider) == ("GET", "/fhir/Observation", query, b"")
    observations = resources(bundle)
    assert [o["id"] for o in observations[:3]] == VITALS_LATEST_FIRST
    latest = observations[0]
    assert latest["effectiveDateTime"] == "2026-03-10T08:00:00Z"
    assert latest["code"]["coding"][0]["code"] == "8867-4"
    assert latest["valueQuantity"] == {
        "value": 72,
        "unit": "beats/minute",
        "system": UCUM,
        "code": "/min",
    }


def test_condition_search_honours_count_and_pages_through_the_face(
    proxy_services, provider, token, face
):
    bundle = searchset(
        get(proxy_services, token, face, "Condition", "patient=example&_count=1"), face
    )
    assert received(provider) == ("GET", "/fhir/Condition", "patient=example&_count=1", b"")
    conditions = resources(bundle)
    assert len(conditions) == 1
    assert bundle["total"] == 2  # Condition/example and Condition/example2
    assert conditions[0]["code"]["coding"][0]["display"]
    next_url = next(link["url"] for link in bundle["link"] if link["relation"] == "next")
    assert next_url.startswith(f"https://bridge.test/api/fhir/{face}/Condition?")


def test_app_condition_query_answers_every_condition_of_the_patient(
    proxy_services, provider, token, face
):
    query = query_of(face, "Condition")
    bundle = searchset(get(proxy_services, token, face, "Condition", query), face)
    assert received(provider) == ("GET", "/fhir/Condition", query, b"")
    assert sorted(c["id"] for c in resources(bundle)) == ["example", "example2"]


def test_encounter_latest_is_the_one_entry_with_status_type_and_location(
    proxy_services, provider, token, face
):
    query = query_of(face, "Encounter")
    bundle = searchset(get(proxy_services, token, face, "Encounter", query), face)
    assert received(provider) == ("GET", "/fhir/Encounter", query, b"")
    (encounter,) = resources(bundle)
    assert encounter["id"] == "latest-stay"
    assert bundle["total"] == 3
    assert encounter["status"] == "in-progress"
    assert encounter["type"][0]["coding"][0]["display"] == "Ward"
    assert encounter["period"]["start"] == "2026-04-01T08:00:00Z"
    assert encounter["location"][0]["location"]["display"] == "South Wing, room 2"


def test_allergy_search_answers_what_the_app_reads(proxy_services, provider, token, face):
    bundle = searchset(
        get(proxy_services, token, face, "AllergyIntolerance", "patient=example"), face
    )
    assert received(provider) == ("GET", "/fhir/AllergyIntolerance", "patient=example", b"")
    allergy = next(a for a in resources(bundle) if a["id"] == "example")
    if face == "dstu2":
        assert allergy["substance"]["coding"][0]["display"] == "Cashew nuts"
        assert allergy["status"] == "confirmed"
    else:
        assert allergy["code"]["coding"][0]["display"] == "Cashew nuts"
        assert (allergy["clinicalStatus"], allergy["verificationStatus"]) == (
            "active",
            "confirmed",
        )


def test_medication_search_uses_the_faces_resource_name(proxy_services, provider, token, face):
    resource_type = MEDICATION[face]
    query = query_of(face, resource_type)
    bundle = searchset(get(proxy_services, token, face, resource_type, query), face)
    assert received(provider) == ("GET", f"/fhir/{resource_type}", query, b"")
    (order,) = resources(bundle)
    assert order["resourceType"] == resource_type
    assert order["medicationCodeableConcept"]["text"] == "Amoxicillin 250 mg capsule"
    assert order["dosageInstruction"][0]["text"] == "one capsule three times a day"
    if face == "dstu2":
        assert (order["dateWritten"], order["prescriber"]["display"]) == (
            "2026-02-01",
            "Dr Adam Careful",
        )
    else:
        assert (order["authoredOn"], order["requester"]["agent"]["display"]) == (
            "2026-02-01",
            "Dr Adam Careful",
        )


def test_coverage_search_reaches_the_provider_byte_for_byte(proxy_services, provider, token, face):
    # The fake provider matches ``patient`` on patient/subject references only, so a Coverage
    # (beneficiary/subscriber) never matches: the searchset is empty but well formed.
    bundle = searchset(get(proxy_services, token, face, "Coverage", "patient=example"), face)
    assert received(provider) == ("GET", "/fhir/Coverage", "patient=example", b"")
    assert bundle["total"] == len(resources(bundle))


def test_coverage_by_direct_reference_has_plan_or_grouping(proxy_services, provider, token, face):
    response = get(proxy_services, token, face, "Coverage/9876B1")
    assert response.status == 200
    coverage = response.json()
    if face == "dstu2":
        assert coverage["plan"] == "CBI35"
    else:
        assert coverage["grouping"]["groupDisplay"] == "Corporate Baker's Inc. Local #35"
        assert coverage["grouping"]["planDisplay"]
        assert coverage["period"]["start"] == "2011-05-23"


# -- the batch load -------------------------------------------------------------------------


def assert_batch_response_in_order(response: Any, face: str) -> None:
    assert response.status == 200, response.text
    assert response.headers.get("Content-Type").startswith(MIME[face])
    bundle = response.json()
    assert bundle["type"] == "batch-response"
    entries = bundle["entry"]
    assert len(entries) == len(APP_QUERIES[face])
    for entry, (resource_type, _) in zip(entries, APP_QUERIES[face], strict=True):
        assert entry["response"]["status"].startswith("200")
        inner = entry["resource"]
        assert inner["type"] == "searchset"
        assert self_link(inner).startswith(f"https://bridge.test/api/fhir/{face}/{resource_type}?")
        assert {r["resourceType"] for r in resources(inner)} <= {resource_type}
    observations = resources(entries[0]["resource"])
    assert [o["id"] for o in observations[:3]] == VITALS_LATEST_FIRST
    assert [e["id"] for e in resources(entries[2]["resource"])] == ["latest-stay"]
    assert [m["id"] for m in resources(entries[4]["resource"])] == ["amoxicillin"]


def test_batch_of_the_apps_queries_is_forwarded_as_is_and_answered_in_order(
    proxy_services, provider, token, face
):
    body = batch_body(face)
    response = post(proxy_services, token, face, "", body, MIME[face])
    assert_batch_response_in_order(response, face)
    # The same document, serialised again from what was validated (row 102).
    sent = [(r.method, r.path, json.loads(r.body)) for r in provider.requests()]
    assert sent == [("POST", "/fhir", json.loads(body))]
    assert provider.origin not in response.text


def test_batch_refused_by_the_provider_is_run_entry_by_entry_and_answered_in_order(
    proxy_services, client, fhir_server, face
):
    refusing = start_provider(fhir_server, face, capabilities={"batch": False})
    token = map_tenant(proxy_services, client, refusing, face)
    response = post(proxy_services, token, face, "", batch_body(face), MIME[face])
    assert_batch_response_in_order(response, face)
    first, *rest = refusing.requests()
    assert (first.method, first.path, first.status) == ("POST", "/fhir", 405)
    # The entries run concurrently: the provider sees each query exactly once, in any order.
    assert sorted((r.method, r.path, r.query) for r in rest) == sorted(
        ("GET", f"/fhir/{resource_type}", query) for resource_type, query in APP_QUERIES[face]
    )
    assert refusing.origin not in response.text


# -- resource names of the other release ----------------------------------------------------


@pytest.mark.parametrize(("face", "foreign"), [("dstu2", "MedicationRequest")])
def test_dstu2_face_refuses_medication_request_with_404(
    proxy_services, provider, token, face, foreign
):
    response = get(proxy_services, token, face, foreign, "patient=example&_count=10")
    assert response.status == 404
    assert response.json()["resourceType"] == "OperationOutcome"
    assert provider.count() == 0


@pytest.mark.parametrize(("face", "foreign"), [("stu3", "MedicationOrder")])
def test_stu3_face_refuses_medication_order_with_404(
    proxy_services, provider, token, face, foreign
):
    response = get(proxy_services, token, face, foreign, "patient=example&_count=10")
    assert response.status == 404
    assert response.json()["resourceType"] == "OperationOutcome"
    assert provider.count() == 0


def test_dstu2_fhir_comments_from_a_dstu2_provider_never_reach_the_app(
    proxy_services, client, fhir_server
):
    """Mapping reference §2.1: "fhir_comments" is not a FHIR element; same-version too."""
    server = fhir_server(version="dstu2")
    token = map_tenant(proxy_services, client, server, "dstu2")
    assert "fhir_comments" in json.dumps(server.get("Patient", "example"))
    response = get(proxy_services, token, "dstu2", "Patient/example")
    assert response.status == 200
    assert "fhir_comments" not in response.text
    assert response.json()["id"] == "example"
