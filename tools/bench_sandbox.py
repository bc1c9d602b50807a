"""``make bench``, sandbox part: a sandbox of generated patients in Azurite, measured.

Load time (generation and Table Storage writes, separately), Patient search by family name
straight at the sandbox and through the proxy (the STU3 face, as the Patients app searches), and
the Patients app's batch of by-patient chart queries through the proxy. Figures only; no goals
are asserted. Development only, loopback only.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tools.bench import (
    HTTP_TIMEOUT,
    WARMUP,
    _latencies,
    _table,
    devhost_for,
    map_tenant,
    percentile,
)

if TYPE_CHECKING:
    from tools.bench import BenchFixture

SANDBOX_PATIENTS = 10_000
FHIR_JSON = "application/fhir+json"


def _figures(latencies: list[float]) -> dict[str, float]:
    return {
        "requests": len(latencies),
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


def load_sandbox(store: Any, patients: int, seed: int = 0) -> dict[str, Any]:
    """Generate ``patients`` charts and load them; timings and counts, and the charts' keys."""
    from shared.sandbox.generate import generate_patients, generate_shared

    began = time.perf_counter()
    resources = list(generate_shared(seed))
    families: list[str] = []
    patient_ids: list[str] = []
    for chart in generate_patients(patients, seed):
        patient = chart[0]
        patient_ids.append(patient["id"])
        families.append(patient["name"][0]["family"])
        resources.extend(chart)
    generated = time.perf_counter()
    # Generated resources are validated in tests (tests/unit/test_sandbox_generate.py); here the
    # figure is the Table Storage load, so validation is off and timed separately on a sample.
    report = store.load(resources, validate=False)
    loaded = time.perf_counter()
    return {
        "patients": patients,
        "resources": len(resources),
        "stored": sum(report.stored.values()),
        "generate_s": generated - began,
        "load_s": loaded - generated,
        "resources_per_s": len(resources) / max(loaded - generated, 1e-9),
        "families": families,
        "patient_ids": patient_ids,
    }


def _chart_batch(patient_id: str) -> dict[str, Any]:
    """The Patients app's STU3 chart queries for one patient, as one batch Bundle."""
    urls = (
        f"Observation?patient={patient_id}&category=vital-signs&_sort=-date",
        f"Condition?patient={patient_id}&_count=10",
        f"Encounter?patient={patient_id}&_sort=-date&_count=1",
        f"AllergyIntolerance?patient={patient_id}",
        f"MedicationRequest?patient={patient_id}&_count=10",
        f"Coverage?patient={patient_id}",
    )
    return {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": url}} for url in urls],
    }


def measure_sandbox(
    fixture: BenchFixture,
    *,
    patients: int = SANDBOX_PATIENTS,
    searches: int = 300,
    batches: int = 300,
    budget_s: float = 60.0,
) -> dict[str, Any]:
    """Load a sandbox of ``patients`` into ``fixture``'s Azurite and measure it over HTTP."""
    import requests as http

    from shared.proxy.auth_kinds import AuthKind
    from shared.sandbox.access import ensure_sandbox_key, share_sandbox_key
    from shared.services import Services
    from shared.tables import ensure_tables

    services = Services(fixture.settings("RS256"))
    ensure_tables(services.table_service)
    loaded = load_sandbox(services.sandbox_store, patients)
    key = ensure_sandbox_key(services.secret_store)
    rng = random.Random(7)  # noqa: S311 - picks benchmark inputs, not secrets
    results: dict[str, Any] = {
        key_: loaded[key_]
        for key_ in ("patients", "resources", "stored", "generate_s", "load_s", "resources_per_s")
    }
    env = {"EHRB_SANDBOX_ENABLED": "true", "EHRB_ALLOW_INSECURE_PROVIDER_URLS": "true"}
    # Rate limits are per instance and meant for production traffic, not a load generator.
    env |= {
        "EHRB_TENANT_RATE_LIMIT_PER_SECOND": "100000",
        "EHRB_CLIENT_RATE_LIMIT_PER_SECOND": "100000",
    }
    with devhost_for(fixture, extra_env=env) as base_url:
        sandbox = f"{base_url}/api/sandbox/fhir"
        tenant_id = map_tenant(fixture, sandbox, provider_auth_kind=AuthKind.BEARER)
        share_sandbox_key(services.secret_store, tenant_id)
        answer = http.post(
            f"{base_url}/api/oauth2/token",
            data={**fixture.form(), "scope": tenant_id},
            timeout=HTTP_TIMEOUT,
        )
        answer.raise_for_status()
        stu3 = f"{base_url}/api/fhir/stu3"
        with http.Session() as direct, http.Session() as app:
            direct.headers.update({"Authorization": f"Bearer {key}", "Accept": FHIR_JSON})
            app.headers.update(
                {"Authorization": f"Bearer {answer.json()['access_token']}", "Accept": FHIR_JSON}
            )
            totals: list[int] = []

            def search(session: Any, base: str) -> None:
                family = rng.choice(loaded["families"])
                response = session.post(
                    f"{base}/Patient/_search",
                    data={"family": family, "_count": "10"},
                    timeout=HTTP_TIMEOUT,
                )
                if response.status_code != 200:
                    raise RuntimeError(f"Patient search answered {response.status_code}")
                totals.append(int(response.json().get("total", 0)))

            def batch() -> None:
                patient_id = rng.choice(loaded["patient_ids"])
                response = app.post(
                    stu3,
                    json=_chart_batch(patient_id),
                    headers={"Content-Type": FHIR_JSON},
                    timeout=HTTP_TIMEOUT,
                )
                if response.status_code != 200:
                    raise RuntimeError(f"batch answered {response.status_code}")
                statuses = [e["response"]["status"] for e in response.json()["entry"]]
                if any(not status.startswith("200") for status in statuses):
                    raise RuntimeError(f"batch entries answered {statuses}")

            calls: list[tuple[str, Callable[[], None]]] = [
                ("search_direct", lambda: search(direct, sandbox)),
                ("search_proxy", lambda: search(app, stu3)),
                ("batch_proxy", batch),
            ]
            for name, call in calls:
                count = batches if name == "batch_proxy" else searches
                for _ in range(min(WARMUP, count)):
                    call()
                totals.clear()
                results[name] = _figures(_latencies(call, count, budget_s / 3))
                if totals:
                    results[name]["mean_total"] = sum(totals) / len(totals)
    return results


def print_sandbox(result: dict[str, Any]) -> None:
    """The sandbox figures as a table."""
    print(
        f"Sandbox provider: {result['patients']:,} generated patients, "
        f"{result['resources']:,} resources in Azurite"
    )
    print(
        f"  generated in {result['generate_s']:.1f} s; loaded in {result['load_s']:.1f} s "
        f"({result['resources_per_s']:,.0f} resources/s, entity-group transactions per partition)"
    )
    rows = []
    labels = {
        "search_direct": "Patient search by family, sandbox direct (R4)",
        "search_proxy": "Patient search by family, through the proxy (STU3 face)",
        "batch_proxy": "batch of 6 by-patient queries, through the proxy (STU3 face)",
    }
    for name, label in labels.items():
        figures = result[name]
        rows.append(
            (
                label,
                f"{figures['p50_ms']:.1f} ms",
                f"{figures['p99_ms']:.1f} ms",
                str(figures["requests"]),
            )
        )
    print(_table(("what", "p50", "p99", "requests"), rows))
    if "mean_total" in result.get("search_direct", {}):
        matched = result["search_direct"]["mean_total"]
        print(f"  a family search matched {matched:.1f} patients on average")
