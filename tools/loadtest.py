"""``make loadtest`` and ``make soak``: three app instances behind a round-robin front, under load.

Development only, loopback only. One Azurite, fake FHIR providers (``tools/testkit/fake_fhir``),
three dev hosts serving ``function_app`` as three processes (three instances: each has its own
memory, and what they share goes through Table Storage and the local secret file), nginx from
Debian's packages in front of them (round robin), and locust driving the Patients app's mix for
many tenants and clients (``tools/loadtest_locust.py``). It prints throughput, latency
percentiles per call, errors by kind and each instance's resident memory at start and end.

``--soak`` runs longer with faults: Azurite paused for 10 s, one provider dropping connections,
one slow past the read timeout. It checks that answers during each fault are 502, 503 or 504,
that nothing else fails outside the faults (give or take the recovery the settings allow), that
every instance answers again by itself, that every acknowledged write is in the store, and that
memory stays flat; it exits 1 when one of these does not hold.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tools.azurite import azurite_process, free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = ROOT / "tools" / "loadtest_locust.py"
FACES = ("stu3", "stu3", "stu3", "dstu2")  # the app's two code paths, STU3 the more common
PROVIDERS = (("r4", "r4-a"), ("r4", "r4-b"), ("stu3", "stu3-a"), ("dstu2", "dstu2-a"))
SOAK_SETTINGS = {
    # Short enough that a 10 s pause of Table Storage shows, and recovery happens in the run.
    "EHRB_CACHE_TTL_SECONDS": "5",
    "EHRB_STORE_CIRCUIT_OPEN_SECONDS": "3",
    "EHRB_CIRCUIT_OPEN_SECONDS": "5",
    "EHRB_UPSTREAM_READ_TIMEOUT_SECONDS": "2",
}
FAULT_KINDS = frozenset({"502", "503", "504"})
RECOVERY_GRACE_SECONDS = 20.0
"""After a fault ends: the cache TTL, the breakers' pause and one request's timeouts."""
MEMORY_GROWTH_LIMIT_MIB = 8.0
"""Growth allowed over the second half of the run, once caches and pools have filled."""
MEMORY_SAMPLE_SECONDS = 5.0


@dataclass
class Fault:
    """One injected fault: what, and when it began and ended (wall clock)."""

    name: str
    began: float = 0.0
    ended: float = 0.0


@dataclass
class Stack:
    """What one run started."""

    base_url: str
    connection: str
    secrets_path: Path
    azurite: subprocess.Popen[bytes]
    instances: list[subprocess.Popen[bytes]]
    instance_urls: list[str]
    providers: list[Any]
    plan: dict[str, Any]
    faults: list[Fault] = field(default_factory=list)


# -- pure helpers (tested in tests/unit/test_loadtest.py) ------------------------------------


def nginx_config(workdir: Path, port: int, upstreams: Sequence[int]) -> str:
    """An nginx.conf: loopback only, round robin over ``upstreams``, no caching, no retries."""
    servers = "\n".join(f"        server 127.0.0.1:{p};" for p in upstreams)
    return f"""worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/nginx-body;
    proxy_temp_path {workdir}/nginx-proxy;
    fastcgi_temp_path {workdir}/nginx-fastcgi;
    uwsgi_temp_path {workdir}/nginx-uwsgi;
    scgi_temp_path {workdir}/nginx-scgi;
    client_max_body_size 2m;
    upstream app {{
{servers}
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_read_timeout 120s;
            # A request goes to one instance: a retry elsewhere would hide what each answers.
            proxy_next_upstream off;
        }}
    }}
}}
"""


def read_stats(path: Path) -> list[dict[str, Any]]:
    """Locust's ``_stats.csv``: one row per call name, and the "Aggregated" row last."""
    rows = []
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if not row.get("Name"):
                continue
            rows.append(
                {
                    "name": row["Name"],
                    "requests": int(row["Request Count"]),
                    "failures": int(row["Failure Count"]),
                    "rps": float(row["Requests/s"]),
                    "p50": _ms(row.get("50%")),
                    "p95": _ms(row.get("95%")),
                    "p99": _ms(row.get("99%")),
                    "max": _ms(row.get("Max Response Time")),
                }
            )
    return rows


