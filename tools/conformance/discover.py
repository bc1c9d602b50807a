"""Step 3: find patients by search and choose the ones whose charts let the most checks run.

Without ``--patient-id`` the checker searches one page of patients (``POST Patient/_search``
with ``_count=CANDIDATES``, ``GET`` as a fallback) and reads each candidate's chart with the
app's own batch, one request per candidate. Every check that would have nothing to judge for a
candidate (no coverage, a single vital sign, no MRN to search by) is a gap; the patient checked
is the one with the fewest required gaps, then the fewest gaps, then the first in search order.
Reading stops once enough candidates have no gap at all, since no later one can rank above
them. The first patient found is checked when the charts cannot be read (the batch fails):
the chart checks then say why.

Evidence and reasons name patients by id only, never by name, birth date or MRN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from tools.conformance.bundles import matches, searchset
from tools.conformance.chart import (
    LATEST,
    LATEST_NEEDS,
    LOCATION,
    LOCATION_NEEDS,
    SECTION_NEEDS,
    SORTED,
    SORTED_NEEDS,
    entry_matches,
    latest_gap,
    location_of,
    queries,
    read_batch,
    rule_gap,
    sorted_gap,
)
from tools.conformance.client import Answer, CallFailed
from tools.conformance.context import Context, Searched, Step
from tools.conformance.faces import Face
from tools.conformance.fields import Resource, rules
from tools.conformance.patient import searches, terms_of
from tools.conformance.report import REQUIRED, Chosen, Level, Spec

# One page of candidates: enough to find a full chart on a real server, few enough that reading
# each candidate's chart (one batch each) stays quick.
CANDIDATES: Final = 20

DISCOVER: Final = Spec(
    "patient.discover",
    f"POST Patient/_search with _count={CANDIDATES} finds patients to check (GET as a fallback)",
    REQUIRED,
)

# The chart sections a reason names as present, each with the needs that make it absent.
_SECTIONS: Final = (
    ("vital signs", {SECTION_NEEDS["observation"], SORTED_NEEDS}),
    ("conditions", {SECTION_NEEDS["condition"]}),
    ("an encounter at a Location", {SECTION_NEEDS["encounter"], LATEST_NEEDS, LOCATION_NEEDS}),
    ("allergies with reactions", {SECTION_NEEDS["allergy"], "allergies with reactions"}),
    ("medications", {SECTION_NEEDS["medication"]}),
    ("coverage", {SECTION_NEEDS["coverage"]}),
)


@dataclass(frozen=True)
class Gap:
    """A check a patient's data would leave with nothing to judge, and what it would need."""

    check_id: str
    level: Level
    needs: str


@dataclass(frozen=True)
class Candidate:
    """A patient the search found, with the gaps its chart leaves."""

    id: str
    position: int
    gaps: tuple[Gap, ...]

    @property
    def rank(self) -> tuple[int, int, int]:
        """Sort key, best first: fewest required gaps, fewest gaps, first in search order."""
        required = sum(gap.level == REQUIRED for gap in self.gaps)
        return required, len(self.gaps), self.position

    @property
    def lacks(self) -> list[str]:
        """What the patient lacks for some check to run, once each, in check order."""
        return list(dict.fromkeys(gap.needs for gap in self.gaps))

    @property
    def has(self) -> list[str]:
        """The chart sections it has in full."""
        lacking = set(self.lacks)
        return [name for name, needs in _SECTIONS if not needs & lacking]


def gaps(face: Face, patient_id: str, patient: Resource, answered: list[Any]) -> tuple[Gap, ...]:
    """The checks this patient's Patient resource and chart batch leave nothing to judge."""
    found: list[Gap] = []
    terms = terms_of(patient, patient_id, face)
    for search in searches(face):
        if search.fields(terms) is None:
            found.append(Gap(search.spec.id, search.spec.level, search.needs))
    for query, entry in zip(queries(face), answered, strict=True):
        try:
            resources, _ = entry_matches(query, entry)
        except CallFailed:
            # A failed entry has nothing to judge either; ranking treats it as an empty section.
            resources = []
        for rule in rules(face, query.prefix):
            gap = rule_gap(query, rule, resources)
            if gap is not None:
                found.append(Gap(f"{query.prefix}.{rule.suffix}", rule.level, gap[1]))
        if query.prefix == "observation" and sorted_gap(resources) is not None:
            found.append(Gap(SORTED.id, SORTED.level, SORTED_NEEDS))
        if query.prefix == "encounter":
            if latest_gap(resources) is not None:
                needs = LATEST_NEEDS if resources else SECTION_NEEDS["encounter"]
                found.append(Gap(LATEST.id, LATEST.level, needs))
            if location_of(resources) is None:
                found.append(Gap(LOCATION.id, LOCATION.level, LOCATION_NEEDS))
    return tuple(found)


