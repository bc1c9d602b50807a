"""The Bicep templates agree with the code: app settings, role assignments, secure defaults.

What this proves is what the templates say, parsed with pycep (tools/infra_check.py). Whether
Azure accepts them and the roles suffice is proven only by a real ``azd up`` (README).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from shared import routes
from shared.settings import FACES, SETTINGS
from shared.tables import CLIENTS_TABLE, SANDBOX_TABLE, TENANTS_TABLE
from tests.infra import bicep_model as bm
from tools.testkit.data import REPO

MAIN = "infra/main.bicep"
APP = "infra/modules/functionapp.bicep"
ROLES = "infra/modules/roles.bicep"
STORAGE = "infra/modules/storage.bicep"
KEYVAULT = "infra/modules/keyvault.bicep"
MONITORING = "infra/modules/monitoring.bicep"
IDENTITY = "infra/modules/identity.bicep"

# App settings the template sets that are not EHR Bridge's own: the platform reads them.
# On Flex Consumption the runtime, its version and the package location are functionAppConfig,
# not app settings (FUNCTIONS_WORKER_RUNTIME, FUNCTIONS_EXTENSION_VERSION and
# WEBSITE_RUN_FROM_PACKAGE are deprecated there), so none of them belongs here.
PLATFORM_SETTINGS = {
    # Identity-based host storage: account, "managedidentity", the user-assigned identity.
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    # Application Insights, with Entra ID authentication (local auth is disabled).
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
}
# Settings the template sets ahead of their Setting entry in shared/settings.py. Remove a name
# here once SETTINGS declares it (the union below then keeps the check exact).

# Built-in roles by GUID.
KEY_VAULT_SECRETS_OFFICER = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
STORAGE_TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
STORAGE_BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"
# Roles that manage resources or access, or reach beyond what the code does: none may appear.
FORBIDDEN_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "b24988ac-6180-47e1-a27a-12a06e8f0fbc": "Contributor (as mistyped in the issue)",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
    "f58310d9-a9f6-439a-9e8d-f62e7b41a168": "Role Based Access Control Administrator",
    "00482a5a-887f-4fb3-b363-3b7fe8e74483": "Key Vault Administrator",
    "f25e0fa2-a7c8-4377-a976-54943a77a395": "Key Vault Contributor",
    "17d1049b-9a84-46fb-8f53-869881c3d3ab": "Storage Account Contributor",
}
GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def infra_texts() -> dict[str, str]:
    """Every file of the deployment definition, by path, with its text."""
    paths = [*sorted((REPO / "infra").rglob("*")), REPO / "azure.yaml"]
    return {
        path.relative_to(REPO).as_posix(): path.read_text(encoding="utf-8")
        for path in paths
        if path.is_file() and path.suffix in (".bicep", ".json", ".yaml", ".txt")
    }


def site() -> dict[str, Any]:
    (resource,) = bm.resources(bm.template(APP), "Microsoft.Web/sites").values()
    return bm.body(resource)


def app_settings() -> dict[str, Any]:
    """The app settings of every Function App in infra/, whichever way they are written."""
    settings: dict[str, Any] = {}
    names: list[str] = []
    for resource in bm.all_resources("Microsoft.Web/sites").values():
        for pair in bm.body(resource)["properties"].get("siteConfig", {}).get("appSettings", []):
            names.append(pair["name"])
            settings[pair["name"]] = pair["value"]
    for resource in bm.all_resources("Microsoft.Web/sites/config").values():
        config = bm.body(resource)
        if config.get("name") == "appsettings":
            names.extend(config["properties"])
            settings.update(config["properties"])
    assert len(names) == len(set(names)), "an app setting is set twice"
    return settings


def main_param_default(name: str) -> Any:
    return bm.template(MAIN)["parameters"][name].get("default")


def passed_to_app(parameter: str) -> Any:
    """What main.bicep passes to the functionapp module's ``parameter``."""
    return bm.template(MAIN)["modules"]["functionApp"]["config"]["params"][parameter]


# Parsing ---------------------------------------------------------------------------------


def test_every_bicep_file_is_parsed():
    from tools.infra_check import source_digests

    assert set(bm.load()) == set(source_digests())
    assert {MAIN, APP, ROLES, STORAGE, KEYVAULT, MONITORING, IDENTITY} <= set(bm.load())


