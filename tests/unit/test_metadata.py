"""The /metadata and smart-configuration endpoints of every FHIR face."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from typing import Any

import azure.functions as func
import pytest
from fhir.resources.R4B.capabilitystatement import CapabilityStatement as R4BCapabilityStatement
from fhir.resources.STU3.capabilitystatement import CapabilityStatement as STU3CapabilityStatement

from shared import metadata
from shared.fhir import JSON_MIME_TYPES, json_mime_type
from shared.fhir.outcome import operation_outcome, outcome_response
from shared.hosting import detect
from shared.http import Headers, Request
from shared.services import set_services
from shared.settings import FACES, Settings
from tests.support.app import registered_functions
from tools.invocation_context import invocation_context
from tools.testkit.data import HL7_EXAMPLES, REPO, SEARCH_PARAMETERS, data_file, data_files

TOKEN = "https://bridge.example/api/oauth2/token"
# What Flex Consumption's environment looks like to the app (shared/hosting.py).
FLEX = detect({"WEBSITE_SKU": "FlexConsumption", "CONTAINER_NAME": "c"})
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
SEARCH_PARAMETER = "http://hl7.org/fhir/SearchParameter/"

# What the Patients app reads, from its DSTU2 and STU3 interface specifications
# (docs/patients-app.md): resource (R4/STU3 name) -> interactions, search params and types.
APP_READS: dict[str, tuple[set[str], dict[str, str]]] = {
    "Patient": (
        {"read", "search-type"},
        {
            "_id": "token",
            "family": "string",
            "given": "string",
            "name": "string",
            "birthdate": "date",
            "gender": "token",
            "identifier": "token",
        },
    ),
    "Observation": (
        {"read", "search-type"},
        {"patient": "reference", "category": "token", "date": "date", "code": "token"},
    ),
    "Condition": ({"read", "search-type"}, {"patient": "reference"}),
    "Encounter": ({"read", "search-type"}, {"patient": "reference", "date": "date"}),
    "AllergyIntolerance": ({"read", "search-type"}, {"patient": "reference"}),
    "MedicationRequest": ({"read", "search-type"}, {"patient": "reference"}),
    "Coverage": ({"read", "search-type"}, {"patient": "reference"}),
    "Location": ({"read"}, {}),
}

# Parameters the app sends that a release does not define for the resource. Advertised anyway
# (the proxy maps them) and documented in the statement instead of given a definition.
DOCUMENTED_EXCEPTIONS = {("dstu2", "Coverage", "patient"), ("stu3", "Coverage", "patient")}

SEARCH_PARAMETER_BUNDLES = {
    "dstu2": "search-parameters-dstu2-1.0.2.json",
    "stu3": "search-parameters-stu3-3.0.0.json",
    "r4": "search-parameters-r4-4.0.1.json",
}

# Required value sets, per release (the DSTU2 lists are from the 1.0.2 Conformance
# StructureDefinition; STU3 and R4 from their CapabilityStatement pages). The fhir.resources
# models check structure but not these bindings.
TYPE_INTERACTIONS = {
    "dstu2": {
        "read",
        "vread",
        "update",
        "delete",
        "history-instance",
        "validate",
        "history-type",
        "create",
        "search-type",
    },
    "stu3": {
        "read",
        "vread",
        "update",
        "patch",
        "delete",
        "history-instance",
        "history-type",
        "create",
        "search-type",
    },
}
TYPE_INTERACTIONS["r4"] = TYPE_INTERACTIONS["stu3"]
SYSTEM_INTERACTIONS = {
    "dstu2": {"transaction", "search-system", "history-system"},
    "stu3": {"transaction", "batch", "search-system", "history-system"},
    "r4": {"transaction", "batch", "search-system", "history-system"},
}
SEARCH_PARAM_TYPES = {
    "dstu2": {"number", "date", "string", "token", "reference", "composite", "quantity", "uri"},
    "stu3": {"number", "date", "string", "token", "reference", "composite", "quantity", "uri"},
    "r4": {
        "number",
        "date",
        "string",
        "token",
        "reference",
        "composite",
        "quantity",
        "uri",
        "special",
    },
}
STATUSES = {
    "dstu2": {"draft", "active", "retired"},
    "stu3": {"draft", "active", "retired", "unknown"},
    "r4": {"draft", "active", "retired", "unknown"},
}

# DSTU2 Conformance (hl7.fhir.r2.core 1.0.2 StructureDefinition), as element -> (min, max) for
# the parts a server statement uses. Elements not described here (contact, messaging, document,
# CodeableConcepts, extensions) are accepted without looking inside.
_MANY = "*"
DSTU2_CONFORMANCE: dict[str, dict[str, tuple[int, int | str]]] = {
    "": {
        "resourceType": (1, 1),
        "id": (0, 1),
        "meta": (0, 1),
        "implicitRules": (0, 1),
        "language": (0, 1),
        "text": (0, 1),
        "contained": (0, _MANY),
        "extension": (0, _MANY),
        "modifierExtension": (0, _MANY),
        "url": (0, 1),
        "version": (0, 1),
        "name": (0, 1),
        "status": (0, 1),
        "experimental": (0, 1),
        "publisher": (0, 1),
        "contact": (0, _MANY),
        "date": (1, 1),
        "description": (0, 1),
        "requirements": (0, 1),
        "copyright": (0, 1),
        "kind": (1, 1),
        "software": (0, 1),
        "implementation": (0, 1),
        "fhirVersion": (1, 1),
        "acceptUnknown": (1, 1),
        "format": (1, _MANY),
        "profile": (0, _MANY),
        "rest": (0, _MANY),
        "messaging": (0, _MANY),
        "document": (0, _MANY),
    },
    "software": {"name": (1, 1), "version": (0, 1), "releaseDate": (0, 1)},
    "implementation": {"description": (1, 1), "url": (0, 1)},
    "rest": {
        "extension": (0, _MANY),
        "mode": (1, 1),
        "documentation": (0, 1),
        "security": (0, 1),
        "resource": (1, _MANY),
        "interaction": (0, _MANY),
        "transactionMode": (0, 1),
        "searchParam": (0, _MANY),
        "operation": (0, _MANY),
        "compartment": (0, _MANY),
    },
    "rest.security": {
        "extension": (0, _MANY),
        "cors": (0, 1),
        "service": (0, _MANY),
        "description": (0, 1),
        "certificate": (0, _MANY),
    },
    "rest.resource": {
        "type": (1, 1),
        "profile": (0, 1),
        "interaction": (1, _MANY),
        "versioning": (0, 1),
        "readHistory": (0, 1),
        "updateCreate": (0, 1),
        "conditionalCreate": (0, 1),
        "conditionalUpdate": (0, 1),
        "conditionalDelete": (0, 1),
        "searchInclude": (0, _MANY),
        "searchRevInclude": (0, _MANY),
        "searchParam": (0, _MANY),
    },
    "rest.resource.interaction": {"code": (1, 1), "documentation": (0, 1)},
    "rest.resource.searchParam": {
        "name": (1, 1),
        "definition": (0, 1),
        "type": (1, 1),
        "documentation": (0, 1),
        "target": (0, _MANY),
        "modifier": (0, _MANY),
        "chain": (0, _MANY),
    },
    "rest.interaction": {"code": (1, 1), "documentation": (0, 1)},
}
DSTU2_CODES = {
    "kind": {"instance", "capability", "requirements"},
    "acceptUnknown": {"no", "extensions", "elements", "both"},
    "rest.mode": {"client", "server"},
    "rest.transactionMode": {"not-supported", "batch", "transaction", "both"},
    "rest.resource.searchParam.modifier": {
        "missing",
        "exact",
        "contains",
        "not",
        "text",
        "in",
        "not-in",
        "below",
        "above",
        "type",
    },
}


# ---- helpers -------------------------------------------------------------------------------


def statement(face: str, token_url: str = TOKEN) -> dict[str, Any]:
    return metadata.capability_statement(
        face,
        token_url,
        software_version="9.9.9",
        published="2026-11-22",
        base_url=f"https://bridge.example/api/fhir/{face}",
    )


def request(
    method: str = "GET",
    url: str = "http://bridge.example:7071/api/fhir/stu3/metadata",
    headers: dict[str, str] | None = None,
) -> Request:
    return Request(method=method, url=url, headers=Headers(headers or {}))


def token_url_of(document: dict[str, Any]) -> str:
    (extension,) = document["rest"][0]["security"]["extension"]
    assert extension["url"] == OAUTH_URIS
    (token,) = [uri for uri in extension["extension"] if uri["url"] == "token"]
    return str(token["valueUri"])


def served(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {resource["type"]: resource for resource in document["rest"][0]["resource"]}


def app_name(face: str, resource: str) -> str:
    return "MedicationOrder" if face == "dstu2" and resource == "MedicationRequest" else resource


@functools.cache
def official_search_parameters(face: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(base resource, code) -> {type, definition, target} from the release's official bundle."""
    path = data_file(SEARCH_PARAMETERS / SEARCH_PARAMETER_BUNDLES[face])
    bundle = json.loads(path.read_text(encoding="utf-8"))
    index: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in bundle["entry"]:
        resource = entry["resource"]
        bases = resource["base"] if isinstance(resource["base"], list) else [resource["base"]]
        for base in bases:
            index[(base, resource["code"])] = {
                "type": resource["type"],
                "definition": entry["fullUrl"],
                "target": resource.get("target", []),
            }
    return index


