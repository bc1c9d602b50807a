"""The checker's findings: one ``Check`` per requirement, and the ``Report`` that holds them.

Evidence is short and concrete ("HTTP 404", "total missing in 2 of 6 searches") and never holds
a secret: the report knows the client secret and the access token and blanks them out of every
line it stores or prints, whatever a server echoed back.

The outcome has four values, one exit code each: ``pass`` (every required check passed),
``fail`` (a required check failed), ``incomplete`` (no required check failed, but some could not
be judged: a skip is never a pass) and ``unreachable``. A skip says why; a skip for lack of data
also says what the patient would need to have (``needs``), and a requirement that does not apply
to the server as the run was told to treat it (``--no-auth``) is a skip that does not count.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

Level = Literal["required", "recommended"]
Result = Literal["pass", "fail", "skip"]
Outcome = Literal["pass", "fail", "incomplete", "unreachable"]

REQUIRED: Final = "required"
RECOMMENDED: Final = "recommended"
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_UNUSABLE: Final = 2
EXIT_INCOMPLETE: Final = 3
EXIT_CODES: Final[dict[Outcome, int]] = {
    "pass": EXIT_OK,
    "fail": EXIT_FAILED,
    "unreachable": EXIT_UNUSABLE,
    "incomplete": EXIT_INCOMPLETE,
}

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
    # A skip for lack of data: what the patient would need for the check to run ("coverage").
    needs: str | None = None
    # False for a skip because the requirement does not apply as the run was told (--no-auth).
    applies: bool = True
    # Checks run once per patient (--patients N, N > 1): how many patients gave each result.
    per_patient: dict[Result, int] | None = None

    @property
    def unverified(self) -> bool:
        """A required check that applies and could not be judged."""
        return self.level == REQUIRED and self.result == "skip" and self.applies

    def to_json(self) -> dict[str, Any]:
        """The check as a JSON object."""
        document: dict[str, Any] = {
            "id": self.id,
            "requirement": self.requirement,
            "level": self.level,
            "result": self.result,
            "evidence": self.evidence,
        }
        if self.per_patient is not None:
            document["per_patient"] = dict(self.per_patient)
        return document


@dataclass(frozen=True)
class Chosen:
    """A patient the run checks, and why that one."""

    id: str
    why: str


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
    # The patients checked (ids only, never names), with why each was chosen.
    patients: list[Chosen] = field(default_factory=list)
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
        text = " ".join(self.redact(text).split())
        if len(text) > _MAX_EVIDENCE:
            text = text[: _MAX_EVIDENCE - 1] + "…"
        return text

    def redact(self, text: str) -> str:
        """``text`` without any hidden value, otherwise as it is."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def plan(self, specs: Iterable[Spec]) -> None:
        """Announce the checks of the next step; each must then be recorded or skipped."""
        for spec in specs:
            self._pending[spec.id] = spec
            self._order.setdefault(spec.id, len(self._order))

    def record(
        self,
        check_id: str,
        result: Result,
        evidence: str,
        *,
        needs: str | None = None,
        applies: bool = True,
    ) -> None:
        """Judge a planned check."""
        spec = self._pending.pop(check_id, None)
        if spec is None:
            raise KeyError(f"check {check_id!r} was not planned or is already recorded")
        check = Check(spec.id, spec.requirement, spec.level, result, self.scrub(evidence))
        check.needs, check.applies = needs, applies
        self._add(check)

    def _add(self, check: Check) -> None:
        self._order.setdefault(check.id, len(self._order))
        self.checks.append(check)
        # Checks are listed in plan order, whatever order a step judged them in.
        self.checks.sort(key=lambda c: self._order[c.id])

    def passed(self, check_id: str, evidence: str) -> None:
        """The requirement is met."""
        self.record(check_id, "pass", evidence)

    def failed(self, check_id: str, evidence: str) -> None:
        """The requirement is not met."""
        self.record(check_id, "fail", evidence)

    def skipped(self, check_id: str, evidence: str, *, needs: str | None = None) -> None:
        """The requirement could not be judged (``needs``: what the patient lacks for it)."""
        self.record(check_id, "skip", evidence, needs=needs)

    def not_applicable(self, check_id: str, evidence: str) -> None:
        """The requirement does not apply to this server as the run was told (--no-auth)."""
        self.record(check_id, "skip", evidence, applies=False)

    def verdict(self, check_id: str, ok: bool, evidence: str) -> None:
        """Pass or fail on ``ok``."""
        self.record(check_id, "pass" if ok else "fail", evidence)

    def pending(self) -> list[str]:
        """Planned checks not judged yet, in plan order."""
        return list(self._pending)

    def is_pending(self, check_id: str) -> bool:
        """Whether ``check_id`` is planned and not judged yet."""
        return check_id in self._pending

    def skip_pending(self, reason: str, *, applies: bool = True) -> None:
        """Skip every planned check not judged yet, with ``reason``."""
        for check_id in self.pending():
            self.record(check_id, "skip", reason, applies=applies)

    # -- several patients ----------------------------------------------------------------------

    def for_patient(self) -> Report:
        """An empty report for one patient's checks, hiding what this one hides."""
        child = Report(self.base_url, self.fhir_version, self.mode)
        child._secrets = list(self._secrets)
        return child

    def merge(self, runs: list[tuple[str, Report]]) -> None:
        """Add the checks of several patients' reports, one check per id with a tally."""
        order: dict[str, int] = {}
        for _, run in runs:
            for check in run.checks:
                order.setdefault(check.id, len(order))
        for check_id in sorted(order, key=order.__getitem__):
            found = [(pid, c) for pid, run in runs for c in run.checks if c.id == check_id]
            merged = _merged(found, len(runs))
            merged.evidence = self.scrub(merged.evidence)
            self._add(merged)

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

    def unverified(self) -> list[Check]:
        """Required checks that apply but could not be judged, in order."""
        return [c for c in self.checks if c.unverified]

    @property
    def outcome(self) -> Outcome:
        """unreachable, else fail, else incomplete (a required check unjudged), else pass."""
        if self.unreachable is not None:
            return "unreachable"
        if self.failed_ids(REQUIRED):
            return "fail"
        return "incomplete" if self.unverified() else "pass"

    @property
    def exit_code(self) -> int:
        """0 pass, 1 a required check failed, 2 unreachable, 3 incomplete."""
        return EXIT_CODES[self.outcome]

    @property
    def ok(self) -> bool:
        """Every required check passed: none failed and none was left unjudged."""
        return self.outcome == "pass"

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
            "required_unverified": len(self.unverified()),
            "not_applicable": sum(not c.applies for c in self.checks),
            "outcome": self.outcome,
            "verdict": self.verdict_text(),
            "unverified": [
                {"id": c.id, "why": c.evidence, "needs": c.needs} for c in self.unverified()
            ],
            "ok": self.ok,
            "exit_code": self.exit_code,
        }

    def verdict_text(self) -> str:
        """The verdict in words, e.g. ``INCOMPLETE: 3 required check(s) could not be judged``."""
        outcome = self.outcome
        if outcome == "unreachable":
            return f"UNREACHABLE: {self.scrub(self.unreachable or '')}"
        if outcome == "fail":
            return f"FAIL: {len(self.failed_ids(REQUIRED))} required check(s) failed"
        if outcome == "incomplete":
            return (
                f"INCOMPLETE: {len(self.unverified())} required check(s) could not be judged, "
                "so this is not a pass"
            )
        return "PASS: every required check passed"

    def summary_line(self) -> str:
        """One line: the counts and the verdict."""
        s = self.summary()
        skipped = f"{s['skipped']} skipped"
        details = []
        if s["required_unverified"]:
            details.append(f"{s['required_unverified']} required")
        if s["not_applicable"]:
            details.append(f"{s['not_applicable']} not applicable")
        if details:
            skipped += f" ({', '.join(details)})"
        return (
            f"{s['passed']} passed, {s['failed']} failed ({s['required_failed']} required, "
            f"{s['recommended_failed']} recommended), {skipped}. {s['verdict']}"
        )

    def unverified_lines(self) -> list[str]:
        """What each unjudged required check lacked, and what would let it run."""
        lines = []
        for check in self.unverified():
            line = f"  {check.id}: {check.evidence}"
            if check.needs:
                line += f"; it runs on a patient with {check.needs} (--patient-id)"
            lines.append(line)
        return lines

    def to_json(self) -> dict[str, Any]:
        """The whole report as a JSON document."""
        return {
            "base_url": self.base_url,
            "fhir_version": self.fhir_version,
            "mode": self.mode,
            "unreachable": self.scrub(self.unreachable) if self.unreachable else None,
            "notes": [self.scrub(note) for note in self.notes],
            "patients": [{"id": p.id, "why": self.redact(p.why)} for p in self.patients],
            "checks": [check.to_json() for check in self.checks],
            "summary": self.summary(),
        }

    def to_text(self) -> str:
        """A plain-text table (check, level, result, requirement, evidence) and the summary."""
        version = self.fhir_version or "unknown"
        lines = [f"Patients app conformance: {self.base_url} (fhirVersion {version})"]
        lines += [f"Note: {self.scrub(note)}" for note in self.notes]
        lines += [f"Patient checked: Patient/{p.id}: {self.redact(p.why)}" for p in self.patients]
        if self.unreachable is None:
            lines += ["", *self._table()]
        if self.outcome == "incomplete":
            lines += ["", "Required checks that could not be judged:", *self.unverified_lines()]
        # The verdict stays the last line: it is the one people read.
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


_RESULTS: Final[tuple[Result, ...]] = ("pass", "fail", "skip")


def _merged(found: list[tuple[str, Check]], patients: int) -> Check:
    """One check from its results for several patients: failed for one is failed, passed for
    one (none failing) is passed, else skipped; the evidence says for how many."""
    tally: dict[Result, int] = {r: sum(c.result == r for _, c in found) for r in _RESULTS}
    first = found[0][1]
    failures = [(pid, c) for pid, c in found if c.result == "fail"]
    skips = [(pid, c) for pid, c in found if c.result == "skip"]
    if failures:
        result: Result = "fail"
    elif tally["pass"]:
        result = "pass"
    else:
        result = "skip"
    evidence = f"{tally['pass']} of {patients} patients passed"
    if failures:
        pid, check = failures[0]
        evidence += f"; {len(failures)} failed (Patient/{pid}: {check.evidence})"
    if skips:
        pid, check = skips[0]
        evidence += f"; {len(skips)} skipped (Patient/{pid}: {check.evidence})"
    merged = Check(first.id, first.requirement, first.level, result, evidence)
    if result == "skip":
        merged.needs = first.needs
        merged.applies = all(c.applies for _, c in found)
    merged.per_patient = tally
    return merged
