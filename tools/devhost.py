"""Local development host: serves ``function_app.app`` over HTTP with the Functions host's rules.

This is a development tool. It is NOT the Azure Functions host and is never deployed: Azure
Functions Core Tools cannot be installed here, so this module emulates the parts of the host's
HTTP behaviour the app relies on, for the very ``FunctionApp`` object that ``func start`` and Azure
index:

- route templates (literals, ``{p}``, ``{p?}``, ``{p=default}``, ``{p:constraint}``,
  ``{*catchall}``) with ASP.NET Core's precedence, under host.json's ``routePrefix``;
- refusal at load of routes starting with ``admin`` and of duplicate function names;
- auth levels, with the master key (header ``x-functions-key`` or query ``code``) standing in for
  every key; unlike Core Tools it enforces keys, and fails closed when no key is configured;
- the ``HttpRequest`` built the way the host and the Python worker build it, and the response
  encoded the way the worker encodes it, plus host.json ``customHeaders``;
- the host's limits: 4 KB URLs (414) and 100 MB bodies (413);
- the front end's ``X-Forwarded-For``: the peer address appended as the right-most hop, the
  only way a worker learns who connected (the host passes it no peer address).

- the invocation ``context`` (``tools/invocation_context.py``): its trace context continues the
  caller's ``traceparent`` with a span of the host's own, as the host does.

Not emulated: function keys, CORS, HSTS, proxies, the admin API, non-HTTP triggers and other
bindings, the 230 s response timeout, dot-segment normalisation.

Differs on purpose: a path whose template matches but not for the method answers 405 with an
Allow header; the real host answers an empty 404 there (Azure/azure-functions-host#10098, and HEAD
is not implied by GET), so neither code nor tests may rely on the 405 in Azure.

Run from the repository root::

    python -m tools.devhost [--host 127.0.0.1] [--port 7071] [--threads N] [--quiet] [-v | -vv]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import hmac
import http.server
import importlib
import inspect
import json
import logging
import os
import re
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

import azure.functions as func
from azure.functions.decorators.http import HttpTrigger
from azure.functions.http import HttpRequest as WorkerHttpRequest

if __package__ in (None, ""):  # run as `python tools/devhost.py`: make `tools` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.local_settings import LocalSettings, LocalSettingsError, apply_local_settings

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "MASTER_KEY_ENV",
    "MAX_BODY_BYTES",
    "MAX_URL_BYTES",
    "AppLoadError",
    "ConfigError",
    "DevHost",
    "DevHostError",
    "DuplicateFunctionNameError",
    "HostSettings",
    "LocalSettings",
    "ReservedRouteError",
    "Route",
    "RouteTable",
    "RouteTemplateError",
    "apply_local_settings",
    "default_thread_count",
    "load_host_settings",
    "main",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7071
MASTER_KEY_ENV = "EHRB_LOCAL_ADMIN_KEY"
MAX_URL_BYTES = 4096  # Azure front ends cap URLs at 4 KB
MAX_BODY_BYTES = 100 * 1024 * 1024  # the host's maxRequestLength (104857600 bytes)

_KEY_HEADER = "x-functions-key"
_KEY_QUERY = "code"
_KEEP_ALIVE_TIMEOUT = 130.0  # Kestrel's default keep-alive timeout
_MAX_CONNECTIONS = 512
_REQUEST_LINE_SLACK = 64  # method, spaces and "HTTP/1.1\r\n" around the request target
_MAX_CHUNK_LINE = 4096
_DRAIN_LIMIT = 1024 * 1024
_DRAIN_SECONDS = 1.0
# Framing is the server's business: a function's own values would corrupt the response.
_HOP_BY_HOP = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te"}
)

logger = logging.getLogger("ehr_bridge.devhost")
access_logger = logging.getLogger("ehr_bridge.devhost.access")


class DevHostError(Exception):
    """Base class for errors raised by the dev host."""


class ConfigError(DevHostError):
    """host.json or local.settings.json cannot be used."""


class AppLoadError(DevHostError):
    """The app cannot be served: the real host would refuse it too."""


class RouteTemplateError(AppLoadError):
    """A route template is malformed or uses a feature the dev host does not support."""


class ReservedRouteError(AppLoadError):
    """A route starts with ``admin``, which the host reserves for its own API."""


class DuplicateFunctionNameError(AppLoadError):
    """Two functions share a name (the host compares names case-insensitively)."""


# ---------------------------------------------------------------------------------------------
# Settings files


@dataclass(frozen=True)
class HostSettings:
    """The parts of host.json the dev host honours."""

    route_prefix: str = "api"
    custom_headers: tuple[tuple[str, str], ...] = ()


def _get_ci(mapping: Mapping[str, Any], key: str) -> Any:
    # .NET configuration keys are case-insensitive, so host.json's are too.
    for name, value in mapping.items():
        if name.lower() == key.lower():
            return value
    return None


def load_host_settings(path: str | os.PathLike[str] | None) -> HostSettings:
    """Read routePrefix and customHeaders from host.json; ``None`` gives the host's defaults."""
    if path is None:
        return HostSettings()
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read host.json at {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: host.json must hold a JSON object")
    extensions = _get_ci(data, "extensions") or {}
    http_section = _get_ci(extensions, "http") if isinstance(extensions, dict) else None
    if not isinstance(http_section, dict):
        return HostSettings()
    prefix = _get_ci(http_section, "routePrefix")
    if prefix is None:
        prefix = "api"
    if not isinstance(prefix, str):
        raise ConfigError(f"{path}: extensions.http.routePrefix must be a string")
    headers = _get_ci(http_section, "customHeaders") or {}
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise ConfigError(f"{path}: extensions.http.customHeaders must map strings to strings")
    return HostSettings(route_prefix=prefix.strip("/"), custom_headers=tuple(headers.items()))


def default_thread_count() -> int:
    """The worker's pool size: PYTHON_THREADPOOL_THREAD_COUNT, else min(32, cpu + 4)."""
    raw = os.environ.get("PYTHON_THREADPOOL_THREAD_COUNT", "")
    if raw.strip().isdigit() and int(raw) >= 1:
        return int(raw)
    return min(32, (os.cpu_count() or 1) + 4)


# ---------------------------------------------------------------------------------------------
# Percent-decoding


def _percent_decode(text: str) -> str:
    # http.server decodes the request line as Latin-1; going back to bytes before decoding keeps
    # raw UTF-8 and %XX escapes equivalent, as Kestrel treats them.
    if text.isascii() and "%" not in text:
        return text
    return unquote_to_bytes(text.encode("latin-1", "replace")).decode("utf-8", "replace")


_ENCODED_SLASH = re.compile(r"(%2[Ff])")


def _decode_keeping_slashes(text: str) -> str:
    # Kestrel decodes the path once before routing but leaves %2F encoded, so it cannot split
    # segments; a catch-all receives that form. (Azure's front end decodes %2F first, so in
    # Azure the same request arrives with '/': path validation must accept both.)
    pieces = _ENCODED_SLASH.split(text)
    pieces[::2] = [_percent_decode(piece) for piece in pieces[::2]]
    return "".join(pieces)


def _split_path(path: str) -> list[str]:
    # Matching runs on the raw path split on '/', so an encoded slash never splits a segment;
    # ASP.NET routing ignores one trailing slash.
    trimmed = path[1:] if path.startswith("/") else path
    if trimmed.endswith("/"):
        trimmed = trimmed[:-1]
    return trimmed.split("/") if trimmed else []


# ---------------------------------------------------------------------------------------------
# Route constraints (ASP.NET Core semantics, invariant culture)

_WHITESPACE = " \t\n\v\f\r"
_INTEGER = re.compile(r"[ \t\n\v\f\r]*[+-]?[0-9]+[ \t\n\v\f\r]*\Z")
_HEX = "[0-9A-Fa-f]"
_GUID_D = f"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}"
# Guid.TryParse formats N, D, B and P (the rare X format is left out).
_GUID = re.compile(rf"(?:{_GUID_D}|{_HEX}{{32}}|\{{{_GUID_D}\}}|\({_GUID_D}\))\Z")
_ALPHA = re.compile(r"[A-Za-z]*\Z")
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)

