"""Request translation between DSTU2, STU3 and R4: paths, search queries, paging links, batches.

Pure functions over strings and dicts (§14, §11; section numbers refer to
docs/conversion/mapping.md, decisions are in docs/conversion/search.md). A query is worked on
piece by piece: a parameter whose name and value need no change is passed on byte for byte,
never decoded and re-encoded. A parameter the source version defines but the target cannot
express raises ``ParameterNotConvertible`` (the proxy answers 400); a parameter no table knows
passes unchanged, because providers add their own (paging tokens, vendor parameters). Paging
links go the other way with ``strict=False``: what cannot be expressed stays as the provider
wrote it, so following the link hands it back unchanged.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, unquote_plus

from shared.fhir import JSON_MIME_TYPES
from shared.fhir.catalog import RESOURCE_TYPES, Row
from shared.fhir.convert.common import ConversionError, reference_string, token_for, type_name
from shared.fhir.versions import VERSIONS

__all__ = [
    "ParameterNotConvertible",
    "convert_batch_request",
    "convert_link_url",
    "convert_path",
    "convert_query",
    "resource_type_of",
]


class ParameterNotConvertible(ConversionError):
    """A search parameter (or modifier, or value) the target version cannot express."""

    def __init__(self, parameter: str, source: str, target: str, why: str = "") -> None:
        # ``parameter`` is always a name from the tables below, never caller input.
        detail = f" ({why})" if why else ""
        super().__init__(
            f"the search parameter '{parameter}' cannot be expressed in FHIR "
            f"{_LABELS[target]}{detail}"
        )
        self.parameter = parameter
        self.source = source
        self.target = target


_LABELS = {version.value: version.label for version in VERSIONS}
# The column of each release in a catalogue Row (plain-str keys: read for every row searched).
_COLUMN = {version.value: index for index, version in enumerate(VERSIONS)}

# -- resource types (§2.2) ---------------------------------------------------------------------

# Types a path or link may name that one release lacks (beyond the MedicationOrder rename).
_MISSING_TYPES = {
    "dstu2": frozenset({"PractitionerRole", "ServiceRequest", "CareTeam", "Endpoint"}),
    "stu3": frozenset({"ServiceRequest", "DiagnosticOrder"}),
    "r4": frozenset({"ProcedureRequest", "ReferralRequest", "DiagnosticOrder"}),
}
# Resource types a link's path may end in (either spelling); anything else is base path. Those
# the proxy forwards, and PractitionerRole: no face forwards it, but R4 and STU3 servers link
# to it, and a link to it is left as the server wrote it where the target release lacks it.
_LINK_TYPES = frozenset(
    {"PractitionerRole", *(name for t in RESOURCE_TYPES if t.proxied for name in t.names)}
)

# -- search parameter names (§14.3, from each release's search-parameters.json) ----------------

# (DSTU2, STU3, R4) names of one parameter; None where the release has no equivalent. Lookup
# takes the first row whose source column matches, so for a name that several source names
# share (Encounter ``diagnosis``), the row listed first is the way back.
_COMMON_ROWS: tuple[Row, ...] = (
    (None, "_contained", "_contained"),
    (None, "_containedType", "_containedType"),
    (None, None, "_source"),
    (None, None, "_total"),
)
# Each type's own rows and ``_elements`` names (§2.9) are its catalogue entry's, by R4 name.
_ROWS: Mapping[str, tuple[Row, ...]] = {
    t.name: t.parameter_renames for t in RESOURCE_TYPES if t.parameter_renames
}
_ELEMENT_ROWS: Mapping[str, tuple[Row, ...]] = {
    t.name: t.element_renames for t in RESOURCE_TYPES if t.element_renames
}

# Modifiers only R4 defines (§14.1).
_R4_ONLY_MODIFIERS = frozenset({"identifier", "of-type"})
# AllergyIntolerance: DSTU2's one `status` against STU3/R4's two (§7.2, official ConceptMaps).
_ALLERGY_STATUS_SPLIT = {
    "active": "clinical-status",
    "inactive": "clinical-status",
    "resolved": "clinical-status",
    "unconfirmed": "verification-status",
    "confirmed": "verification-status",
    "refuted": "verification-status",
    "entered-in-error": "verification-status",
}
# STU3/R4 code → the DSTU2 `status` codes that convert to it (official R2→R3 ConceptMaps).
_ALLERGY_STATUS_JOIN = {
    ("clinical-status", "active"): ("active", "confirmed"),
    ("clinical-status", "inactive"): ("inactive",),
    ("clinical-status", "resolved"): ("resolved",),
    ("verification-status", "unconfirmed"): ("unconfirmed",),
    ("verification-status", "confirmed"): ("confirmed",),
    ("verification-status", "refuted"): ("refuted",),
    ("verification-status", "entered-in-error"): ("entered-in-error",),
}
_FHIR_JSON = frozenset(JSON_MIME_TYPES.values())
_NAME = re.compile(r"(?P<base>[^:.]+)(?P<modifier>:[^.]*)?(?P<chain>\..*)?\Z", re.DOTALL)
# Characters kept literal when a changed name or value is re-encoded: FHIR's syntax characters
# that RFC 3986 allows in a query ("|" is not one: it is sent as %7C, as HTTP clients do).
_SAFE_VALUE = ":/,-_.~!$'()*;@?"
_SAFE_NAME = ":-_."


# -- paths -------------------------------------------------------------------------------------


def convert_path(path: str, source: str, target: str) -> str:
    """A relative FHIR path (``MedicationOrder/1``, ``Patient/_search``) as ``target`` names it."""
    if source == target or not path:
        return path
    first, slash, rest = path.partition("/")
    if first.startswith(("$", "_")) or first == "metadata":
        return path
    return _type_for(first, target) + slash + rest


def resource_type_of(path: str) -> str | None:
    """The resource type a relative FHIR path starts with, or None (base, operations)."""
    first = path.lstrip("/").partition("/")[0].partition("?")[0]
    return first if first[:1].isupper() else None


def _type_for(resource_type: str, target: str) -> str:
    renamed = type_name(resource_type, target)
    if renamed in _MISSING_TYPES[target]:
        raise ConversionError(f"{renamed} does not exist in FHIR {_LABELS[target]}")
    return renamed


# -- queries -----------------------------------------------------------------------------------


def convert_query(
    raw_query: str,
    resource_type: str | None,
    source: str,
    target: str,
    *,
    strict: bool = True,
) -> str:
    """``raw_query`` (a ``source``-version search on ``resource_type``) as ``target`` spells it.

    Untouched parameters keep their exact bytes. ``strict=False`` (paging links) leaves a
    parameter that cannot be expressed as it was instead of raising.
    """
    if source == target or not raw_query:
        return raw_query
    kind = type_name(resource_type, "r4") if resource_type else None
    out: list[str] = []
    sorts: list[tuple[str, str, str]] = []
    sort_at: int | None = None
    for piece in raw_query.split("&"):
        raw_name, _, raw_value = piece.partition("=")
        name = unquote_plus(raw_name)
        if name.partition(":")[0] == "_sort":
            if sort_at is None:
                sort_at = len(out)
                out.append("")  # the sort goes here once all its pieces are known
            sorts.append((piece, name, unquote_plus(raw_value)))
            continue
        try:
            out.extend(_convert_piece(piece, kind, source, target, request=strict))
        except ParameterNotConvertible:
            if strict:
                raise
            out.append(piece)
    if sort_at is not None:
        try:
            out[sort_at] = "&".join(_convert_sort(sorts, kind, source, target))
        except ParameterNotConvertible:
            if strict:
                raise
            out[sort_at] = "&".join(piece for piece, _, _ in sorts)
    return "&".join(out)


def _convert_piece(
    piece: str, kind: str | None, source: str, target: str, *, request: bool = True
) -> list[str]:
    raw_name, equals, raw_value = piece.partition("=")
    if not raw_name:
        return [piece]
    name = unquote_plus(raw_name)
    value = unquote_plus(raw_value)
    converted = _convert_param(name, value, kind, source, target, request=request)
    if converted == [(name, value)]:
        return [piece]
    pieces = []
    for new_name, new_value in converted:
        encoded_name = raw_name if new_name == name else quote(new_name, safe=_SAFE_NAME)
        encoded_value = raw_value if new_value == value else quote(new_value, safe=_SAFE_VALUE)
        pieces.append(f"{encoded_name}{equals or '='}{encoded_value}")
    return pieces


def _convert_param(
    name: str, value: str, kind: str | None, source: str, target: str, *, request: bool = True
) -> list[tuple[str, str]]:
    match = _NAME.match(name)
    if match is None:
        return [(name, value)]
    base, modifier, chain = match["base"], match["modifier"] or "", match["chain"] or ""
    if base in ("_include", "_revinclude"):
        return [(base + _include_modifier(modifier, target), _include(value, source, target))]
    if base == "_elements" and kind:
        return [(name, _elements(value, kind, source, target))]
    if base == "_format":
        return [(name, _format(value, target))]
    special = _special(kind, base, modifier, value, source, target)
    if special is not None:
        return special
    new_base = _rename(base, kind, source, target)
    new_modifier = _modifier(modifier, base, source, target)
    if modifier in ("", ":not") and not chain:
        value = _code_values(kind, base, value, source, target, request=request)
    return [(new_base + new_modifier + chain, _values(value, target))]


def _rename(name: str, kind: str | None, source: str, target: str) -> str:
    """A parameter name in ``target``; raises when ``source`` defines it and ``target`` cannot."""
    rows = (*_ROWS.get(kind or "", ()), *_COMMON_ROWS)
    return _lookup(rows, name, source, target) or name


def _lookup(rows: Iterable[Row], name: str, source: str, target: str) -> str | None:
    """The target column of the first row matching ``name`` in ``source``; None: no row."""
    for row in rows:
        if row[_COLUMN[source]] == name:
            found = row[_COLUMN[target]]
            if found is None:
                raise ParameterNotConvertible(name, source, target)
            return found
    return None


def _modifier(modifier: str, base: str, source: str, target: str) -> str:
    word = modifier[1:]
    if not word:
        return modifier
    if word in _R4_ONLY_MODIFIERS and target != "r4":
        raise ParameterNotConvertible(f"{base}:{word}", source, target, "R4-only modifier")
    if word[:1].isupper():  # a reference parameter's type modifier (subject:Patient)
        return ":" + _type_or_raise(word, base, source, target)
    return modifier


def _type_or_raise(resource_type: str, parameter: str, source: str, target: str) -> str:
    try:
        return _type_for(resource_type, target)
    except ConversionError:
        raise ParameterNotConvertible(parameter, source, target, "resource type") from None


def _values(value: str, target: str) -> str:
    """Token systems (§14.4) and reference types (§2.2) of every comma-separated value."""
    if "|" not in value and "/" not in value:
        return value
    parts = value.split(",")
    changed = [_value(part, target) for part in parts]
    return value if changed == parts else ",".join(changed)


def _value(part: str, target: str) -> str:
    if "|" in part and "://" in part.partition("|")[0]:
        part = token_for(part, target)
    if "/" in part:
        part = reference_string(part, target)
    return part


def _format(value: str, target: str) -> str:
    # An unencoded "+" arrives as a space (application/json+fhir): read it back as "+".
    media_type, semicolon, rest = value.partition(";")
    if media_type.strip().replace(" ", "+") in _FHIR_JSON:
        return JSON_MIME_TYPES[target] + semicolon + rest
    return value


# -- token values the converters translate (§14.4) ----------------------------------------------

# Per (resource type, R4 parameter name): how the converters translate the element's codes,
# one step at a time, as {(from, to): {code: code in "to", or None: no counterpart}}, and the
# codes each release has (None: an open set, whose other codes pass unchanged). The tables are
# the converters' own, so a search finds what the same search finds on the provider's data.
Steps = Mapping[tuple[str, str], Mapping[str, str | None]]


@functools.cache
def _code_tables() -> dict[tuple[str, str], tuple[Steps, Mapping[str, frozenset[str] | None]]]:
    from shared.fhir.convert import condition, encounter, medication_request, observation

    def identity(codes: Iterable[str]) -> dict[str, str | None]:
        return {code: code for code in codes}

    clinical_dstu2 = frozenset(condition._CLINICAL_TO_DSTU2.values())
    clinical_stu3 = frozenset(condition._CLINICAL_TO_R4)
    clinical_r4 = frozenset(condition._CLINICAL_TO_STU3)
    encounter_dstu2 = encounter._DSTU2_STATUSES
    encounter_stu3 = encounter_dstu2 | {"triaged", "entered-in-error", "unknown"}
    order_dstu2 = medication_request._STATUSES_DSTU2
    order_stu3 = order_dstu2 | {"cancelled", "unknown"}
    intents_stu3 = frozenset({"proposal", "plan", "order", "instance-order"})
    observation_dstu2 = frozenset(
        {"registered", "preliminary", "final", "amended", "cancelled", "entered-in-error"}
        | {"unknown"}
    )
    return {
        ("Condition", "clinical-status"): (
            {
                ("r4", "stu3"): condition._CLINICAL_TO_STU3,
                ("stu3", "r4"): identity(clinical_stu3),
                ("stu3", "dstu2"): {**condition._CLINICAL_TO_DSTU2, "inactive": None},
                ("dstu2", "stu3"): condition._CLINICAL_FROM_DSTU2,
            },
            {"dstu2": clinical_dstu2, "stu3": clinical_stu3, "r4": clinical_r4},
        ),
        ("Condition", "verification-status"): (
            {
                ("r4", "stu3"): condition._VERIFICATION_TO_STU3,
                ("stu3", "r4"): {**condition._VERIFICATION_TO_R4, "unknown": None},
            },
            {
                "stu3": condition._VERIFICATION_OLD,
                "r4": frozenset(condition._VERIFICATION_TO_STU3),
            },
        ),
        ("Condition", "category"): (
            {
                ("stu3", "dstu2"): condition._CATEGORY_TO_DSTU2,
                ("dstu2", "stu3"): condition._CATEGORY_FROM_DSTU2,
            },
            {"dstu2": None, "stu3": None, "r4": None},
        ),
        ("Encounter", "status"): (
            {
                # unknown has no DSTU2 value (a marked absent status): no search finds it.
                ("stu3", "dstu2"): {**identity(encounter_dstu2), "triaged": "arrived"}
                | {"unknown": None, "entered-in-error": None},
            },
            {"dstu2": encounter_dstu2, "stu3": encounter_stu3, "r4": encounter_stu3},
        ),
        ("Encounter", "class"): (
            # Synthea's STU3 writes DSTU2 class codes without a system; R4 reads them as ActCode.
            {("stu3", "r4"): encounter._CLASS_FROM_DSTU2},
            {"stu3": None, "r4": None},
        ),
        ("MedicationRequest", "status"): (
            {
                ("stu3", "dstu2"): {
                    **identity(order_dstu2),
                    **medication_request._STATUS_DSTU2,
                    "unknown": None,
                },
            },
            {"dstu2": order_dstu2, "stu3": order_stu3, "r4": order_stu3},
        ),
        ("MedicationRequest", "intent"): (
            {("r4", "stu3"): medication_request._INTENT_STU3},
            {"stu3": intents_stu3, "r4": intents_stu3 | frozenset(medication_request._INTENT_STU3)},
        ),
        ("Observation", "status"): (
            {("stu3", "dstu2"): observation._STATUS_TO_DSTU2},
            {
                "dstu2": observation_dstu2,
                "stu3": observation_dstu2 | {"corrected"},
                "r4": observation_dstu2 | {"corrected"},
            },
        ),
    }


def _image(
    code: str,
    steps: Steps,
    codes: Mapping[str, frozenset[str] | None],
    path: Iterable[tuple[str, str]],
) -> str | None:
    """What the converters make of ``code`` over ``path`` (a chain of steps); None: nothing."""
    current: str | None = code
    for step in path:
        if current is None:
            return None
        table = steps.get(step, {})
        if current in table:
            current = table[current]
        elif codes.get(step[0]) is not None and current not in (codes[step[0]] or ()):
            return None
    return current


def _code_values(
    kind: str | None, base: str, value: str, source: str, target: str, *, request: bool
) -> str:
    """Token codes as the converters translate them (§14.4). A request looks for every
    ``target`` code whose conversion shows as the asked one (``stopped`` asks for stopped and
    cancelled of an R4 provider); a paging link shows each ``target`` code as the face reads
    it. A request none of whose codes exists in ``target`` is refused."""
    if kind is None or source == target:
        return value
    try:
        r4_name = base if source == "r4" else _rename(base, kind, source, "r4")
    except ParameterNotConvertible:
        return value
    found = _code_tables().get((kind, r4_name))
    if found is None:
        return value
    steps, codes = found
    provider, face = (target, source) if request else (source, target)
    path = tuple(_chain(provider, face))
    out: list[str] = []
    for part in value.split(","):
        system, bar, code = part.rpartition("|")
        known = codes.get(source)
        if known is not None and code not in known:
            matches = [code]  # no code of its release: passed on for the server to judge
        elif request:
            domain = codes.get(provider)
            candidates = (
                domain if domain is not None else {code, *(k for t in steps.values() for k in t)}
            )
            matches = sorted(c for c in candidates if _image(c, steps, codes, path) == code)
        else:
            image = _image(code, steps, codes, path)
            matches = [] if image is None else [image]
        out += [f"{system}{bar}{match}" for match in matches if f"{system}{bar}{match}" not in out]
    if not out:
        if request:
            raise ParameterNotConvertible(base, source, target, "no such code there")
        return value
    return ",".join(out)


def _chain(source: str, target: str) -> list[tuple[str, str]]:
    order = [version.value for version in VERSIONS]
    start, end = order.index(source), order.index(target)
    step = 1 if end > start else -1
    return [(order[i], order[i + step]) for i in range(start, end, step)]


# -- parameters whose meaning, not only name, changes ------------------------------------------


def _special(
    kind: str | None, base: str, modifier: str, value: str, source: str, target: str
) -> list[tuple[str, str]] | None:
    if kind == "Patient" and base == "id":
        # `id` is no search parameter in any release; the app means `_id` (§14.2 proxy decision).
        return [("_id" + modifier, value)]
    if kind == "Coverage" and base == "patient":
        return _coverage_patient(modifier, value, source, target)
    if kind == "AllergyIntolerance":
        if source == "dstu2" and base == "status":
            return _allergy_split(modifier, value, source, target)
        if target == "dstu2" and base in ("clinical-status", "verification-status"):
            return _allergy_join(base, modifier, value, source, target)
    return None


def _coverage_patient(modifier: str, value: str, source: str, target: str) -> list[tuple[str, str]]:
    # The app sends Coverage?patient in every release although only R4 defines it (§14.2).
    if target == "r4":
        return [("patient" + modifier, value)]
    if target == "stu3" and not modifier:
        ids = ",".join(v if "/" in v else f"Patient/{v}" for v in value.split(","))
        return [("beneficiary", ids)]
    raise ParameterNotConvertible("patient", source, target, "Coverage has no patient link")


def _allergy_split(modifier: str, value: str, source: str, target: str) -> list[tuple[str, str]]:
    if modifier not in ("", ":not"):
        raise ParameterNotConvertible("status" + modifier, source, target)
    codes = [part.rpartition("|")[2] for part in value.split(",")]
    names = {_ALLERGY_STATUS_SPLIT.get(code) for code in codes}
    if len(names) != 1 or None in names:
        raise ParameterNotConvertible(
            "status", source, target, "mixes clinical and verification statuses"
        )
    return [(f"{names.pop()}{modifier}", ",".join(codes))]


def _allergy_join(
    base: str, modifier: str, value: str, source: str, target: str
) -> list[tuple[str, str]]:
    if modifier:
        raise ParameterNotConvertible(base + modifier, source, target)
    codes: list[str] = []
    for part in value.split(","):
        found = _ALLERGY_STATUS_JOIN.get((base, part.rpartition("|")[2]))
        if found is None:
            raise ParameterNotConvertible(base, source, target, "status code")
        codes += [code for code in found if code not in codes]
    return [("status", ",".join(codes))]


# -- result parameters (§14.1) -----------------------------------------------------------------


def _include_modifier(modifier: str, target: str) -> str:
    # STU3's :recurse became :iterate in R4.
    if modifier in (":recurse", ":iterate"):
        return ":iterate" if target == "r4" else ":recurse"
    return modifier


def _include(value: str, source: str, target: str) -> str:
    """``Type:param[:Target]`` with the types and the parameter in ``target``'s names."""
    parts = value.split(":")
    if len(parts) not in (2, 3) or not parts[0][:1].isupper():
        return value
    owner = parts[0]
    parameter = _rename(parts[1], type_name(owner, "r4"), source, target)
    out = [_type_or_raise(owner, "_include", source, target), parameter]
    if len(parts) == 3:
        out.append(_type_or_raise(parts[2], "_include", source, target))
    return ":".join(out)


