"""Whether a browser's POST came from one of our own pages (Origin and Sec-Fetch-Site)."""

from __future__ import annotations

from urllib.parse import urlsplit

from shared.http import Request


def origin_key(origin: str) -> str:
    """``scheme://host[:port]`` lower-cased, without the scheme's default port."""
    try:
        parts = urlsplit(origin.strip().lower())
    except ValueError:  # e.g. an unclosed IPv6 bracket: matches no origin
        return ""
    netloc = parts.netloc
    default = {"http": ":80", "https": ":443"}.get(parts.scheme)
    if default and netloc.endswith(default):
        netloc = netloc[: -len(default)]
    return f"{parts.scheme}://{netloc}"


def same_origin(request: Request, origin: str) -> bool:
    """False when the browser says the request was sent from another site than ``origin``."""
    # A browser that sends neither header (an old one, or curl) is judged by the CSRF token alone.
    sent = request.header("Origin")
    site = (request.header("Sec-Fetch-Site") or "same-origin").strip().lower()
    if sent is not None and origin_key(sent) != origin_key(origin):
        return False
    return site in ("same-origin", "none")
