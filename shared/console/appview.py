"""The Patients app view: what the Teams Patients app did in EHR mode, done by the console.

The app was retired in 2020, so nothing else shows a partner what it would see. The console
plays its part over HTTP against EHR Bridge's own public endpoints, exactly as the app did
(docs/patients-app.md): read the face's metadata, take the token URL from its SMART
``oauth-uris`` extension, get a token with the client's secret and the tenant as scope, search
patients with ``POST Patient/_search``, and open one: its record and the chart panels the app
showed, each from its own call. Every call is listed with its method, address, status and time,
and its raw FHIR a click away (``<details>``: no script needed). Where an answer lacks what the
interface specifications require, the panel says so.

Safety:

- **Where it calls.** Its own origin only: ``EHRB_PUBLIC_BASE_URL`` (required in Azure), or the
  request's origin in development. Connections obey the address policy (``shared/net``:
  loopback and private addresses only with ``EHRB_ALLOW_INSECURE_PROVIDER_URLS``); redirects are
  never followed. A token URL in the metadata on any other origin is refused before the secret
  is sent (a misconfigured base URL could point it anywhere).
- **The secret.** Typed by the operator in a password field, sent to the token endpoint and
  forgotten: never stored, logged or shown again, never put back into a form. The token it buys
  is kept in this instance's memory for its lifetime (at most ``MAX_WALLET`` tokens, each bound to
  the browser's session, tenant, face and client), so opening a patient needs no second typing;
  on another instance, or after the token expires, the console asks for the secret again. Raw
  views never show the token: its value is replaced before rendering.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from shared.fhir.versions import FhirVersion
from shared.metadata import OAUTH_URIS_EXTENSION
from shared.web.errors import PageError
from shared.web.forms import FieldErrors

if TYPE_CHECKING:
    from shared.auth.clients import ClientRegistry
    from shared.http import Response
    from shared.net.addresses import AddressPolicy
    from shared.settings import Settings
    from shared.tenants import TenantRegistry

FACES = (FhirVersion.DSTU2, FhirVersion.STU3)
SEARCH_FIELDS: dict[str, str] = {
    "name": "Name contains",
    "family": "Family name contains",
    "given": "Given name",
    "mrn": "MRN (medical record number)",
    "birthdate": "Birth date (YYYY-MM-DD)",
    "gender": "Gender",
}
LABELS: dict[str, str] = {
    "tenant": "Tenant",
    "face": "FHIR version the app speaks",
    "client": "Client (the app's registration)",
    "secret": "Client secret",
    **SEARCH_FIELDS,
}
GENDERS = (("female", "Female"), ("male", "Male"), ("other", "Other"), ("unknown", "Unknown"))
MAX_WALLET = 1000
MAX_LIST = 20
MAX_BODY_BYTES = 2 * 1024 * 1024
MAX_RAW_CHARS = 200_000
TIMEOUT = (5.0, 30.0)
HIDDEN_TOKEN = "(hidden: the console never shows a token)"
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_DATE = re.compile(r"[0-9]{4}(-[0-9]{2}(-[0-9]{2})?)?")


@dataclass
class FhirCall:
    """One HTTP call the view made, as the page lists it."""

    method: str
    url: str
    status: int | None
    ms: float
    raw: str = ""
    problem: str = ""


@dataclass
class Panel:
    """One part of the patient's chart: its heading, lines, call and what the specs miss."""

    heading: str
    lines: list[str]
    call: FhirCall | None
    missing: list[str] = field(default_factory=list)


class Failed(Exception):
    """A step that could not go on; the message says why in plain words."""


# -- what the interface specifications require --------------------------------------------------


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _get(resource: Any, *path: Any) -> Any:
    for step in path:
        if isinstance(step, int):
            resource = (
                resource[step] if isinstance(resource, list) and len(resource) > step else None
            )
        else:
            resource = resource.get(step) if isinstance(resource, dict) else None
        if resource is None:
            return None
    return resource


def _codings(concept: Any) -> list[dict[str, Any]]:
    codings = _get(concept, "coding")
    return [c for c in codings if isinstance(c, dict)] if isinstance(codings, list) else []


