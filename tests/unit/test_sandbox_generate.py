"""The synthetic sandbox population: repeatable, valid R4, plausible, and shaped for the
Patients app (docs/patients-app.md)."""

from __future__ import annotations

import itertools
import json
import statistics
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from shared.sandbox.generate import REFERENCE_DATE, generate_patients, generate_shared

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
COVERAGE_CLASS = "http://terminology.hl7.org/CodeSystem/coverage-class"

# UCUM unit of each single-valued vital sign, by LOINC code (FHIR R4 vital signs profile).
VITAL_UNITS = {
    "8867-4": "/min",  # heart rate
    "9279-1": "/min",  # respiratory rate
    "8310-5": "Cel",  # body temperature
    "2708-6": "%",  # oxygen saturation
    "29463-7": "kg",  # body weight
    "8302-2": "cm",  # body height
    "39156-5": "kg/m2",  # body mass index
}
SYSTOLIC, DIASTOLIC, BP_PANEL = "8480-6", "8462-4", "85354-9"
# What a clinician would accept as a real measurement, any age, ill or well.
PLAUSIBLE = {
    "8867-4": (40, 200),
    "9279-1": (8, 60),
    "8310-5": (35.0, 41.0),
    "2708-6": (85, 100),
    "29463-7": (2.0, 200.0),
    "8302-2": (40.0, 210.0),
    "39156-5": (10.0, 50.0),
    SYSTOLIC: (75, 200),
    DIASTOLIC: (40, 120),
}
SEVERITIES = {"255604002", "6736007", "24484000"}  # mild, moderate, severe


@pytest.fixture(scope="module")
def shared() -> list[dict[str, Any]]:
    return generate_shared()


@pytest.fixture(scope="module")
def population() -> list[list[dict[str, Any]]]:
    """Two hundred patients of seed 0, each a list: the Patient, then its resources."""
    return list(generate_patients(200))


@pytest.fixture(scope="module")
def thousand() -> list[list[dict[str, Any]]]:
    return list(generate_patients(1000, seed=11))


def of_type(patients: list[list[dict[str, Any]]], resource_type: str) -> Iterator[dict[str, Any]]:
    for chart in patients:
        yield from (r for r in chart if r["resourceType"] == resource_type)


