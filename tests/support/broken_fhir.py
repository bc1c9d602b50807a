"""A FHIR server serving what the Teams Patients app needs, with defects chosen per test.

``AppFhirServer(version, defects=...)`` is a ``FakeFhirServer`` (DSTU2, STU3 or R4) holding a
small chart instead of the HL7 examples: patient ``pat-ruth`` with every field the app reads
(an MRN, vitals on three days, a condition, an earlier and a latest encounter at a ward, an
allergy, a medication, a coverage) and a second patient, each in the version's own shape
(written once in R4 and converted with shared.fhir.convert). It searches patients the way the
app expects (``family`` "contains" on STU3, ``family:contains``, ``given``, ``name``,
``birthdate``, ``gender``, ``identifier``), finds Coverage by its beneficiary, declares
oauth-uris and an OAuth security service, and issues tokens to ``CLIENT_ID``/``CLIENT_SECRET``.

Each name in ``DEFECTS`` breaks one thing the app relies on, so that a test can show the
conformance checker reports exactly that. A ``roster`` of ``Member``s adds patients ahead of the
two in search order, each with a copy of chosen sections of Ruth's chart, so that a test can
show which patient the checker chooses to check.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.fhir.convert import convert
from tools.testkit.fake_fhir import FakeFhirServer, _Answer, _Handler, _Snapshot

CLIENT_ID = "conformance-client"
CLIENT_SECRET = "conformance-secret-" + "s3cr3t" * 4
PATIENT_ID = "pat-ruth"
OTHER_PATIENT_ID = "pat-minh"
LOCATION_ID = "ward-south-2"

DEFECTS = {
    "no_oauth_uris": "the metadata has no oauth-uris extension",
    "no_oauth_service": "rest.security.service is not coded OAuth",
    "no_batch": "batch is neither declared nor accepted (405)",
    "no_total": "search Bundles carry no total",
    "ignores_count": "searches ignore _count",
    "unsorted_vitals": "vital signs come oldest first whatever _sort asks",
    "no_birth_date": "the Patient has no birthDate",
    "no_mrn_type": "the MRN identifier has no type",
    "no_encounter_type_display": "Encounter.type codings have no display",
    "starts_with_only": "a plain family search matches the start of the name only (STU3)",
    "token_cacheable": "the token answer has no Cache-Control: no-store",
    "no_practitioner_display": "the Patient's practitioner reference has no display",
    "no_location": "the Encounter's Location cannot be read (404)",
    "no_coverage": "no patient has a Coverage",
}

# The chart sections a roster member can be given, by the resource type that holds each.
SECTIONS = {
    "vitals": "Observation",
    "conditions": "Condition",
    "encounters": "Encounter",
    "allergies": "AllergyIntolerance",
    "medications": "MedicationRequest",
    "coverage": "Coverage",
}


@dataclass(frozen=True)
class Member:
    """A patient added ahead of Ruth and Minh: Ruth's record under another id and family name,
    with the chosen sections of her chart (all of them by default)."""

    id: str
    family: str
    sections: frozenset[str] = frozenset(SECTIONS)


def members(count: int, sections: Iterable[str] = SECTIONS) -> list[Member]:
    """``count`` members "pat-00", "pat-01", ... with the same chart sections."""
    return [Member(f"pat-{i:02d}", f"Member{i:02d}", frozenset(sections)) for i in range(count)]


_T = "http://terminology.hl7.org/CodeSystem/"
_LOINC = "http://loinc.org"
_SNOMED = "http://snomed.info/sct"
_RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
_UCUM = "http://unitsofmeasure.org"
_SECURITY_SYSTEMS = {
    "dstu2": "http://hl7.org/fhir/restful-security-service",
    "stu3": "http://hl7.org/fhir/restful-security-service",
    "r4": _T + "restful-security-service",
}
_STRING_PARAMS = ("family", "given", "name")


def _concept(system: str, code: str, display: str | None, text: str | None = None) -> Any:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    concept: dict[str, Any] = {"coding": [coding]}
    if text:
        concept["text"] = text
    return concept


def _quantity(value: float, unit: str, code: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": _UCUM, "code": code}


_SUBJECT = {"reference": f"Patient/{PATIENT_ID}"}
_VITALS = _concept(_T + "observation-category", "vital-signs", "Vital Signs")


def _vital(id_: str, when: str, code: str, display: str, **value: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": id_,
        "status": "final",
        "category": [_VITALS],
        "code": _concept(_LOINC, code, display),
        "subject": _SUBJECT,
        "effectiveDateTime": when,
        **value,
    }


def r4_chart() -> list[dict[str, Any]]:
    """The chart as an R4 server stores it, every display the app shows filled in."""
    gp = {"reference": "Practitioner/gp-adam", "display": "Dr Adam Careful"}
    return [
        {
            "resourceType": "Practitioner",
            "id": "gp-adam",
            "name": [{"family": "Careful", "given": ["Adam"], "prefix": ["Dr"]}],
        },
        {"resourceType": "Location", "id": LOCATION_ID, "status": "active", "name": "South 2"},
        {
            "resourceType": "Patient",
            "id": PATIENT_ID,
            "identifier": [
                {
                    "use": "usual",
                    "type": _concept(_T + "v2-0203", "MR", "Medical record number"),
                    "system": "urn:oid:1.2.36.146.595.217.0.1",
                    "value": "MRN-4471",
                }
            ],
            "name": [
                {"use": "official", "family": "Blackwood", "given": ["Ruth"], "prefix": ["Mrs."]}
            ],
            "gender": "female",
            "birthDate": "1961-03-17",
            "generalPractitioner": [gp],
        },
        {
            "resourceType": "Patient",
            "id": OTHER_PATIENT_ID,
            "identifier": [
                {
                    "type": _concept(_T + "v2-0203", "MR", "Medical record number"),
                    "value": "MRN-5520",
                }
            ],
            "name": [{"use": "official", "family": "Nguyen", "given": ["Minh"]}],
            "gender": "male",
            "birthDate": "1975-09-02",
        },
        _vital(
            "vs-temp",
            "2024-05-01T08:00:00Z",
            "8310-5",
            "Body temperature",
            valueQuantity=_quantity(37.2, "C", "Cel"),
        ),
        _vital(
            "vs-bp",
            "2024-05-03T08:00:00Z",
            "85354-9",
            "Blood pressure panel",
            component=[
                {
                    "code": _concept(_LOINC, "8480-6", "Systolic blood pressure"),
                    "valueQuantity": _quantity(128, "mmHg", "mm[Hg]"),
                },
                {
                    "code": _concept(_LOINC, "8462-4", "Diastolic blood pressure"),
                    "valueQuantity": _quantity(82, "mmHg", "mm[Hg]"),
                },
            ],
        ),
        _vital(
            "vs-hr",
            "2024-05-02T08:00:00Z",
            "8867-4",
            "Heart rate",
            valueQuantity=_quantity(72, "beats/minute", "/min"),
        ),
        {
            "resourceType": "Condition",
            "id": "cond-diabetes",
            "clinicalStatus": _concept(_T + "condition-clinical", "active", None),
            "verificationStatus": _concept(_T + "condition-ver-status", "confirmed", None),
            "severity": _concept(_SNOMED, "6736007", "Moderate"),
            "code": _concept(_SNOMED, "44054006", "Diabetes mellitus type 2"),
            "subject": _SUBJECT,
            "recordedDate": "2023-11-02",
        },
        {
            "resourceType": "Encounter",
            "id": "enc-earlier",
            "status": "finished",
            "class": {"system": _T + "v3-ActCode", "code": "AMB"},
            "type": [_concept(_SNOMED, "11429006", "Consultation")],
            "subject": _SUBJECT,
            "period": {"start": "2024-02-10T09:00:00Z", "end": "2024-02-10T09:30:00Z"},
        },
        {
            "resourceType": "Encounter",
            "id": "enc-latest",
            "status": "in-progress",
            "class": {"system": _T + "v3-ActCode", "code": "IMP"},
            "type": [_concept(_SNOMED, "183807002", "Inpatient stay")],
            "subject": _SUBJECT,
            "period": {"start": "2024-05-01T07:30:00Z"},
            "location": [
                {
                    "location": {"reference": f"Location/{LOCATION_ID}", "display": "South 2"},
                    "status": "active",
                }
            ],
        },
        {
            "resourceType": "AllergyIntolerance",
            "id": "alg-penicillin",
            "clinicalStatus": _concept(_T + "allergyintolerance-clinical", "active", None),
            "verificationStatus": _concept(
                _T + "allergyintolerance-verification", "confirmed", None
            ),
            "code": _concept(_RXNORM, "7980", "Penicillin G", "Penicillin"),
            "patient": _SUBJECT,
            "recordedDate": "2019-06-12",
            "reaction": [{"manifestation": [_concept(_SNOMED, "247472004", "Hives", "Hives")]}],
        },
        {
            "resourceType": "MedicationRequest",
            "id": "med-metformin",
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": _concept(
                _RXNORM, "860975", "Metformin 500 MG Oral Tablet", "Metformin 500 mg"
            ),
            "subject": _SUBJECT,
            "authoredOn": "2024-04-20T09:15:00Z",
            "requester": gp,
            "dosageInstruction": [{"text": "One tablet twice a day with meals"}],
        },
        {
            "resourceType": "Coverage",
            "id": "cov-contoso",
            "status": "active",
            "subscriberId": "SUB-99812",
            "beneficiary": _SUBJECT,
            "period": {"start": "2024-01-01", "end": "2024-12-31"},
            "payor": [{"reference": "Organization/contoso", "display": "Contoso Health"}],
            "class": [
                {
                    "type": _concept(_T + "coverage-class", "group", None),
                    "value": "GRP-1001",
                    "name": "Contoso Employees",
                },
                {
                    "type": _concept(_T + "coverage-class", "plan", None),
                    "value": "PLN-77",
                    "name": "Gold Plus",
                },
            ],
        },
    ]


def member_chart(member: Member) -> list[dict[str, Any]]:
    """A roster member's Patient and chart sections in R4: Ruth's, renamed."""
    source = r4_chart()
    patient = copy.deepcopy(next(r for r in source if r.get("id") == PATIENT_ID))
    patient["id"] = member.id
    patient["name"][0]["family"] = member.family
    patient["identifier"][0]["value"] = f"MRN-{member.id}"
    unknown = member.sections - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown sections: {', '.join(sorted(unknown))}")
    kinds = {SECTIONS[section] for section in member.sections}
    resources = [patient]
    for resource in source:
        if resource["resourceType"] in kinds:
            text = json.dumps(resource).replace(f'"Patient/{PATIENT_ID}"', f'"Patient/{member.id}"')
            clone = json.loads(text)
            clone["id"] = f"{resource['id']}-{member.id}"
            resources.append(clone)
    return resources


def chart(
    version: str, defects: Iterable[str] = (), roster: Sequence[Member] = ()
) -> list[dict[str, Any]]:
    """The chart in ``version``'s shape, the roster's patients first, with the data defects
    among ``defects`` applied."""
    broken = set(defects)
    written = [r for member in roster for r in member_chart(member)] + r4_chart()
    resources = [
        copy.deepcopy(r) if version == "r4" else convert(r, "r4", version) for r in written
    ]
    for resource in resources:
        kind, id_ = resource["resourceType"], resource["id"]
        if kind == "Patient" and id_ == PATIENT_ID:
            if "no_birth_date" in broken:
                del resource["birthDate"]
            if "no_mrn_type" in broken:
                for identifier in resource["identifier"]:
                    identifier.pop("type", None)
            if "no_practitioner_display" in broken:
                field = "careProvider" if version == "dstu2" else "generalPractitioner"
                for reference in resource[field]:
                    reference.pop("display", None)
        if kind == "Encounter" and "no_encounter_type_display" in broken:
            for concept in resource["type"]:
                for coding in concept["coding"]:
                    coding.pop("display", None)
    if "no_location" in broken:
        resources = [r for r in resources if r["resourceType"] != "Location"]
    if "no_coverage" in broken:
        resources = [r for r in resources if r["resourceType"] != "Coverage"]
    return resources


class AppFhirServer(FakeFhirServer):
    """A DSTU2, STU3 or R4 server shaped for the Patients app, with ``defects`` (see DEFECTS)
    and a ``roster`` of patients ahead of the chart's two."""

    def __init__(
        self,
        version: str = "stu3",
        defects: Iterable[str] = (),
        *,
        protected: bool = True,
        roster: Sequence[Member] = (),
        **kwargs: Any,
    ) -> None:
        self.defects = frozenset(defects)
        unknown = self.defects - set(DEFECTS)
        if unknown:
            raise ValueError(f"unknown defects: {', '.join(sorted(unknown))}")
        super().__init__(version, require_bearer=True if protected else None, **kwargs)
        if "no_batch" in self.defects:
            self.set_capability("batch", False)
        for resource in chart(version, self.defects, roster):
            self.add(resource)
        self.issue_tokens(CLIENT_ID, CLIENT_SECRET)

    def _load(self, directory: Path) -> None:
        """No HL7 examples: the chart is the whole content (and keeps the tests fast)."""

    # -- metadata ------------------------------------------------------------------------------

    def capability_statement(self) -> dict[str, Any]:
        """The fake's statement with an OAuth service coding, less what the defects remove."""
        statement = super().capability_statement()
        rest = statement["rest"][0]
        security = rest.get("security")
        if security is None:
            return statement
        if "no_oauth_service" not in self.defects:
            system = _SECURITY_SYSTEMS[self.version]
            security["service"] = [{"coding": [{"system": system, "code": "OAuth"}]}]
        if "no_oauth_uris" in self.defects:
            del security["extension"]
        return statement

    # -- searching -----------------------------------------------------------------------------

    def _matches(self, resource_type: str, params: list[tuple[str, str]]) -> list[tuple[str, str]]:
        if resource_type == "Patient":
            filters = [(n, v) for n, v in params if n.split(":")[0] in _PATIENT_PARAMS]
            others = [(n, v) for n, v in params if (n, v) not in filters]
            return [
                key
                for key in super()._matches(resource_type, others)
                if all(self._patient_matches(self.get(*key) or {}, n, v) for n, v in filters)
            ]
        if resource_type == "Coverage":
            wanted = {v.split("/")[-1] for n, v in params if n == "patient"}
            others = [(n, v) for n, v in params if n != "patient"]
            return [
                key
                for key in super()._matches(resource_type, others)
                if not wanted or _covered(self.get(*key) or {}) & wanted
            ]
        if resource_type == "Observation" and "unsorted_vitals" in self.defects:
            unsorted = [(n, v) for n, v in params if not n.startswith("_sort")]
            keys = super()._matches(resource_type, unsorted)
            return sorted(keys, key=lambda k: str((self.get(*k) or {}).get("effectiveDateTime")))
        return super()._matches(resource_type, params)

    def _patient_matches(self, patient: dict[str, Any], name: str, value: str) -> bool:
        base, _, modifier = name.partition(":")
        if base in _STRING_PARAMS:
            parts = _name_parts(patient, base)
            wanted = value.lower()
            contains = modifier == "contains" or (
                base == "family"
                and not modifier
                and self.version == "stu3"
                and "starts_with_only" not in self.defects
            )
            if contains:
                return any(wanted in part.lower() for part in parts)
            return any(part.lower().startswith(wanted) for part in parts)
        if base == "birthdate":
            return patient.get("birthDate") == value.removeprefix("eq")
        if base == "gender":
            return patient.get("gender") == value
        system, _, code = value.rpartition("|")
        return any(
            identifier.get("value") == code and (not system or identifier.get("system") == system)
            for identifier in patient.get("identifier", [])
        )

    def _search(self, resource_type: str, params: list[tuple[str, str]]) -> _Answer:
        if "ignores_count" in self.defects:
            params = [(n, v) for n, v in params if n != "_count"]
        return super()._search(resource_type, params)

    def _searchset(
        self,
        snapshot_id: str,
        snapshot: _Snapshot,
        offset: int,
        params: list[tuple[str, str]],
    ) -> _Answer:
        answer = super()._searchset(snapshot_id, snapshot, offset, params)
        if "no_total" not in self.defects:
            return answer
        bundle = json.loads(answer.body)
        bundle.pop("total", None)
        return self._resource_answer(answer.status, bundle)

    # -- token ---------------------------------------------------------------------------------

    def _token(self, method: str, handler: _Handler, body: bytes) -> _Answer:
        answer = super()._token(method, handler, body)
        if "token_cacheable" in self.defects:
            answer.headers = [
                (n, v) for n, v in answer.headers if n.lower() not in ("cache-control", "pragma")
            ]
        return answer


_PATIENT_PARAMS = frozenset({*_STRING_PARAMS, "birthdate", "gender", "identifier"})


def _name_parts(patient: dict[str, Any], param: str) -> list[str]:
    parts: list[str] = []
    for name in patient.get("name", []):
        family = name.get("family")
        families = family if isinstance(family, list) else [family] if family else []
        given = list(name.get("given", []))
        if param == "family":
            parts += families
        elif param == "given":
            parts += given
        else:
            parts += families + given + list(name.get("prefix", [])) + list(name.get("suffix", []))
    return [p for p in parts if isinstance(p, str)]


def _covered(coverage: dict[str, Any]) -> set[str]:
    """Ids of the patients a Coverage is for (R4/STU3 beneficiary, DSTU2 subscriber)."""
    found = set()
    for field in ("beneficiary", "subscriber", "patient"):
        reference = (coverage.get(field) or {}).get("reference")
        if isinstance(reference, str):
            found.add(reference.split("/")[-1])
    return found
