"""The sandbox editor (``sandbox/ui/…``): search, create and edit sandbox patients in a browser.

Server-rendered HTML on the web kit (``shared/web``): the templates in ``templates/`` extend the
kit's layout, and work without JavaScript. Signing in takes the sandbox's API key; the session
cookie is a random id of a session kept on the server (``shared/sessions.py``, partition
``ui-session`` of the sandbox table) that expires after a working day, ends at sign-out, and is
bound to the key, so rotating the key signs everyone out.
Against cross-site requests: the cookies are SameSite=Strict, every change is a POST, a POST
whose Origin (or Sec-Fetch-Site) says it came from elsewhere is refused, and every POST form
carries a CSRF token bound to the session (before sign-in, to a pre-session cookie).
Dates are ISO 8601 text (YYYY-MM-DD), shown and typed the same in every browser locale.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.fhir.catalog import chart_headings
from shared.http import Request, Response, public_origin
from shared.sandbox.access import SandboxKeyMissing
from shared.sandbox.errors import (
    InvalidResource,
    LayoutOutdated,
    ResourceNotFound,
    UnsupportedSearch,
    UnsupportedType,
)
from shared.sandbox.generate import MRN_SYSTEM  # new MRNs look like the generated ones
from shared.sandbox.vocabulary import MEDICAL_RECORD_NUMBER
from shared.secret_store import SecretStoreUnavailable
from shared.settings import Settings
from shared.tables import StoreUnavailable
from shared.web.cookies import Cookie
from shared.web.csrf import FIELD as CSRF_FIELD
from shared.web.csrf import Csrf
from shared.web.errors import PageError
from shared.web.forms import FieldErrors, first_values, read_form
from shared.web.login import Login
from shared.web.pages import Cell, NavLink, Pages, Site, Visitor, link
from shared.web.routing import handler_for
from shared.web.templates import Templates

if TYPE_CHECKING:
    from shared.sandbox.access import SandboxKey
    from shared.sandbox.store import SandboxStore
    from shared.sessions import SessionStore

log = logging.getLogger(__name__)

BASE_PATH = "/api/sandbox/ui"
SITE = Site(
    name="EHR Bridge sandbox",
    base_path=BASE_PATH,
    nav=(NavLink("Patients", "patients"), NavLink("New patient", "patients/new")),
    home=NavLink("Go to the patient list", "patients"),
)
TEMPLATES = Path(__file__).parent / "templates"
COOKIE_NAME = "ehrb_sandbox_ui"
PRESESSION_COOKIE_NAME = "ehrb_sandbox_ui_pre"
SESSION_PURPOSE = "sandbox-ui-session"
CSRF_PURPOSE = "sandbox-ui-csrf"
SESSION_SECONDS = 8 * 3600  # a working day, on the server and in the browser
SESSION_PARTITION = "ui-session"
PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_FORM_FIELDS = 50
MAX_FIELD_CHARS = 200
# One spelling for dates in every locale: the hint names it and the field shows it as stored.
DATE_HINT = "As YYYY-MM-DD (year-month-day), for example 1970-01-31"

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
SIGNIN_LABELS = {"key": "Sandbox key"}
RESULT_COLUMNS = ("Name", "Gender", "Birth date", "MRN", "General practitioner")
# Related records counted on a patient's page: resource type -> heading (the catalogue's chart
# types, so a new one shows up here by itself).
RECORD_TYPES: tuple[tuple[str, str], ...] = chart_headings()
STATUS_MESSAGES = {"created": "Patient created.", "saved": "Changes saved."}

_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_INDEX = re.compile(r"\[[0-9]+\]")
_LISTED = re.compile(r"(Patient\.(?:name|identifier|generalPractitioner))\[([0-9]+)\]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_GENDER_CODES = frozenset(code for code, _ in GENDERS)
_NAME_USE_CODES = frozenset(code for code, _ in NAME_USES)
# Store validation errors by element (indices removed) -> the form field showing it.
_ELEMENT_FIELDS = {
    "Patient.name.prefix": "prefix",
    "Patient.name.given": "given",
    "Patient.name.family": "family",
    "Patient.name.use": "name_use",
    "Patient.gender": "gender",
    "Patient.birthDate": "birthdate",
    "Patient.identifier": "mrn",
    "Patient.generalPractitioner": "gp",
}


def url(path: str = "", query: list[tuple[str, str]] | tuple[()] = ()) -> str:
    """Absolute path of an editor page, ids percent-encoded, with an optional query."""
    return SITE.url(path, query)


@dataclass
class ResultsView:
    """One page of search results, as the template shows it."""

    summary: str  # announced (role=status)
    caption: str
    columns: tuple[str, ...]
    rows: list[list[Cell]]
    previous_url: str | None
    next_url: str | None


def results_view(
    total: int, rows: list[list[Cell]], first: int, previous_url: str | None, next_url: str | None
) -> ResultsView:
    """The summary, caption and links of one page of results (``first`` counts from 1)."""
    if not rows:
        found = "No patients match" if total == 0 else "No patients on this page"
        return ResultsView(f"{found} ({total} in total).", "", RESULT_COLUMNS, [], previous_url,
                           next_url)  # fmt: skip
    last = first + len(rows) - 1
    noun = "patient" if total == 1 else "patients"
    return ResultsView(
        summary=f"{total} {noun} found; showing {first} to {last}.",
        caption=f"Patients {first} to {last} of {total}",
        columns=RESULT_COLUMNS,
        rows=rows,
        previous_url=previous_url,
        next_url=next_url,
    )


def _latest_birth_date() -> date:
    # "Today" somewhere: UTC+14 is the earliest time zone, so a newborn is never refused.
    return (datetime.now(UTC) + timedelta(hours=14)).date()


def check_patient_form(values: dict[str, str]) -> FieldErrors:
    """The field-level problems of a patient form, before anything reaches the store."""
    errors = FieldErrors()
    for name in PATIENT_LABELS:
        value = values.get(name, "")
        if _CONTROL.search(value):
            errors.add(name, "must not contain control characters")
        elif len(value) > MAX_FIELD_CHARS:
            errors.add(name, f"must be {MAX_FIELD_CHARS} characters or fewer")
    if not values.get("family"):
        errors.add("family", "Enter the family name")
    if values.get("name_use", "") not in _NAME_USE_CODES | {""}:
        errors.add("name_use", "Choose a name use from the list")
    if values.get("gender", "") not in _GENDER_CODES:
        errors.add("gender", "Choose a gender")
    birth = values.get("birthdate", "")
    if not birth:
        errors.add("birthdate", "Enter the birth date")
    elif not _ISO_DATE.fullmatch(birth):
        errors.add("birthdate", "Enter the birth date as YYYY-MM-DD, for example 1970-01-31")
    else:
        try:
            parsed = date.fromisoformat(birth)
        except ValueError:
            errors.add("birthdate", "Enter a real date, for example 1970-01-31")
        else:
            if parsed > _latest_birth_date():
                errors.add("birthdate", "The birth date must be today or in the past")
    return errors


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _edited_name_index(patient: dict[str, Any]) -> int | None:
    """The name the form shows: the official one, else the first."""
    names = _list(patient.get("name"))
    for index, name in enumerate(names):
        if isinstance(name, dict) and name.get("use") == "official":
            return index
    return 0 if names and isinstance(names[0], dict) else None


def _is_mrn(identifier: Any) -> bool:
    if not isinstance(identifier, dict) or not isinstance(identifier.get("type"), dict):
        return False
    codings = _list(identifier["type"].get("coding"))
    return any(isinstance(c, dict) and c.get("code") == "MR" for c in codings)


def _mrn_index(patient: dict[str, Any]) -> int | None:
    for index, identifier in enumerate(_list(patient.get("identifier"))):
        if _is_mrn(identifier):
            return index
    return None


def _gp(patient: dict[str, Any], *, or_reference: bool = False) -> str:
    first = next(iter(_list(patient.get("generalPractitioner"))), None)
    if not isinstance(first, dict):
        return ""
    fallback = first.get("reference") if or_reference else ""
    return str(first.get("display") or fallback or "")


def patient_form_values(patient: dict[str, Any]) -> dict[str, str]:
    """What the edit form shows for a stored Patient."""
    index = _edited_name_index(patient)
    name: dict[str, Any] = patient["name"][index] if index is not None else {}
    mrn_index = _mrn_index(patient)
    mrn = patient["identifier"][mrn_index].get("value", "") if mrn_index is not None else ""
    meta = patient.get("meta") if isinstance(patient.get("meta"), dict) else {}
    return {
        "prefix": " ".join(str(p) for p in _list(name.get("prefix"))),
        "given": " ".join(str(g) for g in _list(name.get("given"))),
        "family": str(name.get("family", "")),
        "name_use": str(name.get("use", "")),
        "gender": str(patient.get("gender", "")),
        "birthdate": str(patient.get("birthDate", "")),
        "mrn": str(mrn),
        "gp": _gp(patient),
        "version": str((meta or {}).get("versionId", "")),
    }


def apply_patient_form(patient: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    """A copy of ``patient`` with the form's fields set; everything else is kept as stored."""
    out = copy.deepcopy(patient)
    out["resourceType"] = "Patient"
    names = _list(out.get("name"))
    index = _edited_name_index(out)
    name: dict[str, Any] = names[index] if index is not None else {}
    parts = {
        "use": values["name_use"],
        "family": values["family"],
        "given": values["given"].split(),
        "prefix": values["prefix"].split(),
    }
    spelled = ("family", "given", "prefix")
    if any((name.get(key) or "") != (parts[key] or "") for key in spelled):
        name.pop("text", None)  # a stored display text would now contradict the parts
    for key, value in parts.items():
        if value:
            name[key] = value
        else:
            name.pop(key, None)
    if index is None:
        out["name"] = [name, *names]
    out["gender"] = values["gender"]
    out["birthDate"] = values["birthdate"]
    _apply_mrn(out, values["mrn"])
    _apply_gp(out, values["gp"])
    return out


