"""KeyVaultSecretStore: the real azure-keyvault-secrets SDK against a local fake Key Vault."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.keyvault_store import KeyVaultSecretStore, build_keyvault_store
from shared.secret_store import (
    SecretDisabled,
    SecretNotFound,
    SecretStoreError,
    SecretStoreUnavailable,
)
from shared.settings import Settings, SettingsError
from tests.support.fake_keyvault import (
    KEYVAULT_RESOURCE,
    FakeCredential,
    FakeKeyVault,
    keyvault_store,
    running_fake_keyvault,
)

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 1.0  # per attempt; the deadline of a call is 3x this with max_retries=2
MAX_ATTEMPTS = 3


@pytest.fixture(scope="module")
def vault() -> Iterator[FakeKeyVault]:
    with running_fake_keyvault() as kv:
        yield kv


@pytest.fixture(autouse=True)
def _fresh_counters(vault: FakeKeyVault) -> Iterator[None]:
    vault.clear_faults()
    vault.reset_requests()
    yield
    vault.clear_faults()


@pytest.fixture
def store(vault: FakeKeyVault) -> Iterator[KeyVaultSecretStore]:
    with keyvault_store(vault, timeout_seconds=TIMEOUT, max_retries=2) as s:
        # One call up front so the challenge is cached and request counts below are exact.
        s.list_versions("warm-up")
        vault.reset_requests()
        yield s


@pytest.fixture
def name() -> str:
    return f"client-{uuid.uuid4().hex[:12]}"


def secret_value() -> str:
    return f"value-{uuid.uuid4().hex}"


def assert_leaks_nothing(exc: BaseException, *needles: str) -> None:
    """Neither the message nor a chained SDK exception (holding the request) reaches callers."""
    text = f"{exc!s} {exc!r}"
    for needle in needles:
        assert needle not in text
    assert exc.__cause__ is None
    assert exc.__context__ is None


# -- happy paths -------------------------------------------------------------------------------


def test_set_then_get_by_version_and_latest(store: KeyVaultSecretStore, name: str) -> None:
    first = store.set_secret(name, "first-value", tags={"purpose": "test"})
    second = store.set_secret(name, "second-value")

    assert first.enabled and second.enabled
    assert first.name == name and len(first.version) == 32
    assert first.tags == {"purpose": "test"}
    assert first.created_on.tzinfo is not None and first.created_on.utcoffset() == timedelta(0)
    assert store.get_secret(name, first.version).value == "first-value"
    latest = store.get_secret(name)
    assert latest.value == "second-value"
    assert latest.properties.version == second.version
    assert "second-value" not in repr(latest)


def test_list_is_newest_first_paged_and_carries_no_values(
    store: KeyVaultSecretStore, vault: FakeKeyVault, name: str
) -> None:
    values = [secret_value() for _ in range(5)]
    created = [store.set_secret(name, v).version for v in values]
    vault.reset_requests()

    listed = store.list_versions(name)

    assert [v.version for v in listed] == list(reversed(created))
    # Page size 2: five versions take three pages, reached through nextLink.
    assert vault.count(method="GET", path=f"/secrets/{name}/versions") == 3
    assert any("$skiptoken" in r.query for r in vault.requests())
    for item in listed:
        assert not hasattr(item, "value")
    assert not any(v in repr(listed) for v in values)


def test_disable_then_enable_a_version(store: KeyVaultSecretStore, name: str) -> None:
    value = secret_value()
    version = store.set_secret(name, value).version

    disabled = store.update_version(name, version, enabled=False)

    assert disabled.enabled is False and not disabled.is_usable()
    with pytest.raises(SecretDisabled) as caught:
        store.get_secret(name, version)
    assert_leaks_nothing(caught.value, value)
    # The latest version is the disabled one: reading "latest" is refused the same way.
    with pytest.raises(SecretDisabled):
        store.get_secret(name)
    assert store.list_versions(name)[0].enabled is False

    assert store.update_version(name, version, enabled=True).enabled is True
    assert store.get_secret(name, version).value == value


def test_update_expiry_round_trips_in_utc(store: KeyVaultSecretStore, name: str) -> None:
    version = store.set_secret(name, secret_value()).version
    # Key Vault keeps whole seconds; a non-UTC offset must come back as the same instant in UTC.
    expires = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC).astimezone(
        datetime.now().astimezone().tzinfo
    )

    updated = store.update_version(name, version, expires_on=expires)

    assert updated.expires_on == expires
    assert updated.expires_on is not None and updated.expires_on.utcoffset() == timedelta(0)
    assert store.list_versions(name)[0].expires_on == expires


def test_expired_version_is_still_returned_but_not_usable(
    store: KeyVaultSecretStore, name: str
) -> None:
    past = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    version = store.set_secret(name, "old-value", expires_on=past).version

    got = store.get_secret(name, version)  # Key Vault does not enforce expiry on reads

    assert got.value == "old-value"
    assert got.properties.expires_on == past
    assert not got.properties.is_usable()
    assert got.properties.state() == "expired"


def test_not_before_in_the_future_is_readable_but_pending(
    store: KeyVaultSecretStore, name: str
) -> None:
    future = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    version = store.set_secret(name, "later", not_before=future).version

    props = store.get_secret(name, version).properties

    assert props.not_before == future
    assert props.state() == "pending" and not props.is_usable()


# -- not found -----------------------------------------------------------------------------------


def test_unknown_secret_and_version_are_not_found(store: KeyVaultSecretStore, name: str) -> None:
    with pytest.raises(SecretNotFound):
        store.get_secret(name)
    store.set_secret(name, secret_value())
    with pytest.raises(SecretNotFound):
        store.get_secret(name, uuid.uuid4().hex)
    with pytest.raises(SecretNotFound):
        store.update_version(name, uuid.uuid4().hex, enabled=False)
    with pytest.raises(SecretNotFound):
        store.update_version(name, "", enabled=False)


def test_list_of_unknown_secret_is_empty(store: KeyVaultSecretStore, name: str) -> None:
    assert store.list_versions(name) == []


def test_list_of_unknown_secret_is_empty_when_the_service_answers_404() -> None:
    with (
        running_fake_keyvault(unknown_versions_status=404) as kv,
        keyvault_store(kv, timeout_seconds=TIMEOUT) as s,
    ):
        assert s.list_versions("never-set") == []
        assert kv.count(method="GET", path="/secrets/never-set/versions", authorized=True) == 1


# -- authentication ----------------------------------------------------------------------------


def test_sdk_performs_the_challenge_and_sends_the_bearer_token() -> None:
    value = secret_value()
    with running_fake_keyvault() as kv:
        credential = kv.credential()
        with keyvault_store(kv, credential=credential, timeout_seconds=TIMEOUT) as s:
            s.set_secret("challenge-test", value)

        first, second = kv.requests()[:2]
        # The SDK first sends the PUT without a token and without the secret in the body...
        assert first.method == "PUT" and not first.authorized and first.token is None
        assert first.status == 401 and first.body_length == 0
        # ...then asks for a token for the resource and tenant the challenge named.
        assert len(credential.calls) == 1
        call = credential.calls[0]
        assert call.scopes == (f"{KEYVAULT_RESOURCE}/.default",)
        assert call.tenant_id == kv.tenant_id
        assert call.via == "get_token_info"
        # ...and resends the request with that token.
        assert second.method == "PUT" and second.authorized and second.status == 200
        assert second.token == credential.issued[0]
        assert second.body_length > 0
        assert kv.bearer_tokens == credential.issued
        assert kv.stored_versions("challenge-test")[0]["value"] == value


def test_token_rejected_after_the_challenge_fails_closed_and_alerts(
    vault: FakeKeyVault, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    stranger = FakeCredential()  # its tokens are not accepted by the vault
    with keyvault_store(vault, credential=stranger, timeout_seconds=TIMEOUT) as s:
        started = time.monotonic()
        with caplog.at_level(logging.WARNING), pytest.raises(SecretStoreUnavailable) as caught:
            s.get_secret(name)
        elapsed = time.monotonic() - started

    assert "401" in str(caught.value)
    assert elapsed < TIMEOUT * MAX_ATTEMPTS
    assert vault.count(authorized=True) == 0
    assert vault.count() == 2  # the challenge, then one rejected token: no retry storm
    assert any("ALERT" in r.getMessage() for r in caplog.records)
    for token in stranger.issued:
        assert token not in caplog.text
        assert_leaks_nothing(caught.value, token)


def test_credential_without_identity_fails_closed_and_alerts(
    vault: FakeKeyVault, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        keyvault_store(vault, credential=FakeCredential(fail=True)) as s,
        caplog.at_level(logging.WARNING),
        pytest.raises(SecretStoreUnavailable),
    ):
        s.get_secret(name)
    assert any("ALERT" in r.getMessage() for r in caplog.records)


def test_challenge_for_another_resource_fails_closed(vault: FakeKeyVault, name: str) -> None:
    # Without verify_challenge_resource=False the SDK refuses 127.0.0.1 as a vault.azure.net host
    # (a ValueError from inside the pipeline); the store must still fail closed.
    with (
        KeyVaultSecretStore(
            vault.vault_url,
            vault.credential(),
            timeout_seconds=TIMEOUT,
            connection_verify=vault.ca_path,
        ) as s,
        pytest.raises(SecretStoreUnavailable),
    ):
        s.get_secret(name)
    assert vault.count(authorized=True) == 0


def test_rbac_forbidden_fails_closed_without_retry_and_alerts(
    store: KeyVaultSecretStore,
    vault: FakeKeyVault,
    name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store.set_secret(name, secret_value())
    vault.reset_requests()
    vault.inject_status(403)  # Forbidden / ForbiddenByRbac

    with caplog.at_level(logging.WARNING), pytest.raises(SecretStoreUnavailable) as caught:
        store.get_secret(name)

    assert not isinstance(caught.value, SecretDisabled)
    assert "ForbiddenByRbac" in str(caught.value)
    assert vault.count() == 1
    alerts = [r for r in caplog.records if "ALERT" in r.getMessage()]
    assert len(alerts) == 1 and alerts[0].levelno == logging.WARNING
    for token in vault.bearer_tokens:
        assert token not in caplog.text


# -- throttling, outages, timeouts ---------------------------------------------------------------


def test_429_with_retry_after_is_honoured_then_succeeds(
    store: KeyVaultSecretStore, vault: FakeKeyVault, name: str
) -> None:
    store.set_secret(name, "after-throttle")
    vault.reset_requests()
    vault.inject_status(429, retry_after=1)

    started = time.monotonic()
    assert store.get_secret(name).value == "after-throttle"
    elapsed = time.monotonic() - started

    throttled, retried = vault.requests()
    assert (throttled.status, retried.status) == (429, 200)
    assert throttled.answered_at is not None
    assert 0.9 <= retried.received_at - throttled.answered_at < 1.5  # waited Retry-After
    assert elapsed < 2.0


def test_persistent_429_fails_closed_after_bounded_attempts(
    store: KeyVaultSecretStore, vault: FakeKeyVault, name: str
) -> None:
    vault.inject_status(429, retry_after=1, times=10)

    started = time.monotonic()
    with pytest.raises(SecretStoreUnavailable) as caught:
        store.get_secret(name)
    elapsed = time.monotonic() - started

    assert vault.count() == MAX_ATTEMPTS
    assert caught.value.retry_after == 1
    assert 1.9 <= elapsed <= TIMEOUT * MAX_ATTEMPTS + 0.5
    assert_leaks_nothing(caught.value)


def test_retry_after_beyond_the_deadline_fails_fast(
    store: KeyVaultSecretStore, vault: FakeKeyVault, name: str
) -> None:
    vault.inject_status(429, retry_after=30, times=10)

    started = time.monotonic()
    with pytest.raises(SecretStoreUnavailable) as caught:
        store.get_secret(name)

    assert time.monotonic() - started < TIMEOUT
    assert vault.count() == 1
    assert caught.value.retry_after == 30  # passed on for the caller's own Retry-After


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_retried_then_fails_closed(
    store: KeyVaultSecretStore, vault: FakeKeyVault, name: str, status: int
) -> None:
    vault.inject_status(status, times=10)

    started = time.monotonic()
    with pytest.raises(SecretStoreUnavailable) as caught:
        store.list_versions(name)

    assert time.monotonic() - started <= TIMEOUT * MAX_ATTEMPTS
    assert vault.count() == MAX_ATTEMPTS
    assert str(status) in str(caught.value)


def test_transient_5xx_is_retried_for_every_operation(
    store: KeyVaultSecretStore, vault: FakeKeyVault, name: str
) -> None:
    vault.inject_status(503, method="PUT")
    version = store.set_secret(name, secret_value()).version
    vault.inject_status(500, method="GET")
    store.get_secret(name, version)
    vault.inject_status(503, method="PATCH")  # update_version is idempotent: retried as well
    assert store.update_version(name, version, enabled=False).enabled is False

    counts = vault.counts_by_path()
    assert counts[f"PUT /secrets/{name}"] == 2
    assert counts[f"GET /secrets/{name}/{version}"] == 2
    assert counts[f"PATCH /secrets/{name}/{version}"] == 2
    assert len(vault.stored_versions(name)) == 1


def test_slow_response_fails_closed_within_the_deadline(vault: FakeKeyVault, name: str) -> None:
    timeout = 0.3
    with keyvault_store(vault, timeout_seconds=timeout, max_retries=2) as s:
        s.list_versions("warm-up")
        vault.reset_requests()
        vault.inject_delay(5, times=10)

        started = time.monotonic()
        with pytest.raises(SecretStoreUnavailable) as caught:
            s.get_secret(name)
        elapsed = time.monotonic() - started

    assert s.deadline_seconds == pytest.approx(timeout * MAX_ATTEMPTS)
    assert timeout <= elapsed <= s.deadline_seconds + 0.3
    assert 1 <= vault.count() <= MAX_ATTEMPTS
    assert "Timeout" in str(caught.value)


def test_one_slow_response_is_retried(
    store: KeyVaultSecretStore, vault: FakeKeyVault, name: str
) -> None:
    store.set_secret(name, "patient")
    vault.inject_delay(3)  # longer than TIMEOUT: the first attempt times out

    assert store.get_secret(name).value == "patient"
    assert vault.count(method="GET") == 2


def test_dropped_connection_fails_closed(
    store: KeyVaultSecretStore, vault: FakeKeyVault, name: str
) -> None:
    vault.inject_drop(times=10)

    started = time.monotonic()
    with pytest.raises(SecretStoreUnavailable):
        store.get_secret(name)

    assert time.monotonic() - started <= TIMEOUT * MAX_ATTEMPTS
    assert vault.count() == MAX_ATTEMPTS
    assert all(r.status is None for r in vault.requests())


@pytest.mark.parametrize("fault", ["429", "503", "drop"])
def test_max_retries_zero_makes_exactly_one_attempt(
    vault: FakeKeyVault, name: str, fault: str
) -> None:
    with keyvault_store(vault, timeout_seconds=TIMEOUT, max_retries=0) as s:
        s.list_versions("warm-up")
        vault.reset_requests()
        if fault == "drop":
            vault.inject_drop(times=5)
        else:
            vault.inject_status(int(fault), retry_after=1 if fault == "429" else None, times=5)

        with pytest.raises(SecretStoreUnavailable):
            s.get_secret(name)

    assert vault.count() == 1


def test_one_dropped_connection_is_retried(
    store: KeyVaultSecretStore, vault: FakeKeyVault, name: str
) -> None:
    store.set_secret(name, "survivor")
    vault.inject_drop()

    assert store.get_secret(name).value == "survivor"


def test_failed_set_leaks_neither_value_nor_token(
    store: KeyVaultSecretStore,
    vault: FakeKeyVault,
    name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    value = secret_value()
    vault.inject_status(500, times=10)

    with caplog.at_level(logging.DEBUG), pytest.raises(SecretStoreUnavailable) as caught:
        store.set_secret(name, value)

    tokens = vault.bearer_tokens
    assert tokens
    assert_leaks_nothing(caught.value, value, *tokens)
    assert value not in caplog.text
    assert not any(t in caplog.text for t in tokens)


def test_sdk_logging_never_shows_values_or_tokens(
    store: KeyVaultSecretStore,
    vault: FakeKeyVault,
    name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    value = secret_value()
    with caplog.at_level(logging.DEBUG):
        version = store.set_secret(name, value).version
        store.get_secret(name, version)
        store.list_versions(name)

    assert caplog.records  # azure-core's HTTP logging did run
    assert value not in caplog.text
    assert not any(t in caplog.text for t in vault.bearer_tokens)


def test_every_failure_is_a_secret_store_error(
    store: KeyVaultSecretStore, vault: FakeKeyVault, name: str
) -> None:
    for status in (400, 409, 418):
        vault.inject_status(status)
        with pytest.raises(SecretStoreError):
            store.get_secret(name)


# -- construction --------------------------------------------------------------------------------


def test_importing_the_module_does_not_import_azure() -> None:
    code = (
        "import sys, shared.keyvault_store; "
        "print(sorted(m for m in sys.modules if m == 'azure' or m.startswith('azure.')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_build_from_settings_uses_default_azure_credential(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import azure.identity

    made: list[FakeCredential] = []

    def fake_default_credential(**kwargs: object) -> FakeCredential:
        made.append(FakeCredential())
        return made[-1]

    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", fake_default_credential)
    settings = Settings(keyvault_url="https://example.vault.azure.net/", keyvault_timeout_seconds=4)

    with build_keyvault_store(settings) as s:
        assert len(made) == 1
        assert s.timeout_seconds == 4
        assert s.deadline_seconds == 12


def test_build_from_settings_uses_a_given_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    import azure.identity

    def refuse(**kwargs: object) -> None:
        raise AssertionError("DefaultAzureCredential built although a credential was given")

    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", refuse)
    settings = Settings(keyvault_url="https://example.vault.azure.net", keyvault_timeout_seconds=2)

    with build_keyvault_store(settings, FakeCredential()) as s:
        assert s.timeout_seconds == 2


@pytest.mark.parametrize("url", ["", "http://example.vault.azure.net"])
def test_build_from_settings_rejects_a_missing_or_plain_http_url(url: str) -> None:
    with pytest.raises(SettingsError):
        build_keyvault_store(Settings(keyvault_url=url))
