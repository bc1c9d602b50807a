"""Azurite, Microsoft's Table Storage emulator: its development account, and its table service
on a free loopback port for tests and the bench (the real Table Storage API)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AZURITE_TABLE = ROOT / "node_modules" / ".bin" / "azurite-table"

# Azurite's published development account: a well-known value, not a secret.
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def connection_string(port: int, host: str = "127.0.0.1") -> str:
    """Connection string of the Azurite development account at ``host:port``."""
    return (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={ACCOUNT_KEY};TableEndpoint=http://{host}:{port}/devstoreaccount1;"
    )


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    """Block until something listens on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


@contextlib.contextmanager
def running_azurite(workdir: Path) -> Iterator[str]:
    """Yield the connection string of a fresh in-memory Azurite table service."""
    external = os.environ.get("EHRB_TEST_TABLES_CONNECTION_STRING")
    if external:
        yield external
        return
    with azurite_process(workdir) as (_, connection):
        yield connection


@contextlib.contextmanager
def azurite_process(workdir: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A fresh in-memory Azurite table service: its process (to pause it) and connection string."""
    executable = str(AZURITE_TABLE) if AZURITE_TABLE.exists() else shutil.which("azurite-table")
    if executable is None:
        raise RuntimeError("azurite-table not found: `make deps` installs Azurite from npm")
    port = free_port()
    process = subprocess.Popen(
        [
            executable,
            "--tableHost",
            "127.0.0.1",
            "--tablePort",
            str(port),
            "--inMemoryPersistence",
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--silent",
        ],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield process, connection_string(port)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
