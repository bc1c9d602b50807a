"""The fields the app reads in each chart resource, as rules over one resource each.

A rule answers None when a resource has what the app needs, else what is missing
("effective[x] missing"); ``rules(face, prefix)`` gives a chart search's rules in the face's
names: the app's minimum fields at level required, the extra fields it reads as recommended.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from tools.conformance.bundles import as_list, dig
from tools.conformance.faces import Face
from tools.conformance.report import RECOMMENDED, REQUIRED, Level

ENDED_ORDERS: Final = frozenset({"completed", "stopped"})

Resource = dict[str, Any]
Problem = Callable[[Resource], str | None]


@dataclass(frozen=True)
class Rule:
    """A field check applied to every entry of one query."""

    suffix: str
    requirement: str
    level: Level
    problem: Problem
    # Entries the rule is about (all by default); when none are, the check is a skip.
    applies: Callable[[Resource], bool] = lambda _: True
    none_apply: str = "no entries"
    # What a patient needs for the rule to apply to something (when ``applies`` filters).
    needs: str = ""


# -- field rules --------------------------------------------------------------------------------


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _codings(concept: Any) -> list[dict[str, Any]]:
    return [c for c in as_list(dig(concept, "coding")) if isinstance(c, dict)]


def _components(observation: Resource) -> list[dict[str, Any]]:
    return [c for c in as_list(observation.get("component")) if isinstance(c, dict)]


def effective(observation: Resource) -> str | None:
    """The first date of an Observation's effective[x], or None."""
    for value in (
        observation.get("effectiveDateTime"),
        observation.get("effectiveInstant"),
        dig(observation, "effectivePeriod", "start"),
        dig(observation, "effectivePeriod", "end"),
    ):
        if _text(value):
            return str(value)
    return None


def _observation_code(observation: Resource) -> str | None:
    if not any(_text(c.get("code")) for c in _codings(observation.get("code"))):
        return "code.coding.code missing"
    for index, component in enumerate(_components(observation), 1):
        if not any(_text(c.get("code")) for c in _codings(component.get("code"))):
            return f"component {index} has no code.coding.code"
    return None


def _observation_value(observation: Resource) -> str | None:
    if _number(dig(observation, "valueQuantity", "value")):
        return None
    components = _components(observation)
    if not components:
        return "no valueQuantity.value and no components"
    for index, component in enumerate(components, 1):
        if not _number(dig(component, "valueQuantity", "value")):
            return f"component {index} has no valueQuantity.value"
    return None


def _observation_display(observation: Resource) -> str | None:
    if not any(_text(c.get("display")) for c in _codings(observation.get("code"))):
        return "code.coding.display missing"
    for index, component in enumerate(_components(observation), 1):
        if not any(_text(c.get("display")) for c in _codings(component.get("code"))):
            return f"component {index} has no code.coding.display"
    return None


def _observation_unit(observation: Resource) -> str | None:
    candidates = [observation.get("valueQuantity")] + [
        c.get("valueQuantity") for c in _components(observation)
    ]
    quantities = [q for q in candidates if isinstance(q, dict)]
    if not quantities:
        return "no valueQuantity"
    if not all(_text(q.get("unit")) for q in quantities):
        return "valueQuantity.unit missing"
    return None


def _vital_sign(observation: Resource) -> str | None:
    categories = observation.get("category")
    # DSTU2 Observation.category is 0..1 (one object); later releases make it a list.
    concepts = [categories] if isinstance(categories, dict) else as_list(categories)
    codes = {c.get("code") for concept in concepts for c in _codings(concept)}
    return None if "vital-signs" in codes else "category vital-signs missing"


def _present(*path: str | int, name: str | None = None) -> Problem:
    shown = name or ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path)

    def problem(resource: Resource) -> str | None:
        value = dig(resource, *path)
        return None if value not in (None, "", [], {}) else f"{shown} missing"

    return problem


def _any_of(name: str, *problems: Problem) -> Problem:
    def problem(resource: Resource) -> str | None:
        return None if any(p(resource) is None for p in problems) else f"{name} missing"

    return problem


