"""The sandbox's search parameters: what is indexed when a resource is written, and matching.

The sandbox answers exactly the searches the Patients app makes (docs/patients-app.md), with
FHIR R4 semantics; anything else raises ``UnsupportedSearch`` naming the parameter, never ignored:

- every type: ``_id``, ``_count`` (default 50; a larger value than 200 is served as 200, as
  FHIR lets a server do), ``_offset`` (the sandbox's paging parameter), ``_format`` (JSON only);
- Patient: ``family``, ``given``, ``name`` (string: case- and accent-insensitive "starts with";
  ``:contains``, ``:exact``), ``birthdate`` (date, precision year/month/day, prefixes eq ne lt
  gt le ge), ``gender`` and ``identifier`` (token);
- the patient-compartment types: ``patient`` (Coverage also ``beneficiary``), which is required
  unless ``_id`` is given: the sandbox searches one patient's records, never all of them;
  Observation also ``category``, ``code`` (token) and ``date`` (effective[x]);
- ``_sort`` = ``date`` or ``-date`` where the type has a date: Observation effective[x],
  Encounter period, Condition recordedDate (the app's DSTU2 dateRecorded / STU3 assertedDate),
  AllergyIntolerance recordedDate, MedicationRequest authoredOn. A date range sorts by its
  start in both directions; resources without one come last; ties go by id.

Comma-separated values are alternatives (OR); a repeated parameter must hold each time (AND); a
parameter with an empty value is ignored, as FHIR says. Dates without a timezone are UTC.

Each criterion matches the compact search document written with the resource (``index``), and
may also offer a Table Storage filter that selects a superset of its matches (``server``), so
the store narrows the scan server-side and re-checks every candidate here.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

from shared.fhir.catalog import RESOURCE_TYPES
from shared.sandbox.errors import UnsupportedSearch
from shared.sandbox.layout import (
    COMPARTMENT_TYPES,
    SUPPORTED_TYPES,
    is_id,
    patient_reference_id,
    resource_row_key,
)

T = TypeVar("T")

DEFAULT_COUNT: Final = 50
MAX_COUNT: Final = 200
MAX_OFFSET: Final = 1_000_000
MAX_VALUES: Final = 50
"""Most comma-separated alternatives one parameter may carry."""

MAX_FILTER_COMPARISONS: Final = 15
"""Table Storage accepts at most 15 comparisons in one $filter."""

JSON_FORMATS: Final = frozenset(
    {"json", "application/json", "application/fhir+json", "application/json+fhir"}
)
GENDER_SYSTEM: Final = "http://hl7.org/fhir/administrative-gender"

# Server-side columns of a Patient row: the first few normalised family and given names and
# identifier values; a flag column says a patient has more than fit, so that a filter over the
# columns (plus the flag) still selects every patient that could match.
FAMILY_COLUMNS: Final = ("fam0", "fam1", "fam2")
GIVEN_COLUMNS: Final = ("giv0", "giv1", "giv2", "giv3")
IDENTIFIER_COLUMNS: Final = ("idv0", "idv1", "idv2")
FAMILY_OVERFLOW: Final = "famx"
GIVEN_OVERFLOW: Final = "givx"
IDENTIFIER_OVERFLOW: Final = "idvx"
DOCUMENT_PREFIX: Final = "s_"
"""Prefix of the properties holding a row's search document, one (compact JSON) per key, so a
search selects and parses only the keys its criteria read."""

DATED_TYPES: Final = frozenset(
    {"Observation", "Encounter", "Condition", "AllergyIntolerance", "MedicationRequest"}
)

SEARCH_PARAMETERS: Final[Mapping[str, Mapping[str, str]]] = {
    t.name: {"_id": "token", **{param.name: param.type for param in t.search if param.sandbox}}
    for t in RESOURCE_TYPES
    if t.sandbox
}
"""Search parameters per type (name -> FHIR type), e.g. for the CapabilityStatement: ``_id``
and the catalogue's parameters of each type the sandbox keeps."""

