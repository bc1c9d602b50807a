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
_SORTED: Final = "observation.sorted"
_LATEST: Final = "encounter.latest"


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
            found.append(Spec(_SORTED, "vital signs come newest first", REQUIRED))
        if query.prefix == "encounter":
            found.append(
                Spec(_LATEST, "the date sort with _count=1 answers the latest Encounter", REQUIRED)
            )
    return found


def _blocked(ctx: Context) -> str | None:
    return ctx.needs_fhir() or (None if ctx.patient else "the Patient read failed")


def _run(ctx: Context) -> None:
    report, face = ctx.report, ctx.face
    assert face is not None and ctx.patient_id is not None
    chart = queries(face)
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": q.url(ctx.patient_id)}} for q in chart],
    }
    try:
        answer = ctx.client.post_json("", bundle, face.mime_type)
        document = answer.json() if answer.status == 200 else None
    except CallFailed as failure:
        report.failed(_BATCH, failure.evidence)
        report.skip_pending("the batch failed")
        return
    if document is None:
        report.failed(_BATCH, f"{answer.describe()}, {answer.took}")
        report.skip_pending("the batch failed")
        return
    kind, bundle_type = document.get("resourceType"), document.get("type")
    answered = as_list(document.get("entry"))
    if kind != "Bundle" or bundle_type != "batch-response":
        report.failed(_BATCH, f"HTTP 200 with {kind} {bundle_type or ''}, not a batch-response")
        report.skip_pending("the batch failed")
        return
    if len(answered) != len(chart):
        report.failed(_BATCH, f"{entries(len(answered))} for {len(chart)} searches")
        report.skip_pending("the batch failed")
        return
    report.passed(_BATCH, f"batch-response with {entries(len(answered))}, {answer.took}")
    for query, entry in zip(chart, answered, strict=True):
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
            _latest(ctx, resources)


def _entry(ctx: Context, query: Query, entry: Any) -> list[Resource] | None:
    check = f"{query.prefix}.entry"
    status = str(dig(entry, "response", "status") or "no response.status")
    if status.split(" ")[0] != "200":
        detail = dig(entry, "resource", "issue", 0, "diagnostics")
        shown = f"entry status {status}" + (f" ({str(detail)[:120]})" if detail else "")
        ctx.report.failed(check, shown)
        return None
    try:
        bundle = searchset_of(dig(entry, "resource"), f"entry status {status}")
    except CallFailed as failure:
        ctx.report.failed(check, failure.evidence)
        return None
    resources = matches(bundle, query.resource_type)
    if query.count is not None and len(resources) > query.count:
        ctx.report.failed(check, f"{entries(len(resources))} for _count={query.count}")
    else:
        ctx.report.passed(check, f"status {status}, {entries(len(resources))}")
    return resources


def _ref(resource: Resource) -> str:
    return f"{resource.get('resourceType')}/{resource.get('id')}"


def _judge(ctx: Context, query: Query, rule: Rule, resources: list[Resource]) -> None:
    check = f"{query.prefix}.{rule.suffix}"
    if not resources:
        ctx.report.skipped(check, "no entries")
        return
    about = [r for r in resources if rule.applies(r)]
    if not about:
        ctx.report.skipped(check, rule.none_apply)
        return
    problems = [(r, p) for r in about if (p := rule.problem(r)) is not None]
    if problems:
        resource, problem = problems[0]
        ctx.report.failed(check, f"{problem} in {_ref(resource)} ({len(problems)} of {len(about)})")
    else:
        ctx.report.passed(check, f"{len(about)} of {entries(len(about))}")


def _sorted(ctx: Context, observations: list[Resource]) -> None:
    if len(observations) < 2:
        ctx.report.skipped(_SORTED, f"{entries(len(observations))}: order not observable")
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
    if not encounters:
        report.skipped(_LATEST, "no entries")
        return
    returned = encounters[0]
    ctx.location_reference = _reference(dig(returned, "location", 0, "location", "reference"))
    when = instant(dig(returned, "period", "start"))
    if when is None:
        report.skipped(_LATEST, f"no readable period.start in {_ref(returned)}: order unknown")
        return
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

_LOCATION: Final = Spec(
    "location.read",
    "GET Location/[id] from the Encounter's location reference answers 200 with that Location",
    RECOMMENDED,
)


def _location_blocked(ctx: Context) -> str | None:
    if ctx.location_reference is None:
        return ctx.needs_fhir() or "no Encounter with a Location reference"
    return None


def _location_run(ctx: Context) -> None:
    reference = ctx.location_reference
    assert reference is not None
    location_id = reference.split("/", 1)[1]
    try:
        answer = ctx.client.get(f"Location/{quote(location_id, safe='')}")
        document = answer.json() if answer.status == 200 else None
    except CallFailed as failure:
        ctx.report.failed(_LOCATION.id, f"{reference}: {failure.evidence}")
        return
    if document is None:
        ctx.report.failed(_LOCATION.id, f"{reference}: {answer.describe()}")
        return
    found = f"{document.get('resourceType')}/{document.get('id')}"
    ctx.report.verdict(
        _LOCATION.id,
        found == reference,
        f"HTTP 200 {found}, {answer.took}" if found == reference else f"answered {found}",
    )


BATCH_STEP: Final = Step("chart", _specs, _run, _blocked)
LOCATION_STEP: Final = Step("location", lambda _: [_LOCATION], _location_run, _location_blocked)
