"""Media types and content negotiation for FHIR over HTTP: JSON only, forms for search.

Shared by everything that serves FHIR (the proxy's faces, the sandbox provider): what a request
may send (FHIR JSON, a search form, JSON Patch where writes are allowed), what it may ask for
(JSON; 406 otherwise), and the request id that ties an answer to its log lines.
"""

from __future__ import annotations

import re
import uuid

from shared.fhir.errors import FhirError
from shared.http import Headers

JSON_MEDIA_TYPES = frozenset({"application/json", "application/fhir+json", "application/json+fhir"})
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
JSON_PATCH_MEDIA_TYPE = "application/json-patch+json"
_ACCEPT_WILDCARDS = frozenset({"*/*", "application/*"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
REQUEST_ID = re.compile(r"[A-Za-z0-9._\-]{1,128}")
"""What a request id may look like: a plain token, safe in a header and a log line."""


def request_id(incoming: Headers, fallback: str | None = None) -> str:
    """The caller's X-Request-Id when it is a plain token, else ``fallback`` (the trace id),
    else a new random one."""
    value = incoming.get("X-Request-Id")
    if value is not None and REQUEST_ID.fullmatch(value):
        return value
    return fallback or uuid.uuid4().hex


def is_json_patch(content_type: str | None) -> bool:
    """True for an ``application/json-patch+json`` body (RFC 6902)."""
    return content_type is not None and media_type_of(content_type)[0] == JSON_PATCH_MEDIA_TYPE


def check_content_negotiation(incoming: Headers, method: str, *, json_patch: bool = False) -> None:
    """Refuse what cannot be answered in JSON (406) or read as JSON or a form (415).

    ``json_patch``: a PATCH may carry a JSON Patch (the caller has checked writes are allowed).
    """
    accepts = incoming.get_all("Accept")
    if accepts and not accepts_json(accepts):
        raise FhirError("only JSON responses are supported", status=406, code="not-supported")
    if method.upper() not in _BODY_METHODS:
        return
    content_type = incoming.get("Content-Type")
    if content_type is None:
        return
    media_type, params = media_type_of(content_type)
    patch = json_patch and method.upper() == "PATCH" and media_type == JSON_PATCH_MEDIA_TYPE
    if media_type not in JSON_MEDIA_TYPES and media_type != FORM_MEDIA_TYPE and not patch:
        raise FhirError(
            "request body must be FHIR JSON or a search form", status=415, code="not-supported"
        )
    charset = params.get("charset")
    if charset is not None and charset.lower() not in ("utf-8", "utf8"):
        raise FhirError("request body must be UTF-8", status=415, code="not-supported")


def media_type_of(value: str) -> tuple[str, dict[str, str]]:
    """``type/subtype`` lower-cased and its parameters (names lower-cased, quotes removed)."""
    head, *rest = value.split(";")
    params: dict[str, str] = {}
    for part in rest:
        key, _, val = part.partition("=")
        params[key.strip().lower()] = val.strip().strip('"')
    return head.strip().lower(), params


def accept_ranges(values: list[str]) -> list[tuple[str, float]]:
    """Each media range of the Accept values with its q (1.0 when absent or unreadable)."""
    ranges: list[tuple[str, float]] = []
    for value in values:
        for item in value.split(","):
            if not item.strip():
                continue
            media_type, params = media_type_of(item)
            try:
                q = float(params.get("q", "1"))
            except ValueError:
                q = 1.0
            ranges.append((media_type, q))
    return ranges


def is_wildcard_accept(values: list[str]) -> bool:
    """True when every Accept range is ``*/*`` (the caller named no type)."""
    ranges = accept_ranges(values)
    return bool(ranges) and all(media_type == "*/*" for media_type, _ in ranges)


def accepts_json(values: list[str]) -> bool:
    """True when the Accept values allow a JSON answer (no Accept allows anything)."""
    ranges = accept_ranges(values)
    if not ranges:
        return True
    acceptable = JSON_MEDIA_TYPES | _ACCEPT_WILDCARDS
    return any(media_type in acceptable and q > 0 for media_type, q in ranges)
