"""The JWKS endpoint's response."""

from __future__ import annotations

import logging

from shared.auth.signing_keys import SigningKeys
from shared.http import Response, json_response
from shared.secret_store import SecretStoreUnavailable

log = logging.getLogger(__name__)


def jwks_response(keys: SigningKeys) -> Response:
    """The JWK Set, cacheable for a short while; 503 when the key store cannot answer."""
    try:
        document = keys.jwks()
    except SecretStoreUnavailable as error:
        log.warning("jwks unavailable: %s", error)
        return json_response(
            503,
            {"error": "temporarily_unavailable"},
            headers={"Retry-After": str(error.retry_after), "Cache-Control": "no-store"},
        )
    # Verifiers may cache for a minute; keys are published before they sign (rotation runbook).
    return json_response(200, document, headers={"Cache-Control": "public, max-age=60"})
