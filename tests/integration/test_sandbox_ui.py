"""The sandbox editor, in-process against a real SandboxStore in Azurite.

Pages are parsed with the standard library's HTML parser (``tests/support/html.py``) so that
tests check the structure a browser and a screen reader see (labels, roles, links), not
substrings of markup.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import uuid
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from shared.http import Headers, Request, Response
from shared.sandbox.access import SANDBOX_KEY_SECRET, SandboxKey, ensure_sandbox_key
from shared.sandbox.store import SandboxStore
from shared.sandbox.ui import COOKIE_NAME, PRESESSION_COOKIE_NAME, SandboxUi
from shared.settings import Settings
from shared.web.csrf import FIELD as CSRF_FIELD
from tests.support.html import dom, field_for
from tests.support.sandbox import sandbox_store, sandbox_table  # noqa: F401  (fixtures)

ORIGIN = "https://bridge.test"
BASE = "/api/sandbox/ui"
MRN_TYPE = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}


# -- fixtures and requests ----------------------------------------------------------------------


@pytest.fixture
def store(sandbox_store: SandboxStore) -> SandboxStore:  # noqa: F811  (the fixture above)
    """A sandbox store on its own fresh table in Azurite."""
    return sandbox_store


@pytest.fixture
def sandbox_key(secret_store: Any) -> str:
    return ensure_sandbox_key(secret_store)


@pytest.fixture
def ui(settings: Settings, store: Any, secret_store: Any, sandbox_key: str) -> SandboxUi:
    enabled = dataclasses.replace(settings, sandbox_enabled=True)
    return SandboxUi(enabled, store, SandboxKey(secret_store, 60))


def request(
    method: str,
    path: str,
    *,
    query: list[tuple[str, str]] | str = "",
    form: dict[str, str] | bytes | None = None,
    cookie: str | None = None,
    headers: dict[str, str] | None = None,
    origin: str = ORIGIN,
    token: str | None = None,
) -> Request:
    """A request to ``sandbox/ui/<path>`` as the function receives it.

    ``token``: the CSRF token the page holding the form carried, sent with the form.
    """
    url = f"{origin}{BASE}/{path}"
    if query:
        url += "?" + (query if isinstance(query, str) else urlencode(query))
    all_headers = Headers()
    body = b""
    if isinstance(form, dict) and token is not None:
        form = {**form, CSRF_FIELD: token}
    if form is not None:
        all_headers.add("Content-Type", "application/x-www-form-urlencoded")
        body = form if isinstance(form, bytes) else urlencode(form).encode()
    if cookie is not None:
        all_headers.add("Cookie", cookie)
    for name, value in (headers or {}).items():
        all_headers.add(name, value)
    return Request(method, url, all_headers, body, {"path": path})


def session_cookie(response: Response) -> str:
    """The ``name=value`` part of the session cookie a response sets."""
    set_cookie = response.headers.get("Set-Cookie")
    assert set_cookie is not None
    return set_cookie.split(";")[0]


def page_token(response: Response) -> str:
    """The CSRF token the page's POST forms carry (every one carries the same)."""
    tokens = {n.attrs["value"] for n in dom(response).all("input", name=CSRF_FIELD)}
    assert len(tokens) == 1, f"expected one token on the page, found {tokens}"
    return tokens.pop()


def signin_request(ui: SandboxUi, key: str, *, origin: str = ORIGIN) -> Request:
    """The sign-in POST a browser sends from the sign-in page: its pre-session cookie and token."""
    page = ui.handle(request("GET", "signin", origin=origin))
    presession = session_cookie(page)
    assert presession.startswith(f"{PRESESSION_COOKIE_NAME}=")
    return request(
        "POST",
        "signin",
        form={"key": key},
        cookie=presession,
        origin=origin,
        token=page_token(page),
    )


@pytest.fixture
def cookie(ui: SandboxUi, sandbox_key: str) -> str:
    """A signed-in browser's Cookie header."""
    return session_cookie(ui.handle(signin_request(ui, sandbox_key)))


@pytest.fixture
def csrf(ui: SandboxUi, cookie: str) -> str:
    """The CSRF token of the signed-in browser's pages."""
    return page_token(ui.handle(request("GET", "patients", cookie=cookie)))


def unique_family() -> str:
    return "Fam" + uuid.uuid4().hex[:10]