def _ms(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "", "N/A") else None
    except ValueError:
        return None


def read_events(path: Path) -> list[dict[str, Any]]:
    """The failures the locustfile recorded, one JSON object a line."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def judge_failures(
    events: Sequence[dict[str, Any]], faults: Sequence[Fault], grace: float
) -> tuple[Counter[str], Counter[str], list[str]]:
    """(kinds during faults, kinds outside them, problems): a failure inside a fault's window
    (plus ``grace`` after it) must be 502, 503 or 504; outside every window, none is expected."""
    during: Counter[str] = Counter()
    outside: Counter[str] = Counter()
    for event in events:
        inside = any(f.began <= event["t"] <= f.ended + grace for f in faults)
        (during if inside else outside)[event["kind"]] += 1
    problems = [
        f"{count} answer(s) {kind} during a fault (expected 502, 503 or 504)"
        for kind, count in sorted(during.items())
        if kind not in FAULT_KINDS
    ]
    problems += [
        f"{count} failure(s) {kind} outside the faults" for kind, count in sorted(outside.items())
    ]
    return during, outside, problems


def rss_mib(pid: int) -> float:
    """Resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain text table, right-aligned numbers."""
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True))]
    for row in rows:
        cells = [
            str(c).rjust(w) if i else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells))
    return "\n".join("  " + line for line in lines)


# -- the stack ---------------------------------------------------------------------------------


def _nginx() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        raise SystemExit(
            "loadtest: nginx is not installed (apt-get install nginx; make loadtest does it)"
        )
    return found


def _environment(
    connection: str, secrets_path: Path, base_url: str, admin_key: str, soak: bool
) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("EHRB_", "WEBSITE_", "AZURE_", "FUNCTIONS_", "CONTAINER_"))
    }
    env.update(
        {
            "EHRB_SECRET_STORE": "local",
            "EHRB_LOCAL_SECRETS_PATH": str(secrets_path),
            "EHRB_TABLES_CONNECTION_STRING": connection,
            "EHRB_TABLES_ENDPOINT": "",
            "EHRB_LOCAL_ADMIN_KEY": admin_key,
            "EHRB_PUBLIC_BASE_URL": base_url,
            "EHRB_ALLOW_INSECURE_PROVIDER_URLS": "true",
            "EHRB_SANDBOX_ENABLED": "true",
            "EHRB_DEMO_PROVIDER_URL": "",
            "PYTHON_THREADPOOL_THREAD_COUNT": "16",
        }
    )
    if soak:
        env.update(SOAK_SETTINGS)
    return env


def _seed(
    connection: str,
    secrets_path: Path,
    base_url: str,
    providers: list[Any],
    tenants: int,
    clients: int,
) -> dict[str, Any]:
    """Clients, tenants mapped to the providers, the sandbox key and a writer tenant; the plan."""
    from shared.auth.signing_keys import ensure_signing_key
    from shared.proxy.auth_kinds import AuthKind
    from shared.sandbox.access import ensure_sandbox_key, share_sandbox_key
    from shared.services import Services
    from shared.settings import Settings
    from shared.tables import ensure_tables
    from shared.tenants import TenantMapping

    settings = Settings(
        secret_store="local",  # noqa: S106 - a store kind, not a secret
        local_secrets_path=str(secrets_path),
        tables_connection_string=connection,
        allow_insecure_provider_urls=True,
    )
    services = Services(settings)
    ensure_tables(services.table_service)
    ensure_signing_key(services.secret_store, settings.token_algorithm)
    ensure_sandbox_key(services.secret_store)
    issued = [services.clients.register(f"Patients app {n}") for n in range(clients)]
    patients = {p.base_url: _patients(p.base_url) for p in providers}
    seats = []
    for n in range(tenants):
        provider = providers[n % len(providers)]
        client = issued[n % len(issued)]
        tenant_id = str(uuid.uuid4())
        services.tenants.put(
            TenantMapping(
                tenant_id=tenant_id,
                provider_base_url=provider.base_url,
                provider_fhir_version=provider.version,
                allowed_client_ids=(client.client.client_id,),
                display_name=f"Hospital {n}",
            )
        )
        patient_id, _ = patients[provider.base_url][n % len(patients[provider.base_url])]
        seats.append(
            {
                "tenant_id": tenant_id,
                "client_id": client.client.client_id,
                "client_secret": client.secret,
                "face": FACES[n % len(FACES)],
                "patient_id": patient_id,
                "provider": provider.base_url,
            }
        )
    writer_client = services.clients.register("Soak writer")
    # Writes need a write scope as well as the tenant's allow_writes (docs/security.md table N).
    services.clients.update(
        writer_client.client.client_id,
        allowed_scopes=["system/Patient.crs"],
        default_scopes=["system/Patient.crs"],
    )
    writer_tenant = str(uuid.uuid4())
    services.tenants.put(
        TenantMapping(
            tenant_id=writer_tenant,
            provider_base_url=f"{base_url}/api/sandbox/fhir",
            provider_fhir_version="r4",
            provider_auth_kind=AuthKind.BEARER,
            allowed_client_ids=(writer_client.client.client_id,),
            allow_writes=True,
            display_name="Sandbox (soak writes)",
        )
    )
    share_sandbox_key(services.secret_store, writer_tenant)
    families = sorted({family for found in patients.values() for _, family in found if family})
    return {
        "seats": seats,
        "families": families or ["Chalmers"],
        "writer": {
            "tenant_id": writer_tenant,
            "client_id": writer_client.client.client_id,
            "client_secret": writer_client.secret,
        },
    }


def _patients(base_url: str) -> list[tuple[str, str]]:
    """(id, family) of the patients a provider holds."""
    bundle = requests.get(f"{base_url}/Patient", params={"_count": "50"}, timeout=10).json()
    found = []
    for entry in bundle.get("entry", []):
        resource = entry.get("resource", {})
        names = resource.get("name") or [{}]
        family = names[0].get("family")
        found.append((resource["id"], family if isinstance(family, str) else (family or [""])[0]))
    return found or [("example", "Chalmers")]


@contextlib.contextmanager
def running_stack(
    workdir: Path, *, instances: int, tenants: int, clients: int, soak: bool
) -> Iterator[Stack]:
    """Azurite, providers, seeded data, ``instances`` dev hosts and nginx; stopped on exit."""
    from tools.testkit.fake_fhir import FakeFhirServer

    nginx = _nginx()
    front = free_port()
    base_url = f"http://127.0.0.1:{front}"
    admin_key = secrets.token_urlsafe(32)
    secrets_path = workdir / "secrets.json"
    with contextlib.ExitStack() as stack:
        (workdir / "azurite").mkdir()
        azurite, connection = stack.enter_context(azurite_process(workdir / "azurite"))
        providers = []
        for version, _ in PROVIDERS:
            server = FakeFhirServer(version=version).start()
            stack.callback(server.stop)
            providers.append(server)
        plan = _seed(connection, secrets_path, base_url, providers, tenants, clients)
        env = _environment(connection, secrets_path, base_url, admin_key, soak)
        ports = [free_port() for _ in range(instances)]
        processes = []
        for port in ports:
            log = (workdir / f"instance-{port}.log").open("wb")
            stack.callback(log.close)
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tools.devhost",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--quiet",
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            stack.callback(_stop, process)
            processes.append(process)
        for port in ports:
            wait_for_port(port, timeout=60)
        (workdir / "nginx.conf").write_text(nginx_config(workdir, front, ports))
        front_process = subprocess.Popen(
            [nginx, "-p", str(workdir), "-c", str(workdir / "nginx.conf"), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        stack.callback(_stop, front_process)
        wait_for_port(front, timeout=20)
        yield Stack(
            base_url,
            connection,
            secrets_path,
            azurite,
            processes,
            [f"http://127.0.0.1:{p}" for p in ports],
            providers,
            plan,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- a run -------------------------------------------------------------------------------------


def _warm(stack: Stack) -> None:
    """Every instance answers a token and a proxied read before memory is measured."""
    seat = stack.plan["seats"][0]
    for url in stack.instance_urls:
        for _ in range(3):
            token = requests.post(
                f"{url}/api/oauth2/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": seat["client_id"],
                    "client_secret": seat["client_secret"],
                    "scope": seat["tenant_id"],
                },
                timeout=30,
            )
            token.raise_for_status()
            headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
            requests.get(
                f"{url}/api/fhir/{seat['face']}/Patient/{seat['patient_id']}",
                headers=headers,
                timeout=30,
            ).raise_for_status()


def _faults(stack: Stack, duration: float, stop: threading.Event) -> None:
    """The soak's timeline: Azurite paused, a provider dropping connections, one slow."""
    dropping, slow = stack.providers[0], stack.providers[2]
    began = time.time()
    timeline = [
        (0.2, "Table Storage (Azurite) paused 10 s", 10.0),
        (0.45, f"provider {PROVIDERS[0][1]} drops every connection", 15.0),
        (0.65, f"provider {PROVIDERS[2][1]} answers after 3 s (read timeout 2 s)", 15.0),
    ]
    for fraction, name, seconds in timeline:
        if stop.wait(max(0.0, began + fraction * duration - time.time())):
            return
        fault = Fault(name, began=time.time())
        stack.faults.append(fault)
        if name.startswith("Table Storage"):
            os.kill(stack.azurite.pid, signal.SIGSTOP)
            stop.wait(seconds)
            os.kill(stack.azurite.pid, signal.SIGCONT)
        elif "drops" in name:
            dropping.drop(times=100_000)
            stop.wait(seconds)
            dropping.clear_faults()
        else:
            slow.slow(3.0, times=100_000)
            stop.wait(seconds)
            slow.clear_faults()
        fault.ended = time.time()


