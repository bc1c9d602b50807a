"""``make bench``: figures for cold import, token issuance (in-process and over HTTP), the
FHIR proxy (the handler's own cost per request; the latency it adds over HTTP, next to calling
the upstream directly and through nginx), FHIR version conversion (an R4 page of vital signs
to STU3 and to DSTU2, in-process), what anonymous callers can make it spend
(tools/bench_dos.py: memory after refused requests, token refusals, a hung table store), signed
credentials (tools/bench_signed.py: client assertions, provider tokens by secret and by
assertion, Entra ID token verification) and
the sandbox provider (tools/bench_sandbox.py: 10,000 generated patients in Azurite, searched
and batch-queried through the proxy).

Development only, loopback only. It prints numbers and never fails on them: goals are shown
next to the figures for a reader to judge. Each measurement is a function returning a dict, so
``tests/unit/test_bench_smoke.py`` can run them with tiny sizes and keep them from rotting.

Run from the repository root::

    python -m tools.bench
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if __package__ in (None, ""):  # run as `python tools/bench.py`: make `tools` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

if TYPE_CHECKING:
    from shared.proxy.auth_kinds import AuthKind
    from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
IMPORT_GOAL_MS = 300.0
# Modules `import function_app` must leave unloaded: each costs tens of ms at cold start.
HEAVY_MODULES = (
    "azure.data.tables",
    "azure.keyvault.secrets",
    "azure.identity",
    "jwt",
    "cryptography",
    "fhir.resources",
    "jinja2",
    # Only with APPLICATIONINSIGHTS_CONNECTION_STRING set, on the first request.
    "opentelemetry",
    "azure.monitor.opentelemetry",
)
ALGORITHMS = ("RS256", "ES256")
PROVIDER_URL = "https://fhir.bench.example/r4"
HTTP_TIMEOUT = 10.0
WARMUP = 20

_IMPORT_PROBE = f"""
import json, sys, time
start = time.perf_counter()
import function_app
elapsed = time.perf_counter() - start
heavy = {HEAVY_MODULES!r}
print(json.dumps({{"ms": elapsed * 1000, "loaded": [m for m in heavy if m in sys.modules]}}))
"""


# ---------------------------------------------------------------------------------------------
# Statistics


def percentile(samples: list[float], fraction: float) -> float:
    """Nearest-rank percentile of ``samples`` (``fraction`` in 0..1); works for one sample."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def _rate_figures(latencies: list[float], elapsed: float) -> dict[str, float]:
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "tokens_per_s": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


# ---------------------------------------------------------------------------------------------
# Import time


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    # A stray PYTHONPROFILEIMPORTTIME or -X flag in the caller's env would skew every run.
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def measure_import(repetitions: int = 7) -> dict[str, Any]:
    """Cold ``import function_app`` in fresh interpreters: min/median ms, heavy modules loaded."""
    timings: list[float] = []
    loaded: set[str] = set()
    for _ in range(repetitions):
        result = json.loads(_python("-c", _IMPORT_PROBE).stdout)
        timings.append(float(result["ms"]))
        loaded.update(result["loaded"])
    return {
        "runs": repetitions,
        "min_ms": min(timings),
        "median_ms": statistics.median(timings),
        "goal_ms": IMPORT_GOAL_MS,
        "lazy": {module: module not in loaded for module in HEAVY_MODULES},
    }


def parse_importtime(stderr: str) -> list[tuple[str, float, float, int]]:
    """``-X importtime`` lines as (module, self ms, cumulative ms, nesting depth)."""
    rows: list[tuple[str, float, float, int]] = []
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        fields = line[len("import time:") :].split("|")
        if len(fields) != 3 or not fields[0].strip().isdigit():
            continue  # the header line
        name = fields[2].rstrip()
        depth = (len(name) - len(name.lstrip())) // 2
        rows.append((name.strip(), int(fields[0]) / 1000, int(fields[1]) / 1000, depth))
    return rows


def measure_importtime(repetitions: int = 3, top: int = 5) -> dict[str, Any]:
    """``python -X importtime -c 'import function_app'``: total and top cumulative modules."""
    runs: list[list[tuple[str, float, float, int]]] = []
    for _ in range(repetitions):
        rows = parse_importtime(_python("-X", "importtime", "-c", "import function_app").stderr)
        runs.append(rows)

    def total(rows: list[tuple[str, float, float, int]]) -> float:
        return next(cumulative for name, _, cumulative, _ in rows if name == "function_app")

    totals = [total(rows) for rows in runs]
    # The fastest run has the least scheduler noise in its per-module split.
    fastest = runs[totals.index(min(totals))]
    ranked = sorted(
        (row for row in fastest if row[0] != "function_app"), key=lambda row: row[2], reverse=True
    )
    return {
        "runs": repetitions,
        "min_ms": min(totals),
        "median_ms": statistics.median(totals),
        "top": [
            {"module": name, "self_ms": self_ms, "cumulative_ms": cumulative, "depth": depth}
            for name, self_ms, cumulative, depth in ranked[:top]
        ],
    }


# ---------------------------------------------------------------------------------------------
# Token issuance


@dataclasses.dataclass(frozen=True)
class BenchFixture:
    """A seeded store pair: Azurite tables, a local secret file, one client and its tenant."""

    workdir: Path
    tables_connection_string: str
    secrets_path: Path
    client_id: str
    client_secret: str = dataclasses.field(repr=False)
    tenant_id: str

    def settings(self, algorithm: str) -> Settings:
        """Settings as the dev host would read them for this fixture, signing with ``algorithm``."""
        from shared.settings import Settings

        return Settings(
            secret_store="local",  # noqa: S106 - a store kind, not a secret
            local_secrets_path=str(self.secrets_path),
            tables_connection_string=self.tables_connection_string,
            token_algorithm=algorithm,
        )

    def form(self) -> dict[str, str]:
        """A valid client_secret_post token request body."""
        return {
            "grant_type": "client_credentials",
            "scope": self.tenant_id,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
        }


@contextlib.contextmanager
def bench_fixture(tables_connection_string: str | None = None) -> Iterator[BenchFixture]:
    """Start Azurite (unless a connection string is given) and seed a client, tenant and keys."""
    from shared.auth.signing_keys import ensure_signing_key
    from shared.services import Services
    from shared.tables import ensure_tables
    from shared.tenants import TenantMapping
    from tools.azurite import running_azurite

    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ehrb-bench-")))
        (workdir / "azurite").mkdir()
        connection = tables_connection_string or stack.enter_context(
            running_azurite(workdir / "azurite")
        )
        fixture = BenchFixture(workdir, connection, workdir / "secrets.json", "", "", "")
        services = Services(fixture.settings(ALGORITHMS[0]))
        ensure_tables(services.table_service)
        for algorithm in ALGORITHMS:
            ensure_signing_key(services.secret_store, algorithm)
        issued = services.clients.register("EHR Bridge bench")
        tenant_id = str(uuid.uuid4())
        services.tenants.put(
            TenantMapping(
                tenant_id=tenant_id,
                provider_base_url=PROVIDER_URL,
                provider_fhir_version="r4",
                allowed_client_ids=(issued.client.client_id,),
            )
        )
        yield dataclasses.replace(
            fixture,
            client_id=issued.client.client_id,
            client_secret=issued.secret,
            tenant_id=tenant_id,
        )


