"""The app's own identity is asked for tokens of the provider's audience only (table H)."""

from __future__ import annotations

import pytest

from shared.scopes import ScopeRefused, managed_identity_scope
from shared.settings import Settings, SettingsError
from shared.tenants import InvalidTenantInput, parse_mapping

AHDS = "https://contoso-fhirsvc.fhir.azurehealthcareapis.com"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"

AZURE_AUDIENCES = [
    "https://vault.azure.net/.default",
    "https://vault.azure.net",
    "https://kv-ehrb-x.vault.azure.net/.default",
    "https://management.azure.com/.default",
    "https://management.core.windows.net/",
    "https://storage.azure.com/.default",
    "https://stehrbx.blob.core.windows.net/.default",
    "https://stehrbx.table.core.windows.net/.default",
    "https://graph.microsoft.com/.default",
    "https://graph.windows.net/.default",
    "cfa8b339-82a2-471a-a3c9-0fc0be7a4093/.default",
    "https://VAULT.AZURE.NET/.default",
]


def mi_mapping(scope: str, allowed: tuple[str, ...] = ()):
    body = {
        "provider_base_url": AHDS,
        "provider_fhir_version": "r4",
        "provider_auth_kind": "managed_identity",
        "provider_scope": scope,
    }
    return parse_mapping(
        TENANT,
        body,
        allow_insecure=False,
        client_exists=lambda _: True,
        managed_identity_scopes=allowed,
    )


@pytest.mark.parametrize("scope", AZURE_AUDIENCES)
def test_row_105_azure_audiences_are_refused_for_a_mapping(scope):
    with pytest.raises(InvalidTenantInput) as error:
        mi_mapping(scope)
    assert error.value.field == "provider_scope"


@pytest.mark.parametrize("scope", AZURE_AUDIENCES)
def test_row_105_azure_audiences_are_refused_even_when_allow_listed(scope):
    with pytest.raises(ScopeRefused):
        managed_identity_scope(scope, AHDS, (scope,))


def test_row_105_a_scope_for_another_service_is_refused_unless_allow_listed():
    with pytest.raises(InvalidTenantInput):
        mi_mapping("https://fhir.other.example/.default")
    allowed = ("https://fhir.other.example/.default",)
    assert mi_mapping(allowed[0], allowed).provider_scope == allowed[0]


def test_the_providers_own_origin_is_the_default_and_may_be_written_out():
    assert managed_identity_scope("", AHDS + "/r4", ()) == f"{AHDS}/.default"
    assert mi_mapping(f"{AHDS}/.default").provider_scope == f"{AHDS}/.default"


def test_two_scopes_in_one_are_refused():
    with pytest.raises(ScopeRefused):
        managed_identity_scope(f"{AHDS}/.default https://vault.azure.net/.default", AHDS, ())


def test_a_provider_url_on_an_azure_audience_is_refused_by_its_default_scope():
    body = {
        "provider_base_url": "https://kv-ehrb-x.vault.azure.net",
        "provider_fhir_version": "r4",
        "provider_auth_kind": "managed_identity",
    }
    with pytest.raises(InvalidTenantInput) as error:
        parse_mapping(TENANT, body, allow_insecure=False, client_exists=lambda _: True)
    assert error.value.field == "provider_base_url"


def test_the_allow_list_setting_refuses_azure_audiences():
    with pytest.raises(SettingsError):
        Settings.from_env({"EHRB_MANAGED_IDENTITY_SCOPES": "https://vault.azure.net/.default"})


def test_the_allow_list_setting_is_read_space_or_comma_separated():
    settings = Settings.from_env({"EHRB_MANAGED_IDENTITY_SCOPES": "api://a/.default, api://b"})
    assert settings.managed_identity_scopes == ("api://a/.default", "api://b")