def _locust(
    stack: Stack, workdir: Path, *, users: int, rate: float, duration: int, soak: bool
) -> Path:
    prefix = workdir / "locust"
    env = {
        **os.environ,
        "EHRB_LOADTEST_PLAN": str(workdir / "plan.json"),
        "EHRB_LOADTEST_EVENTS": str(workdir / "events.jsonl"),
        "EHRB_LOADTEST_WRITES": str(workdir / "writes.jsonl") if soak else "",
    }
    (workdir / "plan.json").write_text(json.dumps(stack.plan))
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--users",
        str(users),
        "--spawn-rate",
        str(rate),
        "--run-time",
        f"{duration}s",
        "--host",
        stack.base_url,
        "--csv",
        str(prefix),
        "--only-summary",
        "--stop-timeout",
        "10",
        "--loglevel",
        "ERROR",
    ]
    subprocess.run(
        command,
        cwd=ROOT,
        env=env,
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "locust.log").open("wb"),
    )
    return prefix


def _recovered(stack: Stack, deadline: float) -> dict[str, float | None]:
    """Seconds until each instance answered a proxied read of every provider's tenant again."""
    seats = {seat["provider"]: seat for seat in stack.plan["seats"]}.values()
    began = time.time()
    result: dict[str, float | None] = {}
    for url in stack.instance_urls:
        result[url] = None
        while time.time() < deadline:
            if all(_answers(url, seat) for seat in seats):
                result[url] = time.time() - began
                break
            time.sleep(0.5)
    return result


