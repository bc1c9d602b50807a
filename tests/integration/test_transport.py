"""ProviderTransport against a real local FHIR server: retries, timeouts, redirects, size cap,
circuit breaker, 401 refresh, connection pooling and TLS verification."""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from shared.circuit import CircuitBreaker
from shared.fhir.errors import FhirError, Unavailable, UpstreamError, UpstreamTimeout
from shared.http import Headers
from shared.ids import provider_secret_name
from shared.net.addresses import AddressPolicy
from shared.proxy.provider_auth import ProviderAuth, ProviderAuthError
from shared.proxy.transport import ProviderTransport, provider_paused
from shared.secret_store import LocalSecretStore
from shared.settings import Settings
from shared.tenants import TenantMapping
from tools.testkit.fake_fhir import (
    HTML_STACK_TRACE,
    FakeFhirServer,
    closed_port,
    running_fake_fhir,
)

STATIC_TOKEN = "static-provider-token-" + "t" * 16
CLIENT_ID = "ehr-bridge"
CLIENT_SECRET = "provider-client-secret-" + "c" * 16
SETTINGS = dataclasses.replace(
    Settings(),
    upstream_connect_timeout_seconds=1,
    upstream_read_timeout_seconds=1,
    circuit_failure_threshold=3,
    circuit_open_seconds=30,
    allow_insecure_provider_urls=True,  # the fake providers listen on 127.0.0.1
)
JSON = Headers({"Accept": "application/fhir+json"})

# The fake servers listen on 127.0.0.1: the development address rules.
LOOPBACK_ALLOWED = AddressPolicy(allow_local=True)