def patient_resource(family: str, **fields: Any) -> dict[str, Any]:
    resource = {
        "resourceType": "Patient",
        "name": [{"use": "official", "family": family, "given": ["Ruth"]}],
        "gender": "female",
        "birthDate": "1970-01-31",
    }
    return {**resource, **fields}


def valid_form(family: str, **overrides: str) -> dict[str, str]:
    form = {
        "prefix": "Ms",
        "given": "Ruth Ann",
        "family": family,
        "name_use": "official",
        "gender": "female",
        "birthdate": "1970-01-31",
        "mrn": "MRN-" + family,
        "gp": "Dr Anna Smith",
    }
    return {**form, **overrides}


def patients_named(store: Any, family: str) -> int:
    return int(store.search("Patient", [("family", family)]).total)


def location_path(response: Response) -> str:
    location = response.headers.get("Location")
    assert location is not None
    return urlsplit(location).path


# -- signing in ---------------------------------------------------------------------------------


def test_pages_need_a_sign_in(ui: SandboxUi) -> None:
    response = ui.handle(request("GET", "patients"))

    assert response.status == 401
    page = dom(response)
    assert field_for(page, "Sandbox key").attrs["type"] == "password"
    assert page.all("table") == []


def test_a_form_sent_without_a_session_changes_nothing(ui: SandboxUi, store: Any) -> None:
    family = unique_family()

    response = ui.handle(request("POST", "patients/new", form=valid_form(family)))

    assert response.status == 401
    assert patients_named(store, family) == 0


def test_a_wrong_key_shows_the_form_again_with_an_error(ui: SandboxUi) -> None:
    response = ui.handle(signin_request(ui, "not-the-key"))

    assert response.status == 401
    assert response.headers.get("Set-Cookie") is None
    assert "not correct" in dom(response).one(role="alert").text()


def test_the_right_key_sets_a_strict_http_only_session_cookie(
    ui: SandboxUi, sandbox_key: str
) -> None:
    response = ui.handle(signin_request(ui, sandbox_key))

    assert response.status == 303
    assert location_path(response) == f"{BASE}/patients"
    name_value, *attributes = [p.strip() for p in response.headers.get("Set-Cookie", "").split(";")]
    assert name_value.startswith(f"{COOKIE_NAME}=")
    assert {"HttpOnly", "SameSite=Strict", f"Path={BASE}", "Secure"} <= set(attributes)


def test_the_session_cookie_is_not_marked_secure_over_plain_http(
    ui: SandboxUi, sandbox_key: str
) -> None:
    response = ui.handle(signin_request(ui, sandbox_key, origin="http://127.0.0.1:7071"))

    assert response.status == 303
    assert "Secure" not in response.headers.get("Set-Cookie", "")


def test_a_signed_in_browser_sees_the_patient_list(ui: SandboxUi, cookie: str) -> None:
    response = ui.handle(request("GET", "patients", cookie=cookie))

    assert response.status == 200
    assert dom(response).one("h1").text() == "Patients"


def test_a_forged_session_cookie_is_refused(ui: SandboxUi) -> None:
    response = ui.handle(request("GET", "patients", cookie=f"{COOKIE_NAME}={'0' * 64}"))

    assert response.status == 401


def test_rotating_the_key_signs_everyone_out(
    settings: Settings, store: Any, secret_store: Any, cookie: str
) -> None:
    secret_store.set_secret(SANDBOX_KEY_SECRET, "a-new-key-" + "n" * 40)
    enabled = dataclasses.replace(settings, sandbox_enabled=True)
    after_rotation = SandboxUi(enabled, store, SandboxKey(secret_store, 60))

    assert after_rotation.handle(request("GET", "patients", cookie=cookie)).status == 401


def test_row_108_every_sign_in_gets_its_own_random_session(ui: SandboxUi, sandbox_key: str) -> None:
    first, second = (session_cookie(ui.handle(signin_request(ui, sandbox_key))) for _ in range(2))
    assert first != second
    derived = hmac.new(sandbox_key.encode(), b"sandbox-ui-session", hashlib.sha256).hexdigest()
    assert derived not in (first, second)
    assert len(first.partition("=")[2]) >= 43  # 256 random bits, base64url


def test_row_108_signing_out_ends_the_session_on_the_server(
    ui: SandboxUi, cookie: str, csrf: str
) -> None:
    ui.handle(request("POST", "signout", form={}, cookie=cookie, token=csrf))
    # A copy of the cookie kept after sign-out (another tab, a stolen header) is refused.
    assert ui.handle(request("GET", "patients", cookie=cookie)).status == 401


