"""Which page handler answers a request, and whether the request may reach it at all."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from shared.http import Request
from shared.web.errors import PageError
from shared.web.origin import same_origin

Handler = TypeVar("Handler")


def handler_for(
    handlers: Mapping[tuple[str, str], Handler], route: str, request: Request, origin: str
) -> Handler:
    """The handler of ``route`` for the request's method: 405 (with ``Allow``) for a method the
    page does not take, 403 for a POST sent from another site than ``origin``."""
    handler = handlers.get((route, request.method))
    if handler is None:
        allowed = sorted(method for name, method in handlers if name == route)
        raise PageError(
            405,
            "Method not allowed",
            "This page does not accept that kind of request.",
            headers={"Allow": ", ".join(allowed)},
        )
    if request.method == "POST" and not same_origin(request, origin):
        raise PageError(
            403, "Request refused", "This form was sent from another site, so it was refused."
        )
    return handler
