"""CSRF tokens for the kit's forms, bound to the browser's session.

Every POST form carries ``csrf_token``: an HMAC-SHA256, under a secret of the application, of
what the browser holds that another site cannot read or choose. Signed in, that is the session
id (its cookie is HttpOnly and the server checks the session exists), so the token dies with the
session. Before sign-in there is no session, so the sign-in form is bound to a *pre-session*: a
random value in its own HttpOnly, SameSite=Strict cookie. The secret is what stops a cookie
planted by a sibling host from coming with a token that matches it; nothing is stored, so
anonymous visitors cost no table write. This is OWASP's synchronizer token with the token
derived rather than stored, on top of the Origin / Sec-Fetch-Site check (``origin.py``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable

from shared.http import Request
from shared.web.cookies import Cookie

FIELD = "csrf_token"
PRESESSION_BYTES = 32
_PURPOSE = b"ehr-bridge web form token v1\x00"
_PRESESSION = re.compile(r"[A-Za-z0-9_-]{43}")
_MAX_TOKEN_CHARS = 128


class Csrf:
    """Issues and checks form tokens; gives a pre-session cookie to a browser without one."""

    def __init__(self, secret: Callable[[], str], presession: Cookie) -> None:
        self._secret = secret
        self._presession = presession

    def token(self, binding: str) -> str:
        """The token of forms shown to the browser holding ``binding`` (session or pre-session)."""
        key = self._secret().encode("utf-8")
        digest = hmac.new(key, _PURPOSE + binding.encode("utf-8"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def valid(self, binding: str, presented: str) -> bool:
        """True when ``presented`` is the token for ``binding`` (constant time)."""
        if not binding or not presented or len(presented) > _MAX_TOKEN_CHARS:
            return False
        # Bytes: compare_digest raises on non-ASCII str, and the browser controls ``presented``.
        return hmac.compare_digest(presented.encode("utf-8"), self.token(binding).encode("ascii"))

    def presessions(self, request: Request) -> list[str]:
        """The well-formed pre-session values the browser sent."""
        return [v for v in self._presession.values(request) if _PRESESSION.fullmatch(v)]

    def presession(self, request: Request, *, secure: bool) -> tuple[str, str | None]:
        """The browser's pre-session, and the ``Set-Cookie`` that gives it one if it has none."""
        held = self.presessions(request)
        if held:
            return held[0], None
        value = secrets.token_urlsafe(PRESESSION_BYTES)
        return value, self._presession.set(value, secure=secure)