def _apply_mrn(patient: dict[str, Any], mrn: str) -> None:
    identifiers = _list(patient.get("identifier"))
    index = _mrn_index(patient)
    if index is not None and mrn:
        identifiers[index]["value"] = mrn
    elif index is not None:
        del identifiers[index]
    elif mrn:
        identifiers.append(
            {
                "use": "usual",
                "type": MEDICAL_RECORD_NUMBER.concept(),
                "system": MRN_SYSTEM,
                "value": mrn,
            }
        )
    if identifiers:
        patient["identifier"] = identifiers
    else:
        patient.pop("identifier", None)


def _apply_gp(patient: dict[str, Any], display: str) -> None:
    # Only the display is edited: a stored reference to a Practitioner stays as it is.
    gps = _list(patient.get("generalPractitioner"))
    first = gps[0] if gps and isinstance(gps[0], dict) else None
    if first is None:
        if display:
            patient["generalPractitioner"] = [{"display": display}, *gps]
        return
    if display:
        first["display"] = display
    elif first.get("reference"):
        first.pop("display", None)
    else:
        del gps[0]
    if gps:
        patient["generalPractitioner"] = gps
    else:
        patient.pop("generalPractitioner", None)


def patient_row(patient: dict[str, Any]) -> list[Cell]:
    """One line of the results table: the name (a link to the patient), then the details."""
    values = patient_form_values(patient)
    index = _edited_name_index(patient)
    text = patient["name"][index].get("text", "") if index is not None else ""
    name = ", ".join(p for p in (values["family"], values["given"]) if p) or text or "(no name)"
    gender = dict(GENDERS).get(values["gender"], values["gender"])
    return [
        link(name, url(f"patients/{patient.get('id', '')}")),
        gender,
        values["birthdate"],
        values["mrn"],
        _gp(patient, or_reference=True),
    ]


