"""The built-in sandbox provider: ``sandbox/fhir/{*path}`` (R4 API) and ``sandbox/ui/{*path}``."""

from collections.abc import Callable
from typing import Any

import azure.functions as func

from functions._adapter import serve
from shared import misconfigured
from shared.http import Request, Response
from shared.services import Services

bp = func.Blueprint()

# Anonymous at the host: the app checks the sandbox key itself. PATCH is routed only so that it
# meets a FHIR 405 instead of the host's bare 404.
_FHIR_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
_UI_METHODS = ["GET", "POST"]


def _answer(
    req: func.HttpRequest, context: func.Context, handler: Callable[[Any, Request], Response]
) -> func.HttpResponse:
    def handle(services: Services, request: Request) -> Response:
        if not services.settings.sandbox_enabled:
            from shared.sandbox.api import disabled_response

            return disabled_response()
        return handler(services, request)

    # The sandbox is R4 whatever the route: its errors are R4 OperationOutcomes.
    return serve(req, handle, lambda: misconfigured.fhir_answer(None), context)


@bp.function_name("sandbox_fhir")
@bp.route(route="sandbox/fhir/{*path}", methods=_FHIR_METHODS, auth_level=func.AuthLevel.ANONYMOUS)
def sandbox_fhir(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """The sandbox's FHIR R4 API (synthetic data), for the proxy and for partners."""
    return _answer(req, context, lambda services, request: services.sandbox_api.handle(request))


@bp.function_name("sandbox_ui")
@bp.route(route="sandbox/ui/{*path}", methods=_UI_METHODS, auth_level=func.AuthLevel.ANONYMOUS)
def sandbox_ui(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """The sandbox's editor page (server-rendered HTML)."""
    return _answer(req, context, lambda services, request: services.sandbox_ui.handle(request))