def test_row_108_a_session_expires_on_the_server(
    settings: Settings, store: Any, secret_store: Any, sandbox_key: str
) -> None:
    from datetime import timedelta

    from shared.secret_store import utcnow
    from shared.sessions import SessionStore

    now = [utcnow()]
    sessions = SessionStore(store.table, "ui-session", 3600, clock=lambda: now[0])
    enabled = dataclasses.replace(settings, sandbox_enabled=True)
    ui = SandboxUi(enabled, store, SandboxKey(secret_store, 60), sessions)
    cookie = session_cookie(ui.handle(signin_request(ui, sandbox_key)))
    assert ui.handle(request("GET", "patients", cookie=cookie)).status == 200
    now[0] += timedelta(seconds=3601)
    assert ui.handle(request("GET", "patients", cookie=cookie)).status == 401


def test_signing_out_clears_the_cookie(ui: SandboxUi, cookie: str, csrf: str) -> None:
    response = ui.handle(request("POST", "signout", form={}, cookie=cookie, token=csrf))

    assert response.status == 303
    set_cookie = response.headers.get("Set-Cookie", "")
    assert set_cookie.startswith(f"{COOKIE_NAME}=;")
    assert "Max-Age=0" in set_cookie


# -- searching ----------------------------------------------------------------------------------


def test_search_shows_matching_patients_and_the_total(
    ui: SandboxUi, cookie: str, store: Any
) -> None:
    family = unique_family()
    ids = {store.create(patient_resource(f"{family}{n}"))["id"] for n in ("a", "b")}
    store.create(patient_resource(unique_family()))

    response = ui.handle(request("GET", "patients", query=[("family", family)], cookie=cookie))

    page = dom(response)
    assert "2 patients found" in page.one(role="status").text()
    links = [a.attrs["href"] for a in page.one("tbody").all("a")]
    assert sorted(links) == sorted(f"{BASE}/patients/{i}" for i in ids)


def test_search_by_mrn_finds_the_patient(ui: SandboxUi, cookie: str, store: Any) -> None:
    mrn = "MRN-" + uuid.uuid4().hex
    identifier = [{"type": MRN_TYPE, "system": "urn:test:mrn", "value": mrn}]
    store.create(patient_resource(unique_family(), identifier=identifier))

    response = ui.handle(request("GET", "patients", query=[("mrn", mrn)], cookie=cookie))

    rows = dom(response).one("tbody").all("tr")
    assert len(rows) == 1
    assert mrn in rows[0].text()


def test_paging_links_move_through_the_results(ui: SandboxUi, cookie: str, store: Any) -> None:
    family = unique_family()
    for n in range(3):
        store.create(patient_resource(f"{family}{n}"))
    first = dom(
        ui.handle(
            request("GET", "patients", query=[("family", family), ("_count", "2")], cookie=cookie)
        )
    )
    assert len(first.one("tbody").all("tr")) == 2
    assert first.all("a", rel="prev") == []

    next_url = urlsplit(first.one("a", rel="next").attrs["href"])
    second = dom(ui.handle(request("GET", "patients", query=next_url.query, cookie=cookie)))

    assert len(second.one("tbody").all("tr")) == 1
    assert second.all("a", rel="next") == []
    previous = urlsplit(second.one("a", rel="prev").attrs["href"])
    assert ("_offset=0" in previous.query) and (f"family={family}" in previous.query)


# -- creating and editing -----------------------------------------------------------------------


def test_creating_a_patient_stores_it(ui: SandboxUi, cookie: str, csrf: str, store: Any) -> None:
    family = unique_family()
    response = ui.handle(
        request("POST", "patients/new", form=valid_form(family), cookie=cookie, token=csrf)
    )

    assert response.status == 303
    patient_id = location_path(response).rsplit("/", 1)[1]
    stored = store.read("Patient", patient_id)
    assert stored["name"][0] == {
        "use": "official",
        "family": family,
        "given": ["Ruth", "Ann"],
        "prefix": ["Ms"],
    }
    assert (stored["gender"], stored["birthDate"]) == ("female", "1970-01-31")
    (mrn,) = stored["identifier"]
    assert mrn["value"] == f"MRN-{family}"
    assert mrn["type"]["coding"][0]["code"] == "MR"
    assert stored["generalPractitioner"] == [{"display": "Dr Anna Smith"}]


