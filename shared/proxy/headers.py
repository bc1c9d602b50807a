"""Which headers cross the proxy in each direction (content negotiation: shared.fhir.media).

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

from shared.fhir.errors import InvalidRequest
from shared.fhir.media import REQUEST_ID, is_wildcard_accept
from shared.http import Headers

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

_UNSAFE_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


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
        if name == "Accept" and is_wildcard_accept(values):
            continue
        for value in values:
            out.add(name, value.strip())
    if "Accept" not in out:
        out.set("Accept", accept)
    if not REQUEST_ID.fullmatch(request_id):
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
            if name == "X-Request-Id" and not REQUEST_ID.fullmatch(value.strip()):
                continue
            out.add(name, value.strip())
    out.set("Cache-Control", RESPONSE_CACHE_CONTROL)
    return out


def _connection_tokens(headers: Headers) -> frozenset[str]:
    """Lower-cased field names listed in every Connection header (RFC 9110 §7.6.1)."""
    return frozenset(
        token.strip().lower()
        for value in headers.get_all("Connection")
        for token in value.split(",")
        if token.strip()
    )
