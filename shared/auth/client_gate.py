"""Client authentication for the endpoints beside the token endpoint (introspection, revocation).

The same methods (``client_auth``), the same failure throttle and the same order as the token
endpoint: request syntax, then the client's proof, judged by the throttle before and after, so a
guesser gets no more tries here than there. A failed authentication is ``invalid_client`` (401).
"""

from __future__ import annotations

from collections.abc import Callable

from shared.audit import audit
from shared.auth.client_auth import ClientAuthentication, refuse_unknown_client
from shared.auth.clients import ClientRecord
from shared.auth.errors import OAuthError, invalid_client
from shared.auth.throttle import FailureThrottle, Throttled
from shared.auth.token_endpoint import parse_form
from shared.http import Request
from shared.ids import canonical_guid, is_guid
from shared.lookups import Lookups
from shared.source import source_address

MAX_TOKEN_CHARS = 8 * 1024
"""The longest ``token`` parameter looked at (our tokens are far shorter)."""


class ClientGate:
    """Reads a POSTed form and the client it authenticates, or raises the OAuthError to send."""

    def __init__(
        self,
        lookups: Lookups,
        throttle: FailureThrottle,
        client_auth: ClientAuthentication,
        trusted_proxy_hops: int,
    ) -> None:
        self._lookups = lookups
        self._throttle = throttle
        self._client_auth = client_auth
        self._hops = trusted_proxy_hops

    def admit(self, request: Request, endpoint: str) -> tuple[ClientRecord, dict[str, str]]:
        """The authenticated, enabled client and the form it sent."""
        if request.method != "POST":
            raise OAuthError("invalid_request", "use POST", status=405, headers={"Allow": "POST"})
        form = parse_form(request)
        credentials = self._client_auth.credentials(request, form)
        client_key = credentials.client_id.lower() if is_guid(credentials.client_id) else "?"
        source = source_address(request, self._hops)
        self._judged(self._throttle.screen, client_key, source, endpoint)
        client_id = canonical_guid(credentials.client_id) if client_key != "?" else None
        record = self._lookups.client(client_id) if client_id else None
        if client_id is None or record is None:
            refuse_unknown_client(credentials.proof)
            version = None
        else:
            version = self._client_auth.verify(credentials, client_id, self._lookups)
        if record is None or not record.enabled or version is None:
            self._judged(self._throttle.failed, client_key, source, endpoint)
            audit(f"{endpoint}.denied", client_id=client_id, method=credentials.method)
            raise invalid_client("client authentication failed")
        self._judged(self._throttle.check, client_key, source, endpoint)
        return record, form

    @staticmethod
    def _judged(
        judge: Callable[[str, str], None], client_key: str, source: str, endpoint: str
    ) -> None:
        try:
            judge(client_key, source)
        except Throttled as throttled:
            audit(f"{endpoint}.throttled", client_id=client_key if client_key != "?" else None)
            raise OAuthError(
                "slow_down",
                "too many failed attempts; retry after the Retry-After delay",
                status=429,
                headers={"Retry-After": str(throttled.retry_after)},
            ) from None


def token_parameter(form: dict[str, str]) -> str:
    """The ``token`` parameter RFC 7662 §2.1 and RFC 7009 §2.1 require."""
    token = form.get("token")
    if token is None:
        raise OAuthError("invalid_request", "token is required")
    return token