def store_error(error: InvalidResource, sent: dict[str, Any]) -> FieldErrors:
    """A store validation failure as a form error, on the field showing that element if any."""
    errors = FieldErrors()
    field = _field_of(error.element, sent)
    if field:
        errors.add(field, error.message)
    else:
        errors.add("", f"A saved value this form does not show, {error.element}: {error.message}")
    return errors


def _field_of(element: str, sent: dict[str, Any]) -> str | None:
    # Only the name, identifier and GP entries the form edits belong to its fields.
    shown = {
        "Patient.name": _edited_name_index(sent),
        "Patient.identifier": _mrn_index(sent),
        "Patient.generalPractitioner": 0,
    }
    listed = _LISTED.match(element)
    if listed and shown[listed[1]] != int(listed[2]):
        return None
    plain = _INDEX.sub("", element)
    for prefix, name in _ELEMENT_FIELDS.items():
        if plain == prefix or plain.startswith(prefix + "."):
            return name
    return None


def _search_escape(value: str) -> str:
    """``value`` as one FHIR search value: its commas, pipes and dollars are not separators."""
    return re.sub(r"([\\,|$])", r"\\\1", value)


@dataclass
class Call:
    """One request as a handler sees it: who is asking, the form sent, the patient named."""

    request: Request
    visitor: Visitor
    session: str | None
    form: dict[str, str]
    patient_id: str


