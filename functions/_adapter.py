"""Conversion between azure.functions HTTP objects and the core's plain values."""

from __future__ import annotations

import azure.functions as func

from shared.http import Headers, Request, Response


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
