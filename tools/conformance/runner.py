"""``run_checks``: every step in order, each one's checks judged or skipped with a reason.

The steps about one patient run once per patient checked (``--patients N``); with more than
one, each check's results are merged into one, with how many patients passed it.
"""

from __future__ import annotations

from typing import Final

from tools.conformance import auth, chart, discover, metadata, patient
from tools.conformance.client import Client
from tools.conformance.context import DEFAULT_TIMEOUT, Context, Options, Step
from tools.conformance.faces import face_for
from tools.conformance.report import REQUIRED, Chosen, Report, Spec

SERVER_STEPS: Final[tuple[Step, ...]] = (metadata.STEP, auth.STEP, discover.DISCOVER_STEP)
PATIENT_STEPS: Final[tuple[Step, ...]] = (
    patient.READ_STEP,
    patient.SEARCH_STEP,
    chart.BATCH_STEP,
    chart.LOCATION_STEP,
)
STEPS: Final = SERVER_STEPS + PATIENT_STEPS
_LEFT_OVER: Final = "not judged: a check it depends on failed above"
GIVEN: Final = "given with --patient-id"


def run_checks(
    base_url: str,
    *,
    client_id: str | None = None,
    client_secret: str | None = None,
    tenant: str | None = None,
    patient_id: str | None = None,
    patients: int = 1,
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
        patients=patients,
        no_auth=no_auth,
        timeout=timeout,
        verify=verify,
    )
    return run(options)


def run(options: Options) -> Report:
    """``run_checks`` with its options gathered."""
    if options.patients < 1 or (options.patient_id and options.patients != 1):
        raise ValueError("patients must be 1 with a patient_id, and at least 1 without")
    report = Report(base_url=options.base_url)
    report.hide(options.client_secret)
    if options.patient_id:
        report.patients = [Chosen(options.patient_id, GIVEN)]
    client = Client(options.base_url, timeout=options.timeout, verify=options.verify)
    ctx = Context(options, client, report, patient_id=options.patient_id)
    try:
        _run_steps(ctx, SERVER_STEPS)
        if len(ctx.chosen) <= 1:
            _run_steps(ctx, PATIENT_STEPS)
        else:
            runs = []
            for patient_id in ctx.chosen:
                one = ctx.for_patient(patient_id)
                _run_steps(one, PATIENT_STEPS)
                runs.append((patient_id, one.report))
            report.merge(runs)
    finally:
        client.close()
    return report


def _run_steps(ctx: Context, steps: tuple[Step, ...]) -> None:
    report = ctx.report
    for step in steps:
        try:
            specs = step.specs(ctx)
        except Exception as error:  # a checker bug: reported as a finding, never a traceback
            _crashed(report, step, error)
            continue
        report.plan(specs)
        if not report.pending():
            continue
        if _unreachable(report) is None:
            inapplicable = step.inapplicable(ctx)
            if inapplicable is not None:
                report.skip_pending(inapplicable, applies=False)
                continue
        reason = _unreachable(report) or step.blocked(ctx)
        if reason is None:
            try:
                step.run(ctx)
            except Exception as error:  # as above
                _crashed(report, step, error)
        report.skip_pending(reason or _LEFT_OVER)


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
