"""HTTP functions for the unauthenticated discovery documents of each FHIR face."""

from __future__ import annotations

from collections.abc import Callable

import azure.functions as func

from functions._adapter import serve
from shared import metadata, misconfigured, routes
from shared.http import Request, Response
from shared.settings import Settings

bp = func.Blueprint()

# POST is routed too so that it meets a FHIR 405 instead of the host's 404 (docs/security.md
# row 53).
_METHODS = (func.HttpMethod.GET, func.HttpMethod.POST)

_Handler = Callable[[Request, str, Settings], Response]


def _answer(req: func.HttpRequest, context: func.Context, handler: _Handler) -> func.HttpResponse:
    face = req.route_params.get("face", "")
    return serve(
        req,
        lambda services, request: handler(request, face, services.settings),
        lambda: misconfigured.fhir_answer(face),
        context,
    )


@bp.function_name("metadata")
@bp.route(route=routes.METADATA, methods=_METHODS, auth_level=func.AuthLevel.ANONYMOUS)
def metadata_function(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """The face's Conformance / CapabilityStatement."""
    return _answer(req, context, metadata.metadata_response)


@bp.function_name("smart_configuration")
@bp.route(route=routes.SMART_CONFIGURATION, methods=_METHODS, auth_level=func.AuthLevel.ANONYMOUS)
def smart_configuration_function(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """The face's SMART configuration (token endpoint, grant types, auth methods)."""
    return _answer(req, context, metadata.smart_configuration_response)


# POST is routed too, so that it gets a JSON 405 instead of the host's bare 404.
@bp.function_name("oauth_authorization_server")
@bp.route(route=routes.AUTHORIZATION_SERVER, methods=_METHODS, auth_level=func.AuthLevel.ANONYMOUS)
def oauth_authorization_server(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """RFC 8414 authorization server metadata."""
    return serve(
        req,
        lambda services, request: metadata.authorization_server_response(
            request, services.settings
        ),
        misconfigured.jwks_answer,
        context,
    )