def official_parameter(face: str, resource: str, code: str) -> dict[str, Any] | None:
    index = official_search_parameters(face)
    for base in (resource, "DomainResource", "Resource"):
        if (base, code) in index:
            return index[(base, code)]
    return None


def dstu2_problems(document: Any, path: str = "") -> list[str]:
    """Where ``document`` breaks the DSTU2 Conformance structure (elements, cardinality, codes)."""
    spec = DSTU2_CONFORMANCE[path]
    problems = [f"{path or '<root>'}: unknown element {key}" for key in document if key not in spec]
    for key, (low, high) in spec.items():
        child = f"{path}.{key}" if path else key
        value = document.get(key)
        values = value if isinstance(value, list) else [] if value is None else [value]
        if high == 1 and isinstance(value, list):
            problems.append(f"{child}: must not be an array")
        if high == _MANY and value is not None and not isinstance(value, list):
            problems.append(f"{child}: must be an array")
        if len(values) < low:
            problems.append(f"{child}: {low}.. required")
        for item in values:
            if child in DSTU2_CODES and item not in DSTU2_CODES[child]:
                problems.append(f"{child}: invalid code {item!r}")
            if child in DSTU2_CONFORMANCE:
                problems.extend(dstu2_problems(item, child))
    if (
        path == "rest.resource.interaction"
        and document.get("code") not in TYPE_INTERACTIONS["dstu2"]
    ):
        problems.append(f"{path}.code: invalid code {document.get('code')!r}")
    if path == "rest.interaction" and document.get("code") not in SYSTEM_INTERACTIONS["dstu2"]:
        problems.append(f"{path}.code: invalid code {document.get('code')!r}")
    if (
        path == "rest.resource.searchParam"
        and document.get("type") not in SEARCH_PARAM_TYPES["dstu2"]
    ):
        problems.append(f"{path}.type: invalid code {document.get('type')!r}")
    return problems


