"""The console's client page: register, show and remove public keys for private_key_jwt."""

from __future__ import annotations

import json
import uuid

import pytest

from shared.services import Services
from shared.tenants import TenantMapping
from tests.conftest import ADMIN_KEY, request_token
from tests.integration.test_console import register
from tests.support.console import ConsoleBrowser
from tests.support.html import dom, field_for
from tools.testkit.backend_client import BackendKey

AUDIENCE = "https://bridge.test/api/oauth2/token"


@pytest.fixture
def browser(services: Services) -> ConsoleBrowser:
    browser = ConsoleBrowser(services.console.handle)
    assert browser.sign_in(ADMIN_KEY).status == 303
    return browser


@pytest.fixture(scope="module")
def key() -> BackendKey:
    return BackendKey("ES384", kid="console-key")


def save_keys(browser: ConsoleBrowser, client_id: str, **fields: str):
    form = {"jwks_uri": "", "jwks": "", **fields}
    browser.get(f"clients/{client_id}")  # the page with the form, and its CSRF token
    return browser.post(f"clients/{client_id}/keys", form)


def test_a_pasted_jwks_is_shown_by_kid_type_and_curve(browser, key):
    client_id = register(browser)["client_id"]
    saved = save_keys(browser, client_id, jwks=json.dumps(key.jwks()))
    assert saved.status == 303
    page = dom(browser.follow(saved))
    rows = [row.text() for row in page.one("table", id="public-keys").all("tr")]
    assert any("console-key" in row and "EC" in row and "P-384" in row for row in rows)


def test_the_page_never_shows_key_material(browser, key):
    client_id = register(browser)["client_id"]
    save_keys(browser, client_id, jwks=json.dumps(key.jwks()))
    page = browser.get(f"clients/{client_id}")
    assert key.public_jwk()["x"] not in page.text


def test_a_pasted_private_key_is_refused_with_the_reason_and_not_echoed_back(browser):
    private = BackendKey("RS384")
    client_id = register(browser)["client_id"]
    page = save_keys(browser, client_id, jwks=json.dumps({"keys": [private.private_jwk()]}))
    assert page.status == 422
    document = dom(page)
    assert "private members" in document.one(role="alert").text()
    assert field_for(document, "Public keys (JWK Set)").attrs.get("aria-invalid") == "true"
    assert private.private_jwk()["d"] not in page.text


def test_a_jwks_url_is_registered_and_shown(browser):
    client_id = register(browser)["client_id"]
    url = "https://keys.backend.example/jwks.json"
    assert save_keys(browser, client_id, jwks_uri=url).status == 303
    assert url in browser.get(f"clients/{client_id}").text


def test_a_refused_public_key_set_is_shown_back_for_correction(browser):
    short = BackendKey("RS256", kid="short", rsa_bits=1024)
    client_id = register(browser)["client_id"]
    page = save_keys(browser, client_id, jwks=json.dumps({"keys": [short.public_jwk()]}))
    assert page.status == 422
    assert field_for(dom(page), "Public keys (JWK Set)").text() == json.dumps(
        {"keys": [short.public_jwk()]}
    )


def test_a_plain_http_jwks_url_is_refused(browser):
    client_id = register(browser)["client_id"]
    page = save_keys(browser, client_id, jwks_uri="http://keys.backend.example/jwks.json")
    assert page.status == 422
    assert "https" in dom(page).one(role="alert").text()


def test_both_a_url_and_pasted_keys_are_refused(browser, key):
    client_id = register(browser)["client_id"]
    page = save_keys(
        browser, client_id, jwks_uri="https://k.example/j", jwks=json.dumps(key.jwks())
    )
    assert page.status == 422


def test_keys_saved_in_the_console_get_a_token_and_removing_them_refuses_the_next(
    browser, services, key
):
    client_id = register(browser)["client_id"]
    save_keys(browser, client_id, jwks=json.dumps(key.jwks()))
    tenant_id = str(uuid.uuid4())
    services.tenants.put(
        TenantMapping(
            tenant_id, "https://fhir.example.org/r4", "r4", allowed_client_ids=(client_id,)
        )
    )
    services.lookups.forget()
    grant = {"grant_type": "client_credentials", "scope": tenant_id}
    assert request_token(services, {**grant, **key.form(client_id, AUDIENCE)}).status == 200
    browser.get(f"clients/{client_id}")
    removed = browser.post(f"clients/{client_id}/keys/remove", {})
    assert removed.status == 303
    assert request_token(services, {**grant, **key.form(client_id, AUDIENCE)}).status == 401


def test_a_reader_cannot_save_keys(services, key):
    reader = ConsoleBrowser(services.console.handle)
    assert reader.sign_in(ADMIN_KEY, look_only=True).status == 303
    client_id = services.clients.register("Backend").client.client_id
    page = save_keys(reader, client_id, jwks=json.dumps(key.jwks()))
    assert page.status == 403