_Check = Callable[[str], bool]


def _integer_check(low: int, high: int) -> _Check:
    def check(value: str) -> bool:
        return _INTEGER.match(value) is not None and low <= int(value) <= high

    return check


def _utf16_length(value: str) -> int:
    # .NET string lengths count UTF-16 code units, not code points.
    return len(value.encode("utf-16-le")) // 2


def _int_args(name: str, arg: str | None, count: tuple[int, ...], template: str) -> list[int]:
    parts = [] if arg is None else [p.strip() for p in arg.split(",")]
    if len(parts) not in count or not all(_INTEGER.match(p) for p in parts):
        raise RouteTemplateError(f"route {template!r}: bad arguments for constraint {name!r}")
    return [int(p) for p in parts]


def _build_check(name: str, arg: str | None, template: str) -> _Check:
    kind = name.lower()
    if kind in ("int", "long", "bool", "guid", "alpha") and arg is not None:
        raise RouteTemplateError(f"route {template!r}: constraint {name!r} takes no arguments")
    if kind == "int":
        return _integer_check(*_INT32)
    if kind == "long":
        return _integer_check(*_INT64)
    if kind == "bool":
        return lambda value: value.strip(_WHITESPACE + "\0").lower() in ("true", "false")
    if kind == "guid":
        return lambda value: _GUID.match(value.strip(_WHITESPACE)) is not None
    if kind == "alpha":
        return lambda value: _ALPHA.match(value) is not None
    if kind == "length":
        bounds = _int_args(name, arg, (1, 2), template)
        low, high = (bounds[0], bounds[0]) if len(bounds) == 1 else (bounds[0], bounds[1])
        return lambda value: low <= _utf16_length(value) <= high
    if kind == "minlength":
        (least,) = _int_args(name, arg, (1,), template)
        return lambda value: _utf16_length(value) >= least
    if kind == "maxlength":
        (most,) = _int_args(name, arg, (1,), template)
        return lambda value: _utf16_length(value) <= most
    if kind == "min":
        (least,) = _int_args(name, arg, (1,), template)
        return _integer_check(max(least, _INT64[0]), _INT64[1])
    if kind == "max":
        (most,) = _int_args(name, arg, (1,), template)
        return _integer_check(_INT64[0], min(most, _INT64[1]))
    if kind == "range":
        low, high = _int_args(name, arg, (2,), template)
        return _integer_check(max(low, _INT64[0]), min(high, _INT64[1]))
    if kind == "regex":
        if not arg:
            raise RouteTemplateError(f"route {template!r}: regex constraint needs a pattern")
        try:
            # RegexRouteConstraint: IgnoreCase | CultureInvariant, unanchored IsMatch.
            pattern = re.compile(arg, re.IGNORECASE)
        except re.error as exc:
            raise RouteTemplateError(f"route {template!r}: bad regex {arg!r}: {exc}") from exc
        return lambda value: pattern.search(value) is not None
    raise RouteTemplateError(
        f"route {template!r}: unknown constraint {name!r} (supported: int, long, bool, guid, "
        "alpha, length, minlength, maxlength, min, max, range, regex)"
    )