def _answers(url: str, seat: dict[str, Any]) -> bool:
    try:
        token = requests.post(
            f"{url}/api/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": seat["client_id"],
                "client_secret": seat["client_secret"],
                "scope": seat["tenant_id"],
            },
            timeout=10,
        )
        if token.status_code != 200:
            return False
        read = requests.get(
            f"{url}/api/fhir/{seat['face']}/Patient/{seat['patient_id']}",
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
            timeout=10,
        )
        return read.status_code == 200
    except requests.RequestException:
        return False


def _writes_kept(stack: Stack, workdir: Path) -> tuple[int, list[str]]:
    """(acknowledged writes, those not in the store)."""
    from shared.sandbox.errors import ResourceNotFound
    from shared.services import Services
    from shared.settings import Settings

    services = Services(
        Settings(
            secret_store="local",  # noqa: S106 - a store kind, not a secret
            local_secrets_path=str(stack.secrets_path),
            tables_connection_string=stack.connection,
        )
    )
    acknowledged = read_events(workdir / "writes.jsonl")
    missing = []
    for write in acknowledged:
        try:
            stored = services.sandbox_store.read("Patient", write["id"])
        except ResourceNotFound:
            missing.append(write["id"])
            continue
        if stored["name"][0]["family"] != write["family"]:
            missing.append(write["id"])
    return len(acknowledged), missing


