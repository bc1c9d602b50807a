"""``azure-functions-doctor`` on this repository, failing on what it finds (part of ``make test``).

The doctor (PyPI ``azure-functions-doctor``) checks a Python v2 Functions project the way the
platform will meet it. It exits 0 on warnings, so this wrapper reads its JSON report and fails
on any failed check, on any warning not accepted below, and on an accepted warning whose reason
no longer applies everywhere (marked ``always``). Every acceptance says why the finding does not
hold for this project; fixing the finding beats adding a line here.

    .venv/bin/python -m tools.functions_doctor
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ARGUMENTS = (
    "doctor",
    "--profile",
    "full",
    "--hosting-plan",
    "flex-consumption",
    "--format",
    "json",
)


@dataclass(frozen=True)
class Accepted:
    """A warning that does not hold for this project, and why."""

    reason: str
    # True: the warning appears on every machine, so its absence means the reason is stale.
    always: bool = True


ACCEPTED: dict[str, Accepted] = {
    "check_blueprint_registration": Accepted(
        "function_app.py registers each module's blueprint by attribute (metadata.bp, ...), "
        "which the check does not follow; tests/unit/test_function_app.py checks that every "
        "blueprint's functions are registered"
    ),
    "check_native_dependency_risk": Accepted(
        "cryptography ships manylinux wheels, and azd deploys Flex Consumption with a remote "
        "build on the platform's own Linux image (README, Deploying to Azure)"
    ),
    "check_local_settings": Accepted(
        "local.settings.json is git-ignored and made by `make run` from "
        "local.settings.sample.json; `make test` and CI do not need it",
        always=False,
    ),
    "check_func_cli": Accepted(
        "Core Tools downloads a binary and cannot be installed here; tools/devhost.py serves the "
        "app with the host's HTTP rules (README, What is verified here)",
        always=False,
    ),
    "check_func_core_tools_version": Accepted(
        "Core Tools cannot be installed here (see check_func_cli)", always=False
    ),
    "check_app_insights": Accepted(
        "the doctor reads APPLICATIONINSIGHTS_* only from the environment and "
        "local.settings.json; in Azure infra/modules/functionapp.bicep sets both (Entra ID "
        "authentication) and tests/infra checks them; locally telemetry is off unless you point "
        "APPLICATIONINSIGHTS_CONNECTION_STRING at a collector (README, Telemetry and audit), "
        "which tests/e2e/test_telemetry_through_devhost.py does with a local ingestion endpoint",
        always=False,
    ),
}


def items(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Every check of a doctor JSON report."""
    return [item for section in report["results"] for item in section["items"]]


def review(
    report: dict[str, Any], accepted: dict[str, Accepted] = ACCEPTED
) -> tuple[list[str], list[str]]:
    """(problems, notes) for one doctor report."""
    problems: list[str] = []
    notes: list[str] = []
    seen: set[str] = set()
    for item in items(report):
        rule, status = item["rule_id"], item["status"]
        first = str(item.get("value", "")).splitlines()[0] if item.get("value") else ""
        if status == "fail":
            problems.append(f"FAILED {rule}: {first}")
        elif status == "warn":
            seen.add(rule)
            if rule in accepted:
                notes.append(f"  {rule}: {accepted[rule].reason}")
            else:
                problems.append(f"WARNING {rule}: {first} (fix it, or accept it with a reason)")
    for rule, acceptance in accepted.items():
        if acceptance.always and rule not in seen:
            problems.append(f"{rule} is accepted but did not warn: remove it from ACCEPTED")
    return problems, notes


def run_doctor(root: Path = ROOT) -> dict[str, Any]:
    """The doctor's JSON report on ``root``, run as the venv's own console script."""
    doctor = Path(sys.executable).with_name("azure-functions-doctor")
    # The doctor asks whether a virtual environment is active; this one is, whether or not
    # the shell activated it.
    environment = {**os.environ, "VIRTUAL_ENV": sys.prefix}
    result = subprocess.run(
        [str(doctor), *ARGUMENTS, "--path", str(root)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
        check=False,
    )
    try:
        report: dict[str, Any] = json.loads(result.stdout)
    except ValueError:
        raise RuntimeError(
            f"azure-functions-doctor exited {result.returncode} without a JSON report: "
            f"{result.stderr[-2000:]}"
        ) from None
    return report


def main() -> int:
    """Run the doctor and review its report; 0 when clean."""
    report = run_doctor()
    problems, notes = review(report)
    counts = {status: 0 for status in ("pass", "warn", "fail", "skip")}
    for item in items(report):
        counts[item["status"]] = counts.get(item["status"], 0) + 1
    version = report.get("metadata", {}).get("tool_version", "?")
    print(
        f"functions-doctor: azure-functions-doctor {version}: {counts['pass']} passed, "
        f"{counts['warn']} warnings, {counts['fail']} failed, {counts['skip']} skipped"
    )
    if notes:
        print("functions-doctor: warnings accepted, with their reasons:")
        print("\n".join(notes))
    for problem in problems:
        print(f"functions-doctor: {problem}")
    print("functions-doctor: " + ("FAILED" if problems else "ok"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
