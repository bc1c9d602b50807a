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
from shared.tables import (
    CLIENTS_TABLE,
    EXPIRING_TABLE,
    SANDBOX_CHART_TABLES,
    SANDBOX_LOCATOR_TABLE,
    SANDBOX_TABLE,
    TENANTS_TABLE,
)
from tests.infra import bicep_model as bm
from tools.testkit.data import REPO

MAIN = "infra/main.bicep"
APP = "infra/modules/functionapp.bicep"
ROLES = "infra/modules/roles.bicep"
STORAGE = "infra/modules/storage.bicep"
KEYVAULT = "infra/modules/keyvault.bicep"
MONITORING = "infra/modules/monitoring.bicep"
IDENTITY = "infra/modules/identity.bicep"
HOST_STORAGE = "infra/modules/hoststorage.bicep"
ALERTS = "infra/modules/alerts.bicep"
WORKBOOK = "infra/modules/workbook.bicep"

# App settings the template sets that are not EHR Bridge's own: the platform reads them.
# On Flex Consumption the runtime, its version and the package location are functionAppConfig,
# not app settings (FUNCTIONS_WORKER_RUNTIME, FUNCTIONS_EXTENSION_VERSION and
# WEBSITE_RUN_FROM_PACKAGE are deprecated there), so none of them belongs here.
PLATFORM_SETTINGS = {
    # Identity-based host storage: account, "managedidentity", the user-assigned identity.
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    # Application Insights with Entra ID authentication (local auth is disabled), read by the
    # host and the exporter; the connection string is a setting of ours too (shared/settings.py).
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
    # The worker streams the app's OpenTelemetry logs itself (no duplicates from the host).
    "PYTHON_ENABLE_OPENTELEMETRY",
}
# Settings the template deliberately sets away from the code's default, with the reason.
DEPLOYMENT_CHOICES = {
    # Unset, the worker's pool is min(32, cpu + 4): 5 threads on a one-core instance, fewer
    # than the requests the platform sends it; the template matches it to that concurrency.
    "PYTHON_THREADPOOL_THREAD_COUNT",
}

# Built-in roles by GUID.
KEY_VAULT_SECRETS_OFFICER = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
STORAGE_TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
STORAGE_BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"
LOG_ANALYTICS_READER = "73c42c96-874c-492b-b04d-ab87d138a893"
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
    assert {
        MAIN,
        APP,
        ROLES,
        STORAGE,
        HOST_STORAGE,
        KEYVAULT,
        MONITORING,
        IDENTITY,
        ALERTS,
        WORKBOOK,
    } <= set(bm.load())


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
        if name not in defaults or name in DEPLOYMENT_CHOICES:
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
    assert settings["EHRB_TOKEN_ISSUER"] == "${publicBaseUrl}/api/oauth2"
    assert settings["EHRB_TOKEN_AUDIENCE"] == "${publicBaseUrl}/api/fhir"


def test_the_host_name_is_the_sites_own_default_host_name_unless_a_custom_one_is_given():
    host = bm.template(APP)["variables"]["publicHost"]["value"]["operator"]["operands"]
    assert bm.accessor(host["true_value"]) == ["app", "properties", "defaultHostName"]
    assert host["false_value"] == "publicHostName"
    assert host["condition"]["function"] == {
        "parameters": {"item_to_test": "publicHostName"},
        "type": "empty",
    }
    assert main_param_default("publicHostName") == ""


def test_no_host_name_is_guessed_anywhere_in_the_deployment():
    expressions = json.dumps([bm.template(APP)["variables"], app_settings()])
    assert "azurewebsites" not in expressions
    assert "environment()" not in expressions


def test_app_settings_are_a_child_of_the_site_written_after_it_exists():
    configs = bm.resources(bm.template(APP), "Microsoft.Web/sites/config")
    (config,) = [c for c in configs.values() if bm.body(c)["name"] == "appsettings"]
    assert bm.body(config)["parent"] == "app"
    assert "appSettings" not in site()["properties"]["siteConfig"]


