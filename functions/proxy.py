"""The FHIR proxy route: ``ANY fhir/{face}/{*path}`` to the caller's tenant's provider."""

import azure.functions as func

from functions._adapter import to_http_response, to_request

bp = func.Blueprint()

# Anonymous at the host: every request carries a bearer token that the proxy verifies itself.
# fhir/{face}/metadata is a literal route and wins over this catch-all.
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@bp.function_name("fhir_proxy")
@bp.route(route="fhir/{face}/{*path}", methods=_METHODS, auth_level=func.AuthLevel.ANONYMOUS)
def fhir_proxy(req: func.HttpRequest) -> func.HttpResponse:
    """Forward one FHIR call to the provider mapped to the token's tenant."""
    from shared.services import get_services

    face = req.route_params.get("face", "")
    return to_http_response(get_services().proxy.handle(to_request(req), face))