# ---------------------------------------------------------------------------------------------
# Route templates

# Lower rank wins, segment by segment: literal, constrained parameter, parameter, catch-all.
_LITERAL, _CONSTRAINED, _PARAMETER, _CATCH_ALL = 0, 1, 2, 3
_PARAM_NAME = re.compile(r"[^{}/?*=:]+")
_CONSTRAINT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class _Segment:
    kind: int
    literal: str = ""  # lower-cased, compared with the lower-cased decoded path segment
    name: str = ""
    checks: tuple[_Check, ...] = ()
    optional: bool = False
    default: str | None = None


def _tokenize(template: str) -> list[list[tuple[str, str]]]:
    """Split a template on '/' into segments of ("lit", text) and ("param", inner) tokens."""
    segments: list[list[tuple[str, str]]] = [[]]
    literal: list[str] = []

    def flush() -> None:
        if literal:
            segments[-1].append(("lit", "".join(literal)))
            literal.clear()

    i, n = 0, len(template)
    while i < n:
        char = template[i]
        if char == "/":
            flush()
            segments.append([])
            i += 1
        elif template.startswith("{{", i) or template.startswith("}}", i):
            literal.append(char)
            i += 2
        elif char == "}":
            raise RouteTemplateError(f"route {template!r}: unmatched '}}'")
        elif char == "{":
            flush()
            inner: list[str] = []
            j = i + 1
            while True:
                if j >= n:
                    raise RouteTemplateError(f"route {template!r}: unterminated parameter")
                if template.startswith("{{", j) or template.startswith("}}", j):
                    inner.append(template[j])
                    j += 2
                elif template[j] == "}":
                    break
                elif template[j] == "{":
                    raise RouteTemplateError(f"route {template!r}: '{{' inside a parameter")
                else:
                    inner.append(template[j])
                    j += 1
            segments[-1].append(("param", "".join(inner)))
            i = j + 1
        else:
            literal.append(char)
            i += 1
    flush()
    return segments


def _constraint_end(text: str) -> int:
    # A constraint argument ends at the first ')' followed by another constraint, '?', '=' or the
    # end, so regex patterns may hold parentheses.
    for index, char in enumerate(text):
        if char == ")" and (index + 1 == len(text) or text[index + 1] in ":?="):
            return index
    return -1


def _parse_parameter(inner: str, template: str) -> _Segment:
    catch_all = inner.startswith("*")
    body = inner.lstrip("*") if catch_all else inner
    if inner.startswith("***"):
        raise RouteTemplateError(f"route {template!r}: bad catch-all {{{inner}}}")
    name_match = _PARAM_NAME.match(body)
    if not name_match:
        raise RouteTemplateError(f"route {template!r}: parameter {{{inner}}} has no name")
    name = name_match.group()
    rest = body[name_match.end() :]
    checks: list[_Check] = []
    while rest.startswith(":"):
        rest = rest[1:]
        constraint = _CONSTRAINT_NAME.match(rest)
        if not constraint:
            raise RouteTemplateError(f"route {template!r}: bad constraint in {{{inner}}}")
        rest = rest[constraint.end() :]
        arg = None
        if rest.startswith("("):
            end = _constraint_end(rest)
            if end < 0:
                raise RouteTemplateError(f"route {template!r}: unclosed '(' in {{{inner}}}")
            arg, rest = rest[1:end], rest[end + 1 :]
        checks.append(_build_check(constraint.group(), arg, template))
    optional, default = False, None
    if rest == "?":
        optional = True
    elif rest.startswith("="):
        default = rest[1:]
    elif rest:
        raise RouteTemplateError(f"route {template!r}: unexpected {rest!r} in {{{inner}}}")
    if catch_all and optional:
        raise RouteTemplateError(f"route {template!r}: a catch-all cannot be marked optional")
    kind = _CATCH_ALL if catch_all else _CONSTRAINED if checks else _PARAMETER
    return _Segment(
        kind=kind,
        name=name,
        checks=tuple(checks),
        optional=optional or default is not None or catch_all,
        default=default,
    )


