"""ProviderAuth: our credential to each tenant's provider, per auth kind, against the fake FHIR
server's OAuth token endpoint and a local secret store."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError

from shared.ids import provider_secret_name
from shared.net.addresses import AddressPolicy
from shared.proxy.provider_auth import ProviderAuth, ProviderAuthError, ProviderAuthUnavailable
from shared.secret_store import LocalSecretStore, SecretStoreUnavailable, SecretVersion
from shared.tenants import TenantMapping
from tools.testkit.data import REPO
from tools.testkit.fake_fhir import TOKEN_PATH, FakeFhirServer, closed_port, running_fake_fhir

CLIENT_ID = "ehr-bridge-at-hospital-a"
CLIENT_SECRET = "provider-secret-" + "s" * 24

# The fake servers listen on 127.0.0.1: the development address rules.
LOOPBACK_ALLOWED = AddressPolicy(allow_local=True)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingCredential:
    """A TokenCredential that records the scopes asked for and issues numbered tokens."""

    def __init__(self, clock: FakeClock, lifetime: int = 3600, error: Exception | None = None):
        self.clock = clock
        self.lifetime = lifetime
        self.error = error
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        if self.error is not None:
            raise self.error
        return AccessToken(f"mi-token-{len(self.scopes)}", int(self.clock() + self.lifetime))


class DownStore:
    """A secret store whose every call is a Key Vault outage."""

    def set_secret(self, name: str, value: str, **kwargs: Any) -> SecretVersion:
        raise SecretStoreUnavailable("down")

    def get_secret(self, name: str, version: str | None = None) -> Any:
        raise SecretStoreUnavailable("down")

    def list_versions(self, name: str) -> list[SecretVersion]:
        raise SecretStoreUnavailable("down", retry_after=7)

    def update_version(self, name: str, version: str, **kwargs: Any) -> SecretVersion:
        raise SecretStoreUnavailable("down")


@pytest.fixture(scope="module")
def fhir() -> Iterator[FakeFhirServer]:
    with running_fake_fhir(require_bearer=True) as server:
        yield server


@pytest.fixture(autouse=True)
def clean(fhir: FakeFhirServer) -> None:
    fhir.reset()
    fhir.clear_faults()
    fhir.issue_tokens(CLIENT_ID, CLIENT_SECRET, expires_in=3600)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store() -> LocalSecretStore:
    return LocalSecretStore(None)


@pytest.fixture
def auth(store: LocalSecretStore, clock: FakeClock) -> Iterator[ProviderAuth]:
    provider_auth = ProviderAuth(
        store, clock=clock, timeout=(1.0, 1.0), address_policy=LOOPBACK_ALLOWED
    )
    yield provider_auth
    provider_auth.close()


def tenant(**fields: Any) -> TenantMapping:
    return TenantMapping(
        tenant_id=fields.pop("tenant_id", str(uuid.uuid4())),
        provider_base_url=fields.pop("provider_base_url", "https://fhir.hospital-a.example/r4"),
        provider_fhir_version="r4",
        **fields,
    )


def cc_tenant(fhir: FakeFhirServer, store: LocalSecretStore, **fields: Any) -> TenantMapping:
    mapping = tenant(
        provider_auth_kind="client_credentials",
        provider_base_url=fhir.base_url,
        provider_token_url=fields.pop("provider_token_url", fhir.token_url),
        provider_client_id=CLIENT_ID,
        **fields,
    )
    store.set_secret(provider_secret_name(mapping.tenant_id), CLIENT_SECRET)
    return mapping


def bearer_of(headers: dict[str, str]) -> str:
    scheme, _, token = headers["Authorization"].partition(" ")
    assert scheme == "Bearer"
    return token


# -- none and bearer -------------------------------------------------------------------------


def test_auth_kind_none_sends_no_header(auth: ProviderAuth) -> None:
    assert auth.headers_for(tenant(provider_auth_kind="none")) == {}


def test_bearer_uses_the_provider_secret_as_the_token(
    auth: ProviderAuth, store: LocalSecretStore
) -> None:
    mapping = tenant(provider_auth_kind="bearer")
    store.set_secret(provider_secret_name(mapping.tenant_id), "static-provider-token")
    assert auth.headers_for(mapping) == {"Authorization": "Bearer static-provider-token"}


def test_bearer_uses_the_newest_usable_version(auth: ProviderAuth, store: LocalSecretStore) -> None:
    mapping = tenant(provider_auth_kind="bearer")
    name = provider_secret_name(mapping.tenant_id)
    store.set_secret(name, "older-token")
    newest = store.set_secret(name, "newest-token")
    store.update_version(name, newest.version, enabled=False)
    assert bearer_of(auth.headers_for(mapping)) == "older-token"


def test_bearer_ignores_an_expired_version_key_vault_still_returns(
    auth: ProviderAuth, store: LocalSecretStore
) -> None:
    mapping = tenant(provider_auth_kind="bearer")
    name = provider_secret_name(mapping.tenant_id)
    store.set_secret(name, "valid-token")
    store.set_secret(name, "expired-token", expires_on=datetime(2020, 1, 1).astimezone())
    assert bearer_of(auth.headers_for(mapping)) == "valid-token"


def test_bearer_token_is_cached_for_the_secret_ttl(
    auth: ProviderAuth, store: LocalSecretStore, clock: FakeClock
) -> None:
    mapping = tenant(provider_auth_kind="bearer")
    name = provider_secret_name(mapping.tenant_id)
    store.set_secret(name, "first-token")
    assert bearer_of(auth.headers_for(mapping)) == "first-token"
    store.set_secret(name, "rotated-token")
    assert bearer_of(auth.headers_for(mapping)) == "first-token"
    clock.advance(61)
    assert bearer_of(auth.headers_for(mapping)) == "rotated-token"


def test_bearer_force_refresh_rereads_the_secret(
    auth: ProviderAuth, store: LocalSecretStore
) -> None:
    mapping = tenant(provider_auth_kind="bearer")
    name = provider_secret_name(mapping.tenant_id)
    store.set_secret(name, "first-token")
    auth.headers_for(mapping)
    store.set_secret(name, "rotated-token")
    assert bearer_of(auth.headers_for(mapping, force_refresh=True)) == "rotated-token"


def test_bearer_without_a_usable_secret_is_a_provider_auth_error(
    auth: ProviderAuth, store: LocalSecretStore
) -> None:
    mapping = tenant(provider_auth_kind="bearer")
    name = provider_secret_name(mapping.tenant_id)
    version = store.set_secret(name, "disabled-token")
    store.update_version(name, version.version, enabled=False)
    with pytest.raises(ProviderAuthError) as refused:
        auth.headers_for(mapping)
    assert "disabled-token" not in str(refused.value)


def test_bearer_token_with_a_line_break_is_refused(
    auth: ProviderAuth, store: LocalSecretStore
) -> None:
    mapping = tenant(provider_auth_kind="bearer")
    store.set_secret(provider_secret_name(mapping.tenant_id), "abc\r\nX-Injected: 1")
    with pytest.raises(ProviderAuthError) as refused:
        auth.headers_for(mapping)
    assert "Injected" not in str(refused.value)


def test_an_unknown_auth_kind_is_a_provider_auth_error(auth: ProviderAuth) -> None:
    with pytest.raises(ProviderAuthError):
        auth.headers_for(tenant(provider_auth_kind="kerberos"))


# -- client_credentials ----------------------------------------------------------------------


def test_client_credentials_posts_the_form_to_the_token_url(
    auth: ProviderAuth, store: LocalSecretStore, fhir: FakeFhirServer
) -> None:
    mapping = cc_tenant(fhir, store, provider_scope="system/*.read")
    token = bearer_of(auth.headers_for(mapping))
    assert token in fhir.issued_tokens
    sent = fhir.last()
    assert (sent.method, sent.path) == ("POST", TOKEN_PATH)
    assert sent.header("Content-Type") == "application/x-www-form-urlencoded"
    assert dict(parse_qsl(sent.body.decode())) == {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scope": "system/*.read",
    }


def test_client_credentials_omits_scope_when_the_mapping_has_none(
    auth: ProviderAuth, store: LocalSecretStore, fhir: FakeFhirServer
) -> None:
    auth.headers_for(cc_tenant(fhir, store))
    assert b"scope" not in fhir.last().body


def test_client_credentials_token_is_cached(
    auth: ProviderAuth, store: LocalSecretStore, fhir: FakeFhirServer
) -> None:
    mapping = cc_tenant(fhir, store)
    first = auth.headers_for(mapping)
    second = auth.headers_for(mapping)
    assert first == second
    assert fhir.token_requests() == 1


def test_concurrent_first_calls_make_one_token_request(
    auth: ProviderAuth, store: LocalSecretStore, fhir: FakeFhirServer
) -> None:
    mapping = cc_tenant(fhir, store)
    fhir.slow(0.3, path=TOKEN_PATH)
    results: list[dict[str, str]] = []
    threads = [
        threading.Thread(target=lambda: results.append(auth.headers_for(mapping))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8 and len({r["Authorization"] for r in results}) == 1
    assert fhir.token_requests() == 1


def test_client_credentials_token_is_refreshed_a_margin_before_expiry(
    auth: ProviderAuth, store: LocalSecretStore, fhir: FakeFhirServer, clock: FakeClock
) -> None:
    mapping = cc_tenant(fhir, store)
    first = auth.headers_for(mapping)
    clock.advance(3600 - 60 - 1)
    assert auth.headers_for(mapping) == first
    clock.advance(2)
    assert auth.headers_for(mapping) != first
    assert fhir.token_requests() == 2


def test_a_short_lived_token_is_kept_for_half_its_lifetime(
    auth: ProviderAuth, store: LocalSecretStore, fhir: FakeFhirServer, clock: FakeClock
) -> None:
    fhir.issue_tokens(CLIENT_ID, CLIENT_SECRET, expires_in=60)
    mapping = cc_tenant(fhir, store)
    first = auth.headers_for(mapping)
    clock.advance(29)
    assert auth.headers_for(mapping) == first
    clock.advance(2)
    assert auth.headers_for(mapping) != first


def test_expires_in_defaults_to_300_seconds(
    auth: ProviderAuth, store: LocalSecretStore, fhir: FakeFhirServer, clock: FakeClock
) -> None:
    mapping = cc_tenant(fhir, store)
    fhir.fail(
        200,
        {"access_token": "no-expiry-token", "token_type": "Bearer"},
        "application/json",
        path=TOKEN_PATH,
    )
    assert bearer_of(auth.headers_for(mapping)) == "no-expiry-token"
    clock.advance(300 - 60 - 1)
    assert bearer_of(auth.headers_for(mapping)) == "no-expiry-token"
    clock.advance(2)
    assert bearer_of(auth.headers_for(mapping)) != "no-expiry-token"


def test_force_refresh_fetches_a_new_token(
    auth: ProviderAuth, store: LocalSecretStore, fhir: FakeFhirServer
) -> None:
    mapping = cc_tenant(fhir, store)
    first = auth.headers_for(mapping)
    refreshed = auth.headers_for(mapping, force_refresh=True)
    assert refreshed != first
    assert fhir.token_requests() == 2


def test_concurrent_refreshes_of_the_same_rejected_token_fetch_once(
    auth: ProviderAuth, store: LocalSecretStore, fhir: FakeFhirServer
) -> None:
    mapping = cc_tenant(fhir, store)
    rejected = auth.headers_for(mapping)
    first = auth.headers_for(mapping, force_refresh=True, rejected=rejected)
    second = auth.headers_for(mapping, force_refresh=True, rejected=rejected)
    assert first == second != rejected
    assert fhir.token_requests() == 2


def test_a_refused_token_request_is_a_provider_auth_error_without_the_secret(
    auth: ProviderAuth,
    store: LocalSecretStore,
    fhir: FakeFhirServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    mapping = cc_tenant(fhir, store)
    fhir.fail(
        400,
        {"error": "invalid_client", "error_description": f"bad secret {CLIENT_SECRET}"},
        "application/json",
        path=TOKEN_PATH,
    )
    with caplog.at_level(logging.DEBUG), pytest.raises(ProviderAuthError) as refused:
        auth.headers_for(mapping)
    assert not isinstance(refused.value, ProviderAuthUnavailable)
    assert "invalid_client" in str(refused.value)
    assert CLIENT_SECRET not in str(refused.value)
    assert CLIENT_SECRET not in caplog.text


def test_a_wrong_secret_is_a_provider_auth_error(
    auth: ProviderAuth, store: LocalSecretStore, fhir: FakeFhirServer
) -> None:
    mapping = cc_tenant(fhir, store)
    store.set_secret(provider_secret_name(mapping.tenant_id), "not-the-secret")
    with pytest.raises(ProviderAuthError) as refused:
        auth.headers_for(mapping)
    assert "not-the-secret" not in str(refused.value)


def test_a_failing_token_endpoint_is_provider_auth_unavailable(
    auth: ProviderAuth, store: LocalSecretStore, fhir: FakeFhirServer
) -> None:
    mapping = cc_tenant(fhir, store)
    fhir.fail(503, "<html>maintenance</html>", "text/html", path=TOKEN_PATH)
    with pytest.raises(ProviderAuthUnavailable):
        auth.headers_for(mapping)


def test_a_slow_token_endpoint_is_provider_auth_unavailable(
    auth: ProviderAuth, store: LocalSecretStore, fhir: FakeFhirServer
) -> None:
    mapping = cc_tenant(fhir, store)
    fhir.slow(3, path=TOKEN_PATH)
    with pytest.raises(ProviderAuthUnavailable):
        auth.headers_for(mapping)


def test_an_unreachable_token_endpoint_is_provider_auth_unavailable(
    auth: ProviderAuth, store: LocalSecretStore, fhir: FakeFhirServer
) -> None:
    mapping = cc_tenant(
        fhir, store, provider_token_url=f"http://127.0.0.1:{closed_port()}/oauth/token"
    )
    with pytest.raises(ProviderAuthUnavailable):
        auth.headers_for(mapping)


def test_a_redirecting_token_endpoint_is_not_followed(
    auth: ProviderAuth, store: LocalSecretStore, fhir: FakeFhirServer
) -> None:
    mapping = cc_tenant(fhir, store)
    fhir.redirect(f"{fhir.origin}/elsewhere/token", status=307, path=TOKEN_PATH)
    with pytest.raises(ProviderAuthError):
        auth.headers_for(mapping)
    assert fhir.count(path="/elsewhere") == 0


def test_a_token_response_without_access_token_is_a_provider_auth_error(
    auth: ProviderAuth, store: LocalSecretStore, fhir: FakeFhirServer
) -> None:
    mapping = cc_tenant(fhir, store)
    fhir.fail(200, {"token_type": "bearer"}, "application/json", path=TOKEN_PATH)
    with pytest.raises(ProviderAuthError):
        auth.headers_for(mapping)


def test_key_vault_unavailable_propagates(fhir: FakeFhirServer, clock: FakeClock) -> None:
    auth = ProviderAuth(DownStore(), clock=clock)
    mapping = tenant(
        provider_auth_kind="client_credentials",
        provider_token_url=fhir.token_url,
        provider_client_id=CLIENT_ID,
    )
    with pytest.raises(SecretStoreUnavailable) as down:
        auth.headers_for(mapping)
    assert down.value.retry_after == 7
    assert fhir.token_requests() == 0


def test_a_missing_provider_secret_is_a_provider_auth_error(
    auth: ProviderAuth, fhir: FakeFhirServer
) -> None:
    mapping = tenant(
        provider_auth_kind="client_credentials",
        provider_token_url=fhir.token_url,
        provider_client_id=CLIENT_ID,
    )
    with pytest.raises(ProviderAuthError):
        auth.headers_for(mapping)
    assert fhir.token_requests() == 0


def test_tokens_are_cached_per_tenant(
    auth: ProviderAuth, store: LocalSecretStore, fhir: FakeFhirServer
) -> None:
    first = auth.headers_for(cc_tenant(fhir, store))
    second = auth.headers_for(cc_tenant(fhir, store))
    assert first != second
    assert fhir.token_requests() == 2


# -- managed identity ------------------------------------------------------------------------


def test_managed_identity_asks_for_the_fhir_service_origin_default_scope(
    store: LocalSecretStore, clock: FakeClock
) -> None:
    credential = RecordingCredential(clock)
    auth = ProviderAuth(store, credential_factory=lambda: credential, clock=clock)
    mapping = tenant(
        provider_auth_kind="managed_identity",
        provider_base_url="https://contoso-fhirsvc.fhir.azurehealthcareapis.com",
    )
    assert auth.headers_for(mapping) == {"Authorization": "Bearer mi-token-1"}
    assert credential.scopes == [("https://contoso-fhirsvc.fhir.azurehealthcareapis.com/.default",)]


def test_managed_identity_scope_drops_the_base_path(
    store: LocalSecretStore, clock: FakeClock
) -> None:
    credential = RecordingCredential(clock)
    auth = ProviderAuth(store, credential_factory=lambda: credential, clock=clock)
    auth.headers_for(
        tenant(provider_auth_kind="managed_identity", provider_base_url="https://fhir.example/r4")
    )
    assert credential.scopes == [("https://fhir.example/.default",)]


def test_managed_identity_uses_the_configured_scope_when_set(
    store: LocalSecretStore, clock: FakeClock
) -> None:
    credential = RecordingCredential(clock)
    auth = ProviderAuth(
        store,
        credential_factory=lambda: credential,
        clock=clock,
        managed_identity_scopes=("api://fhir-proxy/.default",),
    )
    auth.headers_for(
        tenant(provider_auth_kind="managed_identity", provider_scope="api://fhir-proxy/.default")
    )
    assert credential.scopes == [("api://fhir-proxy/.default",)]


def test_row_105_a_stored_mapping_asking_for_key_vault_gets_no_token(
    store: LocalSecretStore, clock: FakeClock
) -> None:
    # A row written before the rule (or edited in the table) is refused at use, too.
    credential = RecordingCredential(clock)
    auth = ProviderAuth(store, credential_factory=lambda: credential, clock=clock)
    mapping = tenant(
        provider_auth_kind="managed_identity", provider_scope="https://vault.azure.net/.default"
    )
    with pytest.raises(ProviderAuthError):
        auth.headers_for(mapping)
    assert credential.scopes == []


def test_managed_identity_token_is_cached_until_a_margin_before_expiry(
    store: LocalSecretStore, clock: FakeClock
) -> None:
    credential = RecordingCredential(clock, lifetime=3600)
    auth = ProviderAuth(store, credential_factory=lambda: credential, clock=clock)
    mapping = tenant(provider_auth_kind="managed_identity")
    auth.headers_for(mapping)
    clock.advance(3600 - 61)
    assert bearer_of(auth.headers_for(mapping)) == "mi-token-1"
    clock.advance(2)
    assert bearer_of(auth.headers_for(mapping)) == "mi-token-2"


def test_managed_identity_refused_is_a_provider_auth_error(
    store: LocalSecretStore, clock: FakeClock
) -> None:
    credential = RecordingCredential(clock, error=ClientAuthenticationError("no identity"))
    auth = ProviderAuth(store, credential_factory=lambda: credential, clock=clock)
    with pytest.raises(ProviderAuthError) as refused:
        auth.headers_for(tenant(provider_auth_kind="managed_identity"))
    assert not isinstance(refused.value, ProviderAuthUnavailable)


def test_managed_identity_endpoint_down_is_provider_auth_unavailable(
    store: LocalSecretStore, clock: FakeClock
) -> None:
    credential = RecordingCredential(clock, error=ServiceRequestError("IMDS unreachable"))
    auth = ProviderAuth(store, credential_factory=lambda: credential, clock=clock)
    with pytest.raises(ProviderAuthUnavailable):
        auth.headers_for(tenant(provider_auth_kind="managed_identity"))


def test_managed_identity_credential_is_created_once(
    store: LocalSecretStore, clock: FakeClock
) -> None:
    made: list[RecordingCredential] = []

    def factory() -> RecordingCredential:
        made.append(RecordingCredential(clock))
        return made[-1]

    auth = ProviderAuth(store, credential_factory=factory, clock=clock)
    for _ in range(3):
        auth.headers_for(tenant(provider_auth_kind="managed_identity"))
    assert len(made) == 1


# -- cold start ------------------------------------------------------------------------------


def test_importing_the_transport_modules_loads_neither_requests_nor_azure_identity() -> None:
    code = (
        "import sys, shared.proxy.transport, shared.proxy.provider_auth, shared.circuit\n"
        "print(sorted(m for m in ('requests', 'urllib3', 'azure.identity', 'azure.core')"
        " if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
