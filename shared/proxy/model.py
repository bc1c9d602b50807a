"""Values passed between the proxy's stages."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from shared.auth.smart_scopes import LEGACY_GRANT, ScopeGrant
from shared.http import Headers
from shared.proxy.interaction import Interaction


@dataclass(frozen=True)
class Caller:
    """Who is calling, from a verified access token."""

    client_id: str
    tenant_id: str
    jti: str
    kid: str
    secret_version: str
    expires_at: int
    via: str = "ehr-bridge"
    """Whose token it was: ``ehr-bridge`` (ours; ``client_id`` a registered client) or
    ``entra`` (an Entra ID app-only token; ``client_id`` the calling app's id, no ``sv``)."""
    scopes: ScopeGrant = LEGACY_GRANT
    """The SMART system scopes granted (docs/security.md table N)."""


@dataclass
class Exchange:
    """What one proxied request carried and became: the audit event's content."""

    request_id: str
    face: str
    method: str
    started: float = field(default_factory=time.perf_counter)
    caller: Caller | None = None
    interaction: Interaction | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    patients: list[str] = field(default_factory=list)
    provider_status: int | None = None
    """The status of the provider's answer the caller's answer was made from."""
    entries: int | None = None


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


@dataclass(slots=True)
class ProviderCall:
    """One HTTP call to the provider, at an absolute URL under its base.

    Built by ``Upstream.call`` from an ``UpstreamRequest``, or from a paging link the provider
    gave; the transport checks once more that the URL stays under the provider's base.
    """

    method: str
    url: str
    headers: Headers
    body: bytes = b""
    idempotent: bool = True
    """Whether a connection failure may be retried (every call but a write's)."""


@dataclass
class UpstreamResponse:
    """What the provider answered (headers already filtered)."""

    status: int
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    elapsed_ms: float = 0.0
