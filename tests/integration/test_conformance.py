"""The Patients-app conformance checker (tools/conformance) against real HTTP FHIR servers.

A server shaped for the app (tests/support/broken_fhir.py) passes every check in DSTU2 and STU3
and is checked in "R4 provider" mode in R4. Each defect the fixture can carry makes exactly the
check about it fail: a required one exits 1, a recommended one still exits 0. An unreachable
base URL exits 2; no secret or token is ever printed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from fhir.resources.R4B import testreport as r4b

from tests.support.broken_fhir import (
    CLIENT_ID,
    CLIENT_SECRET,
    OTHER_PATIENT_ID,
    PATIENT_ID,
    AppFhirServer,
    Member,
    members,
)
from tools.conformance import Report, main, run_checks
from tools.conformance.discover import Candidate, Gap, choose
from tools.conformance.runner import catalogue
from tools.testkit.data import REPO
from tools.testkit.fake_fhir import TOKEN_PATH, closed_port

TENANT = "7f7d6e1c-5a4b-4c3d-9e2f-1a0b9c8d7e6f"
Serve = Callable[..., AppFhirServer]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start ``AppFhirServer``s (``serve(version, *defects, **kwargs)``); all stop afterwards."""
    started: list[AppFhirServer] = []

    def start(version: str = "stu3", *defects: str, **kwargs: Any) -> AppFhirServer:
        server = AppFhirServer(version, defects, **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def check(server: AppFhirServer, **overrides: Any) -> Report:
    """Run the checker on ``server`` with the app's credentials (unless overridden)."""
    options: dict[str, Any] = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "tenant": TENANT,
        "timeout": 5,
    }
    return run_checks(server.base_url, **(options | overrides))


def failed(report: Report) -> set[str]:
    return set(report.failed_ids())


def batches(server: AppFhirServer) -> int:
    """How many batch Bundles were POSTed to the server's base."""
    base = urlsplit(server.base_url).path.rstrip("/")
    return sum(r.method == "POST" and r.path.rstrip("/") == base for r in server.requests())


def cli(
    argv: list[str], capsys: pytest.CaptureFixture[str], **environ: str
) -> tuple[int, str, str]:
    """``main`` with only ``environ`` as the environment; its exit code, stdout and stderr."""
    code = main(argv, environ=environ)
    out, err = capsys.readouterr()
    return code, out, err


# -- a server made for the app ------------------------------------------------------------------


@pytest.mark.parametrize("version", ["dstu2", "stu3"])
def test_a_server_made_for_the_app_passes_every_check(serve: Serve, version: str) -> None:
    report = check(serve(version))
    assert failed(report) == set(), report.to_text()
    assert (report.mode, report.exit_code) == (version, 0)
    skipped = {c.id for c in report.checks if c.result == "skip"}
    # DSTU2 only: dateEnded is judged on ended orders, and the chart's only order is active.
    assert skipped == ({"medication.date_ended"} if version == "dstu2" else set())


def test_an_r4_server_is_checked_in_r4_provider_mode(serve: Serve) -> None:
    report = check(serve("r4"))
    assert report.mode == "r4-provider"
    assert failed(report) == {"metadata.app_version"}, report.to_text()
    assert report.exit_code == 0
    assert any("dstu2 or stu3 face" in note for note in report.notes)
    assert "R4 provider mode" in report.to_text()


def test_the_first_patient_a_search_finds_is_the_one_checked(serve: Serve) -> None:
    report = check(serve("stu3"))
    assert report.check("patient.discover").evidence.startswith(f"Patient/{PATIENT_ID} via POST")


def test_patient_id_picks_the_patient_and_empty_chart_searches_are_skips(serve: Serve) -> None:
    report = check(serve("stu3"), patient_id=OTHER_PATIENT_ID)
    ids = [c.id for c in report.checks]
    assert "patient.discover" not in ids
    assert report.check("patient.read").evidence.startswith(f"HTTP 200 Patient/{OTHER_PATIENT_ID}")
    for check_id in ("observation.effective", "condition.display", "coverage.plan"):
        result = report.check(check_id)
        assert (result.result, result.evidence) == ("skip", "no entries")
    assert report.check("observation.entry").result == "pass"
    assert (report.outcome, report.exit_code) == ("incomplete", 3)