_STRING_MODIFIERS: Final = frozenset({"", "contains", "exact"})
_PREFIXES: Final = frozenset({"eq", "ne", "gt", "lt", "ge", "le"})
_UNSUPPORTED_PREFIXES: Final = frozenset({"sa", "eb", "ap"})
_INTEGER = re.compile(r"[0-9]{1,9}")
_DATE = re.compile(
    r"(?P<y>[0-9]{4})(?:-(?P<m>[0-9]{2})(?:-(?P<d>[0-9]{2})"
    r"(?:T(?P<H>[0-9]{2}):(?P<M>[0-9]{2})(?::(?P<S>[0-9]{2})(?:\.(?P<f>[0-9]{1,9}))?)?"
    r"(?P<tz>Z|[+-][0-9]{2}:[0-9]{2})?)?)?)?"
)
LOWEST: Final = ""
"""Sorts before every date bound: an open start."""
HIGHEST: Final = "~"
"""Sorts after every date bound: an open end."""

Comparison = tuple[str, str, "str | bool"]
"""(column, OData operator, value) of a server-side filter."""
Clause = tuple[tuple[Comparison, ...], ...]
"""Alternatives (OR) of conjunctions (AND) of comparisons."""
Document = Mapping[str, Any]


# -- normalisation and values -----------------------------------------------------------------


def normalise(text: str) -> str:
    """Case- and accent-insensitive form: NFKD, combining marks dropped, case folded."""
    for _ in range(2):  # case folding can produce characters that decompose further
        decomposed = unicodedata.normalize("NFKD", text)
        text = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return text


def date_range(value: object) -> tuple[str, str] | None:
    """The [low, high) UTC bounds a FHIR date, dateTime or instant covers; None if unreadable."""
    if not isinstance(value, str):
        return None
    match = _DATE.fullmatch(value)
    if match is None:
        return None
    try:
        return _bounds(match)
    except (ValueError, OverflowError):
        return None


def _bounds(match: re.Match[str]) -> tuple[str, str]:
    year, month, day = int(match["y"]), int(match["m"] or 1), int(match["d"] or 1)
    start = datetime(year, month, day, tzinfo=UTC)
    if match["d"] is None:
        if match["m"] is None:
            end = datetime(year + 1, 1, 1, tzinfo=UTC) if year < 9999 else None
        else:
            end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
        return _stamp(start), _stamp(end)
    if match["H"] is None:
        return _stamp(start), _stamp(start + timedelta(days=1))
    hour, minute = int(match["H"]), int(match["M"])
    if hour > 23 or minute > 59:
        raise ValueError("time out of range")
    start = start.replace(hour=hour, minute=minute)
    if match["S"] is None:
        step = timedelta(minutes=1)
    else:
        start = start.replace(second=int(match["S"]))
        digits = match["f"] or ""
        if digits:
            start = start.replace(microsecond=int(digits[:6].ljust(6, "0")))
        step = timedelta(microseconds=10 ** (6 - min(len(digits), 6)))
    tz = match["tz"]
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        start -= sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6]))
    return _stamp(start), _stamp(start + step)


def _stamp(moment: datetime | None) -> str:
    """A fixed-width UTC timestamp (strings compare like the instants); HIGHEST for None."""
    return HIGHEST if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def period_range(period: object) -> tuple[str, str] | None:
    """The bounds of a Period: start's low to end's high, open where a side is missing."""
    if not isinstance(period, Mapping):
        return None
    start, end = date_range(period.get("start")), date_range(period.get("end"))
    if start is None and end is None:
        return None
    return (start[0] if start else LOWEST), (end[1] if end else HIGHEST)


# -- the search document written with each resource --------------------------------------------


