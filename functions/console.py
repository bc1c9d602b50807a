"""The partner console: ``console/{*path}``, server-rendered pages (``shared/console``)."""

import azure.functions as func

from functions._adapter import serve
from shared import misconfigured
from shared.http import Request, Response
from shared.services import Services

bp = func.Blueprint()


# Anonymous at the host: the console signs people in itself (the admin key locally, Microsoft
# Entra ID through App Service Authentication in Azure) and checks roles on every request.
@bp.function_name("console")
@bp.route(route="console/{*path}", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
def console(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """The console's pages."""

    def handle(services: Services, request: Request) -> Response:
        return services.console.handle(request)

    return serve(req, handle, misconfigured.page_answer, context)