# -- required defects: exit 1 -------------------------------------------------------------------


def test_metadata_without_oauth_uris_fails_that_check_and_asks_no_token(serve: Serve) -> None:
    server = serve("stu3", "no_oauth_uris")
    report = check(server)
    assert failed(report) == {"metadata.oauth_uris"}
    assert report.check("token.request").result == "skip"
    assert report.check("patient.read").evidence == "no access token (see the token checks)"
    assert server.token_requests() == 0
    assert report.exit_code == 1


def test_a_security_service_not_coded_oauth_fails_that_check(serve: Serve) -> None:
    report = check(serve("dstu2", "no_oauth_service"))
    assert failed(report) == {"metadata.security_service"}
    assert report.exit_code == 1


def test_a_refused_batch_fails_the_batch_checks_and_skips_the_chart(serve: Serve) -> None:
    report = check(serve("dstu2", "no_batch"))
    assert failed(report) == {"metadata.batch", "batch.response"}
    assert report.check("batch.response").evidence.startswith("HTTP 405")
    assert report.check("observation.sorted").evidence == "the batch failed"
    assert report.exit_code == 1


def test_search_bundles_without_total_fail_the_total_check(serve: Serve) -> None:
    report = check(serve("stu3", "no_total"))
    assert failed(report) == {"patient.search.total"}
    assert "in 8 of 8" in report.check("patient.search.total").evidence
    assert report.exit_code == 1


def test_a_server_ignoring_count_fails_the_count_checks(serve: Serve) -> None:
    report = check(serve("stu3", "ignores_count", roster=members(21)))
    # Discovery asks _count=20 of 23 patients; the chart asks one Encounter of two.
    assert {"patient.search.count", "encounter.entry"} <= failed(report)
    assert "(23 > 20)" in report.check("patient.search.count").evidence
    assert report.exit_code == 1


def test_vital_signs_oldest_first_fail_the_sort_check(serve: Serve) -> None:
    report = check(serve("stu3", "unsorted_vitals"))
    assert failed(report) == {"observation.sorted"}
    assert report.check("observation.sorted").evidence.startswith("Observation/vs-temp")
    assert report.exit_code == 1


def test_a_patient_without_birth_date_fails_that_check(serve: Serve) -> None:
    report = check(serve("stu3", "no_birth_date"))
    assert failed(report) == {"patient.read.birth_date"}
    evidence = report.check("patient.read.birth_date").evidence
    assert evidence == f"Patient.birthDate missing in Patient/{PATIENT_ID}"
    assert report.check("patient.search.birthdate").result == "skip"
    assert report.exit_code == 1


def test_an_mrn_without_type_fails_the_mrn_check(serve: Serve) -> None:
    report = check(serve("dstu2", "no_mrn_type"))
    assert failed(report) == {"patient.read.mrn"}
    assert report.check("patient.search.identifier").evidence == "no MRN to search by"
    assert report.exit_code == 1


def test_an_encounter_type_without_display_fails_that_check(serve: Serve) -> None:
    report = check(serve("dstu2", "no_encounter_type_display"))
    assert failed(report) == {"encounter.type_display"}
    assert "Encounter/enc-latest" in report.check("encounter.type_display").evidence
    assert report.exit_code == 1


def test_missing_credentials_fail_the_token_request_with_how_to_give_them(serve: Serve) -> None:
    report = check(serve("stu3"), client_id=None, client_secret=None)
    assert failed(report) == {"token.request"}
    assert "EHRB_CHECK_CLIENT_SECRET" in report.check("token.request").evidence
    assert report.exit_code == 1


def test_an_open_server_fails_oauth_uris_unless_declared_open(serve: Serve) -> None:
    server = serve("stu3", protected=False)
    assert failed(check(server)) == {"metadata.security_service", "metadata.oauth_uris"}
    open_report = check(server, no_auth=True, client_id=None, client_secret=None)
    assert failed(open_report) == set()
    assert open_report.check("metadata.oauth_uris").result == "skip"
    assert open_report.check("token.request").evidence == "--no-auth: no token is requested"
    assert open_report.check("batch.response").result == "pass"


