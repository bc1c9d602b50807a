"""A signed-in browser: a cookie naming a session kept on the server (``shared/sessions.py``).

The cookie holds a random id and nothing else; the server keeps the session's expiry and its
binding (a value derived from the credential that signed in), so a session ends at sign-out, at
its expiry and when that credential is rotated, whatever the browser still holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from shared.http import Request
from shared.web.cookies import Cookie

if TYPE_CHECKING:
    from shared.sessions import SessionStore


class Login:
    """Starts, finds and ends the session behind an application's session cookie."""

    def __init__(self, sessions: SessionStore, cookie: Cookie, binding: Callable[[], str]) -> None:
        self._sessions = sessions
        self._cookie = cookie
        self._binding = binding

    def current(self, request: Request) -> str | None:
        """The id of the browser's live session, or None when it is not signed in."""
        presented = self._cookie.values(request)
        if not presented:
            return None  # no secret-store or table read for anonymous requests
        binding = self._binding()
        return next((value for value in presented if self._sessions.valid(value, binding)), None)

    def start(self, *, secure: bool) -> str:
        """Start a session; the ``Set-Cookie`` value that hands it to the browser."""
        return self._cookie.set(self._sessions.start(self._binding()), secure=secure)

    def end(self, request: Request, *, secure: bool) -> str:
        """End every session the browser presents; the ``Set-Cookie`` value that clears it."""
        # Ended on the server: a copy of the cookie kept elsewhere stops working too.
        for value in self._cookie.values(request):
            self._sessions.end(value)
        return self._cookie.clear(secure=secure)