def without_json_comments(value: Any) -> Any:
    """An official DSTU2 example without its XML-comment carriers ("fhir_comments", "_x")."""
    if isinstance(value, dict):
        return {
            key: without_json_comments(item)
            for key, item in value.items()
            if key != "fhir_comments" and not key.startswith("_")
        }
    if isinstance(value, list):
        return [without_json_comments(item) for item in value]
    return value


# ---- the statement per release ---------------------------------------------------------------


def test_stu3_statement_validates_against_the_stu3_capabilitystatement_model() -> None:
    model = STU3CapabilityStatement.model_validate(statement("stu3"))
    assert model.fhirVersion == "3.0.2"


def test_r4_statement_validates_against_the_r4b_capabilitystatement_model() -> None:
    # fhir.resources 8 ships no R4 (4.0.1) package, so R4B (4.3.0) stands in. R4B changed no
    # CapabilityStatement element we emit, and its FHIRVersion value set still contains 4.0.1,
    # so the R4 document validates unchanged: no fhirVersion adjustment is needed.
    model = R4BCapabilityStatement.model_validate(statement("r4"))
    assert model.fhirVersion == "4.0.1"


def test_dstu2_statement_has_the_structure_dstu2_conformance_requires() -> None:
    assert dstu2_problems(statement("dstu2")) == []


def test_dstu2_structure_check_accepts_the_official_dstu2_conformance_examples() -> None:
    # Guards the hand-written DSTU2 check above against being stricter than the release.
    examples = data_files(HL7_EXAMPLES / "dstu2", "conformance-*.json")
    assert examples
    for example in examples:
        document = without_json_comments(json.loads(example.read_text(encoding="utf-8")))
        assert dstu2_problems(document) == [], example.name


def test_dstu2_structure_check_rejects_what_dstu2_lacks() -> None:
    broken = statement("r4")  # no acceptUnknown, a "batch" system interaction
    problems = dstu2_problems({**broken, "resourceType": "Conformance"})
    assert "acceptUnknown: 1.. required" in problems
    assert "rest.interaction.code: invalid code 'batch'" in problems


@pytest.mark.parametrize(
    ("face", "resource_type", "version"),
    [
        ("dstu2", "Conformance", "1.0.2"),
        ("stu3", "CapabilityStatement", "3.0.2"),
        ("r4", "CapabilityStatement", "4.0.1"),
    ],
)
def test_resource_type_and_fhir_version_follow_the_face(
    face: str, resource_type: str, version: str
) -> None:
    document = statement(face)
    assert (document["resourceType"], document["fhirVersion"]) == (resource_type, version)