def patient_missing(patient: dict[str, Any]) -> list[str]:
    """The Patient elements the specs require that ``patient`` lacks."""
    missing = []
    names = _list(patient.get("name"))
    if not any(_get(n, "family") for n in names):
        missing.append("name.family")
    if not any(_get(n, "given") for n in names):
        missing.append("name.given")
    for element in ("gender", "birthDate"):
        if not patient.get(element):
            missing.append(element)
    identifiers = _list(patient.get("identifier"))
    if not any(any(c.get("code") == "MR" for c in _codings(_get(i, "type"))) for i in identifiers):
        missing.append("an MRN (identifier with type code MR)")
    return missing


def _observation_missing(o: dict[str, Any]) -> list[str]:
    missing = []
    if not any(o.get(k) for k in ("effectiveDateTime", "effectivePeriod", "effectiveInstant")):
        missing.append("effective[x]")
    if not any(c.get("code") for c in _codings(o.get("code"))):
        missing.append("code.coding.code")
    components = _list(o.get("component"))
    has_value = _get(o, "valueQuantity", "value") is not None or (
        components and all(_get(c, "valueQuantity", "value") is not None for c in components)
    )
    if not has_value:
        missing.append("valueQuantity.value")
    return missing


def _condition_missing(c: dict[str, Any]) -> list[str]:
    return [] if _get(c, "code", "coding", 0, "display") else ["code.coding[0].display"]


def _encounter_missing(e: dict[str, Any]) -> list[str]:
    missing = [] if e.get("status") else ["status"]
    if not _get(e, "type", 0, "coding", 0, "display"):
        missing.append("type[0].coding[0].display")
    return missing


def _allergy_missing(a: dict[str, Any], face: FhirVersion) -> list[str]:
    if face is FhirVersion.DSTU2:
        missing = [] if a.get("status") else ["status"]
        if not (_get(a, "substance", "text") or _get(a, "substance", "coding", 0, "display")):
            missing.append("substance text or display")
        return missing
    required = {
        "code.text": _get(a, "code", "text"),
        "code.coding[0].display": _get(a, "code", "coding", 0, "display"),
        "clinicalStatus": a.get("clinicalStatus"),
        "verificationStatus": a.get("verificationStatus"),
    }
    return [name for name, value in required.items() if not value]


def _medication_missing(m: dict[str, Any], face: FhirVersion) -> list[str]:
    medication = _get(m, "medicationReference", "display") or _get(
        m, "medicationCodeableConcept", "text"
    )
    if face is FhirVersion.DSTU2:
        required = {
            "dateWritten": m.get("dateWritten"),
            "prescriber.display": _get(m, "prescriber", "display"),
            "the medication's display or text": medication,
        }
    else:
        required = {
            "the medication's display or text": medication,
            "authoredOn": m.get("authoredOn"),
            "requester.agent.display": _get(m, "requester", "agent", "display"),
        }
    return [name for name, value in required.items() if not value]


def _coverage_missing(c: dict[str, Any], face: FhirVersion) -> list[str]:
    if face is FhirVersion.DSTU2:
        required = {"issuer (the payor)": c.get("issuer"), "plan": c.get("plan")}
    else:
        required = {
            "grouping.groupDisplay": _get(c, "grouping", "groupDisplay"),
            "grouping.planDisplay": _get(c, "grouping", "planDisplay"),
            "period": c.get("period"),
            "subscriberId": c.get("subscriberId"),
        }
    return [name for name, value in required.items() if not value]


# -- lines people read ------------------------------------------------------------------------


def _text(concept: Any) -> str:
    return str(_get(concept, "text") or _get(concept, "coding", 0, "display") or "")


def patient_line(p: dict[str, Any]) -> str:
    """Name, gender and birth date of a Patient."""
    name = _get(p, "name", 0) or {}
    given = " ".join(str(g) for g in (name.get("given") or []) if isinstance(g, str))
    family = name.get("family")
    family = " ".join(family) if isinstance(family, list) else str(family or "")
    return f"{given} {family}".strip() or "(no name)"


def _quantity(q: Any) -> str:
    value, unit = _get(q, "value"), _get(q, "unit") or _get(q, "code") or ""
    return f"{value} {unit}".strip() if value is not None else ""


def _latest_vitals(observations: list[dict[str, Any]]) -> list[str]:
    seen: set[str] = set()
    lines = []
    for o in observations:  # newest first: the first of each code is the latest
        code = str(_get(o, "code", "coding", 0, "code") or _text(o.get("code")))
        if code in seen:
            continue
        seen.add(code)
        components = _list(o.get("component"))
        value = _quantity(o.get("valueQuantity")) or " / ".join(
            _quantity(c.get("valueQuantity")) for c in components
        )
        lines.append(
            f"{_text(o.get('code')) or code}: {value or '(no value)'} "
            f"({o.get('effectiveDateTime', '')})"
        )
    return lines


