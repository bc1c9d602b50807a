"""Who the browser is, for the console: a local session or an Entra principal.

- **Entra** (``shared/operators.platform_sign_in``): App Service Authentication signs the user in
  (its own ``/.auth/login/aad`` pages and session cookie) and names them in the principal header
  on every request; the console keeps no session of its own. Form tokens are bound to the
  user's object id and the platform's session cookie, so they die at sign-out.
- **Locally** (and in Azure without Entra): the admin key signs in, then a session cookie
  (``shared/web/login.py`` over ``shared/sessions.py``, partition ``console-session`` of the
  ``clients`` table, 8 hours). The session's binding is derived from the key and from the role
  chosen at sign-in (change, or look only), so rotating the key signs everyone out and a
  look-only session can never act as an operator.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from shared.http import Request
from shared.operators import AdminKey, Operator, platform_operator, platform_sign_in
from shared.sessions import SessionStore
from shared.settings import Settings
from shared.web.cookies import Cookie, cookie_values
from shared.web.login import Login

BASE_PATH = "/api/console"
COOKIE_NAME = "ehrb_console"
PRESESSION_COOKIE_NAME = "ehrb_console_pre"
SESSION_PARTITION = "console-session"
SESSION_SECONDS = 8 * 3600  # a working day, on the server and in the browser
# App Service Authentication's own session cookie (set by the platform on our host name).
PLATFORM_SESSION_COOKIE = "AppServiceAuthSession"
LOCAL_OPERATOR = "local admin key"
LOCAL_READER = "local admin key, look only"


@dataclass(frozen=True)
class Browser:
    """The operator behind a request, if any, and what its form tokens are bound to."""

    operator: Operator | None
    binding: str | None


class ConsoleAccess:
    """Finds the operator of a request, and starts and ends local sessions."""

    def __init__(self, settings: Settings, sessions: SessionStore, admin_key: AdminKey) -> None:
        self._settings = settings
        self._admin_key = admin_key
        cookie = Cookie(COOKIE_NAME, BASE_PATH, SESSION_SECONDS)
        self._logins = {
            can_change: Login(sessions, cookie, _binding(admin_key, f"console-session:{role}"))
            for can_change, role in ((True, "operator"), (False, "reader"))
        }

    @property
    def entra(self) -> bool:
        """True when App Service Authentication signs people in (no local sign-in form)."""
        return platform_sign_in(self._settings)

    def who(self, request: Request) -> Browser:
        """The operator of ``request`` (NotAllowed for an unreadable platform principal)."""
        if self.entra:
            operator = platform_operator(request, self._settings)
            if operator is None:
                return Browser(None, None)
            platform = cookie_values(request.headers.get_all("Cookie"), PLATFORM_SESSION_COOKIE)
            session = hashlib.sha256((platform[0] if platform else "").encode()).hexdigest()
            return Browser(operator, f"{operator.name}|{session}")
        for can_change, login in self._logins.items():
            found = login.current(request)
            if found is not None:
                name = LOCAL_OPERATOR if can_change else LOCAL_READER
                return Browser(Operator("console", name, can_change=can_change), found)
        return Browser(None, None)

    def key_matches(self, presented: str) -> bool:
        """True when ``presented`` is the admin key."""
        return self._admin_key.matches(presented)

    def sign_in(self, *, look_only: bool, secure: bool) -> str:
        """Start a local session (after the key matched); its ``Set-Cookie`` value."""
        return self._logins[not look_only].start(secure=secure)

    def sign_out(self, request: Request, *, secure: bool) -> str:
        """End the browser's local sessions; the ``Set-Cookie`` value that clears the cookie."""
        return self._logins[True].end(request, secure=secure)


def _binding(admin_key: AdminKey, purpose: str) -> Callable[[], str]:
    """What a session of one role is bound to: derived from the key, so rotating it ends them."""
    return lambda: admin_key.derive(purpose)
