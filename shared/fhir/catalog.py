"""The catalogue of FHIR resource types EHR Bridge serves or converts: one entry per type.

Every per-type table elsewhere is derived from here: the faces' metadata (``shared.metadata``),
the path grammar (``shared.fhir.paths``), which types convert and with which module
(``shared.fhir.convert``), the request translation's parameter and element names
(``shared.fhir.convert.request``), the dates sorted on for a provider that cannot
(``shared.proxy.compensate``) and what the sandbox serves (``shared.sandbox.layout``,
``query``, ``capability``). ``tests/unit/test_catalog.py`` checks that what each of them does
agrees with this file; docs/conversion/README.md says how to add a type.

Plain data, cheap to import (on the first FHIR request, never with the function app): converter
modules are named here and imported only when a conversion needs them.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, NamedTuple

from shared.fhir.versions import VERSIONS, FhirVersion

DSTU2: Final = FhirVersion.DSTU2
STU3: Final = FhirVersion.STU3
R4: Final = FhirVersion.R4

Row = tuple[str | None, str | None, str | None]
"""One name in (DSTU2, STU3, R4); None where the release has no equivalent."""

DatedElement = tuple[str, frozenset[FhirVersion]]
"""A dotted element path holding a date, and the releases whose documents have it."""


def _dated(path: str, *versions: FhirVersion) -> DatedElement:
    """The element at dotted ``path``, in ``versions`` (every release when none is given)."""
    return path, frozenset(versions or VERSIONS)


# Entries are NamedTuples rather than dataclasses: as immutable, and a tenth of the cost to
# define (about 0.1 ms against 1 ms each), which the first request of an instance pays.


class SearchParam(NamedTuple):
    """One search parameter, with its official definition in each release."""

    name: str
    """What the app sends, in every release (the request translation renames it where a
    provider's release differs)."""
    type: str
    """Its FHIR search type: token, string, date, reference."""
    definitions: Mapping[str, str | None]
    """Id of the SearchParameter in each release's official bundle; None where the release
    defines no such parameter for the type (``undefined_note`` then says why it is offered)."""
    undefined_note: str = ""
    sortable: bool = False
    """The app sorts on it (newest first)."""
    modifiers: tuple[str, ...] = ()
    """Modifiers the app uses (DSTU2's statement lists them)."""
    target: tuple[str, ...] = ()
    """The types a reference parameter points to (DSTU2's statement lists them)."""
    app_sends: bool = True
    """The Patients app sends it, so every face's metadata promises it; False: only the
    sandbox serves it."""
    sandbox: bool = True
    """The sandbox provider serves it (by its R4 definition)."""


class ResourceType(NamedTuple):
    """One resource type: its names, who reads it, how it converts, searches and sorts."""

    name: str
    """The R4 name, used as the type's key."""
    renamed: Mapping[str, str] = MappingProxyType({})
    """Its name in the releases that call it otherwise (DSTU2's MedicationOrder)."""
    converter: str | None = None
    """Module under ``shared.fhir.convert`` converting it between releases (docs/conversion/)."""
    converts_entries: bool = False
    """It holds other resources and converts each over the whole chain of steps at once
    (Bundle: ``convert_through``) rather than step by step."""
    proxied: bool = False
    """Every face forwards requests for it (the path grammar allows it)."""
    app_reads: bool = False
    """The Patients app reads it: every face's metadata lists it."""
    search: tuple[SearchParam, ...] = ()
    patient_element: str | None = None
    """For a by-patient chart type, the R4 element naming the patient (FHIR's R4 patient
    compartment); the app searches it by ``patient``, the sandbox keeps it with its patient."""
    heading: str = ""
    """What a list of them is called on a patient's page (chart types)."""
    sort_dates: tuple[DatedElement, ...] = ()
    """The dates a search on it sorts by, in order of preference, in every release's names."""
    sandbox: bool = False
    """The sandbox provider stores and serves it."""
    parameter_renames: tuple[Row, ...] = ()
    """Its search parameters whose name differs between releases, or that a release lacks
    (§14.3, from each release's search-parameters.json). Lookup takes the first row whose
    source column matches, so for a name several source names share, the first is the way
    back."""
    element_renames: tuple[Row, ...] = ()
    """Its element names for ``_elements`` (§2.9), where a release renamed them."""

    def name_in(self, version: str) -> str:
        """What ``version`` calls this type."""
        return self.renamed.get(version, self.name)

    @property
    def names(self) -> frozenset[str]:
        """Every release's name for it."""
        return frozenset(self.name_in(version) for version in VERSIONS)

    @property
    def by_patient(self) -> bool:
        """A chart type: one of a patient's records, searched by patient."""
        return self.patient_element is not None

    @property
    def app_searches(self) -> bool:
        """The app searches it (else it only reads it by reference)."""
        return any(param.app_sends for param in self.search)

    def sort_paths(self, name: str) -> tuple[tuple[str, ...], ...]:
        """The date paths of a document whose ``resourceType`` is ``name``, preferred first."""
        releases = {version for version in VERSIONS if self.name_in(version) == name}
        return tuple(
            tuple(path.split(".")) for path, versions in self.sort_dates if versions & releases
        )


def _defs(dstu2: str | None, stu3: str | None, r4: str | None) -> dict[str, str | None]:
    return {DSTU2: dstu2, STU3: stu3, R4: r4}


_PATIENT_TARGET: Final = ("Patient",)


def _patient(
    resource: str, stu3: str = "clinical-patient", r4: str = "clinical-patient"
) -> SearchParam:
    return SearchParam(
        "patient", "reference", _defs(f"{resource}-patient", stu3, r4), target=_PATIENT_TARGET
    )


# The search parameters are those of the Patients app's DSTU2 and STU3 interface specifications
# (docs/patients-app.md); their definition ids are checked by tests/unit/test_metadata.py
# against each release's official bundle. Types are listed in the order the metadata and the
# sandbox list them.
RESOURCE_TYPES: Final[tuple[ResourceType, ...]] = (
    ResourceType(
        "Patient",
        converter="patient",
        proxied=True,
        app_reads=True,
        sandbox=True,
        search=(
            SearchParam("_id", "token", _defs("Resource-id", "Resource-id", "Resource-id")),
            # The DSTU2 app sends family:contains; STU3 expects the same semantics unmarked.
            SearchParam(
                "family",
                "string",
                _defs("Patient-family", "individual-family", "individual-family"),
                modifiers=("contains",),
            ),
            SearchParam(
                "given", "string", _defs("Patient-given", "individual-given", "individual-given")
            ),
            SearchParam("name", "string", _defs("Patient-name", "Patient-name", "Patient-name")),
            SearchParam(
                "birthdate",
                "date",
                _defs("Patient-birthdate", "individual-birthdate", "individual-birthdate"),
            ),
            SearchParam(
                "gender", "token", _defs("Patient-gender", "individual-gender", "individual-gender")
            ),
            SearchParam(
                "identifier",
                "token",
                _defs("Patient-identifier", "Patient-identifier", "Patient-identifier"),
            ),
        ),
        parameter_renames=(
            ("careprovider", "general-practitioner", "general-practitioner"),
            ("deathdate", "death-date", "death-date"),
            ("animal-breed", "animal-breed", None),
            ("animal-species", "animal-species", None),
            ("race", None, None),
            ("ethnicity", None, None),
        ),
        element_renames=(("careProvider", "generalPractitioner", "generalPractitioner"),),
    ),
    ResourceType(
        "Observation",
        converter="observation",
        proxied=True,
        app_reads=True,
        sandbox=True,
        patient_element="subject",
        heading="Observations",
        search=(
            _patient("Observation"),
            SearchParam(
                "category",
                "token",
                _defs("Observation-category", "Observation-category", "Observation-category"),
            ),
            SearchParam(
                "date",
                "date",
                _defs("Observation-date", "clinical-date", "clinical-date"),
                sortable=True,
            ),
            SearchParam(
                "code", "token", _defs("Observation-code", "clinical-code", "clinical-code")
            ),
        ),
        # FHIR's `date` search parameter for Observation: effective[x], else when issued.
        sort_dates=(
            _dated("effectiveDateTime"),
            _dated("effectivePeriod.start"),
            _dated("effectiveInstant", R4),
            _dated("issued"),
        ),
        parameter_renames=(
            ("component-value-string", None, None),
            ("component-code-value-string", None, None),
            ("component-code-value-date", None, None),
            ("related", "related", None),
            ("related-target", "related-target", None),
            ("related-type", "related-type", None),
            ("encounter", "encounter", "encounter"),
            ("encounter", "context", "encounter"),
            (None, "based-on", "based-on"),
            (None, "method", "method"),
            (None, "combo-code", "combo-code"),
            (None, "combo-code-value-concept", "combo-code-value-concept"),
            (None, "combo-code-value-quantity", "combo-code-value-quantity"),
            (None, "combo-data-absent-reason", "combo-data-absent-reason"),
            (None, "combo-value-concept", "combo-value-concept"),
            (None, "combo-value-quantity", "combo-value-quantity"),
            (None, None, "focus"),
            (None, None, "part-of"),
            (None, None, "has-member"),
            (None, None, "derived-from"),
        ),
        element_renames=(
            ("encounter", "context", "encounter"),
            ("comments", "comment", "note"),
        ),
    ),
    ResourceType(
        "Condition",
        converter="condition",
        proxied=True,
        app_reads=True,
        sandbox=True,
        patient_element="subject",
        heading="Conditions",
        search=(_patient("Condition"),),
        # The recorded date the app shows, under each release's name; else the onset.
        sort_dates=(
            _dated("recordedDate", R4),
            _dated("assertedDate", STU3),
            _dated("dateRecorded", DSTU2),
            _dated("onsetDateTime"),
        ),
        parameter_renames=(
            ("clinicalstatus", "clinical-status", "clinical-status"),
            ("date-recorded", "asserted-date", "recorded-date"),
            ("onset", "onset-date", "onset-date"),
            ("age", "onset-age", "onset-age"),
            ("encounter", "encounter", "encounter"),
            ("encounter", "context", "encounter"),
            (None, "abatement-age", "abatement-age"),
            (None, "abatement-boolean", None),
            (None, "abatement-date", "abatement-date"),
            (None, "abatement-string", "abatement-string"),
            (None, "evidence-detail", "evidence-detail"),
            (None, "subject", "subject"),
            (None, "verification-status", "verification-status"),
        ),
        element_renames=(
            ("patient", "subject", "subject"),
            ("dateRecorded", "assertedDate", "recordedDate"),
            ("encounter", "context", "encounter"),
            ("notes", "note", "note"),
        ),
    ),
    ResourceType(
        "Encounter",
        converter="encounter",
        proxied=True,
        app_reads=True,
        sandbox=True,
        patient_element="subject",
        heading="Encounters",
        search=(
            _patient("Encounter"),
            # The app's sort key; the sandbox filters on it too (the period's range).
            SearchParam(
                "date",
                "date",
                _defs("Encounter-date", "clinical-date", "clinical-date"),
                sortable=True,
            ),
        ),
        sort_dates=(_dated("period.start"),),
        parameter_renames=(
            ("indication", "diagnosis", "diagnosis"),
            ("condition", "diagnosis", "diagnosis"),
            ("procedure", "diagnosis", "diagnosis"),
            ("episodeofcare", "episodeofcare", "episode-of-care"),
            ("incomingreferral", "incomingreferral", "based-on"),
            ("reason", "reason", "reason-code"),
            (None, None, "reason-reference"),
            (None, "class", "class"),
            (None, "subject", "subject"),
            (None, "service-provider", "service-provider"),
            (None, None, "account"),
        ),
        element_renames=(
            ("patient", "subject", "subject"),
            ("reason", "reason", "reasonCode"),
            ("incomingReferral", "incomingReferral", "basedOn"),
        ),
    ),
    ResourceType(
        "AllergyIntolerance",
        converter="allergy_intolerance",
        proxied=True,
        app_reads=True,
        sandbox=True,
        patient_element="patient",
        heading="Allergies",
        search=(_patient("AllergyIntolerance"),),
        sort_dates=(
            _dated("recordedDate", DSTU2, R4),
            _dated("assertedDate", STU3),
            _dated("onset", DSTU2),
        ),
        parameter_renames=(
            ("substance", "code", "code"),
            ("reporter", "asserter", "asserter"),
        ),
        element_renames=(
            ("substance", "code", "code"),
            ("recordedDate", "assertedDate", "recordedDate"),
            ("reporter", "asserter", "asserter"),
            ("onset", "onsetDateTime", "onsetDateTime"),
            ("lastOccurence", "lastOccurrence", "lastOccurrence"),
        ),
    ),
    ResourceType(
        "MedicationRequest",
        renamed={DSTU2: "MedicationOrder"},
        converter="medication_request",
        proxied=True,
        app_reads=True,
        sandbox=True,
        patient_element="subject",
        heading="Medication requests",
        search=(_patient("MedicationOrder", stu3="medications-patient"),),
        sort_dates=(_dated("authoredOn", STU3, R4), _dated("dateWritten", DSTU2)),
        parameter_renames=(
            ("datewritten", "authoredon", "authoredon"),
            ("prescriber", "requester", "requester"),
            ("encounter", "context", "encounter"),
            (None, "subject", "subject"),
            (None, "intent", "intent"),
            (None, "category", "category"),
            (None, "priority", "priority"),
            (None, "intended-dispenser", "intended-dispenser"),
            # STU3/R4 `date` is dosageInstruction.timing.event, not the order date (§14.3 ⚠).
            (None, "date", "date"),
            (None, None, "intended-performer"),
            (None, None, "intended-performertype"),
        ),
        element_renames=(
            ("dateWritten", "authoredOn", "authoredOn"),
            ("prescriber", "requester", "requester"),
            ("patient", "subject", "subject"),
            ("encounter", "context", "encounter"),
        ),
    ),
    ResourceType(
        "Coverage",
        converter="coverage",
        proxied=True,
        app_reads=True,
        sandbox=True,
        patient_element="beneficiary",
        heading="Coverage",
        search=(
            # DSTU2 and STU3 define no Coverage "patient" parameter, yet both app specs send
            # Coverage?patient=; the proxy maps it to R4's Coverage-patient (= beneficiary).
            SearchParam(
                "patient",
                "reference",
                _defs(None, None, "Coverage-patient"),
                undefined_note=(
                    "Not a standard parameter of this FHIR version; supported because the "
                    "Patients app sends it. Matches the patient the coverage is for "
                    "(the beneficiary)."
                ),
                target=_PATIENT_TARGET,
            ),
            # What STU3 providers are asked instead (§14.2); the sandbox answers it too.
            SearchParam(
                "beneficiary",
                "reference",
                _defs(None, "Coverage-beneficiary", "Coverage-beneficiary"),
                app_sends=False,
            ),
        ),
        sort_dates=(_dated("period.start"),),
        parameter_renames=(
            ("issuer", "payor", "payor"),
            ("group", "group", None),
            ("plan", "plan", None),
            ("subplan", "subplan", None),
            ("sequence", "sequence", None),
            (None, "subgroup", None),
            (None, "class", None),
            (None, "subclass", None),
            (None, "beneficiary", "beneficiary"),
            (None, "subscriber", "subscriber"),
            (None, "policy-holder", "policy-holder"),
            (None, None, "class-type"),
            (None, None, "class-value"),
            (None, None, "status"),
        ),
        element_renames=(("issuer", "payor", "payor"),),
    ),
    # The app only shows Encounter.location.display, but references must resolve.
    ResourceType(
        "Location",
        converter="location",
        proxied=True,
        app_reads=True,
        sandbox=True,
        parameter_renames=(
            # R4 `near` is one special parameter (lat|long|distance|unit); the older token pair
            # does not translate value for value.
            ("near", "near", None),
            ("near-distance", "near-distance", None),
            (None, None, "near"),
            (None, "endpoint", "endpoint"),
            (None, "operational-status", "operational-status"),
        ),
    ),
    # The next three are read by reference only: the displays the app prints point to them
    # (docs/patients-app.md), and the proxy reads them to fill a display a provider left out.
    ResourceType(
        "Practitioner",
        converter="practitioner",
        proxied=True,
        sandbox=True,
        parameter_renames=(
            # Moved to PractitionerRole in STU3.
            ("role", None, None),
            ("specialty", None, None),
            ("location", None, None),
            ("organization", None, None),
            (None, "active", "active"),
        ),
    ),
    ResourceType(
        "Organization",
        converter="organization",
        proxied=True,
        sandbox=True,
        parameter_renames=((None, "endpoint", "endpoint"),),
    ),
    ResourceType(
        "Medication",
        converter="medication",
        proxied=True,
        parameter_renames=(
            ("container", "container", None),
            ("content", None, None),
            (None, "over-the-counter", None),
            (None, "package-item-code", None),
            (None, "package-item", None),
            (None, "ingredient-code", "ingredient-code"),
            (None, "status", "status"),
            (None, None, "expiration-date"),
            (None, None, "lot-number"),
        ),
    ),
    # Never asked for by type, but every search answers one and every error is one.
    ResourceType("Bundle", converter="bundle", converts_entries=True),
    ResourceType("OperationOutcome", converter="operation_outcome"),
)


def chart_headings() -> tuple[tuple[str, str], ...]:
    """(R4 type, heading) of every by-patient chart type, in catalogue order: the sandbox
    editor's list of a patient's records."""
    return tuple((entry.name, entry.heading) for entry in RESOURCE_TYPES if entry.by_patient)


def type_renames(version: str) -> dict[str, str]:
    """The names other releases give a type that ``version`` calls otherwise, mapped to
    ``version``'s name (DSTU2: MedicationRequest → MedicationOrder)."""
    return {
        name: entry.name_in(version)
        for entry in RESOURCE_TYPES
        for name in sorted(entry.names)
        if name != entry.name_in(version)
    }