def test_modules_are_local_files_that_exist():
    for name, module in bm.template(MAIN)["modules"].items():
        assert module["type"] == "local", name
        assert (REPO / "infra" / module["detail"]["path"]).is_file(), name
    assert not re.search(r"'(br|ts)[:/]", "".join(infra_texts().values()))


# App settings ----------------------------------------------------------------------------


def test_app_settings_are_exactly_the_settings_the_code_reads():
    code = {s.name for s in SETTINGS if not s.local_only}
    expected = code | PLATFORM_SETTINGS
    actual = set(app_settings())
    assert actual - expected == set(), "set by the template but read by nobody"
    assert expected - actual == set(), "read by the code but not set by the template"


def test_platform_settings_are_not_the_codes_own():
    declared = {s.name for s in SETTINGS}
    assert not PLATFORM_SETTINGS & declared


def test_development_only_settings_appear_nowhere_in_the_deployment():
    for setting in (s for s in SETTINGS if s.local_only):
        for path, text in infra_texts().items():
            assert not re.search(rf"\b{setting.name}\b", text), f"{setting.name} in {path}"


def test_the_secret_store_is_key_vault_and_tables_use_the_identity():
    settings = app_settings()
    model = bm.template(APP)
    assert settings["EHRB_SECRET_STORE"] == "keyvault"
    assert bm.reference(model, settings["EHRB_KEYVAULT_URL"]) == "keyVaultUri"
    assert bm.reference(model, settings["EHRB_TABLES_ENDPOINT"]) == "tablesEndpoint"
    assert bm.accessor(passed_to_app("keyVaultUri")) == ["keyVault", "outputs", "uri"]
    assert bm.accessor(passed_to_app("tablesEndpoint")) == ["storage", "outputs", "tableEndpoint"]
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    for name in ("AZURE_CLIENT_ID", "AzureWebJobsStorage__clientId"):
        assert bm.reference(model, settings[name]) == "identityClientId", name
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == (
        "ClientId=${identityClientId};Authorization=AAD"
    )


def test_values_the_template_fixes_are_the_code_defaults():
    """A literal, or a main.bicep parameter passed through, equals the SETTINGS default."""
    defaults = {s.name: s.default for s in SETTINGS}
    model = bm.template(APP)
    checked = 0
    for name, value in app_settings().items():
        if name not in defaults:
            continue
        value = bm.converted(value)
        if isinstance(value, str) and bm.reference(model, value) is None:
            if "${" not in value:
                assert value == defaults[name], name
                checked += 1
        elif isinstance(value, str) and value in model["parameters"]:
            passed = passed_to_app(value)
            if isinstance(passed, str) and passed in bm.template(MAIN)["parameters"]:
                assert str(main_param_default(passed)) == defaults[name], name
                checked += 1
    assert checked >= 15


def test_public_urls_issuer_and_audience_come_from_the_host_name():
    settings = app_settings()
    model = bm.template(APP)
    assert bm.reference(model, settings["EHRB_PUBLIC_BASE_URL"]) == "publicBaseUrl"
    assert model["variables"]["publicBaseUrl"]["value"] == "https://${publicHost}"
    host = model["variables"]["publicHost"]["value"]["operator"]["operands"]
    assert host["true_value"] == "${name}.${appServiceDomain}"
    assert host["false_value"] == "publicHostName"
    assert settings["EHRB_TOKEN_ISSUER"] == "${publicBaseUrl}/api/oauth2"
    assert settings["EHRB_TOKEN_AUDIENCE"] == "${publicBaseUrl}/api/fhir"
    assert main_param_default("publicHostName") == ""


def test_the_sandbox_is_off_unless_a_parameter_turns_it_on():
    assert main_param_default("sandboxEnabled") is False
    assert passed_to_app("sandboxEnabled") == "sandboxEnabled"
    switch = app_settings()["EHRB_SANDBOX_ENABLED"]["operator"]
    assert switch["type"] == "conditional"
    assert switch["operands"] == {
        "condition": "sandboxEnabled",
        "true_value": "true",
        "false_value": "false",
    }