def _line(resource_type: str, r: dict[str, Any], face: FhirVersion) -> str:
    if resource_type == "Condition":
        recorded = r.get("dateRecorded") or r.get("assertedDate") or r.get("recordedDate") or ""
        return f"{_text(r.get('code')) or '(no display)'} {recorded}".strip()
    if resource_type == "AllergyIntolerance":
        substance = _text(r.get("substance")) if face is FhirVersion.DSTU2 else _text(r.get("code"))
        status = r.get("status") or r.get("clinicalStatus") or ""
        return f"{substance or '(no substance)'} ({status})"
    if resource_type in ("MedicationOrder", "MedicationRequest"):
        medication = _get(r, "medicationReference", "display") or _text(
            r.get("medicationCodeableConcept")
        )
        written = r.get("dateWritten") or r.get("authoredOn") or ""
        return f"{medication or '(no medication)'} {written}".strip()
    if resource_type == "Encounter":
        location = _get(r, "location", 0, "location", "display") or "(no location)"
        start = _get(r, "period", "start") or ""
        kind = _text(_get(r, "type", 0)) or "(no type)"
        return f"{kind} at {location}, {start} ({r.get('status', '')})"
    if resource_type == "Coverage":
        plan = _get(r, "grouping", "planDisplay") or r.get("plan") or ""
        group = _get(r, "grouping", "groupDisplay") or r.get("group") or ""
        subscriber = r.get("subscriberId", "")
        return f"Plan {plan or '(none)'}, group {group or '(none)'}, subscriber {subscriber}"
    return resource_type


# -- the HTTP side ----------------------------------------------------------------------------


def _redacted(document: Any) -> str:
    if isinstance(document, dict) and "access_token" in document:
        document = {**document, "access_token": HIDDEN_TOKEN}
    text = json.dumps(document, indent=2, ensure_ascii=False)
    return text if len(text) <= MAX_RAW_CHARS else text[:MAX_RAW_CHARS] + "\n… (cut here)"


class Wallet:
    """Access tokens by (browser, tenant, face, client), in this instance's memory only."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._tokens: OrderedDict[tuple[str, ...], tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._clock = clock

    def get(self, key: tuple[str, ...]) -> str | None:
        """A live token for ``key``, or None."""
        with self._lock:
            held = self._tokens.get(key)
            if held is None or held[1] <= self._clock():
                self._tokens.pop(key, None)
                return None
            return held[0]

    def put(self, key: tuple[str, ...], token: str, expires_in: float) -> None:
        """Keep ``token`` until a minute before it expires; the oldest goes first when full."""
        with self._lock:
            self._tokens[key] = (token, self._clock() + max(expires_in - 60, 0))
            self._tokens.move_to_end(key)
            while len(self._tokens) > MAX_WALLET:
                self._tokens.popitem(last=False)


class Http:
    """Calls to the app's own public endpoints, through the address policy, no redirects."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy
        self._session: Any = None
        self._lock = threading.Lock()

    def _requests(self) -> Any:
        with self._lock:
            if self._session is None:
                import requests

                from shared.net.guard import guarded_adapter

                session = requests.Session()
                session.trust_env = False  # no proxy or netrc from the environment
                adapter = guarded_adapter(self._policy, pool_connections=1, pool_maxsize=4)
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                self._session = session
            return self._session

    def call(
        self,
        method: str,
        url: str,
        *,
        data: dict[str, str] | None = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        shown_url: str | None = None,
    ) -> tuple[FhirCall, Any]:
        """One call: the record the page shows, and the parsed JSON answer (None if not JSON)."""
        from shared.net.addresses import AddressRefused

        started = time.perf_counter()
        record = FhirCall(method, shown_url or url, None, 0.0)
        try:
            response = self._requests().request(
                method,
                url,
                data=data if data is not None else body,
                headers=headers,
                timeout=TIMEOUT,
                allow_redirects=False,
                stream=True,
            )
            content = b""
            for chunk in response.iter_content(64 * 1024):
                content += chunk
                if len(content) > MAX_BODY_BYTES:
                    raise Failed("the answer is larger than 2 MiB")
            record.status = response.status_code
        except AddressRefused:
            record.problem = "the address policy refused this connection"
            return self._done(record, started), None
        except Failed as error:
            record.problem = str(error)
            return self._done(record, started), None
        except Exception as error:  # requests' connection, timeout and protocol errors
            record.problem = f"no answer ({type(error).__name__})"
            return self._done(record, started), None
        try:
            document = json.loads(content)
        except (ValueError, RecursionError):
            document = None
            record.problem = "the answer is not JSON"
        record.raw = _redacted(document) if document is not None else ""
        return self._done(record, started), document

    @staticmethod
    def _done(record: FhirCall, started: float) -> FhirCall:
        record.ms = round((time.perf_counter() - started) * 1000, 1)
        return record


