"""The partner console, in-process over Azurite, the local secret store and fake providers.

Each test drives the console as a browser does (``tests/support/console.py``: cookies kept,
every form sent with its page's CSRF token) and checks what a person sees, through the page's
structure (``tests/support/html.py``), and what happened behind it (tokens, tables, audit).
"""

from __future__ import annotations

import json
import logging
import socket
import uuid
from typing import Any

import pytest

from shared.console.access import COOKIE_NAME
from shared.operators import OPERATOR_ROLE, PRINCIPAL_HEADER, READER_ROLE
from shared.services import Services
from shared.tenants import TenantMapping
from tests.conftest import ADMIN_KEY, request_token
from tests.support.console import ConsoleBrowser, entra_hosting, principal_header
from tests.support.html import dom, field_for


@pytest.fixture
def console_services(make_services: Any) -> Services:
    """Services whose tenants may point at loopback providers (fake ones), short timeouts."""
    return make_services(
        allow_insecure_provider_urls=True,
        upstream_connect_timeout_seconds=1,
        upstream_read_timeout_seconds=1,
    )


@pytest.fixture
def browser(console_services: Services) -> ConsoleBrowser:
    """A browser signed in with the admin key (may change things)."""
    browser = ConsoleBrowser(console_services.console.handle)
    assert browser.sign_in(ADMIN_KEY).status == 303
    return browser


def register(browser: ConsoleBrowser, name: str = "Teams Patients app") -> dict[str, str]:
    """Register a client through the form; what the one page that shows the secret shows."""
    browser.get("clients/new")
    page = browser.post(
        "clients/new", {"display_name": name, "description": "prod", "expiry": "90"}
    )
    assert page.status == 201, page.text
    document = dom(page)
    facts = [n.text() for n in document.all("dd")]
    return {
        "client_id": facts[1],
        "secret": document.one("code", id="client-secret").text(),
        "version": facts[2],
    }


def token_status(
    services: Services, client_id: str, secret: str, tenant_id: str
) -> tuple[int, Any]:
    response = request_token(
        services,
        {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
            "scope": tenant_id,
        },
    )
    return response.status, response.json()


def mapped_tenant(services: Services, client_id: str) -> str:
    tenant_id = str(uuid.uuid4())
    services.tenants.put(
        TenantMapping(
            tenant_id, "https://fhir.example.org/r4", "r4", allowed_client_ids=(client_id,)
        )
    )
    return tenant_id


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- sign-in --------------------------------------------------------------------------------


def test_a_page_asked_for_without_signing_in_is_the_sign_in_form(console_services):
    page = ConsoleBrowser(console_services.console.handle).get("clients")
    assert page.status == 401
    assert field_for(dom(page), "Admin key").attrs["type"] == "password"


def test_a_wrong_admin_key_is_refused_and_starts_no_session(console_services):
    browser = ConsoleBrowser(console_services.console.handle)
    page = browser.sign_in("not-the-key")
    assert page.status == 401
    assert COOKIE_NAME not in browser.cookies
    assert "The admin key is not correct" in dom(page).one(role="alert").text()


def test_signing_in_with_the_admin_key_opens_the_clients_page(browser):
    page = browser.get("clients")
    assert page.status == 200
    assert dom(page).one("h1").text() == "Clients"


def test_the_session_cookie_is_httponly_samesite_strict_and_scoped_to_the_console(console_services):
    browser = ConsoleBrowser(console_services.console.handle)
    response = browser.sign_in(ADMIN_KEY)
    cookie = response.headers.get("Set-Cookie") or ""
    assert cookie.startswith(f"{COOKIE_NAME}=")
    for part in ("HttpOnly", "SameSite=Strict", "Path=/api/console", "Secure", "Max-Age=28800"):
        assert part in cookie


def test_signing_out_ends_the_session_on_the_server(browser):
    kept = dict(browser.cookies)
    browser.get("clients")
    assert browser.post("signout", {}).status == 303
    replay = ConsoleBrowser(browser._handle)
    replay.cookies = kept
    assert replay.get("clients").status == 401


