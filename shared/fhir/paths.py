"""Which FHIR paths and search parameters the proxy forwards, and how it builds upstream URLs.

Everything here is pure: strings in, values or a ``FhirError`` out. The rules follow
docs/security.md §2 "SSRF and traversal" and "FHIR search injection":

- the raw path is percent-decoded exactly once and then split on "/"; nothing that could turn
  into a dot segment, an authority, a scheme or a second decoding round survives;
- what survives must fit an allow-listed grammar (resource type, id, ``_search``, ``_history``);
- the upstream URL is the tenant's base plus re-encoded segments, never ``urljoin`` and never
  concatenation of caller input, and is checked once more against the base before it is used.

Both forms the Functions host may hand us are covered: deployed Azure decodes ``%2F`` (and more)
before routing, local hosts do not. Encoded slashes are refused, and a decoded one only splits
the path into segments that the grammar then judges.

Diagnostics name the rule that failed and never echo the input.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from urllib.parse import quote, unquote_to_bytes, urlsplit

from shared.fhir.catalog import RESOURCE_TYPES
from shared.fhir.errors import FhirError, InvalidRequest, NotFound
from shared.fhir.versions import VERSIONS

ALLOWED_TYPES: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        version.value: frozenset(t.name_in(version) for t in RESOURCE_TYPES if t.proxied)
        for version in VERSIONS
    }
)
"""Resource types each face forwards, by that face's names (the catalogue's proxied types).
``metadata`` is not one: it is served by its own route."""

ALLOWED_OPERATIONS: frozenset[str] = frozenset()
"""``$operation`` names the proxy forwards (without the ``$``). None yet."""

MAX_COUNT = 1000
"""Largest ``_count`` a search may ask for."""

MAX_CHAIN_DOTS = 2
"""Most dots in one search parameter name (``subject.organization.name`` has two)."""

JSON_FORMATS = frozenset(
    {"json", "application/json", "application/fhir+json", "application/json+fhir"}
)
"""``_format`` values that keep the answer JSON (the last is DSTU2's media type)."""

_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_OPERATION = re.compile(r"\$[A-Za-z][A-Za-z0-9\-]{0,63}")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ENCODED_SEPARATOR = re.compile(r"%(?:2[Ff]|5[Cc])")
_COUNT = re.compile(r"[0-9]{1,7}")
# Printable ASCII without space: everything a valid path or query needs, once decoded.
_PRINTABLE = re.compile(r"[!-~]*")
_NOT_ACCEPTABLE = 406


@dataclass(frozen=True)
class FhirPath:
    """A validated FHIR path relative to a face's base.

    ``interaction`` is ``base`` (no segments), ``type`` (``Patient``), ``instance``
    (``Patient/1``), ``search-post`` (``Patient/_search``; only valid with POST, which the
    caller checks), ``history`` (``Patient/1/_history`` or ``Patient/1/_history/2``) or
    ``operation`` (only for names in the allowed operations, none by default).
    """

    segments: tuple[str, ...]
    resource_type: str | None
    resource_id: str | None
    interaction: str

    @property
    def version_id(self) -> str | None:
        """The version of ``Type/id/_history/vid``, else None."""
        if self.interaction == "history" and len(self.segments) == 4:
            return self.segments[3]
        return None

    @property
    def relative(self) -> str:
        """The path to send upstream, each segment percent-encoded (``$`` kept literal)."""
        return "/".join(_encode_segment(s) for s in self.segments)


def _encode_segment(segment: str) -> str:
    # "$" stays literal: servers route "$everything" on the raw path, and "$" can form neither
    # an authority nor a dot segment. Every other character outside unreserved is encoded.
    return quote(segment, safe="$")


def face_relative_path(url_path: str, face: str, route_prefix: str = "api") -> str:
    """The raw part of ``url_path`` after ``/<route_prefix>/fhir/<face>/``; "" for the base.

    The prefix is matched case-insensitively (the Functions host routes that way); the rest is
    returned exactly as sent, still percent-encoded, for ``parse_fhir_path``.
    """
    prefix = f"/{route_prefix}/fhir/{face}" if route_prefix else f"/fhir/{face}"
    head = url_path[: len(prefix)]
    if head.lower() != prefix.lower():
        raise InvalidRequest("request path is outside this FHIR endpoint")
    rest = url_path[len(prefix) :]
    if rest in ("", "/"):
        return ""
    if not rest.startswith("/"):
        raise InvalidRequest("request path is outside this FHIR endpoint")
    return rest[1:]


def parse_fhir_path(
    raw_path: str,
    *,
    allowed_types: frozenset[str],
    allowed_operations: frozenset[str] = ALLOWED_OPERATIONS,
) -> FhirPath:
    """Decode ``raw_path`` once, refuse anything unsafe, and match it against the grammar.

    Raises ``InvalidRequest`` (400) for unsafe or malformed paths and ``NotFound`` (404) for a
    resource type this face does not serve.
    """
    if raw_path == "":
        return FhirPath((), None, None, "base")
    decoded = _decode_path(raw_path)
    segments = tuple(decoded.split("/"))
    for segment in segments:
        if segment == "":
            raise InvalidRequest("empty path segments are not allowed")
        if segment.strip(".") == "":
            raise InvalidRequest("dot segments are not allowed in the path")
    return _match_grammar(segments, allowed_types, allowed_operations)


def _decode_path(raw_path: str) -> str:
    if not _PRINTABLE.fullmatch(raw_path):
        raise InvalidRequest("path contains control, space or non-ASCII characters")
    if "\\" in raw_path:
        raise InvalidRequest("backslashes are not allowed in the path")
    if _ENCODED_SEPARATOR.search(raw_path):
        raise InvalidRequest("encoded slashes are not allowed in the path")
    if _BAD_PERCENT.search(raw_path):
        raise InvalidRequest("malformed percent-encoding in the path")
    try:
        decoded = unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("path is not valid UTF-8") from None
    if "%" in decoded:
        raise InvalidRequest("double percent-encoding is not allowed in the path")
    if not _PRINTABLE.fullmatch(decoded):
        raise InvalidRequest("path contains control, space or non-ASCII characters")
    if "\\" in decoded:
        raise InvalidRequest("backslashes are not allowed in the path")
    if _SCHEME.match(decoded) and "://" in decoded:
        raise InvalidRequest("absolute URLs are not allowed in the path")
    if "@" in decoded or ":" in decoded:
        raise InvalidRequest("'@' and ':' are not allowed in the path")
    return decoded


def _match_grammar(
    segments: tuple[str, ...], allowed_types: frozenset[str], allowed_operations: frozenset[str]
) -> FhirPath:
    first = segments[0]
    if first.startswith("$"):
        _check_operation(first, allowed_operations)
        if len(segments) > 1:
            raise InvalidRequest("path is deeper than the FHIR grammar allows")
        return FhirPath(segments, None, None, "operation")
    if first not in allowed_types:
        raise NotFound("unsupported resource type")
    if len(segments) == 1:
        return FhirPath(segments, first, None, "type")
    second = segments[1]
    if second == "_search":
        if len(segments) > 2:
            raise InvalidRequest("path is deeper than the FHIR grammar allows")
        return FhirPath(segments, first, None, "search-post")
    if second.startswith("$"):
        _check_operation(second, allowed_operations)
        if len(segments) > 2:
            raise InvalidRequest("path is deeper than the FHIR grammar allows")
        return FhirPath(segments, first, None, "operation")
    if not _ID.fullmatch(second):
        raise InvalidRequest("invalid resource id")
    if len(segments) == 2:
        return FhirPath(segments, first, second, "instance")
    third = segments[2]
    if third.startswith("$"):
        _check_operation(third, allowed_operations)
        if len(segments) > 3:
            raise InvalidRequest("path is deeper than the FHIR grammar allows")
        return FhirPath(segments, first, second, "operation")
    if third != "_history":
        raise InvalidRequest("unsupported interaction in the path")
    if len(segments) == 3:
        return FhirPath(segments, first, second, "history")
    if len(segments) > 4:
        raise InvalidRequest("path is deeper than the FHIR grammar allows")
    if not _ID.fullmatch(segments[3]):
        raise InvalidRequest("invalid version id")
    return FhirPath(segments, first, second, "history")


def _check_operation(segment: str, allowed_operations: frozenset[str]) -> None:
    if not _OPERATION.fullmatch(segment) or segment[1:] not in allowed_operations:
        raise InvalidRequest("operation not allowed")


def upstream_url(provider_base: str, path: FhirPath, query: str) -> str:
    """``provider_base`` + "/" + the encoded segments (+ "?" + ``query`` when not empty).

    The result is checked against the base before it is returned: same scheme, same host and
    port, and a path equal to the base path or below it without empty or dot segments. A
    mismatch is a bug somewhere above; it raises ``InvalidRequest`` rather than sending anything
    to another host.
    """
    base = provider_base.rstrip("/")
    relative = path.relative
    url = f"{base}/{relative}" if relative else base
    if query:
        if not _PRINTABLE.fullmatch(query) or "#" in query:
            raise InvalidRequest("query contains characters that must be percent-encoded")
        url = f"{url}?{query}"
    want = urlsplit(base)
    got = urlsplit(url)
    below = got.path[len(want.path) + 1 :].split("/") if got.path != want.path else []
    same_path = got.path == want.path or (
        got.path.startswith(want.path + "/") and all(s.strip(".") for s in below)
    )
    if (
        got.scheme != want.scheme
        or got.netloc != want.netloc
        or not same_path
        or got.query != query
        or got.fragment
        or "@" in got.netloc
        or not want.scheme
        or not want.netloc
    ):
        raise InvalidRequest("upstream URL does not stay under the provider base")
    return url


def validate_query(raw_query: str, *, max_params: int = 100) -> list[tuple[str, str]]:
    """Check a raw query string and return its decoded (name, value) pairs in order.

    The caller forwards ``raw_query`` itself, byte for byte; the pairs are for decisions only.
    Repeats, blank values and modifiers (``family:contains``, ``_sort:desc``) are kept.
    """
    if raw_query == "":
        return []
    if not _PRINTABLE.fullmatch(raw_query) or "#" in raw_query:
        raise InvalidRequest("query contains characters that must be percent-encoded")
    pieces = [p for p in raw_query.split("&") if p]
    if len(pieces) > max_params:
        raise InvalidRequest("too many search parameters")
    if _BAD_PERCENT.search(raw_query):
        raise InvalidRequest("malformed percent-encoding in the query")
    pairs: list[tuple[str, str]] = []
    for piece in pieces:
        raw_name, _, raw_value = piece.partition("=")
        name, value = _decode_component(raw_name), _decode_component(raw_value)
        _check_parameter(name, value)
        pairs.append((name, value))
    return pairs


def parse_form_body(body: bytes, *, max_params: int = 100) -> list[tuple[str, str]]:
    """The parameters of an ``application/x-www-form-urlencoded`` ``_search`` body.

    Same rules as ``validate_query``: a form body is a query string in another place.
    """
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidRequest("form body must be percent-encoded ASCII") from None
    return validate_query(text, max_params=max_params)


def _decode_component(raw: str) -> str:
    try:
        text = unquote_to_bytes(raw.replace("+", " ")).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("query is not valid UTF-8") from None
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise InvalidRequest("query contains control characters")
    return text


def _check_parameter(name: str, value: str) -> None:
    if name == "":
        raise InvalidRequest("search parameter without a name")
    base = name.split(":", 1)[0]
    if base.lower() == "access_token":
        raise InvalidRequest("access tokens are not accepted in the query")
    if base == "_has":
        raise InvalidRequest("_has is not allowed")
    if base in ("_include", "_revinclude") and "*" in value.split(":"):
        raise InvalidRequest("wildcard _include and _revinclude are not allowed")
    if name.count(".") > MAX_CHAIN_DOTS:
        raise InvalidRequest("chained search parameter is too deep")
    if base == "_count" and (not _COUNT.fullmatch(value) or int(value) > MAX_COUNT):
        raise InvalidRequest(f"_count must be an integer from 0 to {MAX_COUNT}")
    if base == "_format":
        # An unencoded "+" (application/fhir+json) arrives as a space: read it back as "+".
        media_type = value.split(";", 1)[0].strip().lower().replace(" ", "+")
        if media_type not in JSON_FORMATS:
            raise FhirError(
                "only JSON formats are supported", status=_NOT_ACCEPTABLE, code="not-supported"
            )
