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
from typing import Any

import pytest

from tests.support.broken_fhir import (
    CLIENT_ID,
    CLIENT_SECRET,
    OTHER_PATIENT_ID,
    PATIENT_ID,
    AppFhirServer,
    members,
)
from tests.support.fake_fhir import TOKEN_PATH, closed_port
from tests.support.paths import REPO
from tools.conformance import Report, main, run_checks
from tools.conformance.runner import catalogue

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