@pytest.mark.parametrize(("face", "required"), [("dstu2", True), ("stu3", True), ("r4", False)])
def test_accept_unknown_is_present_exactly_where_the_release_requires_it(
    face: str, required: bool
) -> None:
    document = statement(face)
    assert ("acceptUnknown" in document) is required
    if required:
        assert document["acceptUnknown"] == "no"


@pytest.mark.parametrize("face", FACES)
def test_codes_come_from_the_releases_value_sets(face: str) -> None:
    document = statement(face)
    assert document["kind"] == "instance"
    assert document["status"] in STATUSES[face]
    assert document["format"] == ["json", JSON_MIME_TYPES[face]]
    rest = document["rest"][0]
    assert rest["mode"] == "server"
    for code in rest.get("interaction", []):
        assert code["code"] in SYSTEM_INTERACTIONS[face]
    for resource in rest["resource"]:
        for interaction in resource["interaction"]:
            assert interaction["code"] in TYPE_INTERACTIONS[face]
        for param in resource.get("searchParam", []):
            assert param["type"] in SEARCH_PARAM_TYPES[face]


@pytest.mark.parametrize(
    ("face", "system"),
    [
        ("dstu2", "http://hl7.org/fhir/restful-security-service"),
        ("stu3", "http://hl7.org/fhir/restful-security-service"),
        ("r4", "http://terminology.hl7.org/CodeSystem/restful-security-service"),
    ],
)
def test_security_service_is_oauth_in_the_releases_code_system(face: str, system: str) -> None:
    (service,) = statement(face)["rest"][0]["security"]["service"]
    assert [(c["system"], c["code"]) for c in service["coding"]] == [(system, "OAuth")]


@pytest.mark.parametrize("face", FACES)
def test_oauth_uris_extension_publishes_the_token_introspect_and_revoke_urls(face: str) -> None:
    (extension,) = statement(face)["rest"][0]["security"]["extension"]
    assert extension == {
        "url": OAUTH_URIS,
        "extension": [
            {"url": "token", "valueUri": TOKEN},
            {"url": "introspect", "valueUri": "https://bridge.example/api/oauth2/introspect"},
            {"url": "revoke", "valueUri": "https://bridge.example/api/oauth2/revoke"},
        ],
    }


@pytest.mark.parametrize(("face", "mode"), [("dstu2", True), ("stu3", False), ("r4", False)])
def test_batch_is_a_system_interaction_except_in_dstu2_where_it_is_the_transaction_mode(
    face: str, mode: bool
) -> None:
    rest = statement(face)["rest"][0]
    if mode:
        assert rest["transactionMode"] == "batch"
        assert "interaction" not in rest
    else:
        assert rest["interaction"] == [{"code": "batch"}]
        assert "transactionMode" not in rest


def test_dstu2_lists_medicationorder_and_later_faces_medicationrequest() -> None:
    assert "MedicationOrder" in served(statement("dstu2"))
    assert "MedicationRequest" not in served(statement("dstu2"))
    for face in ("stu3", "r4"):
        assert "MedicationRequest" in served(statement(face))
        assert "MedicationOrder" not in served(statement(face))


@pytest.mark.parametrize("face", FACES)
def test_every_resource_the_app_reads_is_listed_with_its_interactions_and_search_params(
    face: str,
) -> None:
    resources = served(statement(face))
    expected_types = {app_name(face, resource) for resource in APP_READS}
    assert set(resources) == expected_types
    for resource, (interactions, params) in APP_READS.items():
        entry = resources[app_name(face, resource)]
        assert {i["code"] for i in entry["interaction"]} == interactions, resource
        assert {p["name"]: p["type"] for p in entry.get("searchParam", [])} == params, resource


@pytest.mark.parametrize("face", FACES)
def test_every_advertised_search_param_is_the_releases_official_one(face: str) -> None:
    for resource in statement(face)["rest"][0]["resource"]:
        for param in resource.get("searchParam", []):
            where = (face, resource["type"], param["name"])
            official = official_parameter(face, resource["type"], param["name"])
            if where in DOCUMENTED_EXCEPTIONS:
                assert "definition" not in param, where
                assert param["documentation"], where
                continue
            assert official is not None, where
            assert param["type"] == official["type"], where
            assert param["definition"] == official["definition"], where
            assert set(param.get("target", [])) <= set(official["target"]), where


def test_documented_exceptions_really_are_missing_from_their_releases() -> None:
    # Keeps the allow-list honest: once a release defines the parameter, it must be used.
    for face, resource, code in DOCUMENTED_EXCEPTIONS:
        assert official_parameter(face, resource, code) is None
    assert official_parameter("r4", "Coverage", "patient") is not None