def test_the_page_after_saving_says_it_was_saved(ui: SandboxUi, cookie: str, csrf: str) -> None:
    created = ui.handle(
        request("POST", "patients/new", form=valid_form(unique_family()), cookie=cookie, token=csrf)
    )
    location = urlsplit(created.headers.get("Location", ""))

    path = location.path.removeprefix(f"{BASE}/")
    page = dom(ui.handle(request("GET", path, query=location.query, cookie=cookie)))

    assert page.one(role="status").text() == "Patient created."


def test_missing_required_fields_are_refused_with_errors_linked_to_each_field(
    ui: SandboxUi, cookie: str, csrf: str, store: Any
) -> None:
    given = "Given" + uuid.uuid4().hex[:10]
    form = valid_form("", given=given, gender="", birthdate="")

    response = ui.handle(request("POST", "patients/new", form=form, cookie=cookie, token=csrf))

    assert response.status == 422
    page = dom(response)
    summary = page.one(role="alert")
    assert [a.attrs["href"] for a in summary.all("a")] == ["#family", "#gender", "#birthdate"]
    for label in ("Family name", "Gender", "Birth date"):
        control = field_for(page, label)
        assert control.attrs["aria-invalid"] == "true"
        error_id = f"{control.attrs['id']}-error"
        assert error_id in control.attrs["aria-describedby"].split()
        assert page.one(id=error_id).text()
    assert store.search("Patient", [("given", given)]).total == 0


def test_a_future_birth_date_is_refused_and_the_form_keeps_the_input(
    ui: SandboxUi, cookie: str, csrf: str, store: Any
) -> None:
    family = unique_family()
    tomorrow = (date.today() + timedelta(days=2)).isoformat()

    response = ui.handle(
        request(
            "POST",
            "patients/new",
            form=valid_form(family, birthdate=tomorrow),
            cookie=cookie,
            token=csrf,
        )
    )

    assert response.status == 422
    page = dom(response)
    assert "Birth date" in page.one(role="alert").text()
    assert field_for(page, "Family name").attrs["value"] == family
    assert field_for(page, "Birth date").attrs["value"] == tomorrow
    assert patients_named(store, family) == 0


def test_an_edit_keeps_what_the_form_does_not_show(
    ui: SandboxUi, cookie: str, csrf: str, store: Any
) -> None:
    family = unique_family()
    kept = {
        "telecom": [{"system": "phone", "value": "+44 20 7946 0000"}],
        "address": [{"line": ["1 High Street"], "city": "Leeds"}],
        "extension": [{"url": "http://example.org/fhir/StructureDefinition/x", "valueString": "y"}],
    }
    other_id = {"system": "urn:test:nhs", "value": "943 476 5919"}
    identifiers = [other_id, {"type": MRN_TYPE, "system": "urn:test:mrn", "value": "OLD"}]
    patient_id = store.create(patient_resource(family, identifier=identifiers, **kept))["id"]

    form = valid_form(family + "x", mrn="NEW", gp="")
    response = ui.handle(
        request("POST", f"patients/{patient_id}", form=form, cookie=cookie, token=csrf)
    )

    assert response.status == 303
    stored = store.read("Patient", patient_id)
    assert {k: stored[k] for k in kept} == kept
    assert stored["identifier"][0] == other_id
    assert stored["identifier"][1]["value"] == "NEW"
    assert stored["name"][0]["family"] == family + "x"


def test_an_element_the_store_refuses_is_named_in_the_error_summary(
    ui: SandboxUi, cookie: str, csrf: str, store: Any
) -> None:
    # Bulk loads may skip validation; an edit then meets the store's check on a field the form
    # does not show.
    family = unique_family()
    patient_id = "ui-" + uuid.uuid4().hex[:12]
    telecom = [{"system": "phone", "value": "1", "period": {"start": "not-a-date"}}]
    store.load([patient_resource(family, id=patient_id, telecom=telecom)], validate=False)

    form = valid_form(family + "x")
    response = ui.handle(
        request("POST", f"patients/{patient_id}", form=form, cookie=cookie, token=csrf)
    )

    assert response.status == 422
    assert "Patient.telecom[0].period.start" in dom(response).one(role="alert").text()
    assert store.read("Patient", patient_id)["name"][0]["family"] == family


