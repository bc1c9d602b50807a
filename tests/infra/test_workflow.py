"""The GitHub Actions workflow and azure.yaml: they run only on GitHub and Azure, so here they are
checked for what can be checked: they parse, the PR job runs the README's test command, and the
deployment signs in with OIDC and reads no secret."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.infra import bicep_model as bm
from tools.testkit.data import REPO

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
CI = REPO / ".github" / "workflows" / "ci.yml"
# The only values the deployment may take from the repository: identifiers, not credentials.
DEPLOY_VARS = {
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_SUBSCRIPTION_ID",
    "AZURE_ENV_NAME",
    "AZURE_LOCATION",
    "AZURE_RESOURCE_GROUP",
    "EHRB_OPERATOR_PRINCIPAL_ID",
    "EHRB_OPERATOR_PRINCIPAL_TYPE",
    "EHRB_KEYVAULT_CREATE_MODE",
    "EHRB_CONSOLE_ENTRA_CLIENT_ID",
}


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def triggers(document: dict[str, Any]) -> dict[str, Any]:
    # YAML 1.1 (PyYAML) reads the key `on` as True.
    value = document.get("on", document.get(True))
    assert isinstance(value, dict)
    return value


def readme_test_command() -> str:
    section = (REPO / "README.md").read_text(encoding="utf-8").split("## Two commands", 1)[1]
    (command,) = re.findall(r"^(make test)\b", section.split("\n## ", 1)[0], flags=re.MULTILINE)
    return command


def runs(job: dict[str, Any]) -> list[str]:
    return [" ".join(str(step["run"]).split()) for step in job["steps"] if "run" in step]


def uses(job: dict[str, Any]) -> list[str]:
    return [str(step["uses"]) for step in job["steps"] if "uses" in step]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_workflow_parses(path: Path):
    document = load(path)
    assert document["jobs"]
    for name, job in document["jobs"].items():
        assert job["runs-on"], name
        assert job["steps"], name


def test_pull_requests_run_the_readme_test_command():
    document = load(CI)
    assert "pull_request" in triggers(document)
    test = document["jobs"]["test"]
    assert "if" not in test, "the test job runs on every trigger"
    assert readme_test_command() in runs(test)
    assert runs(test) == [readme_test_command()], "the PR job runs the README command, only"
    assert any(u.startswith("actions/setup-python@") for u in uses(test))
    assert any(u.startswith("actions/setup-node@") for u in uses(test))  # Azurite comes from npm


def test_main_deploys_with_azd_after_the_tests():
    document = load(CI)
    assert triggers(document)["push"]["branches"] == ["main"]
    deploy = document["jobs"]["deploy"]
    assert deploy["needs"] == "test"
    assert "refs/heads/main" in deploy["if"] and "push" in deploy["if"]
    assert any(u.startswith("Azure/setup-azd@") for u in uses(deploy))
    commands = runs(deploy)
    assert "azd provision --no-prompt" in commands
    assert "azd deploy --no-prompt" in commands
    assert commands.index("azd provision --no-prompt") < commands.index("azd deploy --no-prompt")


def test_the_deployment_signs_in_with_oidc_and_reads_no_secret():
    document = load(CI)
    deploy = document["jobs"]["deploy"]
    assert deploy["permissions"]["id-token"] == "write"
    assert document["permissions"] == {"contents": "read"}, "least privilege by default"
    (login,) = [c for c in runs(deploy) if c.startswith("azd auth login")]
    assert "--federated-credential-provider github" in login
    assert "--client-secret" not in login
    for path in WORKFLOWS:
        assert "secrets." not in path.read_text(encoding="utf-8"), path.name
    env = deploy["env"]
    assert set(env) == DEPLOY_VARS
    for name, value in env.items():
        assert value == "${{ vars." + name + " }}", name


def test_the_pipeline_passes_every_variable_the_parameters_file_reads():
    text = (REPO / "infra" / "main.parameters.json").read_text(encoding="utf-8")
    wanted = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)\}", text))
    assert wanted <= set(load(CI)["jobs"]["deploy"]["env"])


def test_azure_yaml_provisions_infra_main_and_deploys_the_function_app():
    document = load(REPO / "azure.yaml")
    assert document["infra"] == {"provider": "bicep", "path": "infra", "module": "main"}
    (service,) = document["services"].items()
    name, spec = service
    assert spec == {"project": ".", "language": "python", "host": "function"}
    # azd finds the app by this tag.
    app = bm.template("infra/modules/functionapp.bicep")
    (site,) = bm.resources(app, "Microsoft.Web/sites").values()
    tags = bm.body(site)["tags"]["function"]
    assert tags["type"] == "union"
    assert tags["parameters"] == {"arg_1": "tags", "arg_2": {"'azd-service-name'": name}}