def test_every_page_is_no_store_with_a_strict_csp(browser):
    page = browser.get("clients")
    assert page.headers.get("Cache-Control") == "no-store"
    csp = page.headers.get("Content-Security-Policy") or ""
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp


# -- clients and secrets --------------------------------------------------------------------


def test_registering_shows_the_secret_once_with_a_copy_button_and_a_warning(browser):
    registered = register(browser)
    page = dom(browser.page)  # type: ignore[arg-type]
    assert len(registered["secret"]) == 43
    assert page.one("button", **{"data-copy": "client-secret"}) is not None
    assert "only time the secret is shown" in page.one(role="alert").text()
    client_page = browser.get(f"clients/{registered['client_id']}")
    assert registered["secret"] not in client_page.text


def test_the_secret_the_page_showed_gets_a_token(browser, console_services):
    registered = register(browser)
    tenant_id = mapped_tenant(console_services, registered["client_id"])
    status, body = token_status(
        console_services, registered["client_id"], registered["secret"], tenant_id
    )
    assert status == 200 and body["token_type"] == "Bearer"


def test_the_secrets_page_lists_description_hint_dates_state_and_last_use(
    browser, console_services
):
    registered = register(browser)
    tenant_id = mapped_tenant(console_services, registered["client_id"])
    token_status(console_services, registered["client_id"], registered["secret"], tenant_id)
    console_services.secret_usage._background().submit(lambda: None).result(5)  # writes done
    page = dom(browser.get(f"clients/{registered['client_id']}"))
    row = page.one("table", id="secrets").all("tr")[1]
    cells = [c.text() for c in row.all() if c.tag in ("th", "td")]
    assert cells[0].startswith("prod")
    assert cells[1] == registered["secret"][:3] + "…"
    assert cells[2].endswith(" UTC") and cells[3].endswith(" UTC")
    assert cells[4] == "Active"
    assert cells[5].endswith(" UTC")  # last used: recorded by the token endpoint


def test_a_second_secret_with_grace_works_beside_the_first(browser, console_services):
    registered = register(browser)
    tenant_id = mapped_tenant(console_services, registered["client_id"])
    browser.get(f"clients/{registered['client_id']}")
    page = browser.post(
        f"clients/{registered['client_id']}/secrets",
        {"description": "new", "expiry": "180", "grace": "86400"},
    )
    assert page.status == 201
    second = dom(page).one("code", id="client-secret").text()
    for secret in (registered["secret"], second):
        assert token_status(console_services, registered["client_id"], secret, tenant_id)[0] == 200


def test_an_expiry_outside_the_choices_is_refused_on_the_form(browser):
    browser.get("clients/new")
    page = browser.post("clients/new", {"display_name": "App", "description": "", "expiry": "3650"})
    assert page.status == 422
    assert dom(page).one("select", id="expiry").attrs.get("aria-invalid") == "true"


def test_deleting_a_version_refuses_it_at_once_and_lists_it_no_more(browser, console_services):
    registered = register(browser)
    tenant_id = mapped_tenant(console_services, registered["client_id"])
    client_id, version = registered["client_id"], registered["version"]
    browser.get(f"clients/{client_id}")
    browser.post(
        f"clients/{client_id}/secrets", {"description": "", "expiry": "90", "grace": "86400"}
    )
    browser.get(f"clients/{client_id}")
    response = browser.post(f"clients/{client_id}/secrets/{version}/delete", {})
    assert response.status == 303
    status, body = token_status(console_services, client_id, registered["secret"], tenant_id)
    assert (status, body["error"]) == (401, "invalid_client")
    assert version[:8] not in browser.follow(response).text


def test_invalidating_a_version_refuses_it_at_once(browser, console_services):
    registered = register(browser)
    tenant_id = mapped_tenant(console_services, registered["client_id"])
    browser.get(f"clients/{registered['client_id']}")
    browser.post(
        f"clients/{registered['client_id']}/secrets/{registered['version']}/invalidate", {}
    )
    status, _ = token_status(
        console_services, registered["client_id"], registered["secret"], tenant_id
    )
    assert status == 401


