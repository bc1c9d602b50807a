"""Prepare a local EHR Bridge: settings, tables, the signing and assertion keys, the sandbox and
the demo tenant.

Development only; ``make run`` calls it after Azurite is up. Every step is idempotent: a second
run reuses the demo client (and its secret), the demo tenant and the sandbox key, and loads only
the demo patients that are missing (so edits made in the sandbox editor survive a restart), so
scripts that read ``.local/demo-credentials.json`` keep working across restarts.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from shared.routes import face_base_url, sandbox_base_url, token_url
from shared.settings import FACES, Settings
from tools.local_settings import ROOT, apply_local_settings, ensure_local_settings, write_private

CREDENTIALS = ROOT / ".local" / "demo-credentials.json"
DEMO_CLIENT_NAME = "Demo Patients app"
DEMO_TENANT_NAME = "Demo hospital"
DEMO_PATIENTS = 200
DEMO_SEED = 0
# Synthetic patients from Synthea, loaded beside the generated ones (see the folder's README).
SYNTHEA_BUNDLES = ROOT / "tools" / "demo_data" / "synthea" / "r4"


def _read_credentials(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text("utf-8")))
    except (OSError, ValueError):
        return {}


def _write_credentials(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, json.dumps(document, indent=2) + "\n")


def _demo_client(services: Any, previous: dict[str, Any]) -> tuple[str, str]:
    """The demo client's id and a secret that works now (reused when still valid)."""
    from shared.auth.client_auth import verify_client_secret
    from shared.auth.clients import ClientNotFound

    client_id, secret = previous.get("client_id"), previous.get("client_secret")
    if client_id and secret:
        try:
            record = services.clients.get(client_id)
        except ClientNotFound:
            record = None
        if record is not None:
            if not record.enabled:
                services.clients.update(client_id, enabled=True)
            if verify_client_secret(secret, client_id, services.lookups) is not None:
                return client_id, secret
            return client_id, services.clients.rotate_secret(client_id).secret
    issued = services.clients.register(DEMO_CLIENT_NAME)
    return issued.client.client_id, issued.secret


def _demo_tenant(
    services: Any, previous: dict[str, Any], client_id: str, provider: str, *, sandbox: bool
) -> str:
    """Map the demo tenant to ``provider``: the sandbox (with its key) or a URL of your own."""
    from shared.proxy.auth_kinds import AuthKind
    from shared.tenants import parse_mapping

    tenant_id = previous.get("tenant_id") or str(uuid.uuid4())
    body: dict[str, Any] = {
        "display_name": DEMO_TENANT_NAME,
        "provider_base_url": provider,
        "provider_fhir_version": "r4",
        "allowed_client_ids": [client_id],
    }
    if sandbox:
        body["provider_auth_kind"] = AuthKind.BEARER
    mapping = parse_mapping(
        tenant_id,
        body,
        allow_insecure=services.settings.allow_insecure_provider_urls,
        client_exists=lambda _: True,
    )
    if sandbox:
        from shared.sandbox.access import share_sandbox_key

        share_sandbox_key(services.secret_store, mapping.tenant_id)
    services.tenants.put(mapping)
    return mapping.tenant_id


def demo_patients(count: int = DEMO_PATIENTS, seed: int = DEMO_SEED) -> list[list[dict[str, Any]]]:
    """The generated demo patients, each as [Patient, its resources...]."""
    from shared.sandbox.generate import generate_patients

    return list(generate_patients(count, seed))


def seed_sandbox(
    store: Any, *, patients: int = DEMO_PATIENTS, synthea: Path | None = SYNTHEA_BUNDLES
) -> dict[str, Any]:
    """Load the shared resources, the missing demo patients and the Synthea bundles in the
    ``synthea`` folder; a missing or empty folder is a warning in the report, not an error."""
    from shared.sandbox.errors import ResourceNotFound
    from shared.sandbox.generate import generate_shared
    from shared.sandbox.synthea import load_synthea

    def missing(chart: list[dict[str, Any]]) -> bool:
        try:
            store.read("Patient", chart[0]["id"])
        except ResourceNotFound:
            return True
        return False

    started = time.perf_counter()
    charts = demo_patients(patients)
    with ThreadPoolExecutor(max_workers=8) as pool:
        todo = [
            chart for chart, absent in zip(charts, pool.map(missing, charts), strict=True) if absent
        ]
    shared = generate_shared(DEMO_SEED)
    report = store.load([*shared, *(r for chart in todo for r in chart)])
    paths = sorted(synthea.glob("*.json")) if synthea and synthea.is_dir() else []
    synthea_report = load_synthea(store, paths) if paths else None
    warnings = []
    if synthea is not None and not paths:
        warnings.append(
            f"no Synthea bundles in {_shown(synthea)}: only generated patients were loaded "
            "(restore the folder with `git checkout -- tools/demo_data`)"
        )
    return {
        "patients_loaded": len(todo),
        "patients_present": len(charts) - len(todo),
        "resources": sum(report.stored.values()),
        "synthea_patients": (synthea_report.stored.get("Patient", 0) if synthea_report else 0),
        "synthea_source": _shown(synthea) if paths and synthea else None,
        "warnings": warnings,
        "seconds": round(time.perf_counter() - started, 2),
    }


