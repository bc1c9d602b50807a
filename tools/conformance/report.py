"""The checker's findings: one ``Check`` per requirement, and the ``Report`` that holds them.

Evidence is short and concrete ("HTTP 404", "total missing in 2 of 6 searches") and never holds
a secret: the report knows the client secret and the access token and blanks them out of every
line it stores or prints, whatever a server echoed back.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

Level = Literal["required", "recommended"]
Result = Literal["pass", "fail", "skip"]

REQUIRED: Final = "required"
RECOMMENDED: Final = "recommended"
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_UNUSABLE: Final = 2

REDACTED: Final = "[redacted]"
# A value this short would blank ordinary words out of the evidence; no real secret is.
_MIN_SECRET_LENGTH: Final = 4
_MAX_EVIDENCE: Final = 300
_REQUIREMENT_WIDTH: Final = 52


@dataclass(frozen=True)
class Spec:
    """A requirement the checker will judge: its id, its text and how much it matters."""

    id: str
    requirement: str
    level: Level


@dataclass
class Check:
    """One judged requirement."""

    id: str
    requirement: str
    level: Level
    result: Result
    evidence: str

    def to_json(self) -> dict[str, str]:
        """The check as a JSON object."""
        return {
            "id": self.id,
            "requirement": self.requirement,
            "level": self.level,
            "result": self.result,
            "evidence": self.evidence,
        }


@dataclass
class Report:
    """Every check of one run, in order, with what the run learnt about the server."""

    base_url: str
    fhir_version: str | None = None
    # "dstu2", "stu3" or "r4-provider"; None when the metadata named no usable version.
    mode: str | None = None
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Why the base URL could not be reached at all (then nothing was checked): exit code 2.
    unreachable: str | None = None
    _secrets: list[str] = field(default_factory=list, repr=False)
    _pending: dict[str, Spec] = field(default_factory=dict, repr=False)
    _order: dict[str, int] = field(default_factory=dict, repr=False)

    # -- recording -----------------------------------------------------------------------------

    def hide(self, *values: str | None) -> None:
        """Never let these values (a secret, a token) appear in the report."""
        for value in values:
            if value and len(value) >= _MIN_SECRET_LENGTH and value not in self._secrets:
                self._secrets.append(value)
        # Longest first, so a secret containing another is blanked whole.
        self._secrets.sort(key=len, reverse=True)
        for check in self.checks:
            check.evidence = self.scrub(check.evidence)

    def scrub(self, text: str) -> str:
        """``text`` without any hidden value, on one line, cut to a readable length."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        text = " ".join(text.split())
        if len(text) > _MAX_EVIDENCE:
            text = text[: _MAX_EVIDENCE - 1] + "…"
        return text

    def plan(self, specs: Iterable[Spec]) -> None:
        """Announce the checks of the next step; each must then be recorded or skipped."""
        for spec in specs:
            self._pending[spec.id] = spec
            self._order.setdefault(spec.id, len(self._order))

    def record(self, check_id: str, result: Result, evidence: str) -> None:
        """Judge a planned check."""
        spec = self._pending.pop(check_id, None)
        if spec is None:
            raise KeyError(f"check {check_id!r} was not planned or is already recorded")
        self.checks.append(
            Check(spec.id, spec.requirement, spec.level, result, self.scrub(evidence))
        )
        # Checks are listed in plan order, whatever order a step judged them in.
        self.checks.sort(key=lambda check: self._order[check.id])

    def passed(self, check_id: str, evidence: str) -> None:
        """The requirement is met."""
        self.record(check_id, "pass", evidence)

    def failed(self, check_id: str, evidence: str) -> None:
        """The requirement is not met."""
        self.record(check_id, "fail", evidence)

    def skipped(self, check_id: str, evidence: str) -> None:
        """The requirement could not be judged (nothing to judge, or a step it needs failed)."""
        self.record(check_id, "skip", evidence)

    def verdict(self, check_id: str, ok: bool, evidence: str) -> None:
        """Pass or fail on ``ok``."""
        self.record(check_id, "pass" if ok else "fail", evidence)

    def pending(self) -> list[str]:
        """Planned checks not judged yet, in plan order."""
        return list(self._pending)

    def is_pending(self, check_id: str) -> bool:
        """Whether ``check_id`` is planned and not judged yet."""
        return check_id in self._pending

    def skip_pending(self, reason: str) -> None:
        """Skip every planned check not judged yet, with ``reason``."""
        for check_id in self.pending():
            self.skipped(check_id, reason)

    # -- reading -------------------------------------------------------------------------------

    def check(self, check_id: str) -> Check:
        """The check with this id (KeyError when the run has none)."""
        for check in self.checks:
            if check.id == check_id:
                return check
        raise KeyError(check_id)

    def failed_ids(self, level: Level | None = None) -> list[str]:
        """Ids of failed checks (of one level, or all)."""
        return [
            c.id for c in self.checks if c.result == "fail" and (level is None or c.level == level)
        ]

    @property
    def exit_code(self) -> int:
        """2 when the server could not be reached, 1 when a required check failed, else 0."""
        if self.unreachable is not None:
            return EXIT_UNUSABLE
        return EXIT_FAILED if self.failed_ids(REQUIRED) else EXIT_OK

    @property
    def ok(self) -> bool:
        """Every required check passed (skips do not count as failures)."""
        return self.exit_code == EXIT_OK

    def summary(self) -> dict[str, Any]:
        """Counts per result and level, and the verdict."""
        counts = {result: sum(c.result == result for c in self.checks) for result in _RESULTS}
        return {
            "checks": len(self.checks),
            "passed": counts["pass"],
            "failed": counts["fail"],
            "skipped": counts["skip"],
            "required_failed": len(self.failed_ids(REQUIRED)),
            "recommended_failed": len(self.failed_ids(RECOMMENDED)),
            "ok": self.ok,
            "exit_code": self.exit_code,
        }

    def summary_line(self) -> str:
        """One line: the counts and the verdict."""
        s = self.summary()
        if self.unreachable is not None:
            verdict = f"UNREACHABLE: {self.unreachable}"
        elif s["required_failed"]:
            verdict = f"FAIL: {s['required_failed']} required check(s) failed"
        else:
            verdict = "PASS: every required check passed"
        return (
            f"{s['passed']} passed, {s['failed']} failed ({s['required_failed']} required, "
            f"{s['recommended_failed']} recommended), {s['skipped']} skipped. {verdict}"
        )

    def to_json(self) -> dict[str, Any]:
        """The whole report as a JSON document."""
        return {
            "base_url": self.base_url,
            "fhir_version": self.fhir_version,
            "mode": self.mode,
            "unreachable": self.scrub(self.unreachable) if self.unreachable else None,
            "notes": [self.scrub(note) for note in self.notes],
            "checks": [check.to_json() for check in self.checks],
            "summary": self.summary(),
        }

    def to_text(self) -> str:
        """A plain-text table (check, level, result, requirement, evidence) and the summary."""
        version = self.fhir_version or "unknown"
        lines = [f"Patients app conformance: {self.base_url} (fhirVersion {version})"]
        lines += [f"Note: {self.scrub(note)}" for note in self.notes]
        if self.unreachable is None:
            lines += ["", *self._table()]
        lines += ["", self.summary_line()]
        return "\n".join(lines) + "\n"

    def _table(self) -> list[str]:
        header = ("CHECK", "LEVEL", "RESULT", "REQUIREMENT", "EVIDENCE")
        rows = [
            (c.id, c.level, c.result.upper(), c.requirement, self.scrub(c.evidence))
            for c in self.checks
        ]
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
        widths.append(_REQUIREMENT_WIDTH)
        lines = []
        for row in [header, *rows]:
            # Long requirements wrap inside their column; the evidence stays on the first line.
            wrapped = textwrap.wrap(row[3], _REQUIREMENT_WIDTH, break_on_hyphens=False) or [""]
            cells = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=False)]
            first = [*cells, wrapped[0].ljust(_REQUIREMENT_WIDTH), row[4]]
            lines.append("  ".join(first).rstrip())
            indent = " " * (sum(widths[:3]) + 6)
            lines += [f"{indent}{more}" for more in wrapped[1:]]
        return lines


_RESULTS: Final = ("pass", "fail", "skip")