def _timed_loop(call: Callable[[], None], requests: int, budget_s: float) -> dict[str, float]:
    latencies: list[float] = []
    start = time.perf_counter()
    deadline = start + budget_s
    while len(latencies) < requests:
        began = time.perf_counter()
        call()
        ended = time.perf_counter()
        latencies.append(ended - began)
        if ended >= deadline:
            break
    return _rate_figures(latencies, time.perf_counter() - start)


def measure_inprocess(
    fixture: BenchFixture,
    algorithm: str,
    *,
    requests: int = 20_000,
    budget_s: float = 3.0,
    traced: bool = False,
) -> dict[str, Any]:
    """Single-threaded ``TokenEndpoint.handle`` calls: tokens/s, p50/p99, and the signing share.

    ``traced``: each call inside the invocation span every trigger runs in (``serve``)."""
    from shared.auth.tokens import issue_access_token
    from shared.services import Services
    from shared.telemetry import invocation
    from tools.testkit.inbound import form_request

    services = Services(fixture.settings(algorithm))
    endpoint = services.token_endpoint
    fields = fixture.form()

    def one() -> None:
        if traced:
            with invocation.serving("oauth_token", "POST", None) as span:
                response = invocation.answered(span, endpoint.handle(form_request(fields)))
        else:
            response = endpoint.handle(form_request(fields))
        if response.status != 200:
            raise RuntimeError(f"token request answered {response.status}: {response.body!r}")

    # Warm-up fills the client, secret, tenant and key caches, as in a warm instance.
    for _ in range(min(WARMUP, requests)):
        one()
    figures = _timed_loop(one, requests, budget_s)

    # Signing alone, with the same key and claims, tells how much of a request is the JWT.
    key = services.signing_keys.current()

    def sign() -> None:
        issue_access_token(
            key,
            issuer="urn:bench",
            audience="urn:bench",
            client_id=fixture.client_id,
            tenant_id=fixture.tenant_id,
            secret_version="v",  # noqa: S106 - a version label, not a secret
            lifetime_seconds=900,
        )

    signing = _timed_loop(sign, max(5, min(200, int(figures["requests"]))), budget_s / 6)
    return {
        "algorithm": algorithm,
        **figures,
        "sign_p50_ms": signing["p50_ms"],
        "sign_share": signing["p50_ms"] / figures["p50_ms"],
    }


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def devhost_for(
    fixture: BenchFixture, algorithm: str = "RS256", extra_env: dict[str, str] | None = None
) -> Iterator[str]:
    """Serve the real ``function_app`` wired to ``fixture``'s stores; yield the base URL.

    ``extra_env`` adds or overrides settings (``EHRB_*``) for this dev host only.
    """
    import function_app
    from shared.services import set_services
    from tools.testkit.devhost import running_devhost

    admin_key = secrets.token_urlsafe(32)
    env = {
        "EHRB_SECRET_STORE": "local",
        "EHRB_LOCAL_SECRETS_PATH": str(fixture.secrets_path),
        "EHRB_TABLES_CONNECTION_STRING": fixture.tables_connection_string,
        "EHRB_TABLES_ENDPOINT": "",
        "EHRB_LOCAL_ADMIN_KEY": admin_key,
        "EHRB_TOKEN_ALGORITHM": algorithm,
        "EHRB_PUBLIC_BASE_URL": "",
        "WEBSITE_INSTANCE_ID": "",
        **(extra_env or {}),
    }
    # get_services() caches one Services per process: drop it before and after, so the app
    # builds its own from this environment and nothing leaks into the caller.
    set_services(None)
    try:
        with (
            _environment(env),
            running_devhost(
                function_app.app, host_json_path=ROOT / "host.json", master_key=admin_key
            ) as base_url,
        ):
            yield base_url
    finally:
        set_services(None)


def measure_http(
    base_url: str,
    fixture: BenchFixture,
    *,
    threads: int = 1,
    requests: int = 100_000,
    budget_s: float = 3.0,
) -> dict[str, Any]:
    """Token requests over keep-alive HTTP from ``threads`` threads: tokens/s and p50/p99."""
    import requests as http

    url = f"{base_url}/api/oauth2/token"
    fields = fixture.form()
    per_thread = max(1, math.ceil(requests / threads))
    sessions = [http.Session() for _ in range(threads)]
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []
    start_line = threading.Barrier(threads + 1)

    def one(session: Any) -> None:
        response = session.post(url, data=fields, timeout=HTTP_TIMEOUT)
        if response.status_code != 200:
            raise RuntimeError(f"token request answered {response.status_code}: {response.text}")

    def worker(index: int) -> None:
        session, mine = sessions[index], latencies[index]
        try:
            # Opens the keep-alive connection and warms the server's caches before timing.
            for _ in range(min(WARMUP, per_thread)):
                one(session)
        except BaseException as error:
            errors.append(error)
        start_line.wait()
        if errors:
            return
        deadline = time.perf_counter() + budget_s
        try:
            while len(mine) < per_thread:
                began = time.perf_counter()
                one(session)
                ended = time.perf_counter()
                mine.append(ended - began)
                if ended >= deadline:
                    break
        except BaseException as error:
            errors.append(error)

    workers = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    try:
        for thread in workers:
            thread.start()
        start_line.wait()  # timing starts once every thread has warmed up
        started = time.perf_counter()
        for thread in workers:
            thread.join(timeout=budget_s + 4 * HTTP_TIMEOUT)
        elapsed = time.perf_counter() - started
    finally:
        for session in sessions:
            session.close()
    if errors:
        raise RuntimeError(f"HTTP bench failed: {errors[0]!r}") from errors[0]
    return {"threads": threads, **_rate_figures([x for xs in latencies for x in xs], elapsed)}


# ---------------------------------------------------------------------------------------------
# FHIR proxy