def _all_of(*problems: Problem) -> Problem:
    def problem(resource: Resource) -> str | None:
        for check in problems:
            found = check(resource)
            if found is not None:
                return found
        return None

    return problem


def _allergy_status(face: Face) -> Problem:
    if face.key == "dstu2":
        return _present("status")

    def code_of(value: Any) -> Any:
        # STU3 statuses are codes; R4 made them CodeableConcepts.
        if face.key == "r4":
            codings = _codings(value)
            return codings[0].get("code") if codings else None
        return value

    def problem(allergy: Resource) -> str | None:
        verification = code_of(allergy.get("verificationStatus"))
        clinical = code_of(allergy.get("clinicalStatus"))
        if not _text(verification):
            return "verificationStatus missing"
        # A record entered in error has no clinical status (ait-1/ait-2).
        if not _text(clinical) and verification != "entered-in-error":
            return "clinicalStatus missing"
        return None

    return problem


def _reaction_text(allergy: Resource) -> str | None:
    for index, reaction in enumerate(as_list(allergy.get("reaction")), 1):
        manifestations = as_list(dig(reaction, "manifestation"))
        readable = [
            m
            for m in manifestations
            if _text(dig(m, "text")) or any(_text(c.get("display")) for c in _codings(m))
        ]
        if not manifestations or len(readable) < len(manifestations):
            return f"reaction {index} has a manifestation without text or display"
    return None


def _medication_name(medication: Resource) -> str | None:
    concept = medication.get("medicationCodeableConcept")
    if _text(dig(concept, "text")) or any(_text(c.get("display")) for c in _codings(concept)):
        return None
    if _text(dig(medication, "medicationReference", "display")):
        return None
    return "medicationCodeableConcept.text/display or medicationReference.display missing"


def _dosage_text(medication: Resource) -> str | None:
    texts = [dig(d, "text") for d in as_list(medication.get("dosageInstruction"))]
    return None if any(_text(t) for t in texts) else "dosageInstruction.text missing"


def _r4_plan(coverage: Resource) -> str | None:
    classes = [c for c in as_list(coverage.get("class")) if isinstance(c, dict)]
    kinds = {(_codings(c.get("type")) or [{}])[0].get("code"): c for c in classes}
    plan, group = kinds.get("plan"), kinds.get("group")
    if plan is None or not _text(plan.get("name")):
        return "no class of type plan with a name"
    if group is not None and not _text(group.get("name")):
        return "class of type group without a name"
    return None


