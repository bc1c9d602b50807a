"""How a client proves who it is at the token endpoint (RFC 6749 §2.3): a registry of methods.

Each method recognises its own evidence in a request, reads the client id and the proof from it,
and checks the proof. A request uses exactly one method (§2.3): a second one is
``invalid_request``. The registry has Authlib's shape (``ClientAuthentication`` with its methods
by name), so RFC 7523 ``private_key_jwt`` arrives as one more method, and nothing outside
``shared.auth`` needs to know which methods exist or how a proof is checked.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import unquote_plus

from shared.auth.client_secrets import secret_matches
from shared.auth.errors import OAuthError, invalid_client
from shared.http import Request
from shared.lookups import Lookups
from shared.secret_store import Secret, utcnow

# What an unknown client is compared against: the hashed form, so it costs what a real one does.
_DUMMY_SECRET = "sha256:" + "0" * 64


@dataclass(frozen=True)
class ClientCredentials:
    """Who the caller says it is, its proof, and the method that carried them."""

    client_id: str
    proof: str
    method: str

    def __repr__(self) -> str:
        # Never the proof: a repr ends up in logs and tracebacks.
        return f"ClientCredentials(client_id={self.client_id!r}, method={self.method!r})"


class ClientAuthMethod(Protocol):
    """One way for a client to authenticate (RFC 6749 §2.3, RFC 7591 names)."""

    name: str
    description: str

    def presented(self, request: Request, form: Mapping[str, str]) -> bool:
        """True when the request carries this method's evidence."""
        ...

    def credentials(self, request: Request, form: Mapping[str, str]) -> ClientCredentials:
        """The client id and proof; ``OAuthError`` when the evidence is malformed."""
        ...

    def verify(
        self, credentials: ClientCredentials, client_id: str, lookups: Lookups
    ) -> str | None:
        """The version of the client's credential the proof matches (the token's ``sv``)."""
        ...


def matching_secret(
    candidate: str, secrets: Sequence[Secret], now_usable: Callable[[Secret], bool]
) -> Secret | None:
    """The usable version equal to ``candidate``, compared in constant time against all."""
    found: Secret | None = None
    for secret in secrets:
        # No early exit: the time taken must not tell which version, if any, matched.
        equal = secret_matches(candidate, secret.value)
        if equal and now_usable(secret) and found is None:
            found = secret
    if not secrets:
        secret_matches(candidate, _DUMMY_SECRET)
    return found


def verify_client_secret(candidate: str, client_id: str, lookups: Lookups) -> str | None:
    """The version of ``client_id``'s secret equal to ``candidate``, usable now, or None."""
    now = utcnow()

    def usable(secret: Secret) -> bool:
        return secret.properties.is_usable(now)

    matched = matching_secret(candidate, lookups.client_secrets(client_id), usable)
    if matched is None:
        # A secret rotated a moment ago is not in the cache yet: look once more, fresh.
        # At most one re-read per client per interval, shared by concurrent misses.
        matched = matching_secret(
            candidate, lookups.client_secrets(client_id, refresh=True), usable
        )
    return matched.properties.version if matched is not None else None


def refuse_unknown_client(candidate: str) -> None:
    """The comparison an unknown client costs, so its answer takes a known one's time."""
    matching_secret(candidate, [], lambda secret: False)


class ClientSecretBasic:
    """``client_secret_basic``: HTTP Basic with the form-urlencoded id and secret (§2.3.1)."""

    name = "client_secret_basic"
    description = "HTTP Basic"

    def presented(self, request: Request, form: Mapping[str, str]) -> bool:
        """Any Authorization header: its scheme is judged when it is read."""
        return bool(request.headers.get_all("Authorization"))

    def credentials(self, request: Request, form: Mapping[str, str]) -> ClientCredentials:
        """The id and secret from the one Basic Authorization header."""
        authorizations = request.headers.get_all("Authorization")
        if len(authorizations) > 1:
            raise OAuthError("invalid_request", "send one Authorization header")
        scheme, _, param = authorizations[0].strip().partition(" ")
        # RFC 9110 §11.1: the scheme name is case-insensitive.
        if scheme.lower() != "basic":
            raise invalid_client("unsupported authentication scheme")
        try:
            client_id, secret = _decode_basic(param)
        except UnicodeDecodeError:
            raise invalid_client("malformed Basic credentials") from None
        return ClientCredentials(client_id, secret, self.name)

    def verify(
        self, credentials: ClientCredentials, client_id: str, lookups: Lookups
    ) -> str | None:
        """The secret version the secret matches."""
        return verify_client_secret(credentials.proof, client_id, lookups)


