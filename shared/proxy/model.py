"""Values passed between the proxy's stages."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.http import Headers


@dataclass(frozen=True)
class Caller:
    """Who is calling, from a verified access token."""

    client_id: str
    tenant_id: str
    jti: str
    kid: str
    secret_version: str
    expires_at: int


@dataclass
class UpstreamRequest:
    """A request for the provider, relative to its base URL.

    ``path`` is a validated relative FHIR path ("" for the base, "Patient/_search", ...);
    ``query`` is the raw query string, passed on byte for byte.
    """

    method: str
    path: str
    query: str = ""
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""


@dataclass
class UpstreamResponse:
    """What the provider answered (headers already filtered)."""

    status: int
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    elapsed_ms: float = 0.0