def rules(face: Face, prefix: str) -> list[Rule]:
    """The field checks of one chart query, in the face's names."""
    dstu2, r4 = face.key == "dstu2", face.key == "r4"
    if prefix == "observation":
        return [
            Rule("effective", "every vital sign has effective[x]", REQUIRED, _effective_problem),
            Rule(
                "code",
                "every vital sign (and component) has code.coding.code",
                REQUIRED,
                _observation_code,
            ),
            Rule(
                "value",
                "every vital sign has valueQuantity.value, or components that each have one",
                REQUIRED,
                _observation_value,
            ),
            Rule("display", "code.coding.display is present", RECOMMENDED, _observation_display),
            Rule("unit", "valueQuantity.unit is present", RECOMMENDED, _observation_unit),
            Rule(
                "category",
                "every entry is a vital sign (category vital-signs)",
                RECOMMENDED,
                _vital_sign,
            ),
        ]
    if prefix == "condition":
        return [
            Rule(
                "display",
                "code.coding[0].display is present",
                REQUIRED,
                _present("code", "coding", 0, "display", name="code.coding[0].display"),
            ),
            Rule(
                "date",
                f"{face.condition_date_field} is present",
                RECOMMENDED,
                _present(face.condition_date_field),
            ),
            Rule("severity", "severity is present", RECOMMENDED, _present("severity")),
        ]
    if prefix == "encounter":
        return [
            Rule("status", "status is present", REQUIRED, _present("status")),
            Rule(
                "type_display",
                "type[0].coding[0].display is present",
                REQUIRED,
                _present("type", 0, "coding", 0, "display", name="type[0].coding[0].display"),
            ),
            Rule(
                "period_start",
                "period.start is present",
                RECOMMENDED,
                _present("period", "start"),
            ),
            Rule(
                "location_display",
                "location[0].location.display is present",
                RECOMMENDED,
                _present("location", 0, "location", "display", name="location[0].location.display"),
            ),
        ]
    if prefix == "allergy":
        element = "substance" if dstu2 else "code"
        return [
            Rule(
                "substance",
                f"{element}.text or {element}.coding[0].display is present",
                REQUIRED,
                _any_of(
                    f"{element}.text and {element}.coding[0].display",
                    _present(element, "text"),
                    _present(element, "coding", 0, "display"),
                ),
            ),
            Rule(
                "status",
                "status is present" if dstu2 else "clinicalStatus, verificationStatus are present",
                REQUIRED,
                _allergy_status(face),
            ),
            Rule(
                "date",
                f"{face.allergy_date_field} is present",
                RECOMMENDED,
                _present(face.allergy_date_field),
            ),
            Rule(
                "reaction",
                "each reaction's manifestation has text or a display",
                RECOMMENDED,
                _reaction_text,
                applies=lambda a: bool(as_list(a.get("reaction"))),
                none_apply="no reactions recorded",
                needs="allergies with reactions",
            ),
        ]
    if prefix == "medication":
        prescriber: tuple[str, ...]
        if dstu2:
            date, prescriber = "dateWritten", ("prescriber", "display")
        elif r4:
            date, prescriber = "authoredOn", ("requester", "display")
        else:
            date, prescriber = "authoredOn", ("requester", "agent", "display")
        found = [
            Rule(
                "name",
                "medicationCodeableConcept text/display or medicationReference.display",
                REQUIRED,
                _medication_name,
            ),
            Rule("date", f"{date} is present", REQUIRED, _present(date)),
            Rule(
                "prescriber",
                f"{'.'.join(prescriber)} is present",
                REQUIRED,
                _present(*prescriber),
            ),
            Rule("dosage", "dosageInstruction.text is present", RECOMMENDED, _dosage_text),
        ]
        if dstu2:
            found.append(
                Rule(
                    "date_ended",
                    "ended orders (completed, stopped) have dateEnded",
                    RECOMMENDED,
                    _present("dateEnded"),
                    applies=lambda m: m.get("status") in ENDED_ORDERS,
                    none_apply="no ended orders",
                    needs="ended medication orders",
                )
            )
        return found
    if prefix == "coverage":
        if dstu2:
            plan = Rule(
                "plan",
                "plan or issuer.display (the payor) is present",
                REQUIRED,
                _any_of("plan and issuer.display", _present("plan"), _present("issuer", "display")),
            )
            subscriber: Problem = _present("subscriberId", "value", name="subscriberId")
        elif r4:
            plan = Rule("plan", "class of type plan (and group) with a name", REQUIRED, _r4_plan)
            subscriber = _present("subscriberId")
        else:
            plan = Rule(
                "plan",
                "grouping.groupDisplay and grouping.planDisplay are present",
                REQUIRED,
                _all_of(_present("grouping", "groupDisplay"), _present("grouping", "planDisplay")),
            )
            subscriber = _present("subscriberId")
        level: Level = RECOMMENDED if dstu2 else REQUIRED
        return [
            plan,
            Rule("period", "period is present", level, _present("period")),
            Rule("subscriber_id", "subscriberId is present", level, subscriber),
        ]
    raise ValueError(prefix)


def _effective_problem(observation: Resource) -> str | None:
    return None if effective(observation) else "effective[x] missing"


_PARTIAL_DATE: Final = re.compile(r"\d{4}(-\d{2})?")


def instant(value: Any) -> datetime | None:
    """A FHIR date or dateTime as an aware datetime (UTC when it has no zone), or None."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if _PARTIAL_DATE.fullmatch(text):
        text += "-01-01" if len(text) == 4 else "-01"
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
