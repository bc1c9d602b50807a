"""The hosting form, from the markers the Functions host reads (shared/hosting.py), per
environment the app meets: Flex Consumption, Linux Consumption, App Service, `func start`, the
dev host, and the lone or inconsistent markers in between."""

from __future__ import annotations

import logging

import pytest

from shared import hosting
from shared.hosting import detect

# Flex Consumption once specialized, as the host's own tests describe it: a SKU, a container
# name, the Legion service host, and no WEBSITE_INSTANCE_ID.
FLEX = {
    "WEBSITE_SKU": "FlexConsumption",
    "CONTAINER_NAME": "aa1b2c3d-flex-0001",
    "LEGION_SERVICE_HOST": "10.0.0.4",
    "WEBSITE_SITE_NAME": "func-ehrb-abc",
    "FUNCTIONS_WORKER_RUNTIME": "python",
    "WEBSITE_INSTANCE_ID": "",
}
LINUX_CONSUMPTION = {
    "WEBSITE_SKU": "Dynamic",
    "CONTAINER_NAME": "func-linux-0001",
    "WEBSITE_SITE_NAME": "func-ehrb-abc",
}
DEDICATED_LINUX = {
    "WEBSITE_INSTANCE_ID": "0f1e2d3c4b5a",
    "WEBSITE_SKU": "PremiumV3",
    "WEBSITE_SITE_NAME": "func-ehrb-abc",
    "FUNCTIONS_LOGS_MOUNT_PATH": "/var/log/functions",
}
WINDOWS_CONSUMPTION = {
    "WEBSITE_INSTANCE_ID": "0f1e2d3c4b5a",
    "WEBSITE_SKU": "Dynamic",
    "WEBSITE_SITE_NAME": "func-ehrb-abc",
}
FUNC_START = {
    "FUNCTIONS_CORETOOLS_ENVIRONMENT": "true",
    "FUNCTIONS_WORKER_RUNTIME": "python",
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
}
# What `make run` gives the dev host: EHR Bridge's own settings and no platform marker.
DEV_HOST = {
    "EHRB_SECRET_STORE": "local",
    "EHRB_LOCAL_ADMIN_KEY": "k",
    "EHRB_TABLES_CONNECTION_STRING": "UseDevelopmentStorage=true",
}


def test_flex_consumption_is_recognised_without_website_instance_id():
    assert detect(FLEX).kind == hosting.FLEX_CONSUMPTION


def test_flex_consumption_lets_the_host_enforce_the_admin_level():
    assert detect(FLEX).enforces_admin_level is True


def test_flex_consumption_before_the_sku_is_known_is_recognised_from_legion():
    placeholder = {"CONTAINER_NAME": "c", "LEGION_SERVICE_HOST": "1"}
    assert detect(placeholder).kind == hosting.FLEX_CONSUMPTION


def test_flex_consumption_with_a_pod_name_instead_of_a_container_name_is_recognised():
    pod = {"WEBSITE_POD_NAME": "p", "LEGION_SERVICE_HOST": "1"}
    assert detect(pod).kind == hosting.FLEX_CONSUMPTION


def test_flex_consumption_without_legion_is_recognised_from_sku_and_container():
    assert detect({"WEBSITE_SKU": "flexconsumption", "CONTAINER_NAME": "c"}).kind == (
        hosting.FLEX_CONSUMPTION
    )


def test_linux_consumption_is_recognised_from_container_and_dynamic_sku():
    assert detect(LINUX_CONSUMPTION).kind == hosting.LINUX_CONSUMPTION


def test_dedicated_app_service_is_recognised():
    assert detect(DEDICATED_LINUX).kind == hosting.APP_SERVICE


def test_windows_consumption_is_recognised_as_app_service():
    assert detect(WINDOWS_CONSUMPTION).enforces_admin_level is True


def test_func_start_never_counts_as_enforcing_keys():
    assert detect(FUNC_START).enforces_admin_level is False


def test_func_start_alone_does_not_refuse_the_local_secret_store():
    assert detect(FUNC_START).maybe_azure is False


def test_func_start_with_copied_azure_settings_stays_core_tools():
    copied = {**FUNC_START, **FLEX}
    assert detect(copied).kind == hosting.CORE_TOOLS


def test_the_dev_host_is_local():
    assert detect(DEV_HOST).kind == hosting.LOCAL


def test_empty_markers_count_as_absent():
    assert detect({"WEBSITE_INSTANCE_ID": "", "CONTAINER_NAME": " "}).kind == hosting.LOCAL


@pytest.mark.parametrize(
    "lone",
    [
        {"WEBSITE_SKU": "FlexConsumption"},
        {"WEBSITE_INSTANCE_ID": "0f1e"},
        {"CONTAINER_NAME": "c"},
        {"LEGION_SERVICE_HOST": "1"},
    ],
    ids=lambda env: next(iter(env)),
)
def test_one_marker_alone_never_lifts_the_admin_key_check(lone):
    assert detect(lone).enforces_admin_level is False


@pytest.mark.parametrize(
    "lone",
    [
        {"WEBSITE_SKU": "FlexConsumption"},
        {"WEBSITE_INSTANCE_ID": "0f1e"},
        {"LEGION_SERVICE_HOST": "1"},
        {"WEBSITE_SITE_NAME": "func-ehrb-abc"},
    ],
    ids=lambda env: next(iter(env)),
)
def test_one_azure_marker_alone_makes_the_local_secret_store_refuse(lone):
    assert detect(lone).maybe_azure is True


def test_a_container_name_alone_is_an_ordinary_container_not_azure():
    # Container runtimes set it too, this project's own development machines among them.
    assert detect({**DEV_HOST, "CONTAINER_NAME": "sandbox-7"}).kind == hosting.LOCAL


def test_the_markers_present_are_listed_by_name_in_a_fixed_order():
    assert detect(FLEX).present == (
        "WEBSITE_SKU",
        "WEBSITE_SITE_NAME",
        "CONTAINER_NAME",
        "LEGION_SERVICE_HOST",
        "FUNCTIONS_WORKER_RUNTIME",
    )


def test_the_start_up_line_names_markers_but_never_their_values():
    line = detect(FLEX).describe()
    assert "CONTAINER_NAME" in line
    assert all(value not in line for value in FLEX.values() if value)


def test_a_recognised_form_is_logged_at_information(caplog):
    with caplog.at_level(logging.INFO, logger="shared.hosting"):
        hosting.log_hosting(detect(FLEX))
    assert [r.levelno for r in caplog.records] == [logging.INFO]


def test_inconsistent_markers_are_logged_as_a_warning(caplog):
    with caplog.at_level(logging.INFO, logger="shared.hosting"):
        hosting.log_hosting(detect({"WEBSITE_SKU": "FlexConsumption"}))
    assert [r.levelno for r in caplog.records] == [logging.WARNING]


def test_the_services_log_the_hosting_form_once_per_process(monkeypatch, caplog):
    from shared import services

    for name, value in FLEX.items():
        monkeypatch.setenv(name, value)
    services.set_services(None)
    try:
        with caplog.at_level(logging.INFO, logger="shared.hosting"):
            services.get_services()
            services.get_services()
    finally:
        services.set_services(None)
    assert sum("hosting: flex-consumption" in r.getMessage() for r in caplog.records) == 1