def test_disabling_a_client_refuses_its_secret(browser, console_services):
    registered = register(browser)
    tenant_id = mapped_tenant(console_services, registered["client_id"])
    browser.get(f"clients/{registered['client_id']}")
    browser.post(f"clients/{registered['client_id']}/disable", {})
    assert (
        token_status(console_services, registered["client_id"], registered["secret"], tenant_id)[0]
        == 401
    )


def test_console_changes_are_audited_naming_the_operator(browser, caplog):
    caplog.set_level(logging.INFO, logger="ehrbridge.audit")
    register(browser)
    events = [json.loads(r.message) for r in caplog.records if r.name == "ehrbridge.audit"]
    registered = next(e for e in events if e["event"] == "client.registered")
    assert registered["actor"] == {"kind": "console", "name": "local admin key"}


def test_no_secret_reaches_the_logs_or_the_clients_table(
    browser, console_services, caplog, table_service
):
    caplog.set_level(logging.DEBUG)
    registered = register(browser)
    assert registered["secret"] not in caplog.text
    rows = table_service.get_table_client("clients").list_entities()
    assert registered["secret"] not in json.dumps([dict(r) for r in rows], default=str)


# -- who may change what ----------------------------------------------------------------------


def test_a_look_only_session_is_refused_every_change_with_403(console_services):
    operator = ConsoleBrowser(console_services.console.handle)
    operator.sign_in(ADMIN_KEY)
    registered = register(operator)
    reader = ConsoleBrowser(console_services.console.handle)
    reader.sign_in(ADMIN_KEY, look_only=True)
    page = reader.get(f"clients/{registered['client_id']}")
    assert page.status == 200
    assert not dom(page).all("button", **{"class": "button danger"})  # no delete, no disable
    for path in (
        "clients/new",
        f"clients/{registered['client_id']}/disable",
        f"clients/{registered['client_id']}/secrets/{registered['version']}/delete",
        "keys/rotate",
        "tenants/new",
    ):
        assert reader.post(path, {"display_name": "x", "expiry": "90"}).status == 403, path
    assert console_services.clients.get(registered["client_id"]).enabled


def test_a_form_posted_without_its_csrf_token_is_refused_and_changes_nothing(
    browser, console_services
):
    registered = register(browser)
    response = browser.post(f"clients/{registered['client_id']}/disable", {}, token=False)
    assert response.status == 403
    assert dom(response).one("h1").text() == "Form expired"
    assert console_services.clients.get(registered["client_id"]).enabled


def test_a_form_posted_from_another_site_is_refused(browser, console_services):
    registered = register(browser)
    response = browser.post(
        f"clients/{registered['client_id']}/disable", {}, headers={"Origin": "https://evil.example"}
    )
    assert response.status == 403
    assert console_services.clients.get(registered["client_id"]).enabled


# -- Entra ID through App Service Authentication (a stand-in for the platform) ------------------


@pytest.fixture
def entra_services(make_services: Any) -> Services:
    """The app as in Azure with App Service Authentication on and EHRB_ENTRA_AUTH set."""
    return make_services(entra_auth=True, hosting=entra_hosting(), local_admin_key="")


def test_an_entra_operator_registers_a_client_named_in_the_audit(entra_services, caplog):
    caplog.set_level(logging.INFO, logger="ehrbridge.audit")
    browser = ConsoleBrowser(
        entra_services.console.handle, {PRINCIPAL_HEADER: principal_header(OPERATOR_ROLE)}
    )
    register(browser)
    events = [json.loads(r.message) for r in caplog.records if r.name == "ehrbridge.audit"]
    actor = next(e for e in events if e["event"] == "client.registered")["actor"]
    assert actor["kind"] == "entra" and actor["name"].startswith("ada@contoso.example (")


