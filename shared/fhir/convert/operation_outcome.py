"""OperationOutcome between R4, STU3 and DSTU2 (§12 of docs/conversion/mapping.md). Decisions:
docs/conversion/operation_outcome.md.
"""

from __future__ import annotations

from typing import Any

from shared.fhir.convert.common import (
    Resource,
    add_xver,
    items,
    prune_empty_twins,
    take_all_xver,
    take_xver,
)

# R4-only IssueType codes → their parent in R4's hierarchy, which STU3/DSTU2 have. HL7's
# R4→R3 ConceptMap has no map for them (proxy decision, §12).
_R4_ONLY_CODES = {"deleted": "not-found", "multiple-matches": "processing"}
_CODE_PATH = "OperationOutcome.issue.code"
_EXPRESSION_PATH = "OperationOutcome.issue.expression"


def _issues(outcome: Resource) -> list[dict[str, Any]]:
    return items(outcome.get("issue"))


def _expression_note(expressions: list[str]) -> str:
    return "FHIRPath: " + ", ".join(expressions)


def r4_to_stu3(outcome: Resource) -> Resource:
    """R4 OperationOutcome → STU3: R4-only issue codes become their parent code."""
    for issue in _issues(outcome):
        code = issue.get("code")
        if code in _R4_ONLY_CODES:
            add_xver(issue, "r4", _CODE_PATH, "valueCode", code)
            issue["code"] = _R4_ONLY_CODES[code]
    return outcome


def stu3_to_r4(outcome: Resource) -> Resource:
    """STU3 OperationOutcome → R4: carried R4 issue codes restored."""
    for issue in _issues(outcome):
        code = take_xver(issue, "r4", _CODE_PATH)
        if code is not None:
            issue["code"] = code
    return outcome


def stu3_to_dstu2(outcome: Resource) -> Resource:
    """STU3 OperationOutcome → DSTU2: ``expression`` is appended to ``diagnostics``."""
    for issue in _issues(outcome):
        issue.pop("_expression", None)
        expressions = [e for e in issue.pop("expression", None) or [] if isinstance(e, str)]
        if not expressions:
            continue
        note = _expression_note(expressions)
        diagnostics = issue.get("diagnostics")
        issue["diagnostics"] = f"{diagnostics}; {note}" if diagnostics else note
        for expression in expressions:
            add_xver(issue, "stu3", _EXPRESSION_PATH, "valueString", expression)
    return outcome


def dstu2_to_stu3(outcome: Resource) -> Resource:
    """DSTU2 OperationOutcome → STU3: carried expressions restored, diagnostics unchanged back."""
    prune_empty_twins(outcome)  # stripped fhir_comments leave empty "_x" objects
    for issue in _issues(outcome):
        expressions = take_all_xver(issue, "stu3", _EXPRESSION_PATH)
        if not expressions:
            continue
        issue["expression"] = expressions
        note, diagnostics = _expression_note(expressions), issue.get("diagnostics")
        if diagnostics == note:
            issue.pop("diagnostics")
        elif isinstance(diagnostics, str) and diagnostics.endswith("; " + note):
            issue["diagnostics"] = diagnostics.removesuffix("; " + note)
    return outcome
