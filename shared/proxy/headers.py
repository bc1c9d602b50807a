"""Which headers cross the proxy in each direction, and content negotiation (JSON only).

Both directions are allow-lists: a header not named here is dropped, so new hop-by-hop,
forwarding or credential headers never leak by default. The deny-lists below exist for
documentation and tests (RFC 9110 §7.6.1, RFC 9700 §4.9 and §4.13, docs/security.md §2).

Cache-Control: the provider's value is never passed on. A provider answering
``Cache-Control: public, max-age=…`` would let a shared cache (a CDN, a corporate proxy) store
one tenant's patient data and serve it to another caller, and nothing here can tell the cache
that the answer depends on our bearer token. Every proxied answer says ``Cache-Control:
no-store`` instead. ETag and Last-Modified still pass, so a client can make conditional
requests (If-None-Match and If-Modified-Since are forwarded).
"""

from __future__ import annotations

import re
import uuid

from shared.http import Headers
from shared.proxy.errors import InvalidRequest, ProxyError

FORWARDED_REQUEST_HEADERS = (
    "Accept",
    "Content-Type",
    "Prefer",
    "If-None-Match",
    "If-Modified-Since",
)
"""The only client headers the provider sees (plus our X-Request-Id and its own auth)."""

FORWARDED_RESPONSE_HEADERS = (
    "Content-Type",
    "ETag",
    "Last-Modified",
    "Location",
    "Content-Location",
    "Link",
    "Retry-After",
    "X-Request-Id",
)
"""The only provider headers the caller sees. Location, Content-Location and Link still need
``UrlRewriter.header``; X-Request-Id is replaced by the handler's own when it sets one."""

RESPONSE_CACHE_CONTROL = "no-store"

JSON_MEDIA_TYPES = frozenset({"application/json", "application/fhir+json", "application/json+fhir"})
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
JSON_PATCH_MEDIA_TYPE = "application/json-patch+json"
_ACCEPT_WILDCARDS = frozenset({"*/*", "application/*"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_REQUEST_ID = re.compile(r"[A-Za-z0-9._\-]{1,128}")
_UNSAFE_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def request_id(incoming: Headers) -> str:
    """The caller's X-Request-Id when it is a plain token, else a new random one."""
    value = incoming.get("X-Request-Id")
    if value is not None and _REQUEST_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


def upstream_request_headers(incoming: Headers, *, request_id: str, accept: str) -> Headers:
    """The headers to send to the provider: the allow-list, checked, plus Accept and X-Request-Id.

    ``accept`` (the provider's FHIR JSON media type) replaces a missing or ``*/*`` Accept.
    Content-Length is left to the transport, which computes it from the body it sends.
    Raises ``InvalidRequest`` for CR, LF, NUL or other control characters in a copied value.
    """
    named_by_connection = _connection_tokens(incoming)
    out = Headers()
    for name in FORWARDED_REQUEST_HEADERS:
        if name.lower() in named_by_connection:
            continue
        values = incoming.get_all(name)
        for value in values:
            if _UNSAFE_VALUE.search(value):
                raise InvalidRequest("a request header contains control characters")
        if name == "Content-Type" and len({v.strip().lower() for v in values}) > 1:
            raise InvalidRequest("conflicting Content-Type headers")
        if name == "Accept" and _is_wildcard_accept(values):
            continue
        for value in values:
            out.add(name, value.strip())
    if "Accept" not in out:
        out.set("Accept", accept)
    if not _REQUEST_ID.fullmatch(request_id):
        raise InvalidRequest("invalid request id")
    out.set("X-Request-Id", request_id)
    return out


def downstream_response_headers(upstream: Headers) -> Headers:
    """The provider's headers the caller may see, plus ``Cache-Control: no-store``.

    A value with control characters is dropped rather than passed on (no response splitting);
    so is an X-Request-Id that is not a plain token.
    """
    named_by_connection = _connection_tokens(upstream)
    out = Headers()
    for name in FORWARDED_RESPONSE_HEADERS:
        if name.lower() in named_by_connection:
            continue
        for value in upstream.get_all(name):
            if _UNSAFE_VALUE.search(value):
                continue
            if name == "X-Request-Id" and not _REQUEST_ID.fullmatch(value.strip()):
                continue
            out.add(name, value.strip())
    out.set("Cache-Control", RESPONSE_CACHE_CONTROL)
    return out


def is_json_patch(content_type: str | None) -> bool:
    """True for an ``application/json-patch+json`` body (RFC 6902)."""
    return content_type is not None and _media_type(content_type)[0] == JSON_PATCH_MEDIA_TYPE


def check_content_negotiation(incoming: Headers, method: str, *, json_patch: bool = False) -> None:
    """Refuse what the proxy cannot answer in JSON (406) or read as JSON or a form (415).

    ``json_patch``: a PATCH may carry a JSON Patch (the caller has checked writes are allowed).
    """
    accepts = incoming.get_all("Accept")
    if accepts and not _accepts_json(accepts):
        raise ProxyError("only JSON responses are supported", status=406, code="not-supported")
    if method.upper() not in _BODY_METHODS:
        return
    content_type = incoming.get("Content-Type")
    if content_type is None:
        return
    media_type, params = _media_type(content_type)
    patch = json_patch and method.upper() == "PATCH" and media_type == JSON_PATCH_MEDIA_TYPE
    if media_type not in JSON_MEDIA_TYPES and media_type != FORM_MEDIA_TYPE and not patch:
        raise ProxyError(
            "request body must be FHIR JSON or a search form", status=415, code="not-supported"
        )
    charset = params.get("charset")
    if charset is not None and charset.lower() not in ("utf-8", "utf8"):
        raise ProxyError("request body must be UTF-8", status=415, code="not-supported")


def _connection_tokens(headers: Headers) -> frozenset[str]:
    """Lower-cased field names listed in every Connection header (RFC 9110 §7.6.1)."""
    return frozenset(
        token.strip().lower()
        for value in headers.get_all("Connection")
        for token in value.split(",")
        if token.strip()
    )


def _media_type(value: str) -> tuple[str, dict[str, str]]:
    """``type/subtype`` lower-cased and its parameters (names lower-cased, quotes removed)."""
    head, *rest = value.split(";")
    params: dict[str, str] = {}
    for part in rest:
        key, _, val = part.partition("=")
        params[key.strip().lower()] = val.strip().strip('"')
    return head.strip().lower(), params


def _accept_ranges(values: list[str]) -> list[tuple[str, float]]:
    """Each media range of the Accept values with its q (1.0 when absent or unreadable)."""
    ranges: list[tuple[str, float]] = []
    for value in values:
        for item in value.split(","):
            if not item.strip():
                continue
            media_type, params = _media_type(item)
            try:
                q = float(params.get("q", "1"))
            except ValueError:
                q = 1.0
            ranges.append((media_type, q))
    return ranges


def _is_wildcard_accept(values: list[str]) -> bool:
    ranges = _accept_ranges(values)
    return bool(ranges) and all(media_type == "*/*" for media_type, _ in ranges)


def _accepts_json(values: list[str]) -> bool:
    ranges = _accept_ranges(values)
    if not ranges:
        return True
    acceptable = JSON_MEDIA_TYPES | _ACCEPT_WILDCARDS
    return any(media_type in acceptable and q > 0 for media_type, q in ranges)