@pytest.mark.parametrize("face", FACES)
def test_resources_and_search_param_names_are_unique(face: str) -> None:
    # R4 invariants cpb-9 (one entry per resource type) and cpb-12 (unique parameter names).
    resources = statement(face)["rest"][0]["resource"]
    types = [resource["type"] for resource in resources]
    assert len(types) == len(set(types))
    for resource in resources:
        names = [param["name"] for param in resource.get("searchParam", [])]
        assert len(names) == len(set(names)), resource["type"]


@pytest.mark.parametrize("face", FACES)
def test_instance_statement_names_its_implementation_url(face: str) -> None:
    # R4 cpb-14: kind = instance requires implementation.
    implementation = statement(face)["implementation"]
    assert implementation["url"] == f"https://bridge.example/api/fhir/{face}"
    assert implementation["description"]


@pytest.mark.parametrize(
    ("face", "sort"), [("dstu2", "_sort:desc=date"), ("stu3", "_sort=-date"), ("r4", "_sort=-date")]
)
def test_sort_on_date_is_documented_in_the_faces_syntax(face: str, sort: str) -> None:
    document = statement(face)
    assert sort in document["rest"][0]["documentation"]
    assert "_count" in document["rest"][0]["documentation"]
    for resource in ("Observation", "Encounter"):
        (date,) = [p for p in served(document)[resource]["searchParam"] if p["name"] == "date"]
        assert sort in date["documentation"]


def test_unknown_face_is_a_programming_error_for_the_builder() -> None:
    with pytest.raises(ValueError, match="unknown face"):
        statement("r5")


def test_software_version_matches_the_project_version() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["version"] == metadata.SOFTWARE_VERSION


def test_every_face_has_statement_rules_and_a_media_type() -> None:
    for face in FACES:
        assert metadata.capability_statement(face, TOKEN, software_version="1", published="2026")
        assert face in JSON_MIME_TYPES


