"""The real Azure Monitor exporter, in a dev host process, sending to a local ingestion endpoint.

One journey, made once for the module: a client that traces its own work sends the same trace
(``traceparent``) with a token request and with a FHIR read through the proxy to a fake R4
provider. The dev host runs with ``APPLICATIONINSIGHTS_CONNECTION_STRING`` pointing at
``FakeIngestion``; each test reads one thing from what arrived there. A second tenant's call
shows the per-tenant export leaves it out. The export is read back through the Log Analytics
stand-in (``tools/testkit/loganalytics.py``), as the deployed app reads its workspace.

Azure cannot be reached from here: ingestion and the query API are local stand-ins for the
parts of their protocols the app uses (README, "What is verified here").
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from shared.auth.signing_keys import ensure_signing_key
from shared.http import Headers, Request
from shared.services import Services
from shared.settings import Settings
from shared.tables import ensure_tables
from shared.telemetry.context import SpanContext, new_span_id, new_trace_id, parse_traceparent
from shared.tenants import TenantMapping
from tools.azurite import free_port
from tools.testkit.data import REPO
from tools.testkit.fake_fhir import FakeFhirServer, running_fake_fhir
from tools.testkit.ingestion import (
    DEPENDENCY,
    MESSAGE,
    METRIC,
    REQUEST,
    FakeIngestion,
    base_data,
    operation_id,
)
from tools.testkit.loganalytics import WORKSPACE_ID, FakeLogAnalytics, StaticCredential

pytestmark = pytest.mark.e2e

TIMEOUT = 10
ADMIN_KEY = "telemetry-admin-key-" + "x" * 24
PATIENT = "example"
SEARCHED = "zq-patient-4711"  # a patient id no other text contains


@dataclass
class Journey:
    """What the module's calls were, and what they answered."""

    base: str
    trace_id: str
    tenant_id: str
    other_tenant_id: str
    client_id: str
    client_secret: str
    token: str
    provider: FakeFhirServer
    token_answer: requests.Response
    read_answer: requests.Response
    services: Services
    env: dict[str, str]
    extra: dict[str, Any] = field(default_factory=dict)


def _wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the dev host exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the dev host did not listen")


def _traced(trace_id: str) -> dict[str, str]:
    """A traceparent the calling client would send: its own span in ``trace_id``."""
    return {"traceparent": SpanContext(trace_id, new_span_id()).traceparent()}


@pytest.fixture(scope="module")
def ingestion() -> Iterator[FakeIngestion]:
    with FakeIngestion() as server:
        yield server


