"""HTTP functions for the unauthenticated discovery documents of each FHIR face."""

from __future__ import annotations

import logging
from collections.abc import Callable

import azure.functions as func

from functions._adapter import to_http_response, to_request
from shared import metadata, routes
from shared.fhir.outcome import outcome_response
from shared.http import Request, Response
from shared.settings import Settings, SettingsError

bp = func.Blueprint()

# POST is routed too so that it meets a FHIR 405 instead of the host's 404 (docs/security.md
# row 53).
_METHODS = (func.HttpMethod.GET, func.HttpMethod.POST)

_log = logging.getLogger(__name__)

_Handler = Callable[[Request, str, Settings], Response]


def _settings() -> Settings:
    # Read on first use, not at import: an import-time error shows in Azure only as
    # "0 functions loaded". A failure is not cached, so fixing the setting heals the app.
    from shared.services import get_services

    return get_services().settings


def _answer(req: func.HttpRequest, handler: _Handler) -> func.HttpResponse:
    request = to_request(req)
    face = req.route_params.get("face", "")
    try:
        settings = _settings()
    except SettingsError:
        _log.exception("invalid configuration")
        return to_http_response(_misconfigured(face))
    return to_http_response(handler(request, face, settings))


def _misconfigured(face: str) -> Response:
    return outcome_response(500, "exception", "The service is misconfigured.", face)


@bp.function_name("metadata")
@bp.route(route=routes.METADATA, methods=_METHODS, auth_level=func.AuthLevel.ANONYMOUS)
def metadata_function(req: func.HttpRequest) -> func.HttpResponse:
    """The face's Conformance / CapabilityStatement."""
    return _answer(req, metadata.metadata_response)


@bp.function_name("smart_configuration")
@bp.route(route=routes.SMART_CONFIGURATION, methods=_METHODS, auth_level=func.AuthLevel.ANONYMOUS)
def smart_configuration_function(req: func.HttpRequest) -> func.HttpResponse:
    """The face's SMART configuration (token endpoint, grant types, auth methods)."""
    return _answer(req, metadata.smart_configuration_response)
