"""Settings: names in one place, validated once, safe defaults."""

from __future__ import annotations

import pytest

from shared.settings import SETTINGS, Settings, SettingsError


def test_defaults_are_the_documented_ones():
    settings = Settings.from_env({})
    assert settings.token_algorithm == "RS256"
    assert settings.cache_ttl_seconds == 60
    assert settings.secret_store == "keyvault"
    assert settings.allow_insecure_provider_urls is False
    assert settings.trust_forwarded_headers is False
    assert settings.hosting.kind == "local"


def test_every_setting_has_a_description_and_a_unique_name():
    names = [s.name for s in SETTINGS]
    assert len(names) == len(set(names))
    assert all(s.description for s in SETTINGS)


def test_the_hosting_form_is_read_from_the_same_environment():
    flex = {"WEBSITE_SKU": "FlexConsumption", "CONTAINER_NAME": "c1", "LEGION_SERVICE_HOST": "1"}
    assert Settings.from_env(flex).hosting.kind == "flex-consumption"


def test_worker_threads_follow_the_python_worker_setting():
    assert Settings.from_env({"PYTHON_THREADPOOL_THREAD_COUNT": "16"}).worker_threads == 16


def test_worker_threads_default_to_the_thread_pool_executor_default():
    assert 5 <= Settings.from_env({}).worker_threads <= 32


def test_a_worker_thread_count_below_one_is_refused_by_name():
    with pytest.raises(SettingsError, match="PYTHON_THREADPOOL_THREAD_COUNT"):
        Settings.from_env({"PYTHON_THREADPOOL_THREAD_COUNT": "0"})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("EHRB_TOKEN_ALGORITHM", "HS256"),
        ("EHRB_TOKEN_ALGORITHM", "none"),
        ("EHRB_SECRET_STORE", "vault"),
        ("EHRB_CACHE_TTL_SECONDS", "0"),
        ("EHRB_CACHE_TTL_SECONDS", "sixty"),
        ("EHRB_TOKEN_LIFETIME_SECONDS", "-5"),
        ("EHRB_TRUST_FORWARDED_HEADERS", "maybe"),
        ("EHRB_PUBLIC_BASE_URL", "bridge.example"),
        ("EHRB_TRUSTED_PROXY_HOPS", "-1"),
        ("EHRB_TOKEN_CLIENT_FAILURE_CEILING", "0"),
        ("EHRB_ASSERTION_ALGORITHM", "RS256"),
        ("EHRB_ASSERTION_ALGORITHM", "HS384"),
        ("EHRB_ENTRA_AUTHORITY", "http://login.microsoftonline.com"),
        ("EHRB_ENTRA_AUTHORITY", "https://login.microsoftonline.com/common"),
        ("EHRB_ENTRA_AUTHORITY", "https://user@login.microsoftonline.com"),
        ("EHRB_ENTRA_AUTHORITY", "https://login.microsoftonline.com:badport"),
    ],
)
def test_invalid_values_are_refused_by_name(name, value):
    with pytest.raises(SettingsError) as error:
        Settings.from_env({name: value})
    assert name in str(error.value)


def test_entra_tokens_are_off_and_assertions_rs384_unless_told():
    settings = Settings.from_env({})
    assert settings.entra_audience == ""
    assert settings.entra_authority == "https://login.microsoftonline.com"
    assert settings.assertion_algorithm == "RS384"


def test_the_entra_authority_is_kept_as_a_plain_lower_case_origin():
    settings = Settings.from_env({"EHRB_ENTRA_AUTHORITY": "https://Login.Example.US:8443/"})
    assert settings.entra_authority == "https://login.example.us:8443"


def test_flags_accept_the_spellings_core_tools_writes():
    for text in ("true", "True", "1", "yes"):
        assert Settings.from_env(
            {"EHRB_ALLOW_INSECURE_PROVIDER_URLS": text}
        ).allow_insecure_provider_urls


def test_secrets_do_not_appear_in_the_repr():
    settings = Settings.from_env(
        {
            "EHRB_LOCAL_ADMIN_KEY": "super-secret-key",
            "EHRB_TABLES_CONNECTION_STRING": "AccountKey=x",
        }
    )
    assert "super-secret-key" not in repr(settings)
    assert "AccountKey" not in repr(settings)
