"""OperationOutcome across R4, STU3 and DSTU2: fixtures, what the app shows of an error, round
trips and every decision in docs/conversion/operation_outcome.md.
Section numbers (§) refer to docs/conversion/mapping.md."""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.fhir.convert import convert
from shared.fhir.outcome import ISSUE_TYPES
from tests.support.dstu2 import OPERATION_OUTCOME
from tests.support.fixtures import VERSIONS, XVER_R4, XVER_STU3, fixtures_of
from tests.unit.convert.checks import assert_valid

OLDER_ISSUE_TYPES = ISSUE_TYPES - {"deleted", "multiple-matches"}


def assert_valid_outcome(outcome: dict[str, Any], version: str) -> None:
    """Valid in ``version`` (the DSTU2 shape: tests/support/dstu2.py, from the DSTU2 examples
    and §12), with issue codes of the version's IssueType list (the models do not check codes)."""
    assert_valid(outcome, version, "OperationOutcome", OPERATION_OUTCOME)
    allowed = ISSUE_TYPES if version == "r4" else OLDER_ISSUE_TYPES
    assert all(issue["code"] in allowed for issue in outcome["issue"])


OUTCOME_FIXTURES = fixtures_of("OperationOutcome")


def test_every_version_has_operation_outcome_fixtures() -> None:
    assert {param.values[0] for param in OUTCOME_FIXTURES} == set(VERSIONS)
    assert len(OUTCOME_FIXTURES) == 2 * 9


@pytest.mark.parametrize(("source", "target", "outcome"), OUTCOME_FIXTURES)
def test_fixture_converts_into_a_valid_operation_outcome_of_every_other_version(
    source: str, target: str, outcome: dict[str, Any]
) -> None:
    assert_valid_outcome(convert(outcome, source, target), target)


# -- what the app shows of an error ------------------------------------------------------------

R4_OUTCOME: dict[str, Any] = {
    "resourceType": "OperationOutcome",
    "issue": [
        {
            "severity": "error",
            "code": "not-found",
            "details": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/operation-outcome",
                        "code": "MSG_NO_EXIST",
                    }
                ]
            },
            "diagnostics": "Patient/42 is not known",
        }
    ],
}


@pytest.mark.parametrize("target", ["stu3", "dstu2"])
def test_severity_code_and_diagnostics_reach_the_app(target: str) -> None:
    [issue] = convert(R4_OUTCOME, "r4", target)["issue"]
    assert (issue["severity"], issue["code"], issue["diagnostics"]) == (
        "error",
        "not-found",
        "Patient/42 is not known",
    )


@pytest.mark.parametrize("target", ["stu3", "dstu2"])
def test_details_use_the_old_operation_outcome_system(target: str) -> None:
    [issue] = convert(R4_OUTCOME, "r4", target)["issue"]
    assert issue["details"]["coding"][0]["system"] == "http://hl7.org/fhir/operation-outcome"


# -- round trips over generated R4 OperationOutcomes -------------------------------------------

_text = st.text(alphabet=string.ascii_letters + " .", min_size=1, max_size=20).map(str.strip)
_issues = st.fixed_dictionaries(
    {
        "severity": st.sampled_from(["fatal", "error", "warning", "information"]),
        "code": st.sampled_from(sorted(ISSUE_TYPES)),
    },
    optional={
        "diagnostics": _text.filter(bool),
        "details": st.builds(lambda text: {"text": text}, _text.filter(bool)),
        "expression": st.lists(
            st.sampled_from(["Patient.name", "Patient.birthDate", "Bundle.entry[0]"]),
            min_size=1,
            max_size=2,
        ),
        "location": st.lists(st.just("/f:Patient/f:name"), min_size=1, max_size=1),
    },
)
r4_outcomes = st.fixed_dictionaries(
    {
        "resourceType": st.just("OperationOutcome"),
        "issue": st.lists(_issues, min_size=1, max_size=3),
    }
)


@pytest.mark.parametrize("middle", ["stu3", "dstu2"])
@settings(max_examples=50, deadline=None)
@given(outcome=r4_outcomes)
def test_r4_operation_outcome_survives_a_round_trip_through_an_older_version(
    middle: str, outcome: dict[str, Any]
) -> None:
    older = convert(outcome, "r4", middle)
    assert_valid_outcome(older, middle)
    assert convert(older, middle, "r4") == outcome


# -- decisions (docs/conversion/operation_outcome.md) ------------------------------------------


@pytest.mark.parametrize(
    ("r4_code", "older_code"), [("deleted", "not-found"), ("multiple-matches", "processing")]
)
@pytest.mark.parametrize("target", ["stu3", "dstu2"])
def test_r4_only_issue_codes_become_their_parent_with_an_extension(
    r4_code: str, older_code: str, target: str
) -> None:
    r4 = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": r4_code}]}
    [issue] = convert(r4, "r4", target)["issue"]
    assert issue["code"] == older_code
    assert issue["extension"] == [
        {"url": XVER_R4 + "OperationOutcome.issue.code", "valueCode": r4_code}
    ]


def test_expression_is_appended_to_diagnostics_in_dstu2() -> None:
    stu3 = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "warning",
                "code": "not-found",
                "diagnostics": "Managing organization unknown",
                "expression": ["Patient.managingOrganization", "Patient.link"],
            }
        ],
    }
    [issue] = convert(stu3, "stu3", "dstu2")["issue"]
    assert "expression" not in issue
    assert issue["diagnostics"] == (
        "Managing organization unknown; FHIRPath: Patient.managingOrganization, Patient.link"
    )
    assert [e["valueString"] for e in issue["extension"]] == [
        "Patient.managingOrganization",
        "Patient.link",
    ]
    assert convert(convert(stu3, "stu3", "dstu2"), "dstu2", "stu3") == stu3


def test_expression_becomes_the_diagnostics_when_there_are_none_in_dstu2() -> None:
    stu3 = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "required", "expression": ["Patient.name"]}],
    }
    [issue] = convert(stu3, "stu3", "dstu2")["issue"]
    assert issue["diagnostics"] == "FHIRPath: Patient.name"
    assert convert(convert(stu3, "stu3", "dstu2"), "dstu2", "stu3") == stu3


def test_dstu2_diagnostics_edited_after_conversion_are_kept_as_they_are() -> None:
    carried = {"url": XVER_STU3 + "OperationOutcome.issue.expression", "valueString": "Patient.a"}
    dstu2 = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "value",
                "diagnostics": "rewritten",
                "extension": [carried],
            }
        ],
    }
    [issue] = convert(dstu2, "dstu2", "stu3")["issue"]
    assert (issue["diagnostics"], issue["expression"]) == ("rewritten", ["Patient.a"])
