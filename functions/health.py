"""Liveness: ``GET health`` reports dependency reachability, never secrets or addresses."""

import azure.functions as func

from functions._adapter import serve
from shared import misconfigured

bp = func.Blueprint()


@bp.function_name("health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """Report whether tables, secrets and a signing key are reachable."""
    from shared.health import health_response

    return serve(
        req, lambda services, _: health_response(services), misconfigured.health_answer, context
    )
