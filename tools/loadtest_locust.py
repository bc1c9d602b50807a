"""The Patients app's traffic for ``make loadtest`` (locust; started by ``tools/loadtest.py``).

Not imported by the app or the tests: locust runs this file in its own process. Each simulated
user is one tenant's Patients app (a client of the plan, on one of its tenants and faces): it
takes a token, reads the metadata, then searches patients, reads one, and loads charts with the
app's batch of six queries and its vital-signs search, as the app does. The soak adds writers:
each creates Patients in the sandbox through the proxy and records every one acknowledged.

The plan (tenants, clients, secrets, faces) is the JSON file ``EHRB_LOADTEST_PLAN`` names.
Every failed call (status >= 400 or no answer) is appended to ``EHRB_LOADTEST_EVENTS`` as a
JSON line with its time, so the soak can tell faults' answers from the rest.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from pathlib import Path
from typing import Any

from locust import FastHttpUser, between, events, task

PLAN: dict[str, Any] = json.loads(Path(os.environ["EHRB_LOADTEST_PLAN"]).read_text("utf-8"))
_EVENTS = os.environ["EHRB_LOADTEST_EVENTS"]
_WRITES = os.environ.get("EHRB_LOADTEST_WRITES", "")
_lock = threading.Lock()
FHIR_JSON = "application/fhir+json"


def _record_failure(
    request_type: str,
    name: str,
    response_time: float,
    response_length: int,
    response: Any = None,
    exception: Any = None,
    **_: Any,
) -> None:
    status = getattr(response, "status_code", 0) or 0
    if exception is None and 0 < status < 400:
        return
    kind = str(status) if status else type(exception).__name__
    line = json.dumps({"t": time.time(), "name": name, "kind": kind})
    with _lock, open(_EVENTS, "a", encoding="utf-8") as out:
        out.write(line + "\n")


events.request.add_listener(_record_failure)  # type: ignore[no-untyped-call]


def _chart_batch(face: str, patient_id: str) -> dict[str, Any]:
    sort = "_sort:desc=date" if face == "dstu2" else "_sort=-date"
    orders = "MedicationOrder" if face == "dstu2" else "MedicationRequest"
    urls = (
        f"Observation?patient={patient_id}&category=vital-signs&{sort}",
        f"Condition?patient={patient_id}&_count=10",
        f"Encounter?patient={patient_id}&{sort}&_count=1",
        f"AllergyIntolerance?patient={patient_id}",
        f"{orders}?patient={patient_id}&_count=10",
        f"Coverage?patient={patient_id}",
    )
    return {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": url}} for url in urls],
    }


def take_token(client: Any, seat: dict[str, Any], name: str) -> dict[str, str] | None:
    """POST oauth2/token with the seat's credentials, reported as ``name``; the headers its FHIR
    calls carry, or None when no token came (locust counts the failure)."""
    with client.post(
        "/api/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": seat["client_id"],
            "client_secret": seat["client_secret"],
            "scope": seat["tenant_id"],
        },
        name=name,
        catch_response=True,
    ) as answer:
        if answer.status_code != 200:
            return None
        return {"Authorization": f"Bearer {answer.json()['access_token']}", "Accept": FHIR_JSON}


class PatientsApp(FastHttpUser):
    """One tenant's Patients app."""

    wait_time = between(0.05, 0.3)
    weight = 10

    def on_start(self) -> None:
        """Pick a tenant and its client, read the metadata, take a token."""
        self.seat = random.choice(PLAN["seats"])  # noqa: S311 - picks traffic, not secrets
        self.face = self.seat["face"]
        self.base = f"/api/fhir/{self.face}"
        self.client.get(f"{self.base}/metadata", name="metadata")
        self.token()

    def token(self) -> None:
        """POST oauth2/token, as the app does when its token nears its end."""
        headers = take_token(self.client, self.seat, "token")
        if headers is not None:
            self.headers = headers

    @task(1)
    def renew(self) -> None:
        """A token now and then (the app keeps one for its lifetime)."""
        self.token()

    @task(3)
    def search(self) -> None:
        """POST Patient/_search by family name, as the app's search box."""
        family = "family:contains" if self.face == "dstu2" else "family"
        self.client.post(
            f"{self.base}/Patient/_search",
            data={family: random.choice(PLAN["families"]), "_count": "10"},  # noqa: S311
            headers=self.headers,
            name="Patient search",
        )

    @task(2)
    def read(self) -> None:
        """GET Patient/<id>, a patient on a list."""
        self.client.get(
            f"{self.base}/Patient/{self.seat['patient_id']}",
            headers=self.headers,
            name="Patient read",
        )

    @task(4)
    def chart(self) -> None:
        """The chart: the app's batch of six by-patient queries."""
        self.client.post(
            self.base,
            data=json.dumps(_chart_batch(self.face, self.seat["patient_id"])),
            headers={**self.headers, "Content-Type": FHIR_JSON},
            name="chart batch",
        )

    @task(2)
    def vitals(self) -> None:
        """The vital signs, newest first."""
        sort = "_sort:desc=date" if self.face == "dstu2" else "_sort=-date"
        self.client.get(
            f"{self.base}/Observation?patient={self.seat['patient_id']}&category=vital-signs&{sort}",
            headers=self.headers,
            name="vital signs",
        )


class SandboxWriter(FastHttpUser):
    """The soak's writer: creates Patients through the proxy, recording each one acknowledged."""

    wait_time = between(0.2, 0.5)
    weight = 1 if _WRITES else 0
    fixed_count = 2 if _WRITES else 0

    def on_start(self) -> None:
        """Take a token for the tenant whose provider is the sandbox (writes allowed)."""
        seat = PLAN["writer"]
        self.seat = seat
        self.headers: dict[str, str] = {}
        self.token()

    def token(self) -> None:
        """A token for the writer's tenant."""
        headers = take_token(self.client, self.seat, "token (writer)")
        if headers is not None:
            self.headers = {**headers, "Content-Type": FHIR_JSON}

    @task
    def create(self) -> None:
        """POST a Patient; an acknowledged one (201) must be there after the run."""
        if not self.headers:
            self.token()
            return
        family = f"Soak{random.randrange(10**9)}"  # noqa: S311
        patient = {"resourceType": "Patient", "name": [{"family": family, "given": ["Load"]}]}
        with self.client.post(
            "/api/fhir/r4/Patient",
            data=json.dumps(patient),
            headers=self.headers,
            name="Patient create",
            catch_response=True,
        ) as answer:
            if answer.status_code == 401:
                self.token()
            if answer.status_code == 201:
                created = answer.json()
                with _lock, open(_WRITES, "a", encoding="utf-8") as out:
                    out.write(json.dumps({"id": created["id"], "family": family}) + "\n")