def test_a_refused_element_shown_on_the_form_is_linked_to_its_field(
    ui: SandboxUi, cookie: str, csrf: str, store: Any
) -> None:
    family = unique_family()
    patient_id = "ui-" + uuid.uuid4().hex[:12]
    mrn = {"type": MRN_TYPE, "value": "M1", "period": {"start": "not-a-date"}}
    store.load([patient_resource(family, id=patient_id, identifier=[mrn])], validate=False)

    form = valid_form(family, mrn="M2")
    response = ui.handle(
        request("POST", f"patients/{patient_id}", form=form, cookie=cookie, token=csrf)
    )

    assert response.status == 422
    (link,) = dom(response).one(role="alert").all("a")
    assert link.attrs["href"] == "#mrn"
    assert link.text().startswith("MRN (medical record number):")


def test_an_edit_of_a_patient_changed_since_the_form_was_opened_is_refused(
    ui: SandboxUi, cookie: str, csrf: str, store: Any
) -> None:
    family = unique_family()
    patient_id = store.create(patient_resource(family))["id"]
    opened = dom(ui.handle(request("GET", f"patients/{patient_id}", cookie=cookie)))
    version = opened.one("input", name="version").attrs["value"]
    store.update("Patient", patient_id, patient_resource(family + "other", id=patient_id))

    form = {**valid_form(family + "mine"), "version": version}
    response = ui.handle(
        request("POST", f"patients/{patient_id}", form=form, cookie=cookie, token=csrf)
    )

    assert response.status == 409
    assert store.read("Patient", patient_id)["name"][0]["family"] == family + "other"


def test_a_patient_page_counts_the_patients_records(ui: SandboxUi, cookie: str, store: Any) -> None:
    patient_id = store.create(patient_resource(unique_family()))["id"]
    for _ in range(2):
        store.create(
            {
                "resourceType": "Condition",
                "subject": {"reference": f"Patient/{patient_id}"},
                "code": {"text": "Asthma"},
            }
        )

    page = dom(ui.handle(request("GET", f"patients/{patient_id}", cookie=cookie)))

    (records,) = [t for t in page.all("table") if "records" in t.one("caption").text()]
    rows = {r.one("th").text(): r.one("td").text() for r in records.one("tbody").all("tr")}
    assert rows["Conditions"] == "2"
    assert rows["Observations"] == "0"


# -- dates --------------------------------------------------------------------------------------


def test_the_birth_date_field_shows_the_stored_date_in_the_format_its_hint_names(
    ui: SandboxUi, cookie: str, store: Any
) -> None:
    patient_id = store.create(patient_resource(unique_family(), birthDate="1969-06-03"))["id"]

    page = dom(ui.handle(request("GET", f"patients/{patient_id}", cookie=cookie)))

    control = field_for(page, "Birth date")
    hint = page.one(id="birthdate-hint")
    assert (control.attrs["type"], control.attrs["value"]) == ("text", "1969-06-03")
    assert "YYYY-MM-DD" in hint.text()
    assert "birthdate-hint" in control.attrs["aria-describedby"].split()


def test_a_birth_date_in_another_spelling_is_refused_naming_the_format(
    ui: SandboxUi, cookie: str, csrf: str, store: Any
) -> None:
    family = unique_family()
    form = valid_form(family, birthdate="06/03/1969")

    response = ui.handle(request("POST", "patients/new", form=form, cookie=cookie, token=csrf))

    assert response.status == 422
    page = dom(response)
    assert "YYYY-MM-DD" in page.one(id="birthdate-error").text()
    assert field_for(page, "Birth date").attrs["value"] == "06/03/1969"
    assert patients_named(store, family) == 0


def test_the_search_by_birth_date_names_the_same_format(ui: SandboxUi, cookie: str) -> None:
    page = dom(ui.handle(request("GET", "patients", cookie=cookie)))

    control = field_for(page, "Birth date")

    assert control.attrs["type"] == "text"
    assert "YYYY-MM-DD" in page.one(id=control.attrs["aria-describedby"]).text()


# -- CSRF ---------------------------------------------------------------------------------------


def test_a_post_without_its_csrf_token_is_refused_and_changes_nothing(
    ui: SandboxUi, cookie: str, store: Any
) -> None:
    family = unique_family()

    response = ui.handle(request("POST", "patients/new", form=valid_form(family), cookie=cookie))

    assert response.status == 403
    page = dom(response)
    assert page.one("h1").text() == "Form expired"
    assert "nothing was changed" in page.one("main").text()
    assert patients_named(store, family) == 0