def test_the_sandbox_table_and_its_role_exist_only_when_the_sandbox_is_on():
    storage = bm.template(STORAGE)
    table = bm.resources(storage, "Microsoft.Storage/storageAccounts/tableServices/tables")
    assert bm.condition(table["sandboxTable"]) == "sandboxEnabled"
    assert bm.template(MAIN)["modules"]["storage"]["config"]["params"]["sandboxEnabled"] == (
        "sandboxEnabled"
    )
    output = storage["outputs"]["sandboxTableName"]["value"]["operator"]
    assert output["operands"]["condition"] == "sandboxEnabled"
    assert output["operands"]["false_value"] == ""
    # roles.bicep grants the role when it is given a table name, and main passes that output.
    with_sandbox = bm.template(ROLES)["variables"]["withSandbox"]["value"]["operator"]
    assert with_sandbox["type"] == "not"
    assert with_sandbox["operands"]["bool_value"]["function"] == {
        "parameters": {"item_to_test": "sandboxTableName"},
        "type": "empty",
    }
    passed = bm.template(MAIN)["modules"]["roles"]["config"]["params"]["sandboxTableName"]
    assert bm.accessor(passed) == ["storage", "outputs", "sandboxTableName"]


# Roles -----------------------------------------------------------------------------------


def role_guid(model: dict[str, Any], role_definition_id: Any) -> str:
    function = role_definition_id["function"]
    assert function["type"] == "subscription_resource_id"
    assert function["parameters"]["resource_type"] == "Microsoft.Authorization/roleDefinitions"
    variable = function["parameters"]["resource_name_1"]
    value: str = model["variables"][variable]["value"]
    assert GUID.fullmatch(value), variable
    return value.lower()


def assignments() -> list[dict[str, Any]]:
    """Every role assignment in infra/: role GUID, principal, scope type and name, condition."""
    found = []
    for (file, _), resource in bm.all_resources("Microsoft.Authorization/roleAssignments").items():
        model = bm.template(file)
        config = bm.body(resource)
        scope = model["resources"][config["scope"]]
        found.append(
            {
                "file": file,
                "role": role_guid(model, config["properties"]["roleDefinitionId"]),
                "principal": config["properties"]["principalId"],
                "principal_type": config["properties"]["principalType"],
                "scope_type": scope["type"],
                "scope_name": bm.body(scope)["name"],
                "condition": bm.condition(resource),
            }
        )
    return found


def test_every_role_assignment_is_in_roles_bicep():
    assert {a["file"] for a in assignments()} == {ROLES}


def test_the_app_identity_has_exactly_the_roles_the_code_needs():
    granted = {
        (a["role"], a["scope_type"], a["scope_name"])
        for a in assignments()
        if a["principal"] == "appPrincipalId"
    }
    assert granted == {
        # Token and proxy paths read secrets; the management API writes them (rotation).
        (KEY_VAULT_SECRETS_OFFICER, "Microsoft.KeyVault/vaults", "keyVaultName"),
        # Client records and tenant mappings, and nothing else in the account.
        (
            STORAGE_TABLE_DATA_CONTRIBUTOR,
            "Microsoft.Storage/storageAccounts/tableServices/tables",
            "clientsTableName",
        ),
        (
            STORAGE_TABLE_DATA_CONTRIBUTOR,
            "Microsoft.Storage/storageAccounts/tableServices/tables",
            "tenantsTableName",
        ),
        # The sandbox provider's table, only when the sandbox is on (see the test below).
        (
            STORAGE_TABLE_DATA_CONTRIBUTOR,
            "Microsoft.Storage/storageAccounts/tableServices/tables",
            "sandboxTableName",
        ),
        # Identity-based host storage and the Flex Consumption deployment container.
        (STORAGE_BLOB_DATA_OWNER, "Microsoft.Storage/storageAccounts", "storageAccountName"),
        # Application Insights with Entra ID authentication.
        (MONITORING_METRICS_PUBLISHER, "Microsoft.Insights/components", "applicationInsightsName"),
    }
    for item in assignments():
        if item["principal"] == "appPrincipalId":
            assert item["principal_type"] == "ServicePrincipal"
            expected = "withSandbox" if item["scope_name"] == "sandboxTableName" else None
            assert item["condition"] == expected


def test_the_app_principal_is_the_user_assigned_identity_the_app_runs_as():
    main = bm.template(MAIN)
    assert main["modules"]["identity"]["detail"]["path"] == "modules/identity.bicep"
    roles = main["modules"]["roles"]["config"]["params"]
    assert bm.accessor(roles["appPrincipalId"]) == ["identity", "outputs", "principalId"]
    assert bm.accessor(passed_to_app("identityId")) == ["identity", "outputs", "id"]
    assert bm.accessor(passed_to_app("identityClientId")) == ["identity", "outputs", "clientId"]
    identity = bm.template(IDENTITY)
    principal = identity["outputs"]["principalId"]["value"]
    assert bm.accessor(principal) == ["identity", "properties", "principalId"]
    assert site()["identity"] == {
        "type": "UserAssigned",
        "userAssignedIdentities": {"'${identityId}'": {}},
    }