def _shown(path: Path) -> str:
    """``path`` relative to the repository when it is inside it, for messages."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def seed(
    origin: str = "http://127.0.0.1:7071",
    credentials_path: Path = CREDENTIALS,
    *,
    patients: int = DEMO_PATIENTS,
    report: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Create tables, a signing key, the sandbox data, the demo client and tenant.

    Writes the credentials file and returns its document; what the sandbox load did goes into
    ``report`` when one is given. Its changes are audited as the bootstrap's.
    """
    from shared.audit import Actor, acting_as

    with acting_as(Actor("bootstrap", "make run")):
        return _seed(origin, credentials_path, patients=patients, report=report)


def _seed(
    origin: str = "http://127.0.0.1:7071",
    credentials_path: Path = CREDENTIALS,
    *,
    patients: int = DEMO_PATIENTS,
    report: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Create tables, a signing key, the sandbox data, the demo client and tenant.

    Writes the credentials file and returns its document; what the sandbox load did goes into
    ``report`` when one is given.
    """
    from shared.auth.signing_keys import ensure_signing_key
    from shared.ids import ASSERTION_KEY_NAME
    from shared.services import Services
    from shared.tables import ensure_tables

    settings = Settings.from_env()
    services = Services(settings)
    ensure_tables(services.table_service)
    ensure_signing_key(services.secret_store, settings.token_algorithm)
    # The key of the assertions we sign for private_key_jwt providers (oauth2/assertion-jwks).
    ensure_signing_key(
        services.secret_store, settings.assertion_algorithm, secret_name=ASSERTION_KEY_NAME
    )
    previous = _read_credentials(credentials_path)
    client_id, secret = _demo_client(services, previous)
    provider = os.environ.get("EHRB_DEMO_PROVIDER_URL", "").strip()
    sandbox = not provider
    if sandbox:
        if not settings.sandbox_enabled:
            raise SystemExit(
                "EHRB_DEMO_PROVIDER_URL is empty, so the demo tenant needs the sandbox: "
                "set EHRB_SANDBOX_ENABLED=true in local.settings.json"
            )
        provider = sandbox_base_url(origin)
        from shared.sandbox.errors import SandboxError
        from shared.sandbox.migrate import migrate

        try:
            # Data an earlier version loaded into .local/azurite moves to this version's layout.
            migrated = migrate(services.sandbox_store)
            loaded = seed_sandbox(services.sandbox_store, patients=patients)
        except SandboxError as error:
            raise SystemExit(f"loading the sandbox failed: {error}") from None
        if report is not None:
            report.update(loaded)
            if migrated.moved or migrated.located:
                report["migrated"] = {"moved": migrated.moved, "located": migrated.located}
    tenant_id = _demo_tenant(services, previous, client_id, provider, sandbox=sandbox)
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


def shell_exports(credentials: dict[str, Any]) -> str:
    """The demo credentials as ``export`` lines, for ``eval "$(python -m tools.bootstrap env)"``."""
    values = {
        "DSTU2": credentials["faces"]["dstu2"],
        "STU3": credentials["faces"]["stu3"],
        "R4": credentials["faces"]["r4"],
        "TOKEN_URL": credentials["token_url"],
        "TENANT_ID": credentials["tenant_id"],
        "CLIENT_ID": credentials["client_id"],
        "CLIENT_SECRET": credentials["client_secret"],
        "ADMIN_KEY": credentials["admin_key"],
    }
    return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in values.items())


def walkthrough(
    credentials: dict[str, Any], path: Path = CREDENTIALS, report: dict[str, Any] | None = None
) -> str:
    """A short walkthrough: curl lines for metadata, a token, a patient search and a batch."""
    stu3 = credentials["faces"]["stu3"]
    origin = stu3.rsplit("/api/fhir/", 1)[0]
    first = demo_patients(1)[0][0]
    patient_id, family = first["id"], first["name"][0]["family"]
    batch = json.dumps(
        {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [
                {"request": {"method": "GET", "url": url}}
                for url in (
                    f"Observation?patient={patient_id}&category=vital-signs&_sort=-date&_count=8",
                    f"Condition?patient={patient_id}",
                    f"Encounter?patient={patient_id}&_sort=-date&_count=1",
                    f"AllergyIntolerance?patient={patient_id}",
                    f"MedicationRequest?patient={patient_id}",
                    f"Coverage?patient={patient_id}",
                )
            ],
        },
        separators=(",", ":"),
    )
    relative = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    where = "" if path == CREDENTIALS else f" --credentials {shlex.quote(str(path))}"
    loaded = ""
    if report:
        generated = report["patients_loaded"] + report["patients_present"]
        synthea = f"{report['synthea_patients']} Synthea patients"
        if report.get("synthea_source"):
            synthea += f" from {report['synthea_source']}"
        loaded = (
            f"Sandbox: {generated} generated patients ({report['patients_loaded']} loaded now, "
            f"{report['patients_present']} already there) and {synthea} "
            f"({report['seconds']} s)."
        )
        loaded += "".join(f"\nWarning: {warning}" for warning in report.get("warnings", []))
    summary = (
        "python3 -c 'import json,sys; d=json.load(sys.stdin); "
        'print(d["resourceType"], d["fhirVersion"])\''
    )
    read_token = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])'"
    return "\n".join(
        [
            f"EHR Bridge is running on {origin}. Credentials: {relative}",
            loaded,
            "",
            "  # the demo credentials as shell variables ($STU3, $CLIENT_ID, ...)",
            f'  eval "$(.venv/bin/python -m tools.bootstrap env{where})"',
            "  # 1. metadata: no token needed",
            f"  curl -s $STU3/metadata | {summary}",
            "  # 2. a token for the demo tenant, as the Patients app asks for it",
            "  TOKEN=$(curl -s -d grant_type=client_credentials -d client_id=$CLIENT_ID "
            "--data-urlencode client_secret=$CLIENT_SECRET -d scope=$TENANT_ID $TOKEN_URL "
            f"| {read_token})",
            "  # 3. a patient search (STU3 face; the sandbox answers in R4 behind it)",
            f'  curl -s -H "Authorization: Bearer $TOKEN" -d family={family} -d _count=3 '
            "$STU3/Patient/_search; echo",
            "  # 4. the app's chart queries for one patient, as one batch",
            f'  curl -s -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/fhir+json" '
            f"--data '{batch}' $STU3; echo",
            "  # 5. the Patients-app conformance checker against the DSTU2 face",
            "  EHRB_CHECK_CLIENT_SECRET=$CLIENT_SECRET .venv/bin/python -m tools.conformance "
            "$DSTU2 --client-id $CLIENT_ID --tenant $TENANT_ID",
            f"  # the sandbox editor: {origin}/api/sandbox/ui/ (key: "
            ".venv/bin/python -m tools.bootstrap sandbox-key)",
            f"  # the partner console: {origin}/api/console/ (sign in with the admin key: "
            f'"admin_key" in {relative}, the same as EHRB_LOCAL_ADMIN_KEY in local.settings.json)',
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """``settings`` creates local.settings.json; ``seed`` prepares storage and demo data;
    ``env`` prints the demo credentials as shell exports; ``sandbox-key`` prints the key the
    sandbox editor asks for."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("step", choices=["settings", "seed", "env", "sandbox-key"])
    parser.add_argument("--origin", default="http://127.0.0.1:7071")
    parser.add_argument("--credentials", type=Path, default=CREDENTIALS)
    args = parser.parse_args(argv)
    ensure_local_settings()
    if args.step == "settings":
        return 0
    if args.step == "env":
        credentials = _read_credentials(args.credentials)
        if not credentials:
            raise SystemExit(f"{args.credentials} is missing: run `make run` first")
        print(shell_exports(credentials))
        return 0
    apply_local_settings()
    if args.step == "sandbox-key":
        from shared.sandbox.access import ensure_sandbox_key
        from shared.services import build_secret_store

        print(ensure_sandbox_key(build_secret_store(Settings.from_env())))
        return 0
    report: dict[str, Any] = {}
    credentials = seed(args.origin, args.credentials, report=report)
    print(walkthrough(credentials, args.credentials, report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