@pytest.fixture(scope="module")
def journey(
    azurite: str, ingestion: FakeIngestion, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Journey]:
    workdir = Path(tmp_path_factory.mktemp("telemetry"))
    port = free_port()
    env = {
        "EHRB_SECRET_STORE": "local",
        "EHRB_LOCAL_SECRETS_PATH": str(workdir / "secrets.json"),
        "EHRB_TABLES_CONNECTION_STRING": azurite,
        "EHRB_LOCAL_ADMIN_KEY": ADMIN_KEY,
        "EHRB_ALLOW_INSECURE_PROVIDER_URLS": "true",
        "EHRB_PUBLIC_BASE_URL": "",
        "EHRB_LOCAL_AUDIT_PATH": str(workdir / "audit.jsonl"),
    }
    services = Services(Settings.from_env(env))
    ensure_tables(services.table_service)
    ensure_signing_key(services.secret_store, services.settings.token_algorithm)
    issued = services.clients.register("Teams Patients app")
    client_id = issued.client.client_id
    with running_fake_fhir(version="r4") as provider, running_fake_fhir(version="r4") as other:
        tenant_id, other_tenant_id = str(uuid.uuid4()), str(uuid.uuid4())
        for tenant, server in ((tenant_id, provider), (other_tenant_id, other)):
            services.tenants.put(
                TenantMapping(
                    tenant_id=tenant,
                    provider_base_url=server.base_url,
                    provider_fhir_version="r4",
                    allowed_client_ids=(client_id,),
                )
            )
        process_env = {
            **os.environ,
            **env,
            "APPLICATIONINSIGHTS_CONNECTION_STRING": ingestion.connection_string,
            # Metrics are exported every second rather than every minute.
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            "WEBSITE_INSTANCE_ID": "",
            "PYTHONUNBUFFERED": "1",
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "tools.devhost", "--port", str(port)],
            cwd=REPO,
            env=process_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_listening(port, process)
            base = f"http://127.0.0.1:{port}"
            trace_id = new_trace_id()
            token_answer = requests.post(
                f"{base}/api/oauth2/token",
                data={"grant_type": "client_credentials", "scope": tenant_id},
                auth=(client_id, issued.secret),
                headers=_traced(trace_id),
                timeout=TIMEOUT,
            )
            token = token_answer.json()["access_token"]
            read_answer = requests.get(
                f"{base}/api/fhir/r4/Patient/{PATIENT}",
                headers={"Authorization": f"Bearer {token}", **_traced(trace_id)},
                timeout=TIMEOUT,
            )
            # A patient the provider does not have: its id is in the URL path, which the dev
            # host's access log prints, and which must stay out of the exported logs.
            unknown = requests.get(
                f"{base}/api/fhir/r4/Patient/{SEARCHED}",
                headers={"Authorization": f"Bearer {token}", **_traced(trace_id)},
                timeout=TIMEOUT,
            )
            assert unknown.status_code == 404, unknown.text
            # The other tenant: its own token and read, which its export must not show.
            other_token = requests.post(
                f"{base}/api/oauth2/token",
                data={"grant_type": "client_credentials", "scope": other_tenant_id},
                auth=(client_id, issued.secret),
                timeout=TIMEOUT,
            ).json()["access_token"]
            requests.get(
                f"{base}/api/fhir/r4/Patient/{PATIENT}",
                headers={"Authorization": f"Bearer {other_token}"},
                timeout=TIMEOUT,
            )
            yield Journey(
                base=base,
                trace_id=trace_id,
                tenant_id=tenant_id,
                other_tenant_id=other_tenant_id,
                client_id=client_id,
                client_secret=issued.secret,
                token=token,
                provider=provider,
                token_answer=token_answer,
                read_answer=read_answer,
                services=services,
                env=env,
            )
        finally:
            process.terminate()
            process.wait(timeout=20)


def _in_trace(ingestion: FakeIngestion, trace_id: str, base_type: str) -> list[dict[str, Any]]:
    return [e for e in ingestion.envelopes(base_type) if operation_id(e) == trace_id]


def _named(envelopes: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in envelopes if base_data(e).get("name") == name]


def _provider_calls(envelopes: list[dict[str, Any]], tenant_id: str) -> list[dict[str, Any]]:
    """The HTTP dependencies whose target is the tenant's provider (named, not addressed)."""
    return [
        e
        for e in envelopes
        if base_data(e).get("type") == "HTTP"
        and base_data(e).get("target") == f"provider:{tenant_id}"
    ]


def _arrived(ingestion: FakeIngestion, trace_id: str) -> list[dict[str, Any]]:
    """Every envelope of the journey's trace, once the provider's client span is among them."""

    def complete(envelopes: list[dict[str, Any]]) -> bool:
        ours = [e for e in envelopes if operation_id(e) == trace_id]
        return any(base_data(e).get("type") == "HTTP" for e in ours) and any(
            base_data(e).get("name") == "GET fhir_proxy" for e in ours
        )

    ingestion.wait_for(complete)
    return [e for e in ingestion.envelopes() if operation_id(e) == trace_id]


# -- one trace ---------------------------------------------------------------------------------


def test_every_answer_carries_the_callers_trace_id(journey: Journey):
    assert journey.token_answer.headers["X-Trace-Id"] == journey.trace_id
    assert journey.read_answer.headers["X-Trace-Id"] == journey.trace_id


def test_without_its_own_request_id_the_trace_id_is_the_correlation_id(journey: Journey):
    assert journey.read_answer.headers["X-Request-Id"] == journey.trace_id


