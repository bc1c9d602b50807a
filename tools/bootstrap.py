"""Prepare a local EHR Bridge: settings, tables, a signing key and the demo client and tenant.

Development only; ``make run`` calls it after Azurite is up. Every step is idempotent: a second
run reuses the demo client (and its secret) and the demo tenant, so scripts that read
``.local/demo-credentials.json`` keep working across restarts.
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from shared.routes import face_base_url, token_url
from shared.settings import FACES, Settings
from tools.local_settings import ROOT, apply_local_settings, ensure_local_settings

CREDENTIALS = ROOT / ".local" / "demo-credentials.json"
DEMO_CLIENT_NAME = "Demo Patients app"
DEMO_TENANT_NAME = "Demo hospital"


def _read_credentials(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text("utf-8")))
    except (OSError, ValueError):
        return {}


def _write_credentials(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n", "utf-8")
    temporary.chmod(0o600)
    temporary.replace(path)


def _demo_client(services: Any, previous: dict[str, Any]) -> tuple[str, str]:
    """The demo client's id and a secret that works now (reused when still valid)."""
    from shared.clients import ClientNotFound

    client_id, secret = previous.get("client_id"), previous.get("client_secret")
    if client_id and secret:
        try:
            record = services.clients.get(client_id)
        except ClientNotFound:
            record = None
        if record is not None:
            if not record.enabled:
                services.clients.update(client_id, enabled=True)
            usable = services.directory.client_secrets(client_id, refresh=True)
            if any(
                hmac.compare_digest(s.value.encode(), secret.encode()) and s.properties.is_usable()
                for s in usable
            ):
                return client_id, secret
            return client_id, services.clients.rotate_secret(client_id).secret
    issued = services.clients.register(DEMO_CLIENT_NAME)
    return issued.client.client_id, issued.secret


def _demo_tenant(services: Any, previous: dict[str, Any], client_id: str, provider: str) -> str:
    from shared.tenants import parse_mapping

    tenant_id = previous.get("tenant_id") or str(uuid.uuid4())
    mapping = parse_mapping(
        tenant_id,
        {
            "display_name": DEMO_TENANT_NAME,
            "provider_base_url": provider,
            "provider_fhir_version": "r4",
            "allowed_client_ids": [client_id],
        },
        allow_insecure=services.settings.allow_insecure_provider_urls,
        client_exists=lambda _: True,
    )
    services.tenants.put(mapping)
    return mapping.tenant_id


def seed(origin: str = "http://127.0.0.1:7071", credentials_path: Path = CREDENTIALS) -> dict:
    """Create tables, a signing key, the demo client and tenant; write the credentials file."""
    from shared.services import Services
    from shared.signing_keys import ensure_signing_key
    from shared.tables import ensure_tables

    settings = Settings.from_env()
    services = Services(settings)
    ensure_tables(services.table_service)
    ensure_signing_key(services.secret_store, settings.token_algorithm)
    previous = _read_credentials(credentials_path)
    client_id, secret = _demo_client(services, previous)
    provider = os.environ.get("EHRB_DEMO_PROVIDER_URL", "http://127.0.0.1:8080/fhir")
    tenant_id = _demo_tenant(services, previous, client_id, provider)
    document = {
        "faces": {face: face_base_url(origin, face) for face in FACES},
        "token_url": token_url(origin),
        "tenant_id": tenant_id,
        "client_id": client_id,
        "client_secret": secret,
        "admin_key": settings.local_admin_key,
    }
    _write_credentials(credentials_path, document)
    return document


def walkthrough(credentials: dict[str, Any], path: Path = CREDENTIALS) -> str:
    """A few curl lines to try the running stack."""
    stu3 = credentials["faces"]["stu3"]
    base = stu3.rsplit("/fhir/", 1)[0]
    return "\n".join(
        [
            f"EHR Bridge is running. Credentials: {path.relative_to(ROOT)}",
            "",
            "  # metadata (no token needed)",
            f"  curl -s {stu3}/metadata | head -c 400; echo",
            "  # a token for the demo tenant",
            f"  CREDS={path.relative_to(ROOT)}",
            f'  curl -s -u "$(jq -r .client_id $CREDS):$(jq -r .client_secret $CREDS)" '
            f"-d grant_type=client_credentials -d scope=$(jq -r .tenant_id $CREDS) "
            f"{credentials['token_url']}",
            "  # the management API (admin key)",
            f'  curl -s -H "x-functions-key: $(jq -r .admin_key $CREDS)" {base}/manage/tenants',
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """``settings`` creates local.settings.json; ``seed`` also prepares storage and demo data."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("step", choices=["settings", "seed"])
    parser.add_argument("--origin", default="http://127.0.0.1:7071")
    args = parser.parse_args(argv)
    ensure_local_settings()
    if args.step == "settings":
        return 0
    apply_local_settings()
    credentials = seed(args.origin)
    print(walkthrough(credentials))
    return 0


if __name__ == "__main__":
    sys.exit(main())
