"""The built-in sandbox provider: ``sandbox/fhir/{*path}`` (R4 API) and ``sandbox/ui/{*path}``."""

import logging
from collections.abc import Callable
from typing import Any

import azure.functions as func

from functions._adapter import to_http_response, to_request
from shared.http import Request, Response

bp = func.Blueprint()

_log = logging.getLogger(__name__)

# Anonymous at the host: the app checks the sandbox key itself. PATCH is routed only so that it
# meets a FHIR 405 instead of the host's bare 404.
_FHIR_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
_UI_METHODS = ["GET", "POST"]


def _answer(
    req: func.HttpRequest, handler: Callable[[Any, Request], Response]
) -> func.HttpResponse:
    from shared.fhir.outcome import outcome_response
    from shared.sandbox.api import disabled_response
    from shared.services import get_services
    from shared.settings import SettingsError

    try:
        services = get_services()
    except SettingsError:
        _log.exception("invalid configuration")
        return to_http_response(
            outcome_response(500, "exception", "The service is misconfigured.", None)
        )
    if not services.settings.sandbox_enabled:
        return to_http_response(disabled_response())
    return to_http_response(handler(services, to_request(req)))


@bp.function_name("sandbox_fhir")
@bp.route(route="sandbox/fhir/{*path}", methods=_FHIR_METHODS, auth_level=func.AuthLevel.ANONYMOUS)
def sandbox_fhir(req: func.HttpRequest) -> func.HttpResponse:
    """The sandbox's FHIR R4 API (synthetic data), for the proxy and for partners."""
    return _answer(req, lambda services, request: services.sandbox_api.handle(request))


@bp.function_name("sandbox_ui")
@bp.route(route="sandbox/ui/{*path}", methods=_UI_METHODS, auth_level=func.AuthLevel.ANONYMOUS)
def sandbox_ui(req: func.HttpRequest) -> func.HttpResponse:
    """The sandbox's editor page (server-rendered HTML)."""
    return _answer(req, lambda services, request: services.sandbox_ui.handle(request))
