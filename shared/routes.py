"""Public route templates and URL builders (route prefix ``api``, as in host.json)."""

from __future__ import annotations

ROUTE_PREFIX = "api"

METADATA = "fhir/{face}/metadata"
SMART_CONFIGURATION = "fhir/{face}/.well-known/smart-configuration"
TOKEN = "oauth2/token"
JWKS = "oauth2/jwks"
HEALTH = "health"


def token_url(origin: str) -> str:
    """Absolute URL of the token endpoint."""
    return f"{origin}/{ROUTE_PREFIX}/{TOKEN}"


def jwks_url(origin: str) -> str:
    """Absolute URL of the JWKS document."""
    return f"{origin}/{ROUTE_PREFIX}/{JWKS}"


def face_base_url(origin: str, face: str) -> str:
    """The FHIR base a consumer pastes as its Link, e.g. https://host/api/fhir/stu3."""
    return f"{origin}/{ROUTE_PREFIX}/fhir/{face}"
