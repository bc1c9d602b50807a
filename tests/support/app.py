"""The real FunctionApp: its functions, indexed once per process, its services, and the app
served by the dev host."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from shared.services import Services


@functools.cache
def registered_functions() -> dict[str, Any]:
    """The app's functions by name, as the Functions worker indexes them."""
    import function_app

    # azure-functions 1.26: a second get_functions() on the same app raises "does not have a
    # unique function name", so index once per process.
    return {fn.get_function_name(): fn for fn in function_app.app.get_functions()}


@contextlib.contextmanager
def app_services(azurite: str, folder: Path, **settings: str) -> Iterator[Services]:
    """The services ``function_app`` uses, over ``azurite`` and a local secret store in
    ``folder``, with a signing key; ``settings`` (environment variables) on top of the local ones.

    Process-wide, as in a Functions worker: the environment is restored and the services
    forgotten (their provider connections closed) on exit."""
    from shared.auth.signing_keys import ensure_signing_key
    from shared.services import get_services, set_services
    from shared.tables import ensure_tables
    from tests.conftest import ADMIN_KEY

    local = {
        "EHRB_SECRET_STORE": "local",
        "EHRB_LOCAL_SECRETS_PATH": str(folder / "secrets.json"),
        "EHRB_TABLES_CONNECTION_STRING": azurite,
        "EHRB_LOCAL_ADMIN_KEY": ADMIN_KEY,
        "EHRB_PUBLIC_BASE_URL": "",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**local, **settings}.items():
            patch.setenv(name, value)
        set_services(None)
        services = get_services()
        try:
            ensure_tables(services.table_service)
            ensure_signing_key(services.secret_store, services.settings.token_algorithm)
            yield services
        finally:
            for name in ("proxy", "transport"):
                if name in services.__dict__:
                    services.__dict__[name].close()
            set_services(None)


@contextlib.contextmanager
def served_app() -> Iterator[str]:
    """``function_app`` on the dev host with the repository's host.json; yield its origin."""
    import function_app
    from tests.conftest import ADMIN_KEY
    from tools.testkit.data import REPO
    from tools.testkit.devhost import running_devhost

    with running_devhost(
        function_app.app, host_json_path=REPO / "host.json", master_key=ADMIN_KEY
    ) as origin:
        yield origin