def test_importing_shared_metadata_loads_neither_azure_functions_nor_fhir_resources() -> None:
    # Cold start: the core must stay cheap to import.
    probe = (
        "import sys, shared.metadata; "
        "bad = [m for m in sys.modules if m.startswith(('azure', 'fhir', 'pydantic'))]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO,
        env={"PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---- the metadata response -------------------------------------------------------------------


def test_token_url_is_absolute_and_built_from_the_request_host() -> None:
    response = metadata.metadata_response(request(), "stu3", Settings())
    assert token_url_of(response.json()) == "http://bridge.example:7071/api/oauth2/token"
    assert response.json()["implementation"]["url"] == "http://bridge.example:7071/api/fhir/stu3"


def test_configured_public_base_url_wins_over_request_and_forwarded_hosts() -> None:
    settings = Settings(public_base_url="https://ehr.example.org", trust_forwarded_headers=True)
    forwarded = {"X-Forwarded-Host": "proxy.example", "X-Forwarded-Proto": "http"}
    response = metadata.metadata_response(request(headers=forwarded), "r4", settings)
    assert token_url_of(response.json()) == "https://ehr.example.org/api/oauth2/token"


def test_forwarded_headers_are_ignored_unless_trusted() -> None:
    forwarded = {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}
    response = metadata.metadata_response(request(headers=forwarded), "r4", Settings())
    assert token_url_of(response.json()) == "http://bridge.example:7071/api/oauth2/token"


def test_forwarded_headers_are_honoured_when_trusted() -> None:
    forwarded = {"X-Forwarded-Host": "ehr.example.org", "X-Forwarded-Proto": "https"}
    settings = Settings(trust_forwarded_headers=True)
    response = metadata.metadata_response(request(headers=forwarded), "r4", settings)
    assert token_url_of(response.json()) == "https://ehr.example.org/api/oauth2/token"


@pytest.mark.parametrize(
    "forged",
    [
        "evil.example/steal",
        "evil.example\r\nX-Injected: 1",
        "user@evil.example",
        "evil.example?x=",
        "evil.example#",
        "evil.example\\x",
    ],
)
def test_forged_forwarded_host_is_ignored(forged: str) -> None:
    settings = Settings(trust_forwarded_headers=True)
    response = metadata.metadata_response(
        request(headers={"X-Forwarded-Host": forged}), "r4", settings
    )
    assert token_url_of(response.json()) == "http://bridge.example:7071/api/oauth2/token"
    assert b"evil" not in response.body


@pytest.mark.parametrize("face", FACES)
def test_metadata_answers_in_the_faces_json_media_type(face: str) -> None:
    response = metadata.metadata_response(request(), face, Settings())
    assert response.status == 200
    assert response.headers.get("Content-Type") == f"{json_mime_type(face)}; charset=utf-8"
    assert response.json()["fhirVersion"] == statement(face)["fhirVersion"]


def test_dstu2_metadata_uses_the_dstu2_media_type() -> None:
    response = metadata.metadata_response(request(), "dstu2", Settings())
    assert response.headers.get("Content-Type") == "application/json+fhir; charset=utf-8"


def test_metadata_may_be_cached_for_five_minutes() -> None:
    settings = Settings(public_base_url="https://ehr.example.org")
    response = metadata.metadata_response(request(), "stu3", settings)
    assert response.headers.get("Cache-Control") == "public, max-age=300"
    assert response.headers.get("Vary") is None


@pytest.mark.parametrize(
    "handler", [metadata.metadata_response, metadata.smart_configuration_response]
)
def test_row_104_a_document_built_from_the_host_header_is_not_publicly_cacheable(handler) -> None:
    forged = request(url="http://evil.example/api/fhir/stu3/metadata")
    response = handler(forged, "stu3", Settings())
    assert "evil.example" in response.text  # locally the request's own host is used...
    assert response.headers.get("Cache-Control") == "private, max-age=300"  # ...kept private


@pytest.mark.parametrize(
    "handler", [metadata.metadata_response, metadata.smart_configuration_response]
)
def test_row_104_in_azure_without_a_public_url_metadata_is_refused(handler) -> None:
    forged = request(url="http://evil.example/api/fhir/stu3/metadata")
    response = handler(forged, "stu3", Settings(hosting=FLEX))
    assert response.status == 500
    issue = response.json()["issue"][0]
    assert "EHRB_PUBLIC_BASE_URL" in issue["diagnostics"]
    assert "evil.example" not in response.text
    assert response.headers.get("Cache-Control") == "no-store"


def test_in_azure_with_a_public_url_metadata_names_it_whatever_the_host() -> None:
    settings = Settings(hosting=FLEX, public_base_url="https://ehr.example.org")
    forged = request(url="http://evil.example/api/fhir/stu3/metadata")
    response = metadata.metadata_response(forged, "stu3", settings)
    assert response.status == 200
    assert token_url_of(response.json()) == "https://ehr.example.org/api/oauth2/token"


def test_metadata_varies_on_forwarded_headers_when_it_trusts_them() -> None:
    response = metadata.metadata_response(request(), "stu3", Settings(trust_forwarded_headers=True))
    assert response.headers.get("Vary") == "X-Forwarded-Host, X-Forwarded-Proto"


def test_metadata_ignores_a_garbage_bearer_token() -> None:
    # Security case 53: the endpoint is open, so a bad token neither fails nor matters.
    response = metadata.metadata_response(
        request(headers={"Authorization": "Bearer not.a.jwt"}), "stu3", Settings()
    )
    assert response.status == 200
    assert b"not.a.jwt" not in response.body


@pytest.mark.parametrize("face", ["dstu5", "STU3", "<script>alert(1)</script>", ""])
def test_unknown_face_is_404_operation_outcome_that_does_not_echo_the_face(face: str) -> None:
    response = metadata.metadata_response(request(), face, Settings())
    assert response.status == 404
    assert response.headers.get("Content-Type") == "application/fhir+json; charset=utf-8"
    (issue,) = response.json()["issue"]
    assert (issue["severity"], issue["code"]) == ("error", "not-found")
    assert all(known in issue["diagnostics"] for known in FACES)
    if face:
        assert face not in response.text


@pytest.mark.parametrize("face", FACES)
def test_post_to_metadata_is_405_with_allow_get(face: str) -> None:
    response = metadata.metadata_response(request(method="POST"), face, Settings())
    assert response.status == 405
    assert response.headers.get("Allow") == "GET"
    assert response.headers.get("Content-Type") == f"{json_mime_type(face)}; charset=utf-8"
    assert response.json()["issue"][0]["code"] == "not-supported"


# ---- smart-configuration ---------------------------------------------------------------------


def test_smart_configuration_has_the_fields_a_client_credentials_client_needs() -> None:
    document = metadata.smart_configuration("https://bridge.example")
    scopes = document.pop("scopes_supported")
    assert document == {
        "token_endpoint": TOKEN,
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
        ],
        "grant_types_supported": ["client_credentials"],
        "jwks_uri": "https://bridge.example/api/oauth2/jwks",
        "introspection_endpoint": "https://bridge.example/api/oauth2/introspect",
        "revocation_endpoint": "https://bridge.example/api/oauth2/revoke",
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384", "RS256", "ES256"],
        "capabilities": [
            "client-confidential-symmetric",
            "client-confidential-asymmetric",
            "permission-v1",
            "permission-v2",
        ],
    }
    assert scopes[:4] == ["system/*.read", "system/*.rs", "system/*.write", "system/*.cruds"]


def test_smart_configuration_claims_nothing_we_do_not_offer() -> None:
    document = metadata.smart_configuration("https://bridge.example")
    for untrue in (
        "issuer",  # SMART 2.x: only with sso-openid-connect
        "authorization_endpoint",
        "code_challenge_methods_supported",
        "response_types_supported",
    ):
        assert untrue not in document


def test_smart_configuration_response_is_json_with_urls_from_the_request_host() -> None:
    url = "https://bridge.example/api/fhir/r4/.well-known/smart-configuration"
    response = metadata.smart_configuration_response(request(url=url), "r4", Settings())
    assert response.status == 200
    assert response.headers.get("Content-Type") == "application/json; charset=utf-8"
    assert response.headers.get("Cache-Control") == "private, max-age=300"
    assert response.json()["token_endpoint"] == "https://bridge.example/api/oauth2/token"
    assert response.json()["jwks_uri"] == "https://bridge.example/api/oauth2/jwks"


def test_smart_configuration_for_an_unknown_face_is_404() -> None:
    response = metadata.smart_configuration_response(request(), "r5", Settings())
    assert response.status == 404
    assert response.json()["resourceType"] == "OperationOutcome"
    assert "r5" not in response.text


def test_post_to_smart_configuration_is_405_with_allow_get() -> None:
    response = metadata.smart_configuration_response(request(method="POST"), "r4", Settings())
    assert response.status == 405
    assert response.headers.get("Allow") == "GET"


# ---- OperationOutcome ------------------------------------------------------------------------


def test_operation_outcome_has_one_issue_with_severity_code_and_diagnostics() -> None:
    assert operation_outcome("error", "not-found", "No such thing.") == {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "not-found", "diagnostics": "No such thing."}],
    }


