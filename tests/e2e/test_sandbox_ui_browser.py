"""The sandbox editor in a real browser: headless Chromium against the app in the dev host.

Form controls are found through their <label> text, so a label that is not wired to its control
fails here. One browser serves the whole module, so it runs in seconds. Every page is checked
with axe-core, at 400 px wide and by keyboard alone, and saved as a screenshot under
``.local/screenshots/`` (axe's reports under ``.local/axe/``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from shared.sandbox.access import ensure_sandbox_key
from shared.sandbox.ui import COOKIE_NAME
from shared.services import Services
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
    folder = Path(tmp_path_factory.mktemp("sandbox-ui"))
    with app_services(azurite, folder, EHRB_SANDBOX_ENABLED="true") as services:
        key = ensure_sandbox_key(services.secret_store)
        with served_app() as origin, headless_chromium(folder / "profile") as driver:
            yield Editor(origin, key, services, driver)


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
    with page_replaced(editor):
        element.click()


@contextmanager
def page_replaced(editor: Editor) -> Iterator[None]:
    """Wait, after the block, until the browser shows another document than before it."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page = editor.driver.find_element(By.TAG_NAME, "html")
    yield

    def replaced(_: Any) -> bool:
        try:
            page.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as error:
            # Chromium 156 may say this instead of "stale" while the new document loads.
            if "does not belong to the document" in str(error):
                return True
            raise
        return False

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
    """Type a date as the field's hint asks: YYYY-MM-DD, whatever the browser's locale."""
    control = field_by_label(editor.driver, label)
    control.clear()
    control.send_keys(value.isoformat())
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


# -- every page: axe-core, 400 px, keyboard, screenshots ----------------------------------------


def ensure_signed_in(editor: Editor) -> None:
    editor.open()
    if editor.driver.get_cookie(COOKIE_NAME) is None:
        sign_in(editor)


def new_patient(editor: Editor, family: str, **fields: Any) -> str:
    resource = {
        "resourceType": "Patient",
        "name": [{"use": "official", "family": family, "given": ["Ada"]}],
        "gender": "female",
        "birthDate": "1969-06-03",
        "identifier": [
            {
                "type": {"coding": [{"code": "MR"}]},
                "system": "urn:test:mrn",
                "value": "MRN-" + family,
            }
        ],
        "generalPractitioner": [{"display": "Dr Anna Smith"}],
        **fields,
    }
    return str(editor.services.sandbox_store.create(resource)["id"])


def show_signin(editor: Editor) -> None:
    editor.open()
    editor.driver.delete_all_cookies()
    editor.open("signin")


def show_search_results(editor: Editor) -> None:
    ensure_signed_in(editor)
    family = unique_family()
    for suffix in ("a", "b"):
        new_patient(editor, family + suffix)
    editor.open(f"patients?family={family}")


def show_patient(editor: Editor) -> None:
    ensure_signed_in(editor)
    editor.open(f"patients/{new_patient(editor, unique_family())}?status=saved")


def show_new_patient(editor: Editor) -> None:
    ensure_signed_in(editor)
    editor.open("patients/new")


def show_edit_errors(editor: Editor) -> None:
    show_new_patient(editor)
    fill(editor, "Birth date", "06/03/1969")
    submit(editor, "Save patient")


def show_form_expired(editor: Editor) -> None:
    show_new_patient(editor)
    fill(editor, "Family name", unique_family())
    remove_csrf_token(editor)
    submit(editor, "Save patient")


def remove_csrf_token(editor: Editor) -> None:
    editor.driver.execute_script(
        "document.querySelectorAll('main form input[name=csrf_token]').forEach(e => e.remove());"
    )


PAGES = {
    "signin": show_signin,
    "search-results": show_search_results,
    "patient": show_patient,
    "new-patient": show_new_patient,
    "edit-errors": show_edit_errors,
    "form-expired": show_form_expired,
}


@pytest.mark.parametrize("name", list(PAGES))
def test_every_page_has_no_serious_or_critical_axe_violations(editor: Editor, name: str) -> None:
    PAGES[name](editor)
    screenshot(editor.driver, name)

    results = axe_report(editor.driver, name)

    assert failing_violations(results) == []


NARROW = 400


@pytest.mark.parametrize("name", ["signin", "search-results", "patient", "edit-errors"])
def test_at_400_px_wide_the_page_does_not_scroll_sideways_and_every_control_fits(
    editor: Editor, name: str
) -> None:
    with viewport(editor.driver, NARROW):
        PAGES[name](editor)
        screenshot(editor.driver, f"{name}-{NARROW}px")

        scroll_width, client_width = editor.driver.execute_script(
            "const d = document.documentElement; return [d.scrollWidth, d.clientWidth];"
        )
        outside = editor.driver.execute_script(
            "const w = document.documentElement.clientWidth;"
            "return [...document.querySelectorAll('input:not([type=hidden]), select, button,"
            " header a')].filter(e => e.getClientRects().length)"
            ".map(e => [e.id || e.textContent.trim(), e.getBoundingClientRect()])"
            ".filter(([, r]) => r.left < 0 || r.right > w).map(([n]) => n);"
        )

    assert client_width == NARROW
    assert scroll_width <= client_width
    assert outside == []


def test_a_patient_can_be_created_through_the_form_at_400_px_wide(editor: Editor) -> None:
    family = unique_family()
    with viewport(editor.driver, NARROW):
        show_new_patient(editor)
        fill(editor, "Family name", family)
        choose(editor, "Gender", "Other")
        type_date(editor, "Birth date", date(2001, 2, 3))
        submit(editor, "Save patient")

        assert role(editor, "status") == "Patient created."
    stored = editor.services.sandbox_store.search("Patient", [("family", family)]).resources
    assert [p["birthDate"] for p in stored] == ["2001-02-03"]


