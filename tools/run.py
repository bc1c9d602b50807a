"""``make run``: Azurite, the demo seed (sandbox included) and the dev host, until Ctrl-C.

Development only. Azurite keeps its data in ``.local/azurite`` so the demo client, tenant, sandbox
patients and secrets survive restarts; an Azurite already listening on the table port is reused.
The options exist so that tests can run the very same stack on free ports in a temporary folder.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tools.azurite import connection_string
from tools.local_settings import ROOT, apply_local_settings, ensure_local_settings

AZURITE = ROOT / "node_modules" / ".bin" / "azurite"
DATA = ROOT / ".local" / "azurite"
HOST = "127.0.0.1"
TABLE_PORT, BLOB_PORT, QUEUE_PORT, PORT = 10002, 10000, 10001, 7071


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


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    from tools.bootstrap import CREDENTIALS, DEMO_PATIENTS

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=PORT, help="dev host port")
    parser.add_argument("--table-port", type=int, default=None, help="Azurite table port")
    parser.add_argument("--blob-port", type=int, default=BLOB_PORT)
    parser.add_argument("--queue-port", type=int, default=QUEUE_PORT)
    parser.add_argument("--data-dir", type=Path, default=DATA, help="Azurite's data folder")
    parser.add_argument("--credentials", type=Path, default=CREDENTIALS)
    parser.add_argument("--patients", type=int, default=DEMO_PATIENTS, help="demo patients")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="the dev host's log: -v adds audit events, -vv the Azure SDK's HTTP detail",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Start everything, print the walkthrough, stop everything on Ctrl-C."""
    args = _arguments(argv)
    ensure_local_settings()
    table_port = TABLE_PORT if args.table_port is None else args.table_port
    if args.table_port is not None:
        # An explicit port wins over local.settings.json's connection string.
        os.environ["EHRB_TABLES_CONNECTION_STRING"] = connection_string(table_port, HOST)
    apply_local_settings()
    children: list[subprocess.Popen[bytes]] = []
    if _listening(args.port):
        raise SystemExit(f"port {args.port} is busy: is another dev host or `func start` running?")

    def stop(*_: object) -> None:
        for child in reversed(children):
            if child.poll() is None:
                child.terminate()
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=5)

    def terminate(*_: object) -> None:
        stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, terminate)
    try:
        if _listening(table_port):
            print(f"Reusing the Azurite already listening on {HOST}:{table_port}.")
        else:
            args.data_dir.mkdir(parents=True, exist_ok=True)
            azurite = subprocess.Popen(
                [
                    str(AZURITE),
                    "--silent",
                    "--skipApiVersionCheck",
                    "--disableTelemetry",
                    "--location",
                    str(args.data_dir),
                    "--blobHost",
                    HOST,
                    "--blobPort",
                    str(args.blob_port),
                    "--queueHost",
                    HOST,
                    "--queuePort",
                    str(args.queue_port),
                    "--tableHost",
                    HOST,
                    "--tablePort",
                    str(table_port),
                ],
            )
            children.append(azurite)
            _wait(table_port, azurite, "Azurite")
        from tools.bootstrap import seed, walkthrough

        report: dict[str, object] = {}
        credentials = seed(
            f"http://{HOST}:{args.port}", args.credentials, patients=args.patients, report=report
        )
        devhost = subprocess.Popen(
            [
                *(sys.executable, "-m", "tools.devhost", "--host", HOST, "--port", str(args.port)),
                *(["-" + "v" * args.verbose] if args.verbose else []),
            ],
            cwd=ROOT,
        )
        children.append(devhost)
        _wait(args.port, devhost, "the dev host")
        print(walkthrough(credentials, args.credentials, report))
        print("Press Ctrl-C to stop.", flush=True)
        devhost.wait()
        return devhost.returncode or 0
    except KeyboardInterrupt:
        return 0
    finally:
        stop()


if __name__ == "__main__":
    sys.exit(main())