def index(resource: Mapping[str, Any]) -> dict[str, Any]:
    """Properties a row carries for search: its search document and server-side columns."""
    resource_type = resource.get("resourceType")
    if resource_type == "Patient":
        document = _patient_document(resource)
    elif resource_type == "Observation":
        document = {
            "cat": _codings(resource.get("category")),
            "code": _codings([resource.get("code")]),
            "date": _observation_date(resource),
        }
    elif resource_type == "Encounter":
        document = {"date": period_range(resource.get("period"))}
    elif resource_type in ("Condition", "AllergyIntolerance"):
        document = {"date": date_range(resource.get("recordedDate"))}
    elif resource_type == "MedicationRequest":
        document = {"date": date_range(resource.get("authoredOn"))}
    else:
        document = {}
    document = {key: value for key, value in document.items() if value}
    properties: dict[str, Any] = {
        DOCUMENT_PREFIX + key: json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        for key, value in document.items()
    }
    if resource_type == "Patient":
        properties.update(_patient_columns(document))
    return properties


def read_document(entity: Mapping[str, Any]) -> dict[str, Any]:
    """The search document (the keys selected) of a row."""
    return {
        name[len(DOCUMENT_PREFIX) :]: json.loads(value)
        for name, value in entity.items()
        if name.startswith(DOCUMENT_PREFIX) and isinstance(value, str)
    }


def _strings(values: Iterable[object]) -> list[str]:
    found: list[str] = []
    for value in values:
        if isinstance(value, str) and value and value not in found:
            found.append(value)
    return found


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _patient_document(resource: Mapping[str, Any]) -> dict[str, Any]:
    names = [name for name in _list(resource.get("name")) if isinstance(name, Mapping)]
    families = _strings(name.get("family") for name in names)
    givens = _strings(given for name in names for given in _list(name.get("given")))
    others = _strings(
        [part for name in names for key in ("prefix", "suffix") for part in _list(name.get(key))]
        + [name.get("text") for name in names]
    )
    everything = _strings(families + givens + others)
    gender = resource.get("gender")
    identifiers = [
        [ident.get("system") if isinstance(ident.get("system"), str) else None, ident["value"]]
        for ident in _list(resource.get("identifier"))
        if isinstance(ident, Mapping) and isinstance(ident.get("value"), str)
    ]
    return {
        "f": families,
        "nf": _strings(normalise(v) for v in families),
        "g": givens,
        "ng": _strings(normalise(v) for v in givens),
        "n": everything,
        "nn": _strings(normalise(v) for v in everything),
        "gender": [[GENDER_SYSTEM, gender]] if isinstance(gender, str) else None,
        "birth": date_range(resource.get("birthDate")),
        "ident": identifiers,
    }


def _patient_columns(document: Document) -> dict[str, Any]:
    columns: dict[str, Any] = {}
    for values, names, overflow in (
        (document.get("nf", []), FAMILY_COLUMNS, FAMILY_OVERFLOW),
        (document.get("ng", []), GIVEN_COLUMNS, GIVEN_OVERFLOW),
        (
            _strings(value for _, value in document.get("ident", [])),
            IDENTIFIER_COLUMNS,
            IDENTIFIER_OVERFLOW,
        ),
    ):
        columns.update(zip(names, values, strict=False))
        if len(values) > len(names):
            columns[overflow] = True
    if document.get("gender"):
        columns["gender"] = document["gender"][0][1]
    if document.get("birth"):
        columns["blo"], columns["bhi"] = document["birth"]
    return columns


def _codings(concepts: object) -> list[list[str | None]]:
    found: list[list[str | None]] = []
    for concept in _list(concepts):
        if not isinstance(concept, Mapping):
            continue
        for coding in _list(concept.get("coding")):
            if not isinstance(coding, Mapping):
                continue
            system, code = coding.get("system"), coding.get("code")
            pair = [
                system if isinstance(system, str) else None,
                code if isinstance(code, str) else None,
            ]
            if pair != [None, None] and pair not in found:
                found.append(pair)
    return found


def _observation_date(resource: Mapping[str, Any]) -> tuple[str, str] | None:
    if "effectivePeriod" in resource:
        return period_range(resource.get("effectivePeriod"))
    return date_range(resource.get("effectiveDateTime") or resource.get("effectiveInstant"))


