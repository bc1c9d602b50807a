"""Public route templates and URL builders (route prefix ``api``, as in host.json)."""

from __future__ import annotations

ROUTE_PREFIX = "api"

METADATA = "fhir/{face}/metadata"
SMART_CONFIGURATION = "fhir/{face}/.well-known/smart-configuration"
TOKEN = "oauth2/token"
JWKS = "oauth2/jwks"
# Our client-assertion keys (private_key_jwt to providers): the URL partners register with a
# provider. A separate document: a provider trusts these keys for assertions only.
ASSERTION_JWKS = "oauth2/assertion-jwks"
SANDBOX_FHIR = "sandbox/fhir"
INTROSPECT = "oauth2/introspect"  # RFC 7662
REVOKE = "oauth2/revoke"  # RFC 7009
# RFC 8414 metadata. Under the host's route prefix: /api/.well-known/oauth-authorization-server
# (docs/architecture.md says why the origin's root cannot be served).
AUTHORIZATION_SERVER = ".well-known/oauth-authorization-server"


def token_url(origin: str) -> str:
    """Absolute URL of the token endpoint."""
    return f"{origin}/{ROUTE_PREFIX}/{TOKEN}"


def jwks_url(origin: str) -> str:
    """Absolute URL of the JWKS document."""
    return f"{origin}/{ROUTE_PREFIX}/{JWKS}"


def assertion_jwks_url(origin: str) -> str:
    """Absolute URL of the client-assertion JWKS document."""
    return f"{origin}/{ROUTE_PREFIX}/{ASSERTION_JWKS}"


def face_base_url(origin: str, face: str) -> str:
    """The FHIR base a consumer pastes as its Link, e.g. https://host/api/fhir/stu3."""
    return f"{origin}/{ROUTE_PREFIX}/fhir/{face}"


def sandbox_base_url(origin: str) -> str:
    """The sandbox provider's FHIR base on this host, e.g. http://127.0.0.1:7071/api/sandbox/fhir."""
    return f"{origin.rstrip('/')}/{ROUTE_PREFIX}/{SANDBOX_FHIR}"


def introspection_url(origin: str) -> str:
    """Absolute URL of the introspection endpoint."""
    return f"{origin}/{ROUTE_PREFIX}/{INTROSPECT}"


def revocation_url(origin: str) -> str:
    """Absolute URL of the revocation endpoint."""
    return f"{origin}/{ROUTE_PREFIX}/{REVOKE}"


def authorization_server_url(origin: str) -> str:
    """Absolute URL of the RFC 8414 authorization server metadata."""
    return f"{origin}/{ROUTE_PREFIX}/{AUTHORIZATION_SERVER}"
