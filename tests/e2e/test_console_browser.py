"""The partner console in a real browser: headless Chromium against the app in the dev host.

One story, as a partner, an operator and an attacker would live it: register a client and get
a token with the secret the page showed; add a second secret and use both; delete the first and
see it refused at once, its token too; onboard a tenant against the sandbox and against a
provider that fails, and read the check's explanation; open a patient in the Patients app view
on both faces; a look-only session cannot change anything (403); a form posted without its CSRF
token is refused. Every page is checked with axe-core and at 400 px wide, and saved as a
screenshot under ``.local/screenshots/console-*.png`` (axe's reports under ``.local/axe/``).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from shared.console.access import COOKIE_NAME
from shared.sandbox.access import ensure_sandbox_key
from shared.sandbox.generate import generate_patients, generate_shared
from shared.services import Services
from tests.conftest import ADMIN_KEY
from tests.support.app import app_services, served_app
from tests.support.browser import (
    MISSING,
    axe_report,
    browser_missing,
    failing_violations,
    field_by_label,
    headless_chromium,
    screenshot,
    viewport,
)

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(browser_missing() is not None, reason=MISSING)]

NARROW = 400
SEED = 16


@dataclass
class Console:
    """The running app, a browser, and what the story has made so far."""

    origin: str
    services: Services
    driver: Any
    sandbox_key: str
    family: str
    made: dict[str, Any] = field(default_factory=dict)

    def open(self, path: str = "") -> None:
        self.driver.get(f"{self.origin}/api/console/{path}")

    def token(self, client_id: str, secret: str, tenant_id: str) -> requests.Response:
        return requests.post(
            f"{self.origin}/api/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
                "scope": tenant_id,
            },
            timeout=10,
        )


@pytest.fixture(scope="module")
def console(azurite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    folder = Path(tmp_path_factory.mktemp("console"))
    with app_services(
        azurite,
        folder,
        EHRB_SANDBOX_ENABLED="true",
        EHRB_ALLOW_INSECURE_PROVIDER_URLS="true",
    ) as services:
        key = ensure_sandbox_key(services.secret_store)
        resources = list(generate_shared(SEED))
        for chart in generate_patients(3, SEED, start=9000):
            resources.extend(chart)
        services.sandbox_store.load(resources)
        family = next(r for r in resources if r["resourceType"] == "Patient")["name"][0]["family"]
        with served_app() as origin, headless_chromium(folder / "profile") as driver:
            yield Console(origin, services, driver, key, family)


# -- browser helpers ----------------------------------------------------------------------------


def by_xpath(console: Console, xpath: str) -> Any:
    from selenium.webdriver.common.by import By

    return console.driver.find_element(By.XPATH, xpath)


def button(console: Console, text: str) -> Any:
    return by_xpath(console, f"//button[normalize-space()='{text}']")


def submit(console: Console, element: Any) -> None:
    """Click a button and wait until the browser shows the answer's document."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page = console.driver.find_element(By.TAG_NAME, "html")
    element.click()

    def replaced(_: Any) -> bool:
        try:
            page.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as error:
            if "does not belong to the document" in str(error):
                return True
            raise
        return False

    WebDriverWait(console.driver, 30).until(replaced)


def fill(console: Console, label: str, value: str) -> None:
    control = field_by_label(console.driver, label)
    control.clear()
    control.send_keys(value)


