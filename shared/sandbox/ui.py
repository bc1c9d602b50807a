"""The sandbox editor (``sandbox/ui/…``): search, create and edit sandbox patients in a browser.

Server-rendered HTML, no JavaScript. Signing in takes the sandbox's API key; the session cookie is
a random id of a session kept on the server (``shared/sessions.py``, partition ``ui-session`` of
the sandbox table) that expires after a working day, ends at sign-out, and is bound to the key,
so rotating the key signs everyone out.
Against cross-site requests: the cookie is SameSite=Strict, every change is a POST, and a POST
whose Origin (or Sec-Fetch-Site) says it came from elsewhere is refused.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from shared.http import Headers, Request, Response, public_origin
from shared.sandbox import ui_pages as pages
from shared.sandbox.access import SandboxKeyMissing
from shared.sandbox.catalog import MEDICAL_RECORD_NUMBER
from shared.sandbox.errors import (
    InvalidResource,
    ResourceNotFound,
    UnsupportedSearch,
    UnsupportedType,
)
from shared.sandbox.generate import MRN_SYSTEM  # new MRNs look like the generated ones
from shared.sandbox.ui_pages import BASE_PATH, PATIENT_LABELS, FieldErrors, url
from shared.secret_store import SecretStoreUnavailable
from shared.settings import Settings
from shared.tables import StoreUnavailable

if TYPE_CHECKING:
    from shared.sandbox.access import SandboxKey
    from shared.sandbox.store import SandboxStore
    from shared.sessions import SessionStore

log = logging.getLogger(__name__)

COOKIE_NAME = "ehrb_sandbox_ui"
SESSION_PURPOSE = "sandbox-ui-session"
SESSION_SECONDS = 8 * 3600  # a working day, on the server and in the browser
SESSION_PARTITION = "ui-session"
PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_FORM_FIELDS = 50
MAX_FIELD_CHARS = 200
# Related records counted on a patient's page: resource type -> heading.
RECORD_TYPES: tuple[tuple[str, str], ...] = (
    ("Observation", "Observations"),
    ("Condition", "Conditions"),
    ("Encounter", "Encounters"),
    ("AllergyIntolerance", "Allergies"),
    ("MedicationRequest", "Medication requests"),
    ("Coverage", "Coverage"),
)
STATUS_MESSAGES = {"created": "Patient created.", "saved": "Changes saved."}

_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_INDEX = re.compile(r"\[[0-9]+\]")
_LISTED = re.compile(r"(Patient\.(?:name|identifier|generalPractitioner))\[([0-9]+)\]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_GENDER_CODES = frozenset(code for code, _ in pages.GENDERS)
_NAME_USE_CODES = frozenset(code for code, _ in pages.NAME_USES)
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
# Referrer-Policy is same-origin, not no-referrer: under no-referrer browsers send "Origin: null"
# on form POSTs (Fetch, "serializing a request origin"), which would defeat the Origin check.
# same-origin still sends nothing, patient ids included, to any other site.
_SECURITY_HEADERS = {
    "Content-Security-Policy": pages.CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


class UiError(Exception):
    """A request the UI answers with a short message page."""

    def __init__(
        self, status: int, title: str, text: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(text)
        self.status = status
        self.title = title
        self.text = text
        self.headers = headers or {}


def html_response(status: int, document: str, *, headers: dict[str, str] | None = None) -> Response:
    """An HTML page with the security headers every UI response carries."""
    out = Headers({"Content-Type": "text/html; charset=utf-8", **_SECURITY_HEADERS})
    for name, value in (headers or {}).items():
        out.set(name, value)
    return Response(status=status, body=document.encode("utf-8"), headers=out)


def redirect(location: str, *, cookie: str | None = None) -> Response:
    """A 303 See Other to ``location`` (a GET after every successful POST)."""
    headers = {"Location": location}
    if cookie is not None:
        headers["Set-Cookie"] = cookie
    return html_response(303, "", headers=headers)


def cookie_values(headers: list[str], name: str) -> list[str]:
    """Every value of cookie ``name`` in the request's Cookie header fields."""
    values = []
    for header in headers:
        for part in header.split(";"):
            key, sep, value = part.strip().partition("=")
            if sep and key.strip() == name:
                values.append(value.strip().strip('"'))
    return values


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


def patient_row(patient: dict[str, Any]) -> pages.PatientRow:
    """One line of the results table."""
    values = patient_form_values(patient)
    index = _edited_name_index(patient)
    text = patient["name"][index].get("text", "") if index is not None else ""
    name = ", ".join(p for p in (values["family"], values["given"]) if p) or text or "(no name)"
    genders = dict(pages.GENDERS)
    return pages.PatientRow(
        patient_id=str(patient.get("id", "")),
        name=name,
        gender=genders.get(values["gender"], values["gender"]),
        birth_date=values["birthdate"],
        mrn=values["mrn"],
        gp=_gp(patient, or_reference=True),
    )


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