def choose(candidates: list[Candidate], wanted: int) -> list[Candidate]:
    """The ``wanted`` best candidates, best first (ties: the first in search order)."""
    return sorted(candidates, key=lambda c: c.rank)[:wanted]


def _specs(ctx: Context) -> list[Spec]:
    return [] if ctx.options.patient_id else [DISCOVER]


def _run(ctx: Context) -> None:
    report = ctx.report
    fields = [("_count", str(CANDIDATES))]
    post_problem = ""
    try:
        answer = ctx.client.post_form("Patient/_search", fields)
        if answer.status == 200:
            _discovered(ctx, answer, "POST Patient/_search")
            return
        post_problem = answer.describe()
    except CallFailed as failure:
        post_problem = failure.evidence
    path = f"Patient?_count={CANDIDATES}"
    try:
        answer = ctx.client.get(path)
    except CallFailed as failure:
        report.failed(DISCOVER.id, f"POST: {post_problem}; GET: {failure.evidence}")
        return
    if answer.status != 200:
        report.failed(DISCOVER.id, f"POST: {post_problem}; GET: {answer.describe()}")
        return
    _discovered(ctx, answer, f"GET {path} (POST Patient/_search: {post_problem})")


def _discovered(ctx: Context, answer: Answer, how: str) -> None:
    report = ctx.report
    try:
        bundle = searchset(answer)
    except CallFailed as failure:
        report.failed(DISCOVER.id, f"{how}: {failure.evidence}")
        return
    patients = matches(bundle, "Patient")
    ctx.searches.append(
        Searched(f"discovery (_count={CANDIDATES})", CANDIDATES, len(patients), bundle.get("total"))
    )
    found = [p for p in patients if isinstance(p.get("id"), str) and p.get("id")]
    if not found:
        report.failed(DISCOVER.id, f"{how}: no Patient in the answer (give --patient-id)")
        return
    # A server ignoring _count still gets its charts read for one page only.
    found = found[:CANDIDATES]
    wanted = ctx.options.patients
    candidates, unread = _read_charts(ctx, found, wanted)
    where = f"of {len(found)} found by {how}"
    if candidates:
        best = choose(candidates, wanted)
        read = f"charts read: {len(candidates)} of the {len(found)} patients found by {how}"
        if unread:
            read += f"; then a chart could not be read ({unread})"
        report.patients = [_chosen(c, i, best, candidates, read) for i, c in enumerate(best)]
    else:
        first = str(found[0]["id"])
        why = f"the first patient {where}: no chart could be read to compare ({unread})"
        report.patients = [Chosen(first, why)]
    ctx.chosen = [chosen.id for chosen in report.patients]
    if len(ctx.chosen) < wanted:
        report.notes.append(
            f"--patients {wanted}: {len(ctx.chosen)} patient(s) could be checked {where}"
        )
    ctx.patient_id = ctx.chosen[0]
    shown = ", ".join(f"Patient/{pid}" for pid in ctx.chosen)
    report.passed(DISCOVER.id, f"{shown} via {how} ({len(found)} found)")


def _read_charts(ctx: Context, found: list[Resource], wanted: int) -> tuple[list[Candidate], str]:
    """Candidates for every patient whose chart was read, and why reading stopped early ("")."""
    assert ctx.face is not None
    candidates: list[Candidate] = []
    for position, patient in enumerate(found):
        patient_id = str(patient["id"])
        try:
            answered, _ = read_batch(ctx, patient_id)
        except CallFailed as failure:
            # The chart step reports the batch; one failure is enough to stop comparing.
            return candidates, f"Patient/{patient_id}: {failure.evidence}"
        candidate = Candidate(patient_id, position, gaps(ctx.face, patient_id, patient, answered))
        candidates.append(candidate)
        if sum(not c.gaps for c in candidates) >= wanted:
            break
    return candidates, ""


def _chosen(
    candidate: Candidate,
    index: int,
    best: list[Candidate],
    candidates: list[Candidate],
    read: str,
) -> Chosen:
    """Why ``candidate`` is checked: what its chart has and lacks, among how many."""
    has = ", ".join(candidate.has) or "none of the chart sections"
    lacks = []
    for needs in candidate.lacks:
        # Lacking what no candidate has says something about the server's data, not the choice.
        nobody = all(needs in c.lacks for c in candidates)
        lacks.append(f"{needs} (no patient read has it)" if nobody else needs)
    place = "the fullest chart" if index == 0 else f"the {_ordinal(index + 1)} fullest chart"
    lacking = f"lacks {', '.join(lacks)}" if lacks else "every check has data to judge"
    return Chosen(candidate.id, f"{place}: has {has}; {lacking}; {read}")


def _ordinal(number: int) -> str:
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(number % 10 if number not in (11, 12, 13) else 0, "th")
    return f"{number}{suffix}"


DISCOVER_STEP: Final = Step("patient.discover", _specs, _run, lambda ctx: ctx.needs_fhir())
