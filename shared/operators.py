"""Who operates EHR Bridge (the console and the management API), and what they may do.

Two ways in, one set of rules:

- **Microsoft Entra ID through App Service Authentication** (in Azure, when Bicep configured
  it): the platform validates the user's sign-in (or an operator script's bearer token) before
  our code runs and hands us the caller in the ``X-MS-CLIENT-PRINCIPAL`` header: Base64 of a
  JSON object ``{"auth_typ", "claims": [{"typ", "val"}], "name_typ", "role_typ"}``. The
  platform strips copies of that header sent by clients, so it is trusted only where that
  authentication runs: ``EHRB_ENTRA_AUTH`` on, the app in Azure (two hosting markers that
  agree) *and* the platform's own ``WEBSITE_AUTH_ENABLED``. Anywhere else the header is
  ignored, whatever it says. Two app roles: ``EHRBridge.Operator`` may change things,
  ``EHRBridge.Reader`` may only look.
- **A key**: locally ``EHRB_LOCAL_ADMIN_KEY``; in Azure the Key Vault secret
  ``manage-admin-key`` (its SHA-256, as for client secrets), for scripts and break-glass use.
  The management routes are anonymous at the Functions host so that Entra callers need no
  host key; the host never tells the worker which key a caller sent, so the app checks its own.

Pure rules and one small reader; no azure.functions.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from shared.audit import Actor
from shared.cache import TTLCache
from shared.http import Request
from shared.secret_store import SecretStore, usable_secrets
from shared.settings import Settings

OPERATOR_ROLE: Final = "EHRBridge.Operator"  # may change things
READER_ROLE: Final = "EHRBridge.Reader"  # may only look
PRINCIPAL_HEADER: Final = "X-MS-CLIENT-PRINCIPAL"
ADMIN_KEY_SECRET: Final = "manage-admin-key"
# The claim types App Service writes for the role and the object id (its default claim mapping),
# and the short forms a token carries; either is accepted.
ROLE_CLAIMS: Final = ("roles", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role")
OBJECT_ID_CLAIMS: Final = ("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid")
NAME_CLAIMS: Final = ("preferred_username", "name", "upn", "appid", "azp")
# A real principal is a few KB; anything larger is refused before it is decoded.
MAX_PRINCIPAL_CHARS: Final = 32 * 1024
_MAX_NAME_CHARS: Final = 200
_CACHE_KEY: Final = "admin-key"


class NotAllowed(Exception):
    """The caller is not signed in (401) or lacks the role for what it asked (403)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Operator:
    """A person or script acting on EHR Bridge: how they came in, their name, their rights."""

    kind: str  # "entra", "admin_key" or "console" (a console session)
    name: str
    can_change: bool
    can_look: bool = True

    def actor(self) -> Actor:
        """The audit actor of this operator's changes."""
        return Actor(self.kind, self.name)

    def require(self, change: bool) -> None:
        """NotAllowed(403) unless the operator may look (and change, when ``change``)."""
        if not self.can_look:
            raise NotAllowed(403, "your account has no EHR Bridge role")
        if change and not self.can_change:
            raise NotAllowed(403, "your account may look but not change anything")


def platform_sign_in(settings: Settings) -> bool:
    """True when the App Service Authentication principal header may be trusted."""
    hosting = settings.hosting
    return settings.entra_auth and hosting.enforces_admin_level and hosting.platform_auth


def _printable(value: Any) -> str:
    text = value if isinstance(value, str) else ""
    return text[:_MAX_NAME_CHARS] if text.isprintable() else ""


def parse_principal(header: str) -> Operator | None:
    """The operator an ``X-MS-CLIENT-PRINCIPAL`` value names; None when it is not one."""
    if not header or len(header) > MAX_PRINCIPAL_CHARS:
        return None
    try:
        document = json.loads(base64.b64decode(header.strip(), validate=True).decode("utf-8"))
    except (binascii.Error, ValueError, RecursionError):
        return None
    if not isinstance(document, dict) or document.get("auth_typ") != "aad":
        return None
    claims = document.get("claims")
    if not isinstance(claims, list):
        return None
    role_type = _printable(document.get("role_typ"))
    name_type = _printable(document.get("name_typ"))
    values: dict[str, list[str]] = {}
    for claim in claims:
        if isinstance(claim, dict) and isinstance(claim.get("typ"), str):
            values.setdefault(claim["typ"], []).append(_printable(claim.get("val")))
    roles = {role for typ in (*ROLE_CLAIMS, role_type) if typ for role in values.get(typ, [])}
    object_id = next((values[t][0] for t in OBJECT_ID_CLAIMS if values.get(t)), "")
    if not object_id:
        return None  # every Entra sign-in carries one; without it nobody can be named
    name = next((values[t][0] for t in (name_type, *NAME_CLAIMS) if t and values.get(t)), "")
    operator = OPERATOR_ROLE in roles
    return Operator(
        kind="entra",
        name=f"{name} ({object_id})" if name else object_id,
        can_change=operator,
        can_look=operator or READER_ROLE in roles,
    )


def platform_operator(request: Request, settings: Settings) -> Operator | None:
    """The Entra operator the platform named, when its header may be trusted and is present."""
    if not platform_sign_in(settings):
        return None
    header = request.header(PRINCIPAL_HEADER)
    if header is None:
        return None
    operator = parse_principal(header)
    if operator is None:
        raise NotAllowed(401, "the sign-in could not be read; sign in again")
    return operator


class AdminKey:
    """The management key: the local setting outside Azure, ``manage-admin-key`` in Azure.

    In Azure the stored form is ``sha256:<hex>`` (or, added by hand, the key itself), read
    through a one-entry cache so that anonymous guesses cost no Key Vault call each.
    """

    def __init__(
        self,
        settings: Settings,
        secret_store: Callable[[], SecretStore],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._store = secret_store
        self._cache: TTLCache[tuple[str, ...]] = TTLCache(settings.cache_ttl_seconds, clock=clock)

    def matches(self, presented: str) -> bool:
        """Constant-time check of a presented key; False when none is configured."""
        from shared.auth.client_secrets import secret_matches

        if not presented:
            return False
        if not self._settings.hosting.enforces_admin_level:
            expected = self._settings.local_admin_key
            # Bytes: compare_digest raises on non-ASCII str, and the caller controls ``presented``.
            return bool(expected) and hmac.compare_digest(
                presented.encode("utf-8"), expected.encode("utf-8")
            )
        stored = self._cache.get(_CACHE_KEY, self._load)
        found = False
        for value in stored:  # no early exit: the time must not tell which version matched
            found = secret_matches(presented, value) or found
        return found

    def derive(self, purpose: str) -> str:
        """HMAC-SHA256(current key, purpose) hex; "" when no key is configured.

        Sessions signed in with the key are bound to this, so rotating the key ends them.
        """
        if not self._settings.hosting.enforces_admin_level:
            base = self._settings.local_admin_key
        else:
            stored = self._cache.get(_CACHE_KEY, self._load)
            base = stored[0] if stored else ""
        if not base:
            return ""
        return hmac.new(base.encode("utf-8"), purpose.encode("utf-8"), hashlib.sha256).hexdigest()

    def _load(self) -> tuple[str, ...]:
        return tuple(secret.value for secret in usable_secrets(self._store(), ADMIN_KEY_SECRET))


def presented_key(request: Request) -> str | None:
    """The key the caller sent, as the Functions host reads it (header, then ``code``)."""
    header = request.header("x-functions-key")
    if header:
        return header
    for name, value in request.query:
        if name == "code":
            return value
    return None
