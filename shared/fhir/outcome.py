"""OperationOutcome documents and error responses, valid in DSTU2, STU3 and R4 alike."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from shared.fhir import json_mime_type
from shared.fhir.versions import FhirVersion
from shared.http import Response, json_response

SEVERITIES: Final = frozenset({"fatal", "error", "warning", "information"})

# IssueType codes of R4 (http://hl7.org/fhir/issue-type). DSTU2 and STU3 have the same list
# without the two codes R4 added.
ISSUE_TYPES: Final = frozenset(
    {
        "invalid",
        "structure",
        "required",
        "value",
        "invariant",
        "security",
        "login",
        "unknown",
        "expired",
        "forbidden",
        "suppressed",
        "processing",
        "not-supported",
        "duplicate",
        "multiple-matches",
        "not-found",
        "deleted",
        "too-long",
        "code-invalid",
        "extension",
        "too-costly",
        "business-rule",
        "conflict",
        "transient",
        "lock-error",
        "no-store",
        "exception",
        "timeout",
        "incomplete",
        "throttled",
        "informational",
    }
)

# R4-only codes and their parent in the R4 hierarchy, which older releases do have. HL7 publishes
# no map for them; using the parent keeps the meaning (see docs/conversion/mapping.md §12).
_R4_ONLY_ISSUE_TYPES: Final = {"multiple-matches": "processing", "deleted": "not-found"}
_PRE_R4_FACES: Final = frozenset({FhirVersion.DSTU2, FhirVersion.STU3})


def operation_outcome(
    severity: str, code: str, diagnostics: str, face: str | None = None
) -> dict[str, Any]:
    """An OperationOutcome with one issue, its code valid in ``face`` (R4 when None)."""
    if severity not in SEVERITIES:
        raise ValueError(f"unknown OperationOutcome severity {severity!r}")
    if code not in ISSUE_TYPES:
        raise ValueError(f"unknown OperationOutcome issue type {code!r}")
    if face in _PRE_R4_FACES:
        code = _R4_ONLY_ISSUE_TYPES.get(code, code)
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }


def outcome_response(
    status: int,
    code: str,
    diagnostics: str,
    face: str | None,
    headers: Mapping[str, str] | None = None,
    *,
    severity: str = "error",
) -> Response:
    """An HTTP error carrying an OperationOutcome in the face's version and media type."""
    # diagnostics reach the caller verbatim: request input there would be reflected content,
    # and secrets or upstream URLs would leak.
    return json_response(
        status,
        operation_outcome(severity, code, diagnostics, face),
        content_type=json_mime_type(face),
        headers=headers,
    )