class FakeClock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Sleeps:
    """The injected ``sleep``: records the jitter instead of waiting it."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture(scope="module")
def fhir() -> Iterator[FakeFhirServer]:
    with running_fake_fhir(require_bearer=STATIC_TOKEN) as server:
        server.issue_tokens(CLIENT_ID, CLIENT_SECRET, expires_in=3600)
        yield server


@pytest.fixture(autouse=True)
def clean(fhir: FakeFhirServer) -> None:
    fhir.clear_faults()
    fhir.extra_headers(None)
    fhir.reset()


@pytest.fixture
def store() -> LocalSecretStore:
    return LocalSecretStore(None)


@pytest.fixture
def auth(store: LocalSecretStore) -> ProviderAuth:
    return ProviderAuth(store, timeout=(1.0, 1.0), address_policy=LOOPBACK_ALLOWED)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def transport(auth: ProviderAuth, sleeps: Sleeps) -> Iterator[ProviderTransport]:
    made = ProviderTransport(SETTINGS, auth, sleep=sleeps, max_response_bytes=100_000)
    yield made
    made.close()


def bearer_tenant(store: LocalSecretStore, base_url: str, **fields: Any) -> TenantMapping:
    mapping = TenantMapping(
        tenant_id=str(uuid.uuid4()),
        provider_base_url=base_url,
        provider_fhir_version="r4",
        provider_auth_kind="bearer",
        **fields,
    )
    store.set_secret(provider_secret_name(mapping.tenant_id), STATIC_TOKEN)
    return mapping


@pytest.fixture
def tenant(store: LocalSecretStore, fhir: FakeFhirServer) -> TenantMapping:
    return bearer_tenant(store, fhir.base_url)


@pytest.fixture
def cc_tenant(store: LocalSecretStore, fhir: FakeFhirServer) -> TenantMapping:
    mapping = TenantMapping(
        tenant_id=str(uuid.uuid4()),
        provider_base_url=fhir.base_url,
        provider_fhir_version="r4",
        provider_auth_kind="client_credentials",
        provider_token_url=fhir.token_url,
        provider_client_id=CLIENT_ID,
    )
    store.set_secret(provider_secret_name(mapping.tenant_id), CLIENT_SECRET)
    return mapping


def get(transport: ProviderTransport, tenant: TenantMapping, path: str, **kwargs: Any) -> Any:
    return transport.send(
        tenant, "GET", f"{tenant.provider_base_url}/{path}", JSON, b"", idempotent=True, **kwargs
    )


def post_search(transport: ProviderTransport, tenant: TenantMapping) -> Any:
    headers = Headers({"Content-Type": "application/x-www-form-urlencoded"})
    return transport.send(
        tenant,
        "POST",
        f"{tenant.provider_base_url}/Observation/_search",
        headers,
        b"patient=example",
        idempotent=False,
    )


# -- the plain path --------------------------------------------------------------------------


def test_a_get_returns_the_providers_status_headers_and_body(
    transport: ProviderTransport, tenant: TenantMapping, fhir: FakeFhirServer
) -> None:
    answer = get(transport, tenant, "Patient/example")
    assert answer.status == 200
    assert answer.headers.get("Content-Type") == "application/fhir+json; charset=utf-8"
    assert answer.headers.get("Content-Location") == (f"{fhir.base_url}/Patient/example/_history/1")
    assert json.loads(answer.body)["id"] == "example"
    assert answer.elapsed_ms > 0


def test_the_provider_credential_replaces_the_callers_authorization_and_cookie(
    transport: ProviderTransport, tenant: TenantMapping, fhir: FakeFhirServer
) -> None:
    headers = Headers(
        {"Accept": "application/fhir+json", "Authorization": "Bearer caller", "Cookie": "a=b"}
    )
    transport.send(tenant, "GET", f"{fhir.base_url}/Patient/example", headers, b"", idempotent=True)
    sent = fhir.last()
    assert sent.bearer == STATIC_TOKEN
    assert [v for k, v in sent.headers if k.lower() == "authorization"] == [
        f"Bearer {STATIC_TOKEN}"
    ]
    assert sent.header("Cookie") is None


def test_a_post_sends_the_body(
    transport: ProviderTransport, tenant: TenantMapping, fhir: FakeFhirServer
) -> None:
    answer = post_search(transport, tenant)
    assert answer.status == 200
    assert fhir.last().body == b"patient=example"
    assert json.loads(answer.body)["total"] >= 1


def test_a_provider_error_answer_is_returned_as_it_is(
    transport: ProviderTransport, tenant: TenantMapping, fhir: FakeFhirServer
) -> None:
    fhir.fail(500, HTML_STACK_TRACE, "text/html")
    answer = get(transport, tenant, "Patient/example")
    assert answer.status == 500
    assert answer.headers.get("Content-Type") == "text/html"


def test_repeated_response_headers_are_all_kept(
    transport: ProviderTransport, tenant: TenantMapping, fhir: FakeFhirServer
) -> None:
    fhir.extra_headers([("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("Server", "Tomcat/9")])
    answer = get(transport, tenant, "Patient/example")
    assert answer.headers.get_all("Set-Cookie") == ["a=1", "b=2"]
    assert answer.headers.get("Server") == "Tomcat/9"


def test_provider_cookies_are_not_sent_back(
    transport: ProviderTransport, tenant: TenantMapping, fhir: FakeFhirServer
) -> None:
    fhir.extra_headers({"Set-Cookie": "session=provider-state; Path=/"})
    get(transport, tenant, "Patient/example")
    get(transport, tenant, "Patient/example")
    assert fhir.last().header("Cookie") is None


def test_a_gzip_answer_is_decoded_and_its_coding_headers_dropped(
    transport: ProviderTransport, tenant: TenantMapping, fhir: FakeFhirServer
) -> None:
    fhir.gzip_responses = True
    try:
        answer = get(transport, tenant, "Patient/example")
    finally:
        fhir.gzip_responses = False
    assert json.loads(answer.body)["id"] == "example"
    assert answer.headers.get("Content-Encoding") is None
    assert answer.headers.get("Content-Length") is None


def test_a_url_outside_the_provider_base_is_refused_before_any_call(
    transport: ProviderTransport, tenant: TenantMapping, fhir: FakeFhirServer
) -> None:
    for url in (
        f"{fhir.origin}/other/Patient",
        f"{fhir.base_url}x/Patient",
        "http://evil.example/fhir/Patient",
        f"http://user@{fhir.base_url.split('://')[1]}/Patient",
        f"{fhir.base_url}/../admin",
        f"{fhir.base_url}/Patient/%2e%2E/%2E%2e/admin",
        f"{fhir.base_url}/Patient\\..\\x",
        f"{fhir.base_url}/Patient#fragment",
    ):
        with pytest.raises(FhirError) as refused:
            transport.send(tenant, "GET", url, JSON, b"", idempotent=True)
        assert refused.value.status == 500
    assert fhir.count() == 0


# -- connection failures and retries ---------------------------------------------------------


def test_a_refused_connection_is_retried_once_after_jitter_then_502(
    transport: ProviderTransport,
    store: LocalSecretStore,
    sleeps: Sleeps,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from requests.adapters import HTTPAdapter

    attempts: list[str] = []
    real_send = HTTPAdapter.send

    def counting_send(self: HTTPAdapter, request: Any, *args: Any, **kwargs: Any) -> Any:
        attempts.append(request.url)
        return real_send(self, request, *args, **kwargs)

    monkeypatch.setattr(HTTPAdapter, "send", counting_send)
    dead = bearer_tenant(store, f"http://127.0.0.1:{closed_port()}/fhir")
    with pytest.raises(UpstreamError) as failed:
        get(transport, dead, "Patient/example")
    assert failed.value.status == 502
    assert "127.0.0.1" not in failed.value.diagnostics
    assert len(attempts) == 2
    assert len(sleeps.calls) == 1 and 0.05 <= sleeps.calls[0] <= 0.25


def test_a_dropped_get_is_retried_once_and_succeeds(
    transport: ProviderTransport, tenant: TenantMapping, fhir: FakeFhirServer, sleeps: Sleeps
) -> None:
    fhir.drop()
    answer = get(transport, tenant, "Patient/example")
    assert answer.status == 200
    assert fhir.count() == 2
    assert len(sleeps.calls) == 1


def test_a_get_dropped_twice_is_a_502(
    transport: ProviderTransport, tenant: TenantMapping, fhir: FakeFhirServer
) -> None:
    fhir.drop(times=2)
    with pytest.raises(UpstreamError):
        get(transport, tenant, "Patient/example")
    assert fhir.count() == 2


def test_a_dropped_post_is_not_retried(
    transport: ProviderTransport, tenant: TenantMapping, fhir: FakeFhirServer, sleeps: Sleeps
) -> None:
    fhir.drop()
    with pytest.raises(UpstreamError) as failed:
        post_search(transport, tenant)
    assert failed.value.status == 502
    assert fhir.count() == 1
    assert sleeps.calls == []


def test_an_answer_broken_off_mid_body_is_a_502_without_retry(
    transport: ProviderTransport, tenant: TenantMapping, fhir: FakeFhirServer
) -> None:
    fhir.truncate()
    with pytest.raises(UpstreamError) as failed:
        get(transport, tenant, "Patient/example")
    assert "broke off" in failed.value.diagnostics
    assert fhir.count() == 1


# -- timeouts --------------------------------------------------------------------------------


def test_headers_later_than_the_read_timeout_are_a_504_without_retry(
    transport: ProviderTransport, tenant: TenantMapping, fhir: FakeFhirServer
) -> None:
    fhir.slow(5)
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout) as timed_out:
        get(transport, tenant, "Patient/example")
    assert timed_out.value.status == 504
    assert time.monotonic() - started < 2.0
    assert fhir.count() == 1


def test_a_body_trickling_in_is_a_504_within_connect_plus_read_timeout(
    transport: ProviderTransport, tenant: TenantMapping, fhir: FakeFhirServer
) -> None:
    fhir.slow_body(bytes_per_second=40)  # each byte well inside the read timeout
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        get(transport, tenant, "Patient/example")
    assert time.monotonic() - started < 2.8


# -- redirects and size ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_a_502_and_is_not_followed(
    transport: ProviderTransport, tenant: TenantMapping, fhir: FakeFhirServer, status: int
) -> None:
    fhir.redirect(f"{fhir.origin}/elsewhere/Patient/example", status=status)
    with pytest.raises(UpstreamError) as failed:
        get(transport, tenant, "Patient/example")
    assert "redirect" in failed.value.diagnostics
    assert fhir.count(path="/elsewhere") == 0
    assert fhir.count() == 1


def test_an_answer_over_the_size_cap_is_a_502(
    transport: ProviderTransport, tenant: TenantMapping, fhir: FakeFhirServer
) -> None:
    fhir.oversize(300_000)
    with pytest.raises(UpstreamError) as failed:
        get(transport, tenant, "Patient/example")
    assert "larger" in failed.value.diagnostics


def test_a_chunked_answer_over_the_size_cap_is_a_502_and_the_connection_closed(
    transport: ProviderTransport, tenant: TenantMapping, fhir: FakeFhirServer
) -> None:
    get(transport, tenant, "Patient/example")
    fhir.oversize(300_000, chunked=True)
    with pytest.raises(UpstreamError):
        get(transport, tenant, "Patient/example")
    get(transport, tenant, "Patient/example")
    assert fhir.connections() == 2


def test_an_answer_exactly_at_the_cap_is_returned(
    transport: ProviderTransport, tenant: TenantMapping, fhir: FakeFhirServer
) -> None:
    fhir.oversize(100_000, chunked=True)
    fhir.oversize(100_000)
    assert len(get(transport, tenant, "Patient/example").body) == 100_000
    assert len(get(transport, tenant, "Patient/example").body) == 100_000
    fhir.oversize(100_001, chunked=True)
    with pytest.raises(UpstreamError):
        get(transport, tenant, "Patient/example")


# -- circuit breaker -------------------------------------------------------------------------


def test_the_circuit_opens_after_repeated_failures_and_answers_503_without_calling(
    transport: ProviderTransport, tenant: TenantMapping, fhir: FakeFhirServer
) -> None:
    fhir.fail(503, times=3)
    for _ in range(3):
        assert get(transport, tenant, "Patient/example").status == 503
    with pytest.raises(Unavailable) as refused:
        get(transport, tenant, "Patient/example")
    assert refused.value.status == 503
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 30
    assert fhir.count() == 3


def test_timeouts_and_dropped_connections_count_as_failures(
    auth: ProviderAuth, tenant: TenantMapping, fhir: FakeFhirServer, sleeps: Sleeps
) -> None:
    breaker = CircuitBreaker(2, 30, refusal=provider_paused)
    transport = ProviderTransport(SETTINGS, auth, breaker=breaker, sleep=sleeps)
    fhir.drop(times=2)
    with pytest.raises(UpstreamError):
        get(transport, tenant, "Patient/example")
    fhir.slow(3)
    with pytest.raises(UpstreamTimeout):
        get(transport, tenant, "Patient/example")
    assert breaker.state(tenant.provider_base_url) == "open"
    transport.close()


def test_a_404_or_a_500_does_not_open_the_circuit(
    transport: ProviderTransport, tenant: TenantMapping, fhir: FakeFhirServer
) -> None:
    fhir.fail(500, times=2)
    for _ in range(2):
        get(transport, tenant, "Patient/example")
    for _ in range(2):
        assert get(transport, tenant, "Patient/missing").status == 404
    assert transport.breaker.state(tenant.provider_base_url) == "closed"


def test_after_the_open_period_one_probe_goes_through_and_its_success_closes_it(
    auth: ProviderAuth, tenant: TenantMapping, fhir: FakeFhirServer
) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(2, 30, clock=clock, refusal=provider_paused)
    transport = ProviderTransport(SETTINGS, auth, breaker=breaker)
    fhir.fail(502, times=2)
    for _ in range(2):
        get(transport, tenant, "Patient/example")
    with pytest.raises(Unavailable):
        get(transport, tenant, "Patient/example")
    clock.advance(30)
    assert breaker.state(tenant.provider_base_url) == "half-open"
    assert get(transport, tenant, "Patient/example").status == 200
    assert breaker.state(tenant.provider_base_url) == "closed"
    assert fhir.count() == 3
    transport.close()


def test_a_credential_failure_gives_the_probe_slot_back(
    auth: ProviderAuth, store: LocalSecretStore, fhir: FakeFhirServer
) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(1, 30, clock=clock, refusal=provider_paused)
    transport = ProviderTransport(SETTINGS, auth, breaker=breaker)
    no_secret = TenantMapping(
        tenant_id=str(uuid.uuid4()),
        provider_base_url=fhir.base_url,
        provider_fhir_version="r4",
        provider_auth_kind="bearer",
    )
    breaker.record_failure(fhir.base_url)
    clock.advance(30)
    with pytest.raises(ProviderAuthError):
        get(transport, no_secret, "Patient/example")
    assert fhir.count() == 0
    ok = bearer_tenant(store, fhir.base_url)
    assert get(transport, ok, "Patient/example").status == 200
    transport.close()


def test_the_operators_probe_bypasses_an_open_circuit(
    transport: ProviderTransport, tenant: TenantMapping, fhir: FakeFhirServer
) -> None:
    fhir.fail(503, times=3)
    for _ in range(3):
        get(transport, tenant, "Patient/example")
    answer = transport.probe(tenant, f"{fhir.base_url}/metadata", JSON)
    assert answer.status == 200
    assert transport.breaker.state(tenant.provider_base_url) == "open"


# -- provider 401 ----------------------------------------------------------------------------


def test_a_provider_401_refreshes_the_token_once_and_retries(
    transport: ProviderTransport, cc_tenant: TenantMapping, fhir: FakeFhirServer
) -> None:
    assert get(transport, cc_tenant, "Patient/example").status == 200
    first = fhir.last().bearer
    fhir.rotate_tokens()
    assert get(transport, cc_tenant, "Patient/example").status == 200
    assert fhir.token_requests() == 2
    statuses = [r.status for r in fhir.requests() if r.path.startswith("/fhir")]
    assert statuses == [200, 401, 200]
    assert fhir.last().bearer != first


def test_a_401_on_a_post_is_retried_once_too(
    transport: ProviderTransport, cc_tenant: TenantMapping, fhir: FakeFhirServer
) -> None:
    get(transport, cc_tenant, "metadata")
    fhir.rotate_tokens()
    assert post_search(transport, cc_tenant).status == 200
    assert fhir.count(method="POST", path="Observation/_search") == 2


def test_a_second_401_is_returned(
    transport: ProviderTransport, cc_tenant: TenantMapping, fhir: FakeFhirServer
) -> None:
    fhir.fail(401, times=2, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    answer = get(transport, cc_tenant, "Patient/example")
    assert answer.status == 401
    assert fhir.count() == 2
    assert fhir.token_requests() == 2


def test_a_401_without_provider_auth_is_returned_without_retry(
    transport: ProviderTransport, fhir: FakeFhirServer
) -> None:
    open_tenant = TenantMapping(
        tenant_id=str(uuid.uuid4()), provider_base_url=fhir.base_url, provider_fhir_version="r4"
    )
    assert get(transport, open_tenant, "Patient/example").status == 401
    assert fhir.count() == 1


# -- connection pooling ----------------------------------------------------------------------


def test_connections_are_kept_alive_per_provider_and_distinct_between_providers(
    transport: ProviderTransport, tenant: TenantMapping, fhir: FakeFhirServer, store: Any
) -> None:
    with running_fake_fhir(require_bearer=STATIC_TOKEN) as other:
        other_tenant = bearer_tenant(store, other.base_url)
        for _ in range(4):
            assert get(transport, tenant, "Patient/example").status == 200
            assert get(transport, other_tenant, "Patient/example").status == 200
        assert fhir.connections() == 1
        assert other.connections() == 1
        assert len(fhir.client_ports()) == 1


def test_tenants_of_the_same_provider_do_not_share_connections(
    transport: ProviderTransport, store: LocalSecretStore, fhir: FakeFhirServer
) -> None:
    first = bearer_tenant(store, fhir.base_url)
    second = bearer_tenant(store, fhir.base_url)
    for _ in range(2):
        get(transport, first, "Patient/example")
        get(transport, second, "Patient/example")
    assert fhir.connections() == 2


def test_concurrent_calls_share_the_pool(
    transport: ProviderTransport, tenant: TenantMapping, fhir: FakeFhirServer
) -> None:
    statuses: list[int] = []

    def call() -> None:
        for _ in range(3):
            statuses.append(get(transport, tenant, "Patient/example").status)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 18
    assert fhir.connections() <= 6


# -- TLS -------------------------------------------------------------------------------------


def test_tls_verification_stays_on(auth: ProviderAuth, store: LocalSecretStore) -> None:
    with running_fake_fhir(tls=True, require_bearer=STATIC_TOKEN) as secure:
        mapping = bearer_tenant(store, secure.base_url)
        untrusting = ProviderTransport(SETTINGS, auth)
        with pytest.raises(UpstreamError) as failed:
            get(untrusting, mapping, "Patient/example")
        assert "TLS" in failed.value.diagnostics
        assert secure.count() == 0
        untrusting.close()
        # The same server with its CA trusted answers: the failure above was the certificate.
        trusting = ProviderTransport(SETTINGS, auth, ca_bundle=secure.ca_path)
        assert get(trusting, mapping, "Patient/example").status == 200
        trusting.close()


# -- logging ---------------------------------------------------------------------------------


def test_nothing_secret_or_a_query_string_is_logged(
    transport: ProviderTransport,
    cc_tenant: TenantMapping,
    fhir: FakeFhirServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG):
        get(transport, cc_tenant, "Observation?patient=secret-patient-id")
        fhir.rotate_tokens()
        fhir.drop(times=2)
        with pytest.raises(UpstreamError):
            get(transport, cc_tenant, "Observation?patient=secret-patient-id")
    text = caplog.text
    assert "secret-patient-id" not in text
    assert CLIENT_SECRET not in text
    assert not any(token in text for token in fhir.issued_tokens)
    assert "fake-fhir-" not in text


# -- the request's deadline (docs/security.md row 81) -----------------------------------------


def test_no_call_starts_once_the_requests_deadline_has_passed(
    transport: ProviderTransport, tenant: TenantMapping, fhir: FakeFhirServer
) -> None:
    with pytest.raises(UpstreamTimeout):
        get(transport, tenant, "Patient/example", deadline=time.monotonic() - 1)
    assert fhir.count() == 0
    # The request ran out of time, not the provider: no failure counts against it.
    assert transport.breaker.state(tenant.provider_base_url) == "closed"


def test_a_call_waits_no_longer_than_the_requests_deadline(
    auth: ProviderAuth, tenant: TenantMapping, fhir: FakeFhirServer
) -> None:
    patient = dataclasses.replace(SETTINGS, upstream_read_timeout_seconds=30)
    transport = ProviderTransport(patient, auth, breaker=CircuitBreaker(1, 30))
    fhir.slow(3)  # answers after 3 s: well within the read timeout, past the deadline
    with pytest.raises(UpstreamTimeout) as refused:
        get(transport, tenant, "Patient/example", deadline=time.monotonic() + 0.5)
    assert "as long as one request may" in refused.value.diagnostics
    assert transport.breaker.state(tenant.provider_base_url) == "closed"
    transport.close()
