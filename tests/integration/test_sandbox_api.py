"""The sandbox's FHIR R4 API in-process: SandboxApi.handle over a real SandboxStore on Azurite.

Each test gets its own table holding the chart of one patient (hand-written R4 resources from
tests/support/sandbox.py) and a provisioned sandbox key in an in-memory secret store.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import azure.functions as func
import pytest

from shared.http import Headers, Request, Response
from shared.proxy.capabilities import Capabilities, detect, effective
from shared.sandbox.access import SandboxKey, ensure_sandbox_key
from shared.sandbox.api import MAX_BATCH_ENTRIES, SandboxApi
from shared.sandbox.store import SUPPORTED_TYPES, SandboxStore
from shared.secret_store import LocalSecretStore
from shared.services import Services, set_services
from shared.settings import Settings
from shared.tables import AzureEntityTable, StoreUnavailable
from tests.support.app import registered_functions
from tests.support.sandbox import (
    condition,
    encounter,
    fresh_table,
    location,
    observation,
    patient,
    practitioner,
)
from tools.invocation_context import invocation_context
from tools.testkit.data import SEARCH_PARAMETERS, data_file

ORIGIN = "https://bridge.test"
BASE = f"{ORIGIN}/api/sandbox/fhir"
FHIR_JSON = "application/fhir+json"
COMPARTMENT_TYPES = (
    "Observation",
    "Condition",
    "Encounter",
    "AllergyIntolerance",
    "MedicationRequest",
    "Coverage",
)


# -- the chart of one patient ------------------------------------------------------------------


def chart() -> list[dict[str, Any]]:
    return [
        patient("ruth"),
        observation("ruth", "hr-1", effective="2024-01-10T08:00:00Z", value=70),
        observation("ruth", "hr-2", effective="2024-03-10T08:00:00Z", value=80),
        observation("ruth", "hr-3", effective="2024-02-10T08:00:00Z", value=75),
        condition("ruth", "cond-1"),
        encounter("ruth", "enc-1"),
        location("ward-4b"),
        practitioner("dr-who"),
    ]


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def store(azurite: str) -> Iterator[SandboxStore]:
    with fresh_table(azurite) as table:
        sandbox = SandboxStore(AzureEntityTable(table))
        sandbox.load(chart())
        yield sandbox


@pytest.fixture
def secrets() -> LocalSecretStore:
    return LocalSecretStore(None)


@pytest.fixture
def key(secrets: LocalSecretStore) -> str:
    return ensure_sandbox_key(secrets)


@pytest.fixture
def settings() -> Settings:
    return Settings(sandbox_enabled=True)


@pytest.fixture
def api(settings: Settings, store: SandboxStore, secrets: LocalSecretStore, key: str) -> SandboxApi:
    return SandboxApi(settings, store, SandboxKey(secrets, 60))


class Client:
    """Requests to one SandboxApi as the function hands them over."""

    def __init__(self, api: SandboxApi, key: str | None) -> None:
        self.api = api
        self.key = key

    def send(
        self,
        method: str,
        path: str = "",
        *,
        query: str = "",
        body: Any = None,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
        key: str | None = "default",
    ) -> Response:
        url = f"{BASE}/{path}" if path else BASE
        if query:
            url += f"?{query}"
        all_headers = Headers(headers or {})
        presented = self.key if key == "default" else key
        if presented is not None:
            all_headers.add("Authorization", f"Bearer {presented}")
        raw = b""
        if body is not None:
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            all_headers.add("Content-Type", content_type or FHIR_JSON)
        return self.api.handle(Request(method, url, all_headers, raw, {"path": path}))

    def follow(self, url: str) -> Response:
        parts = urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc}" == ORIGIN
        path = parts.path.removeprefix("/api/sandbox/fhir").lstrip("/")
        return self.send("GET", path, query=parts.query)


@pytest.fixture
def client(api: SandboxApi, key: str) -> Client:
    return Client(api, key)


def outcome(response: Response) -> dict[str, Any]:
    document = response.json()
    assert document["resourceType"] == "OperationOutcome"
    return dict(document["issue"][0])


def ids(bundle: dict[str, Any]) -> list[str]:
    return [entry["resource"]["id"] for entry in bundle.get("entry", [])]


def form(pairs: str) -> dict[str, Any]:
    return {"body": pairs.encode(), "content_type": "application/x-www-form-urlencoded"}


# -- metadata ----------------------------------------------------------------------------------


def test_metadata_is_open_and_a_valid_r4_capability_statement(client):
    from fhir.resources.R4B.capabilitystatement import CapabilityStatement

    response = client.send("GET", "metadata", key=None)
    assert response.status == 200
    assert response.headers.get("Content-Type") == f"{FHIR_JSON}; charset=utf-8"
    statement = response.json()
    CapabilityStatement.model_validate(statement)
    assert (statement["status"], statement["kind"], statement["fhirVersion"]) == (
        "active",
        "instance",
        "4.0.1",
    )
    assert statement["implementation"]["url"] == BASE
    assert "json" in statement["format"]
    (rest,) = statement["rest"]
    assert rest["mode"] == "server"
    assert {"code": "batch"} in rest["interaction"]
    assert "Bearer" in rest["security"]["description"]
    assert "SMART" not in json.dumps(rest["security"])


def test_metadata_lists_every_supported_type_with_crud_and_search(client):
    statement = client.send("GET", "metadata", key=None).json()
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert set(resources) == set(SUPPORTED_TYPES)
    for resource in resources.values():
        codes = {i["code"] for i in resource["interaction"]}
        assert codes == {"read", "search-type", "create", "update", "delete"}


# One value of each parameter type the store can parse.
SAMPLES = {
    "token": "x",
    "string": "x",
    "date": "2020",
    "reference": "Patient/ruth",
    "special": "-date",
}


def test_every_declared_search_parameter_is_accepted_by_the_sandbox(client):
    statement = client.send("GET", "metadata", key=None).json()
    for resource in statement["rest"][0]["resource"]:
        for param in resource["searchParam"]:
            pairs = [(param["name"], SAMPLES[param["type"]])]
            if resource["type"] in COMPARTMENT_TYPES and param["type"] != "reference":
                pairs.append(("patient", "ruth"))
            query = "&".join(f"{n}={v}" for n, v in pairs)
            response = client.send("GET", resource["type"], query=query)
            assert response.status == 200, (resource["type"], param["name"], response.text)


def test_sort_is_declared_exactly_where_the_sandbox_sorts(client):
    statement = client.send("GET", "metadata", key=None).json()
    for resource in statement["rest"][0]["resource"]:
        declared = any(p["name"] == "_sort" for p in resource["searchParam"])
        query = "_sort=-date" + ("&patient=ruth" if resource["type"] in COMPARTMENT_TYPES else "")
        response = client.send("GET", resource["type"], query=query)
        assert (response.status == 200) == declared, resource["type"]


def test_undeclared_standard_parameters_are_refused(client):
    statement = client.send("GET", "metadata", key=None).json()
    patient_params = next(
        r["searchParam"] for r in statement["rest"][0]["resource"] if r["type"] == "Patient"
    )
    assert "address" not in {p["name"] for p in patient_params}
    assert client.send("GET", "Patient", query="address=Main").status == 400


def test_declared_search_parameters_match_the_official_r4_definitions(client):
    path = data_file(SEARCH_PARAMETERS / "search-parameters-r4-4.0.1.json")
    official: dict[str, dict[str, Any]] = {}
    for entry in json.loads(path.read_text(encoding="utf-8"))["entry"]:
        official[entry["fullUrl"]] = entry["resource"]
    statement = client.send("GET", "metadata", key=None).json()
    for resource in statement["rest"][0]["resource"]:
        for param in resource["searchParam"]:
            if param["name"] == "_sort":
                continue
            definition = official[param["definition"]]
            assert definition["code"] == param["name"]
            assert definition["type"] == param["type"]
            bases = set(definition["base"])
            assert resource["type"] in bases or "Resource" in bases, param


def test_the_proxy_detects_batch_sort_and_post_search_from_the_statement(client):
    statement = client.send("GET", "metadata", key=None).json()
    assert detect(statement) == {"batch": True, "sort_by_date": True}
    assert effective(detect(statement), {}) == Capabilities(
        batch=True, sort_by_date=True, post_search=True
    )


def test_metadata_refuses_post_with_405(client):
    response = client.send("POST", "metadata", body={}, key=None)
    assert response.status == 405
    assert response.headers.get("Allow") == "GET"


def test_metadata_names_the_public_base_url_when_configured(store, secrets, key):
    settings = Settings(sandbox_enabled=True, public_base_url="https://ehr.example.org")
    api = SandboxApi(settings, store, SandboxKey(secrets, 60))
    statement = Client(api, key).send("GET", "metadata").json()
    assert statement["implementation"]["url"] == "https://ehr.example.org/api/sandbox/fhir"


# -- the key -----------------------------------------------------------------------------------


def test_a_request_without_the_key_is_401_with_a_bearer_challenge(client):
    response = client.send("GET", "Patient/ruth", key=None)
    assert response.status == 401
    assert response.headers.get("WWW-Authenticate") == 'Bearer realm="sandbox"'
    assert outcome(response)["code"] == "login"


def test_a_wrong_key_is_401_invalid_token(client, key):
    response = client.send("GET", "Patient/ruth", key=key[:-1] + ("A" if key[-1] != "A" else "B"))
    assert response.status == 401
    assert 'error="invalid_token"' in response.headers.get("WWW-Authenticate")
    assert key not in response.text


def test_another_scheme_is_401(client, key):
    response = client.send(
        "GET", "Patient/ruth", key=None, headers={"Authorization": f"Basic {key}"}
    )
    assert response.status == 401


def test_an_unprovisioned_key_is_503_saying_to_provision_it(settings, store):
    api = SandboxApi(settings, store, SandboxKey(LocalSecretStore(None), 60))
    response = Client(api, "anything").send("GET", "Patient/ruth")
    assert response.status == 503
    assert "provision" in outcome(response)["diagnostics"]
    assert response.headers.get("Retry-After")


def test_metadata_stays_open_while_the_key_is_unprovisioned(settings, store):
    api = SandboxApi(settings, store, SandboxKey(LocalSecretStore(None), 60))
    assert Client(api, None).send("GET", "metadata").status == 200


# -- read --------------------------------------------------------------------------------------


def test_read_answers_the_resource_with_etag_and_last_modified(client, store):
    response = client.send("GET", "Patient/ruth")
    assert response.status == 200
    body = response.json()
    assert body["name"][0]["family"] == "Black"
    assert response.headers.get("ETag") == f'W/"{body["meta"]["versionId"]}"'
    assert response.headers.get("Last-Modified").endswith(" GMT")
    assert response.headers.get("Content-Type") == f"{FHIR_JSON}; charset=utf-8"


def test_read_of_an_unknown_id_is_404(client):
    response = client.send("GET", "Patient/nobody")
    assert response.status == 404
    assert outcome(response)["code"] == "not-found"


def test_read_of_a_type_the_sandbox_does_not_keep_is_404_not_supported(client):
    response = client.send("GET", "Medication/x")
    assert response.status == 404
    assert outcome(response)["code"] == "not-supported"


def test_read_of_the_current_version_by_history_url_works_and_others_are_404(client):
    version = client.send("GET", "Patient/ruth").json()["meta"]["versionId"]
    assert client.send("GET", f"Patient/ruth/_history/{version}").status == 200
    assert client.send("GET", f"Patient/ruth/_history/{version}0").status == 404


def test_xml_is_refused_with_406(client):
    assert (
        client.send("GET", "Patient/ruth", headers={"Accept": "application/fhir+xml"}).status == 406
    )
    assert client.send("GET", "Patient/ruth", query="_format=xml").status == 406


def test_json_format_parameter_is_accepted(client):
    assert client.send("GET", "Patient/ruth", query="_format=json").status == 200
    assert client.send("GET", "Patient", query="family=black&_format=json").status == 200


# -- search ------------------------------------------------------------------------------------


def test_search_answers_a_searchset_with_total_self_link_and_full_urls(client):
    response = client.send("GET", "Observation", query="patient=ruth&category=vital-signs")
    assert response.status == 200
    bundle = response.json()
    assert (bundle["type"], bundle["total"]) == ("searchset", 3)
    links = {link["relation"]: link["url"] for link in bundle["link"]}
    assert links["self"].startswith(f"{BASE}/Observation?")
    assert "next" not in links
    for entry in bundle["entry"]:
        assert entry["fullUrl"] == f"{BASE}/Observation/{entry['resource']['id']}"
        assert entry["search"] == {"mode": "match"}


def test_following_next_links_pages_through_every_match_once(client):
    bundle = client.send("GET", "Observation", query="patient=ruth&_count=2").json()
    seen = ids(bundle)
    assert len(seen) == 2
    while next_url := {lk["relation"]: lk["url"] for lk in bundle["link"]}.get("next"):
        assert "_offset=" in next_url and "_count=2" in next_url
        response = client.follow(next_url)
        assert response.status == 200
        bundle = response.json()
        seen += ids(bundle)
    assert sorted(seen) == ["hr-1", "hr-2", "hr-3"]


def test_self_link_repeats_the_search_when_followed(client):
    bundle = client.send("GET", "Observation", query="patient=ruth&_sort=-date&_count=2").json()
    self_url = next(link["url"] for link in bundle["link"] if link["relation"] == "self")
    assert ids(client.follow(self_url).json()) == ids(bundle)


def test_search_sorted_by_date_descending_is_newest_first(client):
    bundle = client.send("GET", "Observation", query="patient=ruth&_sort=-date").json()
    assert ids(bundle) == ["hr-2", "hr-3", "hr-1"]


def test_post_search_answers_like_get(client):
    got = client.send("GET", "Patient", query="given=ruth&family=black").json()
    posted = client.send("POST", "Patient/_search", **form("given=ruth&family=black"))
    assert posted.status == 200
    assert posted.json()["total"] == got["total"] == 1
    assert ids(posted.json()) == ids(got) == ["ruth"]


def test_post_search_merges_the_form_after_the_query(client):
    response = client.send("POST", "Observation/_search", query="patient=ruth", **form("_count=1"))
    bundle = response.json()
    assert (bundle["total"], len(bundle["entry"])) == (3, 1)


def test_post_search_with_a_json_body_is_415(client):
    response = client.send("POST", "Patient/_search", body={"family": "black"})
    assert response.status == 415


def test_an_unsupported_parameter_is_400_naming_it(client):
    response = client.send("GET", "Patient", query="address-city=Boston")
    assert response.status == 400
    assert "address-city" in outcome(response)["diagnostics"]


def test_an_unsupported_modifier_is_400_naming_the_parameter(client):
    response = client.send("GET", "Patient", query="gender:not=male")
    assert response.status == 400
    assert "gender:not" in outcome(response)["diagnostics"]


# -- create, update, delete --------------------------------------------------------------------


def test_create_is_201_with_location_etag_and_the_stored_resource(client):
    response = client.send("POST", "Patient", body=patient("ignored", gender="male"))
    assert response.status == 201
    created = response.json()
    assert created["id"] != "ignored"
    version = created["meta"]["versionId"]
    assert response.headers.get("Location") == f"{BASE}/Patient/{created['id']}/_history/{version}"
    assert response.headers.get("ETag") == f'W/"{version}"'
    assert response.headers.get("Last-Modified")
    assert client.follow(response.headers.get("Location")).json()["gender"] == "male"


def test_create_with_another_resource_type_than_the_url_is_400(client):
    response = client.send("POST", "Observation", body=patient("ruth"))
    assert response.status == 400
    assert "resourceType" in outcome(response)["diagnostics"]


def test_update_of_a_new_id_is_201_then_200_with_a_new_version(client):
    first = client.send("PUT", "Patient/anna", body=patient("anna"))
    assert first.status == 201
    assert first.headers.get("Location", "").startswith(f"{BASE}/Patient/anna/_history/")
    second = client.send("PUT", "Patient/anna", body=patient("anna", gender="other"))
    assert second.status == 200
    assert second.headers.get("ETag") != first.headers.get("ETag")
    assert client.send("GET", "Patient/anna").json()["gender"] == "other"


def test_update_with_another_id_in_the_body_is_400_and_changes_nothing(client):
    response = client.send("PUT", "Patient/ruth", body=patient("someone-else", gender="male"))
    assert response.status == 400
    assert client.send("GET", "Patient/ruth").json()["gender"] == "female"


def test_update_without_an_id_in_the_body_is_400(client):
    assert client.send("PUT", "Patient/ruth", body=patient()).status == 400


def test_update_with_another_resource_type_than_the_url_is_400(client):
    assert client.send("PUT", "Patient/ruth", body=observation("ruth", "ruth")).status == 400


def test_delete_is_204_and_the_resource_is_gone(client):
    response = client.send("DELETE", "Practitioner/dr-who")
    assert (response.status, response.body) == (204, b"")
    assert client.send("GET", "Practitioner/dr-who").status == 404


def test_delete_of_a_missing_resource_is_404(client):
    response = client.send("DELETE", "Practitioner/nobody")
    assert response.status == 404
    assert outcome(response)["code"] == "not-found"


def test_an_invalid_resource_is_422_naming_the_element_and_nothing_is_stored(client):
    before = client.send("GET", "Patient", query="_count=0").json()["total"]
    response = client.send("POST", "Patient", body=patient("x", birth_date="first of May"))
    assert response.status == 422
    issue = outcome(response)
    assert issue["expression"] == ["Patient.birthDate"]
    assert issue["diagnostics"]
    assert client.send("GET", "Patient", query="_count=0").json()["total"] == before


def test_an_invalid_update_is_422_and_leaves_the_stored_version(client):
    response = client.send("PUT", "Patient/ruth", body=patient("ruth", gender="robot"))
    assert response.status == 422
    assert outcome(response)["expression"] == ["Patient.gender"]
    assert client.send("GET", "Patient/ruth").json()["gender"] == "female"


@pytest.mark.parametrize(
    "body", [b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe\x00"], ids=["bad", "list", "str", "bin"]
)
def test_a_body_that_is_not_a_json_object_is_400(client, body):
    response = client.send("POST", "Patient", body=body)
    assert response.status == 400
    assert outcome(response)["code"] in ("structure", "invalid")


def test_a_body_that_is_not_json_media_type_is_415(client):
    response = client.send("POST", "Patient", body=b"<Patient/>", content_type="application/xml")
    assert response.status == 415


def test_a_body_over_the_limit_is_413(store, secrets, key):
    settings = Settings(sandbox_enabled=True, max_request_body_bytes=1000)
    api = SandboxApi(settings, store, SandboxKey(secrets, 60))
    body = patient("big", text={"status": "generated", "div": "<div>" + "x" * 2000 + "</div>"})
    assert Client(api, key).send("POST", "Patient", body=body).status == 413


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "Patient/ruth/_history", 400),
        ("GET", "Patient/$everything", 400),
        ("GET", "Patient/ruth/$everything", 400),
        ("PATCH", "Patient/ruth", 405),
        ("POST", "Patient/ruth", 405),
        ("DELETE", "Patient", 405),
        ("GET", "", 405),
        ("GET", "Patient/..%2F..%2Fx", 400),
    ],
)
def test_interactions_the_sandbox_does_not_offer_are_refused(client, method, path, status):
    response = client.send(method, path)
    assert response.status == status
    assert response.json()["resourceType"] == "OperationOutcome"


# -- batch -------------------------------------------------------------------------------------


def batch(*entries: dict[str, Any], kind: str = "batch") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def get(url: str) -> dict[str, Any]:
    return {"request": {"method": "GET", "url": url}}


def test_batch_runs_mixed_entries_in_order_and_a_failing_entry_fails_alone(client):
    bundle = batch(
        get("Patient/ruth"),
        get("Observation?patient=ruth&category=vital-signs&_sort=-date"),
        get("Patient/nobody"),
        {"request": {"method": "POST", "url": "Condition"}, "resource": {
            "resourceType": "Condition", "subject": {"reference": "Patient/ruth"},
            "code": {"text": "Asthma"}}},
        {"request": {"method": "PUT", "url": "Location/ward-5a"},
         "resource": {"resourceType": "Location", "id": "ward-5a", "name": "Ward 5A"}},
        {"request": {"method": "POST", "url": "Patient"},
         "resource": patient("x", birth_date="never")},
        {"request": {"method": "DELETE", "url": "Practitioner/dr-who"}},
        get("Location/ward-5a"),
    )  # fmt: skip
    response = client.send("POST", "", body=bundle)
    assert response.status == 200
    answer = response.json()
    assert answer["type"] == "batch-response"
    statuses = [entry["response"]["status"] for entry in answer["entry"]]
    assert statuses == [
        "200 OK",
        "200 OK",
        "404 Not Found",
        "201 Created",
        "201 Created",
        "422 Unprocessable Entity",
        "204 No Content",
        "200 OK",
    ]
    read, search, missing, created, put, invalid, _, reread = answer["entry"]
    assert read["resource"]["id"] == "ruth"
    assert ids(search["resource"]) == ["hr-2", "hr-3", "hr-1"]
    assert missing["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert created["response"]["location"].startswith(f"{BASE}/Condition/")
    assert created["response"]["etag"].startswith('W/"')
    assert put["response"]["lastModified"] == put["resource"]["meta"]["lastUpdated"]
    assert invalid["response"]["outcome"]["issue"][0]["expression"] == ["Patient.birthDate"]
    assert reread["resource"]["name"] == "Ward 5A"
    assert client.send("GET", "Practitioner/dr-who").status == 404


def test_a_malformed_batch_entry_fails_alone(client):
    bundle = batch({"request": {"method": "GET", "url": "https://elsewhere.example/Patient/1"}},
                   {"request": {"method": "PATCH", "url": "Patient/ruth"}},
                   {"nothing": True}, get("Patient/ruth"))  # fmt: skip
    answer = client.send("POST", "", body=bundle).json()
    statuses = [entry["response"]["status"][:3] for entry in answer["entry"]]
    assert statuses == ["400", "405", "400", "200"]


def test_a_transaction_is_refused_with_400_pointing_to_batch(client):
    response = client.send("POST", "", body=batch(get("Patient/ruth"), kind="transaction"))
    assert response.status == 400
    issue = outcome(response)
    assert issue["code"] == "not-supported"
    assert "batch" in issue["diagnostics"]


def test_a_batch_over_the_entry_limit_is_400(client):
    entries = [get("Patient/ruth")] * (MAX_BATCH_ENTRIES + 1)
    response = client.send("POST", "", body=batch(*entries))
    assert response.status == 400
    assert outcome(response)["code"] == "too-costly"


def test_a_batch_at_the_entry_limit_runs(client):
    entries = [get("Location/ward-4b")] * MAX_BATCH_ENTRIES
    answer = client.send("POST", "", body=batch(*entries)).json()
    assert len(answer["entry"]) == MAX_BATCH_ENTRIES


def test_a_post_to_the_base_that_is_not_a_bundle_is_400(client):
    assert client.send("POST", "", body=patient("ruth")).status == 400


# -- failures of our own -----------------------------------------------------------------------


class FailingStore:
    """A store whose every call raises ``error`` (fault injection for the API's error paths)."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise self.error

        return fail


def test_storage_unavailable_is_503_with_retry_after(settings, secrets, key):
    api = SandboxApi(
        settings, FailingStore(StoreUnavailable("down", retry_after=7)), SandboxKey(secrets, 60)
    )  # type: ignore[arg-type]
    response = Client(api, key).send("GET", "Patient/ruth")
    assert response.status == 503
    assert response.headers.get("Retry-After") == "7"
    assert outcome(response)["code"] == "transient"


def test_an_unexpected_error_is_500_with_a_request_id_and_no_details(
    settings, secrets, key, caplog
):
    store = FailingStore(RuntimeError("connection string AccountKey=s3cr3t"))
    api = SandboxApi(settings, store, SandboxKey(secrets, 60))  # type: ignore[arg-type]
    response = Client(api, key).send("GET", "Patient/ruth", headers={"X-Request-Id": "req-42"})
    assert response.status == 500
    assert "req-42" in outcome(response)["diagnostics"]
    assert "s3cr3t" not in response.text and "Traceback" not in response.text
    assert "req-42" in caplog.text


# -- disabled ----------------------------------------------------------------------------------


def test_a_disabled_sandbox_answers_404_even_for_metadata(store, secrets, key):
    api = SandboxApi(Settings(sandbox_enabled=False), store, SandboxKey(secrets, 60))
    for path in ("metadata", "Patient/ruth"):
        response = Client(api, key).send("GET", path)
        assert response.status == 404
        assert outcome(response)["code"] == "not-found"


@pytest.fixture
def app_functions() -> Iterator[dict[str, Any]]:
    set_services(None)
    yield registered_functions()
    set_services(None)


def http_request(method: str, url: str, path: str) -> func.HttpRequest:
    return func.HttpRequest(
        method=method, url=url, headers={}, params={}, route_params={"path": path}, body=b""
    )


@pytest.mark.parametrize(
    ("name", "route", "methods"),
    [
        ("sandbox_fhir", "sandbox/fhir/{*path}", {"GET", "POST", "PUT", "PATCH", "DELETE"}),
        ("sandbox_ui", "sandbox/ui/{*path}", {"GET", "POST"}),
    ],
)
def test_sandbox_routes_are_anonymous_at_the_host(app_functions, name, route, methods):
    trigger = app_functions[name].get_trigger()
    assert trigger.route == route
    assert trigger.auth_level == func.AuthLevel.ANONYMOUS
    assert {m.value for m in trigger.methods} == methods


@pytest.mark.parametrize(
    ("name", "url"),
    [
        ("sandbox_fhir", "http://localhost:7071/api/sandbox/fhir/metadata"),
        ("sandbox_ui", "http://localhost:7071/api/sandbox/ui/"),
    ],
)
def test_both_sandbox_functions_answer_404_when_the_sandbox_is_off(
    app_functions, secrets, name, url
):
    set_services(Services(Settings(sandbox_enabled=False), secret_store=secrets))
    handler = app_functions[name].get_user_function()
    response = handler(
        http_request("GET", url, url.split("/", 6)[-1]), invocation_context(name, {})
    )
    assert response.status_code == 404
    assert json.loads(response.get_body())["resourceType"] == "OperationOutcome"


def test_the_fhir_function_answers_through_the_services_when_on(app_functions, store, secrets, key):
    services = Services(Settings(sandbox_enabled=True), secret_store=secrets)
    services.__dict__["sandbox_store"] = store
    set_services(services)
    handler = app_functions["sandbox_fhir"].get_user_function()
    req = func.HttpRequest(
        method="GET",
        url="http://localhost:7071/api/sandbox/fhir/Patient/ruth",
        headers={"Authorization": f"Bearer {key}"},
        params={},
        route_params={"path": "Patient/ruth"},
        body=b"",
    )
    response = handler(req, invocation_context("sandbox_fhir", {}))
    assert response.status_code == 200
    assert json.loads(response.get_body())["id"] == "ruth"