class SandboxUi:
    """Answers ``sandbox/ui/…``: sign-in, the patient list and the patient forms."""

    def __init__(
        self,
        settings: Settings,
        store: SandboxStore,
        key: SandboxKey,
        sessions: SessionStore | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._key = key
        if sessions is None:
            from shared.sessions import SessionStore

            sessions = SessionStore(store.table, SESSION_PARTITION, SESSION_SECONDS)
        self._login = Login(
            sessions,
            Cookie(COOKIE_NAME, BASE_PATH, SESSION_SECONDS),
            lambda: key.derive(SESSION_PURPOSE),
        )
        self._csrf = Csrf(
            lambda: key.derive(CSRF_PURPOSE),
            Cookie(PRESESSION_COOKIE_NAME, BASE_PATH, SESSION_SECONDS),
        )
        self._pages = Pages(SITE, Templates(TEMPLATES))
        # (route, method) -> handler; a route's methods give the 405's Allow header.
        self._handlers: dict[tuple[str, str], Callable[[Call], Response]] = {
            ("home", "GET"): self._home,
            ("signin", "GET"): self._home,
            ("signin", "POST"): self._signin,
            ("signout", "POST"): self._signout,
            ("patients", "GET"): self._patients,
            ("new", "GET"): self._new_form,
            ("new", "POST"): self._create,
            ("patient", "GET"): self._patient,
            ("patient", "POST"): self._update,
        }

    def handle(self, request: Request) -> Response:
        """Answer one request to the editor."""
        if not self._settings.sandbox_enabled:
            return self._pages.message(404, "Page not found", "There is no page at this address.")
        try:
            return self._dispatch(request)
        except PageError as error:
            return self._pages.message(error.status, error.title, error.text, headers=error.headers)
        except ResourceNotFound:
            return self._pages.message(
                404, "Patient not found", "There is no patient with this id."
            )
        except SandboxKeyMissing:
            return self._pages.message(
                503,
                "Sandbox not set up",
                "The sandbox has no key yet. Provision it (make run does) and try again.",
            )
        except LayoutOutdated:
            return self._pages.message(
                503,
                "Sandbox data to migrate",
                "The sandbox holds data an earlier version loaded. Migrate it with "
                "python -m tools.ops sandbox migrate (make run does) and try again.",
            )
        except (StoreUnavailable, SecretStoreUnavailable) as error:
            log.warning("sandbox editor dependency unavailable: %s", type(error).__name__)
            return self._pages.message(
                503,
                "Service unavailable",
                "The sandbox store cannot be reached. Nothing was changed; try again shortly.",
                headers={"Retry-After": str(getattr(error, "retry_after", 5))},
            )

    def _dispatch(self, request: Request) -> Response:
        route, patient_id = self._route(request.route_params.get("path", ""))
        handler = handler_for(self._handlers, route, request, self._origin(request))
        posted = request.method == "POST"
        session = self._login.current(request)
        if session is None and route not in ("home", "signin", "signout"):
            return self._signin_page(401, self._visitor(request, None), FieldErrors())
        form: dict[str, str] = {}
        if posted:
            form = read_form(
                request,
                max_bytes=self._settings.max_request_body_bytes,
                max_fields=MAX_FORM_FIELDS,
            )
            # Signing out without a live session ends nothing, so it needs no token.
            if not (route == "signout" and session is None):
                self._check_token(request, session, form)
        return handler(Call(request, self._visitor(request, session), session, form, patient_id))

    @staticmethod
    def _route(path: str) -> tuple[str, str]:
        parts = [p for p in path.strip("/").split("/") if p] if path else []
        if not parts:
            return "home", ""
        if parts in (["signin"], ["signout"], ["patients"]):
            return parts[0], ""
        if len(parts) == 2 and parts[0] == "patients":
            if parts[1] == "new":
                return "new", ""
            if _FHIR_ID.fullmatch(parts[1]):
                return "patient", parts[1]
        raise PageError(404, "Page not found", "There is no page at this address.")

    # -- sessions and tokens ----------------------------------------------------------------------

    def _origin(self, request: Request) -> str:
        return public_origin(
            request, self._settings.public_base_url, self._settings.trust_forwarded_headers
        )

    def _secure(self, request: Request) -> bool:
        return self._origin(request).lower().startswith("https://")

    def _visitor(self, request: Request, session: str | None) -> Visitor:
        if session is not None:
            return Visitor(signed_in=True, csrf_token=self._csrf.token(session))
        binding, cookie = self._csrf.presession(request, secure=self._secure(request))
        return Visitor(signed_in=False, csrf_token=self._csrf.token(binding), cookie=cookie)

    def _check_token(self, request: Request, session: str | None, form: dict[str, str]) -> None:
        presented = form.get(CSRF_FIELD, "")
        bindings = [session] if session is not None else self._csrf.presessions(request)
        if not any(self._csrf.valid(binding, presented) for binding in bindings):
            raise PageError(
                403,
                "Form expired",
                "This form was not sent from a current page of the editor (its security token "
                "is missing, or belongs to an earlier session), so nothing was changed. Reload "
                "the page and send the form again.",
            )

    def _home(self, call: Call) -> Response:
        if call.session is not None:
            return self._pages.redirect(url("patients"))
        return self._signin_page(200, call.visitor, FieldErrors())

    def _signin_page(self, status: int, visitor: Visitor, errors: FieldErrors) -> Response:
        context = {"title": "Sign in", "errors": errors, "labels": SIGNIN_LABELS}
        return self._pages.render(status, "signin.html", visitor, context)

    def _signin(self, call: Call) -> Response:
        presented = call.form.get("key", "").strip()
        if not presented or not self._key.matches(presented):
            errors = FieldErrors({"key": "The sandbox key is not correct"})
            return self._signin_page(401, call.visitor, errors)
        cookie = self._login.start(secure=self._secure(call.request))
        return self._pages.redirect(url("patients"), cookie=cookie)

    def _signout(self, call: Call) -> Response:
        cookie = self._login.end(call.request, secure=self._secure(call.request))
        return self._pages.redirect(url(), cookie=cookie)

    # -- patients ------------------------------------------------------------------------------

    def _patients(self, call: Call) -> Response:
        query = first_values(call.request.query)
        values = {name: query.get(name, "").strip() for name in SEARCH_LABELS}
        offset = self._whole_number(query.get("_offset", "0"), "_offset")
        asked = self._whole_number(query.get("_count", str(PAGE_SIZE)), "_count")
        count = min(max(asked, 1), MAX_PAGE_SIZE)
        criteria = [
            (param, _search_escape(values[name]))
            for name, param in (
                ("family", "family:contains"),
                ("given", "given"),
                ("birthdate", "birthdate"),
                ("gender", "gender"),
                ("mrn", "identifier"),
            )
            if values[name]
        ]
        try:
            found = self._store.search(
                "Patient", [*criteria, ("_count", str(count)), ("_offset", str(offset))]
            )
        except UnsupportedSearch as error:
            return self._patients_page(400, call.visitor, values, None, error.message)
        shown = [(name, value) for name, value in values.items() if value]

        def page_url(start: int) -> str:
            return url("patients", [*shown, ("_offset", str(start)), ("_count", str(count))])

        results = results_view(
            total=found.total,
            rows=[patient_row(patient) for patient in found.resources],
            first=offset + 1,
            previous_url=page_url(max(offset - count, 0)) if offset > 0 else None,
            next_url=page_url(offset + count) if found.has_next else None,
        )
        return self._patients_page(200, call.visitor, values, results, "")

    def _patients_page(
        self,
        status: int,
        visitor: Visitor,
        values: dict[str, str],
        results: ResultsView | None,
        problem: str,
    ) -> Response:
        context = {
            "title": "Patients",
            "current_nav": "patients",
            "labels": SEARCH_LABELS,
            "values": values,
            "genders": GENDERS,
            "date_hint": DATE_HINT,
            "results": results,
            "problem": problem,
        }
        return self._pages.render(status, "patients.html", visitor, context)

    @staticmethod
    def _whole_number(value: str, name: str) -> int:
        if not value.isascii() or not value.isdigit() or len(value) > 9:
            raise PageError(400, "Bad request", f"{name} must be a whole number.")
        return int(value)

    def _new_form(self, call: Call) -> Response:
        return self._form_page(200, call, "New patient", url("patients/new"), {}, FieldErrors())

    def _create(self, call: Call) -> Response:
        values = self._patient_values(call.form)
        errors = check_patient_form(values)
        action = url("patients/new")
        if errors:
            return self._form_page(422, call, "New patient", action, values, errors)
        patient = apply_patient_form({"resourceType": "Patient"}, values)
        try:
            stored = self._store.create(patient)
        except InvalidResource as error:
            errors = store_error(error, patient)
            return self._form_page(422, call, "New patient", action, values, errors)
        return self._pages.redirect(url(f"patients/{stored['id']}", [("status", "created")]))

    def _patient(self, call: Call) -> Response:
        patient = self._store.read("Patient", call.patient_id)
        values = patient_form_values(patient)
        notice = STATUS_MESSAGES.get(first_values(call.request.query).get("status", ""), "")
        return self._form_page(
            200,
            call,
            self._title(call.patient_id, values),
            url(f"patients/{call.patient_id}"),
            values,
            FieldErrors(),
            notice=notice,
            records=self._records(call.patient_id),
        )

    def _update(self, call: Call) -> Response:
        patient_id = call.patient_id
        values = self._patient_values(call.form)
        current = self._store.read("Patient", patient_id)
        title = self._title(patient_id, patient_form_values(current))
        action = url(f"patients/{patient_id}")
        errors = check_patient_form(values)
        if errors:
            return self._form_page(422, call, title, action, values, errors)
        version = str((current.get("meta") or {}).get("versionId", ""))
        if values.get("version") and values["version"] != version:
            # Someone saved in between: show their version's number, so saving again is a choice.
            conflict = FieldErrors()
            conflict.add(
                "",
                "This patient was changed elsewhere after you opened this page. Check the "
                "details and save again to overwrite them.",
            )
            values = {**values, "version": version}
            return self._form_page(409, call, title, action, values, conflict)
        patient = apply_patient_form(current, values)
        try:
            self._store.update("Patient", patient_id, patient)
        except InvalidResource as error:
            errors = store_error(error, patient)
            return self._form_page(422, call, title, action, values, errors)
        return self._pages.redirect(url(f"patients/{patient_id}", [("status", "saved")]))

    @staticmethod
    def _title(patient_id: str, values: dict[str, str]) -> str:
        name = " ".join(p for p in (values["given"], values["family"]) if p)
        return f"Edit patient {name or patient_id}"

    def _records(self, patient_id: str) -> list[list[Cell]]:
        rows: list[list[Cell]] = []
        for resource_type, heading in RECORD_TYPES:
            try:
                found = self._store.search(
                    resource_type, [("patient", patient_id), ("_count", "1")]
                )
                rows.append([heading, str(found.total)])
            except (UnsupportedSearch, UnsupportedType):
                rows.append([heading, "not available"])
        return rows

    def _form_page(
        self,
        status: int,
        call: Call,
        title: str,
        action: str,
        values: dict[str, str],
        errors: FieldErrors,
        *,
        notice: str = "",
        records: list[list[Cell]] | None = None,
    ) -> Response:
        context = {
            "title": title,
            "current_nav": "patients/new" if action == url("patients/new") else "",
            "action": action,
            "values": values,
            "errors": errors,
            "labels": PATIENT_LABELS,
            "genders": GENDERS,
            "name_uses": NAME_USES,
            "date_hint": DATE_HINT,
            "notice": notice,
            "records": records or [],
        }
        return self._pages.render(status, "patient.html", call.visitor, context)

    @staticmethod
    def _patient_values(form: dict[str, str]) -> dict[str, str]:
        return {name: form.get(name, "").strip() for name in [*PATIENT_LABELS, "version"]}
