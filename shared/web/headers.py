"""The headers every page of the kit carries: a strict CSP, no caching, no framing."""

from __future__ import annotations

from functools import cache

from shared.web.assets import SCRIPT, STYLESHEET, asset

HTML = "text/html; charset=utf-8"


@cache
def content_security_policy() -> str:
    """Nothing but the kit's own inline stylesheet and script, forms to this origin, no frames."""
    return (
        f"default-src 'none'; style-src {asset(STYLESHEET).source}; "
        f"script-src {asset(SCRIPT).source}; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'"
    )


def page_headers() -> dict[str, str]:
    """The security headers of an HTML page (also on redirects and errors)."""
    return {
        "Content-Type": HTML,
        "Content-Security-Policy": content_security_policy(),
        "X-Content-Type-Options": "nosniff",
        # same-origin, not no-referrer: under no-referrer browsers send "Origin: null" on form
        # POSTs (Fetch, "serializing a request origin"), which would defeat the Origin check.
        # same-origin still sends nothing, patient ids included, to any other site.
        "Referrer-Policy": "same-origin",
        # Pages may show patient data or a secret shown once: no cache, shared or private.
        "Cache-Control": "no-store",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
    }