def _compile_template(template: str) -> tuple[_Segment, ...]:
    if template == "":
        return ()
    segments: list[_Segment] = []
    names: set[str] = set()
    for tokens in _tokenize(template):
        if not tokens:
            raise RouteTemplateError(f"route {template!r}: empty segment ('//')")
        if len(tokens) > 1:
            raise RouteTemplateError(
                f"route {template!r}: segments mixing text and parameters are not supported "
                "by the dev host"
            )
        kind, text = tokens[0]
        if kind == "lit":
            segments.append(_Segment(kind=_LITERAL, literal=text.lower()))
            continue
        segment = _parse_parameter(text, template)
        if segment.name.lower() in names:
            raise RouteTemplateError(f"route {template!r}: parameter {segment.name!r} repeats")
        names.add(segment.name.lower())
        segments.append(segment)
    for segment in segments[:-1]:
        if segment.kind == _CATCH_ALL:
            raise RouteTemplateError(f"route {template!r}: a catch-all must be the last segment")
    return tuple(segments)


@dataclass(frozen=True, slots=True)
class Route:
    """One HTTP function with its template compiled for matching."""

    function_name: str
    template: str
    methods: frozenset[str] | None
    auth_level: str
    handler: Callable[..., Any]
    arg_name: str
    segments: tuple[_Segment, ...]
    min_parts: int
    max_parts: int | None
    precedence: tuple[int, ...]

    @classmethod
    def compile(
        cls,
        *,
        function_name: str,
        template: str,
        methods: frozenset[str] | None,
        auth_level: str,
        handler: Callable[..., Any],
        arg_name: str,
    ) -> Route:
        """Compile a full template (route prefix included) into a matcher."""
        segments = _compile_template(template)
        required = [i for i, s in enumerate(segments) if s.kind == _LITERAL or not s.optional]
        has_catch_all = bool(segments) and segments[-1].kind == _CATCH_ALL
        return cls(
            function_name=function_name,
            template=template,
            methods=methods,
            auth_level=auth_level,
            handler=handler,
            arg_name=arg_name,
            segments=segments,
            min_parts=required[-1] + 1 if required else 0,
            max_parts=None if has_catch_all else len(segments),
            precedence=tuple(s.kind for s in segments),
        )

    def allows(self, method: str) -> bool:
        """Whether the function accepts this (upper-case) method."""
        return self.methods is None or method in self.methods

    def match(
        self, parts: list[str], decoded: list[str], lowered: list[str]
    ) -> dict[str, str] | None:
        """Route values if the split path matches, else None (missing optionals are omitted)."""
        count = len(parts)
        if count < self.min_parts or (self.max_parts is not None and count > self.max_parts):
            return None
        values: dict[str, str] = {}
        for index, segment in enumerate(self.segments):
            kind = segment.kind
            if kind == _CATCH_ALL:
                rest = "/".join(parts[index:])
                if rest:
                    values[segment.name] = _decode_keeping_slashes(rest)
                elif segment.default is not None:
                    values[segment.name] = segment.default
                return values
            if index >= count:
                # The host drops null route values before the worker sees them, so a missing
                # optional parameter is absent from route_params rather than "".
                if segment.default is not None:
                    values[segment.name] = segment.default
                continue
            if kind == _LITERAL:
                if lowered[index] != segment.literal:
                    return None
                continue
            # Decoded once, %2F included: the raw segment held no '/', so one in the value can
            # only come from %2F, and the function sees the same value Azure would give it.
            value = decoded[index]
            if not value:
                return None
            for check in segment.checks:
                if not check(value):
                    return None
            values[segment.name] = value
        return values


def _method_names(methods: Any) -> frozenset[str] | None:
    if not methods:
        return None
    return frozenset(str(getattr(m, "value", m)).upper() for m in methods)


def _auth_level_name(level: Any) -> str:
    value = getattr(level, "value", level)
    return str(value).lower() if value else func.AuthLevel.FUNCTION.value


class RouteTable:
    """The app's HTTP functions, compiled once and kept in precedence order."""

    def __init__(self, routes: list[Route]) -> None:
        # sorted() is stable: equal precedence keeps registration order.
        self.routes: tuple[Route, ...] = tuple(sorted(routes, key=lambda r: r.precedence))

    @classmethod
    def from_app(cls, app: func.FunctionApp, route_prefix: str = "api") -> RouteTable:
        """Index the app through the decorator API and compile its HTTP routes."""
        # get_functions() remembers names from a previous call and would then report every
        # function as a duplicate; clearing that memo before and after lets one app be served
        # more than once and leaves it indexable by whoever comes next (the worker, a test).
        app.functions_bindings = None
        try:
            functions = app.get_functions()
        except ValueError as exc:
            if "unique function name" in str(exc):
                raise DuplicateFunctionNameError(str(exc)) from exc
            raise AppLoadError(f"the app cannot be indexed: {exc}") from exc
        finally:
            app.functions_bindings = None
        prefix = route_prefix.strip("/")
        seen: dict[str, str] = {}
        routes: list[Route] = []
        for function in functions:
            name = function.get_function_name() or function.get_user_function().__name__
            if name.lower() in seen:
                raise DuplicateFunctionNameError(
                    f"functions {seen[name.lower()]!r} and {name!r} share a name (the host "
                    "compares names case-insensitively)"
                )
            seen[name.lower()] = name
            trigger = function.get_trigger()
            if not isinstance(trigger, HttpTrigger):
                logger.warning("skipping %s: the dev host serves HTTP triggers only", name)
                continue
            route = (trigger.route if trigger.route is not None else name).strip("/")
            if route.lower().startswith("admin"):
                raise ReservedRouteError(
                    f"function {name!r}: route {route!r} starts with 'admin', which the Functions "
                    "host reserves for its own API (it reports: the specified route conflicts "
                    "with one or more built in routes)"
                )
            template = f"{prefix}/{route}" if prefix and route else prefix or route
            routes.append(
                Route.compile(
                    function_name=name,
                    template=template,
                    methods=_method_names(trigger.methods),
                    auth_level=_auth_level_name(trigger.auth_level),
                    handler=function.get_user_function(),
                    arg_name=trigger.name,
                )
            )
        return cls(routes)

    @staticmethod
    def _views(path: str) -> tuple[list[str], list[str], list[str]]:
        parts = _split_path(path)
        decoded = [_percent_decode(part) for part in parts]
        return parts, decoded, [part.lower() for part in decoded]

    def resolve(self, path: str, method: str) -> tuple[Route, dict[str, str]] | None:
        """The most specific route matching the raw path and method, with its route values."""
        parts, decoded, lowered = self._views(path)
        upper = method.upper()
        for route in self.routes:
            if not route.allows(upper):
                continue
            values = route.match(parts, decoded, lowered)
            if values is not None:
                return route, values
        return None

    def allowed_methods(self, path: str) -> frozenset[str]:
        """Methods of routes whose template matches the path (for 405's Allow header)."""
        parts, decoded, lowered = self._views(path)
        allowed: set[str] = set()
        for route in self.routes:
            if route.methods is not None and route.match(parts, decoded, lowered) is not None:
                allowed |= route.methods
        return frozenset(allowed)

    def __iter__(self) -> Iterator[Route]:
        return iter(self.routes)

    def __len__(self) -> int:
        return len(self.routes)


