"""Requests shaped as the functions receive them, for calling handlers in-process."""

from __future__ import annotations

from urllib.parse import urlencode

from shared.http import Headers, Request


def form_request(
    fields: dict[str, str] | list[tuple[str, str]],
    *,
    headers: dict[str, str] | None = None,
    method: str = "POST",
    url: str = "https://bridge.test/api/oauth2/token",
) -> Request:
    """A form-encoded request as the token endpoint receives it."""
    all_headers = Headers({"Content-Type": "application/x-www-form-urlencoded"})
    for name, value in (headers or {}).items():
        all_headers.add(name, value)
    return Request(method=method, url=url, headers=all_headers, body=urlencode(fields).encode())


def fhir_request(
    method: str,
    path: str,
    token: str | None,
    *,
    face: str = "r4",
    query: str = "",
    body: bytes = b"",
    headers: dict[str, str] | list[tuple[str, str]] | None = None,
    origin: str = "https://bridge.test",
) -> Request:
    """A request to the proxy as the function receives it."""
    url = f"{origin}/api/fhir/{face}/{path}" if path else f"{origin}/api/fhir/{face}"
    if query:
        url += f"?{query}"
    all_headers = Headers()
    if token is not None:
        all_headers.add("Authorization", f"Bearer {token}")
    pairs = headers.items() if isinstance(headers, dict) else headers or []
    for name, value in pairs:
        all_headers.add(name, value)
    return Request(method, url, all_headers, body, {"face": face, "path": path})
