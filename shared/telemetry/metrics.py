"""The metrics operators chart and alert on, recorded only when telemetry is exported.

- ``ehrbridge.request.duration`` (s), histogram (its count is the requests): route, method,
  face, tenant, status;
- ``ehrbridge.provider.duration`` (s), histogram: tenant, outcome (``2xx`` … ``5xx``,
  ``timeout``, ``unreachable``, ``paused``, ``credential``);
- ``ehrbridge.tokens``, counter: client, outcome (``issued``, ``denied``), reason, secret
  version;
- ``ehrbridge.throttled``, counter: reason (``token_failures``, ``tenant_rate``,
  ``client_rate``), tenant, client;
- ``ehrbridge.circuit.open``, gauge (1 per open circuit): circuit (``provider``, ``tables``,
  ``keyvault``), tenant;
- ``ehrbridge.signing_key.days_left``, gauge: days until the signing key's ``expires_on``.

Dimensions are bounded: tenants and clients only once verified (a registered client, a mapped
tenant; an unknown client counts as ``unknown``), routes as templates, never a path or a query
(docs/security.md row 141). Without telemetry every function here returns at once.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from shared.telemetry import attributes

Reading = Callable[[], Iterable[tuple[float, Mapping[str, attributes.Value | None]]]]

_instruments: dict[str, Any] = {}
_gauges: dict[str, list[weakref.WeakMethod[Reading]]] = {"circuits": [], "signing_key": []}
_lock = threading.Lock()


def use_meter(instruments: Any) -> None:
    """Record from now on (``shared.telemetry.setup``): create the instruments."""
    with _lock:
        _instruments["request"] = instruments.histogram(
            "ehrbridge.request.duration", "s", "Requests served, and how long each took"
        )
        _instruments["provider"] = instruments.histogram(
            "ehrbridge.provider.duration", "s", "Calls to providers, and how long each took"
        )
        _instruments["tokens"] = instruments.counter(
            "ehrbridge.tokens", "Token requests, issued or denied"
        )
        _instruments["throttled"] = instruments.counter(
            "ehrbridge.throttled", "Requests refused with 429 by a limit"
        )
        _instruments["circuits"] = instruments.gauge(
            "ehrbridge.circuit.open",
            "Circuits open (or half-open) now",
            functools.partial(_read_gauges, "circuits"),
        )
        _instruments["signing_key"] = instruments.gauge(
            "ehrbridge.signing_key.days_left",
            "Days until the signing key retires (only when it has a retirement date)",
            functools.partial(_read_gauges, "signing_key"),
        )


def recording() -> bool:
    """True when metrics are recorded."""
    return bool(_instruments)


def request(seconds: float, **tags: attributes.Value | None) -> None:
    """One request served (``route``, ``method``, ``face``, ``tenant``, ``status``)."""
    _record("request", seconds, tags)


def provider_call(seconds: float, *, tenant: str, outcome: str) -> None:
    """One call to a tenant's provider and how it ended."""
    _record("provider", seconds, {"tenant": tenant, "outcome": outcome})


def token(
    *,
    client: str | None,
    outcome: str,
    reason: str | None = None,
    secret_version: str | None = None,
) -> None:
    """One token request's answer (``client`` None: not a registered client)."""
    _record(
        "tokens",
        1,
        {
            "client": client or "unknown",
            "outcome": outcome,
            "reason": reason,
            "secret_version": secret_version,
        },
    )


def throttled(reason: str, *, tenant: str | None = None, client: str | None = None) -> None:
    """One request refused with 429."""
    _record("throttled", 1, {"reason": reason, "tenant": tenant, "client": client})


def observe_circuits(read: Reading) -> None:
    """Report the circuits ``read`` (a bound method) lists at each collection.

    Held weakly: a service that is gone stops being read, and nothing is kept alive for it.
    """
    with _lock:
        _gauges["circuits"].append(weakref.WeakMethod(read))


def observe_signing_key(read: Reading) -> None:
    """Report the signing key's days left, as ``read`` (a bound method) gives them."""
    with _lock:
        _gauges["signing_key"].append(weakref.WeakMethod(read))


def _read_gauges(kind: str, _: object = None) -> Iterable[tuple[float, dict[str, Any]]]:
    with _lock:
        _gauges[kind] = [ref for ref in _gauges[kind] if ref() is not None]
        readers = [ref() for ref in _gauges[kind]]
    for read in readers:
        if read is not None:
            for value, tags in read():
                yield value, attributes.clean(tags)


def _record(name: str, value: float, tags: dict[str, attributes.Value | None]) -> None:
    instrument = _instruments.get(name)
    if instrument is None:
        return
    if hasattr(instrument, "record"):
        instrument.record(value, attributes.clean(tags))
    else:
        instrument.add(value, attributes.clean(tags))
