"""Management API (``manage/…``): clients, secrets and tenant mappings.

Anonymous at the host: ``shared/manage_api.py`` requires an operator itself (an Entra principal
with an app role, or the admin key), so Entra callers need no host key (``shared/operators.py``).
"""

import azure.functions as func

from functions._adapter import serve
from shared import misconfigured

bp = func.Blueprint()

# The host refuses routes starting with "admin", hence "manage". Auth level is set on every
# route: a Blueprint-level auth level is silently ignored.
_ROUTES = {
    "clients": ("manage/clients", ["GET", "POST"]),
    "client": ("manage/clients/{client_id}", ["GET", "PUT", "DELETE"]),
    "client_secrets": ("manage/clients/{client_id}/secrets", ["GET", "POST"]),
    "client_secret": ("manage/clients/{client_id}/secrets/{version}", ["GET", "DELETE"]),
    "client_keys": ("manage/clients/{client_id}/keys", ["GET", "PUT", "DELETE"]),
    "tenants": ("manage/tenants", ["GET"]),
    "tenant": ("manage/tenants/{tenant_id}", ["GET", "PUT", "DELETE"]),
    "tenant_check": ("manage/tenants/{tenant_id}/check", ["POST"]),
    "tenant_audit": ("manage/tenants/{tenant_id}/audit", ["GET"]),
}


def _handle(route: str, req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return serve(
        req,
        lambda services, request: services.management.handle(route, request),
        misconfigured.management_answer,
        context,
    )


def _register(name: str, template: str, methods: list[str]) -> None:
    def handler(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        return _handle(name, req, context)

    handler.__name__ = f"manage_{name}"
    handler.__doc__ = f"Management route {template}."
    bp.function_name(f"manage_{name}")(
        bp.route(route=template, methods=methods, auth_level=func.AuthLevel.ANONYMOUS)(handler)
    )


for _name, (_template, _methods) in _ROUTES.items():
    _register(_name, _template, _methods)
