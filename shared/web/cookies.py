"""The kit's cookies: read from a request, written as one ``Set-Cookie`` value.

Every cookie is HttpOnly (no script reads it), SameSite=Strict (no other site's page sends it)
and scoped to the application's base path; Secure whenever the browser reached us over HTTPS.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.http import Request

# A browser sends one value per matching cookie; more than a few is someone else's doing.
MAX_VALUES = 4


def cookie_values(headers: list[str], name: str) -> list[str]:
    """Every value of cookie ``name`` in the request's Cookie header fields."""
    values = []
    for header in headers:
        for part in header.split(";"):
            key, sep, value = part.strip().partition("=")
            if sep and key.strip() == name:
                values.append(value.strip().strip('"'))
    return values


@dataclass(frozen=True)
class Cookie:
    """One cookie of an application's pages: its name, path and lifetime in the browser."""

    name: str
    path: str
    max_age: int

    def values(self, request: Request) -> list[str]:
        """The values the browser sent (at most a few)."""
        return cookie_values(request.headers.get_all("Cookie"), self.name)[:MAX_VALUES]

    def set(self, value: str, *, secure: bool) -> str:
        """The ``Set-Cookie`` value that stores ``value`` for the cookie's lifetime."""
        return self._header(value, self.max_age, secure)

    def clear(self, *, secure: bool) -> str:
        """The ``Set-Cookie`` value that deletes the cookie."""
        return self._header("", 0, secure)

    def _header(self, value: str, max_age: int, secure: bool) -> str:
        flag = "; Secure" if secure else ""
        return (
            f"{self.name}={value}; Path={self.path}; Max-Age={max_age}; HttpOnly; "
            f"SameSite=Strict{flag}"
        )
