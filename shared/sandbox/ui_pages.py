"""HTML of the sandbox editor: every page as a string, every value escaped here.

Server-rendered, no JavaScript. The one stylesheet is inline and allowed by its hash, so the
Content-Security-Policy needs neither 'unsafe-inline' nor a second request.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from urllib.parse import quote, urlencode

BASE_PATH = "/api/sandbox/ui"
SITE_NAME = "EHR Bridge sandbox"

GENDERS: tuple[tuple[str, str], ...] = (
    ("female", "Female"),
    ("male", "Male"),
    ("other", "Other"),
    ("unknown", "Unknown"),
)
NAME_USES: tuple[tuple[str, str], ...] = (
    ("official", "Official"),
    ("usual", "Usual"),
    ("nickname", "Nickname"),
    ("maiden", "Maiden"),
    ("old", "Old"),
    ("temp", "Temporary"),
    ("anonymous", "Anonymous"),
)

# Patient form fields in page order: name -> label. The labels also name fields in errors.
PATIENT_LABELS: dict[str, str] = {
    "prefix": "Prefix",
    "given": "Given names",
    "family": "Family name",
    "name_use": "Name use",
    "gender": "Gender",
    "birthdate": "Birth date",
    "mrn": "MRN (medical record number)",
    "gp": "General practitioner",
}
SEARCH_LABELS: dict[str, str] = {
    "family": "Family name contains",
    "given": "Given name",
    "birthdate": "Birth date",
    "gender": "Gender",
    "mrn": "MRN",
}

STYLE = """
body{font-family:system-ui,sans-serif;line-height:1.5;margin:0;color:#0b0c0c;background:#fff}
header,main{max-width:60rem;margin:0 auto;padding:0 1rem}
header{display:flex;gap:1rem;align-items:center;justify-content:space-between;
border-bottom:4px solid #1d70b8;padding-top:.5rem;padding-bottom:.5rem}
header nav{display:flex;gap:1rem;align-items:center;flex-wrap:wrap}
header form{margin:0}
a{color:#1d4ed8}
a:visited{color:#4c2c92}
a:focus-visible,button:focus-visible,input:focus-visible,select:focus-visible,
main:focus-visible,.error-summary:focus{outline:3px solid #ffbf47;outline-offset:2px;
box-shadow:0 0 0 6px #0b0c0c}
.skip{position:absolute;left:-9999px}
.skip:focus{position:static;display:inline-block;padding:.5rem;background:#ffbf47;color:#0b0c0c}
.visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);
white-space:nowrap}
fieldset{border:1px solid #b1b4b6;margin:0 0 1rem;padding:.5rem 1rem 1rem}
legend{font-weight:700;padding:0 .25rem}
label{display:block;font-weight:600;margin-top:.75rem}
.hint{color:#505a5f;margin:0}
input,select{font:inherit;padding:.25rem;border:2px solid #0b0c0c;min-width:12rem}
input[aria-invalid=true],select[aria-invalid=true]{border-color:#d4351c}
button{font:inherit;padding:.4rem 1rem;margin-top:1rem;background:#00703c;color:#fff;
border:0;border-bottom:2px solid #002d18;cursor:pointer}
header button{margin:0;background:#505a5f;border-bottom-color:#0b0c0c}
.field-error{color:#d4351c;font-weight:700;margin:0}
.error-summary{border:4px solid #d4351c;padding:0 1rem 1rem;margin:1rem 0}
.status{border:4px solid #00703c;padding:.5rem 1rem;margin:1rem 0}
table{border-collapse:collapse;width:100%;margin:1rem 0}
caption{text-align:left;font-weight:700}
th,td{text-align:left;border-bottom:1px solid #b1b4b6;padding:.4rem .5rem .4rem 0}
.paging{display:flex;gap:2rem}
"""

STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src '{STYLE_HASH}'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def e(value: object) -> str:
    """``value`` as HTML text, safe in element content and quoted attributes."""
    return escape(str(value), quote=True)


def url(path: str = "", query: Sequence[tuple[str, str]] = ()) -> str:
    """Absolute path of a UI page, ids percent-encoded, with an optional query."""
    target = f"{BASE_PATH}/{quote(path, safe='/')}" if path else f"{BASE_PATH}/"
    return f"{target}?{urlencode(query)}" if query else target


@dataclass
class FieldErrors:
    """Messages by form field name, in the order they were found."""

    messages: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, message: str) -> None:
        """Record the first message for ``name``."""
        self.messages.setdefault(name, message)

    def __bool__(self) -> bool:
        return bool(self.messages)


@dataclass
class PatientRow:
    """One line of the patient table."""

    patient_id: str
    name: str
    gender: str
    birth_date: str
    mrn: str
    gp: str


@dataclass
class ResultsView:
    """One page of search results and the links around it."""

    total: int
    rows: list[PatientRow]
    first: int  # 1-based position of the first row
    previous_url: str | None
    next_url: str | None


def page(title: str, body: str, *, signed_in: bool) -> str:
    """A whole document: skip link, header, one <main> holding ``body`` (which has the <h1>)."""
    nav = ""
    if signed_in:
        nav = (
            '<nav aria-label="Sandbox">'
            f'<a href="{e(url("patients"))}">Patients</a>'
            f'<a href="{e(url("patients/new"))}">New patient</a>'
            f'<form method="post" action="{e(url("signout"))}"><button type="submit">'
            "Sign out</button></form></nav>"
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)} – {e(SITE_NAME)}</title><style>{STYLE}</style></head><body>"
        '<a class="skip" href="#main">Skip to main content</a>'
        f"<header><p><strong>{e(SITE_NAME)}</strong></p>{nav}</header>"
        f'<main id="main" tabindex="-1">{body}</main></body></html>'
    )


def status_message(text: str) -> str:
    """A polite live region announcing ``text``."""
    return f'<div class="status" role="status"><p>{e(text)}</p></div>'


def error_summary(errors: FieldErrors, labels: dict[str, str]) -> str:
    """The "There is a problem" box: one link per field, to the field itself."""
    # An error on no form field (name "") is listed without a link.
    items = "".join(
        f'<li><a href="#{e(name)}">{e(labels.get(name, name))}: {e(message)}</a></li>'
        if name
        else f"<li>{e(message)}</li>"
        for name, message in errors.messages.items()
    )
    # autofocus (a global attribute) takes keyboard and screen-reader users to the summary.
    return (
        '<div class="error-summary" role="alert" aria-labelledby="error-summary-title" '
        'tabindex="-1" autofocus>'
        f'<h2 id="error-summary-title">There is a problem</h2><ul>{items}</ul></div>'
    )


def _described_by(name: str, hint: str, error: str | None) -> str:
    ids = ([f"{name}-hint"] if hint else []) + ([f"{name}-error"] if error else [])
    attrs = f' aria-describedby="{e(" ".join(ids))}"' if ids else ""
    return attrs + (' aria-invalid="true"' if error else "")


def _hint_and_error(name: str, hint: str, error: str | None) -> str:
    out = f'<p class="hint" id="{e(name)}-hint">{e(hint)}</p>' if hint else ""
    if error:
        out += (
            f'<p class="field-error" id="{e(name)}-error">'
            f'<span class="visually-hidden">Error: </span>{e(error)}</p>'
        )
    return out


def text_input(
    name: str,
    label: str,
    value: str,
    error: str | None = None,
    *,
    kind: str = "text",
    hint: str = "",
    required: bool = False,
    extra: str = "",
) -> str:
    """A labelled input with its hint and error wired by aria-describedby."""
    flag = " required" if required else ""
    return (
        f'<label for="{e(name)}">{e(label)}</label>{_hint_and_error(name, hint, error)}'
        f'<input id="{e(name)}" name="{e(name)}" type="{e(kind)}" value="{e(value)}"'
        f"{_described_by(name, hint, error)}{flag}{extra}>"
    )


def select(
    name: str,
    label: str,
    value: str,
    options: Sequence[tuple[str, str]],
    error: str | None = None,
    *,
    blank: str | None = None,
    required: bool = False,
) -> str:
    """A labelled select; ``blank`` adds a first, empty choice."""
    choices = [("", blank)] if blank is not None else []
    # A stored value outside the list stays selectable, so saving never silently changes it.
    known = {code for code, _ in options} | {""}
    extra = [(value, value)] if value not in known else []
    rendered = "".join(
        f'<option value="{e(code)}"{" selected" if code == value else ""}>{e(text)}</option>'
        for code, text in [*choices, *options, *extra]
    )
    flag = " required" if required else ""
    return (
        f'<label for="{e(name)}">{e(label)}</label>{_hint_and_error(name, "", error)}'
        f'<select id="{e(name)}" name="{e(name)}"{_described_by(name, "", error)}{flag}>'
        f"{rendered}</select>"
    )


def signin_page(*, failed: bool) -> str:
    """The sign-in form; ``failed`` adds the wrong-key message."""
    alert = ""
    error = None
    if failed:
        error = "The sandbox key is not correct"
        alert = error_summary(FieldErrors({"key": error}), {"key": "Sandbox key"})
    body = (
        f"<h1>Sign in to the sandbox</h1>{alert}"
        "<p>Use the sandbox's API key: the secret <code>sandbox-api-key</code> in the app's "
        "secret store.</p>"
        f'<form method="post" action="{e(url("signin"))}">'
        + text_input(
            "key", "Sandbox key", "", error, kind="password", required=True,
            extra=' autocomplete="current-password" spellcheck="false"',
        )
        + '<div><button type="submit">Sign in</button></div></form>'
    )  # fmt: skip
    return page("Sign in", body, signed_in=False)


def search_form(values: dict[str, str]) -> str:
    """The patient search form (GET, so results can be bookmarked and paged)."""
    v = values.get
    return (
        f'<form method="get" action="{e(url("patients"))}" role="search">'
        "<fieldset><legend>Search patients</legend>"
        + text_input("family", SEARCH_LABELS["family"], v("family", ""))
        + text_input("given", SEARCH_LABELS["given"], v("given", ""))
        + text_input("birthdate", SEARCH_LABELS["birthdate"], v("birthdate", ""), kind="date")
        + select("gender", SEARCH_LABELS["gender"], v("gender", ""), GENDERS, blank="Any")
        + text_input("mrn", SEARCH_LABELS["mrn"], v("mrn", ""))
        + '<div><button type="submit">Search</button></div></fieldset></form>'
    )


def patients_page(values: dict[str, str], results: ResultsView | None, problem: str) -> str:
    """The search form and, when a search ran, its results."""
    body = f'<h1>Patients</h1><p><a href="{e(url("patients/new"))}">Create a patient</a></p>'
    if problem:
        body += (
            '<div class="error-summary" role="alert"><h2>The search could not run</h2>'
            f"<p>{e(problem)}</p></div>"
        )
    body += search_form(values)
    if results is not None:
        body += _results(results)
    return page("Patients", body, signed_in=True)


def _results(results: ResultsView) -> str:
    if not results.rows:
        found = "No patients match" if results.total == 0 else "No patients on this page"
        return status_message(f"{found} ({results.total} in total).")
    last = results.first + len(results.rows) - 1
    noun = "patient" if results.total == 1 else "patients"
    summary = status_message(f"{results.total} {noun} found; showing {results.first} to {last}.")
    rows = "".join(
        "<tr>"
        f'<th scope="row"><a href="{e(url("patients/" + row.patient_id))}">{e(row.name)}</a></th>'
        f"<td>{e(row.gender)}</td><td>{e(row.birth_date)}</td><td>{e(row.mrn)}</td>"
        f"<td>{e(row.gp)}</td></tr>"
        for row in results.rows
    )
    table = (
        f"<table><caption>Patients {results.first} to {last} of {results.total}</caption>"
        '<thead><tr><th scope="col">Name</th><th scope="col">Gender</th>'
        '<th scope="col">Birth date</th><th scope="col">MRN</th>'
        f'<th scope="col">General practitioner</th></tr></thead><tbody>{rows}</tbody></table>'
    )
    links = []
    if results.previous_url:
        links.append(f'<a href="{e(results.previous_url)}" rel="prev">Previous page</a>')
    if results.next_url:
        links.append(f'<a href="{e(results.next_url)}" rel="next">Next page</a>')
    paging = (
        f'<nav class="paging" aria-label="Result pages">{"".join(links)}</nav>' if links else ""
    )
    return summary + table + paging


def patient_form_page(
    *,
    title: str,
    action: str,
    values: dict[str, str],
    errors: FieldErrors,
    notice: str = "",
    records: Sequence[tuple[str, str]] = (),
) -> str:
    """The create/edit form, with its error summary, a notice (role=status) and record counts."""
    v = values.get
    err = errors.messages.get
    body = f"<h1>{e(title)}</h1>"
    if notice:
        body += status_message(notice)
    if errors:
        body += error_summary(errors, PATIENT_LABELS)
    body += (
        f'<form method="post" action="{e(action)}" novalidate>'
        f'<input type="hidden" name="version" value="{e(v("version", ""))}">'
        "<fieldset><legend>Name</legend>"
        + text_input("prefix", PATIENT_LABELS["prefix"], v("prefix", ""), err("prefix"),
                     hint="For example, Mr or Dr", extra=' autocomplete="honorific-prefix"')
        + text_input("given", PATIENT_LABELS["given"], v("given", ""), err("given"),
                     hint="Separate several given names with spaces",
                     extra=' autocomplete="given-name"')
        + text_input("family", PATIENT_LABELS["family"], v("family", ""), err("family"),
                     required=True, extra=' autocomplete="family-name"')
        + select("name_use", PATIENT_LABELS["name_use"], v("name_use", "official"), NAME_USES,
                 err("name_use"), blank="Not set")
        + "</fieldset><fieldset><legend>Details</legend>"
        + select("gender", PATIENT_LABELS["gender"], v("gender", ""), GENDERS, err("gender"),
                 blank="Choose a gender", required=True)
        + text_input("birthdate", PATIENT_LABELS["birthdate"], v("birthdate", ""),
                     err("birthdate"), kind="date", hint="For example, 31 January 1970",
                     required=True)
        + "</fieldset><fieldset><legend>Care</legend>"
        + text_input("mrn", PATIENT_LABELS["mrn"], v("mrn", ""), err("mrn"))
        + text_input("gp", PATIENT_LABELS["gp"], v("gp", ""), err("gp"),
                     hint="Name shown for the patient's GP (optional)")
        + '</fieldset><div><button type="submit">Save patient</button></div></form>'
    )  # fmt: skip
    if records:
        rows = "".join(
            f'<tr><th scope="row">{e(kind)}</th><td>{e(count)}</td></tr>' for kind, count in records
        )
        body += (
            "<h2>Records</h2><table><caption>The patient's records in the sandbox</caption>"
            '<thead><tr><th scope="col">Record type</th><th scope="col">Count</th></tr></thead>'
            f"<tbody>{rows}</tbody></table>"
        )
    return page(title, body, signed_in=True)


def message_page(title: str, text: str) -> str:
    """A page with a heading and one sentence (errors such as 404 and 503)."""
    back = f'<p><a href="{e(url("patients"))}">Go to the patient list</a></p>'
    return page(title, f"<h1>{e(title)}</h1><p>{e(text)}</p>{back}", signed_in=False)