def by_key(resources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{r['resourceType']}/{r['id']}": r for r in resources}


def references(value: Any) -> Iterator[dict[str, Any]]:
    """Every Reference (object with a ``reference``) anywhere in ``value``."""
    if isinstance(value, dict):
        if isinstance(value.get("reference"), str):
            yield value
        for item in value.values():
            yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def age_at(patient: dict[str, Any], moment: datetime) -> float:
    return (moment.date() - date.fromisoformat(patient["birthDate"])).days / 365.25


def vitals_by_code(chart: list[dict[str, Any]]) -> dict[str, list[tuple[dict[str, Any], float]]]:
    """LOINC code -> [(observation, value)], components of the BP panel by their own codes."""
    found: dict[str, list[tuple[dict[str, Any], float]]] = defaultdict(list)
    for obs in (r for r in chart if r["resourceType"] == "Observation"):
        parts = obs.get("component") or [obs]
        for part in parts:
            found[part["code"]["coding"][0]["code"]].append((obs, part["valueQuantity"]["value"]))
    return found


# -- repeatability -------------------------------------------------------------------------


def test_same_seed_gives_byte_identical_output() -> None:
    first = json.dumps([generate_shared(5), list(generate_patients(15, seed=5))])
    again = json.dumps([generate_shared(5), list(generate_patients(15, seed=5))])
    assert first == again


def test_patient_is_the_same_alone_or_in_any_batch() -> None:
    batch = list(generate_patients(30, seed=3))
    for index in (0, 17, 29):
        assert next(generate_patients(1, seed=3, start=index)) == batch[index]
    assert list(generate_patients(5, seed=3, start=10)) == batch[10:15]


def test_different_seeds_give_different_patients() -> None:
    names_0 = [chart[0]["name"] for chart in generate_patients(20, seed=0)]
    names_1 = [chart[0]["name"] for chart in generate_patients(20, seed=1)]
    assert sum(a != b for a, b in zip(names_0, names_1, strict=True)) >= 15


def test_ids_do_not_depend_on_the_seed() -> None:
    ids = [chart[0]["id"] for chart in generate_patients(3, seed=9, start=120)]
    assert ids == ["p-000120", "p-000121", "p-000122"]


def test_negative_count_or_start_is_refused() -> None:
    with pytest.raises(ValueError):
        next(generate_patients(-1))
    with pytest.raises(ValueError):
        next(generate_patients(1, start=-1))


def test_nothing_happens_after_the_reference_date_or_before_birth(
    population: list[list[dict[str, Any]]],
) -> None:
    for chart in population:
        born = datetime.fromisoformat(chart[0]["birthDate"]).replace(tzinfo=UTC)
        for resource in chart[1:]:
            for key in ("effectiveDateTime", "onsetDateTime", "recordedDate", "authoredOn"):
                if key in resource:
                    assert born <= instant(resource[key]) <= REFERENCE_DATE, resource["id"]
            if resource["resourceType"] == "Encounter":
                period = resource["period"]
                assert born <= instant(period["start"]) <= REFERENCE_DATE
                assert instant(period.get("end", period["start"])) <= REFERENCE_DATE


# -- valid R4, connected -------------------------------------------------------------------


def test_every_generated_resource_validates_as_r4(shared: list[dict[str, Any]]) -> None:
    resources = shared + [r for chart in generate_patients(25, seed=2) for r in chart]
    for resource in resources:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    assert {r["resourceType"] for r in resources} >= {
        "Patient", "Encounter", "Observation", "Condition", "AllergyIntolerance",
        "MedicationRequest", "Coverage", "Practitioner", "Location", "Organization",
    }  # fmt: skip


def test_every_reference_resolves_within_the_generated_set(
    shared: list[dict[str, Any]], population: list[list[dict[str, Any]]]
) -> None:
    known = by_key(shared + [r for chart in population for r in chart])
    for resource in known.values():
        for reference in references(resource):
            assert reference["reference"] in known, (resource["id"], reference)


def test_shared_references_carry_the_target_name_as_display(
    shared: list[dict[str, Any]], population: list[list[dict[str, Any]]]
) -> None:
    directory = by_key(shared)
    checked = 0
    for resource in [r for chart in population for r in chart] + shared:
        for reference in references(resource):
            target = directory.get(reference["reference"])
            if target is None:
                continue
            name = target["name"]
            if target["resourceType"] == "Practitioner":
                name = f"Dr. {name[0]['given'][0]} {name[0]['family']}"
            assert reference["display"] == name
            checked += 1
    assert checked > 1000


def test_ids_are_unique_across_a_thousand_patients(
    shared: list[dict[str, Any]], thousand: list[list[dict[str, Any]]]
) -> None:
    keys = [f"{r['resourceType']}/{r['id']}" for r in shared + [r for c in thousand for r in c]]
    assert len(keys) == len(set(keys))


def test_each_chart_starts_with_its_patient_and_belongs_to_it(
    population: list[list[dict[str, Any]]],
) -> None:
    for chart in population:
        patient = chart[0]
        assert patient["resourceType"] == "Patient"
        own = f"Patient/{patient['id']}"
        for resource in chart[1:]:
            assert resource["id"].startswith(patient["id"] + "-")
            owner = resource.get("subject") or resource.get("patient") or resource["beneficiary"]
            assert owner["reference"] == own


def test_charts_average_thirty_to_forty_resources(
    population: list[list[dict[str, Any]]],
) -> None:
    assert 30 <= statistics.mean(len(chart) for chart in population) <= 40


# -- what the Patients app reads -----------------------------------------------------------


def test_patients_have_an_mrn_of_type_mr(population: list[list[dict[str, Any]]]) -> None:
    mrns = []
    for patient in of_type(population, "Patient"):
        (mrn,) = [i for i in patient["identifier"] if i["type"]["coding"][0]["code"] == "MR"]
        assert mrn["type"]["coding"][0]["system"] == V2_0203
        assert mrn["system"] and mrn["value"]
        mrns.append(mrn["value"])
    assert len(set(mrns)) == len(mrns)


def test_patients_have_an_official_name_gender_and_birth_date(
    population: list[list[dict[str, Any]]],
) -> None:
    for patient in of_type(population, "Patient"):
        official = patient["name"][0]
        assert official["use"] == "official"
        assert official["family"] and 1 <= len(official["given"]) <= 2
        assert patient["gender"] in {"male", "female", "other", "unknown"}
        date.fromisoformat(patient["birthDate"])


def test_adults_have_a_prefix_fitting_their_gender(
    population: list[list[dict[str, Any]]],
) -> None:
    fitting = {"male": {"Mr.", "Dr."}, "female": {"Ms.", "Mrs.", "Dr."}}
    adults = [p for p in of_type(population, "Patient") if age_at(p, REFERENCE_DATE) >= 18]
    for patient in adults:
        (prefix,) = patient["name"][0]["prefix"]
        assert prefix in fitting.get(patient["gender"], {"Mx.", "Dr."})


def test_some_patients_have_a_second_name_with_its_use(
    population: list[list[dict[str, Any]]],
) -> None:
    uses = Counter(n["use"] for p in of_type(population, "Patient") for n in p["name"][1:])
    assert set(uses) <= {"maiden", "nickname"}
    assert uses["maiden"] > 0 and uses["nickname"] > 0


def test_patients_name_their_general_practitioner(
    shared: list[dict[str, Any]], population: list[list[dict[str, Any]]]
) -> None:
    practitioners = {r["id"] for r in shared if r["resourceType"] == "Practitioner"}
    for patient in of_type(population, "Patient"):
        (gp,) = patient["generalPractitioner"]
        assert gp["reference"].removeprefix("Practitioner/") in practitioners
        assert gp["display"].startswith("Dr. ")


def test_encounters_have_type_display_period_and_a_named_location(
    population: list[list[dict[str, Any]]],
) -> None:
    for encounter in of_type(population, "Encounter"):
        assert encounter["type"][0]["coding"][0]["system"] == SNOMED
        assert encounter["type"][0]["coding"][0]["display"]
        assert encounter["class"]["code"] in {"AMB", "IMP", "EMER"}
        assert encounter["period"]["start"]
        location = encounter["location"][0]["location"]
        assert location["reference"].startswith("Location/") and location["display"]


def test_only_a_latest_inpatient_stay_is_still_in_progress(
    population: list[list[dict[str, Any]]],
) -> None:
    in_progress = 0
    for chart in population:
        encounters = sorted(
            (r for r in chart if r["resourceType"] == "Encounter"),
            key=lambda e: e["period"]["start"],
        )
        assert 2 <= len(encounters) <= 4
        for encounter in encounters[:-1]:
            assert encounter["status"] == "finished" and "end" in encounter["period"]
        if encounters[-1]["status"] == "in-progress":
            in_progress += 1
            assert encounters[-1]["class"]["code"] == "IMP"
            assert "end" not in encounters[-1]["period"]
            assert encounters[-1]["location"][0]["location"]["display"].startswith(("Ward", "Card"))
    assert in_progress > 0


def test_conditions_have_a_snomed_code_severity_and_recorded_date(
    population: list[list[dict[str, Any]]],
) -> None:
    conditions = list(of_type(population, "Condition"))
    assert len(conditions) > 100
    for condition in conditions:
        code = condition["code"]["coding"][0]
        assert code["system"] == SNOMED and code["display"]
        assert condition["severity"]["coding"][0]["code"] in SEVERITIES
        assert instant(condition["onsetDateTime"]) <= instant(condition["recordedDate"])
        assert condition["category"][0]["coding"][0]["code"] == "problem-list-item"
        status = condition["clinicalStatus"]["coding"][0]["code"]
        assert status == ("resolved" if "abatementDateTime" in condition else "active")
        assert condition["verificationStatus"]["coding"][0]["code"] == "confirmed"


def test_allergies_have_substance_status_reactions_and_a_note(
    population: list[list[dict[str, Any]]],
) -> None:
    allergies = list(of_type(population, "AllergyIntolerance"))
    assert len(allergies) > 50
    for allergy in allergies:
        assert allergy["code"]["text"] and allergy["code"]["coding"][0]["display"]
        assert allergy["clinicalStatus"]["coding"][0]["code"] in {"active", "inactive"}
        assert allergy["verificationStatus"]["coding"][0]["code"]
        assert allergy["recordedDate"] and allergy["note"][0]["text"]
        (reaction,) = allergy["reaction"]
        assert reaction["substance"]["text"] == allergy["code"]["text"]
        assert all(
            m["text"] and m["coding"][0]["system"] == SNOMED for m in reaction["manifestation"]
        )
        assert reaction["severity"] in {"mild", "moderate", "severe"}


def test_medication_requests_name_drug_prescriber_and_dosage(
    population: list[list[dict[str, Any]]],
) -> None:
    requests = list(of_type(population, "MedicationRequest"))
    assert len(requests) > 50
    for request in requests:
        medication = request["medicationCodeableConcept"]
        assert medication["coding"][0]["system"] == RXNORM and medication["text"]
        assert request["requester"]["reference"].startswith("Practitioner/")
        assert request["requester"]["display"].startswith("Dr. ")
        assert request["dosageInstruction"][0]["text"]
        assert request["authoredOn"] and request["intent"] == "order"
        ends = date.fromisoformat(request["dispenseRequest"]["validityPeriod"]["end"])
        assert request["status"] == ("completed" if ends < REFERENCE_DATE.date() else "active")


def test_each_patient_has_one_coverage_with_plan_group_and_subscriber(
    shared: list[dict[str, Any]], population: list[list[dict[str, Any]]]
) -> None:
    payors = {f"Organization/{r['id']}" for r in shared if r["resourceType"] == "Organization"}
    for chart in population:
        (coverage,) = [r for r in chart if r["resourceType"] == "Coverage"]
        assert coverage["status"] == "active" and coverage["subscriberId"]
        assert coverage["relationship"]["coding"][0]["code"] == "self"
        assert coverage["period"]["start"] <= coverage["period"]["end"]
        (payor,) = coverage["payor"]
        assert payor["reference"] in payors and payor["display"]
        classes = {c["type"]["coding"][0]["code"]: c for c in coverage["class"]}
        assert {c["type"]["coding"][0]["system"] for c in coverage["class"]} == {COVERAGE_CLASS}
        assert classes["group"]["value"] and classes["group"]["name"]
        assert classes["plan"]["value"] and classes["plan"]["name"]


# -- vital signs ---------------------------------------------------------------------------


def test_vital_signs_use_loinc_codes_and_ucum_units(
    population: list[list[dict[str, Any]]],
) -> None:
    seen: set[str] = set()
    for obs in of_type(population, "Observation"):
        category = obs["category"][0]["coding"][0]
        assert (category["code"], category["display"]) == ("vital-signs", "Vital Signs")
        code = obs["code"]["coding"][0]
        assert code["system"] == LOINC and code["display"]
        seen.add(code["code"])
        if code["code"] == BP_PANEL:
            continue
        quantity = obs["valueQuantity"]
        assert (quantity["system"], quantity["code"]) == (UCUM, VITAL_UNITS[code["code"]])
        assert quantity["unit"]
    assert seen == {*VITAL_UNITS, BP_PANEL}


def test_oxygen_saturation_also_carries_the_pulse_oximetry_code(
    population: list[list[dict[str, Any]]],
) -> None:
    for obs in of_type(population, "Observation"):
        codes = [c["code"] for c in obs["code"]["coding"]]
        if codes[0] == "2708-6":
            assert codes == ["2708-6", "59408-5"]


def test_vital_signs_are_taken_during_their_encounter(
    population: list[list[dict[str, Any]]],
) -> None:
    for chart in population:
        encounters = by_key([r for r in chart if r["resourceType"] == "Encounter"])
        for obs in (r for r in chart if r["resourceType"] == "Observation"):
            period = encounters[obs["encounter"]["reference"]]["period"]
            taken = instant(obs["effectiveDateTime"])
            assert instant(period["start"]) <= taken
            assert taken <= instant(period.get("end", REFERENCE_DATE.isoformat()))
            assert obs["status"] == "final"


def test_vital_signs_fall_in_plausible_ranges(population: list[list[dict[str, Any]]]) -> None:
    for chart in population:
        for code, readings in vitals_by_code(chart).items():
            low, high = PLAUSIBLE[code]
            for obs, value in readings:
                assert low <= value <= high, (code, value, obs["id"])


def test_children_have_faster_hearts_and_are_shorter_than_adults(
    population: list[list[dict[str, Any]]],
) -> None:
    heart: dict[bool, list[float]] = defaultdict(list)
    height: dict[bool, list[float]] = defaultdict(list)
    for chart in population:
        for code, readings in vitals_by_code(chart).items():
            for obs, value in readings:
                age = age_at(chart[0], instant(obs["effectiveDateTime"]))
                if age < 6 or age >= 18:
                    target = heart if code == "8867-4" else height if code == "8302-2" else None
                    if target is not None:
                        target[age < 6].append(value)
    assert statistics.mean(heart[True]) > statistics.mean(heart[False]) + 15
    assert statistics.mean(height[True]) < 120 < 150 < statistics.mean(height[False])


def test_blood_pressure_panel_has_both_components_and_no_value(
    population: list[list[dict[str, Any]]],
) -> None:
    panels = [o for o in of_type(population, "Observation") if "component" in o]
    assert len(panels) > 300
    for panel in panels:
        assert panel["code"]["coding"][0]["code"] == BP_PANEL
        assert not any(key.startswith("value") for key in panel)
        parts = {c["code"]["coding"][0]["code"]: c["valueQuantity"] for c in panel["component"]}
        assert set(parts) == {SYSTOLIC, DIASTOLIC}
        assert {q["code"] for q in parts.values()} == {"mm[Hg]"}
        assert parts[DIASTOLIC]["value"] < parts[SYSTOLIC]["value"]


def test_bmi_matches_the_weight_and_height_of_the_same_visit(
    population: list[list[dict[str, Any]]],
) -> None:
    checked = 0
    for chart in population:
        visit: dict[str, dict[str, float]] = defaultdict(dict)
        for code, readings in vitals_by_code(chart).items():
            for obs, value in readings:
                visit[obs["encounter"]["reference"]][code] = value
        for values in visit.values():
            if "39156-5" in values:
                expected = values["29463-7"] / (values["8302-2"] / 100) ** 2
                assert values["39156-5"] == pytest.approx(expected, abs=0.06)
                checked += 1
    assert checked > 300


def test_adult_weight_drifts_only_a_little_between_visits(
    population: list[list[dict[str, Any]]],
) -> None:
    for chart in population:
        if age_at(chart[0], REFERENCE_DATE) < 22:  # grown up before the first visit
            continue
        weights = sorted(
            (obs["effectiveDateTime"], value) for obs, value in vitals_by_code(chart)["29463-7"]
        )
        for (_, before), (_, after) in itertools.pairwise(weights):
            assert abs(after - before) / before < 0.12


# -- names ---------------------------------------------------------------------------------


def test_family_names_are_spread_thin(thousand: list[list[dict[str, Any]]]) -> None:
    families = Counter(chart[0]["name"][0]["family"] for chart in thousand)
    assert len(families) > 400
    assert families.most_common(1)[0][1] <= 0.01 * len(thousand)


def test_some_names_need_accent_insensitive_search(thousand: list[list[dict[str, Any]]]) -> None:
    def folded(text: str) -> str:
        return "".join(
            c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)
        )

    families = {chart[0]["name"][0]["family"] for chart in thousand}
    accented = {name for name in families if folded(name) != name}
    assert len(accented) > 50