def test_the_tables_the_roles_cover_are_the_codes_tables():
    storage = bm.template(STORAGE)
    tables = bm.resources(storage, "Microsoft.Storage/storageAccounts/tableServices/tables")
    assert {bm.body(t)["name"] for t in tables.values()} == {
        CLIENTS_TABLE,
        TENANTS_TABLE,
        SANDBOX_TABLE,
    }
    roles = bm.template(MAIN)["modules"]["roles"]["config"]["params"]
    assert bm.accessor(roles["clientsTableName"]) == ["storage", "outputs", "clientsTableName"]
    assert bm.accessor(roles["tenantsTableName"]) == ["storage", "outputs", "tenantsTableName"]
    assert bm.accessor(storage["outputs"]["clientsTableName"]["value"]) == ["clientsTable", "name"]
    assert bm.accessor(storage["outputs"]["tenantsTableName"]["value"]) == ["tenantsTable", "name"]


def test_operators_get_secrets_and_tables_only_and_only_when_named():
    operator = [a for a in assignments() if a["principal"] == "operatorPrincipalId"]
    assert {(a["role"], a["scope_name"]) for a in operator} == {
        (KEY_VAULT_SECRETS_OFFICER, "keyVaultName"),
        (STORAGE_TABLE_DATA_CONTRIBUTOR, "clientsTableName"),
        (STORAGE_TABLE_DATA_CONTRIBUTOR, "tenantsTableName"),
    }
    assert all(a["condition"] == "withOperator" for a in operator)
    assert main_param_default("operatorPrincipalId") == ""
    principals = {a["principal"] for a in assignments()}
    assert principals == {"appPrincipalId", "operatorPrincipalId"}


def test_no_broad_role_and_no_custom_role_anywhere():
    for path, text in infra_texts().items():
        for guid in GUID.findall(text):
            assert guid.lower() not in FORBIDDEN_ROLES, (path, FORBIDDEN_ROLES[guid.lower()])
    assert not bm.all_resources("Microsoft.Authorization/roleDefinitions")
    allowed = {
        KEY_VAULT_SECRETS_OFFICER,
        STORAGE_TABLE_DATA_CONTRIBUTOR,
        STORAGE_BLOB_DATA_OWNER,
        MONITORING_METRICS_PUBLISHER,
    }
    assert {a["role"] for a in assignments()} == allowed


# Secure defaults -------------------------------------------------------------------------


def test_the_function_app_is_https_only_tls12_no_ftp_no_cors_wildcard():
    app = site()
    properties = app["properties"]
    assert properties["httpsOnly"] is True
    config = properties["siteConfig"]
    assert config["minTlsVersion"] == "1.2"
    assert config["scmMinTlsVersion"] == "1.2"
    # Flex Consumption rejects siteConfig.ftpsState (ARM 51021): FTP is off through the
    # publishing-credentials policies instead, and must not be half-configured here.
    assert "ftpsState" not in config
    policies = bm.resources(
        bm.template(APP), "Microsoft.Web/sites/basicPublishingCredentialsPolicies"
    )
    assert {bm.body(p)["name"]: bm.body(p)["properties"]["allow"] for p in policies.values()} == {
        "ftp": False,
        "scm": False,
    }
    origins = config["cors"]["allowedOrigins"]
    assert "*" not in origins and origins == []
    assert config["cors"]["supportCredentials"] is False
    assert app["kind"] == "functionapp,linux"


