"""tools/functions_doctor.py fails where the doctor itself exits 0: failed checks, warnings
nobody explained, and explanations that no longer apply."""

from __future__ import annotations

from typing import Any

from tools.functions_doctor import Accepted, review


def report(*checks: tuple[str, str]) -> dict[str, Any]:
    return {
        "results": [
            {
                "items": [
                    {"rule_id": rule, "status": status, "value": "v"} for rule, status in checks
                ]
            }
        ]
    }


def test_a_failed_check_fails():
    problems, _ = review(report(("check_x", "fail")), {})
    assert problems == ["FAILED check_x: v"]


def test_an_unexplained_warning_fails():
    problems, _ = review(report(("check_x", "warn")), {})
    assert len(problems) == 1 and problems[0].startswith("WARNING check_x")


def test_an_accepted_warning_passes_and_shows_its_reason():
    problems, notes = review(report(("check_x", "warn")), {"check_x": Accepted("because y")})
    assert (problems, notes) == ([], ["  check_x: because y"])


def test_an_always_accepted_warning_that_no_longer_warns_fails():
    problems, _ = review(report(("check_x", "pass")), {"check_x": Accepted("because y")})
    assert problems == ["check_x is accepted but did not warn: remove it from ACCEPTED"]


def test_a_machine_dependent_acceptance_may_go_unused():
    accepted = {"check_x": Accepted("because y", always=False)}
    assert review(report(("check_x", "pass")), accepted) == ([], [])