# ---------------------------------------------------------------------------------------------
# Request and response mapping (what the host puts on the wire to the worker, and back)


def _peer_hop(address: Any) -> str:
    """The peer as App Service's front end writes it into X-Forwarded-For: ``ip:port``."""
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _join_values(values: list[str]) -> str:
    # The host forwards StringValues.ToString(): repeated fields joined with "," (no space),
    # empty entries skipped.
    if len(values) == 1:
        return values[0]
    return ",".join(value for value in values if value)


def _parse_query(query: str) -> list[tuple[str, str]]:
    pairs = []
    for item in query.split("&"):
        if not item:
            continue
        key, _, value = item.partition("=")
        pairs.append(
            (_percent_decode(key.replace("+", " ")), _percent_decode(value.replace("+", " ")))
        )
    return pairs


def _query_params(pairs: list[tuple[str, str]]) -> dict[str, str]:
    # ASP.NET groups query keys case-insensitively (first spelling kept) and the host sends each
    # as StringValues.ToString(): ?a=1&a=2 arrives as {"a": "1,2"}. The Python worker does not
    # ask for nullable values, so the host drops keys whose joined value is empty (?flag=).
    grouped: dict[str, tuple[str, list[str]]] = {}
    for key, value in pairs:
        entry = grouped.setdefault(key.lower(), (key, []))
        entry[1].append(value)
    params = {}
    for key, values in grouped.values():
        joined = _join_values(values)
        if joined:
            params[key] = joined
    return params


def _call_function(route: Route, request: func.HttpRequest) -> Any:
    arguments: dict[str, Any] = {route.arg_name: request}
    if _takes_context(route.handler):
        from tools.invocation_context import invocation_context

        arguments["context"] = invocation_context(route.function_name, dict(request.headers))
    result = route.handler(**arguments)
    if inspect.iscoroutine(result):
        return asyncio.run(result)
    return result


@functools.cache
def _takes_context(handler: Any) -> bool:
    # The worker passes the invocation context to a parameter named "context".
    return "context" in inspect.signature(handler).parameters


class _UnsupportedResult(Exception):
    """A function returned something the worker cannot encode as an HTTP response."""


