"""``run_checks``: every step in order, each one's checks judged or skipped with a reason."""

from __future__ import annotations

from typing import Final

from tools.conformance import auth, chart, metadata, patient
from tools.conformance.client import Client
from tools.conformance.context import DEFAULT_TIMEOUT, Context, Options, Step
from tools.conformance.faces import face_for
from tools.conformance.report import REQUIRED, Report, Spec

STEPS: Final[tuple[Step, ...]] = (
    metadata.STEP,
    auth.STEP,
    patient.DISCOVER_STEP,
    patient.READ_STEP,
    patient.SEARCH_STEP,
    chart.BATCH_STEP,
    chart.LOCATION_STEP,
)
_LEFT_OVER: Final = "not judged: a check it depends on failed above"


def run_checks(
    base_url: str,
    *,
    client_id: str | None = None,
    client_secret: str | None = None,
    tenant: str | None = None,
    patient_id: str | None = None,
    no_auth: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    verify: bool = True,
) -> Report:
    """Replay the Patients app's calls against ``base_url`` and judge every answer."""
    options = Options(
        base_url=base_url.rstrip("/"),
        client_id=client_id,
        client_secret=client_secret,
        tenant=tenant,
        patient_id=patient_id,
        no_auth=no_auth,
        timeout=timeout,
        verify=verify,
    )
    return run(options)


def run(options: Options) -> Report:
    """``run_checks`` with its options gathered."""
    report = Report(base_url=options.base_url)
    report.hide(options.client_secret)
    client = Client(options.base_url, timeout=options.timeout, verify=options.verify)
    ctx = Context(options, client, report, patient_id=options.patient_id)
    try:
        for step in STEPS:
            try:
                specs = step.specs(ctx)
            except Exception as error:  # a checker bug: reported as a finding, never a traceback
                _crashed(report, step, error)
                continue
            report.plan(specs)
            if not report.pending():
                continue
            reason = _unreachable(report) or step.blocked(ctx)
            if reason is None:
                try:
                    step.run(ctx)
                except Exception as error:  # as above
                    _crashed(report, step, error)
            report.skip_pending(reason or _LEFT_OVER)
    finally:
        client.close()
    return report


def catalogue(fhir_version: str) -> list[Spec]:
    """Every check a run against a server of ``fhir_version`` (e.g. "3.0.2") can report."""
    face = face_for(fhir_version)
    if face is None:
        raise ValueError(f"not a DSTU2, STU3 or R4 version: {fhir_version!r}")
    options = Options(base_url="https://fhir.invalid")
    client = Client(options.base_url, timeout=DEFAULT_TIMEOUT, verify=True)
    try:
        ctx = Context(options, client, Report(options.base_url), face=face)
        return [spec for step in STEPS for spec in step.specs(ctx)]
    finally:
        client.close()


def _unreachable(report: Report) -> str | None:
    return "the server could not be reached" if report.unreachable is not None else None


def _crashed(report: Report, step: Step, error: Exception) -> None:
    """Fail the step's first unjudged check (or a check naming the step) with the error."""
    evidence = f"checker stopped in step {step.name}: {type(error).__name__}: {error}"
    pending = report.pending()
    if not pending:
        check_id = f"checker.{step.name}"
        report.plan([Spec(check_id, f"the checker completes step {step.name}", REQUIRED)])
        pending = [check_id]
    report.failed(pending[0], evidence)