def test_an_unknown_fhir_version_fails_and_skips_every_fhir_check(serve: Serve) -> None:
    server = serve("stu3")
    statement = server.capability_statement() | {"fhirVersion": "5.0.0"}
    server.fail(200, body=statement, path="metadata")
    report = check(server)
    assert report.check("metadata.fhir_version").evidence == "fhirVersion '5.0.0'"
    assert report.check("patient.read").evidence == "no usable fhirVersion in the metadata"
    assert report.exit_code == 1


def test_a_timeout_is_a_failed_check_with_evidence(serve: Serve) -> None:
    server = serve("stu3")
    server.slow(3, path=f"Patient/{PATIENT_ID}")
    report = check(server, timeout=0.5)
    assert report.check("patient.read").evidence == "no answer within 0.5 s (timeout)"
    assert report.check("patient.read.family").evidence == "the Patient read failed"
    assert report.exit_code == 1


def test_an_answer_that_is_not_json_is_a_failed_check_and_dependants_skip(serve: Serve) -> None:
    server = serve("stu3")
    server.garbage(path=f"Patient/{PATIENT_ID}")
    report = check(server)
    assert report.check("patient.read").evidence.startswith("HTTP 200, body is not JSON")
    assert report.check("patient.read.mrn").evidence == "the Patient read failed"
    assert report.check("batch.response").evidence == "the Patient read failed"
    assert report.exit_code == 1