HANDLER_GOAL_US = 500.0
ADDED_GOAL_MS = 2.0
BENCH_PATIENT = "example"
SEARCHSET_ENTRIES = 20
FHIR_JSON = "application/fhir+json"
VITALS_QUERY = f"patient={BENCH_PATIENT}&category=vital-signs&_sort=-date"
# The proxy's rate limits (50 requests/s per tenant and per client by default) would answer 429
# long before a bench is done: the proxy figures run with them out of the way.
# The bench's provider listens on 127.0.0.1: loopback is a development-only address.
PROXY_RATE_ENV = {
    "EHRB_TENANT_RATE_LIMIT_PER_SECOND": "1000000",
    "EHRB_CLIENT_RATE_LIMIT_PER_SECOND": "1000000",
    "EHRB_ALLOW_INSECURE_PROVIDER_URLS": "true",
}
# Resources of BENCH_PATIENT on the bench upstream: the HL7 R4 examples, topped up with copies.
# (The fake matches Coverage on patient/subject only, which R4 Coverage lacks: that search comes
# back empty, as it does for a patient without coverage.)
SEED_TOTALS = {
    "Observation": 40,
    "Condition": 6,
    "Encounter": 8,
    "AllergyIntolerance": 4,
    "MedicationRequest": 6,
}
_PATIENT_FIELD = {"AllergyIntolerance": "patient"}  # the others use ``subject`` in R4

_UPSTREAM_SERVER = """
from tools.bench import serve_upstream
serve_upstream()
"""


def _refers_to(resource: dict[str, Any], patient: str) -> bool:
    return any(
        isinstance(resource.get(name), dict)
        and resource[name].get("reference") == f"Patient/{patient}"
        for name in ("subject", "patient")
    )


def _bench_date(index: int) -> str:
    return f"2024-{1 + index // 28 % 12:02d}-{1 + index % 28:02d}T08:{index % 60:02d}:00Z"


def seed_upstream(server: Any, patient: str = BENCH_PATIENT) -> dict[str, int]:
    """Give ``patient`` a chart on a ``FakeFhirServer`` (``SEED_TOTALS``) from copies of the
    HL7 examples; returns how many resources of each type refer to ``patient``."""
    import copy

    counts: dict[str, int] = {}
    for resource_type, total in SEED_TOTALS.items():
        templates = server.resources(resource_type)
        present = sum(_refers_to(r, patient) for r in templates)
        for index in range(max(0, total - present)):
            clone = copy.deepcopy(templates[index % len(templates)])
            clone["id"] = f"bench-{resource_type.lower()}-{index}"
            clone[_PATIENT_FIELD.get(resource_type, "subject")] = {
                "reference": f"Patient/{patient}"
            }
            if resource_type == "Observation":
                for name in [n for n in clone if n.startswith("effective")]:
                    del clone[name]
                clone["effectiveDateTime"] = _bench_date(index)
            elif resource_type == "Encounter":
                clone["period"] = {"start": _bench_date(index)}
            server.add(clone)
        counts[resource_type] = sum(_refers_to(r, patient) for r in server.resources(resource_type))
    return counts


def serve_upstream() -> None:
    """Child-process side of ``running_upstream``: serve a seeded fake until stdin closes."""
    from tools.testkit import fake_fhir

    server = fake_fhir.FakeFhirServer(version="r4").start()
    try:
        counts = seed_upstream(server)
        print(json.dumps({"base_url": server.base_url, "counts": counts}), flush=True)
        sys.stdin.read()
    finally:
        server.stop()


@dataclasses.dataclass(frozen=True)
class Upstream:
    """The bench's provider FHIR server: its base URL and the seeded patient's chart."""

    base_url: str
    counts: dict[str, int]


