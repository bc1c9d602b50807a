"""What a provider FHIR server can do, read from its CapabilityStatement and overridable.

Providers differ: some refuse batch Bundles, some cannot sort by date, some refuse
``POST [type]/_search``. The proxy compensates for each (handler.py), so it must know.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

NAMES = ("batch", "sort_by_date", "post_search")
# What we assume of a provider nobody has checked: most servers do all three, and the proxy
# also falls back when a provider refuses batch or POST _search at run time.
DEFAULTS = {"batch": True, "sort_by_date": True, "post_search": True}


@dataclass(frozen=True)
class Capabilities:
    """The three abilities the proxy compensates for."""

    batch: bool = True
    sort_by_date: bool = True
    post_search: bool = True

    def to_json(self) -> dict[str, bool]:
        """The abilities as a JSON object."""
        return {
            "batch": self.batch,
            "sort_by_date": self.sort_by_date,
            "post_search": self.post_search,
        }


def detect(statement: Mapping[str, Any]) -> dict[str, bool]:
    """Abilities a CapabilityStatement (or DSTU2 Conformance) declares; absent ones omitted."""
    found: dict[str, bool] = {}
    rests = [r for r in statement.get("rest") or [] if isinstance(r, dict)]
    server = next((r for r in rests if r.get("mode") == "server"), rests[0] if rests else {})
    if not server:
        return found
    codes = {i.get("code") for i in server.get("interaction") or [] if isinstance(i, dict)}
    # DSTU2 has no batch interaction code; it declares batch with transactionMode.
    found["batch"] = "batch" in codes or server.get("transactionMode") in ("batch", "both")
    declared = [server, *(r for r in server.get("resource") or [] if isinstance(r, dict))]
    params = {
        str(p.get("name"))
        for owner in declared
        for p in owner.get("searchParam") or []
        if isinstance(p, dict)
    }
    if "_sort" in params:
        found["sort_by_date"] = True
    return found


def effective(detected: Mapping[str, Any], overrides: Mapping[str, Any]) -> Capabilities:
    """Overrides win over what was detected, which wins over the defaults."""
    values = {name: bool(overrides.get(name, detected.get(name, DEFAULTS[name]))) for name in NAMES}
    return Capabilities(**values)


def validate_overrides(value: object) -> dict[str, bool]:
    """An operator's capability overrides: a JSON object of the three booleans."""
    if not isinstance(value, dict) or not set(value) <= set(NAMES):
        raise ValueError(f"capabilities must be an object with any of: {', '.join(NAMES)}")
    if not all(isinstance(v, bool) for v in value.values()):
        raise ValueError("capabilities values must be true or false")
    return dict(value)
