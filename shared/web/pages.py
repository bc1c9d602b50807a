"""HTML pages as ``shared.http`` Responses: an application's site, the visitor, rendering.

An application (the sandbox editor, the console) describes itself once as a ``Site`` (name,
base path, navigation) and renders its templates through ``Pages``; every page, redirect and
message carries the kit's security headers (``headers.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict
from urllib.parse import quote, urlencode

from shared.http import Headers, Response
from shared.web.assets import SCRIPT, STYLESHEET, asset
from shared.web.csrf import FIELD
from shared.web.headers import page_headers
from shared.web.templates import Templates

MESSAGE_TEMPLATE = "kit/message.html"


class Link(TypedDict):
    """A table cell that links somewhere (``kit/forms.html``'s ``table``)."""

    text: str
    href: str


Cell = str | Link  # a cell of a table: text, or a link


def link(text: str, href: str) -> Link:
    """A cell holding a link."""
    return {"text": text, "href": href}


@dataclass(frozen=True)
class NavLink:
    """One entry of a site's navigation: its text and its path under the base path."""

    label: str
    path: str


@dataclass(frozen=True)
class Site:
    """What tells one application of the kit from another."""

    name: str
    base_path: str  # absolute, without a trailing slash: "/api/sandbox/ui"
    nav: tuple[NavLink, ...] = ()
    signout_path: str | None = "signout"  # a POST form in the header when signed in
    home: NavLink = NavLink("Go to the start page", "")  # linked from message pages

    def url(self, path: str = "", query: Sequence[tuple[str, str]] = ()) -> str:
        """Absolute path of a page of the site, percent-encoded, with an optional query."""
        target = f"{self.base_path}/{quote(path, safe='/')}" if path else f"{self.base_path}/"
        return f"{target}?{urlencode(query)}" if query else target


@dataclass(frozen=True)
class Visitor:
    """What a page needs to know about the browser it is rendered for."""

    signed_in: bool = False
    csrf_token: str = ""  # for every POST form on the page; "" on pages that have none
    cookie: str | None = None  # a Set-Cookie value to send with the page (one at most)

    @property
    def csrf_field(self) -> str:
        """The name of the hidden field that carries the token."""
        return FIELD


class Pages:
    """Renders a site's templates, redirects and message pages."""

    def __init__(self, site: Site, templates: Templates) -> None:
        self.site = site
        self._templates = templates

    def render(
        self,
        status: int,
        template: str,
        visitor: Visitor,
        context: Mapping[str, Any],
        *,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """The page ``template`` rendered for ``visitor`` with ``context``."""
        document = self._templates.render(
            template,
            {
                **context,
                "site": self.site,
                "visitor": visitor,
                "kit_stylesheet": _raw(asset(STYLESHEET).text),
                "kit_script": _raw(asset(SCRIPT).text),
            },
        )
        cookie = {"Set-Cookie": visitor.cookie} if visitor.cookie else {}
        return html_response(status, document, headers={**cookie, **(headers or {})})

    def message(
        self, status: int, title: str, text: str, *, headers: Mapping[str, str] | None = None
    ) -> Response:
        """A page with a heading, one sentence and a link to the site's start page."""
        context = {"title": title, "text": text}
        return self.render(status, MESSAGE_TEMPLATE, Visitor(), context, headers=headers)

    def redirect(self, location: str, *, cookie: str | None = None) -> Response:
        """A 303 See Other to ``location`` (the answer to every POST that worked)."""
        headers = {"Location": location}
        if cookie is not None:
            headers["Set-Cookie"] = cookie
        return html_response(303, "", headers=headers)


def html_response(
    status: int, document: str, *, headers: Mapping[str, str] | None = None
) -> Response:
    """An HTML response with the kit's security headers."""
    # One Set-Cookie at most: functions/_adapter.py joins repeated fields with commas.
    out = Headers(page_headers())
    for name, value in (headers or {}).items():
        out.set(name, value)
    return Response(status=status, body=document.encode("utf-8"), headers=out)


def _raw(text: str) -> Any:
    """Trusted text from the repository, inserted without escaping (CSS and JS are raw text)."""
    from markupsafe import Markup

    return Markup(text)  # noqa: S704  (our own static file, allowed by its hash in the CSP)
