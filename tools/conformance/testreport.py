"""The run as a FHIR R4 ``TestReport`` (``--report``), so a partner can hand the result on.

Each check is a ``test`` named by its id, with one ``assert`` whose ``result`` is the check's and
whose ``message`` is its evidence; the server checked is the one participant. R4 has no
"incomplete" result: a run whose required checks could not all be judged is ``pending`` ("one
or more test operations is pending execution completion"), never ``pass``. A recommended check
that fails is a ``warning``, since by definition it does not fail the run. The report holds what
the run printed and nothing more: no secret, no token, no patient name, birth date or MRN.
"""

from __future__ import annotations

import html
import uuid
from datetime import UTC, datetime
from typing import Any, Final

from tools.conformance.client import USER_AGENT
from tools.conformance.report import RECOMMENDED, Check, Outcome, Report

SCRIPT: Final = "urn:ehr-bridge:conformance:patients-app"
_URI: Final = "urn:ietf:rfc:3986"
_RESULT: Final[dict[Outcome, str]] = {
    "pass": "pass",
    "fail": "fail",
    "incomplete": "pending",
    "unreachable": "fail",
}
_XHTML: Final = "http://www.w3.org/1999/xhtml"


def as_test_report(report: Report, *, issued: datetime | None = None) -> dict[str, Any]:
    """The run as an R4 TestReport (JSON), secrets blanked out wherever they would appear."""
    when = (issued or datetime.now(UTC)).astimezone(UTC)
    checks = report.checks
    passed = sum(c.result == "pass" for c in checks)
    mode = report.mode or "unknown"
    document: dict[str, Any] = {
        "resourceType": "TestReport",
        "text": {"status": "generated", "div": _narrative(report)},
        "identifier": {"system": _URI, "value": f"urn:uuid:{uuid.uuid4()}"},
        "name": f"Patients app conformance ({mode})",
        "status": "completed",
        "testScript": {
            "identifier": {"system": _URI, "value": f"{SCRIPT}:{mode}"},
            "display": f"EHR Bridge Patients-app conformance checks, {mode} (docs/conformance.md)",
        },
        "result": _RESULT[report.outcome],
        "score": round(100 * passed / len(checks), 1) if checks else 0,
        "tester": USER_AGENT,
        "issued": when.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "participant": [
            {
                "type": "server",
                "uri": report.base_url,
                "display": f"FHIR server (fhirVersion {report.fhir_version or 'unknown'})",
            }
        ],
    }
    if checks:
        document["test"] = [_test(check) for check in checks]
    redacted = _redact(document, report)
    assert isinstance(redacted, dict)
    return redacted


def _test(check: Check) -> dict[str, Any]:
    result: str = check.result
    if result == "fail" and check.level == RECOMMENDED:
        result = "warning"
    return {
        "name": check.id,
        "description": f"{check.level}: {check.requirement}",
        "action": [{"assert": {"result": result, "message": check.evidence}}],
    }


def _narrative(report: Report) -> str:
    """The verdict, the patients checked and the unjudged required checks, as XHTML."""
    lines = [report.summary_line()]
    lines += [f"Patient checked: Patient/{p.id}: {p.why}" for p in report.patients]
    lines += [line.strip() for line in report.unverified_lines()]
    # Redacted before escaping: escaping could change a secret's characters past recognition.
    paragraphs = "".join(f"<p>{html.escape(report.redact(line))}</p>" for line in lines)
    return f'<div xmlns="{_XHTML}">{paragraphs}</div>'


def _redact(value: Any, report: Report) -> Any:
    """``value`` with every string passed through the report's redaction."""
    if isinstance(value, str):
        return report.redact(value)
    if isinstance(value, dict):
        return {key: _redact(item, report) for key, item in value.items()}
    if isinstance(value, list):
        return [_redact(item, report) for item in value]
    return value
