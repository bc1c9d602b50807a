"""The sandbox editor in a real browser: headless Chromium against the app in the dev host.

Form controls are found through their <label> text, so a label that is not wired to its control
fails here. One browser serves the whole module, so it runs in seconds.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from shared.sandbox.access import ensure_sandbox_key
from shared.sandbox.ui import COOKIE_NAME
from shared.services import Services, get_services, set_services
from shared.tables import ensure_tables
from tests.conftest import ADMIN_KEY
from tests.support.browser import MISSING, browser_missing, field_by_label, headless_chromium
from tools.testkit.data import REPO
from tools.testkit.devhost import running_devhost

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(browser_missing() is not None, reason=MISSING)]


@dataclass
class Editor:
    """The running app, its sandbox key and a browser."""

    origin: str
    key: str
    services: Services
    driver: Any

    def open(self, path: str = "") -> None:
        self.driver.get(f"{self.origin}/api/sandbox/ui/{path}")


@pytest.fixture(scope="module")
def editor(azurite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Editor]:
    import function_app

    folder = Path(tmp_path_factory.mktemp("sandbox-ui"))
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "EHRB_SECRET_STORE": "local",
            "EHRB_LOCAL_SECRETS_PATH": str(folder / "secrets.json"),
            "EHRB_TABLES_CONNECTION_STRING": azurite,
            "EHRB_LOCAL_ADMIN_KEY": ADMIN_KEY,
            "EHRB_PUBLIC_BASE_URL": "",
            "EHRB_SANDBOX_ENABLED": "true",
        }.items():
            patch.setenv(name, value)
        set_services(None)
        services = get_services()
        ensure_tables(services.table_service)
        key = ensure_sandbox_key(services.secret_store)
        with (
            running_devhost(
                function_app.app, host_json_path=REPO / "host.json", master_key=ADMIN_KEY
            ) as origin,
            headless_chromium(folder / "profile") as driver,
        ):
            yield Editor(origin, key, services, driver)
        set_services(None)


@pytest.fixture
def signed_in(editor: Editor) -> Editor:
    """The browser holding a session (signing in through the form when it has none)."""
    editor.open()
    if editor.driver.get_cookie(COOKIE_NAME) is None:
        sign_in(editor)
    return editor


def sign_in(editor: Editor) -> None:
    field_by_label(editor.driver, "Sandbox key").send_keys(editor.key)
    submit(editor, "Sign in")


def button(editor: Editor, text: str) -> Any:
    from selenium.webdriver.common.by import By

    return editor.driver.find_element(By.XPATH, f"//button[normalize-space()='{text}']")


def click_and_wait(editor: Editor, element: Any) -> None:
    """Click a link or button and wait until the browser has replaced the page."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    page = editor.driver.find_element(By.TAG_NAME, "html")
    element.click()

    def replaced(driver: Any) -> bool:
        # Chromium may answer "node does not belong to the document" instead of "stale" while
        # it swaps the page: both mean the old page is gone.
        try:
            return bool(expected_conditions.staleness_of(page)(driver))
        except WebDriverException:
            return True

    WebDriverWait(editor.driver, 10).until(replaced)


def submit(editor: Editor, text: str) -> None:
    """Press a form's button and wait for the answer."""
    click_and_wait(editor, button(editor, text))


def heading(editor: Editor) -> str:
    from selenium.webdriver.common.by import By

    return str(editor.driver.find_element(By.TAG_NAME, "h1").text)


def role(editor: Editor, name: str) -> str:
    from selenium.webdriver.common.by import By

    return str(editor.driver.find_element(By.CSS_SELECTOR, f"[role={name}]").text)


def fill(editor: Editor, label: str, value: str) -> None:
    control = field_by_label(editor.driver, label)
    control.clear()
    control.send_keys(value)


