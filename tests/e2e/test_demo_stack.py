"""`make run`'s stack, started the way `make run` starts it (tools/run.py), on free ports.

One stack for the module: Azurite (persistent, in a temporary folder), the seed (sandbox with
generated and Synthea patients, demo client and tenant mapped to the sandbox) and the dev host.
The walkthrough it prints is run as printed; the conformance checker runs against its DSTU2 and
STU3 faces; a restart on the same data keeps the credentials and the patients.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.fixtures import synthea_files
from tools.azurite import free_port
from tools.testkit.data import REPO

PATIENTS = 12
START_TIMEOUT = 180.0
CREDENTIAL_KEYS = {"faces", "token_url", "tenant_id", "client_id", "client_secret", "admin_key"}


@dataclass
class Stack:
    """A running `tools.run` and what it printed."""

    process: subprocess.Popen[str]
    output: list[str]
    credentials_path: Path
    port: int

    @property
    def credentials(self) -> dict[str, Any]:
        """The credentials file `make run` wrote."""
        return dict(json.loads(self.credentials_path.read_text("utf-8")))

    def stop(self) -> None:
        """Stop it as Ctrl-C would (SIGTERM to tools.run, which stops its children)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _start(workdir: Path, ports: dict[str, int], env: dict[str, str]) -> Stack:
    credentials = workdir / "demo-credentials.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tools.run",
            "--port",
            str(ports["host"]),
            "--table-port",
            str(ports["table"]),
            "--blob-port",
            str(ports["blob"]),
            "--queue-port",
            str(ports["queue"]),
            "--data-dir",
            str(workdir / "azurite"),
            "--credentials",
            str(credentials),
            "--patients",
            str(PATIENTS),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    deadline = time.monotonic() + START_TIMEOUT
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        output.append(line.rstrip("\n"))
        if line.startswith("Press Ctrl-C"):
            return Stack(process, output, credentials, ports["host"])
    process.kill()
    process.wait()
    pytest.fail("tools.run did not come up:\n" + "\n".join(output[-40:]))


@pytest.fixture(scope="module")
def stack_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict, dict]]:
    workdir = tmp_path_factory.mktemp("demo-stack")
    ports = {name: free_port() for name in ("host", "table", "blob", "queue")}
    env = {
        **os.environ,
        "EHRB_SECRET_STORE": "local",
        "EHRB_LOCAL_SECRETS_PATH": str(workdir / "secrets.json"),
        "EHRB_LOCAL_ADMIN_KEY": secrets.token_urlsafe(32),
        "EHRB_SANDBOX_ENABLED": "true",
        "EHRB_DEMO_PROVIDER_URL": "",
        "EHRB_ALLOW_INSECURE_PROVIDER_URLS": "true",
        "EHRB_PUBLIC_BASE_URL": "",
        "WEBSITE_INSTANCE_ID": "",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("EHRB_TEST_TABLES_CONNECTION_STRING", None)
    yield workdir, ports, env


@pytest.fixture(scope="module")
def stack(stack_env: tuple[Path, dict, dict]) -> Iterator[Stack]:
    running = _start(*stack_env)
    try:
        yield running
    finally:
        running.stop()


def _conformance(stack: Stack, face: str) -> tuple[int, dict[str, Any]]:
    credentials = stack.credentials
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.conformance",
            credentials["faces"][face],
            "--client-id",
            credentials["client_id"],
            "--tenant",
            credentials["tenant_id"],
            "--json",
        ],
        cwd=REPO,
        env={**os.environ, "EHRB_CHECK_CLIENT_SECRET": credentials["client_secret"]},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert credentials["client_secret"] not in result.stdout + result.stderr
    return result.returncode, json.loads(result.stdout)


def test_the_credentials_file_has_exactly_the_documented_keys(stack: Stack):
    credentials = stack.credentials
    assert set(credentials) == CREDENTIAL_KEYS
    origin = f"http://127.0.0.1:{stack.port}"
    assert credentials["faces"] == {
        face: f"{origin}/api/fhir/{face}" for face in ("dstu2", "stu3", "r4")
    }
    assert credentials["token_url"] == f"{origin}/api/oauth2/token"
    assert stack.credentials_path.stat().st_mode & 0o077 == 0


def test_the_stack_says_what_it_loaded_into_the_sandbox(stack: Stack):
    loaded = next(line for line in stack.output if line.startswith("Sandbox: "))
    assert f"Sandbox: {PATIENTS} generated patients ({PATIENTS} loaded now, 0 already there)" in (
        loaded
    )
    bundles = len(synthea_files("r4"))
    assert f"and {bundles} Synthea patients from tools/demo_data/synthea/r4" in loaded
    assert not any(line.startswith("Warning:") for line in stack.output)


def test_the_demo_tenant_is_mapped_to_the_sandbox_with_its_key(stack: Stack):
    credentials = stack.credentials
    answer = requests.get(
        f"http://127.0.0.1:{stack.port}/api/manage/tenants/{credentials['tenant_id']}",
        headers={"x-functions-key": credentials["admin_key"]},
        timeout=10,
    )
    assert answer.status_code == 200
    mapping = answer.json()
    assert mapping["provider_base_url"] == f"http://127.0.0.1:{stack.port}/api/sandbox/fhir"
    assert mapping["provider_auth_kind"] == "bearer"
    assert credentials["client_id"] in mapping["allowed_client_ids"]