@contextlib.contextmanager
def running_upstream(start_timeout: float = 30.0) -> Iterator[Upstream]:
    """A seeded ``FakeFhirServer`` in its own process, so that it shares no GIL with the client,
    the dev host or the proxy; stopped on exit."""
    import select

    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(
            [sys.executable, "-c", _UPSTREAM_SERVER],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        assert process.stdin is not None and process.stdout is not None
        try:
            ready, _, _ = select.select([process.stdout], [], [], start_timeout)
            line = process.stdout.readline() if ready else ""
            if not line:
                errors.seek(0)
                raise RuntimeError(f"the bench upstream did not start: {errors.read()[-2000:]}")
            info = json.loads(line)
            yield Upstream(info["base_url"], info["counts"])
        finally:
            process.stdin.close()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def upstream_searchset(base_url: str, entries: int = SEARCHSET_ENTRIES) -> tuple[bytes, str]:
    """A real searchset of ``entries`` Observations from the upstream, with its fullUrls and
    paging links made absolute under ``PROVIDER_URL`` (the bench tenant's provider), and its
    Content-Type."""
    import requests as http

    response = http.get(
        f"{base_url}/Observation?{VITALS_QUERY}&_count={entries}",
        headers={"Accept": FHIR_JSON},
        timeout=HTTP_TIMEOUT,
    )
    response.raise_for_status()
    bundle = response.json()
    relations = {link["relation"] for link in bundle.get("link", [])}
    if len(bundle.get("entry", [])) != entries or "next" not in relations:
        raise RuntimeError(f"the upstream has fewer than {entries + 1} Observations to page")
    body = response.content.replace(base_url.encode(), PROVIDER_URL.encode())
    return body, response.headers["Content-Type"]


class CannedTransport:
    """Stands in for ``ProviderTransport``: every ``send`` answers the same upstream response,
    so a handler timing holds no upstream time."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.calls = 0

    def send(
        self,
        tenant: Any,
        method: str,
        url: str,
        headers: Any,
        body: bytes,
        *,
        idempotent: bool,
        deadline: float | None = None,
    ) -> Any:
        """The canned answer (the proxy only reads it)."""
        self.calls += 1
        return self.answer

    def close(self) -> None:
        """Nothing to close."""


def _token_for(services: Any, fixture: BenchFixture) -> str:
    from tools.testkit.inbound import form_request

    response = services.token_endpoint.handle(form_request(fixture.form()))
    if response.status != 200:
        raise RuntimeError(f"token request answered {response.status}: {response.body!r}")
    return str(response.json()["access_token"])


def _latencies(call: Callable[[], None], count: int, budget_s: float) -> list[float]:
    """Seconds per call of ``count`` calls, fewer if ``budget_s`` runs out (one at least)."""
    latencies: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(latencies) < count:
        began = time.perf_counter()
        call()
        ended = time.perf_counter()
        latencies.append(ended - began)
        if ended >= deadline:
            break
    return latencies


def _micro_figures(latencies: list[float]) -> dict[str, float]:
    return {
        "requests": len(latencies),
        "p50_us": percentile(latencies, 0.50) * 1e6,
        "p99_us": percentile(latencies, 0.99) * 1e6,
        "mean_us": statistics.fmean(latencies) * 1e6,
    }


def measure_proxy_inprocess(
    fixture: BenchFixture,
    searchset: bytes,
    content_type: str,
    *,
    requests: int = 5000,
    budget_s: float = 6.0,
    traced: bool = False,
) -> dict[str, Any]:
    """``FhirProxy.handle`` for a vitals search over ``CannedTransport`` answering ``searchset``:
    the handler's own cost per request (no upstream time), warm caches; plus bearer
    verification and URL rewriting timed alone on the same request and body.

    ``traced``: each call inside the invocation span every trigger runs in (``serve``)."""
    from shared.http import Headers
    from shared.proxy.handler import FhirProxy
    from shared.proxy.model import UpstreamResponse
    from shared.proxy.rewrite import UrlRewriter
    from shared.services import Services
    from shared.telemetry import invocation
    from tools.testkit.inbound import fhir_request

    settings = dataclasses.replace(
        fixture.settings(ALGORITHMS[0]),
        tenant_rate_limit_per_second=10**6,  # the defaults would answer 429 within a second
        client_rate_limit_per_second=10**6,
    )
    services = Services(settings)
    token = _token_for(services, fixture)
    answer = UpstreamResponse(200, Headers({"Content-Type": content_type}), searchset)
    transport: Any = CannedTransport(answer)
    proxy = FhirProxy(settings, services.verifier, services.lookups, transport)
    request = fhir_request("GET", "Observation", token, query=f"{VITALS_QUERY}&_count=20")
    face_base = "https://bridge.test/api/fhir/r4"  # fhir_request's origin, the r4 face
    urls = searchset.count(PROVIDER_URL.encode())
    try:
        response = proxy.handle(request, "r4")
        if response.status != 200 or PROVIDER_URL.encode() in response.body:
            raise RuntimeError(f"proxy answered {response.status}: {response.body[:300]!r}")
        if response.body.count(face_base.encode()) != urls:
            raise RuntimeError("the proxy did not rewrite every provider URL")

        def handle() -> None:
            if traced:
                with invocation.serving("fhir_proxy", "GET", None) as span:
                    invocation.answered(span, proxy.handle(request, "r4"))
            else:
                proxy.handle(request, "r4")

        def verify() -> None:
            services.verifier.verify(request)

        def rewrite() -> None:
            # As the handler does it: a rewriter per response, then the body.
            UrlRewriter(PROVIDER_URL, face_base).body(searchset)

        parts = {"handle": handle, "verify": verify, "rewrite": rewrite}
        for _ in range(min(WARMUP * 5, requests)):  # warm caches, as in a warm instance
            for call in parts.values():
                call()
        # Interleaved, so that the parts and the whole see the same machine (a 2-core VM's
        # speed drifts by tens of per cent between runs; the shares should not).
        latencies: dict[str, list[float]] = {name: [] for name in parts}
        deadline = time.perf_counter() + budget_s
        while len(latencies["handle"]) < requests:
            for name, call in parts.items():
                began = time.perf_counter()
                call()
                latencies[name].append(time.perf_counter() - began)
            if time.perf_counter() >= deadline:
                break
        figures = {name: _micro_figures(samples) for name, samples in latencies.items()}
    finally:
        proxy.close()
    handler_p50 = figures["handle"]["p50_us"]
    return {
        **figures["handle"],
        "goal_us": HANDLER_GOAL_US,
        "entries": SEARCHSET_ENTRIES,
        "body_bytes": len(searchset),
        "urls_rewritten": urls,
        "upstream_calls": transport.calls,
        "verify_p50_us": figures["verify"]["p50_us"],
        "rewrite_p50_us": figures["rewrite"]["p50_us"],
        "verify_share": figures["verify"]["p50_us"] / handler_p50,
        "rewrite_share": figures["rewrite"]["p50_us"] / handler_p50,
    }


@dataclasses.dataclass(frozen=True)
class MixCall:
    """One request of the Patients app, relative to a FHIR base."""

    label: str
    method: str
    path: str
    query: str = ""
    body: bytes = b""
    content_type: str = ""


def patients_app_mix(patient: str = BENCH_PATIENT) -> list[MixCall]:
    """The calls the Patients app makes for one patient (docs/patients-app.md)."""
    reads = [
        MixCall("Patient read", "GET", f"Patient/{patient}"),
        MixCall("Observation vital signs", "GET", "Observation", VITALS_QUERY),
        MixCall("Condition", "GET", "Condition", f"patient={patient}"),
        MixCall("Encounter latest", "GET", "Encounter", f"patient={patient}&_sort=-date&_count=1"),
        MixCall("AllergyIntolerance", "GET", "AllergyIntolerance", f"patient={patient}"),
        MixCall("MedicationRequest", "GET", "MedicationRequest", f"patient={patient}"),
        MixCall("Coverage", "GET", "Coverage", f"patient={patient}"),
    ]
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": f"{c.path}?{c.query}" if c.query else c.path}}
            for c in reads
        ],
    }
    return [
        reads[0],
        MixCall(
            "Patient POST _search",
            "POST",
            "Patient/_search",
            body=f"_id={patient}".encode(),
            content_type="application/x-www-form-urlencoded",
        ),
        *reads[1:],
        MixCall(
            f"batch of the {len(reads)} GETs",
            "POST",
            "",
            body=json.dumps(batch).encode(),
            content_type=FHIR_JSON,
        ),
    ]


@dataclasses.dataclass(frozen=True)
class Target:
    """A way to reach the upstream's FHIR API: its base URL and the headers it needs."""

    name: str
    base_url: str
    headers: dict[str, str] = dataclasses.field(default_factory=dict, repr=False)


def measure_mix(
    targets: list[Target],
    calls: list[MixCall],
    *,
    rounds: int = 60,
    warmup_rounds: int = 2,
    budget_s: float = 40.0,
) -> dict[str, dict[str, Any]]:
    """Every call of the mix through every target, ``rounds`` times, over one keep-alive
    ``requests.Session`` per target; single-threaded, the targets interleaved call by call (the
    order rotating each round) so that they share the machine's state. The first target is the
    baseline: ``added_p50_ms`` is a target's p50 minus the baseline's; ``paired_added_p50_ms``
    the median of (target - baseline) over the same call in the same round."""
    import requests as http

    sessions = {}
    for target in targets:
        session = http.Session()
        session.headers.update({"Accept": FHIR_JSON, **target.headers})
        sessions[target.name] = session
    samples: dict[str, dict[str, list[float]]] = {
        t.name: {c.label: [] for c in calls} for t in targets
    }

    def one(target: Target, call: MixCall) -> float:
        url = target.base_url + (f"/{call.path}" if call.path else "")
        url += f"?{call.query}" if call.query else ""
        headers = {"Content-Type": call.content_type} if call.content_type else None
        began = time.perf_counter()
        response = sessions[target.name].request(
            call.method, url, data=call.body or None, headers=headers, timeout=HTTP_TIMEOUT
        )
        elapsed = time.perf_counter() - began
        if response.status_code != 200:
            raise RuntimeError(
                f"{target.name}: {call.label} answered {response.status_code}: "
                f"{response.text[:300]}"
            )
        return elapsed

    try:
        for _ in range(warmup_rounds):
            for call in calls:
                for target in targets:
                    one(target, call)
        deadline = time.perf_counter() + budget_s
        done = 0
        while done < rounds:
            order = targets[done % len(targets) :] + targets[: done % len(targets)]
            for call in calls:
                for target in order:
                    samples[target.name][call.label].append(one(target, call))
            done += 1
            if time.perf_counter() >= deadline:
                break
    finally:
        for session in sessions.values():
            session.close()

    baseline = samples[targets[0].name]
    base_all = [x for xs in baseline.values() for x in xs]
    results: dict[str, dict[str, Any]] = {}
    for target in targets:
        mine = samples[target.name]
        flat = [x for xs in mine.values() for x in xs]
        paired = [
            mine[c.label][i] - baseline[c.label][i]
            for c in calls
            for i in range(len(mine[c.label]))
        ]
        results[target.name] = {
            "rounds": done,
            "requests": len(flat),
            "p50_ms": percentile(flat, 0.50) * 1000,
            "p99_ms": percentile(flat, 0.99) * 1000,
            "mean_ms": statistics.fmean(flat) * 1000,
            "added_p50_ms": (percentile(flat, 0.50) - percentile(base_all, 0.50)) * 1000,
            "paired_added_p50_ms": statistics.median(paired) * 1000,
            "by_call_p50_ms": {label: percentile(xs, 0.50) * 1000 for label, xs in mine.items()},
        }
    return results


def map_tenant(
    fixture: BenchFixture, provider_base_url: str, provider_auth_kind: AuthKind | None = None
) -> str:
    """Map a new tenant to ``provider_base_url`` for ``fixture``'s client (auth kind ``none``
    unless told); its id."""
    from shared.proxy.auth_kinds import AuthKind
    from shared.services import Services
    from shared.tenants import TenantMapping

    tenant_id = str(uuid.uuid4())
    Services(fixture.settings(ALGORITHMS[0])).tenants.put(
        TenantMapping(
            tenant_id=tenant_id,
            provider_base_url=provider_base_url,
            provider_fhir_version="r4",
            provider_auth_kind=provider_auth_kind or AuthKind.NONE,
            allowed_client_ids=(fixture.client_id,),
        )
    )
    return tenant_id


def measure_proxy_paths(
    fixture: BenchFixture,
    upstream_base_url: str,
    *,
    nginx_base_url: str | None = None,
    rounds: int = 60,
    warmup_rounds: int = 2,
    budget_s: float = 40.0,
) -> dict[str, dict[str, Any]]:
    """The Patients-app mix direct to the upstream, through nginx (when given) and through the
    dev host and the proxy (a tenant mapped to the upstream, a token from the dev host)."""
    import requests as http

    tenant_id = map_tenant(fixture, upstream_base_url)
    with devhost_for(fixture, extra_env=PROXY_RATE_ENV) as base_url:
        answer = http.post(
            f"{base_url}/api/oauth2/token",
            data={**fixture.form(), "scope": tenant_id},
            timeout=HTTP_TIMEOUT,
        )
        answer.raise_for_status()
        bearer = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        targets = [Target("direct", upstream_base_url)]
        if nginx_base_url is not None:
            targets.append(Target("nginx", nginx_base_url))
        targets.append(Target("dev host + proxy", f"{base_url}/api/fhir/r4", bearer))
        results = measure_mix(
            targets,
            patients_app_mix(),
            rounds=rounds,
            warmup_rounds=warmup_rounds,
            budget_s=budget_s,
        )
        # What the dev host costs by itself: a FHIR route it answers without the proxy or the
        # upstream (the face's CapabilityStatement), over the same kind of session.
        metadata = f"{base_url}/api/fhir/r4/metadata"
        with http.Session() as session:
            session.headers["Accept"] = FHIR_JSON

            def floor() -> None:
                response = session.get(metadata, timeout=HTTP_TIMEOUT)
                if response.status_code != 200:
                    raise RuntimeError(f"metadata answered {response.status_code}")

            for _ in range(min(WARMUP, rounds)):
                floor()
            count = max(1, min(300, results["direct"]["requests"]))
            latencies = _latencies(floor, count, budget_s / 10)
        results["dev host + proxy"]["devhost_floor_p50_ms"] = percentile(latencies, 0.5) * 1000
        results["dev host + proxy"]["devhost_floor_requests"] = len(latencies)
        return results


def nginx_binary() -> str | None:
    """The nginx executable, or None (``make bench`` installs the Debian package)."""
    import shutil

    found = shutil.which("nginx")
    if found is None and os.access("/usr/sbin/nginx", os.X_OK):
        found = "/usr/sbin/nginx"
    return found


def nginx_config(workdir: Path, listen_port: int, upstream_host: str, upstream_port: int) -> str:
    """A minimal reverse proxy: foreground, everything under ``workdir``, keep-alive upstream,
    answers buffered in memory (never in temp files), no access log."""
    return f"""daemon off;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/client_body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    client_body_buffer_size 1m;
    proxy_buffer_size 16k;
    proxy_buffers 64 16k;
    proxy_max_temp_file_size 0;
    upstream fhir {{
        server {upstream_host}:{upstream_port};
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{listen_port};
        location / {{
            proxy_pass http://fhir;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
        }}
    }}
}}
"""


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def running_nginx(upstream_base_url: str, binary: str, start_timeout: float = 5.0) -> Iterator[str]:
    """nginx in front of the upstream on a free loopback port; yields the FHIR base URL through
    it (same path as the upstream's). RuntimeError if it does not start; stopped on exit."""
    import socket
    from urllib.parse import urlsplit

    upstream = urlsplit(upstream_base_url)
    with tempfile.TemporaryDirectory(prefix="ehrb-bench-nginx-") as tmp:
        workdir = Path(tmp)
        port = _free_port()
        config = workdir / "nginx.conf"
        config.write_text(
            nginx_config(workdir, port, upstream.hostname or "127.0.0.1", upstream.port or 80)
        )
        log = workdir / "error.log"
        with (workdir / "stderr").open("w+") as errors:
            process = subprocess.Popen(
                [binary, "-p", str(workdir), "-c", str(config), "-e", str(log)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=errors,
            )
            try:
                deadline = time.monotonic() + start_timeout
                while True:
                    if process.poll() is not None or time.monotonic() > deadline:
                        errors.seek(0)
                        details = errors.read() + (log.read_text() if log.exists() else "")
                        what = (
                            f"exited with status {process.returncode}"
                            if process.returncode is not None
                            else f"did not listen within {start_timeout:.0f} s"
                        )
                        raise RuntimeError(f"nginx {what}: {details.strip()[-500:]}".rstrip(": "))
                    try:
                        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                        break
                    except OSError:
                        time.sleep(0.02)
                yield f"http://127.0.0.1:{port}{upstream.path}"
            finally:
                process.terminate()  # SIGTERM: the master stops its workers and exits
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)


def measure_proxy(
    fixture: BenchFixture,
    *,
    inprocess_requests: int = 5000,
    rounds: int = 60,
    warmup_rounds: int = 2,
    use_nginx: bool = True,
    budget_s: float = 40.0,
) -> dict[str, Any]:
    """Every proxy figure from one upstream: the in-process handler, then the mix direct,
    through nginx (if ``use_nginx`` and it starts) and through the dev host."""
    with running_upstream() as upstream, contextlib.ExitStack() as stack:
        searchset, content_type = upstream_searchset(upstream.base_url)
        handler = measure_proxy_inprocess(
            fixture, searchset, content_type, requests=inprocess_requests
        )
        nginx_url: str | None = None
        nginx_status = "skipped"
        if use_nginx:
            binary = nginx_binary()
            if binary is None:
                nginx_status = "not available (not installed; `make bench` installs it)"
            else:
                try:
                    nginx_url = stack.enter_context(running_nginx(upstream.base_url, binary))
                    nginx_status = "ok"
                except (RuntimeError, OSError) as error:
                    nginx_status = f"not available ({error})"
        paths = measure_proxy_paths(
            fixture,
            upstream.base_url,
            nginx_base_url=nginx_url,
            rounds=rounds,
            warmup_rounds=warmup_rounds,
            budget_s=budget_s,
        )
    return {"upstream": upstream.counts, "handler": handler, "paths": paths, "nginx": nginx_status}


# ---------------------------------------------------------------------------------------------
# Version conversion

CONVERSION_GOAL_MS = 5.0
CONVERSION_ENTRIES = 100
CONVERSION_FACES = ("stu3", "dstu2")
_LOINC = "http://loinc.org"
_UCUM = "http://unitsofmeasure.org"
_CATEGORY_R4 = "http://terminology.hl7.org/CodeSystem/observation-category"
_VITALS_PROFILE = "http://hl7.org/fhir/StructureDefinition/vitalsigns"
# (LOINC code, display, UCUM unit, value at index 0, step per index); the panel comes last.
_VITALS = (
    ("8867-4", "Heart rate", "/min", 64.0, 1.0),
    ("9279-1", "Respiratory rate", "/min", 12.0, 0.5),
    ("8310-5", "Body temperature", "Cel", 36.4, 0.1),
    ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%", 94.0, 0.5),
    ("29463-7", "Body weight", "kg", 68.0, 0.3),
    ("8302-2", "Body height", "cm", 170.0, 0.2),
    ("39156-5", "Body mass index (BMI) [Ratio]", "kg/m2", 22.0, 0.1),
)
_BLOOD_PRESSURE = (
    ("85354-9", "Blood pressure panel with all children optional"),
    ("8480-6", "Systolic blood pressure", 110.0, 2.0),
    ("8462-4", "Diastolic blood pressure", 70.0, 1.0),
)


def _concept(system: str, code: str, display: str, text: str | None = None) -> dict[str, Any]:
    concept: dict[str, Any] = {"coding": [{"system": system, "code": code, "display": display}]}
    if text:
        concept["text"] = text
    return concept


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": round(value, 1), "unit": unit, "system": _UCUM, "code": unit}


def _vital_sign(index: int, patient: str) -> dict[str, Any]:
    """One R4 vital-sign Observation: a single measure, or every eighth a blood-pressure panel."""
    step = index // (len(_VITALS) + 1)
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f"vitals-{index}",
        "meta": {
            "versionId": "1",
            "lastUpdated": "2024-06-01T09:00:00Z",
            "profile": [_VITALS_PROFILE],
        },
        "status": "final",
        "category": [
            _concept(_CATEGORY_R4, "vital-signs", "Vital Signs", "Vital Signs"),
        ],
        "subject": {"reference": f"Patient/{patient}"},
        # Newest first, as the app asks (_sort=-date): a round of readings every 30 minutes.
        "effectiveDateTime": _reading_time(index),
    }
    kind = index % (len(_VITALS) + 1)
    if kind == len(_VITALS):
        (code, display), *parts = _BLOOD_PRESSURE
        resource["code"] = _concept(_LOINC, code, display, "Blood pressure")
        resource["component"] = [
            {
                "code": _concept(_LOINC, part_code, part_display),
                "valueQuantity": _quantity(start + delta * (step % 10), "mm[Hg]"),
            }
            for part_code, part_display, start, delta in parts
        ]
    else:
        code, display, unit, start, delta = _VITALS[kind]
        resource["code"] = _concept(_LOINC, code, display, display)
        resource["valueQuantity"] = _quantity(start + delta * (step % 10), unit)
    return resource