def choose(console: Console, label: str, option: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(field_by_label(console.driver, label)).select_by_visible_text(option)


def heading(console: Console) -> str:
    return str(by_xpath(console, "//h1").text)


def text_of(console: Console, xpath: str) -> str:
    return str(by_xpath(console, xpath).text)


def sign_in(console: Console, *, look_only: bool = False) -> None:
    console.driver.delete_all_cookies()
    console.open("signin")
    fill(console, "Admin key", ADMIN_KEY)
    if look_only:
        field_by_label(console.driver, "Look only: this session cannot change anything").click()
    submit(console, button(console, "Sign in"))
    assert console.driver.get_cookie(COOKIE_NAME) is not None


def check_page(console: Console, name: str) -> None:
    """axe-core on the page as shown, and its screenshot."""
    screenshot(console.driver, f"console-{name}")
    assert failing_violations(axe_report(console.driver, f"console-{name}")) == []


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the story ----------------------------------------------------------------------------------


def test_1_a_client_registered_in_the_console_gets_a_token_with_the_secret_the_page_showed(
    console: Console,
) -> None:
    sign_in(console)
    check_page(console, "clients-empty")
    console.open("clients/new")
    check_page(console, "register")
    fill(console, "Client name", "Teams Patients app (Contoso)")
    fill(console, "Secret description", "Teams admin centre")
    choose(console, "Secret expires after", "90 days")
    submit(console, button(console, "Register"))
    assert heading(console) == "Client registered"
    check_page(console, "secret-shown")
    secret = text_of(console, "//code[@id='client-secret']")
    client_id = text_of(console, "//dt[.='Client ID']/following-sibling::dd[1]")
    version = text_of(console, "//dt[.='Secret version']/following-sibling::dd[1]")
    console.made.update(client_id=client_id, secret=secret, version=version)

    # A tenant mapped to the sandbox, through the onboarding form, so a token can be asked for.
    onboard(console, console.origin + "/api/sandbox/fhir", credential=console.sandbox_key)
    assert "The connection test passed. The tenant is enabled." in text_of(console, "//main")
    check_page(console, "check-passed")

    answer = console.token(client_id, secret, console.made["tenant_id"])
    assert answer.status_code == 200, answer.text
    console.made["first_token"] = answer.json()["access_token"]


def onboard(
    console: Console, base_url: str, *, credential: str = "", name: str = "Contoso Hospital"
) -> str:
    tenant_id = str(uuid.uuid4())
    console.open("tenants/new")
    fill(console, "Tenant ID (the customer's Microsoft Entra tenant GUID)", tenant_id)
    fill(console, "Display name", name)
    fill(console, "Provider FHIR base URL", base_url)
    choose(console, "Provider FHIR version", "R4")
    if credential:
        choose(
            console,
            "How EHR Bridge signs in to the provider",
            "bearer: a static bearer token kept in Key Vault",
        )
        fill(console, "Provider credential", credential)
    by_xpath(console, f"//input[@name='allow-{console.made['client_id']}']").click()
    field_by_label(
        console.driver, "Enabled: switched on once the connection test passes (or you confirm)"
    ).click()
    if "tenant_id" not in console.made:
        check_page(console, "onboard-form")
    submit(console, button(console, "Save and test the connection"))
    console.made.setdefault("tenant_id", tenant_id)
    return tenant_id


def test_2_a_second_secret_works_beside_the_first(console: Console) -> None:
    made = console.made
    console.open(f"clients/{made['client_id']}")
    fill(console, "Secret description", "rotation 2")
    choose(console, "Secret expires after", "180 days (recommended)")
    choose(console, "Keep the current secrets working for", "1 day")
    submit(console, button(console, "Create a secret"))
    made["second"] = text_of(console, "//code[@id='client-secret']")
    for secret in (made["secret"], made["second"]):
        assert console.token(made["client_id"], secret, made["tenant_id"]).status_code == 200
    console.open(f"clients/{made['client_id']}")
    check_page(console, "client-two-secrets")


def test_3_a_deleted_secret_is_refused_at_once_and_so_are_its_tokens(console: Console) -> None:
    made = console.made
    console.open(f"clients/{made['client_id']}")
    hint = made["secret"][:3]
    delete = by_xpath(console, f"//button[starts-with(@aria-label, 'Delete secret {hint}')]")
    submit(console, delete)
    assert "The secret version was deleted" in text_of(console, "//*[@role='status']")
    refused = console.token(made["client_id"], made["secret"], made["tenant_id"])
    assert (refused.status_code, refused.json()["error"]) == (401, "invalid_client")
    assert console.token(made["client_id"], made["second"], made["tenant_id"]).status_code == 200
    # Its token: the proxy re-checks the secret version on every call; the console cleared
    # this instance's caches, so here it is refused at once (elsewhere within the cache TTL).
    answer = requests.get(
        f"{console.origin}/api/fhir/stu3/Patient?_count=1",
        headers={"Authorization": f"Bearer {made['first_token']}"},
        timeout=10,
    )
    assert answer.status_code == 401
    assert "secret version" in answer.text


def test_4_a_failing_provider_is_explained_and_enabling_it_asks_for_confirmation(
    console: Console,
) -> None:
    tenant_id = onboard(console, f"http://127.0.0.1:{closed_port()}/fhir", name="Fabrikam Clinic")
    assert "The connection test failed" in text_of(console, "//*[@role='alert']")
    explanation = text_of(console, "//table[@id='steps']//tr[th='Provider metadata']/td[3]")
    assert "could not be reached" in explanation
    check_page(console, "check-failed")
    assert not console.services.tenants.get(tenant_id).enabled
    field_by_label(
        console.driver,
        "I understand the test failed: the Patients app's calls for this tenant may fail.",
    ).click()
    submit(console, button(console, "Enable the tenant anyway"))
    assert console.services.tenants.get(tenant_id).enabled
    console.open("tenants")
    check_page(console, "tenants")


@pytest.mark.parametrize("face", ["DSTU2", "STU3"])
def test_5_the_patients_app_view_opens_a_patient_on_both_faces(console: Console, face: str) -> None:
    made = console.made
    console.open("app")
    choose(console, "Tenant", "Contoso Hospital")
    choose(console, "FHIR version the app speaks", face)
    client = f"Teams Patients app (Contoso) ({made['client_id'][:8]})"
    choose(console, "Client (the app's registration)", client)
    fill(console, "Client secret", made["second"])
    fill(console, "Family name contains", console.family)
    submit(console, button(console, "Search"))
    assert by_xpath(console, "//table[@id='results']//tbody/tr")
    add = by_xpath(console, "//table[@id='results']//button[normalize-space()='Add to list']")
    submit(console, add)
    assert by_xpath(console, "//ul[@class='patient-list']/li")
    opened = by_xpath(console, "//ul[@class='patient-list']//button[normalize-space()='Open']")
    submit(console, opened)
    panels = [e.text for e in console.driver.find_elements("xpath", "//section[@class='panel']/h3")]
    assert panels == [
        "Latest vital signs",
        "Conditions",
        "Allergies",
        "Medications",
        "Latest encounter",
        "Coverage",
    ]
    calls = console.driver.find_elements("xpath", "//ol[@class='calls']/li")
    assert "metadata" in calls[0].text and " ms" in calls[0].text
    assert made["second"] not in console.driver.page_source
    check_page(console, f"app-view-{face.lower()}")


def test_6_a_look_only_session_is_refused_any_change_with_403(console: Console) -> None:
    sign_in(console, look_only=True)
    console.open(f"clients/{console.made['client_id']}")
    assert not console.driver.find_elements(
        "xpath", "//button[normalize-space()='Create a secret']"
    )
    check_page(console, "client-look-only")
    # An attacker with a look-only session posts the form anyway, with a valid token.
    console.driver.execute_script(
        "const form = document.createElement('form');"
        "form.method = 'post'; form.action = arguments[0];"
        "const token = document.querySelector('input[name=csrf_token]').cloneNode();"
        "form.appendChild(token); document.body.appendChild(form); form.submit();",
        f"/api/console/clients/{console.made['client_id']}/disable",
    )
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(console.driver, 10).until(lambda d: "Not allowed" in d.title)
    assert console.services.clients.get(console.made["client_id"]).enabled


def test_7_a_form_posted_without_its_csrf_token_is_refused(console: Console) -> None:
    sign_in(console)
    console.open(f"clients/{console.made['client_id']}")
    console.driver.execute_script(
        "document.querySelectorAll('input[name=csrf_token]').forEach(e => e.remove());"
    )
    submit(console, button(console, "Disable this client"))
    assert heading(console) == "Form expired"
    check_page(console, "form-expired")
    assert console.services.clients.get(console.made["client_id"]).enabled


@pytest.mark.parametrize("path", ["clients", "app", "keys", "tenants/new"])
def test_8_at_400_px_wide_no_page_scrolls_sideways(console: Console, path: str) -> None:
    with viewport(console.driver, NARROW):
        console.open(path)
        screenshot(console.driver, f"console-{path.replace('/', '-')}-{NARROW}px")
        scroll_width, client_width = console.driver.execute_script(
            "const d = document.documentElement; return [d.scrollWidth, d.clientWidth];"
        )
    assert client_width == NARROW
    assert scroll_width <= client_width


def test_9_the_signing_keys_page_rotates_publishing_before_signing(console: Console) -> None:
    console.open("keys")
    submit(console, button(console, "Add a new signing key"))
    roles = [e.text for e in console.driver.find_elements("xpath", "//table[@id='keys']//td[1]")]
    assert roles[0].startswith("Pending") and roles[1].startswith("Current")
    check_page(console, "keys")
