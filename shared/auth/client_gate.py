"""Client authentication at the token endpoint and the endpoints beside it (introspection,
revocation): the form a client POSTs and the client it authenticates.

One set of methods (``client_auth``), one failure throttle and one order for all three: request
syntax, then the client's proof, judged by the throttle before and after, so a guesser gets no
more tries at one endpoint than at another. A failed authentication is ``invalid_client`` (401).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple
from urllib.parse import parse_qsl

from shared.audit import audit
from shared.auth.client_auth import ClientAuthentication, refuse_unknown_client
from shared.auth.clients import ClientRecord
from shared.auth.errors import OAuthError, invalid_client
from shared.auth.throttle import FailureThrottle, Throttled
from shared.http import Request
from shared.ids import canonical_guid, is_guid
from shared.lookups import Lookups
from shared.source import source_address

FORM_TYPE = "application/x-www-form-urlencoded"
MAX_BODY_BYTES = 16 * 1024
MAX_FIELDS = 16
MAX_TOKEN_CHARS = 8 * 1024
"""The longest ``token`` parameter looked at (our tokens are far shorter)."""


def parse_form(request: Request) -> dict[str, str]:
    """The form parameters, enforcing RFC 6749 §3.2 (no repeats; empty means omitted)."""
    if request.raw_query:
        # §2.3.1 and §3.2: parameters, credentials above all, never travel in the URI.
        raise OAuthError("invalid_request", "parameters must be sent in the request body")
    media_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
    if media_type != FORM_TYPE:
        raise OAuthError("invalid_request", "body must be application/x-www-form-urlencoded")
    if len(request.body) > MAX_BODY_BYTES:
        raise OAuthError("invalid_request", "request body is too large", status=413)
    try:
        text = request.body.decode("ascii")
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=False,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise OAuthError("invalid_request", "body is not a valid form") from None
    form: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in pairs:
        if name in seen:
            raise OAuthError("invalid_request", "a parameter is repeated")
        seen.add(name)
        if value != "":
            form[name] = value
    return form


class Authenticated(NamedTuple):
    """A client that proved who it is: its record, the credential version and the method."""

    client: ClientRecord
    version: str
    method: str


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
        return self.authenticate(request, form, endpoint).client, form

    def authenticate(self, request: Request, form: dict[str, str], endpoint: str) -> Authenticated:
        """The enabled client the request's credentials prove, or ``invalid_client``; throttled
        before and after the proof is checked (``slow_down``)."""
        credentials = self._client_auth.credentials(request, form)
        client_key = credentials.client_id.lower() if is_guid(credentials.client_id) else "?"
        source = source_address(request, self._hops)
        # What this instance already knows; the verdict across instances comes after the proof.
        self._judged(self._throttle.screen, client_key, source, endpoint)
        client_id = canonical_guid(credentials.client_id) if client_key != "?" else None
        record = self._lookups.client(client_id) if client_id else None
        if client_id is None or record is None:
            refuse_unknown_client(credentials.proof)
            version = None
        else:
            version = self._client_auth.verify(credentials, client_id, self._lookups)
        if record is None or not record.enabled or version is None:
            # Counted and judged in one step: of concurrent guesses, only `limit` get a 401.
            self._judged(self._throttle.failed, client_key, source, endpoint)
            audit(
                f"{endpoint}.denied",
                client_id=client_id,
                reason="unknown client"
                if record is None
                else "client disabled"
                if not record.enabled
                else "assertion refused"
                if credentials.method == "private_key_jwt"
                else "secret mismatch",
                method=credentials.method,
            )
            raise invalid_client("client authentication failed")
        # Judged again now that the answer is known: guesses that failed meanwhile count, so a
        # right proof during a lockout gets the same 429 as a wrong one.
        self._judged(self._throttle.check, client_key, source, endpoint)
        return Authenticated(record, version, credentials.method)

    @staticmethod
    def _judged(
        judge: Callable[[str, str], None], client_key: str, source: str, endpoint: str
    ) -> None:
        try:
            judge(client_key, source)
        except Throttled as throttled:
            audit(f"{endpoint}.throttled", client_id=client_key if client_key != "?" else None)
            # slow_down: the registered OAuth error (RFC 8628 §3.5) for "too many requests".
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