def test_the_printed_walkthrough_runs_as_printed(stack: Stack):
    start = next(i for i, line in enumerate(stack.output) if "EHR Bridge is running" in line)
    walkthrough = stack.output[start : stack.output.index("Press Ctrl-C to stop.")]
    commands = [
        line.strip()
        for line in walkthrough
        if line.startswith("  ") and line.strip() and not line.strip().startswith("#")
    ]
    # The exports, metadata, token, search, batch and the checker (the editor is a comment).
    assert len(commands) == 6, stack.output
    script = "set -euo pipefail\n" + "\n".join(commands)
    result = subprocess.run(
        ["bash", "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    outputs = result.stdout
    assert "CapabilityStatement 3.0.2" in outputs
    bundles = [
        json.loads(line) for line in outputs.splitlines() if line.startswith('{"resourceType')
    ]
    search = next(b for b in bundles if b.get("type") == "searchset")
    assert search["total"] >= 1
    batch = next(b for b in bundles if b.get("type") == "batch-response")
    assert [e["response"]["status"][:3] for e in batch["entry"]] == ["200"] * 6
    assert "PASS: every required check passed" in outputs


@pytest.mark.parametrize("face", ["dstu2", "stu3"])
def test_the_conformance_checker_passes_on_the_demo_faces(stack: Stack, face: str):
    code, report = _conformance(stack, face)
    failed = [c for c in report["checks"] if c["level"] == "required" and c["result"] == "fail"]
    assert code == 0, failed
    assert failed == []


@pytest.mark.parametrize("face", ["dstu2", "stu3"])
def test_the_conformance_checker_judges_a_generated_full_chart_on_the_demo_faces(
    stack: Stack, face: str
):
    _, report = _conformance(stack, face)
    # Generated patients have ids p-NNNNNN; the Synthea ones (no coverage) have UUIDs.
    assert [p["id"][:2] for p in report["patients"]] == ["p-"], report["patients"]
    assert report["summary"]["unverified"] == []


def test_synthea_patients_are_served_next_to_the_generated_ones(stack: Stack):
    bundle = json.loads(synthea_files("r4")[0].read_text())
    patient = next(
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    )
    credentials = stack.credentials
    token = requests.post(
        credentials["token_url"],
        data={
            "grant_type": "client_credentials",
            "client_id": credentials["client_id"],
            "client_secret": credentials["client_secret"],
            "scope": credentials["tenant_id"],
        },
        timeout=10,
    ).json()["access_token"]
    answer = requests.post(
        f"{credentials['faces']['stu3']}/Patient/_search",
        data={"_id": patient["id"]},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert answer.status_code == 200
    assert [e["resource"]["id"] for e in answer.json()["entry"]] == [patient["id"]]


def readme_walkthrough() -> list[str]:
    """The README's walkthrough: the shell block that starts with the credentials' exports."""
    readme = (REPO / "README.md").read_text("utf-8")
    blocks = [block.split("```", 1)[0] for block in readme.split("```sh\n")[1:]]
    (block,) = [b for b in blocks if b.startswith('eval "$(.venv/bin/python -m tools.bootstrap')]
    return block.splitlines()


def test_the_readme_walkthrough_runs_as_printed(stack: Stack):
    lines = readme_walkthrough()
    # The one change: the exports come from this stack's credentials file, as the walkthrough
    # `make run` prints says whenever the file is not the default one.
    exports = 'eval "$(.venv/bin/python -m tools.bootstrap env)"'
    assert lines[0].startswith(exports)
    lines[0] = lines[0].replace("env)", f"env --credentials {stack.credentials_path})", 1)
    result = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + "\n".join(lines)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    printed = result.stdout.splitlines()
    assert printed[0] == "CapabilityStatement 3.0.2"
    search = json.loads(printed[1])
    assert search["type"] == "searchset" and search["total"] >= 1
    assert search["entry"][0]["resource"]["name"][0]["family"] == "Romano"
    vitals = json.loads(printed[2])
    assert vitals["type"] == "searchset" and len(vitals["entry"]) == 2
    assert vitals["entry"][0]["resource"]["resourceType"] == "Observation"
    assert "PASS" in printed[-1]


# Last: it stops the module's stack.
def test_a_restart_keeps_the_credentials_and_loads_no_patient_twice(
    stack: Stack, stack_env: tuple[Path, dict, dict]
):
    before = stack.credentials
    stack.stop()
    again = _start(*stack_env)
    try:
        assert again.credentials == before
        printed = "\n".join(again.output)
        assert f"{PATIENTS} generated patients (0 loaded now, {PATIENTS} already there)" in printed
        assert "200" in [
            str(requests.get(f"{before['faces']['stu3']}/metadata", timeout=10).status_code)
        ]
    finally:
        again.stop()
