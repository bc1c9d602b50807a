"""Steps 3 and 4: read the patient, and search for it every way the app does.

Evidence names parameters and resource ids, never a patient's name, birth date or MRN.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

from tools.conformance.bundles import as_list, entries, matches, searchset, strings
from tools.conformance.client import CallFailed
from tools.conformance.context import Context, Searched, Step
from tools.conformance.faces import MR_SYSTEM_OLD, MR_SYSTEM_R4, Face
from tools.conformance.report import RECOMMENDED, REQUIRED, Level, Spec

# The _count sent with every search: the app pages its search results.
SEARCH_COUNT: Final = 10
GENDERS: Final = frozenset({"male", "female", "other", "unknown"})

# -- read ---------------------------------------------------------------------------------------


def _read_specs(ctx: Context) -> list[Spec]:
    face = ctx.planned_face
    family = "an array of strings" if face.key == "dstu2" else "a string"
    return [
        Spec("patient.read", "GET Patient/[id] answers 200 with that Patient", REQUIRED),
        Spec("patient.read.family", f"name.family is present ({family})", REQUIRED),
        Spec("patient.read.given", "name.given is present", REQUIRED),
        Spec("patient.read.gender", "gender is present (male, female, other, unknown)", REQUIRED),
        Spec("patient.read.birth_date", "birthDate is present", REQUIRED),
        Spec(
            "patient.read.mrn",
            "an identifier with type coding code MR (the MRN) and a value",
            REQUIRED,
        ),
        Spec("patient.read.name_use", "name.use is present", RECOMMENDED),
        Spec("patient.read.name_prefix", "name.prefix is present", RECOMMENDED),
        Spec(
            "patient.read.practitioner",
            f"{face.practitioner_field} is present with display",
            RECOMMENDED,
        ),
    ]


def _read_blocked(ctx: Context) -> str | None:
    reason = ctx.needs_fhir()
    if reason is None and ctx.patient_id is None:
        return "no patient to check (give --patient-id)"
    return reason


def _read_run(ctx: Context) -> None:
    report, face = ctx.report, ctx.face
    assert face is not None and ctx.patient_id is not None  # _read_blocked saw to it
    where = f"Patient/{ctx.patient_id}"
    try:
        answer = ctx.client.get(f"Patient/{quote(ctx.patient_id, safe='')}")
        patient = answer.json() if answer.status == 200 else None
    except CallFailed as failure:
        report.failed("patient.read", failure.evidence)
        report.skip_pending("the Patient read failed")
        return
    if patient is None:
        report.failed("patient.read", f"{answer.describe()}, {answer.took}")
        report.skip_pending("the Patient read failed")
        return
    kind, got = patient.get("resourceType"), patient.get("id")
    if kind != "Patient" or got != ctx.patient_id:
        report.failed("patient.read", f"answered {kind}/{got}, not {where}")
        report.skip_pending("the Patient read failed")
        return
    ctx.patient = patient
    report.passed("patient.read", f"HTTP 200 {where}, {answer.took}")
    name = preferred_name(patient)
    family = family_name(name, face)
    report.verdict("patient.read.family", family[0] is not None, family[1] or where)
    given = strings(name.get("given"))
    report.verdict(
        "patient.read.given",
        bool(given),
        f"{len(given)} given name(s) in {where}" if given else f"name.given missing in {where}",
    )
    gender = patient.get("gender")
    if gender in GENDERS:
        report.passed("patient.read.gender", f"gender present in {where}")
    elif gender is None:
        report.failed("patient.read.gender", f"Patient.gender missing in {where}")
    else:
        report.failed("patient.read.gender", f"Patient.gender is not a FHIR gender in {where}")
    birth = patient.get("birthDate")
    report.verdict(
        "patient.read.birth_date",
        isinstance(birth, str) and bool(birth),
        f"birthDate present in {where}"
        if isinstance(birth, str) and birth
        else f"Patient.birthDate missing in {where}",
    )
    _mrn(ctx, patient, where)
    use = name.get("use")
    report.verdict(
        "patient.read.name_use",
        isinstance(use, str) and bool(use),
        f"name.use {use}" if use else f"name.use missing in {where}",
    )
    prefix = strings(name.get("prefix"))
    report.verdict(
        "patient.read.name_prefix",
        bool(prefix),
        "name.prefix present" if prefix else f"name.prefix missing in {where}",
    )
    _practitioner(ctx, patient, where)


def preferred_name(patient: dict[str, Any]) -> dict[str, Any]:
    """The official name, else the first one (an empty dict when there is none)."""
    names = [n for n in as_list(patient.get("name")) if isinstance(n, dict)]
    for name in names:
        if name.get("use") == "official":
            return name
    return names[0] if names else {}


def family_name(name: dict[str, Any], face: Face) -> tuple[str | None, str]:
    """The (first) family name in the face's shape, or None and what is wrong."""
    family = name.get("family")
    if family is None:
        return None, "name.family missing"
    if face.key == "dstu2":
        if isinstance(family, str):
            return None, "name.family is a string; DSTU2 makes it an array"
        parts = strings(family)
        return (parts[0], "name.family present") if parts else (None, "name.family is empty")
    if isinstance(family, list):
        return None, f"name.family is an array; {face.label} makes it a string"
    if isinstance(family, str) and family:
        return family, "name.family present"
    return None, "name.family is empty"


