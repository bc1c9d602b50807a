"""Steps 5 and 6: the app's batch of chart queries for the patient, and the Encounter's Location.

The batch holds the six by-patient searches of the interface specs, in the face's spelling.
Every entry must answer 200 with a searchset; then each resource's fields are judged: the
app's minimum fields as required checks, the extra fields it reads as recommended ones. A
type with no entries for the patient is a skip ("no entries"), never a pass.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, urlencode

from tools.conformance.bundles import as_list, dig, entries, matches, searchset, searchset_of
from tools.conformance.client import CallFailed
from tools.conformance.context import Context, Step
from tools.conformance.faces import Face
from tools.conformance.fields import Resource, Rule, effective, instant, rules
from tools.conformance.report import RECOMMENDED, REQUIRED, Spec

# How many of the patient's Encounters are listed to tell which one is the latest.
ENCOUNTER_LISTING: Final = 100

# What a patient needs in its chart for a search's field checks to have something to judge.
SECTION_NEEDS: Final = {
    "observation": "vital signs",
    "condition": "conditions",
    "encounter": "an encounter",
    "allergy": "allergies",
    "medication": "medications",
    "coverage": "coverage",
}
SORTED_NEEDS: Final = "two or more vital signs"
LATEST_NEEDS: Final = "an encounter with a period.start"
LOCATION_NEEDS: Final = "an encounter at a Location"


@dataclass(frozen=True)
class Query:
    """One search of the app's chart batch."""

    prefix: str
    resource_type: str
    params: tuple[tuple[str, str], ...]
    count: int | None = None

    def url(self, patient_id: str) -> str:
        """The entry's relative URL, modifiers left readable as the app writes them."""
        return f"{self.resource_type}?" + urlencode(
            [("patient", patient_id), *self.params], safe=":"
        )

    @property
    def shown(self) -> str:
        """The URL with ``<id>`` for the patient, for requirement texts."""
        return self.url("<id>").replace("%3Cid%3E", "<id>")


def queries(face: Face) -> list[Query]:
    """The chart batch, as the face's interface spec writes it."""
    return [
        Query("observation", "Observation", (("category", "vital-signs"), face.observation_sort)),
        Query("condition", "Condition", (("_count", "10"),), 10),
        Query("encounter", "Encounter", (face.encounter_sort, ("_count", "1")), 1),
        Query("allergy", "AllergyIntolerance", ()),
        Query("medication", face.medication_type, (("_count", "10"),), 10),
        Query("coverage", "Coverage", ()),
    ]


# -- the batch step -----------------------------------------------------------------------------

_BATCH: Final = "batch.response"
SORTED: Final = Spec("observation.sorted", "vital signs come newest first", REQUIRED)
LATEST: Final = Spec(
    "encounter.latest", "the date sort with _count=1 answers the latest Encounter", REQUIRED
)
_SORTED: Final = SORTED.id
_LATEST: Final = LATEST.id


def _specs(ctx: Context) -> list[Spec]:
    face = ctx.planned_face
    found = [
        Spec(
            _BATCH,
            "POST [base] with a batch Bundle of the app's 6 chart searches answers a "
            "batch-response with one entry per search",
            REQUIRED,
        )
    ]
    for query in queries(face):
        limit = f", at most {entries(query.count)}" if query.count else ""
        found.append(
            Spec(
                f"{query.prefix}.entry",
                f"{query.shown}: 200 with a searchset{limit}",
                REQUIRED,
            )
        )
        found += [
            Spec(f"{query.prefix}.{r.suffix}", r.requirement, r.level)
            for r in rules(face, query.prefix)
        ]
        if query.prefix == "observation":
            found.append(SORTED)
        if query.prefix == "encounter":
            found.append(LATEST)
    return found


def _blocked(ctx: Context) -> str | None:
    return ctx.needs_fhir() or (None if ctx.patient else "the Patient read failed")


def read_batch(ctx: Context, patient_id: str) -> tuple[list[Any], str]:
    """The app's chart batch for ``patient_id``: its entries and timing (else ``CallFailed``)."""
    face = ctx.face
    assert face is not None
    chart = queries(face)
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": q.url(patient_id)}} for q in chart],
    }
    answer = ctx.client.post_json("", bundle, face.mime_type)
    if answer.status != 200:
        raise CallFailed(f"{answer.describe()}, {answer.took}")
    document = answer.json()
    kind, bundle_type = document.get("resourceType"), document.get("type")
    answered = as_list(document.get("entry"))
    if kind != "Bundle" or bundle_type != "batch-response":
        raise CallFailed(f"HTTP 200 with {kind} {bundle_type or ''}, not a batch-response")
    if len(answered) != len(chart):
        raise CallFailed(f"{entries(len(answered))} for {len(chart)} searches")
    return answered, answer.took