def test_a_token_from_another_session_is_refused(
    ui: SandboxUi, cookie: str, sandbox_key: str, store: Any
) -> None:
    other = session_cookie(ui.handle(signin_request(ui, sandbox_key)))
    others_token = page_token(ui.handle(request("GET", "patients", cookie=other)))
    family = unique_family()

    response = ui.handle(
        request("POST", "patients/new", form=valid_form(family), cookie=cookie, token=others_token)
    )

    assert response.status == 403
    assert patients_named(store, family) == 0


def test_a_sign_in_without_the_sign_in_pages_token_is_refused(
    ui: SandboxUi, sandbox_key: str
) -> None:
    response = ui.handle(request("POST", "signin", form={"key": sandbox_key}))

    assert response.status == 403
    assert response.headers.get("Set-Cookie") is None


def test_a_sign_in_with_a_pre_session_but_no_token_is_refused(
    ui: SandboxUi, sandbox_key: str
) -> None:
    presession = session_cookie(ui.handle(request("GET", "signin")))

    response = ui.handle(request("POST", "signin", form={"key": sandbox_key}, cookie=presession))

    assert response.status == 403
    assert response.headers.get("Set-Cookie") is None


def test_the_sign_in_page_hands_out_a_strict_pre_session_cookie_once(ui: SandboxUi) -> None:
    first = ui.handle(request("GET", "signin"))
    presession = session_cookie(first)
    again = ui.handle(request("GET", "signin", cookie=presession))

    attributes = {p.strip() for p in first.headers.get("Set-Cookie", "").split(";")}
    assert {"HttpOnly", "SameSite=Strict", f"Path={BASE}", "Secure"} <= attributes
    assert again.headers.get("Set-Cookie") is None
    assert page_token(again) == page_token(first)


@pytest.mark.parametrize(
    ("path", "signed_in"),
    [("", False), ("patients", True), ("patients/new", True), ("patients/{id}", True)],
)
def test_every_post_form_carries_the_pages_csrf_token(
    ui: SandboxUi, cookie: str, store: Any, path: str, signed_in: bool
) -> None:
    patient_id = store.create(patient_resource(unique_family()))["id"]
    browser = {"cookie": cookie} if signed_in else {}

    page = dom(ui.handle(request("GET", path.format(id=patient_id), **browser)))

    forms = [f for f in page.all("form") if f.attrs.get("method") == "post"]
    assert forms
    for form in forms:
        (token,) = form.all("input", name=CSRF_FIELD)
        assert token.attrs["type"] == "hidden"
        assert len(token.attrs["value"]) >= 43


def test_signing_out_without_a_live_session_needs_no_token(ui: SandboxUi) -> None:
    response = ui.handle(request("POST", "signout", form={}, cookie=f"{COOKIE_NAME}={'0' * 43}"))

    assert response.status == 303
    assert "Max-Age=0" in response.headers.get("Set-Cookie", "")


# -- safety -------------------------------------------------------------------------------------


def test_names_are_escaped_on_every_page(ui: SandboxUi, cookie: str, store: Any) -> None:
    family = unique_family()
    hostile = "<script>alert(1)</script>"
    patient_id = store.create(
        patient_resource(family, name=[{"family": family, "given": [hostile]}])
    )["id"]

    listing = ui.handle(request("GET", "patients", query=[("family", family)], cookie=cookie))
    edit = ui.handle(request("GET", f"patients/{patient_id}", cookie=cookie))

    for response in (listing, edit):
        assert "<script" not in response.text
        assert hostile in dom(response).text()  # shown as text, intact