def test_flex_consumption_python_311():
    model = bm.template(APP)
    (plan,) = bm.resources(model, "Microsoft.Web/serverfarms").values()
    assert bm.body(plan)["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    assert bm.body(plan)["properties"]["reserved"] is True
    config = site()["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"] == {
        "type": "UserAssignedIdentity",
        "userAssignedIdentityResourceId": "identityId",
    }


def test_storage_allows_no_shared_key_no_public_blobs_and_tls12():
    (account,) = bm.resources(bm.template(STORAGE), "Microsoft.Storage/storageAccounts").values()
    properties = bm.body(account)["properties"]
    assert properties["allowSharedKeyAccess"] is False
    assert properties["allowBlobPublicAccess"] is False
    assert properties["minimumTlsVersion"] == "TLS1_2"
    assert properties["supportsHttpsTrafficOnly"] is True
    assert properties["defaultToOAuthAuthentication"] is True
    containers = bm.resources(
        bm.template(STORAGE), "Microsoft.Storage/storageAccounts/blobServices/containers"
    )
    assert all(bm.body(c)["properties"]["publicAccess"] == "None" for c in containers.values())


def test_key_vault_uses_rbac_soft_delete_and_purge_protection():
    (vault,) = bm.resources(bm.template(KEYVAULT), "Microsoft.KeyVault/vaults").values()
    properties = bm.body(vault)["properties"]
    assert properties["enableRbacAuthorization"] is True
    assert properties["enableSoftDelete"] is True
    assert properties["enablePurgeProtection"] is True
    assert "accessPolicies" not in properties
    assert properties["publicNetworkAccess"] == "publicNetworkAccess"
    keyvault = bm.template(MAIN)["modules"]["keyVault"]["config"]["params"]
    assert keyvault["publicNetworkAccess"] == "keyVaultPublicNetworkAccess"
    allowed = bm.template(MAIN)["parameters"]["keyVaultPublicNetworkAccess"]["decorators"]
    assert {"type": "allowed", "argument": ["Enabled", "Disabled"]} in allowed


def test_telemetry_needs_entra_id_and_secret_access_is_audited():
    components = bm.resources(bm.template(MONITORING), "Microsoft.Insights/components")
    (component,) = components.values()
    assert bm.body(component)["properties"]["DisableLocalAuth"] is True
    audited = {
        bm.body(d)["scope"]: {log["category"] for log in bm.body(d)["properties"]["logs"]}
        for file in (KEYVAULT, STORAGE)
        for d in bm.resources(bm.template(file), "Microsoft.Insights/diagnosticSettings").values()
    }
    assert audited["vault"] == {"AuditEvent"}
    assert audited["tableService"] == {"StorageRead", "StorageWrite", "StorageDelete"}


# Outputs and parameters ------------------------------------------------------------------


def test_outputs_are_the_public_face_the_token_url_and_the_vault():
    outputs = bm.template(MAIN)["outputs"]
    base = "${functionApp.outputs.publicBaseUrl}"
    for face in FACES:
        expected = routes.face_base_url(base, face)
        assert outputs[f"FHIR_{face.upper()}_URL"]["value"] == expected
    assert outputs["TOKEN_URL"]["value"] == routes.token_url(base)
    assert bm.accessor(outputs["KEY_VAULT_NAME"]["value"]) == ["keyVault", "outputs", "name"]
    model = bm.template(APP)
    assert bm.reference(model, model["outputs"]["publicBaseUrl"]["value"]) == "publicBaseUrl"


def test_outputs_named_like_settings_are_settings_the_ops_cli_reads():
    declared = {s.name: s for s in SETTINGS}
    for name in bm.template(MAIN)["outputs"]:
        if name.startswith("EHRB_"):
            assert name in declared and not declared[name].local_only, name
    assert bm.template(MAIN)["outputs"]["EHRB_SECRET_STORE"]["value"] == "keyvault"


def test_the_parameters_file_is_azd_style_and_envsubst_friendly():
    document = json.loads((REPO / "infra" / "main.parameters.json").read_text(encoding="utf-8"))
    given = document["parameters"]
    declared = bm.template(MAIN)["parameters"]
    assert set(given) <= set(declared)
    required = {name for name, p in declared.items() if "default" not in p}
    assert required <= set(given), "a parameter without default is missing"
    for name, entry in given.items():
        # Plain ${NAME}: azd substitutes it, and so does envsubst for `az deployment`.
        assert re.fullmatch(r"\$\{[A-Z][A-Z0-9_]*\}", entry["value"]), name
    assert given["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    assert given["location"]["value"] == "${AZURE_LOCATION}"


@pytest.mark.parametrize(
    "pattern",
    ["tests", "tools", "infra", "docs", ".venv", ".venv-infra", ".github", ".azure", ".local"],
)
def test_funcignore_keeps_tests_tools_and_deployment_files_out_of_the_package(pattern: str):
    lines = (REPO / ".funcignore").read_text(encoding="utf-8").splitlines()
    assert pattern in lines