# -- criteria ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Criterion:
    """One search parameter occurrence: alternatives (OR) over a row's search document."""

    parameter: str
    alternatives: tuple[Callable[[Document], bool], ...]
    server: Clause | None = None
    """A filter selecting a superset of the matches; None: checked here only."""
    priority: int = 9
    """Lower goes into the server-side filter first (the most selective columns)."""
    keys: tuple[str, ...] = ()
    """Search document keys the alternatives read."""

    def matches(self, document: Document) -> bool:
        """True when any alternative holds."""
        return any(alternative(document) for alternative in self.alternatives)

    @property
    def cost(self) -> int:
        """Comparisons its server-side filter spends of the 15 Table Storage allows."""
        return sum(len(conjunction) for conjunction in self.server or ())


@dataclass(frozen=True)
class SearchQuery:
    """A parsed search: criteria (AND), where to look, order and page."""

    resource_type: str
    criteria: tuple[Criterion, ...]
    patient_ids: frozenset[str] | None
    """Patients whose partitions hold every match (None: not limited by patient)."""
    ids: frozenset[str] | None
    """Ids every match has (None: any id)."""
    sort_descending: bool | None
    """None: by id; else by date (True: newest first)."""
    count: int
    offset: int

    @property
    def columns(self) -> list[str]:
        """The row properties the search needs: the document keys its criteria and sort read."""
        keys = {key for criterion in self.criteria for key in criterion.keys}
        if self.sort_descending is not None:
            keys.add("date")
        return [DOCUMENT_PREFIX + key for key in sorted(keys)]

    def matches(self, document: Document) -> bool:
        """True when the row with this search document (plus ``id``) matches every criterion."""
        return all(criterion.matches(document) for criterion in self.criteria)

    def server_clauses(self, budget: int) -> list[Clause]:
        """The server-side filters that fit in ``budget`` comparisons, most selective first."""
        chosen: list[Clause] = []
        for criterion in sorted(self.criteria, key=lambda c: c.priority):
            if criterion.server is not None and criterion.cost <= budget:
                chosen.append(criterion.server)
                budget -= criterion.cost
        return chosen

    def order(
        self, items: list[T], resource_id: Callable[[T], str], document: Callable[[T], Document]
    ) -> list[T]:
        """``items`` in result order: by id, or by date then id with undated ones last."""
        by_id = sorted(items, key=resource_id)
        if self.sort_descending is None:
            return by_id
        dated = [item for item in by_id if sort_date(document(item)) is not None]
        undated = [item for item in by_id if sort_date(document(item)) is None]
        # sorted() is stable even when reversed, so equal dates stay in id order.
        dated.sort(key=lambda item: sort_date(document(item)) or "", reverse=self.sort_descending)
        return dated + undated


def sort_date(document: Document) -> str | None:
    """The date a row sorts on: the start of its date range, None when it has none."""
    bounds = document.get("date")
    if not bounds or bounds[0] == LOWEST:
        return None
    return str(bounds[0])


