"""The FHIR proxy route: ``ANY fhir/{face}/{*path}`` to the caller's tenant's provider."""

import azure.functions as func

from functions._adapter import serve
from shared import misconfigured

bp = func.Blueprint()

# Anonymous at the host: every request carries a bearer token that the proxy verifies itself.
# fhir/{face}/metadata is a literal route and wins over this catch-all.
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@bp.function_name("fhir_proxy")
@bp.route(route="fhir/{face}/{*path}", methods=_METHODS, auth_level=func.AuthLevel.ANONYMOUS)
def fhir_proxy(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """Forward one FHIR call to the provider mapped to the token's tenant."""
    face = req.route_params.get("face", "")
    return serve(
        req,
        lambda services, request: services.proxy.handle(request, face),
        lambda: misconfigured.fhir_answer(face),
        context,
    )