def _reading_time(index: int) -> str:
    minutes = 24 * 60 - 30 * (index // (len(_VITALS) + 1)) - index % (len(_VITALS) + 1)
    day, minute = 10 + minutes // (24 * 60), minutes % (24 * 60)
    return f"2024-05-{day:02d}T{minute // 60:02d}:{minute % 60:02d}:00Z"


def vital_signs_searchset(
    entries: int = CONVERSION_ENTRIES, base: str = PROVIDER_URL, patient: str = BENCH_PATIENT
) -> dict[str, Any]:
    """A page of an R4 vital-signs search as a provider answers it: ``entries`` Observations
    (heart rate, respiratory rate, temperature, SpO2, weight, height, BMI and blood-pressure
    panels; LOINC codes, UCUM units, R4 category system), fullUrls under ``base``, total, self
    and next links."""
    query = f"{VITALS_QUERY.replace(BENCH_PATIENT, patient)}&_count={entries}"
    return {
        "resourceType": "Bundle",
        "id": "vitals-page-1",
        "meta": {"lastUpdated": "2024-06-01T09:00:00Z"},
        "type": "searchset",
        "total": entries * 3,
        "link": [
            {"relation": "self", "url": f"{base}/Observation?{query}"},
            {"relation": "next", "url": f"{base}/Observation?{query}&_getpagesoffset={entries}"},
        ],
        "entry": [
            {
                "fullUrl": f"{base}/Observation/vitals-{index}",
                "resource": _vital_sign(index, patient),
                "search": {"mode": "match"},
            }
            for index in range(entries)
        ],
    }


def measure_conversion(
    entries: int = CONVERSION_ENTRIES, *, runs: int = 400, budget_s: float = 20.0
) -> dict[str, Any]:
    """``FhirVersionConverter().response`` on an R4 vital-signs searchset of ``entries``
    Observations, to each face in ``CONVERSION_FACES``: parse, convert, links, serialise, as the
    proxy does it (no enrichment). Faces interleaved run by run; ms per conversion."""
    from shared.http import Headers
    from shared.proxy.conversion import FhirVersionConverter
    from shared.proxy.model import UpstreamResponse

    body = json.dumps(vital_signs_searchset(entries), separators=(",", ":")).encode("utf-8")
    answer = UpstreamResponse(200, Headers({"Content-Type": f"{FHIR_JSON};charset=utf-8"}), body)
    converter = FhirVersionConverter()

    def convert(face: str) -> bytes:
        return converter.response(face, "r4", answer).body

    for face in CONVERSION_FACES:
        converted = json.loads(convert(face))
        resource = converted["entry"][0]["resource"] if converted.get("entry") else {}
        category = resource.get("category")
        if (
            len(converted.get("entry", [])) != entries
            or _CATEGORY_R4.encode() in convert(face)
            or (face == "dstu2" and not isinstance(category, dict))
        ):
            raise RuntimeError(f"the {face} conversion did not convert: {str(converted)[:300]}")
    for _ in range(min(WARMUP, runs)):
        for face in CONVERSION_FACES:
            convert(face)
    latencies: dict[str, list[float]] = {face: [] for face in CONVERSION_FACES}
    deadline = time.perf_counter() + budget_s
    while len(latencies[CONVERSION_FACES[-1]]) < runs:
        for face in CONVERSION_FACES:
            began = time.perf_counter()
            convert(face)
            latencies[face].append(time.perf_counter() - began)
        if time.perf_counter() >= deadline:
            break
    return {
        "entries": entries,
        "body_bytes": len(body),
        "goal_ms": CONVERSION_GOAL_MS,
        **{
            face: {
                "runs": len(samples),
                "p50_ms": percentile(samples, 0.50) * 1000,
                "p99_ms": percentile(samples, 0.99) * 1000,
                "mean_ms": statistics.fmean(samples) * 1000,
            }
            for face, samples in latencies.items()
        },
    }


# ---------------------------------------------------------------------------------------------
# Report


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]], indent: str = "  ") -> str:
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = []
    for row in (header, *rows):
        cells = [
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)
        ]
        lines.append(indent + "  ".join(cells).rstrip())
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run every measurement and print the figures."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__)
    parser.add_argument(
        "--sandbox-patients",
        type=int,
        default=10_000,
        help="generated patients the sandbox figures are measured on (0: skip them)",
    )
    args = parser.parse_args(argv)
    began = time.perf_counter()
    print(
        f"EHR Bridge bench: {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} cores, {platform.system()} {platform.machine()}"
    )
    print()

    cold = measure_import()
    profiled = measure_importtime()
    met = "met" if cold["median_ms"] <= IMPORT_GOAL_MS else "MISSED"
    print(f"Cold import of function_app (fresh interpreter each run, {cold['runs']} runs)")
    print(
        _table(
            ("measured with", "min", "median", "goal"),
            [
                (
                    "perf_counter around import",
                    f"{cold['min_ms']:.1f} ms",
                    f"{cold['median_ms']:.1f} ms",
                    f"≤ {IMPORT_GOAL_MS:.0f} ms ({met})",
                ),
                (
                    f"-X importtime ({profiled['runs']} runs)",
                    f"{profiled['min_ms']:.1f} ms",
                    f"{profiled['median_ms']:.1f} ms",
                    "(adds its own overhead)",
                ),
            ],
        )
    )
    print("  top cumulative imports (fastest -X importtime run; nested ones are included above):")
    print(
        _table(
            ("module", "cumulative", "self"),
            [
                (
                    "  " * entry["depth"] + entry["module"],
                    f"{entry['cumulative_ms']:.1f} ms",
                    f"{entry['self_ms']:.1f} ms",
                )
                for entry in profiled["top"]
            ],
            indent="    ",
        )
    )
    print("  heavy modules left unloaded by `import function_app` (required):")
    print(
        _table(
            ("module", "lazy"),
            [(module, "yes" if lazy else "NO") for module, lazy in cold["lazy"].items()],
            indent="    ",
        )
    )
    print()

    rows: list[tuple[str, ...]] = []
    notes: list[str] = []
    with bench_fixture() as fixture:
        inprocess = {algorithm: measure_inprocess(fixture, algorithm) for algorithm in ALGORITHMS}
        for algorithm, result in inprocess.items():
            rows.append(_token_row(algorithm, "in-process", 1, result))
            share = result["sign_share"]
            verdict = f"{algorithm} signing dominates" if share >= 0.5 else "signing is minor"
            notes.append(
                f"{algorithm}: signing alone {result['sign_p50_ms']:.2f} ms, "
                f"{share:.0%} of the in-process p50 ({verdict})"
            )
        from tools.bench_client_assertions import CLIENT_ALGORITHMS, measure_private_key_jwt

        for client_algorithm in CLIENT_ALGORITHMS:
            signed = measure_private_key_jwt(fixture, ALGORITHMS[0], client_algorithm)
            rows.append(
                _token_row(
                    ALGORITHMS[0], "in-process", 1, signed, f"private_key_jwt {client_algorithm}"
                )
            )
        http_algorithm = ALGORITHMS[0]
        with devhost_for(fixture, http_algorithm) as base_url:
            for threads in (1, 4):
                result = measure_http(base_url, fixture, threads=threads)
                rows.append(_token_row(http_algorithm, "HTTP dev host", threads, result))
                if threads == 1:
                    overhead = result["p50_ms"] - inprocess[http_algorithm]["p50_ms"]
                    notes.append(
                        f"HTTP + dev host add {overhead:.2f} ms to the {http_algorithm} p50 "
                        "(client and server share one process, so one GIL)"
                    )
                    if 35 <= overhead <= 50:
                        notes.append(
                            "  ~40 ms per request is the Nagle + delayed-ACK signature: the "
                            "response leaves in two send()s on a socket without TCP_NODELAY"
                        )
        proxy_began = time.perf_counter()
        proxy = measure_proxy(fixture)
        proxy["seconds"] = time.perf_counter() - proxy_began
    print("Token issuance (client_credentials, warm caches, loopback)")
    columns = ("alg", "client auth", "path", "threads", "tokens/s", "p50", "p99", "requests")
    print(_table((*columns, "time"), rows))
    for note in notes:
        print(f"  {note}")
    print()
    _print_proxy(proxy)
    print()
    _print_conversion(measure_conversion())
    print()
    from tools.bench_telemetry import measure_telemetry, print_telemetry

    print_telemetry(measure_telemetry())
    print()
    from tools.bench_dos import (
        measure_hung_tables,
        measure_refused_memory,
        measure_token_refusals,
        print_dos,
    )

    with bench_fixture() as fixture:
        print_dos(
            measure_refused_memory(fixture),
            measure_token_refusals(fixture),
            measure_hung_tables(fixture),
        )
    print()
    from tools.bench_signed import (
        ASSERTION_ALGORITHMS,
        measure_assertions,
        measure_entra_verification,
        measure_provider_tokens,
        print_signed,
    )

    with bench_fixture() as fixture:
        print_signed(
            [measure_assertions(algorithm) for algorithm in ASSERTION_ALGORITHMS],
            [
                measure_provider_tokens("client_credentials"),
                measure_provider_tokens("private_key_jwt", "RS384"),
                measure_provider_tokens("private_key_jwt", "ES384"),
            ],
            measure_entra_verification(fixture),
        )

    from tools.bench_scopes import measure_scope_check, print_scopes

    print_scopes(measure_scope_check())
    print()
    from tools.bench_shared import measure_shared, print_shared

    with bench_fixture() as fixture:
        print_shared(measure_shared(fixture))
    print()
    if args.sandbox_patients > 0:
        from tools.bench_sandbox import measure_sandbox, print_sandbox

        with bench_fixture() as fixture:
            print_sandbox(measure_sandbox(fixture, patients=args.sandbox_patients))
        print()
    print(f"bench took {time.perf_counter() - began:.1f} s")
    return 0