def parse_search(resource_type: str, params: Sequence[tuple[str, str]]) -> SearchQuery:
    """The search ``params`` (decoded pairs, in order) ask for; UnsupportedSearch otherwise."""
    known = SEARCH_PARAMETERS.get(resource_type)
    if known is None or resource_type not in SUPPORTED_TYPES:
        raise UnsupportedSearch("_type", f"{resource_type[:64]} cannot be searched")
    criteria: list[Criterion] = []
    patient_sets: list[frozenset[str]] = []
    id_sets: list[frozenset[str]] = []
    results: dict[str, Any] = {}
    for name, value in params:
        base, _, modifier = name.partition(":")
        if base in ("_count", "_offset", "_sort", "_format"):
            _result_parameter(resource_type, name, base, modifier, value, results)
            continue
        kind = known.get(base)
        if kind is None:
            raise UnsupportedSearch(
                name, f"is not a search parameter of the sandbox's {resource_type}"
            )
        if kind == "string":
            if modifier not in _STRING_MODIFIERS:
                raise UnsupportedSearch(name, f"modifier :{modifier} is not supported")
        elif modifier:
            raise UnsupportedSearch(name, f"modifier :{modifier} is not supported")
        pieces = _split_values(name, value)
        if not pieces:
            continue  # FHIR: a parameter without a value is ignored
        if base == "_id":
            id_sets.append(_ids(name, pieces))
            criteria.append(_id_criterion(name, resource_type, id_sets[-1]))
        elif kind == "reference":
            patient_sets.append(_patient_ids(name, pieces))
        elif kind == "string":
            criteria.append(_string_criterion(name, base, modifier, pieces))
        elif kind == "date":
            criteria.append(_date_criterion(name, base, pieces))
        else:
            criteria.append(_token_criterion(name, base, pieces))
    patient_ids = frozenset.intersection(*patient_sets) if patient_sets else None
    ids = frozenset.intersection(*id_sets) if id_sets else None
    if resource_type in COMPARTMENT_TYPES and patient_ids is None and ids is None:
        raise UnsupportedSearch(
            "patient",
            "is required: the sandbox searches one patient's records (or give _id)",
        )
    return SearchQuery(
        resource_type=resource_type,
        criteria=tuple(criteria),
        patient_ids=patient_ids,
        ids=ids,
        sort_descending=results.get("_sort"),
        count=results.get("_count", DEFAULT_COUNT),
        offset=results.get("_offset", 0),
    )


def _result_parameter(
    resource_type: str, name: str, base: str, modifier: str, value: str, out: dict[str, Any]
) -> None:
    if modifier:
        raise UnsupportedSearch(name, f"modifier :{modifier} is not supported")
    if value == "":
        return
    if base in out:
        raise UnsupportedSearch(name, "may be given once")
    if base == "_format":
        # An unencoded "+" (application/fhir+json) arrives as a space: read it back as "+".
        if value.split(";", 1)[0].strip().lower().replace(" ", "+") not in JSON_FORMATS:
            raise UnsupportedSearch(name, "only JSON formats are supported")
        out[base] = value
    elif base == "_sort":
        if resource_type not in DATED_TYPES:
            raise UnsupportedSearch(name, f"{resource_type} cannot be sorted")
        if value not in ("date", "-date"):
            raise UnsupportedSearch(name, "only date and -date are supported")
        out[base] = value == "-date"
    else:
        if not _INTEGER.fullmatch(value):
            raise UnsupportedSearch(name, "must be a non-negative integer")
        number = int(value)
        if base == "_offset" and number > MAX_OFFSET:
            raise UnsupportedSearch(name, f"must be at most {MAX_OFFSET}")
        out[base] = min(number, MAX_COUNT) if base == "_count" else number


def _split_values(name: str, value: str) -> list[str]:
    """The comma-separated alternatives of ``value``, still escaped, empty ones dropped."""
    pieces = [piece for piece in _split_unescaped(value, ",") if piece]
    if len(pieces) > MAX_VALUES:
        raise UnsupportedSearch(name, f"takes at most {MAX_VALUES} values")
    return pieces


def _split_unescaped(text: str, separator: str, limit: int = -1) -> list[str]:
    """``text`` split at each ``separator`` not escaped with a backslash (FHIR search escaping)."""
    pieces: list[str] = []
    current: list[str] = []
    chars = iter(text)
    for char in chars:
        if char == "\\":
            current.append(char + next(chars, ""))
        elif char == separator and limit != 0:
            pieces.append("".join(current))
            current = []
            limit -= 1
        else:
            current.append(char)
    pieces.append("".join(current))
    return pieces


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _ids(name: str, pieces: list[str]) -> frozenset[str]:
    ids = frozenset(_unescape(piece) for piece in pieces)
    for resource_id in ids:
        if not is_id(resource_id):
            raise UnsupportedSearch(name, "is not a valid resource id")
    return ids