def _elements(value: str, kind: str, source: str, target: str) -> str:
    rows = _ELEMENT_ROWS.get(kind, ())
    names = value.split(",")
    converted = [_lookup(rows, n.strip(), source, target) or n for n in names]
    return value if converted == names else ",".join(converted)


def _convert_sort(
    pieces: list[tuple[str, str, str]], kind: str | None, source: str, target: str
) -> list[str]:
    """Every ``_sort`` piece in either syntax (§14.1) as ``target`` writes sorting."""
    keys: list[tuple[str, bool]] = []  # (parameter, descending)
    for _, name, value in pieces:
        modifier = name.partition(":")[2]
        for key in filter(None, value.split(",")):
            descending = modifier == "desc" or (not modifier and key.startswith("-"))
            keys.append((_rename(key.lstrip("-"), kind, source, target), descending))
    if target == "dstu2":
        wanted = [("_sort:desc" if down else "_sort", key) for key, down in keys]
    else:
        wanted = [("_sort", ",".join(("-" if down else "") + key for key, down in keys))]
    if wanted == [(name, value) for _, name, value in pieces]:
        return [piece for piece, _, _ in pieces]
    return [f"{name}={quote(value, safe=_SAFE_VALUE)}" for name, value in wanted]


# -- paging links and batches ------------------------------------------------------------------