def test_the_provider_sees_the_same_trace_with_the_proxys_call_as_parent(
    journey: Journey, ingestion: FakeIngestion
):
    sent = parse_traceparent(journey.provider.last().header("traceparent"))
    assert sent is not None and sent.trace_id == journey.trace_id
    _arrived(ingestion, journey.trace_id)
    calls = _provider_calls(_in_trace(ingestion, journey.trace_id, DEPENDENCY), journey.tenant_id)
    assert sent.span_id in {base_data(call)["id"] for call in calls}


def test_the_token_request_and_the_proxy_request_arrive_as_requests_of_one_trace(
    journey: Journey, ingestion: FakeIngestion
):
    _arrived(ingestion, journey.trace_id)
    names = {base_data(e)["name"] for e in _in_trace(ingestion, journey.trace_id, REQUEST)}
    assert names == {"POST oauth_token", "GET fhir_proxy"}


def test_the_proxys_steps_are_spans_of_the_trace(journey: Journey, ingestion: FakeIngestion):
    _arrived(ingestion, journey.trace_id)
    steps = _in_trace(ingestion, journey.trace_id, DEPENDENCY)
    assert {"bearer.verify", "tenant.lookup", "request.translate", "response.convert"} <= {
        base_data(e)["name"] for e in steps
    }
    assert _provider_calls(steps, journey.tenant_id)


def test_the_proxy_request_names_tenant_client_face_interaction_and_status(
    journey: Journey, ingestion: FakeIngestion
):
    _arrived(ingestion, journey.trace_id)
    (proxied,) = [
        e
        for e in _named(_in_trace(ingestion, journey.trace_id, REQUEST), "GET fhir_proxy")
        if base_data(e)["properties"].get("ehrbridge.interaction") == "read"
        and base_data(e)["responseCode"] == "200"
    ]
    properties = base_data(proxied)["properties"]
    assert properties["ehrbridge.tenant_id"] == journey.tenant_id
    assert properties["ehrbridge.client_id"] == journey.client_id
    assert properties["ehrbridge.face"] == "r4"
    assert properties["ehrbridge.interaction"] == "read"
    assert properties["ehrbridge.resource_type"] == "Patient"
    assert base_data(proxied)["responseCode"] == "200"


# -- metrics -----------------------------------------------------------------------------------


