"""OAuth error answers (RFC 6749 §5.2): JSON, no-store, fixed ASCII descriptions."""

from __future__ import annotations

from shared.http import Response, json_response

REALM = "ehr-bridge"

# RFC 6749 §5.1: credential-bearing responses, and their errors, must not be cached.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class OAuthError(Exception):
    """An RFC 6749 §5.2 error response; descriptions are fixed ASCII, never echo input."""

    def __init__(
        self,
        error: str,
        description: str,
        *,
        status: int = 400,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.headers = headers or {}

    def response(self) -> Response:
        """The JSON error response with no-store headers."""
        body = {"error": self.error, "error_description": self.description}
        return json_response(self.status, body, headers={**NO_STORE, **self.headers})


def invalid_client(description: str) -> OAuthError:
    """``invalid_client``: 401 with a Basic challenge, whichever method the client used."""
    # RFC 6749 §5.2: 401 with a challenge for the scheme the client used; RFC 9110 §11.6.1:
    # every 401 carries one, so a client that sent body credentials is offered Basic too.
    return OAuthError(
        "invalid_client",
        description,
        status=401,
        headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
    )