def _encode_result(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    if isinstance(result, str):
        # The host answers a plain string return with 200 text/plain.
        return 200, [("Content-Type", "text/plain; charset=utf-8")], result.encode("utf-8")
    if not isinstance(result, func.HttpResponse):
        raise _UnsupportedResult(
            f"returned {type(result).__name__}; an HTTP function must return HttpResponse or str"
        )
    status = result.status_code
    if not isinstance(status, int) or not 100 <= status <= 599:
        raise _UnsupportedResult(f"returned status code {status!r}")
    # The worker copies headers into a dict (last value per name wins) except Set-Cookie, which
    # travels as separate cookies; it adds Content-Type from mimetype/charset when missing.
    last: dict[str, tuple[str, str]] = {}
    cookies: list[tuple[str, str]] = []
    for name, value in result.headers.items():
        lower = name.lower()
        if lower == "set-cookie":
            cookies.append(("Set-Cookie", value))
        elif lower not in _HOP_BY_HOP:
            last[lower] = (name, value)
    if "content-type" not in last:
        mimetype = result.mimetype
        content_type = (
            f"{mimetype}; charset={result.charset}" if mimetype.startswith("text/") else mimetype
        )
        last["content-type"] = ("Content-Type", content_type)
    return status, [*last.values(), *cookies], result.get_body() or b""


# ---------------------------------------------------------------------------------------------
# HTTP server


class _BadRequest(Exception):
    """The request's framing is malformed."""


class _BodyTooLarge(Exception):
    """The request body exceeds the configured cap."""


class _NotImplementedCoding(Exception):
    """A transfer coding other than chunked."""


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "EHRBridgeDevHost"
    sys_version = ""
    timeout = _KEEP_ALIVE_TIMEOUT
    server: _Server
    # Headers and body leave in two writes; without TCP_NODELAY the second waits for the
    # client's delayed ACK, a fixed ~40 ms per request (measured by `make bench`).
    disable_nagle_algorithm = True

    # -- one request per call; BaseHTTPRequestHandler.handle() loops for keep-alive ----------

    def handle_one_request(self) -> None:
        self._status = 0
        self._log_path = ""
        self._started = time.perf_counter()
        self.command = ""
        devhost = self.server.devhost
        try:
            limit = devhost.max_url_bytes + _REQUEST_LINE_SLACK
            line = self.rfile.readline(limit + 1)
            if not line:
                self.close_connection = True
                return
            if len(line) > limit:
                self.request_version = "HTTP/1.1"
                self._reject(414, drain=True)
                return
            self.raw_requestline = line
            if self.parse_request():
                self._serve()
            self.wfile.flush()
        except (TimeoutError, ConnectionError):
            self.close_connection = True
        finally:
            if self._status:
                self._log_access()

    def _serve(self) -> None:
        devhost = self.server.devhost
        target = self.path
        if len(target.encode("latin-1", "replace")) > devhost.max_url_bytes:
            self._reject(414, drain=True)
            return
        if target.startswith(("http://", "https://")):
            # Absolute-form target (sent to proxies): keep the path and query only.
            target = "/" + target.split("://", 1)[1].partition("/")[2]
        path, _, query = target.partition("?")
        self._log_path = path
        if not path.startswith("/"):
            self._reject(400, drain=True)
            return
        try:
            body = self._read_body(devhost.max_body_bytes)
        except _BodyTooLarge:
            self._reject(413, drain=True)
            return
        except _BadRequest:
            self._reject(400, drain=True)
            return
        except _NotImplementedCoding:
            self._reject(501, drain=True)
            return
        if body is None:  # the client went away mid-body
            self.close_connection = True
            return

        resolved = devhost.routes.resolve(path, self.command)
        if resolved is None:
            allowed = devhost.routes.allowed_methods(path)
            if allowed:
                self._send(
                    405,
                    [("Allow", ", ".join(sorted(allowed)))],
                    _json_error("method not allowed"),
                )
            else:
                self._send(404, [], _json_error("no function matches this route"))
            return
        route, route_values = resolved
        pairs = _parse_query(query)
        if route.auth_level != func.AuthLevel.ANONYMOUS.value and not self._authorized(pairs):
            self._send(401, [], b"")  # the host answers 401 with an empty body
            return

        headers: dict[str, list[str]] = {}
        for name, value in self.headers.items():
            headers.setdefault(name.lower(), []).append(value)
        # The worker never learns the peer address; in Azure the front end appends it to
        # X-Forwarded-For as the right-most hop, so the dev host does the same.
        headers.setdefault("x-forwarded-for", []).append(_peer_hop(self.client_address))
        host_header = self.headers.get("Host") or devhost.authority
        request = WorkerHttpRequest(
            method=self.command,
            url=f"http://{host_header}{target}",
            headers={name: _join_values(values) for name, values in headers.items()},
            params=_query_params(pairs),
            route_params=route_values,
            body_type="bytes",  # the worker asks the host for raw body bytes
            body=body,
        )
        try:
            future = devhost.executor.submit(_call_function, route, request)
        except RuntimeError:  # the pool is shut down: the dev host is closing
            self._send(503, [("Connection", "close")], b"")
            return
        try:
            result = future.result()
        except (Exception, SystemExit):
            logger.exception("function %s failed", route.function_name)
            self._send(500, [], _json_error("internal server error"))
            return
        try:
            status, response_headers, response_body = _encode_result(result)
        except _UnsupportedResult as exc:
            logger.error("function %s %s", route.function_name, exc)
            self._send(500, [], _json_error("internal server error"))
            return
        self._send(status, response_headers, response_body)

    # -- request body --------------------------------------------------------------------------

    def _read_body(self, cap: int) -> bytes | None:
        encodings = self.headers.get_all("Transfer-Encoding") or []
        lengths = self.headers.get_all("Content-Length") or []
        if encodings and lengths:
            # Both framings at once is the request-smuggling shape; refuse it outright.
            raise _BadRequest
        if encodings:
            codings = [c.strip().lower() for v in encodings for c in v.split(",") if c.strip()]
            if codings != ["chunked"]:
                raise _NotImplementedCoding
            return self._read_chunked(cap)
        if not lengths:
            return b""
        declared = {v.strip() for field in lengths for v in field.split(",")}
        if len(declared) != 1 or not next(iter(declared)).isdigit():
            raise _BadRequest
        length = int(declared.pop())
        if length > cap:
            raise _BodyTooLarge
        body = self.rfile.read(length) if length else b""
        return body if len(body) == length else None

    def _read_chunked(self, cap: int) -> bytes | None:
        # Note: the real host forwards a body to the worker only when Content-Length > 0, so a
        # chunked body may reach a deployed function empty. Here it is delivered.
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(_MAX_CHUNK_LINE + 1)
            if not line:
                return None
            if len(line) > _MAX_CHUNK_LINE or not line.endswith(b"\n"):
                raise _BadRequest
            size_text = line.split(b";", 1)[0].strip()
            if not re.fullmatch(rb"[0-9A-Fa-f]{1,16}", size_text):
                raise _BadRequest
            size = int(size_text, 16)
            if size == 0:
                break
            total += size
            if total > cap:
                raise _BodyTooLarge
            chunk = self.rfile.read(size)
            if len(chunk) != size:
                return None
            chunks.append(chunk)
            if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise _BadRequest
        for _ in range(100):  # trailer fields are read and dropped
            line = self.rfile.readline(_MAX_CHUNK_LINE + 1)
            if line in (b"\r\n", b"\n", b""):
                return b"".join(chunks)
        raise _BadRequest

    def handle_expect_100(self) -> bool:
        # Refuse an oversized body before the client sends it.
        length = (self.headers.get("Content-Length") or "").strip()
        if length.isdigit() and int(length) > self.server.devhost.max_body_bytes:
            self._reject(413)
            return False
        return super().handle_expect_100()

    # -- auth ----------------------------------------------------------------------------------

    def _authorized(self, pairs: list[tuple[str, str]]) -> bool:
        key = self.server.devhost.master_key
        if key is None:
            return False  # fail closed: no key configured means nobody gets in
        # The host reads the header first and falls back to ?code=.
        header = self.headers.get(_KEY_HEADER)
        if header:
            # http.server decoded the header as Latin-1; this recovers the bytes sent.
            provided = header.encode("latin-1", "replace")
        else:
            codes = [value for name, value in pairs if name.lower() == _KEY_QUERY]
            if not codes:
                return False
            provided = codes[0].encode("utf-8")
        return hmac.compare_digest(provided, key)

    # -- responses -----------------------------------------------------------------------------

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        for name, value in headers:
            if any(c in name or c in value for c in "\r\n"):
                logger.error("refusing a response header with a line break: %r", name)
                status, headers, body = 500, [], _json_error("internal server error")
                break
        if body and not any(n.lower() == "content-type" for n, _ in headers):
            headers = [*headers, ("Content-Type", "application/json; charset=utf-8")]
        self.send_response(status)
        present = set()
        for name, value in headers:
            self.send_header(name, value)
            present.add(name.lower())
        for name, value in self.server.devhost.custom_headers:
            if name.lower() not in present:
                self.send_header(name, value)
        bodyless = status < 200 or status in (204, 304)
        if not bodyless:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not bodyless and self.command != "HEAD" and body:
            self.wfile.write(body)

    def _reject(self, status: int, *, drain: bool = False) -> None:
        """Answer with an empty body and close, draining what the client may still send."""
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        if drain:
            self._drain()

    def _drain(self) -> None:
        # Closing a socket with unread input makes the kernel send RST, which can destroy the
        # response before the client reads it; read and drop a bounded amount first.
        try:
            self.connection.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + _DRAIN_SECONDS
            received = 0
            while received < _DRAIN_LIMIT:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.connection.settimeout(remaining)
                data = self.connection.recv(65536)
                if not data:
                    break
                received += len(data)
        except OSError:
            pass

    # -- logging -------------------------------------------------------------------------------

    def version_string(self) -> str:
        return self.server_version

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self._status = int(code) if str(code).isdigit() else 0

    def log_message(self, format: str, *args: Any) -> None:
        # http.server's own messages quote the request line, query string included, and a
        # query may carry ?code=; the access line below is written without it.
        return

    def _log_access(self) -> None:
        if self.server.devhost.quiet:
            return
        elapsed = (time.perf_counter() - self._started) * 1000
        access_logger.info(
            '%s "%s %s" %d %.1fms',
            self.client_address[0],
            self.command or "-",
            self._log_path or "-",
            self._status,
            elapsed,
        )


def _json_error(message: str) -> bytes:
    return json.dumps({"error": message}).encode("utf-8")


class _Server(socketserver.TCPServer):
    """Accepts connections, one lightweight thread each; functions run on the bounded pool."""

    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], devhost: DevHost, family: int) -> None:
        self.address_family = family
        self.devhost = devhost
        self._slots = threading.BoundedSemaphore(_MAX_CONNECTIONS)
        self._lock = threading.Lock()
        self._connections: dict[socket.socket, threading.Thread] = {}
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Connection threads only move bytes (the host's role); the user's code runs on the
        # devhost's bounded executor (the worker's role), so keep-alive connections idling in a
        # client's pool never starve function calls.
        if not self._slots.acquire(timeout=5):
            self.shutdown_request(request)
            return
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name=f"devhost-conn-{client_address[1] if len(client_address) > 1 else ''}",
            daemon=True,
        )
        with self._lock:
            self._connections[request] = thread
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            with self._lock:
                self._connections.pop(request, None)
            self.shutdown_request(request)
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exception(), (ConnectionError, TimeoutError)):
            return
        logger.exception("unexpected error serving %s", client_address[0])

    def close_connections(self, timeout: float) -> None:
        """Shut down open connections (idle keep-alive ones included) and wait for them."""
        with self._lock:
            items = list(self._connections.items())
        for sock, _ in items:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for _, thread in items:
            thread.join(max(0.0, deadline - time.monotonic()))