def _metric(ingestion: FakeIngestion, name: str, **dimensions: str) -> list[dict[str, Any]]:
    def matching(envelopes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        found = []
        for envelope in envelopes:
            if (envelope.get("data") or {}).get("baseType") != METRIC:
                continue
            data = base_data(envelope)
            if data["metrics"][0]["name"] != name:
                continue
            properties = data.get("properties") or {}
            if all(properties.get(k) == v for k, v in dimensions.items()):
                found.append(data)
        return found

    ingestion.wait_for(lambda envelopes: bool(matching(envelopes)))
    return matching(ingestion.envelopes())


def test_the_request_metric_counts_by_route_face_tenant_and_status(
    journey: Journey, ingestion: FakeIngestion
):
    points = _metric(
        ingestion,
        "ehrbridge.request.duration",
        **{
            "http.route": "fhir_proxy",
            "ehrbridge.face": "r4",
            "ehrbridge.tenant_id": journey.tenant_id,
            "http.response.status_code": "200",
        },
    )
    assert sum(p["metrics"][0]["count"] for p in points) >= 1


def test_the_provider_metric_times_calls_by_tenant_and_outcome(
    journey: Journey, ingestion: FakeIngestion
):
    points = _metric(
        ingestion,
        "ehrbridge.provider.duration",
        **{"ehrbridge.tenant_id": journey.tenant_id, "ehrbridge.outcome": "2xx"},
    )
    assert points[0]["metrics"][0]["value"] > 0


def test_the_token_metric_counts_issued_tokens_by_client_and_secret_version(
    journey: Journey, ingestion: FakeIngestion
):
    points = _metric(
        ingestion,
        "ehrbridge.tokens",
        **{"ehrbridge.client_id": journey.client_id, "ehrbridge.outcome": "issued"},
    )
    assert points[0]["properties"]["ehrbridge.secret_version"]


# -- what telemetry never carries ----------------------------------------------------------------


def test_no_token_secret_provider_url_or_patient_id_outside_audit_events(
    journey: Journey, ingestion: FakeIngestion
):
    _arrived(ingestion, journey.trace_id)
    ingestion.wait_for(lambda envelopes: any(_is_metric(e) for e in envelopes))
    everything = json.dumps(ingestion.envelopes())
    outside_audit = json.dumps([e for e in ingestion.envelopes() if not _is_audit_line(e)])
    assert SEARCHED in everything  # the audit trail names the patient asked for
    assert SEARCHED not in outside_audit
    for secret in (journey.token, journey.client_secret):
        assert secret not in everything
    assert urlsplit(journey.provider.base_url).netloc not in everything


def _is_audit_line(envelope: dict[str, Any]) -> bool:
    """A line of the audit trail: an AuditEvent, or the ``fhir.request`` record."""
    if (envelope.get("data") or {}).get("baseType") != MESSAGE:
        return False
    data = base_data(envelope)
    return (data.get("properties") or {}).get("ehrbridge.kind") == "AuditEvent" or str(
        data.get("message", "")
    ).startswith('{"event":"fhir.request"')


def _is_metric(envelope: dict[str, Any]) -> bool:
    return (envelope.get("data") or {}).get("baseType") == METRIC


# -- the audit trail, read back from the workspace ----------------------------------------------


def _export(journey: Journey, stand_in: FakeLogAnalytics, tenant_id: str) -> dict[str, Any]:
    settings = Settings.from_env(
        {
            **journey.env,
            "EHRB_AUDIT_WORKSPACE_ID": WORKSPACE_ID,
            "EHRB_LOG_ANALYTICS_ENDPOINT": stand_in.endpoint,
        }
    )
    credential = StaticCredential()
    services = Services(settings, credential=credential)
    request = Request(
        "GET",
        f"http://127.0.0.1/api/manage/tenants/{tenant_id}/audit",
        Headers({"x-functions-key": ADMIN_KEY}),
        b"",
        {"tenant_id": tenant_id},
    )
    response = services.management.handle("tenant_audit", request)
    assert response.status == 200, response.body
    journey.extra["scopes"] = credential.scopes
    return dict(json.loads(response.body))


@pytest.fixture(scope="module")
def log_analytics(ingestion: FakeIngestion) -> Iterator[FakeLogAnalytics]:
    with FakeLogAnalytics(ingestion) as server:
        yield server


def _audit_lines_arrived(ingestion: FakeIngestion, count: int) -> None:
    def enough(envelopes: list[dict[str, Any]]) -> bool:
        return (
            sum(
                1
                for e in envelopes
                if (e.get("data") or {}).get("baseType") == MESSAGE
                and (base_data(e).get("properties") or {}).get("ehrbridge.kind") == "AuditEvent"
            )
            >= count
        )

    ingestion.wait_for(enough)


def test_the_export_from_log_analytics_holds_the_tenants_events_only(
    journey: Journey, ingestion: FakeIngestion, log_analytics: FakeLogAnalytics
):
    _audit_lines_arrived(ingestion, 5)  # a token and a read each, and a read of no patient
    bundle = _export(journey, log_analytics, journey.tenant_id)
    tenants = {
        agent["who"]["identifier"]["value"]
        for entry in bundle["entry"]
        for agent in entry["resource"]["agent"]
        if agent["who"].get("identifier", {}).get("system") == "urn:ehr-bridge:tenant-id"
    }
    assert tenants == {journey.tenant_id}
    subtypes = [entry["resource"]["subtype"][0]["code"] for entry in bundle["entry"]]
    assert subtypes == ["110122", "read", "read"]


def test_the_export_asks_log_analytics_with_the_apps_identity_for_its_api(
    journey: Journey, ingestion: FakeIngestion, log_analytics: FakeLogAnalytics
):
    _audit_lines_arrived(ingestion, 5)
    _export(journey, log_analytics, journey.tenant_id)
    assert journey.extra["scopes"] == ["https://api.loganalytics.io/.default"]
    assert log_analytics.queries[-1]["query"].startswith("AppTraces")
