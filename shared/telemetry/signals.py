"""What an audit record tells the telemetry: span attributes and metrics, from one place.

Every event the code audits (``shared.audit``) passes through ``audited``, so the request's span
learns who called and what was done, and the token and throttle counters count, without a
second call at each place that audits. Only ids that a verification or a lookup has vouched for
become attributes or dimensions: an unknown client's id, which the caller chose, does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.telemetry import metrics, tracing

_KNOWN_CLIENT_REASONS = frozenset({"secret mismatch", "client disabled", "grant not allowed"})


def audited(record: Mapping[str, Any]) -> None:
    """Tag the current span and count what ``record`` says."""
    event = record.get("event")
    span = tracing.current()
    if event == "fhir.request":
        _proxied(record, span)
    elif event == "token.issued":
        client = _text(record.get("client_id"))
        if span is not None:
            span.tag(
                client=client,
                tenant=_text(record.get("tenant_id")),
                secret_version=_text(record.get("secret_version")),
                outcome="issued",
            )
        metrics.token(
            client=client, outcome="issued", secret_version=_text(record.get("secret_version"))
        )
    elif event == "token.denied":
        reason = _text(record.get("reason"))
        # "unknown client" and "scope not allowed" name ids the caller chose or may not own.
        client = _text(record.get("client_id")) if reason in _KNOWN_CLIENT_REASONS else None
        if span is not None:
            span.tag(client=client, outcome="denied", reason=reason)
        metrics.token(client=client, outcome="denied", reason=reason)
    elif event == "token.throttled":
        if span is not None:
            span.tag(outcome="throttled", reason="token_failures")
        metrics.throttled("token_failures")


def _proxied(record: Mapping[str, Any], span: tracing.Span | None) -> None:
    tenant, client = _text(record.get("tenant_id")), _text(record.get("client_id"))
    if span is not None:
        span.tag(
            tenant=tenant,
            client=client,
            face=_text(record.get("face")),
            interaction=_text(record.get("interaction")),
            resource_type=_text(record.get("resource_type")),
            entries=record.get("entries") if isinstance(record.get("entries"), int) else None,
        )
    if record.get("status") == 429:
        metrics.throttled("rate_limit", tenant=tenant, client=client)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