def test_an_entra_reader_may_look_but_every_change_is_403(entra_services):
    browser = ConsoleBrowser(
        entra_services.console.handle, {PRINCIPAL_HEADER: principal_header(READER_ROLE)}
    )
    assert browser.get("clients").status == 200
    assert browser.post("clients/new", {"display_name": "x", "expiry": "90"}).status == 403
    assert entra_services.clients.list_all() == []


def test_an_entra_user_without_a_role_is_403(entra_services):
    browser = ConsoleBrowser(entra_services.console.handle, {PRINCIPAL_HEADER: principal_header()})
    assert browser.get("clients").status == 403


def test_without_a_principal_entra_mode_sends_the_browser_to_the_platforms_sign_in(entra_services):
    response = ConsoleBrowser(entra_services.console.handle).get("clients")
    assert response.status == 303
    assert (response.headers.get("Location") or "").startswith(
        "/.auth/login/aad?post_login_redirect_uri="
    )


def test_the_principal_header_is_ignored_where_app_service_authentication_does_not_run(
    console_services,
):
    forged = ConsoleBrowser(
        console_services.console.handle, {PRINCIPAL_HEADER: principal_header(OPERATOR_ROLE)}
    )
    assert forged.get("clients").status == 401  # the local sign-in form, not the console


def test_the_principal_header_is_ignored_when_the_platform_does_not_say_auth_is_on(make_services):
    from shared.hosting import detect

    hosting = detect(
        {"WEBSITE_SKU": "FlexConsumption", "CONTAINER_NAME": "c", "LEGION_SERVICE_HOST": "1"}
    )
    services = make_services(entra_auth=True, hosting=hosting, local_admin_key="")
    forged = ConsoleBrowser(
        services.console.handle, {PRINCIPAL_HEADER: principal_header(OPERATOR_ROLE)}
    )
    assert forged.get("clients").status == 401


# -- tenants --------------------------------------------------------------------------------


def onboard(browser: ConsoleBrowser, client_id: str, base_url: str, **fields: str) -> Any:
    browser.get("tenants/new")
    form = {
        "tenant_id": fields.pop("tenant_id", str(uuid.uuid4())),
        "display_name": "Contoso Hospital",
        "provider_base_url": base_url,
        "provider_fhir_version": "r4",
        "provider_auth_kind": "none",
        f"allow-{client_id}": "on",
        "enabled": "on",
        **fields,
    }
    return form["tenant_id"], browser.post("tenants/new", form)


def test_onboarding_a_working_provider_enables_the_tenant_and_shows_each_step(
    browser, console_services, fhir_server
):
    registered = register(browser)
    provider = fhir_server(version="r4")
    tenant_id, page = onboard(browser, registered["client_id"], provider.base_url)
    assert page.status == 200
    steps = dom(page).one("table", id="steps").all("tr")[1:]
    assert [s.all("th")[0].text() for s in steps] == [
        "Mapping",
        "Provider credential",
        "Provider metadata",
        "One patient search",
    ]
    assert all(s.all("td")[1].text().endswith(" ms") for s in steps)
    assert console_services.tenants.get(tenant_id).enabled


def test_onboarding_a_failing_provider_explains_the_failure_and_asks_before_enabling(
    browser, console_services
):
    registered = register(browser)
    tenant_id, page = onboard(
        browser, registered["client_id"], f"http://127.0.0.1:{closed_port()}/fhir"
    )
    document = dom(page)
    assert "The connection test failed" in document.one(role="alert").text()
    assert "could not be reached" in page.text
    assert "127.0.0.1" not in page.text
    assert not console_services.tenants.get(tenant_id).enabled
    assert document.one("input", id="confirm").attrs.get("required") is not None
    refused = browser.post(f"tenants/{tenant_id}/enable", {})
    assert refused.status == 400 and not console_services.tenants.get(tenant_id).enabled
    assert browser.post(f"tenants/{tenant_id}/enable", {"confirm": "yes"}).status == 303
    assert console_services.tenants.get(tenant_id).enabled


