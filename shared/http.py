"""Plain HTTP request and response values, so the core never imports azure.functions."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit


class Headers:
    """Case-insensitive header mapping that keeps every value of a repeated field."""

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = []
        pairs = items.items() if isinstance(items, Mapping) else items
        for name, value in pairs:
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        """Append one field value."""
        self._items.append((name, value))

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name``, or ``default``."""
        lowered = name.lower()
        for key, value in self._items:
            if key.lower() == lowered:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name`` in order."""
        lowered = name.lower()
        return [value for key, value in self._items if key.lower() == lowered]

    def set(self, name: str, value: str) -> None:
        """Replace every value of ``name`` with one value."""
        self.remove(name)
        self.add(name, value)

    def remove(self, name: str) -> None:
        """Drop every value of ``name``."""
        lowered = name.lower()
        self._items = [(k, v) for k, v in self._items if k.lower() != lowered]

    def items(self) -> list[tuple[str, str]]:
        """All (name, value) pairs in order."""
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __repr__(self) -> str:
        return f"Headers({[k for k, _ in self._items]!r})"


@dataclass
class Request:
    """An HTTP request as a function receives it."""

    method: str
    url: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    route_params: dict[str, str] = field(default_factory=dict)

    @property
    def query(self) -> list[tuple[str, str]]:
        """Query parameters in order, repeats kept, blanks kept."""
        return parse_qsl(urlsplit(self.url).query, keep_blank_values=True)

    @property
    def raw_query(self) -> str:
        """The query string exactly as sent."""
        return urlsplit(self.url).query

    @property
    def path(self) -> str:
        """The URL path as sent (still percent-encoded)."""
        return urlsplit(self.url).path

    def header(self, name: str) -> str | None:
        """The first value of a header, or None."""
        return self.headers.get(name)


@dataclass
class Response:
    """An HTTP response a handler returns."""

    status: int
    body: bytes = b""
    headers: Headers = field(default_factory=Headers)

    @property
    def text(self) -> str:
        """The body as UTF-8 text."""
        return self.body.decode("utf-8")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


def json_response(
    status: int,
    document: Any,
    *,
    content_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A JSON response with compact, UTF-8 encoding."""
    out = Headers({"Content-Type": f"{content_type}; charset=utf-8"})
    for name, value in (headers or {}).items():
        out.set(name, value)
    body = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return Response(status=status, body=body, headers=out)


def public_origin(request: Request, configured: str, trust_forwarded: bool) -> str:
    """The scheme://host[:port] a caller used to reach us."""
    if configured:
        return configured
    parts = urlsplit(request.url)
    scheme, host = parts.scheme or "http", parts.netloc
    if trust_forwarded:
        # Only the first hop counts: it is what our own trusted proxy wrote.
        forwarded_proto = (request.header("X-Forwarded-Proto") or "").split(",")[0].strip()
        forwarded_host = (request.header("X-Forwarded-Host") or "").split(",")[0].strip()
        if forwarded_proto.lower() in ("http", "https"):
            scheme = forwarded_proto.lower()
        if forwarded_host and _is_plain_host(forwarded_host):
            host = forwarded_host
    return f"{scheme}://{host}"


def _is_plain_host(value: str) -> bool:
    """True for host[:port] with nothing that could smuggle a path, userinfo or header."""
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]")
    return 0 < len(value) <= 255 and all(c in allowed for c in value)