# -- keyboard only ------------------------------------------------------------------------------

FOCUSABLE = (
    "a[href], input:not([type=hidden]), select, button:not([hidden]),"
    " [tabindex]:not([tabindex='-1'])"
)


def focusable(editor: Editor) -> list[Any]:
    """Every control Tab should reach, in document order."""
    from selenium.webdriver.common.by import By

    return list(editor.driver.find_elements(By.CSS_SELECTOR, FOCUSABLE))


def press(editor: Editor, key: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(editor.driver).send_keys(key).perform()


def focus_is_visible(editor: Editor) -> bool:
    visible, style, width = editor.driver.execute_script(
        "const e = document.activeElement, s = getComputedStyle(e);"
        "return [e.matches(':focus-visible'), s.outlineStyle, parseFloat(s.outlineWidth)];"
    )
    return bool(visible) and style != "none" and width >= 2


def tab_through(editor: Editor) -> list[Any]:
    """Press Tab once per focusable control; what had focus after each press, and its focus."""
    from selenium.webdriver.common.keys import Keys

    reached = []
    for _ in focusable(editor):
        press(editor, Keys.TAB)
        assert focus_is_visible(editor), editor.driver.switch_to.active_element.get_attribute(
            "outerHTML"
        )
        reached.append(editor.driver.switch_to.active_element)
    return reached


def tab_to(editor: Editor, target: Any) -> None:
    from selenium.webdriver.common.keys import Keys

    for _ in range(len(focusable(editor)) + 1):
        if editor.driver.switch_to.active_element == target:
            return
        press(editor, Keys.TAB)
    raise AssertionError(f"Tab never reached {target.get_attribute('outerHTML')}")


def test_signing_in_by_keyboard_alone_reaches_every_control_with_visible_focus(
    editor: Editor,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    show_signin(editor)

    assert tab_through(editor) == focusable(editor)

    skip = editor.driver.find_element(By.CLASS_NAME, "skip")
    tab_to(editor, skip)
    assert skip.rect["x"] >= 0  # shown when focused
    tab_to(editor, field_by_label(editor.driver, "Sandbox key"))
    press(editor, editor.key)
    with page_replaced(editor):
        press(editor, Keys.ENTER)
    assert heading(editor) == "Patients"


def test_searching_by_keyboard_alone_reaches_every_control_and_opens_a_result(
    signed_in: Editor,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    family = unique_family()
    new_patient(signed_in, family)
    signed_in.open("patients")

    assert tab_through(signed_in) == focusable(signed_in)

    signed_in.open("patients")
    tab_to(signed_in, field_by_label(signed_in.driver, "Family name contains"))
    press(signed_in, family)
    with page_replaced(signed_in):
        press(signed_in, Keys.ENTER)
    assert tab_through(signed_in) == focusable(signed_in)  # the results table included
    result = signed_in.driver.find_element(By.CSS_SELECTOR, "tbody a")
    tab_to(signed_in, result)
    with page_replaced(signed_in):
        press(signed_in, Keys.ENTER)
    assert heading(signed_in) == f"Edit patient Ada {family}"


# -- CSRF, dates --------------------------------------------------------------------------------


def test_a_form_sent_without_its_csrf_token_is_refused_with_a_clear_page(
    signed_in: Editor,
) -> None:
    from selenium.webdriver.common.by import By

    family = unique_family()
    signed_in.open("patients/new")
    fill(signed_in, "Family name", family)
    choose(signed_in, "Gender", "Female")
    type_date(signed_in, "Birth date", date(1970, 1, 31))
    remove_csrf_token(signed_in)

    submit(signed_in, "Save patient")

    assert heading(signed_in) == "Form expired"
    text = signed_in.driver.find_element(By.TAG_NAME, "main").text
    assert "nothing was changed" in text and "Reload the page" in text
    assert signed_in.services.sandbox_store.search("Patient", [("family", family)]).total == 0


@pytest.mark.parametrize("lang", ["en-US", "de-DE"])
def test_a_birth_date_reads_and_is_typed_the_same_in_every_locale(
    editor: Editor, lang: str, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    patient_id = new_patient(editor, unique_family())
    with headless_chromium(tmp_path / "profile", lang=lang) as driver:
        local = Editor(editor.origin, editor.key, editor.services, driver)
        local.open()
        sign_in(local)
        assert driver.execute_script("return navigator.language") == lang
        local.open(f"patients/{patient_id}")

        shown = field_by_label(driver, "Birth date").get_property("value")
        hint = driver.find_element(By.ID, "birthdate-hint").text
        screenshot(driver, f"birth-date-{lang}")
        type_date(local, "Birth date", date(1970, 1, 31))
        submit(local, "Save patient")
        assert role(local, "status") == "Changes saved."

    assert shown == "1969-06-03"
    assert "YYYY-MM-DD" in hint and "1970-01-31" in hint
    assert editor.services.sandbox_store.read("Patient", patient_id)["birthDate"] == "1970-01-31"


def test_axe_reports_a_form_control_without_a_label(editor: Editor) -> None:
    # The check above must be able to fail: an unlabelled input is a critical violation.
    show_signin(editor)
    editor.driver.execute_script(
        "document.querySelector('main').append(document.createElement('input'))"
    )

    results = axe_report(editor.driver, "signin-with-an-unlabelled-input")

    assert any(v.startswith("label (critical)") for v in failing_violations(results))