def entry_matches(query: Query, entry: Any) -> tuple[list[Resource], str]:
    """One batch entry's matched resources and status (``CallFailed`` unless a 200 searchset)."""
    status = str(dig(entry, "response", "status") or "no response.status")
    if status.split(" ")[0] != "200":
        detail = dig(entry, "resource", "issue", 0, "diagnostics")
        raise CallFailed(f"entry status {status}" + (f" ({str(detail)[:120]})" if detail else ""))
    bundle = searchset_of(dig(entry, "resource"), f"entry status {status}")
    return matches(bundle, query.resource_type), status


def rule_gap(query: Query, rule: Rule, resources: list[Resource]) -> tuple[str, str] | None:
    """Why ``rule`` has nothing to judge in ``resources`` and what would give it some, or None."""
    if not resources:
        return "no entries", SECTION_NEEDS[query.prefix]
    if not any(rule.applies(r) for r in resources):
        return rule.none_apply, rule.needs
    return None


def sorted_gap(observations: list[Resource]) -> str | None:
    """Why the order of vital signs cannot be judged, or None."""
    if len(observations) < 2:
        return f"{entries(len(observations))}: order not observable"
    return None


def latest_gap(encounters: list[Resource]) -> str | None:
    """Why the latest-Encounter check cannot be judged, or None."""
    if not encounters:
        return "no entries"
    if instant(dig(encounters[0], "period", "start")) is None:
        return f"no readable period.start in {_ref(encounters[0])}: order unknown"
    return None


def location_of(encounters: list[Resource]) -> str | None:
    """``Location/<id>`` of the latest Encounter's first location, or None."""
    if not encounters:
        return None
    return _reference(dig(encounters[0], "location", 0, "location", "reference"))


def _run(ctx: Context) -> None:
    report, face = ctx.report, ctx.face
    assert face is not None and ctx.patient_id is not None
    try:
        answered, took = read_batch(ctx, ctx.patient_id)
    except CallFailed as failure:
        report.failed(_BATCH, failure.evidence)
        report.skip_pending("the batch failed")
        return
    report.passed(_BATCH, f"batch-response with {entries(len(answered))}, {took}")
    for query, entry in zip(queries(face), answered, strict=True):
        resources = _entry(ctx, query, entry)
        if resources is None:
            for check_id in ctx.report.pending():
                if check_id.startswith(f"{query.prefix}."):
                    report.skipped(check_id, f"the {query.resource_type} search failed")
            continue
        for rule in rules(face, query.prefix):
            _judge(ctx, query, rule, resources)
        if query.prefix == "observation":
            _sorted(ctx, resources)
        if query.prefix == "encounter":
            ctx.encounters_read = True
            _latest(ctx, resources)


def _entry(ctx: Context, query: Query, entry: Any) -> list[Resource] | None:
    check = f"{query.prefix}.entry"
    try:
        resources, status = entry_matches(query, entry)
    except CallFailed as failure:
        ctx.report.failed(check, failure.evidence)
        return None
    if query.count is not None and len(resources) > query.count:
        ctx.report.failed(check, f"{entries(len(resources))} for _count={query.count}")
    else:
        ctx.report.passed(check, f"status {status}, {entries(len(resources))}")
    return resources


def _ref(resource: Resource) -> str:
    return f"{resource.get('resourceType')}/{resource.get('id')}"


def _judge(ctx: Context, query: Query, rule: Rule, resources: list[Resource]) -> None:
    check = f"{query.prefix}.{rule.suffix}"
    gap = rule_gap(query, rule, resources)
    if gap is not None:
        ctx.report.skipped(check, gap[0], needs=gap[1])
        return
    about = [r for r in resources if rule.applies(r)]
    problems = [(r, p) for r in about if (p := rule.problem(r)) is not None]
    if problems:
        resource, problem = problems[0]
        ctx.report.failed(check, f"{problem} in {_ref(resource)} ({len(problems)} of {len(about)})")
    else:
        ctx.report.passed(check, f"{len(about)} of {entries(len(about))}")