def mrn_identifier(patient: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The first identifier typed MR with a value, and its MR coding."""
    for identifier in as_list(patient.get("identifier")):
        if not isinstance(identifier, dict) or not identifier.get("value"):
            continue
        kind = identifier.get("type")
        for coding in as_list(kind.get("coding") if isinstance(kind, dict) else None):
            if isinstance(coding, dict) and coding.get("code") == "MR":
                return identifier, coding
    return None


def _mrn(ctx: Context, patient: dict[str, Any], where: str) -> None:
    found = mrn_identifier(patient)
    if found is None:
        untyped = any(
            isinstance(i, dict) and i.get("value") and not i.get("type")
            for i in as_list(patient.get("identifier"))
        )
        hint = " (identifiers without a type)" if untyped else ""
        ctx.report.failed("patient.read.mrn", f"no identifier typed MR in {where}{hint}")
        return
    system = found[1].get("system")
    if system == MR_SYSTEM_OLD:
        spelled = f"{system} (DSTU2/STU3 spelling)"
    elif system == MR_SYSTEM_R4:
        spelled = f"{system} (R4 spelling)"
    else:
        spelled = f"system {system!r}, not the v2-0203 table"
    ctx.report.passed("patient.read.mrn", f"identifier type MR, {spelled}")


def _practitioner(ctx: Context, patient: dict[str, Any], where: str) -> None:
    assert ctx.face is not None
    field = ctx.face.practitioner_field
    references = [r for r in as_list(patient.get(field)) if isinstance(r, dict)]
    if not references:
        ctx.report.failed("patient.read.practitioner", f"{field} missing in {where}")
    elif all(isinstance(r.get("display"), str) and r["display"] for r in references):
        ctx.report.passed("patient.read.practitioner", f"{len(references)} with display")
    else:
        ctx.report.failed("patient.read.practitioner", f"{field} without display in {where}")


# -- searches -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Terms:
    """What the searches look the patient up by (from the Patient read)."""

    id: str
    family: str | None
    given: str | None
    birth_date: str | None
    gender: str | None
    mrn: str | None

    @property
    def family_start(self) -> str | None:
        """The first letters of the family name (a "starts with" search)."""
        return self.family[:3] if self.family else None

    @property
    def family_middle(self) -> str | None:
        """Letters from inside the family name (a "contains" search), when it is long enough."""
        if not self.family or len(self.family) < 3:
            return None
        return self.family[1:4] if len(self.family) > 4 else self.family[1:-1]


Fields = Callable[[Terms], list[tuple[str, str]] | None]


@dataclass(frozen=True)
class Search:
    """One way the app searches for a patient."""

    spec: Spec
    fields: Fields
    # Why the search cannot be made when ``fields`` answers None.
    lacking: str
    # What a patient needs for the search to be made ("an MRN").
    needs: str


def _search(
    check: str,
    shown: str,
    fields: Fields,
    lacking: str,
    needs: str,
    level: Level = REQUIRED,
) -> Search:
    requirement = f"POST Patient/_search {shown} answers a searchset holding the patient"
    return Search(Spec(f"patient.search.{check}", requirement, level), fields, lacking, needs)


def _both(*pairs: tuple[str, str | None]) -> list[tuple[str, str]] | None:
    if any(value is None for _, value in pairs):
        return None
    return [(name, str(value)) for name, value in pairs]


def searches(face: Face) -> list[Search]:
    """The app's Patient searches, in the face's spelling."""
    given_family = _search(
        "given_family",
        "given=<given>&family=<family>",
        lambda t: _both(("given", t.given), ("family", t.family)),
        "no given and family name to search by",
        "a given and a family name",
    )
    birthdate = _search(
        "birthdate",
        "birthdate=<birthDate>&family=<family>",
        lambda t: _both(("birthdate", t.birth_date), ("family", t.family)),
        "no birthDate and family name to search by",
        "a birth date and a family name",
    )
    identifier = _search(
        "identifier",
        "identifier=<MRN>",
        lambda t: _both(("identifier", t.mrn)),
        "no MRN to search by",
        "an MRN",
    )
    by_id = _search("id", "_id=<id>", lambda t: [("_id", t.id)], "", "")
    gender = _search(
        "gender",
        "gender=<gender>&family=<family>",
        lambda t: _both(("gender", t.gender), ("family", t.family)),
        "no gender and family name to search by",
        "a gender and a family name",
    )
    too_short = "family name shorter than 3 letters"
    long_enough = "a family name of 3 letters or more"
    if face.key == "dstu2":
        return [
            given_family,
            _search(
                "family_contains",
                "family:contains=<inner part of the family name>",
                lambda t: _both(("family:contains", t.family_middle)),
                too_short,
                long_enough,
            ),
            _search(
                "name",
                "name=<family>",
                lambda t: _both(("name", t.family)),
                "no family name to search by",
                "a family name",
            ),
            birthdate,
            identifier,
            by_id,
        ]
    contains = "family:contains" if face.key == "r4" else "family"
    expectation = "" if face.key == "r4" else " (the app expects contains)"
    return [
        given_family,
        _search(
            "family",
            "family=<first letters of the family name>",
            lambda t: _both(("family", t.family_start)),
            "no family name to search by",
            "a family name",
        ),
        _search(
            "family_contains",
            f"{contains}=<inner part of the family name>{expectation}",
            lambda t: _both((contains, t.family_middle)),
            too_short,
            long_enough,
            RECOMMENDED,
        ),
        birthdate,
        gender,
        identifier,
        by_id,
    ]


_TOTAL: Final = Spec(
    "patient.search.total", "every Patient search Bundle carries total (an integer)", REQUIRED
)
_COUNT: Final = Spec(
    "patient.search.count", "every Patient search honours _count (entries ≤ _count)", REQUIRED
)


def _search_specs(ctx: Context) -> list[Spec]:
    return [s.spec for s in searches(ctx.planned_face)] + [_TOTAL, _COUNT]


def _search_blocked(ctx: Context) -> str | None:
    return ctx.needs_fhir() or (None if ctx.patient else "the Patient read failed")


def terms_of(patient: dict[str, Any], patient_id: str, face: Face) -> Terms:
    """What the app's searches would look ``patient`` up by."""
    name = preferred_name(patient)
    given = strings(name.get("given"))
    mrn = mrn_identifier(patient)
    birth, gender = patient.get("birthDate"), patient.get("gender")
    return Terms(
        id=patient_id,
        family=family_name(name, face)[0],
        given=given[0] if given else None,
        birth_date=birth if isinstance(birth, str) and birth else None,
        gender=gender if isinstance(gender, str) and gender else None,
        mrn=str(mrn[0]["value"]) if mrn else None,
    )


def _search_run(ctx: Context) -> None:
    assert ctx.patient is not None and ctx.face is not None and ctx.patient_id is not None
    terms = terms_of(ctx.patient, ctx.patient_id, ctx.face)
    for search in searches(ctx.face):
        fields = search.fields(terms)
        if fields is None:
            ctx.report.skipped(search.spec.id, search.lacking, needs=search.needs)
            continue
        _one_search(ctx, search, [*fields, ("_count", str(SEARCH_COUNT))], terms.id)
    _over_all_searches(ctx)


def _one_search(ctx: Context, search: Search, fields: list[tuple[str, str]], wanted: str) -> None:
    report, check = ctx.report, search.spec.id
    shown = ", ".join(name for name, _ in fields if name != "_count")
    label = f"{shown}, _count={SEARCH_COUNT}"
    try:
        answer = ctx.client.post_form("Patient/_search", fields)
        if answer.status != 200:
            report.failed(check, f"{label}: {answer.describe()}")
            return
        bundle = searchset(answer)
    except CallFailed as failure:
        report.failed(check, f"{label}: {failure.evidence}")
        return
    patients = matches(bundle, "Patient")
    total = bundle.get("total")
    label_id = check.removeprefix("patient.search.")
    ctx.searches.append(Searched(label_id, SEARCH_COUNT, len(patients), total))
    found = any(p.get("id") == wanted for p in patients)
    evidence = f"{label}: Patient/{wanted} {'found' if found else 'not found'}"
    evidence += f", {entries(len(patients))}, total={total if total is not None else 'missing'}"
    report.verdict(check, found, evidence)


def _over_all_searches(ctx: Context) -> None:
    report, done = ctx.report, ctx.searches
    if not done:
        report.skipped(_TOTAL.id, "no Patient search answered")
        report.skipped(_COUNT.id, "no Patient search answered")
        return
    no_total = [s.label for s in done if not isinstance(s.total, int) or isinstance(s.total, bool)]
    report.verdict(
        _TOTAL.id,
        not no_total,
        f"total missing or not an integer in {len(no_total)} of {len(done)}: " + "; ".join(no_total)
        if no_total
        else f"total present in all {len(done)} searches",
    )
    over = [f"{s.label} ({s.entries} > {s.count})" for s in done if s.entries > s.count]
    report.verdict(
        _COUNT.id,
        not over,
        f"more entries than _count in: {'; '.join(over)}"
        if over
        else f"entries ≤ _count in all {len(done)} searches",
    )


READ_STEP: Final = Step("patient.read", _read_specs, _read_run, _read_blocked)
SEARCH_STEP: Final = Step("patient.search", _search_specs, _search_run, _search_blocked)
