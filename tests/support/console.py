"""A browser for the console, in-process: cookies kept, each form sent with its page's token.

Also a stand-in for App Service Authentication: ``principal_header`` builds the
``X-MS-CLIENT-PRINCIPAL`` value the platform injects (its documented shape: Base64 of
``{"auth_typ", "claims": [{"typ", "val"}], "name_typ", "role_typ"}``), and ``entra_hosting``
is the environment of an app in Azure with that authentication on.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

from shared.hosting import Hosting, detect
from shared.http import Headers, Request, Response
from shared.web.csrf import FIELD as CSRF_FIELD
from tests.support.html import dom

ORIGIN = "https://bridge.test"
BASE = "/api/console"
ROLE_TYPE = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"


def principal_header(
    *roles: str,
    name: str = "ada@contoso.example",
    object_id: str = "0b1c2d3e-0000-4000-8000-000000000001",
) -> str:
    """The header App Service Authentication sends for a signed-in Entra user."""
    claims = [
        {"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": object_id},
        {"typ": "preferred_username", "val": name},
        *({"typ": ROLE_TYPE, "val": role} for role in roles),
    ]
    document = {
        "auth_typ": "aad",
        "claims": claims,
        "name_typ": "preferred_username",
        "role_typ": ROLE_TYPE,
    }
    return base64.b64encode(json.dumps(document).encode()).decode()


def entra_hosting() -> Hosting:
    """Flex Consumption with App Service Authentication on (the platform's own markers)."""
    return detect(
        {
            "WEBSITE_SKU": "FlexConsumption",
            "CONTAINER_NAME": "c",
            "LEGION_SERVICE_HOST": "1",
            "WEBSITE_AUTH_ENABLED": "True",
        }
    )


class ConsoleBrowser:
    """Sends requests to a console handler the way a browser would."""

    def __init__(
        self, handle: Callable[[Request], Response], headers: dict[str, str] | None = None
    ) -> None:
        self._handle = handle
        self.cookies: dict[str, str] = {}
        self.headers = dict(headers or {})
        self.page: Response | None = None
        self._token = ""  # the CSRF token of the last page that had forms

    def request(
        self,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
        *,
        token: bool = True,
        query: str = "",
        headers: dict[str, str] | None = None,
    ) -> Response:
        """One request; ``token``: add the CSRF token of the last page to the form."""
        url = f"{ORIGIN}{BASE}/{path}" + (f"?{query}" if query else "")
        all_headers = Headers()
        body = b""
        if form is not None:
            if token and self._token:
                form = {CSRF_FIELD: self._token, **form}
            all_headers.add("Content-Type", "application/x-www-form-urlencoded")
            body = urlencode(form).encode()
        if self.cookies:
            all_headers.add("Cookie", "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        sent = {
            **({"Origin": ORIGIN} if form is not None else {}),
            **self.headers,
            **(headers or {}),
        }
        for name, value in sent.items():
            all_headers.add(name, value)
        response = self._handle(Request(method, url, all_headers, body, {"path": path}))
        self._keep_cookie(response)
        if response.status != 303:
            self.page = response
            tokens = {n.attrs["value"] for n in dom(response).all("input", name=CSRF_FIELD)}
            if len(tokens) == 1:
                self._token = tokens.pop()
        return response

    def get(self, path: str, **kwargs: Any) -> Response:
        """GET a page; follows nothing."""
        return self.request("GET", path, **kwargs)

    def post(self, path: str, form: dict[str, str], **kwargs: Any) -> Response:
        """POST a form with the last page's CSRF token."""
        return self.request("POST", path, form, **kwargs)

    def follow(self, response: Response) -> Response:
        """GET the page a 303 points to."""
        assert response.status == 303, response.status
        location = response.headers.get("Location") or ""
        parts = urlsplit(location)
        return self.get(parts.path.removeprefix(BASE + "/"), query=parts.query)

    def csrf(self) -> str:
        """The CSRF token of the last page's forms."""
        assert self.page is not None
        tokens = {n.attrs["value"] for n in dom(self.page).all("input", name=CSRF_FIELD)}
        assert len(tokens) == 1, tokens
        return tokens.pop()

    def sign_in(self, key: str, *, look_only: bool = False) -> Response:
        """Open the sign-in page and sign in with ``key``."""
        self.get("signin")
        form = {"key": key, **({"look_only": "on"} if look_only else {})}
        return self.post("signin", form)

    def _keep_cookie(self, response: Response) -> None:
        for value in response.headers.get_all("Set-Cookie"):
            pair = value.split(";")[0]
            name, _, cookie = pair.partition("=")
            if "Max-Age=0" in value:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = cookie