class DevHost:
    """Serves one FunctionApp over HTTP with the Functions host's routing, auth and limits.

    A development tool, not the Functions host. The socket is bound on construction, so
    ``port=0`` picks a free port and ``base_url`` reports it.
    """

    def __init__(
        self,
        app: func.FunctionApp,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        host_json_path: str | os.PathLike[str] | None = None,
        master_key: str | None = None,
        threads: int | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        max_url_bytes: int = MAX_URL_BYTES,
        quiet: bool = False,
    ) -> None:
        settings = load_host_settings(host_json_path)
        self.routes = RouteTable.from_app(app, route_prefix=settings.route_prefix)
        self.route_prefix = settings.route_prefix
        self.custom_headers = settings.custom_headers
        key = os.environ.get(MASTER_KEY_ENV) if master_key is None else master_key
        self.master_key: bytes | None = key.encode("utf-8") if key else None
        self.threads = threads if threads is not None else default_thread_count()
        if self.threads < 1:
            raise ValueError("threads must be at least 1")
        self.max_body_bytes = max_body_bytes
        self.max_url_bytes = max_url_bytes
        self.quiet = quiet
        self.closing = False
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._server = _Server((host, port), self, family)
        self.executor = ThreadPoolExecutor(
            max_workers=self.threads, thread_name_prefix="devhost-worker"
        )
        self._thread: threading.Thread | None = None
        self._started = False
        self._close_lock = threading.Lock()
        self._closed = False

    @property
    def authority(self) -> str:
        """host:port as bound (IPv6 in brackets)."""
        host, port = str(self._server.server_address[0]), self._server.server_address[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def base_url(self) -> str:
        """The URL of the server root, e.g. http://127.0.0.1:7071."""
        return f"http://{self.authority}"

    def serve_forever(self) -> None:
        """Serve in the calling thread until ``close()`` is called from another thread."""
        self._started = True
        self._server.serve_forever(poll_interval=0.05)

    def start(self) -> DevHost:
        """Serve from a background thread and return at once."""
        self._started = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop accepting, close open connections and the worker pool; safe to call twice."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self.closing = True
        if self._started:
            self._server.shutdown()
        if self._thread is not None:
            self._thread.join(5)
        self._server.server_close()
        self._server.close_connections(timeout=2.0)
        self.executor.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> DevHost:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------
# Command line


def configure_logging(verbosity: int) -> None:
    """One access line per request and every warning; ``verbosity`` 1 adds the app's info lines
    (audit events), 2 the Azure SDK's request and response detail (a dozen lines per table call)."""
    level = logging.INFO if verbosity else logging.WARNING
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    access_logger.setLevel(logging.INFO)
    logger.setLevel(logging.INFO)
    logging.getLogger("azure").setLevel(logging.INFO if verbosity >= 2 else logging.WARNING)


def _repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    """Run the dev host for ``function_app.app`` of the repository root."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.devhost",
        description="Local dev host for EHR Bridge (emulates the Functions host's HTTP rules; "
        "it is not the Functions host).",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"default {DEFAULT_HOST}")
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"default Host.LocalHttpPort from local.settings.json, else {DEFAULT_PORT}",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="function threads (default PYTHON_THREADPOOL_THREAD_COUNT, else min(32, cpu+4))",
    )
    parser.add_argument("--quiet", action="store_true", help="no access log lines")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="-v adds the app's own log lines (audit events); -vv adds the Azure SDK's HTTP detail",
    )
    parser.add_argument("--root", default=str(_repo_root()), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    configure_logging(args.verbose)
    root = Path(args.root).resolve()
    try:
        local = apply_local_settings(root / "local.settings.json")
    except LocalSettingsError as exc:
        print(f"devhost: {exc}", file=sys.stderr)
        return 2
    # The worker runs the app with the app root as working directory and import root.
    os.chdir(root)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    module = importlib.import_module("function_app")
    app = getattr(module, "app", None)
    if not isinstance(app, func.FunctionApp):
        print(
            "devhost: function_app.py must define a module-level FunctionApp 'app'", file=sys.stderr
        )
        return 2
    host_json = root / "host.json"
    try:
        devhost = DevHost(
            app,
            host=args.host,
            port=args.port or local.http_port or DEFAULT_PORT,
            host_json_path=host_json if host_json.exists() else None,
            threads=args.threads,
            quiet=args.quiet,
        )
    except DevHostError as exc:
        print(f"devhost: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"devhost: cannot listen on {args.host}: {exc}", file=sys.stderr)
        return 1

    print("EHR Bridge dev host (a development tool, not the Azure Functions host)\n")
    print("Functions:\n")
    for route in devhost.routes:
        methods = ",".join(sorted(route.methods)) if route.methods else "ALL"
        print(f"        {route.function_name}: [{methods}] {devhost.base_url}/{route.template}")
    if devhost.master_key is None:
        print(f"\n{MASTER_KEY_ENV} is not set: function- and admin-level routes answer 401.")
    print(f"\nListening on {devhost.base_url} with {devhost.threads} function threads.", flush=True)
    try:
        devhost.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        devhost.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