def test_the_provider_credential_is_stored_write_only(browser, console_services, fhir_server):
    registered = register(browser)
    provider = fhir_server(version="r4", require_bearer="provider-token-123")
    tenant_id, page = onboard(
        browser,
        registered["client_id"],
        provider.base_url,
        provider_auth_kind="bearer",
        credential="provider-token-123",
    )
    assert console_services.tenants.get(tenant_id).enabled  # the check used the credential
    assert "provider-token-123" not in page.text
    assert "provider-token-123" not in browser.get(f"tenants/{tenant_id}").text


def test_a_mapping_the_rules_refuse_is_shown_again_naming_the_field(browser):
    registered = register(browser)
    _, page = onboard(browser, registered["client_id"], "http://169.254.169.254/fhir")
    assert page.status == 422
    assert dom(page).one("input", id="provider_base_url").attrs.get("aria-invalid") == "true"


def test_the_tenant_list_shows_the_last_check(browser, fhir_server):
    registered = register(browser)
    onboard(browser, registered["client_id"], f"http://127.0.0.1:{closed_port()}/fhir")
    row = dom(browser.get("tenants")).one("table", id="tenants").all("tr")[1]
    assert row.all("td")[2].text() == "Disabled"
    assert row.all("td")[3].text().startswith("Failed,")


# -- signing keys ---------------------------------------------------------------------------


def test_rotating_the_signing_key_publishes_before_it_signs(browser, console_services):
    before = console_services.signing_keys.current().kid
    browser.get("keys")
    assert browser.post("keys/rotate", {}).status == 303
    roles = [
        r.all("td")[0].text()
        for r in dom(browser.get("keys")).one("table", id="keys").all("tr")[1:]
    ]
    assert roles[0].startswith("Pending") and roles[1].startswith("Current")
    console_services.signing_keys.refresh()
    assert console_services.signing_keys.current().kid == before
    assert len(console_services.signing_keys.jwks()["keys"]) == 2


# -- scopes (docs/security.md table N) ----------------------------------------------------------


def test_the_client_page_shows_the_registered_scopes(browser):
    registered = register(browser)
    page = dom(browser.get(f"clients/{registered['client_id']}"))
    assert page.one("input", id="allowed_scopes").attrs.get("value") == "system/*.rs"
    assert page.one("input", id="default_scopes").attrs.get("value") == "system/*.rs"


def test_scopes_saved_on_the_client_page_are_what_a_tenant_only_token_gets(
    browser, console_services
):
    import jwt

    registered = register(browser)
    client_id = registered["client_id"]
    tenant_id = mapped_tenant(console_services, client_id)
    browser.get(f"clients/{client_id}")
    response = browser.post(
        f"clients/{client_id}/scopes",
        {"allowed_scopes": "system/*.read", "default_scopes": "system/Patient.read"},
    )
    assert response.status == 303
    status, body = token_status(console_services, client_id, registered["secret"], tenant_id)
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert (status, claims["scope"]) == (200, f"{tenant_id} system/Patient.rs")


def test_a_default_outside_the_allowed_scopes_is_refused_on_the_form(browser, console_services):
    registered = register(browser)
    client_id = registered["client_id"]
    browser.get(f"clients/{client_id}")
    page = browser.post(
        f"clients/{client_id}/scopes",
        {"allowed_scopes": "system/Patient.rs", "default_scopes": "system/*.rs"},
    )
    assert page.status == 422
    assert dom(page).one("input", id="default_scopes").attrs.get("aria-invalid") == "true"
    assert console_services.clients.get(client_id).default_scopes == ("system/*.rs",)


def test_a_patient_scope_is_refused_on_the_form(browser):
    registered = register(browser)
    browser.get(f"clients/{registered['client_id']}")
    page = browser.post(
        f"clients/{registered['client_id']}/scopes",
        {"allowed_scopes": "patient/*.read", "default_scopes": "system/*.rs"},
    )
    assert page.status == 422
    assert dom(page).one("input", id="allowed_scopes").attrs.get("aria-invalid") == "true"
