"""The proxy's version-conversion hook: FhirVersionConverter."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.fhir.errors import InvalidRequest, NotConvertible, UpstreamError
from shared.http import Headers
from shared.proxy.conversion import FhirVersionConverter
from shared.proxy.model import UpstreamRequest, UpstreamResponse

FORM = "application/x-www-form-urlencoded"
R4_JSON = "application/fhir+json"
DSTU2_JSON = "application/json+fhir"


@pytest.fixture
def converter() -> FhirVersionConverter:
    return FhirVersionConverter()


def get(path: str, query: str = "", **headers: str) -> UpstreamRequest:
    return UpstreamRequest("GET", path, query, Headers({"Accept": R4_JSON, **headers}))


def answer(document: Any, content_type: str = R4_JSON, **headers: str) -> UpstreamResponse:
    body = json.dumps(document).encode()
    return UpstreamResponse(200, Headers({"Content-Type": content_type, **headers}), body, 3.0)


def r4_patient(**fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": "example",
        "name": [{"use": "official", "family": "Chalmers", "given": ["Peter"]}],
        "gender": "male",
        **fields,
    }


# -- requests ----------------------------------------------------------------------------------


def test_same_version_request_is_passed_through_as_the_same_object(converter):
    request = get("MedicationOrder", "_sort:desc=date")
    assert converter.request("dstu2", "dstu2", request) is request


def test_path_and_query_are_in_the_providers_spelling(converter):
    converted = converter.request(
        "dstu2", "r4", get("MedicationOrder", "patient=example&_sort:desc=datewritten&_count=10")
    )
    assert (converted.method, converted.path, converted.query) == (
        "GET",
        "MedicationRequest",
        "patient=example&_sort=-authoredon&_count=10",
    )


def test_the_original_request_is_not_changed(converter):
    request = get("MedicationOrder", "_sort:desc=date", **{"Content-Type": DSTU2_JSON})
    converter.request("dstu2", "r4", request)
    assert (request.path, request.query) == ("MedicationOrder", "_sort:desc=date")
    assert request.headers.get("Accept") == R4_JSON


def test_a_search_form_body_is_converted_like_a_query(converter):
    request = UpstreamRequest(
        "POST",
        "Patient/_search",
        "",
        Headers({"Content-Type": FORM}),
        b"id=example&family:contains=chal&careprovider=Practitioner%2F1",
    )
    converted = converter.request("dstu2", "r4", request)
    assert (
        converted.body == b"_id=example&family:contains=chal&general-practitioner=Practitioner%2F1"
    )
    assert converted.headers.get("Content-Type") == FORM


def test_a_batch_bundle_body_gets_every_entry_url_converted(converter):
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": "MedicationOrder?patient=example"}},
            {"request": {"method": "GET", "url": "Encounter?patient=example&_sort:desc=date"}},
        ],
    }
    request = UpstreamRequest(
        "POST", "", "", Headers({"Content-Type": DSTU2_JSON}), json.dumps(bundle).encode()
    )
    converted = converter.request("dstu2", "r4", request)
    urls = [e["request"]["url"] for e in json.loads(converted.body)["entry"]]
    assert urls == ["MedicationRequest?patient=example", "Encounter?patient=example&_sort=-date"]
    assert converted.headers.get("Content-Type") == f"{R4_JSON}; charset=utf-8"


def test_the_accept_header_names_the_providers_json_type(converter):
    converted = converter.request("r4", "dstu2", get("Patient/1", Accept=R4_JSON))
    assert converted.headers.get("Accept") == DSTU2_JSON
    converted = converter.request("dstu2", "r4", get("Patient/1", Accept=DSTU2_JSON))
    assert converted.headers.get("Accept") == R4_JSON


def test_a_parameter_the_provider_cannot_express_is_a_400_naming_it(converter):
    with pytest.raises(InvalidRequest) as raised:
        converter.request("dstu2", "r4", get("Observation", "component-value-string=x"))
    assert raised.value.status == 400
    assert raised.value.code == "not-supported"
    assert "component-value-string" in raised.value.diagnostics


def test_a_batch_entry_the_provider_cannot_express_is_a_400(converter):
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": "Coverage?patient=example"}}],
    }
    request = UpstreamRequest(
        "POST", "", "", Headers({"Content-Type": R4_JSON}), json.dumps(bundle).encode()
    )
    with pytest.raises(InvalidRequest, match="entry 0"):
        converter.request("stu3", "dstu2", request)


def test_a_type_without_a_converter_is_a_501_naming_it(converter):
    with pytest.raises(NotConvertible) as raised:
        converter.request("dstu2", "r4", get("Substance/1"))
    assert raised.value.status == 501
    assert "Substance" in raised.value.diagnostics


def test_a_batch_entry_of_a_type_without_a_converter_is_a_501(converter):
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": "Substance/1"}}],
    }
    request = UpstreamRequest(
        "POST", "", "", Headers({"Content-Type": R4_JSON}), json.dumps(bundle).encode()
    )
    with pytest.raises(NotConvertible, match="Substance"):
        converter.request("stu3", "r4", request)


def test_a_written_resource_is_converted_to_the_providers_version(converter):
    patient = {"resourceType": "Patient", "name": [{"family": ["Black"]}]}
    request = UpstreamRequest(
        "POST", "Patient", "", Headers({"Content-Type": DSTU2_JSON}), json.dumps(patient).encode()
    )
    converted = converter.request("dstu2", "r4", request)
    assert json.loads(converted.body)["name"] == [{"family": "Black"}]
    assert converted.headers.get("Content-Type") == f"{R4_JSON}; charset=utf-8"


# -- responses ---------------------------------------------------------------------------------


def test_same_version_response_is_passed_through_unparsed(converter):
    response = UpstreamResponse(200, Headers({"Content-Type": R4_JSON}), b"not even json")
    assert converter.response("r4", "r4", response) is response


def test_a_resource_comes_back_in_the_faces_version_and_media_type(converter):
    converted = converter.response("dstu2", "r4", answer(r4_patient()))
    document = json.loads(converted.body)
    assert document["name"][0]["family"] == ["Chalmers"]
    assert converted.headers.get("Content-Type") == f"{DSTU2_JSON}; charset=utf-8"
    assert (converted.status, converted.elapsed_ms) == (200, 3.0)


def test_a_searchsets_links_use_the_faces_syntax_and_the_host_is_left_to_the_rewriter(converter):
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 1,
        "link": [
            {"relation": "self", "url": "https://p.example/fhir/Patient?_sort=-birthdate"},
            {"relation": "next", "url": "https://p.example/fhir/Patient?_sort=-birthdate&_page=Zz"},
        ],
        "entry": [{"fullUrl": "https://p.example/fhir/Patient/example", "resource": r4_patient()}],
    }
    document = json.loads(converter.response("dstu2", "r4", answer(bundle)).body)
    assert [link["url"] for link in document["link"]] == [
        "https://p.example/fhir/Patient?_sort:desc=birthdate",
        "https://p.example/fhir/Patient?_sort:desc=birthdate&_page=Zz",
    ]
    assert document["entry"][0]["resource"]["name"][0]["family"] == ["Chalmers"]


def test_location_headers_name_the_faces_type(converter):
    response = UpstreamResponse(
        201,
        Headers({"Location": "https://p/fhir/MedicationRequest/1/_history/1"}),
        b"",
    )
    converted = converter.response("dstu2", "r4", response)
    assert converted.headers.get("Location") == "https://p/fhir/MedicationOrder/1/_history/1"
    assert converted.body == b""


def test_a_provider_outcome_is_converted_too(converter):
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "multiple-matches", "diagnostics": "two"}],
    }
    response = UpstreamResponse(
        412, Headers({"Content-Type": R4_JSON}), json.dumps(outcome).encode()
    )
    converted = converter.response("stu3", "r4", response)
    assert converted.status == 412
    assert json.loads(converted.body)["issue"][0]["code"] == "processing"


def test_a_response_type_without_a_converter_is_a_501(converter):
    with pytest.raises(NotConvertible, match="Substance"):
        converter.response("dstu2", "r4", answer({"resourceType": "Substance", "id": "1"}))


def test_a_response_that_is_not_json_is_an_upstream_error(converter):
    response = UpstreamResponse(200, Headers({"Content-Type": R4_JSON}), b"<html>")
    with pytest.raises(UpstreamError):
        converter.response("dstu2", "r4", response)


def test_an_observation_searchset_comes_back_in_dstu2_with_dstu2_links(converter):
    observation = {
        "resourceType": "Observation",
        "id": "vs-1",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": "Patient/example"},
        "effectiveDateTime": "2026-01-10T08:00:00Z",
        "valueQuantity": {"value": 61, "unit": "/min"},
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 1,
        "link": [{"relation": "self", "url": "https://p/fhir/Observation?_sort=-date"}],
        "entry": [{"resource": observation, "search": {"mode": "match"}}],
    }
    document = json.loads(converter.response("dstu2", "r4", answer(bundle)).body)
    assert document["link"][0]["url"] == "https://p/fhir/Observation?_sort:desc=date"
    category = document["entry"][0]["resource"]["category"]
    assert category["coding"][0]["system"] == "http://hl7.org/fhir/observation-category"


# -- the enrichment hook -----------------------------------------------------------------------


def test_enrich_sees_the_providers_document_before_conversion(converter):
    seen: list[dict[str, Any]] = []

    def enrich(document: dict[str, Any]) -> None:
        seen.append(json.loads(json.dumps(document)))
        document["generalPractitioner"] = [{"reference": "Practitioner/1", "display": "Dr A"}]

    converted = converter.response("dstu2", "r4", answer(r4_patient()), enrich)
    assert seen[0]["name"][0]["family"] == "Chalmers"  # R4: before conversion
    assert json.loads(converted.body)["careProvider"] == [
        {"reference": "Practitioner/1", "display": "Dr A"}
    ]


def test_enrich_runs_on_same_version_responses_too(converter):
    def enrich(document: dict[str, Any]) -> None:
        document["gender"] = "female"

    converted = converter.response("r4", "r4", answer(r4_patient()), enrich)
    assert json.loads(converted.body)["gender"] == "female"
    assert converted.headers.get("Content-Type") == R4_JSON
