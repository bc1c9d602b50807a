"""Patients-app conformance checker: replays the Teams Patients app's calls against a FHIR base.

``python -m tools.conformance BASE_URL [options]`` (docs/conformance.md), or from Python
``run_checks(base_url, ...) -> Report`` and ``main(argv) -> int``.
"""

from tools.conformance.cli import main
from tools.conformance.report import Check, Report
from tools.conformance.runner import run_checks

__all__ = ["Check", "Report", "main", "run_checks"]