def convert_link_url(url: str, source: str, target: str) -> str:
    """A Bundle link (absolute or relative) with its type and query in ``target``'s spelling.

    The base part is left alone (the proxy rewrites the host later); the provider's opaque
    paging parameters pass unchanged; nothing raises.
    """
    if source == target:
        return url
    head, question, query = url.partition("?")
    segments = head.split("/")
    kind = None
    for index in range(len(segments) - 1, -1, -1):
        if segments[index] in _LINK_TYPES:
            kind = segments[index]
            try:
                segments[index] = _type_for(kind, target)
            except ConversionError:
                return url
            break
    query = convert_query(query, kind, source, target, strict=False) if question else query
    return "/".join(segments) + question + query


def convert_links(document: Any, source: str, target: str) -> None:
    """Rewrite (in place) the links of a Bundle and of the Bundles nested in its entries."""
    if not isinstance(document, dict) or document.get("resourceType") != "Bundle":
        return
    for link in document.get("link") or ():
        if isinstance(link, dict) and isinstance(link.get("url"), str):
            link["url"] = convert_link_url(link["url"], source, target)
    for entry in document.get("entry") or ():
        if isinstance(entry, dict):
            resource = entry.get("resource")
            if isinstance(resource, dict) and resource.get("resourceType") == "Bundle":
                convert_links(resource, source, target)


