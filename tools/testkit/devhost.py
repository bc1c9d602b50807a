"""Start the dev host in-process on a free port for tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import azure.functions as func

from tools.devhost import MAX_BODY_BYTES, DevHost


@contextmanager
def running_devhost(
    app: func.FunctionApp,
    *,
    host_json_path: str | os.PathLike[str] | None = None,
    master_key: str | None = None,
    threads: int | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    quiet: bool = True,
) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 at a free port; yield the base URL; shut down on exit.

    ``host_json_path=None`` means host.json defaults (routePrefix "api"); ``master_key=None``
    means the dev host's default, the EHRB_LOCAL_ADMIN_KEY environment variable; ``threads=None``
    means the worker's default pool size.
    """
    # Port 0 lets the kernel pick a free port at bind time, so parallel runs cannot collide.
    with DevHost(
        app,
        host="127.0.0.1",
        port=0,
        host_json_path=host_json_path,
        master_key=master_key,
        threads=threads,
        max_body_bytes=max_body_bytes,
        quiet=quiet,
    ) as host:
        yield host.base_url
