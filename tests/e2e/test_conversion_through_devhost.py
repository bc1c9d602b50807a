"""End to end through the dev host: the Patients app's own call sequence on the DSTU2 and STU3
faces, over an R4 provider (docs/patients-app.md; the DSTU2 and STU3 interface
specs as summarised in docs/conversion/mapping.md §1 and §14.2; every § below is a section of
that document).

Per face, once: GET metadata, a token from the advertised token URL with the tenant as scope,
POST Patient/_search, GET Patient/<id>, then one batch Bundle of the chart queries. The tests
below check what the app reads in each answer (spec-shaped for the face), that enrichment filled
the displays the provider left out, that the provider was asked in R4's spelling, and that no
provider URL reaches the app. The provider is the R4 FakeFhirServer holding only the chart seeded
here (so a search the fake cannot filter still finds exactly this patient's resources).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from shared.tenants import TenantMapping
from tests.support.app import app_services, served_app
from tools.testkit.fake_fhir import FakeFhirServer, RecordedRequest

pytestmark = pytest.mark.e2e

ISSUER = "http://bridge.e2e/api/oauth2"
AUDIENCE = "http://bridge.e2e/api/fhir"
TIMEOUT = 10
FACES = ("stu3", "dstu2")
FHIR_VERSION = {"dstu2": "1.0.2", "stu3": "3.0.2"}
STATEMENT = {"dstu2": "Conformance", "stu3": "CapabilityStatement"}
MIME = {"dstu2": "application/json+fhir", "stu3": "application/fhir+json"}
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"

# The seeded chart (R4, as a provider stores it).
PATIENT = "pat-ruth"
PRACTITIONER = "gp-adam"
GP_DISPLAY = "Dr Adam Careful"
LOCATION = "ward-south-2"
WARD = "South Wing, second floor"
TERMINOLOGY = "http://terminology.hl7.org/CodeSystem/"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
MR_SYSTEM_OLD = "http://hl7.org/fhir/v2/0203"
CATEGORY_OLD = "http://hl7.org/fhir/observation-category"


def coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    found = {"system": system, "code": code}
    return {**found, "display": display} if display else found


def concept(system: str, code: str, display: str | None = None, text: str | None = None) -> Any:
    out: dict[str, Any] = {"coding": [coding(system, code, display)]}
    return {**out, "text": text} if text else out


def quantity(value: float, unit: str, code: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": code}


SUBJECT = {"reference": f"Patient/{PATIENT}"}
VITALS = concept(TERMINOLOGY + "observation-category", "vital-signs", "Vital Signs")


def vital(id_: str, when: str, code: str, display: str, **value: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": id_,
        "meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/vitalsigns"]},
        "status": "final",
        "category": [VITALS],
        "code": concept(LOINC, code, display, display),
        "subject": SUBJECT,
        "effectiveDateTime": when,
        **value,
    }


CHART: list[dict[str, Any]] = [
    {
        "resourceType": "Practitioner",
        "id": PRACTITIONER,
        "name": [{"use": "official", "family": "Careful", "given": ["Adam"], "prefix": ["Dr"]}],
    },
    {"resourceType": "Location", "id": LOCATION, "status": "active", "name": WARD},
    {
        "resourceType": "Patient",
        "id": PATIENT,
        "identifier": [
            {
                "use": "usual",
                "type": concept(TERMINOLOGY + "v2-0203", "MR", "Medical record number"),
                "system": "urn:oid:1.2.36.146.595.217.0.1",
                "value": "MRN-4471",
            }
        ],
        "name": [{"use": "official", "family": "Black", "given": ["Ruth"], "prefix": ["Mrs."]}],
        "gender": "female",
        "birthDate": "1961-03-17",
        # No display: the proxy must fill it from the Practitioner (§1).
        "generalPractitioner": [{"reference": f"Practitioner/{PRACTITIONER}"}],
    },
    vital(
        "vs-temp",
        "2024-05-01T08:00:00Z",
        "8310-5",
        "Body temperature",
        valueQuantity=quantity(37.2, "C", "Cel"),
    ),
    vital(
        "vs-bp",
        "2024-05-03T08:00:00Z",
        "85354-9",
        "Blood pressure panel with all children optional",
        component=[
            {
                "code": concept(LOINC, "8480-6", "Systolic blood pressure"),
                "valueQuantity": quantity(128, "mmHg", "mm[Hg]"),
            },
            {
                "code": concept(LOINC, "8462-4", "Diastolic blood pressure"),
                "valueQuantity": quantity(82, "mmHg", "mm[Hg]"),
            },
        ],
    ),
    vital(
        "vs-hr",
        "2024-05-02T08:00:00Z",
        "8867-4",
        "Heart rate",
        valueQuantity=quantity(72, "beats/minute", "/min"),
    ),
    {
        "resourceType": "Condition",
        "id": "cond-diabetes",
        "clinicalStatus": concept(TERMINOLOGY + "condition-clinical", "active"),
        "verificationStatus": concept(TERMINOLOGY + "condition-ver-status", "confirmed"),
        "category": [concept(TERMINOLOGY + "condition-category", "problem-list-item")],
        "severity": concept(SNOMED, "6736007", "Moderate"),
        "code": concept(SNOMED, "44054006", "Diabetes mellitus type 2"),
        "subject": SUBJECT,
        "recordedDate": "2023-11-02",
    },
    {
        "resourceType": "Encounter",
        "id": "enc-earlier",
        "status": "finished",
        "class": coding(TERMINOLOGY + "v3-ActCode", "AMB", "ambulatory"),
        "type": [concept(SNOMED, "11429006", "Consultation")],
        "subject": SUBJECT,
        "period": {"start": "2024-02-10T09:00:00Z", "end": "2024-02-10T09:30:00Z"},
    },
    {
        "resourceType": "Encounter",
        "id": "enc-latest",
        "status": "in-progress",
        "class": coding(TERMINOLOGY + "v3-ActCode", "IMP", "inpatient encounter"),
        "type": [concept(SNOMED, "183807002", "Inpatient stay")],
        "subject": SUBJECT,
        "period": {"start": "2024-05-01T07:30:00Z"},
        # No display: the proxy must fill it from the Location (§6).
        "location": [{"location": {"reference": f"Location/{LOCATION}"}, "status": "active"}],
    },
    {
        "resourceType": "AllergyIntolerance",
        "id": "alg-penicillin",
        "clinicalStatus": concept(TERMINOLOGY + "allergyintolerance-clinical", "active"),
        "verificationStatus": concept(TERMINOLOGY + "allergyintolerance-verification", "confirmed"),
        "type": "allergy",
        "category": ["medication"],
        "criticality": "high",
        "code": concept(RXNORM, "7980", "Penicillin G", "Penicillin"),
        "patient": SUBJECT,
        "recordedDate": "2019-06-12",
        "reaction": [
            {
                "substance": concept(RXNORM, "7980", "Penicillin G", "Penicillin G"),
                "manifestation": [concept(SNOMED, "247472004", "Hives", "Hives")],
                "severity": "moderate",
            }
        ],
    },
    {
        "resourceType": "MedicationRequest",
        "id": "med-metformin",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": concept(
            RXNORM, "860975", "Metformin hydrochloride 500 MG Oral Tablet", "Metformin 500 mg"
        ),
        "subject": SUBJECT,
        "authoredOn": "2024-04-20T09:15:00Z",
        # No display: the proxy must fill it from the Practitioner (§8).
        "requester": {"reference": f"Practitioner/{PRACTITIONER}"},
        "dosageInstruction": [
            {
                "text": "One tablet twice a day with meals",
                "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
            }
        ],
    },
    {
        "resourceType": "Coverage",
        "id": "cov-contoso",
        "status": "active",
        "subscriber": SUBJECT,
        "subscriberId": "SUB-99812",
        "beneficiary": SUBJECT,
        "relationship": concept(TERMINOLOGY + "subscriber-relationship", "self"),
        "period": {"start": "2024-01-01", "end": "2024-12-31"},
        "payor": [{"reference": "Organization/contoso-health", "display": "Contoso Health"}],
        "class": [
            {
                "type": concept(TERMINOLOGY + "coverage-class", "group"),
                "value": "GRP-1001",
                "name": "Contoso Employees",
            },
            {
                "type": concept(TERMINOLOGY + "coverage-class", "plan"),
                "value": "PLN-77",
                "name": "Gold Plus",
            },
        ],
    },
]


class ChartProvider(FakeFhirServer):
    """The R4 fake, also answering R4's ``Coverage?patient`` (``Coverage.beneficiary``), which
    the fake's own matching (``patient``/``subject`` elements only) does not know."""

    def _matches(self, resource_type: str, params: list[tuple[str, str]]) -> list[tuple[str, str]]:
        if resource_type != "Coverage":
            return super()._matches(resource_type, params)
        wanted = {value.rstrip("/").split("/")[-1] for name, value in params if name == "patient"}
        others = [(name, value) for name, value in params if name != "patient"]
        return [
            key
            for key in super()._matches(resource_type, others)
            if (self.get(*key) or {}).get("beneficiary", {}).get("reference", "").split("/")[-1]
            in wanted
        ]


