"""What each route answers when the app's own settings are invalid (docs/architecture.md §5).

Settings are read on first use (``shared/services.py``), so an invalid one surfaces as
``SettingsError`` on the requests that need it, never as "0 functions loaded". Every trigger
answers it through ``functions/_adapter.serve`` in its route's own language, with the same
fixed wording: the answer names no setting (the log does) and is never cached, so fixing the
setting heals the app.
"""

from __future__ import annotations

from shared.fhir.outcome import outcome_response
from shared.http import Response, json_response

MESSAGE = "The service is misconfigured."
_NO_STORE = {"Cache-Control": "no-store"}


def fhir_answer(face: str | None) -> Response:
    """FHIR routes (metadata, the proxy, the sandbox): a 500 OperationOutcome in the face's
    version, as for any fault of ours."""
    return outcome_response(500, "exception", MESSAGE, face, _NO_STORE)


def oauth_answer() -> Response:
    """The token endpoint: RFC 6749 JSON, ``server_error`` (borrowed from §4.1.2.1, like the
    endpoint's ``temporarily_unavailable``): the client did nothing wrong and should not
    rotate its secret."""
    from shared.auth.errors import OAuthError

    return OAuthError("server_error", MESSAGE, status=500).response()


def management_answer() -> Response:
    """The management API: its JSON error, ``misconfigured``; nothing was changed."""
    from shared.manage_api import ApiError

    return ApiError(500, "misconfigured", f"{MESSAGE} Nothing was changed.").response()


def health_answer() -> Response:
    """Health: 503, so a probe takes the instance out; no checks could run."""
    return json_response(503, {"status": "misconfigured"}, headers=_NO_STORE)


def jwks_answer() -> Response:
    """The JWKS: 503 with a plain JSON error, like its key store being unavailable."""
    return json_response(503, {"error": "misconfigured"}, headers=_NO_STORE)


def page_answer() -> Response:
    """The console's pages: a 500 HTML page with the kit's headers; nothing was changed."""
    from shared.web.pages import html_response

    document = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Misconfigured</title>'
        f"</head><body><main><h1>{MESSAGE}</h1><p>Nothing was changed.</p></main></body></html>"
    )
    return html_response(500, document)