def convert_request_url(url: str, source: str, target: str) -> str:
    """A relative request URL (``MedicationOrder?patient=1``) for ``target``; raises as above."""
    path, question, query = url.partition("?")
    lead = "/" if path.startswith("/") else ""
    relative = path[len(lead) :]
    converted = convert_path(relative, source, target)
    query = convert_query(query, resource_type_of(relative), source, target)
    return lead + converted + question + query


def convert_batch_request(bundle: Mapping[str, Any], source: str, target: str) -> dict[str, Any]:
    """A batch Bundle of requests with every ``entry.request.url`` in ``target``'s spelling.

    Only what a batch of reads needs is kept (type, id, entries' request and fullUrl); the input
    is not changed. Entries that carry a resource keep it unconverted: the proxy forwards
    GET entries only (batch.parse_batch).
    """
    out: dict[str, Any] = {"resourceType": "Bundle"}
    for key in ("id", "type"):
        if key in bundle:
            out[key] = bundle[key]
    entries = []
    for index, entry in enumerate(bundle.get("entry") or ()):
        if not isinstance(entry, dict):
            entries.append(entry)
            continue
        converted = {k: v for k, v in entry.items() if k in ("fullUrl", "request", "resource")}
        request = entry.get("request")
        if isinstance(request, dict) and isinstance(request.get("url"), str):
            try:
                url = convert_request_url(request["url"], source, target)
            except ConversionError as error:
                error.args = (f"entry {index}: {error}",)
                raise
            converted["request"] = {k: v for k, v in request.items() if k != "fhir_comments"}
            converted["request"]["url"] = url
        entries.append(converted)
    if entries or "entry" in bundle:
        out["entry"] = entries
    return out
