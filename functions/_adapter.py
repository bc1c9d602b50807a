"""Conversion between azure.functions HTTP objects and the core's plain values, and the one
way a trigger runs the core (``serve``)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import azure.functions as func

from shared.http import Headers, Request, Response
from shared.services import Services, get_services
from shared.settings import SettingsError
from shared.telemetry import invocation, setup

_log = logging.getLogger(__name__)


def to_request(req: func.HttpRequest) -> Request:
    """The core's view of a Functions HTTP request."""
    return Request(
        method=req.method.upper(),
        url=req.url,
        headers=Headers(dict(req.headers)),
        body=req.get_body() or b"",
        route_params=dict(req.route_params),
    )


def to_http_response(response: Response) -> func.HttpResponse:
    """A Functions HTTP response carrying the core's response."""
    merged: dict[str, str] = {}
    for name, value in response.headers.items():
        merged[name] = f"{merged[name]}, {value}" if name in merged else value
    content_type = response.headers.get("Content-Type")
    mimetype = content_type.split(";")[0].strip() if content_type else None
    return func.HttpResponse(
        response.body, status_code=response.status, headers=merged, mimetype=mimetype
    )


def serve(
    req: func.HttpRequest,
    handle: Callable[[Services, Request], Response],
    misconfigured: Callable[[], Response],
    context: func.Context | None = None,
) -> func.HttpResponse:
    """Answer one request with ``handle``, given the app's services (built on first use, so
    that an invalid setting never stops the app from loading).

    An invalid setting (``SettingsError``, raised where the services read it) is answered with
    ``misconfigured``, the route's own error (``shared/misconfigured.py``), instead of reaching
    the host as a bare 500. Nothing is cached: fixing the setting heals the app.

    The whole answer is one span continuing the host's invocation context (``context``), and
    carries its trace id (``shared/telemetry/invocation.py``).
    """
    setup.ensure()
    request = to_request(req)
    route = context.function_name if context is not None else "http"
    host_traceparent = context.trace_context.trace_parent if context is not None else None
    parent = invocation.parent_of(host_traceparent, request.headers)
    with invocation.serving(route, request.method, parent) as span:
        try:
            response = handle(get_services(), request)
        except SettingsError:
            _log.exception("invalid configuration")
            response = misconfigured()
        return to_http_response(invocation.answered(span, response))