def auth_settings() -> dict:
    configs = bm.resources(bm.template(APP), "Microsoft.Web/sites/config")
    (config,) = [c for c in configs.values() if bm.body(c)["name"] == "authsettingsV2"]
    return config


def test_entra_sign_in_is_configured_only_when_an_app_registration_is_given():
    config = auth_settings()
    assert config["config"]["condition"] is not None  # `if (!empty(consoleEntraClientId))`
    assert "consoleEntraClientId" in json.dumps(config["config"]["condition"])
    assert main_param_default("consoleEntraClientId") == ""
    setting = json.dumps(app_settings()["EHRB_ENTRA_AUTH"])
    assert "consoleEntraClientId" in setting


def test_entra_sign_in_lets_anonymous_requests_through_and_never_judges_the_apps_routes():
    validation = bm.body(auth_settings())["properties"]["globalValidation"]
    assert validation["unauthenticatedClientAction"] == "AllowAnonymous"
    assert set(validation["excludedPaths"]) == {
        "/api/fhir",
        "/api/oauth2",
        "/api/health",
        "/api/sandbox",
    }
    assert bm.body(auth_settings())["properties"]["httpSettings"]["requireHttps"] is True


def test_the_site_asks_for_a_unique_default_host_name():
    assert site()["properties"]["autoGeneratedDomainNameLabelScope"] == "TenantReuse"


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
    # The locator and chart tables: created only when on, listed to roles.bicep only when on.
    assert bm.condition(table["sandboxDataTables"]) == "sandboxEnabled"
    names = storage["outputs"]["sandboxDataTableNames"]["value"]["operator"]["operands"]
    assert names == {
        "condition": "sandboxEnabled",
        "true_value": "sandboxDataTableNames",
        "false_value": [],
    }
    passed = bm.template(MAIN)["modules"]["roles"]["config"]["params"]["sandboxDataTableNames"]
    assert bm.accessor(passed) == ["storage", "outputs", "sandboxDataTableNames"]


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
        # A looped assignment's scope is `tables[index]`: it names the array the tables are.
        looped = bm.indexed(config["scope"])
        scope = model["resources"][looped or config["scope"]]
        found.append(
            {
                "file": file,
                "role": role_guid(model, config["properties"]["roleDefinitionId"]),
                "principal": config["properties"]["principalId"],
                "principal_type": config["properties"]["principalType"],
                "scope_type": scope["type"],
                "scope_name": bm.loop_array(scope) if looped else bm.body(scope)["name"],
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
        # The rows every instance shares (failure counts, instances alive).
        (
            STORAGE_TABLE_DATA_CONTRIBUTOR,
            "Microsoft.Storage/storageAccounts/tableServices/tables",
            "expiringTableName",
        ),
        # The sandbox provider's tables, only when the sandbox is on (see the tests below).
        (
            STORAGE_TABLE_DATA_CONTRIBUTOR,
            "Microsoft.Storage/storageAccounts/tableServices/tables",
            "sandboxTableName",
        ),
        (
            STORAGE_TABLE_DATA_CONTRIBUTOR,
            "Microsoft.Storage/storageAccounts/tableServices/tables",
            "sandboxDataTableNames",
        ),
        # Identity-based host storage and the Flex Consumption deployment container, in the
        # host account only.
        (STORAGE_BLOB_DATA_OWNER, "Microsoft.Storage/storageAccounts", "hostStorageAccountName"),
        # The host's diagnostic events table (AZFD0003), in the host account only.
        (
            STORAGE_TABLE_DATA_CONTRIBUTOR,
            "Microsoft.Storage/storageAccounts",
            "hostStorageAccountName",
        ),
        # Application Insights with Entra ID authentication.
        (MONITORING_METRICS_PUBLISHER, "Microsoft.Insights/components", "applicationInsightsName"),
        # The audit export reads the audit stream back from the workspace (row 143).
        (LOG_ANALYTICS_READER, "Microsoft.OperationalInsights/workspaces", "workspaceName"),
    }
    for item in assignments():
        if item["principal"] == "appPrincipalId":
            assert item["principal_type"] == "ServicePrincipal"
            expected = "withSandbox" if item["scope_name"] == "sandboxTableName" else None
            assert item["condition"] == expected


def test_operators_can_load_the_sandbox_only_when_it_is_on():
    (sandbox,) = [
        a
        for a in assignments()
        if a["principal"] == "operatorPrincipalId" and a["scope_name"] == "sandboxTableName"
    ]
    assert sandbox["condition"] == {
        "operator": {
            "operands": {"operand_1": "withOperator", "operand_2": "withSandbox"},
            "type": "and",
        }
    }
    # Its other tables: one assignment each, over a list that is empty when the sandbox is off.
    (data,) = [
        a
        for a in assignments()
        if a["principal"] == "operatorPrincipalId" and a["scope_name"] == "sandboxDataTableNames"
    ]
    assert data["condition"] == "withOperator"


def test_the_operator_principal_type_may_be_left_for_azure_to_look_up():
    allowed = bm.template(MAIN)["parameters"]["operatorPrincipalType"]["decorators"]
    assert {"type": "allowed", "argument": ["", "Group", "User", "ServicePrincipal"]} in allowed
    assert main_param_default("operatorPrincipalType") == ""
    omitted = bm.template(ROLES)["variables"]["operatorType"]["value"]["operator"]["operands"]
    assert omitted["true_value"] is None
    assert {
        a["principal_type"] for a in assignments() if a["principal"] == "operatorPrincipalId"
    } == {"operatorType"}


def test_no_blob_role_reaches_the_data_account():
    blob_roles = {STORAGE_BLOB_DATA_OWNER}
    for item in assignments():
        if item["role"] in blob_roles:
            assert item["scope_name"] == "hostStorageAccountName"
    roles = bm.template(MAIN)["modules"]["roles"]["config"]["params"]
    assert bm.accessor(roles["hostStorageAccountName"]) == ["hostStorage", "outputs", "name"]
    assert bm.accessor(roles["storageAccountName"]) == ["storage", "outputs", "name"]


def test_host_storage_and_the_package_live_in_their_own_account():
    settings = app_settings()
    model = bm.template(APP)
    assert bm.reference(model, settings["AzureWebJobsStorage__accountName"]) == (
        "hostStorageAccountName"
    )
    assert bm.accessor(passed_to_app("hostStorageAccountName")) == [
        "hostStorage",
        "outputs",
        "name",
    ]
    assert bm.accessor(passed_to_app("deploymentContainerUrl")) == [
        "hostStorage",
        "outputs",
        "deploymentContainerUrl",
    ]
    data = bm.template(STORAGE)
    assert not bm.resources(data, "Microsoft.Storage/storageAccounts/blobServices/containers")
    host = bm.template(HOST_STORAGE)
    assert not bm.resources(host, "Microsoft.Storage/storageAccounts/tableServices/tables")


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


def sandbox_data_table_names(storage: dict[str, Any]) -> list[str]:
    """The names ``sandboxDataTableNames`` holds: the locator, then the range of chart tables."""
    value = storage["variables"]["sandboxDataTableNames"]["value"]["function"]
    assert value["type"] == "concat"
    head, tail = value["parameters"]["arg_1"], value["parameters"]["arg_2"]
    charts = storage["variables"][tail]["value"]
    detail = charts["loop_type"]["detail"]
    assert charts["loop_type"]["type"] == "range" and detail["start_index"] == 0
    template = charts["config"]
    assert template == "sandboxchart${padLeft(shard, 2, '0')}", template
    return [*head, *(f"sandboxchart{shard:02d}" for shard in range(detail["count"]))]


def test_the_tables_the_roles_cover_are_the_codes_tables():
    storage = bm.template(STORAGE)
    tables = bm.resources(storage, "Microsoft.Storage/storageAccounts/tableServices/tables")
    single = {bm.body(t)["name"] for t in tables.values() if bm.loop_array(t) is None}
    assert single == {CLIENTS_TABLE, TENANTS_TABLE, EXPIRING_TABLE, SANDBOX_TABLE}
    looped = [bm.loop_array(t) for t in tables.values() if bm.loop_array(t) is not None]
    assert looped == ["sandboxDataTableNames"]
    assert sandbox_data_table_names(storage) == [SANDBOX_LOCATOR_TABLE, *SANDBOX_CHART_TABLES]
    roles = bm.template(MAIN)["modules"]["roles"]["config"]["params"]
    for name in ("clientsTableName", "tenantsTableName", "expiringTableName"):
        assert bm.accessor(roles[name]) == ["storage", "outputs", name]
    assert bm.accessor(storage["outputs"]["clientsTableName"]["value"]) == ["clientsTable", "name"]
    assert bm.accessor(storage["outputs"]["tenantsTableName"]["value"]) == ["tenantsTable", "name"]
    assert bm.accessor(storage["outputs"]["expiringTableName"]["value"]) == [
        "expiringTable",
        "name",
    ]


def test_operators_get_secrets_and_tables_only_and_only_when_named():
    operator = [a for a in assignments() if a["principal"] == "operatorPrincipalId"]
    assert {(a["role"], a["scope_name"]) for a in operator} == {
        (KEY_VAULT_SECRETS_OFFICER, "keyVaultName"),
        (STORAGE_TABLE_DATA_CONTRIBUTOR, "clientsTableName"),
        (STORAGE_TABLE_DATA_CONTRIBUTOR, "tenantsTableName"),
        (STORAGE_TABLE_DATA_CONTRIBUTOR, "sandboxTableName"),
        (STORAGE_TABLE_DATA_CONTRIBUTOR, "sandboxDataTableNames"),
    }
    for item in operator:
        if item["scope_name"] != "sandboxTableName":
            assert item["condition"] == "withOperator"
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
        LOG_ANALYTICS_READER,
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


@pytest.mark.parametrize("file", [STORAGE, HOST_STORAGE])
def test_storage_allows_no_shared_key_no_public_blobs_and_tls12(file: str):
    (account,) = bm.resources(bm.template(file), "Microsoft.Storage/storageAccounts").values()
    properties = bm.body(account)["properties"]
    assert properties["allowSharedKeyAccess"] is False
    assert properties["allowBlobPublicAccess"] is False
    assert properties["minimumTlsVersion"] == "TLS1_2"
    assert properties["supportsHttpsTrafficOnly"] is True
    assert properties["defaultToOAuthAuthentication"] is True
    containers = bm.resources(
        bm.template(file), "Microsoft.Storage/storageAccounts/blobServices/containers"
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
        for file in (KEYVAULT, STORAGE, HOST_STORAGE)
        for d in bm.resources(bm.template(file), "Microsoft.Insights/diagnosticSettings").values()
    }
    assert audited["vault"] == {"AuditEvent"}
    assert audited["tableService"] == {"StorageRead", "StorageWrite", "StorageDelete"}
    # Writes to the app package (which the runtime identity can make) are logged too.
    assert audited["blobService"] == {"StorageRead", "StorageWrite", "StorageDelete"}


# Scale, retention, recovery -----------------------------------------------------------


def bounds(template: str, parameter: str) -> tuple[Any, Any]:
    decorators = bm.template(template)["parameters"][parameter]["decorators"]
    found = {d["type"]: d["argument"] for d in decorators}
    return found.get("min_value"), found.get("max_value")


@pytest.mark.parametrize("template", [MAIN, APP])
def test_maximum_instance_count_stays_within_flex_consumptions_40_to_1000(template: str):
    assert bounds(template, "maximumInstanceCount") == (40, 1000)


def test_per_instance_http_concurrency_is_a_parameter_of_function_app_config():
    scale = site()["properties"]["functionAppConfig"]["scaleAndConcurrency"]
    assert scale["triggers"] == {"http": {"perInstanceConcurrency": "httpPerInstanceConcurrency"}}
    assert passed_to_app("httpPerInstanceConcurrency") == "httpPerInstanceConcurrency"
    assert main_param_default("httpPerInstanceConcurrency") == 16
    assert bounds(MAIN, "httpPerInstanceConcurrency") == (1, 1000)


def test_the_worker_has_a_thread_for_every_request_an_instance_is_sent():
    threads = app_settings()["PYTHON_THREADPOOL_THREAD_COUNT"]
    assert bm.converted(threads) == "httpPerInstanceConcurrency"


def test_application_insights_leaves_retention_to_the_workspace():
    monitoring = bm.template(MONITORING)
    (component,) = bm.resources(monitoring, "Microsoft.Insights/components").values()
    assert "RetentionInDays" not in bm.body(component)["properties"]
    workspace_id = bm.body(component)["properties"]["WorkspaceResourceId"]
    assert bm.accessor(workspace_id) == ["workspace", "id"]
    (workspace,) = bm.resources(monitoring, "Microsoft.OperationalInsights/workspaces").values()
    assert bm.body(workspace)["properties"]["retentionInDays"] == "retentionInDays"
    assert bounds(MAIN, "logRetentionInDays") == (30, 730)


def test_the_vault_can_be_recovered_after_a_teardown_by_a_parameter():
    allowed = bm.template(MAIN)["parameters"]["keyVaultCreateMode"]["decorators"]
    assert {"type": "allowed", "argument": ["", "default", "recover"]} in allowed
    mode = bm.template(MAIN)["modules"]["keyVault"]["config"]["params"]["createMode"]
    assert mode["operator"]["operands"]["true_value"] == "default"
    (vault,) = bm.resources(bm.template(KEYVAULT), "Microsoft.KeyVault/vaults").values()
    assert bm.body(vault)["properties"]["createMode"] == "createMode"
    module_allowed = bm.template(KEYVAULT)["parameters"]["createMode"]["decorators"]
    assert {"type": "allowed", "argument": ["default", "recover"]} in module_allowed


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
    # azd substitutes an unset variable with "", so every one of these accepts "".
    assert given["operatorPrincipalType"]["value"] == "${EHRB_OPERATOR_PRINCIPAL_TYPE}"
    assert given["keyVaultCreateMode"]["value"] == "${EHRB_KEYVAULT_CREATE_MODE}"
    for name, entry in given.items():
        if entry["value"].startswith("${EHRB_"):
            assert declared[name]["default"] == "", name


@pytest.mark.parametrize(
    "pattern",
    ["tests", "tools", "infra", "docs", ".venv", ".venv-infra", ".github", ".azure", ".local"],
)
def test_funcignore_keeps_tests_tools_and_deployment_files_out_of_the_package(pattern: str):
    lines = (REPO / ".funcignore").read_text(encoding="utf-8").splitlines()
    assert pattern in lines


# Telemetry, audit export, alerts and the workbook (issue 18) ------------------------------


def test_row_143_the_app_reads_the_audit_from_its_own_workspace_only():
    (reader,) = [a for a in assignments() if a["role"] == LOG_ANALYTICS_READER]
    assert reader["principal"] == "appPrincipalId"
    assert reader["scope_type"] == "Microsoft.OperationalInsights/workspaces"
    passed = bm.template(MAIN)["modules"]["roles"]["config"]["params"]["workspaceName"]
    assert bm.accessor(passed) == ["monitoring", "outputs", "workspaceName"]


def test_the_audit_export_queries_the_deployments_workspace_by_its_customer_id():
    model = bm.template(APP)
    assert bm.reference(model, app_settings()["EHRB_AUDIT_WORKSPACE_ID"]) == "auditWorkspaceId"
    assert bm.accessor(passed_to_app("auditWorkspaceId")) == [
        "monitoring",
        "outputs",
        "workspaceCustomerId",
    ]
    output = bm.template(MONITORING)["outputs"]["workspaceCustomerId"]["value"]
    assert bm.accessor(output) == ["workspace", "properties", "customerId"]


def test_telemetry_is_exported_by_the_worker_in_open_telemetry_mode():
    host = json.loads((REPO / "host.json").read_text(encoding="utf-8"))
    assert host["telemetryMode"] == "OpenTelemetry"
    assert app_settings()["PYTHON_ENABLE_OPENTELEMETRY"] == "true"
    assert bm.reference(bm.template(APP), app_settings()["APPLICATIONINSIGHTS_CONNECTION_STRING"])


def alert_rules() -> dict[str, dict[str, Any]]:
    rules = bm.template(ALERTS)["variables"]["rules"]["value"]
    return {rule["name"]: rule for rule in rules}


@pytest.mark.parametrize(
    ("rule", "needles"),
    [
        ("alert-line", ['Message startswith "ALERT"']),
        ("server-errors", ["toint(ResultCode) >= 500", "${serverErrorPercent}"]),
        (
            "provider-health",
            ['Target startswith "provider:"', "${providerErrorPercent}", "${providerLatencyMs}"],
        ),
        ("token-failures", ['"ehrbridge.tokens"', '== "denied"', "${tokenFailuresPerClient}"]),
        ("store-throttling", ["httpStatusCode_d == 429", "ServerBusy"]),
        ("signing-key-retirement", ['"ehrbridge.signing_key.days_left"', "${signingKeyDays}"]),
    ],
)
def test_an_alert_rule_watches_each_condition_of_the_issue(rule: str, needles: list[str]):
    query = alert_rules()[rule]["query"]
    for needle in needles:
        assert needle in query, (rule, needle)


def test_alerts_per_tenant_and_per_client_fire_per_tenant_and_per_client():
    rules = alert_rules()
    assert [d["name"] for d in rules["provider-health"]["dimensions"]] == ["tenant"]
    assert [d["name"] for d in rules["token-failures"]["dimensions"]] == ["client"]


def test_alert_rules_query_the_workspace_and_notify_the_action_group_parameter():
    (rules,) = bm.resources(bm.template(ALERTS), "Microsoft.Insights/scheduledQueryRules").values()
    body = bm.body(rules)
    properties = body.get("properties") or body["config"]["properties"]
    assert properties["scopes"] == ["workspaceId"]
    groups = properties["actions"]["actionGroups"]["operator"]["operands"]
    assert groups["false_value"] == ["actionGroupId"]
    alerts = bm.template(MAIN)["modules"]["alerts"]["config"]["params"]
    assert alerts["actionGroupId"] == "alertActionGroupId"
    assert main_param_default("alertActionGroupId") == ""


def test_the_workbook_charts_tenants_providers_latency_and_tokens_per_secret_version():
    document = json.loads(
        (REPO / "infra" / "workbooks" / "ehr-bridge.workbook.json").read_text(encoding="utf-8")
    )
    queries = " ".join(
        item["content"].get("query", "") for item in document["items"] if item["type"] == 3
    )
    for needle in (
        'Properties["ehrbridge.tenant_id"]',
        'Target startswith "provider:"',
        "percentile(DurationMs, 95)",
        'Properties["ehrbridge.secret_version"]',
        "toint(ResultCode) >= 400",
    ):
        assert needle in queries, needle
    (workbook,) = bm.resources(bm.template(WORKBOOK), "Microsoft.Insights/workbooks").values()
    assert bm.body(workbook)["properties"]["sourceId"] == "workspaceId"