def test_a_crash_inside_a_step_becomes_a_failed_check(
    serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> object:
        raise RuntimeError("rules table unreadable")

    monkeypatch.setattr("tools.conformance.chart.rules", broken)
    report = check(serve("stu3"))
    crashed = report.check("checker.chart")
    assert (crashed.level, crashed.result) == ("required", "fail")
    assert crashed.evidence == (
        "checker stopped in step chart: RuntimeError: rules table unreadable"
    )
    assert report.check("patient.read").result == "pass"
    assert report.exit_code == 1


# -- recommended defects: still exit 0 ----------------------------------------------------------


def test_a_starts_with_family_search_fails_only_the_recommended_contains_check(
    serve: Serve,
) -> None:
    report = check(serve("stu3", "starts_with_only"))
    assert failed(report) == {"patient.search.family_contains"}
    assert report.check("patient.search.family").result == "pass"
    assert report.exit_code == 0


def test_a_cacheable_token_answer_fails_only_the_no_store_check(serve: Serve) -> None:
    report = check(serve("stu3", "token_cacheable"))
    assert failed(report) == {"token.no_store"}
    assert report.check("token.no_store").evidence == "no Cache-Control header"
    assert report.exit_code == 0


def test_a_practitioner_without_display_fails_only_that_recommended_check(serve: Serve) -> None:
    report = check(serve("dstu2", "no_practitioner_display"))
    assert failed(report) == {"patient.read.practitioner"}
    assert "careProvider" in report.check("patient.read.practitioner").evidence
    assert report.exit_code == 0


def test_an_unreadable_location_fails_only_recommended_checks(serve: Serve) -> None:
    report = check(serve("stu3", "no_location"))
    # The fake lists only the types it holds, so the metadata loses Location too.
    assert failed(report) == {"metadata.resources", "location.read"}
    assert "HTTP 404" in report.check("location.read").evidence
    assert report.exit_code == 0


# -- required checks that could not be judged: exit 3 -------------------------------------------


def test_patients_without_coverage_make_the_run_incomplete(serve: Serve) -> None:
    report = check(serve("stu3", "no_coverage"))
    assert report.failed_ids("required") == []
    assert [c.id for c in report.unverified()] == [
        "coverage.plan",
        "coverage.period",
        "coverage.subscriber_id",
    ]
    assert (report.outcome, report.exit_code, report.ok) == ("incomplete", 3, False)


def test_an_unjudged_check_says_what_the_patient_would_need(serve: Serve) -> None:
    report = check(serve("stu3", "no_coverage"))
    plan = report.check("coverage.plan")
    assert (plan.result, plan.evidence, plan.needs) == ("skip", "no entries", "coverage")


def test_a_required_failure_outranks_unjudged_checks(serve: Serve) -> None:
    report = check(serve("stu3", "no_coverage", "no_birth_date"))
    assert report.unverified() != []
    assert (report.outcome, report.exit_code) == ("fail", 1)


def test_checks_that_do_not_apply_with_no_auth_leave_the_run_a_pass(serve: Serve) -> None:
    report = check(serve("stu3", protected=False), no_auth=True, client_id=None, client_secret=None)
    inapplicable = {c.id for c in report.checks if not c.applies}
    assert inapplicable == {
        "metadata.security_service",
        "metadata.oauth_uris",
        "token.request",
        "token.access_token",
        "token.token_type",
        "token.expires_in",
        "token.no_store",
    }
    assert (report.outcome, report.exit_code) == ("pass", 0)
    assert "(7 not applicable). PASS: every required check passed" in report.summary_line()


def test_the_incomplete_verdict_is_the_last_line_after_what_was_not_judged(
    serve: Serve, capsys: pytest.CaptureFixture[str]
) -> None:
    server = serve("stu3", "no_coverage")
    code, out, _ = cli(
        [server.base_url, "--tenant", TENANT],
        capsys,
        EHRB_CHECK_CLIENT_ID=CLIENT_ID,
        EHRB_CHECK_CLIENT_SECRET=CLIENT_SECRET,
    )
    lines = out.rstrip().splitlines()
    assert code == 3
    assert lines[-1].endswith(
        "3 skipped (3 required). INCOMPLETE: 3 required check(s) could not be judged, "
        "so this is not a pass"
    )
    listed = lines[lines.index("Required checks that could not be judged:") + 1 : -2]
    assert listed == [
        f"  coverage.{name}: no entries; it runs on a patient with coverage (--patient-id)"
        for name in ("plan", "period", "subscriber_id")
    ]


def test_json_carries_the_outcome_and_what_was_not_judged(
    serve: Serve, capsys: pytest.CaptureFixture[str]
) -> None:
    server = serve("stu3", "no_coverage")
    code, out, _ = cli(
        [server.base_url, "--json", "--tenant", TENANT],
        capsys,
        EHRB_CHECK_CLIENT_ID=CLIENT_ID,
        EHRB_CHECK_CLIENT_SECRET=CLIENT_SECRET,
    )
    summary = json.loads(out)["summary"]
    assert code == summary["exit_code"] == 3
    assert (summary["outcome"], summary["ok"], summary["required_unverified"]) == (
        "incomplete",
        False,
        3,
    )
    assert summary["unverified"][0] == {
        "id": "coverage.plan",
        "why": "no entries",
        "needs": "coverage",
    }


# -- choosing the patient -----------------------------------------------------------------------


def test_the_fullest_chart_is_checked_rather_than_the_first_patient_found(serve: Serve) -> None:
    sparse = Member("pat-sparse", "Ashdown", frozenset({"vitals"}))
    report = check(serve("stu3", roster=[sparse]))
    assert [p.id for p in report.patients] == [PATIENT_ID]
    assert report.check("patient.discover").evidence.startswith(f"Patient/{PATIENT_ID} via POST")
    assert report.exit_code == 0


def test_equally_full_charts_go_to_the_first_in_search_order(serve: Serve) -> None:
    twin = Member("pat-twin", "Ashdown")
    report = check(serve("stu3", roster=[twin]))
    assert [p.id for p in report.patients] == ["pat-twin"]


def test_fewer_required_gaps_outrank_fewer_gaps() -> None:
    lacks_coverage = Candidate("pat-a", 0, (Gap("coverage.plan", "required", "coverage"),))
    lacks_two_recommended = Candidate(
        "pat-b",
        1,
        (
            Gap("location.read", "recommended", "an encounter at a Location"),
            Gap("allergy.reaction", "recommended", "allergies with reactions"),
        ),
    )
    assert choose([lacks_coverage, lacks_two_recommended], 1) == [lacks_two_recommended]


def test_the_reason_says_what_the_chart_has_and_lacks(serve: Serve) -> None:
    report = check(serve("stu3", "no_coverage"))
    assert report.patients[0].why == (
        "the fullest chart: has vital signs, conditions, an encounter at a Location, allergies "
        "with reactions, medications; lacks coverage (no patient read has it); charts read: 2 "
        "of the 2 patients found by POST Patient/_search"
    )


def test_discovery_reads_one_search_page_and_one_batch_per_candidate(serve: Serve) -> None:
    server = serve("stu3", roster=members(25, sections=()))
    report = check(server)
    discovery = next(r for r in server.requests() if r.path.endswith("/Patient/_search"))
    assert parse_qsl(discovery.body.decode()) == [("_count", "20")]
    # One batch per candidate of the page, then the chart step's own for the patient chosen.
    assert batches(server) == 20 + 1
    # Nothing to choose between: the first in search order.
    assert [p.id for p in report.patients] == ["pat-00"]


def test_reading_charts_stops_at_the_first_with_nothing_missing(serve: Serve) -> None:
    server = serve("stu3", roster=members(3))
    report = check(server)
    assert [p.id for p in report.patients] == ["pat-00"]
    assert batches(server) == 1 + 1


def test_patient_id_reads_no_other_chart(serve: Serve) -> None:
    server = serve("stu3", roster=members(3))
    report = check(server, patient_id=PATIENT_ID)
    assert [(p.id, p.why) for p in report.patients] == [(PATIENT_ID, "given with --patient-id")]
    assert batches(server) == 1


def test_when_no_chart_can_be_read_the_first_patient_found_is_checked(serve: Serve) -> None:
    sparse = Member("pat-sparse", "Ashdown", frozenset({"vitals"}))
    server = serve("stu3", "no_batch", roster=[sparse])
    report = check(server)
    assert [p.id for p in report.patients] == ["pat-sparse"]
    assert "no chart could be read to compare (Patient/pat-sparse: HTTP 405" in (
        report.patients[0].why
    )
    assert batches(server) == 1 + 1


# -- several patients (--patients N) -------------------------------------------------------------


def test_patients_n_checks_the_n_fullest_charts(serve: Serve) -> None:
    sparse = Member("pat-sparse", "Ashdown", frozenset({"vitals"}))
    twin = Member("pat-twin", "Brook")
    report = check(serve("stu3", roster=[sparse, twin]), patients=2)
    assert [p.id for p in report.patients] == ["pat-twin", PATIENT_ID]
    assert report.patients[1].why.startswith("the 2nd fullest chart: has vital signs")


def test_each_patient_check_says_how_many_patients_passed_it(serve: Serve) -> None:
    twin = Member("pat-twin", "Brook")
    report = check(serve("stu3", roster=[twin]), patients=3)
    plan = report.check("coverage.plan")
    assert (plan.result, plan.per_patient) == ("pass", {"pass": 2, "fail": 0, "skip": 1})
    assert (
        plan.evidence
        == f"2 of 3 patients passed; 1 skipped (Patient/{OTHER_PATIENT_ID}: no entries)"
    )
    assert report.check("metadata.batch").per_patient is None


def test_a_check_failing_for_one_patient_fails_naming_that_patient(serve: Serve) -> None:
    twin = Member("pat-twin", "Brook")
    report = check(serve("stu3", "no_birth_date", roster=[twin]), patients=2)
    birth = report.check("patient.read.birth_date")
    assert birth.result == "fail"
    assert birth.evidence == (
        f"1 of 2 patients passed; 1 failed (Patient/{PATIENT_ID}: "
        f"Patient.birthDate missing in Patient/{PATIENT_ID})"
    )
    assert report.exit_code == 1


def test_json_gives_the_per_patient_counts_and_the_patients(
    serve: Serve, capsys: pytest.CaptureFixture[str]
) -> None:
    server = serve("stu3", roster=[Member("pat-twin", "Brook")])
    code, out, _ = cli(
        [server.base_url, "--json", "--patients", "2", "--tenant", TENANT],
        capsys,
        EHRB_CHECK_CLIENT_ID=CLIENT_ID,
        EHRB_CHECK_CLIENT_SECRET=CLIENT_SECRET,
    )
    document = json.loads(out)
    checks = {c["id"]: c for c in document["checks"]}
    assert code == 0
    assert [p["id"] for p in document["patients"]] == ["pat-twin", PATIENT_ID]
    assert checks["patient.read"]["per_patient"] == {"pass": 2, "fail": 0, "skip": 0}
    assert "per_patient" not in checks["token.request"]


def test_asking_for_more_patients_than_found_checks_those_found_and_says_so(
    serve: Serve,
) -> None:
    report = check(serve("stu3"), patients=5)
    assert [p.id for p in report.patients] == [PATIENT_ID, OTHER_PATIENT_ID]
    assert "--patients 5: 2 patient(s) could be checked of 2 found by POST Patient/_search" in (
        report.notes
    )


# -- the command line ---------------------------------------------------------------------------


def test_json_output_lists_every_check_and_the_summary(
    serve: Serve, capsys: pytest.CaptureFixture[str]
) -> None:
    server = serve("stu3")
    code, out, _ = cli(
        [server.base_url, "--json", "--client-id", CLIENT_ID, "--tenant", TENANT],
        capsys,
        EHRB_CHECK_CLIENT_SECRET=CLIENT_SECRET,
    )
    document = json.loads(out)
    assert code == 0
    assert (document["base_url"], document["fhir_version"], document["mode"]) == (
        server.base_url,
        "3.0.2",
        "stu3",
    )
    ids = [c["id"] for c in document["checks"]]
    assert {"metadata.oauth_uris", "token.request", "patient.read.mrn", "batch.response"} <= set(
        ids
    )
    assert {tuple(c) for c in document["checks"]} == {
        ("id", "requirement", "level", "result", "evidence")
    }
    assert document["summary"]["passed"] == len(ids)
    assert document["summary"]["exit_code"] == 0


def test_text_output_is_a_table_with_a_summary_line(
    serve: Serve, capsys: pytest.CaptureFixture[str]
) -> None:
    server = serve("stu3", "no_total")
    code, out, _ = cli(
        [server.base_url, "--tenant", TENANT],
        capsys,
        EHRB_CHECK_CLIENT_ID=CLIENT_ID,
        EHRB_CHECK_CLIENT_SECRET=CLIENT_SECRET,
    )
    assert code == 1
    row = next(line for line in out.splitlines() if line.startswith("patient.search.total "))
    assert row.split()[1:3] == ["required", "FAIL"]
    assert out.rstrip().splitlines()[-1].endswith("FAIL: 1 required check(s) failed")


def test_no_secret_or_token_is_ever_printed(
    serve: Serve, capsys: pytest.CaptureFixture[str]
) -> None:
    server = serve("stu3", "no_total")
    outputs = []
    for extra in ([], ["--json"]):
        code, out, err = cli(
            [server.base_url, "--client-secret", CLIENT_SECRET, *extra],
            capsys,
            EHRB_CHECK_CLIENT_ID=CLIENT_ID,
        )
        assert code == 1
        outputs.append(out + err)
    tokens = server.issued_tokens
    assert len(tokens) == 2
    for output in outputs:
        assert CLIENT_SECRET not in output
        assert not any(token in output for token in tokens)
    assert "a secret on the command line" in outputs[0]


def test_a_server_echoing_the_secret_does_not_get_it_printed(
    serve: Serve, capsys: pytest.CaptureFixture[str]
) -> None:
    server = serve("stu3")
    server.fail(400, body={"error": f"invalid_client {CLIENT_SECRET}"}, path=TOKEN_PATH)
    code, out, err = cli(
        [server.base_url, "--json"],
        capsys,
        EHRB_CHECK_CLIENT_ID=CLIENT_ID,
        EHRB_CHECK_CLIENT_SECRET=CLIENT_SECRET,
    )
    assert code == 1
    assert CLIENT_SECRET not in out + err
    token = next(c for c in json.loads(out)["checks"] if c["id"] == "token.request")
    assert (
        token["evidence"]
        == "HTTP 400 (error=invalid_client [redacted]), took "
        + (token["evidence"].rsplit("took ", 1)[1])
    )


def test_an_unreachable_base_url_exits_2_with_a_clear_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"http://127.0.0.1:{closed_port()}/fhir"
    code, out, err = cli([url], capsys)
    assert code == 2
    assert f"error: cannot reach the server: {url}/metadata: cannot connect" in err
    assert "Connection refused" in err
    assert "UNREACHABLE" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ftp://fhir.example/base"], "must be an absolute http(s) URL"),
        (["https://fhir.example/base?x=1"], "must not have a query"),
        (["https://fhir.example/base", "--timeout", "0"], "--timeout"),
        ([], "the following arguments are required: base_url"),
        (["https://fhir.example/base", "--patients", "0"], "--patients must be between 1 and 20"),
        (["https://fhir.example/base", "--patients", "21"], "--patients must be between 1 and 20"),
        (["https://fhir.example/base", "--patients", "2", "--patient-id", "p1"], "leave out"),
        (["https://user:pw@fhir.example/base"], "must not hold credentials"),
        (["https://fhir.example/base", "--report", "/no/such/folder/r.json"], "does not exist"),
        (["https://fhir.example/base", "--report", "."], "is a folder"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(argv, capsys)
    assert (code, out) == (2, "")
    assert err.startswith("error: ") and message in err


def test_tls_certificates_are_verified_unless_insecure(
    serve: Serve, capsys: pytest.CaptureFixture[str]
) -> None:
    server = serve("stu3", tls=True)  # signed by a throwaway CA nobody trusts
    code, _, err = cli([server.base_url], capsys)
    assert code == 2
    assert "TLS failed: certificate verify failed" in err
    code, _, err = cli(
        [server.base_url, "--insecure"],
        capsys,
        EHRB_CHECK_CLIENT_ID=CLIENT_ID,
        EHRB_CHECK_CLIENT_SECRET=CLIENT_SECRET,
    )
    assert code == 0
    assert "warning: TLS certificates are not verified (--insecure)" in err


@pytest.mark.parametrize("fhir_version", ["1.0.2", "3.0.2", "4.0.1"])
def test_the_docs_describe_every_check(fhir_version: str) -> None:
    docs = (REPO / "docs" / "conformance.md").read_text(encoding="utf-8")
    undocumented = [s.id for s in catalogue(fhir_version) if f"`{s.id}`" not in docs]
    assert undocumented == []


def test_the_module_runs_as_a_command() -> None:
    url = f"http://127.0.0.1:{closed_port()}/fhir"
    done = subprocess.run(
        [sys.executable, "-m", "tools.conformance", url, "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 2, done.stderr
    assert json.loads(done.stdout)["unreachable"].startswith(f"{url}/metadata")


# -- the run as a FHIR TestReport (--report) ----------------------------------------------------

# R4 value sets: report-status-codes, report-result-codes, report-action-result-codes,
# report-participant-type.
REPORT_STATUSES = {"completed", "in-progress", "waiting", "stopped", "entered-in-error"}
REPORT_RESULTS = {"pass", "fail", "pending"}
ACTION_RESULTS = {"pass", "skip", "fail", "warning", "error"}
PARTICIPANT_TYPES = {"test-engine", "client", "server"}


def written_report(
    server: AppFhirServer,
    capsys: pytest.CaptureFixture[str],
    path: Path,
    *extra: str,
) -> tuple[int, dict[str, Any], str]:
    """Run the command with ``--report path``: its exit code, the TestReport, all it printed."""
    code, out, err = cli(
        [server.base_url, "--tenant", TENANT, "--report", str(path), *extra],
        capsys,
        EHRB_CHECK_CLIENT_ID=CLIENT_ID,
        EHRB_CHECK_CLIENT_SECRET=CLIENT_SECRET,
    )
    return code, json.loads(path.read_text("utf-8")), out + err


def test_the_testreport_validates_as_an_r4b_testreport(
    serve: Serve, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # A pass, a recommended failure and unjudged required checks: every kind of test result.
    server = serve("stu3", "token_cacheable", "no_coverage")
    _, document, printed = written_report(server, capsys, tmp_path / "testreport.json")
    r4b.TestReport.model_validate(document)
    assert f"TestReport written to {tmp_path / 'testreport.json'}" in printed
    assert document["status"] in REPORT_STATUSES
    assert document["result"] in REPORT_RESULTS
    assert {p["type"] for p in document["participant"]} <= PARTICIPANT_TYPES
    actions = [a for t in document["test"] for a in t["action"]]
    # tr-1, which the models do not enforce: an action is an operation or an assert, not both.
    assert all(len(set(a) & {"operation", "assert"}) == 1 for a in actions)
    assert {a["assert"]["result"] for a in actions} <= ACTION_RESULTS


def test_the_testreport_has_one_test_per_check_with_its_result_and_evidence(
    serve: Serve, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    server = serve("stu3", "no_total")
    report = check(server)
    _, document, _ = written_report(server, capsys, tmp_path / "testreport.json")
    tests = {t["name"]: t["action"][0]["assert"] for t in document["test"]}
    assert list(tests) == [c.id for c in report.checks]
    total = tests["patient.search.total"]
    assert total["result"] == "fail"
    assert total["message"] == report.check("patient.search.total").evidence


@pytest.mark.parametrize(
    ("defects", "result", "code"),
    [((), "pass", 0), (("no_birth_date",), "fail", 1), (("no_coverage",), "pending", 3)],
    ids=["pass", "fail", "incomplete"],
)
def test_the_testreport_result_is_the_verdict_with_incomplete_as_pending(
    serve: Serve,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    defects: tuple[str, ...],
    result: str,
    code: int,
) -> None:
    server = serve("stu3", *defects)
    exit_code, document, _ = written_report(server, capsys, tmp_path / "testreport.json")
    assert (document["status"], document["result"], exit_code) == ("completed", result, code)


def test_the_testreport_participant_is_the_server_checked(
    serve: Serve, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    server = serve("dstu2")
    _, document, _ = written_report(server, capsys, tmp_path / "testreport.json")
    assert [(p["type"], p["uri"]) for p in document["participant"]] == [("server", server.base_url)]


def test_a_recommended_failure_is_a_warning_in_the_testreport(
    serve: Serve, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    server = serve("stu3", "token_cacheable")
    _, document, _ = written_report(server, capsys, tmp_path / "testreport.json")
    results = {t["name"]: t["action"][0]["assert"]["result"] for t in document["test"]}
    assert (results["token.no_store"], document["result"]) == ("warning", "pass")


def test_the_testreport_never_holds_the_secret_or_the_token(
    serve: Serve, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    server = serve("stu3")
    _, _, _ = written_report(server, capsys, tmp_path / "ok.json")
    server.fail(400, body={"error": f"invalid_client {CLIENT_SECRET}"}, path=TOKEN_PATH)
    _, echoed, _ = written_report(server, capsys, tmp_path / "echoed.json")
    [token] = server.issued_tokens
    for name in ("ok.json", "echoed.json"):
        text = (tmp_path / name).read_text("utf-8")
        assert CLIENT_SECRET not in text
        assert token not in text
    assert "[redacted]" in json.dumps(echoed)


def test_nothing_printed_or_written_names_the_patient(
    serve: Serve, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    server = serve("stu3", "no_coverage")
    _, document, printed = written_report(server, capsys, tmp_path / "testreport.json")
    _, as_json, _ = cli(
        [server.base_url, "--json", "--tenant", TENANT],
        capsys,
        EHRB_CHECK_CLIENT_ID=CLIENT_ID,
        EHRB_CHECK_CLIENT_SECRET=CLIENT_SECRET,
    )
    everything = printed + as_json + json.dumps(document)
    assert f"Patient/{PATIENT_ID}" in everything
    for detail in ("Blackwood", "Ruth", "1961-03-17", "MRN-4471"):
        assert detail not in everything
