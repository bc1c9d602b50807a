"""What a span attribute or a metric dimension may carry: these names, and plain short values.

The names are the whole vocabulary (docs/security.md table J, rows 140-141): identifiers of
registered principals (tenant, client, secret version), the route template, the face and the
interaction, a resource type, statuses and reasons. Never a patient identifier, a resource id,
a query string, a token, a secret or a provider URL: nothing here has a name for them, and a
value that looks like a URL or is long is dropped rather than exported.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

# Our name for each attribute -> its name in the exported telemetry (OpenTelemetry semantic
# conventions where one exists, ``ehrbridge.*`` otherwise).
NAMES: Final[Mapping[str, str]] = {
    "route": "http.route",
    "method": "http.request.method",
    "status": "http.response.status_code",
    "peer": "peer.service",
    "tenant": "ehrbridge.tenant_id",
    "client": "ehrbridge.client_id",
    "face": "ehrbridge.face",
    "provider_version": "ehrbridge.provider_fhir_version",
    "interaction": "ehrbridge.interaction",
    "resource_type": "ehrbridge.resource_type",
    "entries": "ehrbridge.entries",
    "outcome": "ehrbridge.outcome",
    "reason": "ehrbridge.reason",
    "secret_version": "ehrbridge.secret_version",
    "circuit": "ehrbridge.circuit",
}
_PLAIN = re.compile(r"[A-Za-z0-9 _.:{}*+\-/]{1,80}")

Value = str | int | bool


def clean(values: Mapping[str, Value | None]) -> dict[str, Value]:
    """``values`` under their exported names; None and anything not plain are left out.

    Raises ``KeyError`` for a name outside the vocabulary: that is a bug, caught by the tests.
    """
    out: dict[str, Value] = {}
    for name, value in values.items():
        key = NAMES[name]
        if value is None:
            continue
        if isinstance(value, str) and (not _PLAIN.fullmatch(value) or "://" in value):
            continue
        out[key] = value
    return out