def _sorted(ctx: Context, observations: list[Resource]) -> None:
    gap = sorted_gap(observations)
    if gap is not None:
        ctx.report.skipped(_SORTED, gap, needs=SORTED_NEEDS)
        return
    dated = [(o, instant(effective(o))) for o in observations]
    undated = [o for o, when in dated if when is None]
    if undated:
        ctx.report.failed(_SORTED, f"no readable effective[x] in {_ref(undated[0])}")
        return
    for (earlier, first), (later, second) in itertools.pairwise(dated):
        assert first is not None and second is not None
        if second > first:
            ctx.report.failed(
                _SORTED,
                f"{_ref(earlier)} ({effective(earlier)}) comes before the newer "
                f"{_ref(later)} ({effective(later)})",
            )
            return
    ctx.report.passed(_SORTED, f"{len(observations)} vital signs, newest first")


def _latest(ctx: Context, encounters: list[Resource]) -> None:
    report = ctx.report
    ctx.location_reference = location_of(encounters)
    gap = latest_gap(encounters)
    if gap is not None:
        needs = SECTION_NEEDS["encounter"] if not encounters else LATEST_NEEDS
        report.skipped(_LATEST, gap, needs=needs)
        return
    returned = encounters[0]
    when = instant(dig(returned, "period", "start"))
    assert when is not None  # latest_gap saw to it
    assert ctx.patient_id is not None
    path = "Encounter?" + urlencode(
        [("patient", ctx.patient_id), ("_count", str(ENCOUNTER_LISTING))]
    )
    try:
        answer = ctx.client.get(path)
        if answer.status != 200:
            report.failed(_LATEST, f"listing the patient's Encounters: {answer.describe()}")
            return
        bundle = searchset(answer)
    except CallFailed as failure:
        report.failed(_LATEST, f"listing the patient's Encounters: {failure.evidence}")
        return
    listed = matches(bundle, "Encounter")
    newer = [e for e in listed if (start := instant(dig(e, "period", "start"))) and start > when]
    scope = f"of {len(listed)}" + (
        f" listed (total={bundle.get('total')})" if bundle.get("total") != len(listed) else ""
    )
    if newer:
        report.failed(
            _LATEST,
            f"{_ref(returned)} starts before {_ref(newer[0])} ({len(newer)} newer {scope})",
        )
    else:
        report.passed(_LATEST, f"{_ref(returned)} is the latest {scope}")


def _reference(value: Any) -> str | None:
    """``Location/<id>`` from a relative or absolute reference, or None."""
    if not isinstance(value, str):
        return None
    parts = [p for p in value.split("?")[0].split("/") if p]
    if len(parts) >= 2 and parts[-2] == "Location":
        return f"Location/{parts[-1]}"
    if len(parts) >= 4 and parts[-4] == "Location" and parts[-2] == "_history":
        return f"Location/{parts[-3]}"
    return None


# -- the Location step --------------------------------------------------------------------------

LOCATION: Final = Spec(
    "location.read",
    "GET Location/[id] from the Encounter's location reference answers 200 with that Location",
    RECOMMENDED,
)


def _location_blocked(ctx: Context) -> str | None:
    if ctx.location_reference is None and not ctx.encounters_read:
        return ctx.needs_fhir() or "no Encounter was read (see the chart checks)"
    return None


def _location_run(ctx: Context) -> None:
    reference = ctx.location_reference
    if reference is None:
        ctx.report.skipped(
            LOCATION.id, "no Encounter with a Location reference", needs=LOCATION_NEEDS
        )
        return
    location_id = reference.split("/", 1)[1]
    try:
        answer = ctx.client.get(f"Location/{quote(location_id, safe='')}")
        document = answer.json() if answer.status == 200 else None
    except CallFailed as failure:
        ctx.report.failed(LOCATION.id, f"{reference}: {failure.evidence}")
        return
    if document is None:
        ctx.report.failed(LOCATION.id, f"{reference}: {answer.describe()}")
        return
    found = f"{document.get('resourceType')}/{document.get('id')}"
    ctx.report.verdict(
        LOCATION.id,
        found == reference,
        f"HTTP 200 {found}, {answer.took}" if found == reference else f"answered {found}",
    )


BATCH_STEP: Final = Step("chart", _specs, _run, _blocked)
LOCATION_STEP: Final = Step("location", lambda _: [LOCATION], _location_run, _location_blocked)
