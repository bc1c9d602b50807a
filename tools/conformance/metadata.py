"""Step 1: ``GET [base]/metadata`` without a token, and what the app reads in it."""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import urlsplit

from tools.conformance.client import CallFailed, is_loopback
from tools.conformance.context import Context, Step
from tools.conformance.faces import OAUTH_URIS, face_for
from tools.conformance.report import RECOMMENDED, REQUIRED, Spec

RECOMMENDED_TYPES: Final = (
    "Observation",
    "Condition",
    "Encounter",
    "AllergyIntolerance",
    "MedicationOrder/MedicationRequest",
    "Coverage",
    "Location",
)
R4_NOTE: Final = (
    "R4 provider mode: the server speaks FHIR R4, which the Patients app cannot read; the app "
    "needs EHR Bridge's dstu2 or stu3 face in front of it. The checks use R4's names for what "
    "EHR Bridge sends and reads."
)
_NO_AUTH: Final = "--no-auth: not required of an open server"

SPECS: Final = [
    Spec(
        "metadata.reachable",
        "GET [base]/metadata without a token answers 200 with a JSON object",
        REQUIRED,
    ),
    Spec(
        "metadata.https",
        "the base URL uses HTTPS (plain HTTP only on loopback)",
        RECOMMENDED,
    ),
    Spec(
        "metadata.resource_type",
        "the statement is a Conformance (DSTU2) or CapabilityStatement (STU3, R4)",
        RECOMMENDED,
    ),
    Spec(
        "metadata.fhir_version",
        "fhirVersion names DSTU2 (1.0.x), STU3 (3.0.x) or R4 (4.0.x)",
        REQUIRED,
    ),
    Spec(
        "metadata.app_version",
        "fhirVersion is one the Patients app reads (DSTU2 or STU3)",
        RECOMMENDED,
    ),
    Spec("metadata.rest_mode", "rest.mode is server", REQUIRED),
    Spec(
        "metadata.interactions",
        "rest.interaction or the resources' interactions are declared",
        REQUIRED,
    ),
    Spec("metadata.patient", "rest.resource lists Patient (the app needs it)", REQUIRED),
    Spec(
        "metadata.resources",
        "rest.resource lists the other types the app reads: " + ", ".join(RECOMMENDED_TYPES),
        RECOMMENDED,
    ),
    Spec(
        "metadata.batch",
        "batch is declared (the app loads a chart with one batch Bundle)",
        REQUIRED,
    ),
    Spec("metadata.security_service", "rest.security.service is coded OAuth", REQUIRED),
    Spec(
        "metadata.oauth_uris",
        "rest.security has the SMART oauth-uris extension with a token URL",
        REQUIRED,
    ),
    Spec(
        "metadata.token_url_https",
        "the token URL uses HTTPS (plain HTTP only on loopback)",
        RECOMMENDED,
    ),
]


def _run(ctx: Context) -> None:
    report = ctx.report
    _https(ctx)
    try:
        answer = ctx.client.get("metadata", auth=False)
    except CallFailed as failure:
        if failure.connection:
            report.unreachable = f"{ctx.client.url('metadata')}: {failure.evidence}"
        report.failed("metadata.reachable", failure.evidence)
        report.skip_pending("no metadata")
        return
    if answer.status != 200:
        report.failed("metadata.reachable", f"{answer.describe()}, {answer.took}")
        report.skip_pending("no metadata")
        return
    try:
        statement = answer.json()
    except CallFailed as failure:
        report.failed("metadata.reachable", failure.evidence)
        report.skip_pending("no metadata")
        return
    ctx.statement = statement
    kind = statement.get("resourceType")
    report.passed("metadata.reachable", f"HTTP 200, {kind or 'no resourceType'}, {answer.took}")
    _version(ctx, statement)
    rest = _server_rest(statement)
    _rest(ctx, rest)
    _security(ctx, rest)


def _https(ctx: Context) -> None:
    base = ctx.options.base_url
    scheme = urlsplit(base).scheme
    if scheme == "https":
        ctx.report.passed("metadata.https", "https")
    elif is_loopback(base):
        ctx.report.passed("metadata.https", "http on loopback (local testing)")
    else:
        ctx.report.failed("metadata.https", "plain http: the access token would travel unencrypted")


def _version(ctx: Context, statement: dict[str, Any]) -> None:
    report = ctx.report
    version = statement.get("fhirVersion")
    kind = statement.get("resourceType")
    face = face_for(version)
    report.fhir_version = version if isinstance(version, str) else None
    if face is None:
        shown = repr(version) if version is not None else "missing"
        report.failed("metadata.fhir_version", f"fhirVersion {shown}")
        report.skipped("metadata.app_version", "no usable fhirVersion")
        known = kind in ("Conformance", "CapabilityStatement")
        report.verdict("metadata.resource_type", known, f"resourceType {kind!r}")
        return
    ctx.face = face
    ctx.client.accept = face.mime_type
    report.mode = face.mode
    report.passed("metadata.fhir_version", f"fhirVersion {version}: {face.label}")
    if face.app_reads:
        report.passed("metadata.app_version", f"{face.label}: the app's {face.label} code path")
    else:
        report.notes.append(R4_NOTE)
        report.failed(
            "metadata.app_version",
            "R4: put EHR Bridge's dstu2 or stu3 face in front for the app (R4 provider mode)",
        )
    if kind == face.statement_type:
        report.passed("metadata.resource_type", f"resourceType {kind}")
    else:
        report.failed(
            "metadata.resource_type",
            f"resourceType {kind!r}, expected {face.statement_type} for {face.label}",
        )


