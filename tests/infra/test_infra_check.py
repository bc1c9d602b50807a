"""tools/infra_check.py turns checkov's report into failures where checkov itself would pass:
parsing errors, unused or unexplained suppressions, files checkov silently left out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tools import infra_check

SITE = {"type": "Microsoft.Web/sites", "existing": False}
REASON = "a reason long enough to be one"


def report(**results: list[dict[str, Any]]) -> dict[str, Any]:
    return {"results": {"passed_checks": [], "failed_checks": [], "skipped_checks": [], **results}}


def check(check_id: str, file_path: str = "/app.bicep") -> dict[str, Any]:
    return {
        "check_id": check_id,
        "file_path": file_path,
        "resource": "Microsoft.Web/sites.app",
        "check_name": "a check",
    }


def suppression(check_id: str, reason: str = REASON, comment: bool = True) -> dict[str, Any]:
    return {
        "file": "/app.bicep",
        "line": 3,
        "check_id": check_id,
        "reason": reason,
        "comment": comment,
    }


MODELS = {"infra/app.bicep": {"resources": {"app": SITE}}}


def test_a_clean_report_passes_and_lists_the_suppressions():
    problems, notes = infra_check.review(
        report(passed_checks=[check("CKV_A")], skipped_checks=[check("CKV_B")]),
        [suppression("CKV_B")],
        MODELS,
        "infra",
    )
    assert problems == []
    assert notes == [f"  CKV_B /app.bicep:3  {REASON}"]


def test_failed_checks_and_parsing_errors_fail():
    problems, _ = infra_check.review(
        report(failed_checks=[check("CKV_A")], parsing_errors=["/app.bicep"]), [], MODELS, "infra"
    )
    assert any("could not parse /app.bicep" in p for p in problems)
    assert any(p.startswith("FAILED CKV_A /app.bicep") for p in problems)


def test_a_suppression_needs_a_reason_a_comment_and_a_use():
    problems, _ = infra_check.review(
        report(skipped_checks=[check("CKV_A"), check("CKV_B")]),
        [
            suppression("CKV_A", reason=""),
            suppression("CKV_B", comment=False),
            suppression("CKV_C"),
        ],
        MODELS,
        "infra",
    )
    assert any("CKV_A needs a one-line reason" in p for p in problems)
    assert any("must be a // line comment" in p for p in problems)
    assert any("CKV_C is not used by checkov" in p for p in problems)


def test_a_file_checkov_reported_nothing_for_fails():
    problems, _ = infra_check.review(report(), [], MODELS, "infra")
    assert any("checkov reported nothing for infra/app.bicep" in p for p in problems)
    existing = {"infra/app.bicep": {"resources": {"app": {**SITE, "existing": True}}}}
    assert infra_check.review(report(), [], existing, "infra")[0] == []


def test_suppressions_are_read_from_the_sources(tmp_path: Path):
    infra = tmp_path / "infra"
    infra.mkdir()
    (infra / "a.bicep").write_text(
        "resource x 'T@1' = {\n  //checkov:skip=CKV_AZURE_1,CKV_AZURE_2: why not\n}\n",
        encoding="utf-8",
    )
    found = infra_check.suppressions(tmp_path, infra)
    assert [(f["file"], f["line"], f["check_id"], f["reason"]) for f in found] == [
        ("/a.bicep", 2, "CKV_AZURE_1", "why not"),
        ("/a.bicep", 2, "CKV_AZURE_2", "why not"),
    ]
    assert all(f["comment"] for f in found)