@pytest.mark.parametrize(
    ("face", "code", "sent"),
    [
        ("dstu2", "deleted", "not-found"),
        ("stu3", "multiple-matches", "processing"),
        ("r4", "deleted", "deleted"),
        (None, "multiple-matches", "multiple-matches"),
    ],
)
def test_operation_outcome_replaces_r4_only_issue_types_for_older_faces(
    face: str | None, code: str, sent: str
) -> None:
    assert operation_outcome("error", code, "x", face)["issue"][0]["code"] == sent


@pytest.mark.parametrize(("severity", "code"), [("bad", "not-found"), ("error", "oops")])
def test_operation_outcome_refuses_codes_outside_the_value_sets(severity: str, code: str) -> None:
    with pytest.raises(ValueError):
        operation_outcome(severity, code, "x")


@pytest.mark.parametrize(
    ("face", "mime"), [*JSON_MIME_TYPES.items(), (None, "application/fhir+json")]
)
def test_outcome_response_uses_the_faces_media_type_and_extra_headers(
    face: str | None, mime: str
) -> None:
    response = outcome_response(503, "transient", "Try later.", face, {"Retry-After": "5"})
    assert response.status == 503
    assert response.headers.get("Content-Type") == f"{mime}; charset=utf-8"
    assert response.headers.get("Retry-After") == "5"
    assert response.json()["issue"][0]["code"] == "transient"


# ---- through the Azure Functions blueprint ---------------------------------------------------