class ClientSecretPost:
    """``client_secret_post``: ``client_id`` and ``client_secret`` in the form body (§2.3.1)."""

    name = "client_secret_post"
    description = "client_id and client_secret in the form body"

    def presented(self, request: Request, form: Mapping[str, str]) -> bool:
        """A ``client_secret`` in the body."""
        return form.get("client_secret") is not None

    def credentials(self, request: Request, form: Mapping[str, str]) -> ClientCredentials:
        """The id and secret from the body; both are needed."""
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if client_id is None or secret is None:
            raise invalid_client("client authentication is required")
        return ClientCredentials(client_id, secret, self.name)

    def verify(
        self, credentials: ClientCredentials, client_id: str, lookups: Lookups
    ) -> str | None:
        """The secret version the secret matches."""
        return verify_client_secret(credentials.proof, client_id, lookups)


def _decode_basic(param: str) -> tuple[str, str]:
    """RFC 6749 §2.3.1: base64 of form-urlencoded id ":" secret."""
    try:
        raw = base64.b64decode(param.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise invalid_client("malformed Basic credentials") from None
    client_id, colon, secret = raw.partition(":")
    if not colon:
        raise invalid_client("malformed Basic credentials")
    return unquote_plus(client_id, errors="strict"), unquote_plus(secret, errors="strict")


class ClientAuthentication:
    """The registered methods; finds the one a request uses and checks its proof."""

    def __init__(self, methods: Sequence[ClientAuthMethod]) -> None:
        self._methods = {method.name: method for method in methods}

    @property
    def method_names(self) -> tuple[str, ...]:
        """The registered methods' names, as discovery documents advertise them."""
        return tuple(self._methods)

    @property
    def signing_algorithms(self) -> tuple[str, ...]:
        """JWS algorithms accepted for client assertions (``..._signing_alg_values_supported``)."""
        found: list[str] = []
        for method in self._methods.values():
            for algorithm in getattr(method, "signing_algorithms", ()):
                if algorithm not in found:
                    found.append(algorithm)
        return tuple(found)

    def describe(self) -> str:
        """The registered methods in words, for documents a person reads."""
        return " or ".join(method.description for method in self._methods.values())

    def credentials(self, request: Request, form: Mapping[str, str]) -> ClientCredentials:
        """What the one method the request uses says (RFC 6749 §2.3: never two)."""
        used = [m for m in self._methods.values() if m.presented(request, form)]
        if not used:
            raise invalid_client("client authentication is required")
        # Refused before any evidence is read: a secret beside an assertion is two methods
        # whichever of them is complete (RFC 7521 §4.2 names this case for assertions).
        if len(used) > 1:
            raise OAuthError("invalid_request", "use one client authentication method")
        credentials = used[0].credentials(request, form)
        # A client_id parameter beside another method must name the same client (§3.2.1).
        named = form.get("client_id")
        if named is not None and named != credentials.client_id:
            raise OAuthError("invalid_request", "client_id differs from the client's credentials")
        if not credentials.client_id or not credentials.proof:
            raise invalid_client("client authentication failed")
        return credentials

    def verify(
        self, credentials: ClientCredentials, client_id: str, lookups: Lookups
    ) -> str | None:
        """The credential version the proof matches for the known ``client_id``, or None."""
        return self._methods[credentials.method].verify(credentials, client_id, lookups)


def default_client_authentication(
    private_key_jwt: ClientAuthMethod | None = None,
) -> ClientAuthentication:
    """``client_secret_basic``, ``client_secret_post`` and RFC 7523 ``private_key_jwt``.

    Without a wired ``private_key_jwt`` (services.py passes one with its key sets and replay
    cache) the method is still recognised, for its name, and refuses every assertion.
    """
    from shared.auth.client_assertions import PrivateKeyJwt

    return ClientAuthentication(
        [ClientSecretBasic(), ClientSecretPost(), private_key_jwt or PrivateKeyJwt()]
    )
