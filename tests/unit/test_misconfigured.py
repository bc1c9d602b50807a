"""Every trigger answers an invalid setting in its route's own language, never a bare 500.

The setting is read when the services are first built (``functions/_adapter.serve``); each
answer is fixed wording that names no setting, and is not cached.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import azure.functions as func
import pytest

from shared.services import set_services
from tests.support.app import registered_functions
from tools.invocation_context import invocation_context

BAD_VALUE = "ftp://nope"
STU3_R4 = "application/fhir+json"
DSTU2 = "application/json+fhir"
TENANT = "11111111-2222-4333-8444-555555555555"


def fhir_outcome(face_type: str) -> Callable[[func.HttpResponse], None]:
    def check(response: func.HttpResponse) -> None:
        assert response.status_code == 500
        assert response.mimetype == face_type
        document = json.loads(response.get_body())
        assert document["resourceType"] == "OperationOutcome"
        assert document["issue"][0]["code"] == "exception"
        assert document["issue"][0]["diagnostics"] == "The service is misconfigured."

    return check


def oauth_error(response: func.HttpResponse) -> None:
    assert response.status_code == 500
    assert json.loads(response.get_body()) == {
        "error": "server_error",
        "error_description": "The service is misconfigured.",
    }
    assert response.headers["Pragma"] == "no-cache"


def management_error(response: func.HttpResponse) -> None:
    assert response.status_code == 500
    body = json.loads(response.get_body())
    assert body["error"] == "misconfigured"
    assert "Nothing was changed" in body["message"]


def html_page(response: func.HttpResponse) -> None:
    assert response.status_code == 500
    assert response.mimetype == "text/html"
    assert response.headers.get("Cache-Control") == "no-store"
    assert "The service is misconfigured." in response.get_body().decode()


def plain_503(key: str, value: str) -> Callable[[func.HttpResponse], None]:
    def check(response: func.HttpResponse) -> None:
        assert response.status_code == 503
        assert json.loads(response.get_body()) == {key: value}

    return check


# trigger -> (method, path after /api/, route params, what its answer must be)
TRIGGERS: dict[str, tuple[str, str, dict[str, str], Callable[[func.HttpResponse], None]]] = {
    "metadata": ("GET", "fhir/stu3/metadata", {"face": "stu3"}, fhir_outcome(STU3_R4)),
    "smart_configuration": (
        "GET",
        "fhir/dstu2/.well-known/smart-configuration",
        {"face": "dstu2"},
        fhir_outcome(DSTU2),
    ),
    "fhir_proxy": (
        "GET",
        "fhir/dstu2/Patient/1",
        {"face": "dstu2", "path": "Patient/1"},
        fhir_outcome(DSTU2),
    ),
    "sandbox_fhir": ("GET", "sandbox/fhir/Patient", {"path": "Patient"}, fhir_outcome(STU3_R4)),
    "sandbox_ui": ("GET", "sandbox/ui/", {"path": ""}, fhir_outcome(STU3_R4)),
    "console": ("GET", "console/clients", {"path": "clients"}, html_page),
    "oauth_token": ("POST", "oauth2/token", {}, oauth_error),
    "oauth_jwks": ("GET", "oauth2/jwks", {}, plain_503("error", "misconfigured")),
    "oauth_assertion_jwks": (
        "GET",
        "oauth2/assertion-jwks",
        {},
        plain_503("error", "misconfigured"),
    ),
    "oauth_introspect": ("POST", "oauth2/introspect", {}, oauth_error),
    "oauth_revoke": ("POST", "oauth2/revoke", {}, oauth_error),
    "oauth_authorization_server": (
        "GET",
        ".well-known/oauth-authorization-server",
        {},
        plain_503("error", "misconfigured"),
    ),
    "health": ("GET", "health", {}, plain_503("status", "misconfigured")),
    "manage_clients": ("GET", "manage/clients", {}, management_error),
    "manage_client": ("GET", f"manage/clients/{TENANT}", {"client_id": TENANT}, management_error),
    "manage_client_secrets": (
        "POST",
        f"manage/clients/{TENANT}/secrets",
        {"client_id": TENANT},
        management_error,
    ),
    "manage_client_secret": (
        "DELETE",
        f"manage/clients/{TENANT}/secrets/abc",
        {"client_id": TENANT, "version": "abc"},
        management_error,
    ),
    "manage_client_keys": (
        "PUT",
        f"manage/clients/{TENANT}/keys",
        {"client_id": TENANT},
        management_error,
    ),
    "manage_tenants": ("GET", "manage/tenants", {}, management_error),
    "manage_tenant": ("PUT", f"manage/tenants/{TENANT}", {"tenant_id": TENANT}, management_error),
    "manage_tenant_check": (
        "POST",
        f"manage/tenants/{TENANT}/check",
        {"tenant_id": TENANT},
        management_error,
    ),
    "manage_tenant_audit": (
        "GET",
        f"manage/tenants/{TENANT}/audit",
        {"tenant_id": TENANT},
        management_error,
    ),
}


@pytest.fixture
def misconfigured(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The app's functions, with a setting the services refuse to start with."""
    monkeypatch.setenv("EHRB_PUBLIC_BASE_URL", BAD_VALUE)
    set_services(None)
    yield registered_functions()
    set_services(None)


def test_every_trigger_has_its_answer_to_an_invalid_setting() -> None:
    assert set(TRIGGERS) == set(registered_functions())


@pytest.mark.parametrize("name", sorted(TRIGGERS))
def test_an_invalid_setting_is_answered_in_the_routes_own_language(
    name: str, misconfigured: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    method, path, route_params, expected = TRIGGERS[name]
    request = func.HttpRequest(
        method=method,
        url=f"http://localhost:7071/api/{path}",
        headers={},
        params={},
        route_params=route_params,
        body=b"",
    )
    response = misconfigured[name].get_user_function()(request, invocation_context(name, {}))
    expected(response)
    assert response.headers["Cache-Control"] == "no-store"
    assert BAD_VALUE.encode() not in response.get_body()
    assert "invalid configuration" in caplog.text  # the log says why; the answer does not


def test_fixing_the_setting_heals_the_app(misconfigured: dict[str, Any], monkeypatch) -> None:
    request = func.HttpRequest(
        method="GET",
        url="http://localhost:7071/api/fhir/r4/metadata",
        headers={},
        params={},
        route_params={"face": "r4"},
        body=b"",
    )
    handler = misconfigured["metadata"].get_user_function()
    assert handler(request, invocation_context("metadata", {})).status_code == 500
    monkeypatch.delenv("EHRB_PUBLIC_BASE_URL")
    assert handler(request, invocation_context("metadata", {})).status_code == 200
