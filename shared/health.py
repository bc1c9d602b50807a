"""Dependency checks for ``GET health``."""

from __future__ import annotations

import logging

from shared.http import Response, json_response
from shared.services import Services

log = logging.getLogger(__name__)


def health_response(services: Services) -> Response:
    """200 when every dependency answers, else 503; names states, never hosts or errors."""
    checks: dict[str, str] = {}
    retry_after = 0
    try:
        services.lookups.tenant("00000000-0000-0000-0000-000000000000")
        checks["tables"] = "ok"
    except Exception as error:
        log.warning("health: tables unavailable (%s)", type(error).__name__)
        checks["tables"] = "unavailable"
        retry_after = max(retry_after, _retry_after(error))
    try:
        services.signing_keys.current()
        checks["signing_key"] = "ok"
    except Exception as error:
        log.warning("health: signing key unavailable (%s)", type(error).__name__)
        checks["signing_key"] = "unavailable"
        retry_after = max(retry_after, _retry_after(error))
    healthy = all(state == "ok" for state in checks.values())
    headers = {"Cache-Control": "no-store"}
    if not healthy:
        headers["Retry-After"] = str(retry_after)
    return json_response(
        200 if healthy else 503,
        {"status": "ok" if healthy else "degraded", "checks": checks},
        headers=headers,
    )


def _retry_after(error: Exception) -> int:
    value = getattr(error, "retry_after", None)
    return value if isinstance(value, int) and value > 0 else 5
