"""The client page's public keys in headless Chromium: paste a JWK Set, see it, get a token.

Each state of the page (keys saved, a private key refused) is checked with axe-core and saved
as a screenshot, as the rest of the console is (tests/e2e/test_console_browser.py).
"""

from __future__ import annotations

import json
import uuid

import pytest
import requests

from shared.tenants import TenantMapping
from tests.e2e.test_console_browser import (
    Console,
    button,
    check_page,
    fill,
    heading,
    sign_in,
    submit,
    text_of,
)
from tests.e2e.test_console_browser import console as console_stack  # noqa: F401  (fixture)
from tests.support.browser import MISSING, browser_missing, field_by_label
from tools.testkit.backend_client import BackendKey

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(browser_missing() is not None, reason=MISSING)]


def test_keys_pasted_on_the_client_page_are_listed_and_get_a_token(
    request: pytest.FixtureRequest,
) -> None:
    console: Console = request.getfixturevalue("console_stack")
    sign_in(console)
    client_id = console.services.clients.register("Nightly export").client.client_id
    key = BackendKey("RS384", kid="nightly-2026")
    console.open(f"clients/{client_id}")
    assert heading(console) == "Nightly export"
    fill(console, "Public keys (JWK Set)", json.dumps(key.jwks()))
    submit(console, button(console, "Save the public keys"))
    assert "private_key_jwt" in text_of(console, "//*[@role='status']")
    row = text_of(console, "//table[@id='public-keys']/tbody/tr")
    assert "nightly-2026" in row and "RSA" in row and "2048 bits" in row
    check_page(console, "client-keys")

    tenant_id = str(uuid.uuid4())
    console.services.tenants.put(
        TenantMapping(
            tenant_id, "https://fhir.example.org/r4", "r4", allowed_client_ids=(client_id,)
        )
    )
    console.services.lookups.forget()
    token_url = f"{console.origin}/api/oauth2/token"
    answer = requests.post(
        token_url,
        data={
            "grant_type": "client_credentials",
            "scope": tenant_id,
            **key.form(client_id, token_url),
        },
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


def test_a_pasted_private_key_is_refused_on_the_page_and_the_field_is_marked(
    request: pytest.FixtureRequest,
) -> None:
    console: Console = request.getfixturevalue("console_stack")
    sign_in(console)
    client_id = console.services.clients.register("Leaky service").client.client_id
    console.open(f"clients/{client_id}")
    fill(console, "Public keys (JWK Set)", json.dumps({"keys": [BackendKey().private_jwk()]}))
    submit(console, button(console, "Save the public keys"))
    assert "private members" in text_of(console, "//*[@role='alert']")
    field = field_by_label(console.driver, "Public keys (JWK Set)")
    assert field.get_attribute("aria-invalid") == "true"
    check_page(console, "client-keys-refused")
