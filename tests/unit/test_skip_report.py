"""The suite's closing line names every skip, and a skip that is not allowed fails the run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.browser import MISSING
from tools.testkit.data import REPO


def run_pytest(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    """Run pytest with the skip report on one test module written to ``tmp_path``."""
    (tmp_path / "test_sample.py").write_text("import pytest\n\n" + body)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.support.skip_report", str(tmp_path)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_run_without_skips_says_so_last(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, "def test_ok():\n    pass\n")
    assert result.returncode == 0
    assert result.stdout.rstrip().splitlines()[-1] == "Skipped: nothing."


def test_an_allowed_skip_is_named_with_its_reason(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, f"def test_browser():\n    pytest.skip({MISSING!r})\n")
    assert result.returncode == 0
    assert result.stdout.rstrip().splitlines()[-1] == f"Skipped: 1 because {MISSING}."


def test_any_other_skip_fails_the_run(tmp_path: Path) -> None:
    body = "@pytest.mark.parametrize('case', [])\ndef test_nothing(case):\n    pass\n"
    result = run_pytest(tmp_path, body)
    assert result.returncode == 1
    assert "unexpected skips: got empty parameter set" in result.stdout
