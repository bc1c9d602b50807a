"""End to end: the conformance checker against EHR Bridge's DSTU2 and STU3 faces on the dev
host, in front of an R4 provider (tests/support/broken_fhir.py, no defects, open to EHR Bridge).

The checker registers nothing itself: it is given the client id, secret and tenant an operator
would give a partner, finds the patient by search, and must pass every required check.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from shared.tenants import TenantMapping
from tests.support.app import app_services, served_app
from tests.support.broken_fhir import PATIENT_ID, AppFhirServer
from tools.conformance import main, run_checks

pytestmark = pytest.mark.e2e

FACES = ("stu3", "dstu2")


@dataclass
class Bridge:
    """The dev host's origin and the credentials a partner would be given."""

    origin: str
    client_id: str
    client_secret: str = field(repr=False)
    tenant_id: str

    def face(self, face: str) -> str:
        return f"{self.origin}/api/fhir/{face}"


@pytest.fixture(scope="module")
def bridge(azurite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bridge]:
    """function_app on the dev host over Azurite, a tenant mapped to an R4 provider."""
    with app_services(
        azurite,
        Path(tmp_path_factory.mktemp("e2e-conformance")),
        EHRB_TOKEN_ISSUER="http://bridge.e2e/api/oauth2",
        EHRB_TOKEN_AUDIENCE="http://bridge.e2e/api/fhir",
        EHRB_ALLOW_INSECURE_PROVIDER_URLS="true",
    ) as services:
        provider = AppFhirServer("r4", protected=False).start()
        try:
            issued = services.clients.register("Conformance partner")
            tenant = TenantMapping(
                tenant_id=str(uuid.uuid4()),
                provider_base_url=provider.base_url,
                provider_fhir_version="r4",
                allowed_client_ids=(issued.client.client_id,),
            )
            services.tenants.put(tenant)
            with served_app() as origin:
                yield Bridge(origin, issued.client.client_id, issued.secret, tenant.tenant_id)
        finally:
            provider.stop()


@pytest.mark.parametrize("face", FACES)
def test_every_required_check_passes_on_the_face(bridge: Bridge, face: str) -> None:
    report = run_checks(
        bridge.face(face),
        client_id=bridge.client_id,
        client_secret=bridge.client_secret,
        tenant=bridge.tenant_id,
        timeout=10,
    )
    assert report.failed_ids("required") == [], report.to_text()
    assert (report.mode, report.exit_code) == (face, 0)
    assert report.check("patient.discover").evidence.startswith(f"Patient/{PATIENT_ID} via POST")
    # The whole chart was judged, not skipped.
    assert report.check("encounter.latest").result == "pass"
    assert report.check("location.read").result == "pass"


@pytest.mark.parametrize("face", FACES)
def test_json_output_parses_and_lists_the_checks(
    bridge: Bridge, face: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [bridge.face(face), "--json", "--client-id", bridge.client_id, "--timeout", "10"],
        environ={
            "EHRB_CHECK_CLIENT_SECRET": bridge.client_secret,
            "EHRB_CHECK_TENANT": bridge.tenant_id,
        },
    )
    out, err = capsys.readouterr()
    document = json.loads(out)
    assert code == 0, err
    assert (document["mode"], document["base_url"]) == (face, bridge.face(face))
    assert document["fhir_version"] == {"dstu2": "1.0.2", "stu3": "3.0.2"}[face]
    results = {c["id"]: c["result"] for c in document["checks"]}
    assert results["token.request"] == results["batch.response"] == "pass"
    assert document["summary"]["required_failed"] == 0
    # No secret, and no access token (EHR Bridge's are JWTs: "eyJ..."), in anything printed.
    assert bridge.client_secret not in out + err
    assert "eyJ" not in out + err
