"""OAuth endpoints: ``oauth2/token`` (client credentials), ``oauth2/introspect`` (RFC 7662),
``oauth2/revoke`` (RFC 7009), ``oauth2/jwks`` and ``oauth2/assertion-jwks``."""

import azure.functions as func

from functions._adapter import serve
from shared import misconfigured, routes

bp = func.Blueprint()


# GET is routed too, so that a wrong method gets RFC 6749 JSON with Allow: POST, not a host 404.
@bp.function_name("oauth_token")
@bp.route(route=routes.TOKEN, methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
def oauth_token(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """Issue an access token for a client and one tenant."""
    return serve(
        req,
        lambda services, request: services.token_endpoint.handle(request),
        misconfigured.oauth_answer,
        context,
    )


@bp.function_name("oauth_jwks")
@bp.route(route=routes.JWKS, methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def oauth_jwks(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """Publish the public signing keys (current, previous and pending)."""
    from shared.auth.jwks import jwks_response

    return serve(
        req,
        lambda services, _: jwks_response(services.signing_keys),
        misconfigured.jwks_answer,
        context,
    )


@bp.function_name("oauth_assertion_jwks")
@bp.route(route=routes.ASSERTION_JWKS, methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def oauth_assertion_jwks(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """Publish the public keys of our client assertions (for private_key_jwt providers)."""
    from shared.auth.jwks import jwks_response

    return serve(
        req,
        lambda services, _: jwks_response(services.assertion_keys),
        misconfigured.jwks_answer,
        context,
    )


@bp.function_name("oauth_introspect")
@bp.route(route=routes.INTROSPECT, methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
def oauth_introspect(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """RFC 7662: describe a token to its client or to a resource server of its tenant."""
    return serve(
        req,
        lambda services, request: services.introspection.handle(request),
        misconfigured.oauth_answer,
        context,
    )


@bp.function_name("oauth_revoke")
@bp.route(route=routes.REVOKE, methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
def oauth_revoke(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """RFC 7009: a client revokes one of its own access tokens."""
    return serve(
        req,
        lambda services, request: services.revocation.handle(request),
        misconfigured.oauth_answer,
        context,
    )