def main(argv: list[str] | None = None) -> int:
    """Run the load test (or the soak) and print its figures."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.loadtest", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--users", type=int, default=40, help="simulated Patients apps")
    parser.add_argument("--spawn-rate", type=float, default=20.0)
    parser.add_argument("--duration", type=int, default=None, help="seconds (60; soak 180)")
    parser.add_argument("--tenants", type=int, default=24)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--soak", action="store_true", help="run longer, with faults")
    args = parser.parse_args(argv)
    duration = args.duration or (180 if args.soak else 60)
    with tempfile.TemporaryDirectory(prefix="ehrb-loadtest-") as folder:
        workdir = Path(folder)
        print(
            f"EHR Bridge {'soak' if args.soak else 'load test'}: {args.instances} instances behind "
            f"nginx (round robin), one Azurite, {len(PROVIDERS)} fake providers, "
            f"{args.tenants} tenants, {args.clients} clients, {args.users} users, {duration} s; "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        with running_stack(
            workdir,
            instances=args.instances,
            tenants=args.tenants,
            clients=args.clients,
            soak=args.soak,
        ) as stack:
            _warm(stack)
            start = {p.pid: rss_mib(p.pid) for p in stack.instances}
            stop = threading.Event()
            injector = threading.Thread(target=_faults, args=(stack, duration, stop), daemon=True)
            if args.soak:
                injector.start()
            samples: list[dict[int, float]] = []
            sampler = threading.Thread(
                target=_sample_memory, args=(stack, samples, stop), daemon=True
            )
            sampler.start()
            began = time.time()
            prefix = _locust(
                stack,
                workdir,
                users=args.users,
                rate=args.spawn_rate,
                duration=duration,
                soak=args.soak,
            )
            elapsed = time.time() - began
            stop.set()
            sampler.join()
            if args.soak:
                injector.join()
            recovered = _recovered(stack, time.time() + 60) if args.soak else {}
            end = {p.pid: rss_mib(p.pid) for p in stack.instances}
            kept = _writes_kept(stack, workdir) if args.soak else (0, [])
            half = samples[len(samples) // 2] if samples else start
            return _report(
                args, stack, workdir, prefix, elapsed, (start, half, end), recovered, kept
            )


def _sample_memory(stack: Stack, samples: list[dict[int, float]], stop: threading.Event) -> None:
    """Every instance's resident memory every few seconds while the load runs."""
    while not stop.wait(MEMORY_SAMPLE_SECONDS):
        samples.append({p.pid: rss_mib(p.pid) for p in stack.instances})


