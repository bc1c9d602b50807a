"""What one run knows: the options it was given and what earlier steps learnt."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from tools.conformance.client import Client
from tools.conformance.faces import STU3, Face
from tools.conformance.report import Report, Spec

DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class Options:
    """How to run the checks."""

    base_url: str
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    tenant: str | None = None
    patient_id: str | None = None
    # Without patient_id: how many of the best charts found by search to check (--patients).
    patients: int = 1
    # The server is open: no OAuth expected, no token requested, no Authorization sent.
    no_auth: bool = False
    timeout: float = DEFAULT_TIMEOUT
    # False (--insecure): no TLS verification, and plain-HTTP token URLs are allowed.
    verify: bool = True


@dataclass(frozen=True)
class Searched:
    """What one Patient search answered, for the checks over every search."""

    label: str
    count: int
    entries: int
    total: object


@dataclass
class Context:
    """The run's state, filled in step by step."""

    options: Options
    client: Client
    report: Report
    statement: dict[str, Any] | None = None
    face: Face | None = None
    token_url: str | None = None
    authorized: bool = False
    patient_id: str | None = None
    # Without --patient-id: the patients discovery chose, best chart first.
    chosen: list[str] = field(default_factory=list)
    patient: dict[str, Any] | None = None
    searches: list[Searched] = field(default_factory=list)
    # Whether the chart batch's Encounter search answered (so a missing Location is data).
    encounters_read: bool = False
    location_reference: str | None = None

    @property
    def planned_face(self) -> Face:
        """The face to word the checks in (STU3 until the metadata names one)."""
        return self.face or STU3

    def needs_fhir(self) -> str | None:
        """Why FHIR calls cannot be made yet, or None."""
        if self.face is None:
            return "no usable fhirVersion in the metadata"
        if not self.options.no_auth and not self.authorized:
            return "no access token (see the token checks)"
        return None

    def for_patient(self, patient_id: str) -> Context:
        """What the run learnt so far, with a report of its own for one patient's checks."""
        return replace(
            self,
            report=self.report.for_patient(),
            patient_id=patient_id,
            chosen=[],
            patient=None,
            searches=list(self.searches),
            encounters_read=False,
            location_reference=None,
        )


@dataclass(frozen=True)
class Step:
    """A group of checks run together: what it judges, when it cannot run, how it runs."""

    name: str
    specs: Callable[[Context], list[Spec]]
    run: Callable[[Context], None]
    # None when the step can run, else the reason every one of its checks is skipped.
    blocked: Callable[[Context], str | None] = lambda _: None
    # None when the step applies, else why it does not apply to this server as the run was
    # told (--no-auth): its checks are skipped without making the run incomplete.
    inapplicable: Callable[[Context], str | None] = lambda _: None