@dataclass
class App:
    """The Patients app's registration: its client, its tenant, and the tenant's provider."""

    base: str
    provider: ChartProvider
    client_id: str
    client_secret: str = field(repr=False)
    tenant_id: str


@dataclass
class Visit:
    """One face's run of the app's call sequence: every answer, and what the provider saw."""

    face: str
    metadata: dict[str, Any]
    token: dict[str, Any]
    search: dict[str, Any]
    patient: dict[str, Any]
    batch_request: dict[str, Any]
    batch: dict[str, Any]
    answers: list[requests.Response]
    provider_requests: list[RecordedRequest]

    def entry(self, index: int) -> dict[str, Any]:
        """The searchset a batch entry answered (asserting the entry succeeded)."""
        entry = self.batch["entry"][index]
        assert entry["response"]["status"].startswith("200"), entry
        bundle: dict[str, Any] = entry["resource"]
        assert (bundle["resourceType"], bundle["type"]) == ("Bundle", "searchset")
        return bundle

    def resources(self, index: int) -> list[dict[str, Any]]:
        """The matches of a batch entry's searchset."""
        return [
            e["resource"]
            for e in self.entry(index).get("entry", [])
            if e.get("search", {}).get("mode", "match") == "match"
        ]


@pytest.fixture(scope="module")
def app(azurite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """The dev host serving function_app over Azurite, an R4 provider holding the chart, and
    the app's client registered for a tenant mapped to that provider."""
    workdir = Path(tmp_path_factory.mktemp("e2e-conversion"))
    (workdir / "no-fixtures").mkdir()
    with app_services(
        azurite,
        workdir,
        EHRB_TOKEN_ISSUER=ISSUER,
        EHRB_TOKEN_AUDIENCE=AUDIENCE,
        EHRB_ALLOW_INSECURE_PROVIDER_URLS="true",
    ) as services:
        provider = ChartProvider(version="r4", fixtures_dir=workdir / "no-fixtures").start()
        try:
            for resource in CHART:
                provider.add(resource)
            issued = services.clients.register("Teams Patients app")
            tenant = TenantMapping(
                tenant_id=str(uuid.uuid4()),
                provider_base_url=provider.base_url,
                provider_fhir_version="r4",
                allowed_client_ids=(issued.client.client_id,),
            )
            services.tenants.put(tenant)
            with served_app() as base:
                yield App(base, provider, issued.client.client_id, issued.secret, tenant.tenant_id)
        finally:
            provider.stop()


def chart_batch(face: str) -> dict[str, Any]:
    """The batch Bundle of by-patient reads the app posts (§1), in the face's spelling."""
    latest_first = "_sort:desc=date" if face == "dstu2" else "_sort=-date"
    medications = "MedicationOrder" if face == "dstu2" else "MedicationRequest"
    urls = [
        f"Observation?patient={PATIENT}&category=vital-signs&{latest_first}",
        f"Condition?patient={PATIENT}&_count=10",
        # Both interface specs write the Encounter sort in DSTU2's syntax (§14.1).
        f"Encounter?patient={PATIENT}&_sort:desc=date&_count=1",
        f"AllergyIntolerance?patient={PATIENT}",
        f"{medications}?patient={PATIENT}&_count=10",
        f"Coverage?patient={PATIENT}",
    ]
    return {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": url}} for url in urls],
    }


@pytest.fixture(scope="module", params=FACES)
def visit(request: pytest.FixtureRequest, app: App) -> Visit:
    """The app's call sequence on one face, as the DSTU2 or STU3 interface spec describes it."""
    face: str = request.param
    fhir = f"{app.base}/api/fhir/{face}"
    seen_before = len(app.provider.requests())
    answers: list[requests.Response] = []
    with requests.Session() as http:

        def call(method: str, url: str, **kwargs: Any) -> dict[str, Any]:
            response = http.request(method, url, timeout=TIMEOUT, **kwargs)
            answers.append(response)
            assert response.status_code == 200, f"{method} {url}: {response.text[:500]}"
            document: dict[str, Any] = response.json()
            return document

        metadata = call("GET", f"{fhir}/metadata", headers={"Accept": MIME[face]})
        security = metadata["rest"][0]["security"]
        oauth = next(e for e in security["extension"] if e["url"] == OAUTH_URIS)
        token_url = next(e["valueUri"] for e in oauth["extension"] if e["url"] == "token")
        token = call(
            "POST",
            token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": app.client_id,
                "client_secret": app.client_secret,
                "scope": app.tenant_id,
            },
        )
        http.headers.update(
            {"Authorization": f"Bearer {token['access_token']}", "Accept": MIME[face]}
        )
        form = "family:contains=Bla&_count=10" if face == "dstu2" else "given=ruth&family=black"
        search = call(
            "POST",
            f"{fhir}/Patient/_search",
            data=form,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        patient = call("GET", f"{fhir}/Patient/{PATIENT}")
        batch_request = chart_batch(face)
        batch = call(
            "POST",
            fhir,
            data=json.dumps(batch_request),
            headers={"Content-Type": MIME[face]},
        )
    return Visit(
        face,
        metadata,
        token,
        search,
        patient,
        batch_request,
        batch,
        answers,
        app.provider.requests()[seen_before:],
    )


def provider_batch(visit: Visit) -> dict[str, Any]:
    """The chart batch as the provider received it (not the proxy's batch of reads for
    displays)."""
    for recorded in visit.provider_requests:
        if (recorded.method, recorded.path) == ("POST", "/fhir"):  # the provider's base
            bundle: dict[str, Any] = json.loads(recorded.body)
            urls = [e["request"]["url"] for e in bundle.get("entry", [])]
            if any(url.startswith("Observation?") for url in urls):
                return bundle
    raise AssertionError("the provider received no chart batch")


# -- metadata and token ------------------------------------------------------------------------


def test_metadata_names_the_face_version_and_the_token_url(visit: Visit, app: App) -> None:
    assert visit.metadata["resourceType"] == STATEMENT[visit.face]
    assert visit.metadata["fhirVersion"] == FHIR_VERSION[visit.face]
    security = visit.metadata["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "OAuth"
    assert visit.answers[1].url == f"{app.base}/api/oauth2/token"


def test_token_answer_has_what_the_app_needs(visit: Visit) -> None:
    assert visit.token["token_type"] == "Bearer"
    assert visit.token["access_token"]
    assert visit.token["expires_in"] > 0


# -- Patient search and read -------------------------------------------------------------------


def test_patient_search_is_a_searchset_with_total(visit: Visit) -> None:
    assert (visit.search["resourceType"], visit.search["type"]) == ("Bundle", "searchset")
    assert visit.search["total"] == 1
    assert [e["resource"]["id"] for e in visit.search["entry"]] == [PATIENT]


def test_patient_search_reached_the_provider_as_an_r4_search(visit: Visit) -> None:
    searches = [r for r in visit.provider_requests if r.path.endswith("/Patient/_search")]
    assert searches, [r.path for r in visit.provider_requests]
    form = dict(parse_qsl(searches[0].body.decode()))
    if visit.face == "dstu2":
        assert form == {"family:contains": "Bla", "_count": "10"}
    else:
        assert form == {"given": "ruth", "family": "black"}


def test_patient_read_has_the_app_fields_in_the_face_shape(visit: Visit) -> None:
    patient = visit.patient
    assert (patient["resourceType"], patient["id"]) == ("Patient", PATIENT)
    name = patient["name"][0]
    family = ["Black"] if visit.face == "dstu2" else "Black"
    assert (name["use"], name["family"], name["given"], name["prefix"]) == (
        "official",
        family,
        ["Ruth"],
        ["Mrs."],
    )
    assert (patient["gender"], patient["birthDate"]) == ("female", "1961-03-17")
    mrn = patient["identifier"][0]
    assert mrn["type"]["coding"][0] == {
        "system": MR_SYSTEM_OLD,
        "code": "MR",
        "display": "Medical record number",
    }
    assert mrn["value"] == "MRN-4471"


def test_patient_practitioner_display_is_filled_by_enrichment(visit: Visit) -> None:
    key = "careProvider" if visit.face == "dstu2" else "generalPractitioner"
    assert visit.patient[key] == [
        {"reference": f"Practitioner/{PRACTITIONER}", "display": GP_DISPLAY}
    ]
    if visit.face == "dstu2":
        assert "generalPractitioner" not in visit.patient
    # The provider was asked for the Practitioner (one batch of reads, or a plain read).
    wanted = f"Practitioner/{PRACTITIONER}"
    assert any(
        wanted.encode() in r.body or r.path.endswith(wanted) for r in visit.provider_requests
    )


# -- the batch of chart queries ----------------------------------------------------------------


def test_batch_answers_every_query_in_order(visit: Visit) -> None:
    assert visit.batch["resourceType"] == "Bundle"
    assert visit.batch["type"] == "batch-response"
    assert len(visit.batch["entry"]) == len(visit.batch_request["entry"])
    kinds = [{r["resourceType"] for r in visit.resources(i)} for i in range(6)]
    medication = "MedicationOrder" if visit.face == "dstu2" else "MedicationRequest"
    assert kinds == [
        {"Observation"},
        {"Condition"},
        {"Encounter"},
        {"AllergyIntolerance"},
        {medication},
        {"Coverage"},
    ]


def test_provider_received_the_batch_in_r4_spelling(visit: Visit) -> None:
    urls = [e["request"]["url"] for e in provider_batch(visit)["entry"]]
    assert [urlsplit(url).path for url in urls] == [
        "Observation",
        "Condition",
        "Encounter",
        "AllergyIntolerance",
        "MedicationRequest",
        "Coverage",
    ]
    observation, encounter = (
        dict(parse_qsl(urlsplit(urls[0]).query)),
        parse_qsl(urlsplit(urls[2]).query),
    )
    assert observation == {"patient": PATIENT, "category": "vital-signs", "_sort": "-date"}
    assert ("_sort", "-date") in encounter and ("_count", "1") in encounter
    assert all(":desc" not in url for url in urls)
    assert dict(parse_qsl(urlsplit(urls[4]).query)) == {"patient": PATIENT, "_count": "10"}
    assert dict(parse_qsl(urlsplit(urls[5]).query)) == {"patient": PATIENT}
    assert not any(b"MedicationOrder" in r.body for r in visit.provider_requests)
    assert not any("MedicationOrder" in r.path for r in visit.provider_requests)


def test_vital_signs_come_newest_first_with_codes_values_and_units(visit: Visit) -> None:
    observations = visit.resources(0)
    assert [o["effectiveDateTime"] for o in observations] == [
        "2024-05-03T08:00:00Z",
        "2024-05-02T08:00:00Z",
        "2024-05-01T08:00:00Z",
    ]
    panel, heart_rate, temperature = observations
    assert [
        (
            c["code"]["coding"][0]["code"],
            c["code"]["coding"][0]["display"],
            c["valueQuantity"]["value"],
            c["valueQuantity"]["unit"],
        )
        for c in panel["component"]
    ] == [
        ("8480-6", "Systolic blood pressure", 128, "mmHg"),
        ("8462-4", "Diastolic blood pressure", 82, "mmHg"),
    ]
    assert heart_rate["code"]["coding"][0]["code"] == "8867-4"
    assert (heart_rate["valueQuantity"]["value"], heart_rate["valueQuantity"]["unit"]) == (
        72,
        "beats/minute",
    )
    assert temperature["valueQuantity"]["value"] == 37.2


def test_vital_signs_category_is_in_the_face_shape_and_system(visit: Visit) -> None:
    for observation in visit.resources(0):
        category = observation["category"]
        if visit.face == "dstu2":  # DSTU2 Observation.category is 0..1
            assert category["coding"][0]["system"] == CATEGORY_OLD
        else:
            assert category[0]["coding"][0]["system"] == CATEGORY_OLD
        assert "meta" not in observation  # R4 profiles mean nothing to older releases


def test_condition_has_severity_and_the_face_recorded_date(visit: Visit) -> None:
    (condition,) = visit.resources(1)
    assert condition["code"]["coding"][0]["display"] == "Diabetes mellitus type 2"
    assert condition["severity"]["coding"][0]["display"] == "Moderate"
    if visit.face == "dstu2":
        assert condition["dateRecorded"] == "2023-11-02"
        assert condition["patient"] == SUBJECT
    else:
        assert condition["assertedDate"] == "2023-11-02"
    assert "recordedDate" not in condition


def test_encounter_is_the_latest_with_type_period_and_location_display(visit: Visit) -> None:
    (encounter,) = visit.resources(2)
    assert encounter["id"] == "enc-latest"
    assert encounter["status"] == "in-progress"
    assert encounter["type"][0]["coding"][0]["display"] == "Inpatient stay"
    assert encounter["period"]["start"] == "2024-05-01T07:30:00Z"
    assert encounter["location"][0]["location"] == {
        "reference": f"Location/{LOCATION}",
        "display": WARD,
    }


def test_allergy_has_substance_and_status_in_the_face_shape(visit: Visit) -> None:
    (allergy,) = visit.resources(3)
    reaction = allergy["reaction"][0]
    assert reaction["manifestation"][0]["text"] == "Hives"
    if visit.face == "dstu2":
        assert allergy["substance"]["text"] == "Penicillin"
        assert allergy["substance"]["coding"][0]["display"] == "Penicillin G"
        assert allergy["status"] == "confirmed"  # active + confirmed (§7.2)
        assert "code" not in allergy and "clinicalStatus" not in allergy
    else:
        assert allergy["code"]["text"] == "Penicillin"
        assert allergy["clinicalStatus"] == "active"
        assert allergy["verificationStatus"] == "confirmed"
        assert allergy["assertedDate"] == "2019-06-12"


def test_medication_has_date_prescriber_medication_and_dosage(visit: Visit) -> None:
    (medication,) = visit.resources(4)
    assert medication["medicationCodeableConcept"]["text"] == "Metformin 500 mg"
    assert medication["dosageInstruction"][0]["text"] == "One tablet twice a day with meals"
    if visit.face == "dstu2":
        assert medication["resourceType"] == "MedicationOrder"
        assert medication["dateWritten"] == "2024-04-20T09:15:00Z"
        assert medication["prescriber"] == {
            "reference": f"Practitioner/{PRACTITIONER}",
            "display": GP_DISPLAY,
        }
        assert "authoredOn" not in medication and "requester" not in medication
    else:
        assert medication["resourceType"] == "MedicationRequest"
        assert medication["authoredOn"] == "2024-04-20T09:15:00Z"
        assert medication["requester"]["agent"] == {
            "reference": f"Practitioner/{PRACTITIONER}",
            "display": GP_DISPLAY,
        }


def test_medication_entry_full_url_names_the_face_type(visit: Visit) -> None:
    medication = "MedicationOrder" if visit.face == "dstu2" else "MedicationRequest"
    (entry,) = visit.entry(4)["entry"]
    assert entry["fullUrl"].endswith(f"/api/fhir/{visit.face}/{medication}/med-metformin")


def test_coverage_has_plan_in_the_face_shape(visit: Visit) -> None:
    (coverage,) = visit.resources(5)
    if visit.face == "dstu2":
        # The DSTU2 example shows a readable plan: class.name when present (§9.2).
        assert coverage["plan"] == "Gold Plus"
        assert coverage["group"] == "GRP-1001"
        assert coverage["subscriberId"] == {"value": "SUB-99812"}
        # The DSTU2 spec's "Payor": the first Organization payor (§9.1).
        assert coverage["issuer"]["display"] == "Contoso Health"
    else:
        grouping = coverage["grouping"]
        assert (grouping["planDisplay"], grouping["groupDisplay"]) == (
            "Gold Plus",
            "Contoso Employees",
        )
        assert coverage["subscriberId"] == "SUB-99812"
        assert coverage["period"] == {"start": "2024-01-01", "end": "2024-12-31"}
        assert "class" not in coverage


# -- nothing of the provider reaches the app ---------------------------------------------------


def test_no_answer_names_the_provider(visit: Visit, app: App) -> None:
    port = f":{urlsplit(app.provider.origin).port}/"
    for answer in visit.answers:
        text = answer.text + json.dumps(dict(answer.headers))
        assert app.provider.origin not in text, answer.url
        assert port not in text, answer.url


def test_answers_carry_the_face_media_type(visit: Visit) -> None:
    fhir_answers = visit.answers[:1] + visit.answers[2:]  # the token answer is plain JSON
    for answer in fhir_answers:
        assert answer.headers["Content-Type"].startswith(MIME[visit.face]), answer.url