def _origin_key(origin: str) -> str:
    """``scheme://host[:port]`` lower-cased, without the scheme's default port."""
    try:
        parts = urlsplit(origin.strip().lower())
    except ValueError:  # e.g. an unclosed IPv6 bracket: matches no origin
        return ""
    netloc = parts.netloc
    default = {"http": ":80", "https": ":443"}.get(parts.scheme)
    if default and netloc.endswith(default):
        netloc = netloc[: -len(default)]
    return f"{parts.scheme}://{netloc}"


def _search_escape(value: str) -> str:
    """``value`` as one FHIR search value: its commas, pipes and dollars are not separators."""
    return re.sub(r"([\\,|$])", r"\\\1", value)


def _first_values(pairs: list[tuple[str, str]]) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, value in pairs:
        values.setdefault(name, value)
    return values


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
        self._sessions = sessions
        # (route, method) -> handler; a route's methods give the 405's Allow header.
        self._handlers: dict[tuple[str, str], Callable[[Request, str], Response]] = {
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
            return self._message(404, "Page not found", "There is no page at this address.")
        try:
            return self._dispatch(request)
        except UiError as error:
            return self._message(error.status, error.title, error.text, headers=error.headers)
        except ResourceNotFound:
            return self._message(404, "Patient not found", "There is no patient with this id.")
        except SandboxKeyMissing:
            return self._message(
                503,
                "Sandbox not set up",
                "The sandbox has no key yet. Provision it (make run does) and try again.",
            )
        except (StoreUnavailable, SecretStoreUnavailable) as error:
            log.warning("sandbox editor dependency unavailable: %s", type(error).__name__)
            return self._message(
                503,
                "Service unavailable",
                "The sandbox store cannot be reached. Nothing was changed; try again shortly.",
                headers={"Retry-After": str(getattr(error, "retry_after", 5))},
            )

    def _dispatch(self, request: Request) -> Response:
        route, patient_id = self._route(request.route_params.get("path", ""))
        handler = self._handlers.get((route, request.method))
        if handler is None:
            allowed = sorted(method for name, method in self._handlers if name == route)
            raise UiError(
                405,
                "Method not allowed",
                "This page does not accept that kind of request.",
                headers={"Allow": ", ".join(allowed)},
            )
        if request.method == "POST":
            self._check_same_origin(request)
        public = route in ("home", "signin", "signout")
        if not public and not self._signed_in(request):
            return html_response(401, pages.signin_page(failed=False))
        return handler(request, patient_id)

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
        raise UiError(404, "Page not found", "There is no page at this address.")

    # -- sessions ------------------------------------------------------------------------------

    def _origin(self, request: Request) -> str:
        return public_origin(
            request, self._settings.public_base_url, self._settings.trust_forwarded_headers
        )

    def _check_same_origin(self, request: Request) -> None:
        origin = request.header("Origin")
        site = (request.header("Sec-Fetch-Site") or "same-origin").strip().lower()
        if (
            origin is not None and _origin_key(origin) != _origin_key(self._origin(request))
        ) or site not in ("same-origin", "none"):
            raise UiError(
                403, "Request refused", "This form was sent from another site, so it was refused."
            )

    def _signed_in(self, request: Request) -> bool:
        presented = cookie_values(request.headers.get_all("Cookie"), COOKIE_NAME)
        if not presented:
            return False  # no secret-store or table read for anonymous requests
        binding = self._key.derive(SESSION_PURPOSE)
        return any(self._sessions.valid(value, binding) for value in presented[:4])

    def _cookie(self, request: Request, value: str, max_age: int) -> str:
        secure = "; Secure" if self._origin(request).lower().startswith("https://") else ""
        return (
            f"{COOKIE_NAME}={value}; Path={BASE_PATH}; Max-Age={max_age}; HttpOnly; "
            f"SameSite=Strict{secure}"
        )

    def _home(self, request: Request, _: str) -> Response:
        if self._signed_in(request):
            return redirect(url("patients"))
        return html_response(200, pages.signin_page(failed=False))

    def _signin(self, request: Request, _: str) -> Response:
        presented = self._form(request).get("key", "").strip()
        if not presented or not self._key.matches(presented):
            return html_response(401, pages.signin_page(failed=True))
        session = self._sessions.start(self._key.derive(SESSION_PURPOSE))
        return redirect(url("patients"), cookie=self._cookie(request, session, SESSION_SECONDS))

    def _signout(self, request: Request, _: str) -> Response:
        # The session ends on the server: a copy of the cookie kept elsewhere stops working.
        for value in cookie_values(request.headers.get_all("Cookie"), COOKIE_NAME)[:4]:
            self._sessions.end(value)
        return redirect(url(), cookie=self._cookie(request, "", 0))

    # -- patients ------------------------------------------------------------------------------

    def _patients(self, request: Request, _: str) -> Response:
        query = _first_values(request.query)
        values = {name: query.get(name, "").strip() for name in pages.SEARCH_LABELS}
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
            return html_response(400, pages.patients_page(values, None, error.message))
        shown = [(name, value) for name, value in values.items() if value]

        def page_url(start: int) -> str:
            return url("patients", [*shown, ("_offset", str(start)), ("_count", str(count))])

        results = pages.ResultsView(
            total=found.total,
            rows=[patient_row(patient) for patient in found.resources],
            first=offset + 1,
            previous_url=page_url(max(offset - count, 0)) if offset > 0 else None,
            next_url=page_url(offset + count) if found.has_next else None,
        )
        return html_response(200, pages.patients_page(values, results, ""))

    @staticmethod
    def _whole_number(value: str, name: str) -> int:
        if not value.isascii() or not value.isdigit() or len(value) > 9:
            raise UiError(400, "Bad request", f"{name} must be a whole number.")
        return int(value)

    def _new_form(self, request: Request, _: str) -> Response:
        return self._form_page(200, "New patient", url("patients/new"), {}, FieldErrors())

    def _create(self, request: Request, _: str) -> Response:
        values = self._patient_values(request)
        errors = check_patient_form(values)
        action = url("patients/new")
        if errors:
            return self._form_page(422, "New patient", action, values, errors)
        patient = apply_patient_form({"resourceType": "Patient"}, values)
        try:
            stored = self._store.create(patient)
        except InvalidResource as error:
            return self._form_page(422, "New patient", action, values, store_error(error, patient))
        return redirect(url(f"patients/{stored['id']}", [("status", "created")]))

    def _patient(self, request: Request, patient_id: str) -> Response:
        patient = self._store.read("Patient", patient_id)
        values = patient_form_values(patient)
        notice = STATUS_MESSAGES.get(_first_values(request.query).get("status", ""), "")
        return self._form_page(
            200,
            self._title(patient_id, values),
            url(f"patients/{patient_id}"),
            values,
            FieldErrors(),
            notice=notice,
            records=self._records(patient_id),
        )

    def _update(self, request: Request, patient_id: str) -> Response:
        values = self._patient_values(request)
        current = self._store.read("Patient", patient_id)
        title = self._title(patient_id, patient_form_values(current))
        action = url(f"patients/{patient_id}")
        errors = check_patient_form(values)
        if errors:
            return self._form_page(422, title, action, values, errors)
        version = str((current.get("meta") or {}).get("versionId", ""))
        if values.get("version") and values["version"] != version:
            # Someone saved in between: show their version's number, so saving again is a choice.
            conflict = FieldErrors()
            conflict.add(
                "",
                "This patient was changed elsewhere after you opened this page. Check the "
                "details and save again to overwrite them.",
            )
            return self._form_page(409, title, action, {**values, "version": version}, conflict)
        patient = apply_patient_form(current, values)
        try:
            self._store.update("Patient", patient_id, patient)
        except InvalidResource as error:
            return self._form_page(422, title, action, values, store_error(error, patient))
        return redirect(url(f"patients/{patient_id}", [("status", "saved")]))

    @staticmethod
    def _title(patient_id: str, values: dict[str, str]) -> str:
        name = " ".join(p for p in (values["given"], values["family"]) if p)
        return f"Edit patient {name or patient_id}"

    def _records(self, patient_id: str) -> list[tuple[str, str]]:
        rows = []
        for resource_type, heading in RECORD_TYPES:
            try:
                found = self._store.search(
                    resource_type, [("patient", patient_id), ("_count", "1")]
                )
                rows.append((heading, str(found.total)))
            except (UnsupportedSearch, UnsupportedType):
                rows.append((heading, "not available"))
        return rows

    def _form_page(
        self,
        status: int,
        title: str,
        action: str,
        values: dict[str, str],
        errors: FieldErrors,
        *,
        notice: str = "",
        records: list[tuple[str, str]] | None = None,
    ) -> Response:
        document = pages.patient_form_page(
            title=title,
            action=action,
            values=values,
            errors=errors,
            notice=notice,
            records=records or [],
        )
        return html_response(status, document)

    def _patient_values(self, request: Request) -> dict[str, str]:
        form = self._form(request)
        return {name: form.get(name, "").strip() for name in [*PATIENT_LABELS, "version"]}

    # -- plumbing ------------------------------------------------------------------------------

    def _form(self, request: Request) -> dict[str, str]:
        """The body as UTF-8 form data (first value of each field), size-capped."""
        media_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
        if media_type != "application/x-www-form-urlencoded":
            raise UiError(415, "Unsupported form", "Send the form as a web browser does.")
        if len(request.body) > self._settings.max_request_body_bytes:
            raise UiError(413, "Form too large", "The form is larger than this page accepts.")
        try:
            pairs = parse_qsl(
                request.body.decode("utf-8"),
                keep_blank_values=True,
                strict_parsing=False,
                encoding="utf-8",
                errors="strict",
                max_num_fields=MAX_FORM_FIELDS,
            )
        except ValueError:  # also UnicodeDecodeError: the body or an escape is not UTF-8
            raise UiError(400, "Bad request", "The form could not be read.") from None
        return _first_values(pairs)

    def _message(
        self, status: int, title: str, text: str, *, headers: dict[str, str] | None = None
    ) -> Response:
        return html_response(status, pages.message_page(title, text), headers=headers)
