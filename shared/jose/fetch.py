"""One GET of another party's JSON document (a JWK Set, an OpenID configuration), bounded.

The URL must be https. The session is one of ``upstream_session``'s (the caller passes it), so
every connection obeys the address policy (``shared/net/guard.py``: public unicast only in
production), no redirect is followed and no cookie kept. The answer must be a 200 with a JSON
object of at most ``max_bytes``, arriving within ``deadline`` seconds in all (the (connect,
read) timeouts bound each wait; the deadline bounds a body trickling in). Its
``Cache-Control`` says how long it may be kept (``max_age``).

Two kinds of failure, because callers answer them differently: ``FetchUnavailable`` when the
server is down, slow, throttling or failing (5xx, 429): worth a retry later; ``FetchRefused``
for everything that a retry would not change (a refused address, a redirect, an untrusted
certificate, another status, too large, not a JSON object). Messages never repeat the URL, an
address or the body.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from shared.net.addresses import AddressRefused

if TYPE_CHECKING:
    import requests

MAX_DOCUMENT_BYTES = 64 * 1024
_MAX_AGE = re.compile(r"max-age\s*=\s*\"?(\d{1,10})\"?")


class FetchRefused(Exception):
    """The document cannot be used, and asking again would not change that."""


class FetchUnavailable(Exception):
    """The server did not answer usefully now; asking later may work."""


@dataclass(frozen=True)
class Fetched:
    """A fetched JSON object and how long its ``Cache-Control`` lets it be kept."""

    document: dict[str, Any]
    max_age: float | None
    """Seconds from ``max-age`` (0 for ``no-store``/``no-cache``); None: no directive."""


def cache_max_age(headers: Mapping[str, str]) -> float | None:
    """Seconds a response may be reused, from its ``Cache-Control`` (RFC 9111 §5.2.2)."""
    value = next((v for k, v in headers.items() if k.lower() == "cache-control"), None)
    if value is None:
        return None
    directives = value.lower()
    if "no-store" in directives or "no-cache" in directives:
        return 0.0
    match = _MAX_AGE.search(directives)
    return float(match[1]) if match else None


def fetch_json(
    session: requests.Session,
    url: str,
    *,
    timeout: tuple[float, float],
    deadline: float,
    max_bytes: int = MAX_DOCUMENT_BYTES,
    clock: Callable[[], float] = time.monotonic,
) -> Fetched:
    """GET ``url`` and return its JSON object; FetchRefused or FetchUnavailable otherwise."""
    import requests

    if urlsplit(url).scheme != "https":
        raise FetchRefused("the URL is not https")
    started = clock()
    try:
        response = session.get(
            url,
            headers={"Accept": "application/json"},
            timeout=timeout,
            allow_redirects=False,
            stream=True,
        )
    except AddressRefused as refused:
        raise FetchRefused(f"the host is {refused.reason}; EHR Bridge does not connect") from None
    except requests.exceptions.SSLError:
        raise FetchRefused("the server's TLS certificate is not trusted") from None
    except requests.exceptions.Timeout:
        raise FetchUnavailable("the server did not answer in time") from None
    except requests.exceptions.RequestException as error:
        raise FetchUnavailable(f"the server is unreachable ({type(error).__name__})") from None
    try:
        status = response.status_code
        if status == 429 or status >= 500:
            raise FetchUnavailable(f"the server answered HTTP {status}")
        if 300 <= status < 400:
            raise FetchRefused(f"the server redirected (HTTP {status}); not followed")
        if status != 200:
            raise FetchRefused(f"the server answered HTTP {status}")
        body = _read(response, max_bytes, started + deadline, clock)
        max_age = cache_max_age(response.headers)
    finally:
        response.close()
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        # RecursionError: deep nesting (docs/security.md §2, JSON bombs) is no document of ours.
        raise FetchRefused("the answer is not JSON") from None
    if not isinstance(document, dict):
        raise FetchRefused("the answer is not a JSON object")
    return Fetched(document, max_age)


def _read(
    response: requests.Response, limit: int, deadline: float, clock: Callable[[], float]
) -> bytes:
    """The body, at most ``limit`` bytes, all of it before ``deadline``.

    ``read1`` returns what one socket read yields and the socket's timeout shrinks to the time
    left, so a body trickling in a byte at a time cannot outlast the deadline (the transport
    reads provider bodies the same way).
    """
    import requests
    import urllib3

    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise FetchRefused(f"the answer is larger than {limit} bytes")
    raw = response.raw
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            left = deadline - clock()
            if left <= 0:
                raise FetchUnavailable("the answer arrived too slowly")
            sock = getattr(getattr(raw, "connection", None), "sock", None)
            if sock is not None:
                sock.settimeout(max(left, 0.001))
            chunk = raw.read1(8192, decode_content=True)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > limit:
                raise FetchRefused(f"the answer is larger than {limit} bytes")
            chunks.append(chunk)
    except (OSError, urllib3.exceptions.HTTPError, requests.exceptions.RequestException):
        # urllib3's ReadTimeoutError, ProtocolError and DecodeError are its HTTPError.
        raise FetchUnavailable("the server broke off its answer or was too slow") from None
