"""docs/runbook.md stays runnable: every ops CLI command in it parses, and it covers the issue's
procedures."""

from __future__ import annotations

import re
import shlex

import pytest

from tools import ops
from tools.testkit.data import REPO

RUNBOOK = (REPO / "docs" / "runbook.md").read_text(encoding="utf-8")
PLACEHOLDER = "6c3f0d1e-2a5b-4c8d-9e0f-1a2b3c4d5e6f"


def ops_commands() -> list[str]:
    """Every `ops …` invocation: in code blocks (joined across `\\` lines) and inline code."""
    found: list[str] = []
    blocks = re.findall(r"```(?:sh|bash)?\n(.*?)```", RUNBOOK, flags=re.DOTALL)
    prose = re.sub(r"```.*?```", "", RUNBOOK, flags=re.DOTALL)
    lines = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    lines += [span for span in prose.replace("\n", " ").split("`")[1::2] if "ops " in span]
    for line in lines:
        if "ops()" in line:
            continue
        for segment in line.split("|"):
            command = re.split(r"(?:^|\s)[#>]", segment, maxsplit=1)[0]  # comments, redirections
            match = re.search(r"(?:^|\s)ops (.*)$", command)
            if match:
                found.append(match.group(1).strip())
    return found


def arguments(command: str) -> list[str]:
    tokens = shlex.split(command)
    # "$TENANT", "<old-version>" and the like stand for ids the reader fills in.
    return [
        PLACEHOLDER if ("$" in token or token.startswith("<")) and token != "-" else token
        for token in tokens
    ]


def test_the_runbook_uses_the_ops_cli_for_every_data_change():
    commands = {" ".join(c.split()[:2]) for c in ops_commands()}
    assert {
        "clients register",
        "clients rotate",
        "clients versions",
        "clients disable-version",
        "clients disable",
        "tenants put",
        "tenants set-provider-secret",
        "tenants check",
        "tenants delete",
        "signing-key rotate",
        "signing-key list",
    } <= commands


@pytest.mark.parametrize("command", ops_commands())
def test_every_ops_command_in_the_runbook_parses(command: str):
    args = ops.build_parser().parse_args(["--no-settings", *arguments(command)])
    assert args.handler is not None


def test_the_runbook_always_ignores_local_settings_against_azure():
    assert 'ops() { .venv/bin/python -m tools.ops --no-settings "$@"; }' in RUNBOOK


@pytest.mark.parametrize(
    "needle",
    [
        "azd up",
        "az deployment group create",
        "az functionapp keys list",
        "FHIR_STU3_URL",
        "--grace-seconds",
        "az keyvault secret set-attributes",
        "cache TTL",
        "signing-key rotate --activate-in-seconds 0 --retire-previous-after-seconds 0",
        "Who accessed patient X",
        "Failed token requests by client",
        "--federated-credential-provider",
        # issue 13: provider registration, recovery, concurrency, host storage, the checklist.
        "Microsoft.App",
        "EHRB_KEYVAULT_CREATE_MODE recover",
        "perInstanceConcurrency",
        "AZFD0003",
        "## 13. First deployment checklist",
        # issue 18: the 09:12 story, the audit export, alerts.
        "## 17. Why did the app fail at 09:12?",
        "manage/tenants/$TENANT/audit",
        "OperationId == trace",
        "ehrb-provider-health",
    ],
)
def test_the_runbook_covers_each_procedure(needle: str):
    assert needle in RUNBOOK or needle in (REPO / ".github/workflows/ci.yml").read_text()


def test_the_first_deployment_checklist_confirms_the_issue_13_items_on_the_live_app():
    checklist = RUNBOOK.split("## 13. First deployment checklist", 1)[1]
    assert "hosting: flex-consumption" in checklist  # 1: the hosting form
    assert "perInstanceConcurrency" in checklist  # 2: concurrency per instance
    assert "AZFD0003" in checklist  # 3: host storage rights
    assert "defaultHostName" in checklist  # 5: the site's own host name