def choose(editor: Editor, label: str, option: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(field_by_label(editor.driver, label)).select_by_visible_text(option)


def type_date(editor: Editor, label: str, value: date) -> None:
    """Type a date the way a person does in Chromium's en-US date field (MM, DD, YYYY)."""
    control = field_by_label(editor.driver, label)
    control.send_keys(value.strftime("%m%d%Y"))
    assert control.get_property("value") == value.isoformat()


def unique_family() -> str:
    return "Browser" + uuid.uuid4().hex[:8]


def test_signing_in_with_the_sandbox_key_opens_the_patient_list(editor: Editor) -> None:
    editor.open()
    editor.driver.delete_all_cookies()
    editor.open("patients")
    assert heading(editor) == "Sign in to the sandbox"

    sign_in(editor)

    assert heading(editor) == "Patients"
    assert editor.driver.get_cookie(COOKIE_NAME)["httpOnly"] is True


def test_the_inline_stylesheet_is_allowed_by_the_content_security_policy(
    signed_in: Editor,
) -> None:
    from selenium.webdriver.common.by import By

    main = signed_in.driver.find_element(By.TAG_NAME, "main")

    # 60rem in the stylesheet; a blocked stylesheet leaves the default "none".
    assert main.value_of_css_property("max-width") == "960px"


def test_a_patient_created_through_the_form_is_found_by_family_name(signed_in: Editor) -> None:
    from selenium.webdriver.common.by import By

    family = unique_family()
    click_and_wait(signed_in, signed_in.driver.find_element(By.LINK_TEXT, "New patient"))
    fill(signed_in, "Given names", "Ruth")
    fill(signed_in, "Family name", family)
    choose(signed_in, "Gender", "Female")
    type_date(signed_in, "Birth date", date(1970, 1, 31))
    fill(signed_in, "MRN (medical record number)", "MRN-" + family)
    submit(signed_in, "Save patient")
    assert role(signed_in, "status") == "Patient created."

    signed_in.open("patients")
    fill(signed_in, "Family name contains", family[-8:])
    submit(signed_in, "Search")

    rows = signed_in.driver.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert [r.find_element(By.TAG_NAME, "a").text for r in rows] == [f"{family}, Ruth"]
    assert "MRN-" + family in rows[0].text


def test_an_edit_through_the_form_is_saved_and_keeps_the_rest(signed_in: Editor) -> None:
    store = signed_in.services.sandbox_store
    telecom = [{"system": "phone", "value": "+44 20 7946 0000"}]
    patient_id = store.create(
        {
            "resourceType": "Patient",
            "name": [{"use": "official", "family": unique_family(), "given": ["Ada"]}],
            "gender": "female",
            "birthDate": "1980-05-06",
            "telecom": telecom,
        }
    )["id"]
    signed_in.open(f"patients/{patient_id}")

    fill(signed_in, "Given names", "Ada Grace")
    choose(signed_in, "Name use", "Usual")
    submit(signed_in, "Save patient")

    assert role(signed_in, "status") == "Changes saved."
    stored = store.read("Patient", patient_id)
    assert (stored["name"][0]["given"], stored["name"][0]["use"]) == (["Ada", "Grace"], "usual")
    assert stored["telecom"] == telecom


def test_a_future_birth_date_is_reported_on_the_field(signed_in: Editor) -> None:
    from selenium.webdriver.common.by import By

    family = unique_family()
    signed_in.open("patients/new")
    fill(signed_in, "Family name", family)
    choose(signed_in, "Gender", "Male")
    type_date(signed_in, "Birth date", date(date.today().year + 2, 1, 1))
    submit(signed_in, "Save patient")

    assert "Birth date" in role(signed_in, "alert")
    assert signed_in.driver.switch_to.active_element.get_attribute("role") == "alert"
    control = field_by_label(signed_in.driver, "Birth date")
    assert control.accessible_name == "Birth date"
    described = control.get_attribute("aria-describedby").split()
    messages = [signed_in.driver.find_element(By.ID, i).text for i in described]
    assert any("past" in message for message in messages)
    assert signed_in.services.sandbox_store.search("Patient", [("family", family)]).total == 0