# -- the view ---------------------------------------------------------------------------------


@dataclass
class Run:
    """Everything one POST of the view did, for the template."""

    calls: list[FhirCall] = field(default_factory=list)
    problem: str = ""
    results: list[dict[str, str]] = field(default_factory=list)
    total: str = ""
    search_missing: list[str] = field(default_factory=list)
    patient: dict[str, Any] | None = None
    panels: list[Panel] = field(default_factory=list)


class AppView:
    """The page and its one POST (search, add to the list, open a patient)."""

    def __init__(
        self,
        settings: Settings,
        tenants: TenantRegistry,
        clients: ClientRegistry,
        policy: AddressPolicy,
        *,
        http: Http | None = None,
        wallet: Wallet | None = None,
    ) -> None:
        self._settings = settings
        self._tenants = tenants
        self._clients = clients
        self._http = http or Http(policy)
        self._wallet = wallet or Wallet()

    def _context(
        self,
        values: dict[str, str],
        errors: FieldErrors,
        run: Run | None,
        patients: list[tuple[str, str]],
    ) -> dict[str, Any]:
        return {
            "title": "Patients app view",
            "current_nav": "app",
            "values": values,
            "errors": errors,
            "labels": LABELS,
            "search_fields": SEARCH_FIELDS,
            "tenants": [
                (t.tenant_id, t.display_name or t.tenant_id) for t in self._tenants.list_all()
            ],
            "faces": [(str(f), f.label) for f in FACES],
            # Two clients may share a name: the id's start tells them apart.
            "clients": [
                (c.client_id, f"{c.display_name} ({c.client_id[:8]})")
                for c in self._clients.list_all()
            ],
            "genders": GENDERS,
            "run": run,
            "patient_list": patients,
        }

    def page(self, call: Any, render: Callable[..., Response]) -> Response:
        """The form, before anything was asked."""
        values = {"face": str(FhirVersion.STU3)}
        return render(200, "appview.html", call, **self._context(values, FieldErrors(), None, []))

    def run(self, call: Any, render: Callable[..., Response], origin: str) -> Response:
        """Search, add a patient to the list, or open one, as the app did."""
        form: dict[str, str] = call.form
        values = {
            name: form.get(name, "").strip()
            for name in ("tenant", "face", "client", *SEARCH_FIELDS)
        }
        patients = _patient_list(form)
        errors = self._check(values)
        action, _, argument = form.get("action", "search").partition(":")
        if action == "add" and argument:
            patient_id, _, name = argument.partition("|")
            if _FHIR_ID.fullmatch(patient_id) and patient_id not in dict(patients):
                patients = [*patients, (patient_id, name[:200])][:MAX_LIST]
        if errors:
            return render(
                422, "appview.html", call, **self._context(values, errors, None, patients)
            )
        if self._settings.hosting.enforces_admin_level and not self._settings.public_base_url:
            raise PageError(
                503, "Not configured", "The Patients app view needs EHRB_PUBLIC_BASE_URL."
            )
        face = FhirVersion(values["face"])
        run = Run()
        key = (call.browser.binding or "", values["tenant"], values["face"], values["client"])
        try:
            token = self._token(run, origin, face, values, form.get("secret", ""), key)
            if action == "open" and _FHIR_ID.fullmatch(argument):
                self._open(run, origin, face, token, argument)
            else:
                self._search(run, origin, face, token, values)
        except Failed as error:
            run.problem = str(error)
        return render(
            200, "appview.html", call, **self._context(values, FieldErrors(), run, patients)
        )

    def _check(self, values: dict[str, str]) -> FieldErrors:
        errors = FieldErrors()
        if values["tenant"] not in {t.tenant_id for t in self._tenants.list_all()}:
            errors.add("tenant", "Choose a tenant")
        if values["face"] not in {str(f) for f in FACES}:
            errors.add("face", "Choose DSTU2 or STU3")
        if values["client"] not in {c.client_id for c in self._clients.list_all()}:
            errors.add("client", "Choose a client")
        if values["birthdate"] and not _DATE.fullmatch(values["birthdate"]):
            errors.add("birthdate", "Enter the birth date as YYYY-MM-DD")
        if values["gender"] and values["gender"] not in dict(GENDERS):
            errors.add("gender", "Choose a gender from the list")
        for name in SEARCH_FIELDS:
            if len(values[name]) > 200 or not values[name].isprintable():
                errors.add(name, "Enter at most 200 printable characters")
        return errors

    def _token(
        self,
        run: Run,
        origin: str,
        face: FhirVersion,
        values: dict[str, str],
        secret: str,
        key: tuple[str, ...],
    ) -> str:
        base = f"{origin}/api/fhir/{face}"
        record, statement = self._http.call(
            "GET", f"{base}/metadata", headers={"Accept": "application/json"}
        )
        run.calls.append(record)
        if record.status != 200 or not isinstance(statement, dict):
            raise Failed("The metadata could not be read, so the app could not have connected.")
        token_url = _token_url(statement)
        if token_url is None:
            raise Failed(
                "The metadata names no token URL (rest.security oauth-uris): the app needs one."
            )
        if _origin_of(token_url) != _origin_of(origin):
            # Checked before any secret leaves: the console sends secrets to its own origin only.
            raise Failed(
                f"The metadata's token URL is on another origin ({_origin_of(token_url)}) than "
                f"the console's ({_origin_of(origin)}); no secret was sent. Check "
                "EHRB_PUBLIC_BASE_URL."
            )
        held = self._wallet.get(key) if not secret else None
        if held is not None:
            return held
        if not secret:
            raise Failed(
                "Enter the client's secret: this console keeps no secret, and holds no token for "
                "this choice yet."
            )
        record, answer = self._http.call(
            "POST",
            token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": values["client"],
                "client_secret": secret,
                "scope": values["tenant"],
            },
        )
        run.calls.append(record)
        if record.status != 200 or not isinstance(answer, dict) or not answer.get("access_token"):
            error = answer.get("error") if isinstance(answer, dict) else None
            raise Failed(
                f"No token: the token endpoint answered {record.status} {error or ''}".strip() + "."
            )
        missing = [k for k in ("access_token", "token_type", "expires_in") if k not in answer]
        if missing:
            record.problem = "the answer lacks " + ", ".join(missing)
        token = str(answer["access_token"])
        expires_in = answer.get("expires_in")
        self._wallet.put(
            key, token, float(expires_in) if isinstance(expires_in, int | float) else 0
        )
        return token

    def _search(
        self, run: Run, origin: str, face: FhirVersion, token: str, values: dict[str, str]
    ) -> None:
        params: list[tuple[str, str]] = []
        family_param = "family:contains" if face is FhirVersion.DSTU2 else "family"
        for name, param in (
            ("name", "name"),
            ("family", family_param),
            ("given", "given"),
            ("mrn", "identifier"),
            ("birthdate", "birthdate"),
            ("gender", "gender"),
        ):
            if values[name]:
                params.append((param, values[name]))
        params.append(("_count", "20"))
        record, bundle = self._fhir(
            origin,
            face,
            token,
            "POST",
            "Patient/_search",
            body=urlencode(params).encode(),
            content_type="application/x-www-form-urlencoded",
        )
        run.calls.append(record)
        if record.status != 200 or not isinstance(bundle, dict):
            raise Failed(f"The search was answered {record.status}.")
        run.total = str(bundle.get("total", "")) if "total" in bundle else ""
        if "total" not in bundle:
            run.search_missing.append("Bundle.total (the app shows how many matched)")
        for resource in _entries(bundle, "Patient"):
            run.results.append(
                {
                    "id": str(resource.get("id", "")),
                    "name": patient_line(resource),
                    "gender": str(resource.get("gender", "")),
                    "birthdate": str(resource.get("birthDate", "")),
                    "missing": ", ".join(patient_missing(resource)),
                }
            )

    def _open(self, run: Run, origin: str, face: FhirVersion, token: str, patient_id: str) -> None:
        record, patient = self._fhir(origin, face, token, "GET", f"Patient/{patient_id}")
        run.calls.append(record)
        if record.status != 200 or not isinstance(patient, dict):
            raise Failed(f"The patient could not be read (status {record.status}).")
        run.patient = {
            "id": patient_id,
            "name": patient_line(patient),
            "gender": patient.get("gender", ""),
            "birthdate": patient.get("birthDate", ""),
            "missing": patient_missing(patient),
        }
        sort = "_sort:desc=date" if face is FhirVersion.DSTU2 else "_sort=-date"
        medication = "MedicationOrder" if face is FhirVersion.DSTU2 else "MedicationRequest"
        queries = (
            (
                "Latest vital signs",
                "Observation",
                f"Observation?patient={patient_id}&category=vital-signs&{sort}&_count=50",
            ),
            ("Conditions", "Condition", f"Condition?patient={patient_id}&_count=20"),
            ("Allergies", "AllergyIntolerance", f"AllergyIntolerance?patient={patient_id}"),
            ("Medications", medication, f"{medication}?patient={patient_id}&_count=20"),
            (
                "Latest encounter",
                "Encounter",
                f"Encounter?patient={patient_id}&_sort:desc=date&_count=1",
            ),
            ("Coverage", "Coverage", f"Coverage?patient={patient_id}"),
        )
        for heading, resource_type, path in queries:
            record, bundle = self._fhir(origin, face, token, "GET", path)
            resources = _entries(bundle, resource_type) if record.status == 200 else []
            missing: list[str] = []
            for resource in resources:
                missing.extend(
                    m for m in _missing(resource_type, resource, face) if m not in missing
                )
            if resource_type == "Observation":
                lines = _latest_vitals(resources)
            else:
                lines = [_line(resource_type, r, face) for r in resources]
            if record.status == 200 and not resources:
                lines = ["None recorded."]
            elif record.status != 200:
                lines = [
                    f"Not available: the call was answered {record.status or 'with no answer'}."
                ]
            run.panels.append(Panel(heading, lines, record, missing))

    def _fhir(
        self,
        origin: str,
        face: FhirVersion,
        token: str,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> tuple[FhirCall, Any]:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        url = f"{origin}/api/fhir/{face}/{path}"
        return self._http.call(method, url, body=body, headers=headers)


def _missing(resource_type: str, resource: dict[str, Any], face: FhirVersion) -> list[str]:
    if resource_type == "Observation":
        return _observation_missing(resource)
    if resource_type == "Condition":
        return _condition_missing(resource)
    if resource_type == "Encounter":
        return _encounter_missing(resource)
    if resource_type == "AllergyIntolerance":
        return _allergy_missing(resource, face)
    if resource_type in ("MedicationOrder", "MedicationRequest"):
        return _medication_missing(resource, face)
    if resource_type == "Coverage":
        return _coverage_missing(resource, face)
    return []


def _entries(bundle: Any, resource_type: str) -> list[dict[str, Any]]:
    entries = bundle.get("entry") if isinstance(bundle, dict) else None
    if not isinstance(entries, list):
        return []
    found = [_get(e, "resource") for e in entries]
    return [r for r in found if isinstance(r, dict) and r.get("resourceType") == resource_type]


def _token_url(statement: dict[str, Any]) -> str | None:
    for rest in statement.get("rest") or []:
        for extension in _get(rest, "security", "extension") or []:
            if isinstance(extension, dict) and extension.get("url") == OAUTH_URIS_EXTENSION:
                for inner in extension.get("extension") or []:
                    if isinstance(inner, dict) and inner.get("url") == "token":
                        value = inner.get("valueUri")
                        return value if isinstance(value, str) else None
    return None


def _origin_of(url: str) -> str:
    from shared.web.origin import origin_key

    parts = urlsplit(url)
    return origin_key(f"{parts.scheme}://{parts.netloc}")


def _patient_list(form: dict[str, str]) -> list[tuple[str, str]]:
    """The list the operator built, carried in the form (ids and names, never a secret)."""
    found: list[tuple[str, str]] = []
    for index in range(MAX_LIST):
        entry = form.get(f"list-{index}", "")
        patient_id, _, name = entry.partition("|")
        if _FHIR_ID.fullmatch(patient_id) and patient_id not in dict(found):
            found.append((patient_id, name[:200]))
    return found