def _id_criterion(name: str, resource_type: str, ids: frozenset[str]) -> Criterion:
    return Criterion(
        parameter=name,
        alternatives=(lambda document: document.get("id") in ids,),
        server=tuple((("RowKey", "eq", resource_row_key(resource_type, i)),) for i in sorted(ids)),
        priority=0,
    )


def _patient_ids(name: str, pieces: list[str]) -> frozenset[str]:
    found: set[str] = set()
    for piece in pieces:
        value = _unescape(piece)
        patient_id = value if is_id(value) else patient_reference_id(value)
        if patient_id is None:
            raise UnsupportedSearch(name, "must be a patient id, Patient/<id> or its URL")
        found.add(patient_id)
    return frozenset(found)


# -- string parameters ---------------------------------------------------------------------------

_STRING_FIELDS: Final = {
    # parameter: (raw values key, normalised values key, server columns, overflow flag)
    "family": ("f", "nf", FAMILY_COLUMNS, FAMILY_OVERFLOW),
    "given": ("g", "ng", GIVEN_COLUMNS, GIVEN_OVERFLOW),
    "name": ("n", "nn", None, None),  # any name part: too many columns, checked here only
}


def _string_criterion(name: str, base: str, modifier: str, pieces: list[str]) -> Criterion:
    raw_key, normal_key, columns, overflow = _STRING_FIELDS[base]
    values = [_unescape(piece) for piece in pieces]
    alternatives: list[Callable[[Document], bool]] = []
    server: list[tuple[Comparison, ...]] | None = [] if columns else None
    for value in values:
        wanted = normalise(value)
        if modifier == "exact":
            alternatives.append(functools.partial(_is_one_of, raw_key, value))
        elif modifier == "contains":
            alternatives.append(functools.partial(_contains, normal_key, wanted))
        else:
            alternatives.append(functools.partial(_starts_with, normal_key, wanted))
        if server is None or columns is None or modifier == "contains" or not _server_safe(wanted):
            server = None
            continue
        for column in columns:
            if modifier == "exact":
                server.append(((column, "eq", wanted),))
            else:
                server.append(((column, "ge", wanted), (column, "lt", _successor(wanted))))
    if server is not None and overflow is not None:
        server.append(((overflow, "eq", True),))
    return Criterion(
        parameter=name,
        alternatives=tuple(alternatives),
        server=tuple(server) if server else None,
        priority=4 if base == "family" else 5,
        keys=(raw_key if modifier == "exact" else normal_key,),
    )


def _is_one_of(key: str, value: str, document: Document) -> bool:
    return value in document.get(key, ())


def _contains(key: str, wanted: str, document: Document) -> bool:
    return any(wanted in candidate for candidate in document.get(key, ()))


def _starts_with(key: str, wanted: str, document: Document) -> bool:
    return any(candidate.startswith(wanted) for candidate in document.get(key, ()))


def _server_safe(value: str) -> bool:
    # Below the surrogates, UTF-16 order (Table Storage) and code-point order (Python) agree,
    # and the successor of the last character stays a character.
    return value != "" and all(ord(char) < 0xD7FF for char in value)


def _successor(value: str) -> str:
    """The least string above every string that starts with ``value``."""
    return value[:-1] + chr(ord(value[-1]) + 1)


# -- date parameters -----------------------------------------------------------------------------


def _date_criterion(name: str, base: str, pieces: list[str]) -> Criterion:
    key = "birth" if base == "birthdate" else "date"
    alternatives: list[Callable[[Document], bool]] = []
    server: list[tuple[Comparison, ...]] | None = [] if key == "birth" else None
    for piece in pieces:
        prefix, text = (piece[:2], piece[2:]) if piece[:2].isalpha() else ("eq", piece)
        if prefix in _UNSUPPORTED_PREFIXES:
            raise UnsupportedSearch(name, f"prefix {prefix} is not supported")
        if prefix not in _PREFIXES:
            raise UnsupportedSearch(name, "has an unknown prefix")
        if key == "birth" and "T" in text:
            raise UnsupportedSearch(name, "takes a date (YYYY, YYYY-MM or YYYY-MM-DD)")
        bounds = date_range(text)
        if bounds is None:
            raise UnsupportedSearch(name, "is not a FHIR date")
        alternatives.append(functools.partial(_date_holds, key, prefix, bounds))
        if server is not None:
            server.extend(_date_filter(prefix, bounds))
    return Criterion(
        parameter=name,
        alternatives=tuple(alternatives),
        server=tuple(server) if server else None,
        priority=2,
        keys=(key,),
    )


