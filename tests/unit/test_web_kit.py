"""The web kit (shared/web): templates, page headers, CSRF tokens, cookies, forms, macros.

No server: pages are rendered in-process and parsed (tests/support/html.py). The sandbox
editor's use of the kit is tested in tests/integration/test_sandbox_ui.py and, in Chromium, in
tests/e2e/test_sandbox_ui_browser.py.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shared.http import Headers, Request
from shared.web.cookies import Cookie
from shared.web.csrf import Csrf
from shared.web.errors import PageError
from shared.web.forms import FieldErrors, read_form
from shared.web.headers import content_security_policy
from shared.web.origin import same_origin
from shared.web.pages import NavLink, Pages, Site, Visitor, link
from shared.web.templates import Templates
from tests.support.html import Node, dom
from tools.testkit.data import REPO

CONSOLE = Site(
    name="EHR Bridge console",
    base_path="/api/console",
    nav=(NavLink("Clients", "clients"), NavLink("Tenants", "tenants")),
    home=NavLink("Go to the clients", "clients"),
)


def pages_with(tmp_path: Path, templates: dict[str, str], site: Site = CONSOLE) -> Pages:
    """Pages of ``site`` whose own template folder holds ``templates``."""
    for name, text in templates.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return Pages(site, Templates(tmp_path))


def page_using(tmp_path: Path, body: str, *, top: str = "", **context: Any) -> Node:
    """A page of the console whose content is ``body`` (with the kit's macros imported).

    ``top``: statements at the template's top level, outside the content block.
    """
    template = (
        '{% extends "kit/base.html" %}{% import "kit/forms.html" as forms %}' + top + ""
        "{% block content %}<h1>Test</h1>" + body + "{% endblock %}"
    )
    pages = pages_with(tmp_path, {"test.html": template})
    return dom(pages.render(200, "test.html", Visitor(True, "tok"), {"title": "Test", **context}))


def request(headers: dict[str, str] | None = None, body: bytes = b"") -> Request:
    return Request("POST", "https://bridge.test/api/console/x", Headers(headers or {}), body)


# -- cold start ---------------------------------------------------------------------------------


def test_importing_the_app_and_the_kit_does_not_import_jinja2() -> None:
    # Cold start: Jinja2 loads on the first page rendered, not at import. (MarkupSafe is
    # already loaded: azure.functions imports werkzeug, which imports it.)
    probe = (
        "import sys, function_app, shared.web.pages, shared.sandbox.ui; "
        "bad = [m for m in sys.modules if m.split('.')[0] == 'jinja2']; "
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


# -- templates ----------------------------------------------------------------------------------


def test_every_template_is_autoescaped_whatever_its_name(tmp_path: Path) -> None:
    pages = pages_with(tmp_path, {"plain.txt": "{{ value }}"})

    rendered = pages._templates.render("plain.txt", {"value": "<b>&"})

    assert rendered == "&lt;b&gt;&amp;"


def test_an_undefined_name_in_a_template_is_an_error_not_an_empty_string(tmp_path: Path) -> None:
    from jinja2 import UndefinedError

    pages = pages_with(tmp_path, {"typo.html": "{{ titel }}"})

    with pytest.raises(UndefinedError):
        pages._templates.render("typo.html", {"title": "x"})


def test_an_application_cannot_shadow_the_kits_layout(tmp_path: Path) -> None:
    (tmp_path / "kit").mkdir()
    (tmp_path / "kit" / "base.html").write_text("shadowed", encoding="utf-8")
    pages = pages_with(tmp_path, {"page.html": '{% extends "kit/base.html" %}'})

    rendered = pages.render(200, "page.html", Visitor(), {"title": "T"}).text

    assert "shadowed" not in rendered
    assert "<main" in rendered


# -- the layout, for another application --------------------------------------------------------


def test_another_site_gets_its_own_name_navigation_and_base_path(tmp_path: Path) -> None:
    page = page_using(tmp_path, "", current_nav="tenants")

    assert page.one("title").text() == "Test – EHR Bridge console"
    nav = page.one("nav", **{"aria-label": "EHR Bridge console"})
    links = [(a.text(), a.attrs["href"]) for a in nav.all("a")]
    assert links == [("Clients", "/api/console/clients"), ("Tenants", "/api/console/tenants")]
    assert nav.one("a", **{"aria-current": "page"}).text() == "Tenants"
    assert nav.one("form").attrs["action"] == "/api/console/signout"


def test_the_sign_out_form_carries_the_visitors_csrf_token(tmp_path: Path) -> None:
    page = page_using(tmp_path, "")

    signout = page.one("form", action="/api/console/signout")

    assert signout.one("input", name="csrf_token").attrs["value"] == "tok"


def test_a_visitor_who_is_not_signed_in_sees_no_navigation(tmp_path: Path) -> None:
    pages = pages_with(tmp_path, {"p.html": '{% extends "kit/base.html" %}'})

    page = dom(pages.render(200, "p.html", Visitor(), {"title": "T"}))

    assert page.all("nav") == []
    assert page.all("form") == []


def test_a_message_page_links_to_the_sites_start_page(tmp_path: Path) -> None:
    page = dom(pages_with(tmp_path, {}).message(404, "Page not found", "Nothing here."))

    assert page.one("h1").text() == "Page not found"
    assert page.one("main").all("a")[0].attrs["href"] == "/api/console/clients"


def test_a_page_without_a_secret_panel_runs_no_script(tmp_path: Path) -> None:
    assert page_using(tmp_path, "{{ forms.status('Saved.') }}").all("script") == []


# -- page headers -------------------------------------------------------------------------------


def directives(policy: str) -> dict[str, list[str]]:
    parsed = [d.split() for d in policy.split(";") if d.strip()]
    return {d[0]: d[1:] for d in parsed}


def sha256_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_the_csp_allows_the_inline_stylesheet_by_its_hash(tmp_path: Path) -> None:
    page = page_using(tmp_path, "")

    (style,) = page.one("style").children

    assert isinstance(style, str)
    assert directives(content_security_policy())["style-src"] == [sha256_source(style)]


def test_the_csp_allows_the_copy_script_by_its_hash(tmp_path: Path) -> None:
    page = page_using(tmp_path, "", top="{% set uses_script = true %}")

    (script,) = page.one("script").children

    assert isinstance(script, str)
    assert directives(content_security_policy())["script-src"] == [sha256_source(script)]


def test_the_csp_allows_nothing_inline_but_the_kits_own_files() -> None:
    policy = directives(content_security_policy())

    assert policy["default-src"] == ["'none'"]
    assert all(
        "'unsafe-inline'" not in sources and "'unsafe-eval'" not in sources
        for sources in policy.values()
    )
    assert (policy["frame-ancestors"], policy["base-uri"]) == (["'none'"], ["'none'"])


def test_every_page_is_served_with_no_store_and_the_security_headers(tmp_path: Path) -> None:
    pages = pages_with(tmp_path, {})
    for response in (pages.message(500, "T", "t"), pages.redirect("/api/console/")):
        assert response.headers.get("Cache-Control") == "no-store"
        assert response.headers.get("Content-Security-Policy") == content_security_policy()
        assert response.headers.get("X-Content-Type-Options") == "nosniff"
        assert response.headers.get("Referrer-Policy") == "same-origin"
        assert response.headers.get("X-Frame-Options") == "DENY"


def test_a_visitor_given_a_cookie_gets_it_with_the_page(tmp_path: Path) -> None:
    pages = pages_with(tmp_path, {"p.html": '{% extends "kit/base.html" %}'})

    response = pages.render(200, "p.html", Visitor(cookie="pre=1; Path=/"), {"title": "T"})

    assert response.headers.get_all("Set-Cookie") == ["pre=1; Path=/"]


# -- form macros --------------------------------------------------------------------------------


def test_a_field_with_a_hint_and_an_error_is_described_by_both(tmp_path: Path) -> None:
    errors = FieldErrors({"name": "Enter a name"})
    page = page_using(
        tmp_path,
        '{{ forms.input("name", "Name", "", errors, hint="As on the ID") }}',
        errors=errors,
    )

    control = page.one("input", id="name")

    assert control.attrs["aria-invalid"] == "true"
    assert control.attrs["aria-describedby"].split() == ["name-hint", "name-error"]
    assert page.one(id="name-hint").text() == "As on the ID"
    assert page.one(id="name-error").text() == "Error: Enter a name"
    assert page.one("label").attrs["for"] == "name"


def test_the_error_summary_links_each_error_to_its_field(tmp_path: Path) -> None:
    errors = FieldErrors({"b": "Wrong", "": "Not saved", "a": "Missing"})
    page = page_using(
        tmp_path, '{{ forms.error_summary(errors, {"a": "A", "b": "B"}) }}', errors=errors
    )

    summary = page.one(role="alert")

    assert [(a.text(), a.attrs["href"]) for a in summary.all("a")] == [
        ("B: Wrong", "#b"),
        ("A: Missing", "#a"),
    ]
    assert "Not saved" in summary.text()
    assert "autofocus" in summary.attrs


def test_a_select_keeps_a_stored_value_outside_its_options(tmp_path: Path) -> None:
    page = page_using(tmp_path, '{{ forms.select("g", "G", "legacy", [("f", "F")], blank="Any") }}')

    options = [(o.attrs["value"], "selected" in o.attrs) for o in page.one("select").all("option")]

    assert options == [("", False), ("f", False), ("legacy", True)]


def test_a_table_has_a_caption_row_headers_and_a_labelled_scroll_region(tmp_path: Path) -> None:
    rows = [[link("Ann <A>", "/p/1"), "F"]]
    page = page_using(
        tmp_path, '{{ forms.table("t", "People", ["Name", "Sex"], rows) }}', rows=rows
    )

    region = page.one(role="region")
    header = page.one("tbody").one("th")

    assert page.one(id=region.attrs["aria-labelledby"]).tag == "caption"
    assert region.attrs["tabindex"] == "0"
    assert header.attrs["scope"] == "row"
    assert (header.one("a").text(), header.one("a").attrs["href"]) == ("Ann <A>", "/p/1")


def test_a_status_message_is_a_polite_live_region(tmp_path: Path) -> None:
    page = page_using(tmp_path, "{{ forms.status('Saved.') }}")

    assert page.one(role="status").text() == "Saved."


def test_the_secret_panel_shows_the_secret_and_hides_the_copy_button_until_the_script_runs(
    tmp_path: Path,
) -> None:
    page = page_using(
        tmp_path,
        '{{ forms.secret_panel("secret", "Client secret", value) }}',
        top="{% set uses_script = true %}",
        value="s3cr3t<&>",
    )

    panel = page.one("section")

    assert panel.one("code").text() == "s3cr3t<&>"
    assert "hidden" in panel.one("button").attrs
    assert panel.one("button").attrs["type"] == "button"
    assert "shown only on this page" in panel.one(id="secret-hint").text()


# -- CSRF tokens --------------------------------------------------------------------------------

PRESESSION = Cookie("pre", "/api/console", 3600)


def test_a_token_is_valid_only_for_the_session_it_was_issued_for() -> None:
    csrf = Csrf(lambda: "secret", PRESESSION)
    token = csrf.token("session-a")

    assert csrf.valid("session-a", token)
    assert not csrf.valid("session-b", token)


def test_a_token_made_under_another_secret_is_refused() -> None:
    token = Csrf(lambda: "old secret", PRESESSION).token("session-a")

    assert not Csrf(lambda: "new secret", PRESESSION).valid("session-a", token)


@pytest.mark.parametrize("presented", ["", "x" * 500, "tökén", "\x00"])
def test_a_malformed_token_is_refused_without_an_error(presented: str) -> None:
    assert not Csrf(lambda: "secret", PRESESSION).valid("session-a", presented)


def test_a_token_reveals_nothing_of_the_session_it_is_bound_to() -> None:
    session = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"

    token = Csrf(lambda: "secret", PRESESSION).token(session)

    assert session not in token
    assert token not in session


def test_a_browser_without_a_pre_session_is_given_one_in_a_strict_cookie() -> None:
    csrf = Csrf(lambda: "secret", PRESESSION)

    value, cookie = csrf.presession(request(), secure=True)

    assert cookie is not None
    assert cookie.startswith(f"pre={value};")
    assert {"HttpOnly", "SameSite=Strict", "Secure", "Path=/api/console"} <= {
        part.strip() for part in cookie.split(";")
    }
    assert len(value) == 43  # 256 random bits, base64url


def test_a_browser_holding_a_pre_session_keeps_it() -> None:
    csrf = Csrf(lambda: "secret", PRESESSION)
    held = "A" * 43

    assert csrf.presession(request({"Cookie": f"pre={held}"}), secure=True) == (held, None)


def test_a_malformed_pre_session_cookie_is_replaced() -> None:
    csrf = Csrf(lambda: "secret", PRESESSION)

    value, cookie = csrf.presession(request({"Cookie": "pre=chosen-by-someone"}), secure=False)

    assert value != "chosen-by-someone"
    assert cookie is not None
    assert "Secure" not in cookie


# -- cookies, origin, forms ---------------------------------------------------------------------


def test_clearing_a_cookie_expires_it_at_once_on_its_path() -> None:
    cleared = Cookie("session", "/api/console", 3600).clear(secure=False)

    assert cleared == "session=; Path=/api/console; Max-Age=0; HttpOnly; SameSite=Strict"


@pytest.mark.parametrize(
    ("headers", "accepted"),
    [
        ({}, True),
        ({"Origin": "https://bridge.test:443"}, True),
        ({"Origin": "https://bridge.test", "Sec-Fetch-Site": "same-origin"}, True),
        ({"Origin": "https://evil.example"}, False),
        ({"Origin": "null"}, False),
        ({"Sec-Fetch-Site": "same-site"}, False),
        ({"Sec-Fetch-Site": "cross-site"}, False),
    ],
)
def test_a_post_is_accepted_only_from_the_same_origin(
    headers: dict[str, str], accepted: bool
) -> None:
    assert same_origin(request(headers), "https://bridge.test") is accepted


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("application/json", b"{}", 415),
        ("application/x-www-form-urlencoded", b"a=" + b"x" * 200, 413),
        ("application/x-www-form-urlencoded", b"a=%FF", 400),
        ("application/x-www-form-urlencoded", b"&".join([b"a=1"] * 20), 400),
    ],
)
def test_a_body_that_is_not_a_small_utf8_form_is_refused(
    content_type: str, body: bytes, status: int
) -> None:
    with pytest.raises(PageError) as refused:
        read_form(request({"Content-Type": content_type}, body), max_bytes=128, max_fields=10)

    assert refused.value.status == status


def test_a_form_keeps_the_first_value_of_each_field() -> None:
    body = b"a=1&b=%C3%A9&a=2"

    form = read_form(
        request({"Content-Type": "application/x-www-form-urlencoded"}, body),
        max_bytes=64,
        max_fields=10,
    )

    assert form == {"a": "1", "b": "é"}
