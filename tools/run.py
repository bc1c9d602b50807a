"""``make run``: Azurite, the demo seed and the dev host, in the foreground until Ctrl-C.

Development only. Azurite keeps its data in ``.local/azurite`` so the demo client, tenant and
secrets survive restarts; an Azurite already listening on the table port is reused.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tools.local_settings import ROOT, apply_local_settings, ensure_local_settings

AZURITE = ROOT / "node_modules" / ".bin" / "azurite"
DATA = ROOT / ".local" / "azurite"
TABLE_PORT = 10002
HOST, PORT = "127.0.0.1", 7071


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), 0.2):
        return True
    return False


def _wait(port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not _listening(port):
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with code {process.returncode}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not listen on {HOST}:{port} within {timeout:.0f} s")
        time.sleep(0.1)


def main() -> int:
    """Start everything, print the walkthrough, stop everything on Ctrl-C."""
    ensure_local_settings()
    apply_local_settings()
    children: list[subprocess.Popen[bytes]] = []
    if _listening(PORT):
        raise SystemExit(f"port {PORT} is busy: is another dev host or `func start` running?")

    def stop(*_: object) -> None:
        for child in reversed(children):
            if child.poll() is None:
                child.terminate()
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=5)

    signal.signal(signal.SIGTERM, lambda *_: (stop(), sys.exit(0)))
    try:
        if _listening(TABLE_PORT):
            print(f"Reusing the Azurite already listening on {HOST}:{TABLE_PORT}.")
        else:
            DATA.mkdir(parents=True, exist_ok=True)
            azurite = subprocess.Popen(
                [
                    str(AZURITE),
                    "--silent",
                    "--skipApiVersionCheck",
                    "--disableTelemetry",
                    "--location",
                    str(DATA),
                    "--blobHost",
                    HOST,
                    "--queueHost",
                    HOST,
                    "--tableHost",
                    HOST,
                ],
            )
            children.append(azurite)
            _wait(TABLE_PORT, azurite, "Azurite")
        from tools.bootstrap import CREDENTIALS, seed, walkthrough

        credentials = seed(f"http://{HOST}:{PORT}")
        devhost = subprocess.Popen(
            [sys.executable, "-m", "tools.devhost", "--host", HOST, "--port", str(PORT)],
            cwd=ROOT,
        )
        children.append(devhost)
        _wait(PORT, devhost, "the dev host")
        print(walkthrough(credentials, Path(CREDENTIALS)))
        print("Press Ctrl-C to stop.")
        devhost.wait()
        return devhost.returncode or 0
    except KeyboardInterrupt:
        return 0
    finally:
        stop()


if __name__ == "__main__":
    sys.exit(main())
