"""Sample data into the sandbox store on Azurite: Synthea bundles and generated patients load,
read and search back the way the Patients app asks, and loading again changes nothing."""

from __future__ import annotations

import json
import shutil
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from shared.sandbox.generate import generate_patients, generate_shared
from shared.sandbox.store import SUPPORTED_TYPES, SandboxStore
from shared.sandbox.synthea import InvalidBundle, load_synthea
from tests.support import sandbox as support
from tests.support.fixtures import synthea_files
from tests.support.sandbox import all_rows

sandbox_table = support.sandbox_table  # fixtures: a fresh Azurite table, a store on it
sandbox_store = support.sandbox_store

BUNDLES = synthea_files("r4")
SYNTHEA = BUNDLES[0].parent


def entries(path: Path) -> list[dict[str, Any]]:
    return [e["resource"] for e in json.loads(path.read_text(encoding="utf-8"))["entry"]]


def folded(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


# -- Synthea -------------------------------------------------------------------------------


def test_synthea_bundles_load_with_a_count_per_type(sandbox_store: SandboxStore) -> None:
    source = [r for path in BUNDLES for r in entries(path)]
    report = load_synthea(sandbox_store, BUNDLES)
    types = Counter(r["resourceType"] for r in source)
    assert report.stored == {t: n for t, n in types.items() if t in SUPPORTED_TYPES}
    assert report.skipped == {t: n for t, n in types.items() if t not in SUPPORTED_TYPES}
    assert report.seconds > 0


def test_a_folder_loads_the_bundles_in_it(sandbox_store: SandboxStore) -> None:
    report = load_synthea(sandbox_store, [SYNTHEA])
    assert report.stored["Patient"] == len(BUNDLES)


def test_synthea_patient_is_found_by_family_and_its_chart_by_patient(
    sandbox_store: SandboxStore,
) -> None:
    load_synthea(sandbox_store, BUNDLES)
    for path in BUNDLES:
        source = entries(path)
        (patient,) = [r for r in source if r["resourceType"] == "Patient"]
        family = patient["name"][0]["family"]
        found = sandbox_store.search("Patient", [("family", family)])
        assert patient["id"] in {r["id"] for r in found.resources}
        vitals = sandbox_store.search("Observation", [("patient", patient["id"])])
        assert vitals.total == sum(r["resourceType"] == "Observation" for r in source)
        conditions = sandbox_store.search("Condition", [("patient", patient["id"])])
        assert conditions.total == sum(r["resourceType"] == "Condition" for r in source)


def test_synthea_references_read_back_as_type_and_id(sandbox_store: SandboxStore) -> None:
    load_synthea(sandbox_store, BUNDLES[:1])
    source = entries(BUNDLES[0])
    (request, *_) = [r for r in source if r["resourceType"] == "MedicationRequest"]
    stored = sandbox_store.read("MedicationRequest", request["id"])
    for element in ("subject", "requester", "encounter"):
        resource_type, _, resource_id = stored[element]["reference"].partition("/")
        assert sandbox_store.read(resource_type, resource_id)["id"] == resource_id


def test_loading_synthea_twice_changes_nothing(
    sandbox_store: SandboxStore, sandbox_table: Any
) -> None:
    first = load_synthea(sandbox_store, BUNDLES[:2])
    rows = len(all_rows(sandbox_table))
    second = load_synthea(sandbox_store, BUNDLES[:2])
    assert (second.stored, second.skipped) == (first.stored, first.skipped)
    assert len(all_rows(sandbox_table)) == rows


def test_a_file_that_is_not_a_bundle_stops_the_load_before_anything_is_written(
    sandbox_store: SandboxStore, sandbox_table: Any, tmp_path: Path
) -> None:
    shutil.copy(BUNDLES[0], tmp_path / "a.json")
    (tmp_path / "b.json").write_text('{"resourceType": "Patient"}', encoding="utf-8")
    (tmp_path / "c.json").write_text("{not json", encoding="utf-8")
    for broken in ("b.json", "c.json"):
        with pytest.raises(InvalidBundle) as raised:
            load_synthea(sandbox_store, [tmp_path / "a.json", tmp_path / broken])
        assert raised.value.source == broken
    assert all_rows(sandbox_table) == []


# -- generated patients --------------------------------------------------------------------


def generated(count: int) -> list[dict[str, Any]]:
    return generate_shared() + [r for chart in generate_patients(count, seed=4) for r in chart]


def test_generated_patients_load_twice_with_the_same_counts(
    sandbox_store: SandboxStore, sandbox_table: Any
) -> None:
    resources = generated(12)
    first = sandbox_store.load(resources)
    rows = len(all_rows(sandbox_table))
    second = sandbox_store.load(generated(12))
    assert first.stored == second.stored == dict(Counter(r["resourceType"] for r in resources))
    assert len(all_rows(sandbox_table)) == rows
    assert sandbox_store.search("Patient", [("_count", "200")]).total == 12


def test_the_apps_queries_answer_from_generated_charts(sandbox_store: SandboxStore) -> None:
    resources = generated(6)
    sandbox_store.load(resources)
    patient = resources[len(generate_shared())]
    own = [r for r in resources if r["id"].startswith(patient["id"] + "-")]
    latest = max(
        (r for r in own if r["resourceType"] == "Encounter"), key=lambda e: e["period"]["start"]
    )

    last_visit = sandbox_store.search(
        "Encounter", [("patient", patient["id"]), ("_sort", "-date"), ("_count", "1")]
    )
    assert [r["id"] for r in last_visit.resources] == [latest["id"]]
    assert last_visit.resources[0]["location"][0]["location"]["display"]

    vitals = sandbox_store.search(
        "Observation",
        [("patient", patient["id"]), ("category", "vital-signs"), ("_sort", "-date")],
    )
    assert vitals.total == sum(r["resourceType"] == "Observation" for r in own)
    dates = [r["effectiveDateTime"] for r in vitals.resources]
    assert dates == sorted(dates, reverse=True)

    (mrn,) = [i["value"] for i in patient["identifier"]]
    by_mrn = sandbox_store.search("Patient", [("identifier", mrn)])
    assert [r["id"] for r in by_mrn.resources] == [patient["id"]]


def test_generated_accented_family_is_found_without_its_accents(
    sandbox_store: SandboxStore,
) -> None:
    charts = list(generate_patients(400, seed=4))
    accented = next(
        c for c in charts if folded(c[0]["name"][0]["family"]) != c[0]["name"][0]["family"]
    )
    sandbox_store.load([*generate_shared(), accented[0]])
    plain = folded(accented[0]["name"][0]["family"]).lower()
    found = sandbox_store.search("Patient", [("family", plain)])
    assert [r["id"] for r in found.resources] == [accented[0]["id"]]


# -- the demo seed -----------------------------------------------------------------------------


def test_the_demo_seed_loads_generated_and_synthea_patients(sandbox_store: SandboxStore) -> None:
    from tools.bootstrap import seed_sandbox

    report = seed_sandbox(sandbox_store, patients=2, synthea=SYNTHEA)
    assert (report["patients_loaded"], report["patients_present"]) == (2, 0)
    assert report["synthea_patients"] == len(BUNDLES)
    assert report["warnings"] == []


def test_the_demo_seed_warns_when_the_synthea_folder_is_missing(
    sandbox_store: SandboxStore, tmp_path: Path
) -> None:
    from tools.bootstrap import seed_sandbox

    report = seed_sandbox(sandbox_store, patients=1, synthea=tmp_path / "gone")
    assert report["synthea_patients"] == 0
    assert report["patients_loaded"] == 1
    (warning,) = report["warnings"]
    assert str(tmp_path / "gone") in warning and "only generated patients" in warning