@pytest.fixture
def app_functions(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for name in ("EHRB_PUBLIC_BASE_URL", "EHRB_TRUST_FORWARDED_HEADERS"):
        monkeypatch.delenv(name, raising=False)
    set_services(None)
    yield registered_functions()
    set_services(None)


def http_request(method: str, url: str, face: str) -> func.HttpRequest:
    return func.HttpRequest(
        method=method, url=url, headers={}, params={}, route_params={"face": face}, body=b""
    )


@pytest.mark.parametrize(
    ("name", "route"),
    [
        ("metadata", "fhir/{face}/metadata"),
        ("smart_configuration", "fhir/{face}/.well-known/smart-configuration"),
    ],
)
def test_routes_are_anonymous_get_and_post(
    app_functions: dict[str, Any], name: str, route: str
) -> None:
    trigger = app_functions[name].get_trigger()
    assert trigger.route == route
    assert trigger.auth_level == func.AuthLevel.ANONYMOUS
    assert set(trigger.methods) == {func.HttpMethod.GET, func.HttpMethod.POST}


def test_metadata_function_answers_through_the_blueprint(app_functions: dict[str, Any]) -> None:
    handler = app_functions["metadata"].get_user_function()
    response = handler(
        http_request("GET", "http://localhost:7071/api/fhir/dstu2/metadata", "dstu2"),
        invocation_context("metadata", {}),
    )
    assert response.status_code == 200
    assert response.mimetype == "application/json+fhir"
    document = json.loads(response.get_body())
    assert document["resourceType"] == "Conformance"
    assert token_url_of(document) == "http://localhost:7071/api/oauth2/token"


def test_metadata_function_answers_post_with_405(app_functions: dict[str, Any]) -> None:
    handler = app_functions["metadata"].get_user_function()
    response = handler(
        http_request("POST", "http://localhost:7071/api/fhir/r4/metadata", "r4"),
        invocation_context("metadata", {}),
    )
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET"


def test_smart_configuration_function_answers_through_the_blueprint(
    app_functions: dict[str, Any],
) -> None:
    handler = app_functions["smart_configuration"].get_user_function()
    url = "http://localhost:7071/api/fhir/stu3/.well-known/smart-configuration"
    response = handler(http_request("GET", url, "stu3"), invocation_context("metadata", {}))
    assert response.status_code == 200
    assert json.loads(response.get_body())["grant_types_supported"] == ["client_credentials"]


def test_function_answers_500_outcome_when_settings_are_invalid(
    app_functions: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EHRB_PUBLIC_BASE_URL", "ftp://nope")
    handler = app_functions["metadata"].get_user_function()
    response = handler(
        http_request("GET", "http://localhost:7071/api/fhir/r4/metadata", "r4"),
        invocation_context("metadata", {}),
    )
    assert response.status_code == 500
    assert json.loads(response.get_body())["issue"][0]["code"] == "exception"
    assert b"ftp" not in response.get_body()


# ---- RFC 8414 authorization server metadata ----------------------------------------------------


def test_authorization_server_metadata_names_the_issuer_and_every_endpoint() -> None:
    document = metadata.authorization_server_metadata("urn:ehr-bridge:oauth2", "https://h.example")
    assert document["issuer"] == "urn:ehr-bridge:oauth2"
    assert document["token_endpoint"] == "https://h.example/api/oauth2/token"
    assert document["jwks_uri"] == "https://h.example/api/oauth2/jwks"
    assert document["introspection_endpoint"] == "https://h.example/api/oauth2/introspect"
    assert document["revocation_endpoint"] == "https://h.example/api/oauth2/revoke"
    assert document["grant_types_supported"] == ["client_credentials"]


def test_authorization_server_metadata_supports_no_response_type() -> None:
    # RFC 8414 §2 requires the member; there is no authorization endpoint.
    assert (
        metadata.authorization_server_metadata("i", "https://h")["response_types_supported"] == []
    )


def test_every_endpoint_authenticates_clients_with_the_registrys_methods() -> None:
    document = metadata.authorization_server_metadata("i", "https://h")
    methods = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
    assert document["token_endpoint_auth_methods_supported"] == methods
    assert document["introspection_endpoint_auth_methods_supported"] == methods
    assert document["revocation_endpoint_auth_methods_supported"] == methods
    # RFC 8414 §2: present because private_key_jwt takes a signed assertion; SMART's pair first.
    algorithms = ["RS384", "ES384", "RS256", "ES256"]
    assert document["token_endpoint_auth_signing_alg_values_supported"] == algorithms


def test_a_method_with_signing_algorithms_makes_both_documents_list_them(monkeypatch) -> None:
    from shared.auth import client_auth

    class SignedAssertion:
        name = "private_key_jwt"
        description = "a signed assertion"
        signing_algorithms = ("RS384", "ES384")

    registry = client_auth.ClientAuthentication(
        [client_auth.ClientSecretBasic(), SignedAssertion()]  # type: ignore[list-item]
    )
    monkeypatch.setattr(client_auth, "default_client_authentication", lambda: registry)
    server = metadata.authorization_server_metadata("i", "https://h")
    smart = metadata.smart_configuration("https://h")
    for document in (server, smart):
        assert document["token_endpoint_auth_methods_supported"] == [
            "client_secret_basic",
            "private_key_jwt",
        ]
        assert document["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert "client-confidential-asymmetric" in smart["capabilities"]


def test_authorization_server_response_is_json_and_cacheable() -> None:
    url = "https://bridge.example/api/.well-known/oauth-authorization-server"
    response = metadata.authorization_server_response(request(url=url), Settings())
    assert response.status == 200
    assert response.headers.get("Cache-Control") == "private, max-age=300"
    assert response.json()["token_endpoint"] == "https://bridge.example/api/oauth2/token"


def test_authorization_server_response_to_post_is_405() -> None:
    url = "https://bridge.example/api/.well-known/oauth-authorization-server"
    response = metadata.authorization_server_response(request("POST", url=url), Settings())
    assert response.status == 405
