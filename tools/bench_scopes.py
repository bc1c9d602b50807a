"""``make bench``: what the proxy's scope rule costs per request (docs/security.md table N).

Measured in process, without I/O: reading a token's ``scope`` claim into a grant (done once per
request, after the signature check) and judging a request, or each entry of the Patients app's
six-entry batch, against it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from shared.auth.smart_scopes import parse_scopes
from shared.fhir.paths import ALLOWED_TYPES, parse_fhir_path
from shared.proxy import scope_check

APP_BATCH = (
    "Observation?patient=p&category=vital-signs&_sort=-date",
    "Condition?patient=p&_count=10",
    "Encounter?patient=p&_sort=-date&_count=1",
    "AllergyIntolerance?patient=p",
    "MedicationRequest?patient=p&_count=10",
    "Coverage?patient=p",
)
CLAIM = ("system/Patient.rs", "system/Observation.rs", "system/Condition.rs", "system/*.r")


def _p50_us(action: Callable[[], Any], runs: int) -> float:
    timings = []
    for _ in range(runs):
        began = time.perf_counter()
        action()
        timings.append((time.perf_counter() - began) * 1_000_000)
    timings.sort()
    return timings[len(timings) // 2]


def measure_scope_check(runs: int = 20_000) -> dict[str, float]:
    """p50 in microseconds of reading a grant and of judging a read and a six-entry batch."""
    grant = parse_scopes(("system/*.rs",))
    types = ALLOWED_TYPES["r4"]
    read = parse_fhir_path("Patient/p", allowed_types=types)
    entries = []
    for url in APP_BATCH:
        path, _, query = url.partition("?")
        pairs = [(name, value) for name, _, value in (p.partition("=") for p in query.split("&"))]
        entries.append((parse_fhir_path(path, allowed_types=types), pairs))

    def batch() -> None:
        for index, (path, pairs) in enumerate(entries):
            scope_check.check_entry(grant, index, path, pairs)

    return {
        "grant_from_claim_p50_us": _p50_us(lambda: parse_scopes(CLAIM), runs),
        "read_p50_us": _p50_us(lambda: scope_check.check(grant, "GET", read, []), runs),
        "batch_of_6_p50_us": _p50_us(batch, runs),
    }


def print_scopes(figures: dict[str, float]) -> None:
    """The figures as ``make bench`` prints them."""
    print("Scope rule (in process, p50)")
    print(f"  a grant read from a 4-scope claim: {figures['grant_from_claim_p50_us']:.1f} µs")
    print(f"  a read judged:                     {figures['read_p50_us']:.1f} µs")
    print(f"  the app's 6-entry batch judged:    {figures['batch_of_6_p50_us']:.1f} µs")