def _report(
    args: argparse.Namespace,
    stack: Stack,
    workdir: Path,
    prefix: Path,
    elapsed: float,
    memory: tuple[dict[int, float], dict[int, float], dict[int, float]],
    recovered: dict[str, float | None],
    kept: tuple[int, list[str]],
) -> int:
    start, half, end = memory
    stats_path = Path(f"{prefix}_stats.csv")
    if not stats_path.exists():
        print((workdir / "locust.log").read_text(errors="replace")[-3000:])
        print("loadtest: locust wrote no statistics")
        return 1
    stats = read_stats(stats_path)
    rows = [
        (
            s["name"],
            f"{s['requests']:,}",
            f"{s['rps']:.1f}",
            _fmt(s["p50"]),
            _fmt(s["p95"]),
            _fmt(s["p99"]),
            _fmt(s["max"]),
            f"{s['failures']:,}",
        )
        for s in stats
    ]
    print()
    print(f"Throughput and latency per call ({elapsed:.0f} s through nginx; ms)")
    print(table(("call", "requests", "req/s", "p50", "p95", "p99", "max", "failed"), rows))
    events = read_events(workdir / "events.jsonl")
    problems: list[str] = []
    print()
    if args.soak:
        during, outside, problems = judge_failures(events, stack.faults, RECOVERY_GRACE_SECONDS)
        print("Faults injected")
        print(
            table(
                ("fault", "from (s)", "for (s)"),
                [
                    (f.name, f"{f.began - stack.faults[0].began:.0f}", f"{f.ended - f.began:.0f}")
                    for f in stack.faults
                ],
            )
        )
        print()
        print("Errors by kind")
        kinds = sorted(set(during) | set(outside))
        print(
            table(
                ("kind", "during faults", "outside"),
                [(k, str(during[k]), str(outside[k])) for k in kinds] or [("none", "0", "0")],
            )
        )
    else:
        kinds_all = Counter(event["kind"] for event in events)
        print("Errors by kind")
        print(
            table(
                ("kind", "count"),
                [(k, str(v)) for k, v in sorted(kinds_all.items())] or [("none", "0")],
            )
        )
    print()
    print("Resident memory per instance (MiB): after warm-up, half-way, at the end")
    memory_rows = []
    for process, url in zip(stack.instances, stack.instance_urls, strict=True):
        pid = process.pid
        late = end[pid] - half[pid]
        memory_rows.append(
            (url, f"{start[pid]:.1f}", f"{half[pid]:.1f}", f"{end[pid]:.1f}", f"{late:+.1f}")
        )
        if args.soak and late > MEMORY_GROWTH_LIMIT_MIB:
            problems.append(
                f"{url} grew {late:.1f} MiB in the second half "
                f"(limit {MEMORY_GROWTH_LIMIT_MIB:.0f} MiB)"
            )
    print(table(("instance", "start", "half-way", "end", "second half"), memory_rows))
    if args.soak:
        print()
        print("Recovery after the faults (every instance, every provider's tenant)")
        print(
            table(
                ("instance", "answering again after"),
                [(u, "never" if s is None else f"{s:.1f} s") for u, s in recovered.items()],
            )
        )
        problems += [f"{u} did not recover" for u, s in recovered.items() if s is None]
        acknowledged, missing = kept
        print()
        print(f"Writes: {acknowledged} acknowledged (201), {len(missing)} missing from the store")
        problems += [f"acknowledged write {m} is missing" for m in missing[:10]]
        if acknowledged == 0:
            problems.append("no write was acknowledged: the soak proved nothing about writes")
        print()
        print("Soak: " + ("PASSED" if not problems else "FAILED"))
        for problem in problems:
            print(f"  - {problem}")
    print(f"  load average now {os.getloadavg()[0]:.1f}")
    return 1 if problems else 0


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


if __name__ == "__main__":
    raise SystemExit(main())