@pytest.mark.parametrize(
    ("method", "path", "signed_in"),
    [
        ("GET", "", False),
        ("GET", "patients", True),
        ("GET", "patients/new", True),
        ("GET", "nowhere", True),
        ("POST", "signin", False),
    ],
)
def test_every_response_carries_the_security_headers(
    ui: SandboxUi, cookie: str, method: str, path: str, signed_in: bool
) -> None:
    form = {"key": "wrong"} if method == "POST" else None
    response = ui.handle(request(method, path, form=form, cookie=cookie if signed_in else None))

    csp = {
        d.strip().split(" ", 1)[0]: d.strip()
        for d in response.headers.get("Content-Security-Policy", "").split(";")
    }
    assert csp["default-src"] == "default-src 'none'"
    assert csp["frame-ancestors"] == "frame-ancestors 'none'"
    assert csp["form-action"] == "form-action 'self'"
    assert csp["base-uri"] == "base-uri 'none'"
    assert response.headers.get("X-Content-Type-Options") == "nosniff"
    assert response.headers.get("Referrer-Policy") == "same-origin"
    assert response.headers.get("Cache-Control") == "no-store"
    assert response.headers.get("X-Frame-Options") == "DENY"
    assert response.headers.get("Content-Type") == "text/html; charset=utf-8"


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "https://[bridge.test"},
        {"Sec-Fetch-Site": "cross-site"},
    ],
)
def test_a_cross_origin_post_is_refused(
    ui: SandboxUi, cookie: str, csrf: str, store: Any, headers: dict[str, str]
) -> None:
    family = unique_family()
    response = ui.handle(
        request(
            "POST",
            "patients/new",
            form=valid_form(family),
            cookie=cookie,
            token=csrf,
            headers=headers,
        )
    )

    assert response.status == 403
    assert patients_named(store, family) == 0


def test_a_same_origin_post_is_accepted(ui: SandboxUi, cookie: str, csrf: str) -> None:
    headers = {"Origin": ORIGIN, "Sec-Fetch-Site": "same-origin"}
    form = valid_form(unique_family())

    response = ui.handle(
        request("POST", "patients/new", form=form, cookie=cookie, token=csrf, headers=headers)
    )

    assert response.status == 303


def test_an_oversized_form_is_refused(
    settings: Settings, store: Any, secret_store: Any, cookie: str, csrf: str
) -> None:
    small = dataclasses.replace(settings, sandbox_enabled=True, max_request_body_bytes=512)
    ui = SandboxUi(small, store, SandboxKey(secret_store, 60))
    form = valid_form(unique_family(), gp="x" * 600)

    response = ui.handle(request("POST", "patients/new", form=form, cookie=cookie, token=csrf))

    assert response.status == 413


def test_a_form_that_is_not_utf8_is_refused(ui: SandboxUi, cookie: str) -> None:
    response = ui.handle(request("POST", "patients/new", form=b"family=%FF%FE", cookie=cookie))

    assert response.status == 400


def test_an_unknown_page_is_not_found(ui: SandboxUi, cookie: str) -> None:
    response = ui.handle(request("GET", "patients/new/extra", cookie=cookie))

    assert response.status == 404
    assert dom(response).one("h1").text() == "Page not found"


def test_a_wrong_method_is_refused_with_the_allowed_ones(ui: SandboxUi, cookie: str) -> None:
    response = ui.handle(request("POST", "patients", form={}, cookie=cookie))

    assert response.status == 405
    assert response.headers.get("Allow") == "GET"


def test_the_editor_does_not_exist_when_the_sandbox_is_disabled(
    settings: Settings, store: Any, secret_store: Any, sandbox_key: str
) -> None:
    ui = SandboxUi(settings, store, SandboxKey(secret_store, 60))

    response = ui.handle(request("POST", "signin", form={"key": sandbox_key}))

    assert response.status == 404
    assert response.headers.get("Set-Cookie") is None


# -- accessibility ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "form", "signed_in"),
    [
        ("GET", "", None, False),
        ("GET", "patients", None, True),
        ("GET", "patients/new", None, True),
        ("POST", "patients/new", {"family": ""}, True),
    ],
)
def test_pages_have_the_landmarks_and_labels_assistive_technology_needs(
    ui: SandboxUi,
    cookie: str,
    csrf: str,
    method: str,
    path: str,
    form: dict[str, str] | None,
    signed_in: bool,
) -> None:
    browser = {"cookie": cookie, "token": csrf} if signed_in else {}
    response = ui.handle(request(method, path, form=form, **browser))

    page = dom(response)
    assert page.one("html").attrs["lang"] == "en"
    assert page.one("title").text()
    assert len(page.all("h1")) == 1
    main = page.one("main")
    skip = page.all("a")[0]
    assert (skip.text(), skip.attrs["href"]) == ("Skip to main content", f"#{main.attrs['id']}")
    controls = [
        n for n in page.all() if n.tag in ("input", "select") and n.attrs.get("type") != "hidden"
    ]
    labelled = {n.attrs.get("for") for n in page.all("label")}
    assert controls
    assert all(c.attrs.get("id") in labelled for c in controls)
    for fieldset in page.all("fieldset"):
        assert fieldset.one("legend").text()
