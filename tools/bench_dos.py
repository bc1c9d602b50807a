"""``make bench``, denial-of-service part: what an anonymous caller can make the service spend.

- Memory: the dev host's resident set before and after 10,000 refused 1 MiB proxy requests
  with random bearer tokens (half garbage, half well-formed with our ``kid`` and a signature
  that cannot hold).
- The token endpoint's two refusals, in-process: an unknown ``client_id`` (a new random one
  each time, past the size the old per-id cache evicted at) and a known one with a wrong
  secret. Both medians should be the same: the endpoint must not tell whether an id exists.
- A hung Table Storage (a loopback listener that accepts and never answers, with the app's own
  SDK timeouts): how long until requests are answered 503 at once, and how many calls reached
  the hung endpoint.

Figures only; no goals are asserted. Development only, loopback only.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from tools.bench import HTTP_TIMEOUT, _table, _token_for, devhost_for, percentile

if TYPE_CHECKING:
    from tools.bench import BenchFixture

MIB = 1 << 20
REFUSED_REQUESTS = 10_000
FAST_SECONDS = 0.5  # an answer this quick did not wait for the hung store
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def rss_mib() -> float | None:
    """This process's resident set in MiB (Linux ``/proc``), or None elsewhere."""
    try:
        with open(f"/proc/{os.getpid()}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def random_bearer(kid: str, index: int) -> str:
    """A token the proxy must refuse: garbage, or our header with a signature that cannot hold."""
    noise = _b64url(secrets.token_bytes(48))
    if index % 2:
        return noise
    header = _b64url(json.dumps({"alg": "RS256", "typ": "at+jwt", "kid": kid}).encode())
    return f"{header}.{noise}.{noise}"


def measure_refused_memory(
    fixture: BenchFixture,
    *,
    requests: int = REFUSED_REQUESTS,
    body_bytes: int = MIB,
    threads: int = 4,
) -> dict[str, Any]:
    """RSS of the process serving the dev host before and after ``requests`` refused POSTs."""
    import gc

    import requests as http

    from shared.services import Services

    kid = Services(fixture.settings("RS256")).signing_keys.current().kid
    body = b"x" * body_bytes  # one buffer: the client side allocates nothing per request
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    with devhost_for(fixture) as base_url:
        url = f"{base_url}/api/fhir/r4/Patient/_search"

        def worker(indexes: range) -> None:
            with http.Session() as session:
                for index in indexes:
                    headers = {
                        "Authorization": f"Bearer {random_bearer(kid, index)}",
                        "Content-Type": "application/x-www-form-urlencoded",
                    }
                    status = session.post(url, data=body, headers=headers, timeout=HTTP_TIMEOUT)
                    with lock:
                        statuses[status.status_code] = statuses.get(status.status_code, 0) + 1

        worker(range(threads * 4))  # warm-up: imports, caches, the key list
        statuses.clear()
        gc.collect()
        before = rss_mib()
        started = time.perf_counter()
        share = max(1, requests // threads)
        pool = [
            threading.Thread(target=worker, args=(range(n * share, (n + 1) * share),))
            for n in range(threads)
        ]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        elapsed = time.perf_counter() - started
        gc.collect()
        after = rss_mib()
    return {
        "requests": share * threads,
        "body_bytes": body_bytes,
        "seconds": elapsed,
        "statuses": statuses,
        "rss_before_mib": before,
        "rss_after_mib": after,
        "growth_mib": None if before is None or after is None else after - before,
    }


def _unthrottled(fixture: BenchFixture) -> Any:
    """The fixture's settings with the token endpoint's failure limits out of reach."""
    import dataclasses

    return dataclasses.replace(
        fixture.settings("RS256"),
        token_failure_limit=10**9,
        token_client_failure_ceiling=10**9,
    )


def measure_token_refusals(fixture: BenchFixture, *, requests: int = 12_000) -> dict[str, Any]:
    """In-process medians of the token endpoint refusing an unknown and a known client id."""

    from shared.services import Services
    from tools.testkit.inbound import form_request

    # The failure limits would answer 429 long before the figures are in: lifted here.
    endpoint = Services(_unthrottled(fixture)).token_endpoint
    base = {"grant_type": "client_credentials", "scope": fixture.tenant_id}
    known = {**base, "client_id": fixture.client_id, "client_secret": "wrong"}

    # From a source of their own: the shared throttle counts (the `expiring` table) outlive
    # this Services, and a later measurement's token from the default source must not be 429.
    source = {"X-Forwarded-For": "198.51.100.17:50000"}

    def one(fields: dict[str, str]) -> float:
        began = time.perf_counter()
        response = endpoint.handle(form_request(fields, headers=source))
        elapsed = time.perf_counter() - began
        if response.status != 401:
            raise RuntimeError(f"expected 401, got {response.status}: {response.body!r}")
        return elapsed

    for _ in range(50):  # a warm instance: the client listing and the secrets are cached
        one(known)
        one({**base, "client_id": str(uuid.uuid4()), "client_secret": "wrong"})
    unknown: list[float] = []
    wrong: list[float] = []
    for _ in range(requests):  # interleaved, so drift hits both alike
        unknown.append(one({**base, "client_id": str(uuid.uuid4()), "client_secret": "x"}))
        wrong.append(one(known))
    tail = unknown[-1000:]
    return {
        "requests": requests,
        "unknown_p50_us": percentile(unknown, 0.5) * 1e6,
        "unknown_p99_us": percentile(unknown, 0.99) * 1e6,
        "unknown_last_p50_us": percentile(tail, 0.5) * 1e6,
        "known_wrong_p50_us": percentile(wrong, 0.5) * 1e6,
        "known_wrong_p99_us": percentile(wrong, 0.99) * 1e6,
    }


@contextlib.contextmanager
def _quiet_warnings() -> Iterator[None]:
    """Every refusal logs a warning; hundreds of them would bury the figures."""
    logger = logging.getLogger("shared")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def hung_connection_string(port: int) -> str:
    """An Azurite-style connection string whose table endpoint is the hung listener."""
    return (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={DEV_KEY};TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )


def measure_hung_tables(
    fixture: BenchFixture,
    *,
    threads: int = 8,
    budget_s: float = 45.0,
    table_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Requests against a dev host whose Table Storage hangs: when the first fast 503 came.

    ``table_options`` replaces the app's table client options (timeouts, retries); the default
    is the app's own (``shared.tables.table_service``), i.e. what a deployment would see.
    """
    import requests as http

    from shared.services import Services, set_services
    from shared.settings import Settings
    from tools.testkit.loopback import HungServer

    # A real token: the proxy then looks its client up, which needs the (hung) table. The
    # refusals measured before it are still counted in the fixture's shared table: lifted.
    bearer = {"Authorization": f"Bearer {_token_for(Services(_unthrottled(fixture)), fixture)}"}
    admin = {"x-functions-key": ""}
    records: list[tuple[float, float, int]] = []  # (started, took, status)
    lock = threading.Lock()
    with _quiet_warnings(), HungServer() as hung:
        env = {"EHRB_TABLES_CONNECTION_STRING": hung_connection_string(hung.port)}
        with devhost_for(fixture, extra_env=env) as base_url:
            settings = Settings.from_env()
            admin["x-functions-key"] = settings.local_admin_key
            if table_options is not None:
                from azure.data.tables import TableServiceClient

                service = TableServiceClient.from_connection_string(
                    hung_connection_string(hung.port), **table_options
                )
                set_services(Services(settings, table_service=service))
            token_form = {
                "grant_type": "client_credentials",
                "scope": fixture.tenant_id,
                "client_id": fixture.client_id,
                "client_secret": fixture.client_secret,
            }
            calls = [
                ("GET", "/api/health", None, {}),
                ("POST", "/api/oauth2/token", token_form, {}),
                ("GET", "/api/manage/clients", None, admin),
                ("GET", "/api/fhir/r4/Patient/example", None, bearer),
            ]
            origin = time.perf_counter()
            deadline = origin + budget_s
            first_fast: list[float] = []

            def worker(offset: int) -> None:
                with http.Session() as session:
                    n = offset
                    while time.perf_counter() < deadline and not first_fast:
                        method, path, data, headers = calls[n % len(calls)]
                        n += 1
                        began = time.perf_counter()
                        try:
                            status = session.request(
                                method, base_url + path, data=data, headers=headers, timeout=60
                            ).status_code
                        except http.RequestException:
                            status = 0
                        took = time.perf_counter() - began
                        with lock:
                            records.append((began - origin, took, status))
                            if status == 503 and took < FAST_SECONDS and not first_fast:
                                first_fast.append(began + took - origin)

            pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
            for thread in pool:
                thread.start()
            for thread in pool:
                thread.join(timeout=budget_s + 90)
            # Once open: a burst of each call, all answered without the store.
            fast: list[float] = []
            if first_fast:
                with http.Session() as session:
                    for n in range(40):
                        method, path, data, headers = calls[n % len(calls)]
                        began = time.perf_counter()
                        session.request(
                            method, base_url + path, data=data, headers=headers, timeout=60
                        )
                        fast.append(time.perf_counter() - began)
        store_calls = hung.accepted
    slow = [took for _, took, _ in records if took >= FAST_SECONDS]
    return {
        "threads": threads,
        "first_fast_503_s": first_fast[0] if first_fast else None,
        "requests_before": len(records),
        "slowest_s": max(slow, default=0.0),
        "store_calls": store_calls,
        "open_p50_ms": percentile(fast, 0.5) * 1000 if fast else None,
        "statuses": sorted({status for _, _, status in records}),
    }


def print_dos(memory: dict[str, Any], refusals: dict[str, Any], hung: dict[str, Any]) -> None:
    """The three figures, as ``make bench`` prints them."""
    print("Denial of service (anonymous callers; loopback; per instance)")
    growth = memory["growth_mib"]
    statuses = ", ".join(f"{n}× {s}" for s, n in sorted(memory["statuses"].items()))
    print(
        f"  {memory['requests']:,} refused {memory['body_bytes'] / MIB:.0f} MiB proxy POSTs with "
        f"random bearer tokens through the dev host ({statuses}; {memory['seconds']:.1f} s)"
    )
    if growth is None:
        print("    resident set: not measurable here (no /proc)")
    else:
        print(
            _table(
                ("resident set", "before", "after", "growth"),
                [
                    (
                        "dev host + client process",
                        f"{memory['rss_before_mib']:.0f} MiB",
                        f"{memory['rss_after_mib']:.0f} MiB",
                        f"{growth:+.0f} MiB",
                    )
                ],
                indent="    ",
            )
        )
    print(
        f"  Token endpoint refusals, in-process, {refusals['requests']:,} each, interleaved "
        "(failure limits lifted):"
    )
    print(
        _table(
            ("client_id", "p50", "p99"),
            [
                (
                    "unknown (a new random id each time)",
                    f"{refusals['unknown_p50_us']:.0f} µs",
                    f"{refusals['unknown_p99_us']:.0f} µs",
                ),
                (
                    "  the last 1,000 of them",
                    f"{refusals['unknown_last_p50_us']:.0f} µs",
                    "",
                ),
                (
                    "known, wrong secret",
                    f"{refusals['known_wrong_p50_us']:.0f} µs",
                    f"{refusals['known_wrong_p99_us']:.0f} µs",
                ),
            ],
            indent="    ",
        )
    )
    first = hung["first_fast_503_s"]
    print(
        f"  Table Storage hung (accepts, never answers; the app's SDK timeouts), "
        f"{hung['threads']} client threads cycling health, token, manage and proxy:"
    )
    if first is None:
        print(f"    no fast 503 within the budget ({hung['requests_before']} requests)")
        return
    print(
        f"    first fast 503 after {first:.1f} s ({hung['requests_before']} requests before it; "
        f"the slowest waited {hung['slowest_s']:.1f} s, queued behind a hung worker)"
    )
    print(
        f"    then every call answers 503 + Retry-After at once: p50 {hung['open_p50_ms']:.1f} ms; "
        f"attempts that ever reached the hung endpoint: {hung['store_calls']} (3 per call)"
    )