def _token_row(
    algorithm: str,
    path: str,
    threads: int,
    result: dict[str, Any],
    method: str = "client_secret_post",
) -> tuple[str, ...]:
    return (
        algorithm,
        method,
        path,
        str(threads),
        f"{result['tokens_per_s']:.0f}",
        f"{result['p50_ms']:.2f} ms",
        f"{result['p99_ms']:.2f} ms",
        str(result["requests"]),
        f"{result['seconds']:.1f} s",
    )


def _verdict(value: float, goal: float) -> str:
    return "met" if value <= goal else "MISSED"


def _print_proxy(proxy: dict[str, Any]) -> None:
    handler, paths = proxy["handler"], proxy["paths"]
    chart = ", ".join(f"{count} {kind}" for kind, count in proxy["upstream"].items())
    print(
        f"FHIR proxy, R4 face (upstream: FakeFhirServer in its own process; patient "
        f"{BENCH_PATIENT!r} has {chart}; section took {proxy['seconds']:.1f} s)"
    )
    p50 = handler["p50_us"]
    rest = p50 - handler["verify_p50_us"] - handler["rewrite_p50_us"]
    print(
        f"  In-process FhirProxy.handle, upstream excluded (canned {handler['entries']}-entry "
        f"searchset, {handler['body_bytes'] / 1024:.1f} KB, {handler['urls_rewritten']} URLs "
        f"rewritten; warm caches; {handler['requests']} calls)"
    )
    print(
        _table(
            ("part", "p50", "p99", "mean", "share of p50", "goal"),
            [
                (
                    "FhirProxy.handle",
                    f"{p50:.0f} µs",
                    f"{handler['p99_us']:.0f} µs",
                    f"{handler['mean_us']:.0f} µs",
                    "100%",
                    f"≤ {HANDLER_GOAL_US:.0f} µs p50 ({_verdict(p50, HANDLER_GOAL_US)})",
                ),
                (
                    "  BearerVerifier.verify alone",
                    f"{handler['verify_p50_us']:.0f} µs",
                    "",
                    "",
                    f"{handler['verify_share']:.0%}",
                    "",
                ),
                (
                    "  UrlRewriter(...).body alone",
                    f"{handler['rewrite_p50_us']:.0f} µs",
                    "",
                    "",
                    f"{handler['rewrite_share']:.0%}",
                    "",
                ),
                ("  everything else", f"{rest:.0f} µs", "", "", f"{rest / p50:.0%}", ""),
            ],
            indent="    ",
        )
    )
    names = list(paths)
    first = paths[names[0]]
    print(
        f"  Patients-app mix over keep-alive HTTP ({len(first['by_call_p50_ms'])} calls x "
        f"{first['rounds']} rounds per path, paths interleaved call by call, one client thread)"
    )
    rows: list[tuple[str, ...]] = []
    for name, result in paths.items():
        if name == "direct":
            added, goal = "", "(baseline)"
        else:
            added = (
                f"+{result['added_p50_ms']:.2f} ms (paired {result['paired_added_p50_ms']:+.2f})"
            )
            goal = (
                "(floor)"
                if name == "nginx"
                else f"≤ {ADDED_GOAL_MS:.0f} ms ({_verdict(result['added_p50_ms'], ADDED_GOAL_MS)})"
            )
        rows.append(
            (
                name,
                str(result["requests"]),
                f"{result['p50_ms']:.2f} ms",
                f"{result['p99_ms']:.2f} ms",
                added,
                goal,
            )
        )
    print(_table(("path", "requests", "p50", "p99", "added p50 vs direct", "goal"), rows, "    "))
    print("    p50 per call:")
    labels = list(first["by_call_p50_ms"])
    print(
        _table(
            ("call", *names),
            [
                (label, *(f"{paths[n]['by_call_p50_ms'][label]:.2f} ms" for n in names))
                for label in labels
            ],
            indent="      ",
        )
    )
    devhost = paths["dev host + proxy"]
    print(
        f"    the dev host alone, answering GET metadata itself (no proxy, no upstream; "
        f"{devhost['devhost_floor_requests']} requests): "
        f"p50 {devhost['devhost_floor_p50_ms']:.2f} ms"
    )
    if proxy["nginx"] != "ok":
        print(f"  nginx: {proxy['nginx']}")
    print(
        "  client, dev host and proxy share one process (one GIL); the proxy's rate limits are "
        "lifted for the bench"
    )


def _print_conversion(conversion: dict[str, Any]) -> None:
    goal = conversion["goal_ms"]
    first = conversion[CONVERSION_FACES[0]]
    print(
        f"Version conversion (in-process FhirVersionConverter.response: parse + convert + links + "
        f"serialise; R4 searchset of {conversion['entries']} vital-sign Observations, "
        f"{conversion['body_bytes'] / 1024:.1f} KB; {first['runs']} runs per face, interleaved)"
    )
    rows = [
        (
            f"R4 → {face.upper()}",
            f"{figures['p50_ms']:.2f} ms",
            f"{figures['p99_ms']:.2f} ms",
            f"{figures['mean_ms']:.2f} ms",
            f"≤ {goal:.0f} ms each ({_verdict(figures['p50_ms'], goal)} at p50)",
        )
        for face in CONVERSION_FACES
        for figures in (conversion[face],)
    ]
    print(_table(("conversion", "p50", "p99", "mean", "goal"), rows))


if __name__ == "__main__":
    sys.exit(main())