def _date_holds(key: str, prefix: str, bounds: tuple[str, str], document: Document) -> bool:
    target = document.get(key)
    return target is not None and _date_matches(prefix, bounds, target)


def _date_matches(prefix: str, search: Sequence[str], target: Sequence[str]) -> bool:
    """FHIR's date prefixes over ranges: ``search`` [lo, hi) against the value's [lo, hi)."""
    low, high = search
    target_low, target_high = target
    contained = low <= target_low and target_high <= high
    if prefix == "eq":
        return contained
    if prefix == "ne":
        return not contained
    if prefix == "gt":
        return target_high > high
    if prefix == "lt":
        return target_low < low
    if prefix == "ge":
        return target_high > high or contained
    return target_low < low or contained  # le


def _date_filter(prefix: str, bounds: tuple[str, str]) -> list[tuple[Comparison, ...]]:
    low, high = bounds
    contained: tuple[Comparison, ...] = (("blo", "ge", low), ("bhi", "le", high))
    filters: dict[str, list[tuple[Comparison, ...]]] = {
        "eq": [contained],
        "ne": [(("blo", "lt", low),), (("bhi", "gt", high),)],
        "gt": [(("bhi", "gt", high),)],
        "lt": [(("blo", "lt", low),)],
        "ge": [(("bhi", "gt", high),), contained],
        "le": [(("blo", "lt", low),), contained],
    }
    return filters[prefix]


# -- token parameters ----------------------------------------------------------------------------

_TOKEN_FIELDS: Final = {
    "gender": "gender",
    "identifier": "ident",
    "category": "cat",
    "code": "code",
}


def _token_criterion(name: str, base: str, pieces: list[str]) -> Criterion:
    key = _TOKEN_FIELDS[base]
    alternatives: list[Callable[[Document], bool]] = []
    server: list[tuple[Comparison, ...]] | None = [] if base in ("gender", "identifier") else None
    for piece in pieces:
        parts = _split_unescaped(piece, "|", limit=1)
        system = _unescape(parts[0]) if len(parts) == 2 else None
        code = _unescape(parts[-1])
        if not code and not system:
            raise UnsupportedSearch(name, "is an empty token")
        alternatives.append(functools.partial(_token_holds, key, system, code))
        if server is None:
            continue
        if not code or (base == "gender" and system not in (None, GENDER_SYSTEM)):
            server = None  # any code of a system, or a system genders never have
        elif base == "gender":
            server.append((("gender", "eq", code),))
        else:
            server.extend(((column, "eq", code),) for column in IDENTIFIER_COLUMNS)
    if server and base == "identifier":
        server.append(((IDENTIFIER_OVERFLOW, "eq", True),))
    return Criterion(
        parameter=name,
        alternatives=tuple(alternatives),
        server=tuple(server) if server else None,
        priority=1 if base == "identifier" else 3,
        keys=(key,),
    )


def _token_holds(key: str, system: str | None, code: str, document: Document) -> bool:
    return _token_matches(system, code, document.get(key, ()))


def _token_matches(system: str | None, code: str, codings: Iterable[Sequence[Any]]) -> bool:
    """FHIR token semantics: ``code``, ``system|code``, ``|code`` (no system), ``system|``."""
    for coding_system, coding_code in codings:
        if system is None:
            if coding_code == code:
                return True
        elif system == "":
            if coding_system is None and coding_code == code:
                return True
        elif coding_system == system and (code == "" or coding_code == code):
            return True
    return False