def _server_rest(statement: dict[str, Any]) -> dict[str, Any] | None:
    rests = [r for r in _list(statement.get("rest")) if isinstance(r, dict)]
    for rest in rests:
        if rest.get("mode") == "server":
            return rest
    return rests[0] if rests else None


def _rest(ctx: Context, rest: dict[str, Any] | None) -> None:
    report = ctx.report
    if rest is None:
        report.failed("metadata.rest_mode", "no rest entry")
        for check_id in ("metadata.interactions", "metadata.patient", "metadata.batch"):
            report.failed(check_id, "no rest entry")
        report.failed("metadata.resources", "no rest entry")
        return
    mode = rest.get("mode")
    report.verdict("metadata.rest_mode", mode == "server", f"rest.mode {mode!r}")
    resources = {str(r.get("type")): r for r in _list(rest.get("resource")) if isinstance(r, dict)}
    system = _codes(rest.get("interaction"))
    per_type = {t: _codes(r.get("interaction")) for t, r in resources.items()}
    declared = [t for t, codes in per_type.items() if codes]
    if system or declared:
        shown = f"rest.interaction: {', '.join(system) or 'none'}"
        if "Patient" in per_type:
            shown += f"; Patient: {', '.join(per_type['Patient']) or 'none'}"
        report.passed("metadata.interactions", shown)
    else:
        report.failed("metadata.interactions", "no rest.interaction and no resource interaction")
    if "Patient" in resources:
        report.passed("metadata.patient", f"Patient listed ({len(resources)} types)")
    else:
        report.failed("metadata.patient", f"Patient not among {len(resources)} listed types")
    medication = ctx.face.medication_type if ctx.face else None
    missing = []
    for wanted in RECOMMENDED_TYPES:
        # MedicationOrder (DSTU2) or MedicationRequest: either spelling until the version is known.
        names = ([medication] if medication else wanted.split("/")) if "/" in wanted else [wanted]
        if not any(name in resources for name in names):
            missing.append(medication or wanted)
    report.verdict(
        "metadata.resources",
        not missing,
        f"missing: {', '.join(missing)}" if missing else f"all {len(RECOMMENDED_TYPES)} listed",
    )
    _batch(ctx, rest, system)


def _batch(ctx: Context, rest: dict[str, Any], system: list[str]) -> None:
    # DSTU2 has no batch interaction code: it declares batch as rest.transactionMode.
    mode = rest.get("transactionMode")
    by_mode = ctx.face is None or ctx.face.key == "dstu2"
    if "batch" in system:
        ctx.report.passed("metadata.batch", "rest.interaction batch")
    elif by_mode and mode in ("batch", "both"):
        ctx.report.passed("metadata.batch", f"rest.transactionMode {mode}")
    else:
        where = "rest.interaction" + (" or rest.transactionMode" if by_mode else "")
        shown = f" (transactionMode {mode!r})" if mode is not None else ""
        ctx.report.failed("metadata.batch", f"no batch in {where}{shown}")


def _security(ctx: Context, rest: dict[str, Any] | None) -> None:
    report = ctx.report
    security = rest.get("security") if rest else None
    security = security if isinstance(security, dict) else {}
    open_server = ctx.options.no_auth

    def judge(check_id: str, ok: bool, evidence: str) -> None:
        if ok or not open_server:
            report.verdict(check_id, ok, evidence)
        else:
            report.not_applicable(check_id, f"{_NO_AUTH} ({evidence})")

    codings = [
        c
        for s in _list(security.get("service"))
        if isinstance(s, dict)
        for c in _list(s.get("coding"))
        if isinstance(c, dict)
    ]
    oauth = [c for c in codings if str(c.get("code", "")).lower() == "oauth"]
    if oauth:
        judge("metadata.security_service", True, f"OAuth in {oauth[0].get('system', 'no system')}")
    else:
        codes = ", ".join(str(c.get("code")) for c in codings) or "no coded service"
        judge("metadata.security_service", False, f"rest.security.service: {codes}")
    token_url, problem = _token_url(security)
    if token_url is None:
        judge("metadata.oauth_uris", False, problem)
        report.skipped("metadata.token_url_https", "no token URL")
        return
    ctx.token_url = token_url
    judge("metadata.oauth_uris", True, f"token URL {token_url}")
    scheme = urlsplit(token_url).scheme
    if scheme == "https":
        report.passed("metadata.token_url_https", "https")
    elif is_loopback(token_url):
        report.passed("metadata.token_url_https", "http on loopback (local testing)")
    else:
        report.failed("metadata.token_url_https", f"{scheme} on a non-loopback host")


def _token_url(security: dict[str, Any]) -> tuple[str | None, str]:
    """The oauth-uris token URL, or None and why not."""
    extensions = [
        e
        for e in _list(security.get("extension"))
        if isinstance(e, dict) and e.get("url") == OAUTH_URIS
    ]
    if not extensions:
        return None, "no oauth-uris extension in rest.security"
    for extension in extensions:
        for sub in _list(extension.get("extension")):
            if isinstance(sub, dict) and sub.get("url") == "token":
                value = sub.get("valueUri")
                split = urlsplit(value) if isinstance(value, str) else None
                if split is not None and split.scheme in ("http", "https") and split.netloc:
                    return value, ""
                return None, f"oauth-uris token is not an absolute http(s) URL: {value!r}"
    return None, "oauth-uris extension has no token sub-extension"


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _codes(interactions: Any) -> list[str]:
    return [str(i["code"]) for i in _list(interactions) if isinstance(i, dict) and i.get("code")]


STEP: Final = Step("metadata", lambda _: list(SPECS), _run)
