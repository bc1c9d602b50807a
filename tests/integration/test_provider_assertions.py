"""Provider auth kind ``private_key_jwt``: EHR Bridge's signed assertion at a provider's token URL.

The fake provider (tools/testkit/fake_fhir.py) checks each assertion as an EHR does, with an
independent JOSE library (joserfc), against our assertion JWKS fetched over HTTP from a URL
that serves the app's own JWKS response (tools/testkit/served.py).
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl

import pytest

from shared.auth.jwks import jwks_response
from shared.auth.signing_keys import SigningKeys, ensure_signing_key, rotate_signing_key
from shared.http import Response
from shared.ids import ASSERTION_KEY_NAME, SIGNING_KEY_NAME
from shared.net.addresses import AddressPolicy
from shared.proxy.provider_auth import ProviderAuth, ProviderAuthError
from shared.secret_store import LocalSecretStore, SecretStoreUnavailable
from shared.tenants import TenantMapping
from tests.integration.test_provider_auth import DownStore
from tools.testkit.fake_fhir import TOKEN_PATH, FakeFhirServer, running_fake_fhir
from tools.testkit.served import ServedResponses, serving

CLIENT_ID = "ehr-bridge-at-hospital-e"
LOOPBACK_ALLOWED = AddressPolicy(allow_local=True)


class Clock:
    """Real time unless advanced: the provider checks exp against its own clock."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture(scope="module")
def fhir() -> Iterator[FakeFhirServer]:
    with running_fake_fhir(require_bearer=True) as server:
        yield server


@pytest.fixture
def store() -> LocalSecretStore:
    return LocalSecretStore(None)


@pytest.fixture
def keys(store: LocalSecretStore) -> SigningKeys:
    ensure_signing_key(store, "RS384", secret_name=ASSERTION_KEY_NAME)
    return SigningKeys(store, "RS384", 60, secret_name=ASSERTION_KEY_NAME)


@pytest.fixture
def jwks_document() -> dict[str, Any]:
    """What the served JWKS URL answers; None entries mean: the app's own response."""
    return {"override": None}


@pytest.fixture
def served(keys: SigningKeys, jwks_document: dict[str, Any]) -> Iterator[ServedResponses]:
    def answer() -> Response:
        override = jwks_document["override"]
        if override is not None:
            return Response(200, json.dumps(override).encode())
        keys.refresh()
        return jwks_response(keys)

    with serving({"/api/oauth2/assertion-jwks": answer}) as server:
        yield server


@pytest.fixture
def registered(fhir: FakeFhirServer, served: ServedResponses) -> Iterator[Any]:
    fhir.reset()
    fhir.clear_faults()
    fhir.assertions.echo_assertion = False
    client = fhir.require_assertion(CLIENT_ID, served.url("/api/oauth2/assertion-jwks"))
    yield client
    fhir.assertions.clients.clear()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def auth(store: LocalSecretStore, keys: SigningKeys, clock: Clock) -> Iterator[ProviderAuth]:
    provider_auth = ProviderAuth(
        store,
        clock=clock,
        timeout=(2.0, 5.0),
        address_policy=LOOPBACK_ALLOWED,
        assertion_keys=keys,
    )
    yield provider_auth
    provider_auth.close()


def pkjwt_tenant(fhir: FakeFhirServer, **fields: Any) -> TenantMapping:
    return TenantMapping(
        tenant_id=str(uuid.uuid4()),
        provider_base_url=fhir.base_url,
        provider_fhir_version="r4",
        provider_auth_kind="private_key_jwt",
        provider_token_url=fields.pop("provider_token_url", fhir.token_url),
        provider_client_id=fields.pop("provider_client_id", CLIENT_ID),
        **fields,
    )


def token_forms(fhir: FakeFhirServer) -> list[dict[str, str]]:
    return [
        dict(parse_qsl(r.body.decode()))
        for r in fhir.requests()
        if r.path == TOKEN_PATH and r.method == "POST"
    ]


def segment(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def refusal_of(auth: ProviderAuth, mapping: TenantMapping) -> ProviderAuthError:
    with pytest.raises(ProviderAuthError) as refused:
        auth.headers_for(mapping)
    return refused.value


# -- a token with our signed assertion -----------------------------------------------------


def test_a_signed_assertion_gets_a_provider_token_the_provider_accepts(auth, fhir, registered):
    headers = auth.headers_for(pkjwt_tenant(fhir))
    token = headers["Authorization"].removeprefix("Bearer ")
    assert token in fhir.issued_tokens


def test_the_grant_carries_the_assertion_and_no_secret_or_client_id(auth, fhir, registered):
    auth.headers_for(pkjwt_tenant(fhir, provider_scope="system/*.rs"))
    (form,) = token_forms(fhir)
    assert form["grant_type"] == "client_credentials"
    assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assert form["scope"] == "system/*.rs"
    assert "client_secret" not in form
    assert "client_id" not in form


def test_the_assertion_names_us_the_token_url_and_a_short_life(auth, fhir, registered, keys):
    auth.headers_for(pkjwt_tenant(fhir))
    assertion = token_forms(fhir)[0]["client_assertion"]
    header, claims = segment(assertion, 0), segment(assertion, 1)
    assert header == {"alg": "RS384", "kid": keys.current().kid, "typ": "JWT"}
    assert claims["iss"] == claims["sub"] == CLIENT_ID
    assert claims["aud"] == fhir.token_url
    assert 0 < claims["exp"] - claims["iat"] <= 300
    assert len(claims["jti"]) >= 32


def test_es384_assertions_are_accepted_when_configured(
    store, fhir, registered, clock, jwks_document
):
    ensure_signing_key(store, "ES384", secret_name=ASSERTION_KEY_NAME)
    keys = SigningKeys(store, "ES384", 60, secret_name=ASSERTION_KEY_NAME)
    jwks_document["override"] = keys.jwks()
    auth = ProviderAuth(store, clock=clock, address_policy=LOOPBACK_ALLOWED, assertion_keys=keys)
    auth.headers_for(pkjwt_tenant(fhir))
    assert segment(token_forms(fhir)[0]["client_assertion"], 0)["alg"] == "ES384"


def test_every_assertion_has_a_fresh_jti(auth, fhir, registered):
    mapping = pkjwt_tenant(fhir)
    for _ in range(3):
        auth.headers_for(mapping, force_refresh=True)
    jtis = {segment(form["client_assertion"], 1)["jti"] for form in token_forms(fhir)}
    assert len(jtis) == 3


def test_the_provider_token_is_kept_until_shortly_before_it_expires(auth, fhir, registered, clock):
    # Our clock moves an hour on; the provider's does not, so it must take exp that far ahead.
    registered.max_lifetime = 10_000
    mapping = pkjwt_tenant(fhir)
    first = auth.headers_for(mapping)
    clock.offset += 3600 - 61
    assert auth.headers_for(mapping) == first
    clock.offset += 2
    assert auth.headers_for(mapping) != first
    assert fhir.token_requests() == 2


def test_the_assertion_key_is_not_the_access_token_key(store, keys):
    ensure_signing_key(store, "RS256")
    access = SigningKeys(store, "RS256", 60, secret_name=SIGNING_KEY_NAME)
    assert keys.current().kid != access.current().kid
    assert {k["kid"] for k in keys.jwks()["keys"]}.isdisjoint(
        k["kid"] for k in access.jwks()["keys"]
    )


def test_an_assertion_signed_with_the_access_token_key_is_refused_by_the_provider(
    store, fhir, registered, clock
):
    # The access-token key is not in the assertion JWKS: a JWT of one kind never passes for
    # another (RFC 8725 §3.12), even at a provider that trusts our assertion keys.
    ensure_signing_key(store, "RS384", secret_name=SIGNING_KEY_NAME)
    wrong = SigningKeys(store, "RS384", 60, secret_name=SIGNING_KEY_NAME)
    auth = ProviderAuth(store, clock=clock, address_policy=LOOPBACK_ALLOWED, assertion_keys=wrong)
    assert "unknown kid" in (refusal_of(auth, pkjwt_tenant(fhir)).refusal or "")


def test_a_key_rotated_in_signs_at_once_and_the_provider_finds_it_after_one_fetch(
    auth, store, keys, fhir, registered
):
    mapping = pkjwt_tenant(fhir)
    auth.headers_for(mapping)
    fetches = fhir.assertions.jwks_fetches
    rotate_signing_key(store, "RS384", secret_name=ASSERTION_KEY_NAME)
    keys.refresh()
    auth.headers_for(mapping, force_refresh=True)
    assert fhir.assertions.jwks_fetches == fetches + 1


def test_a_pending_key_is_published_before_it_signs(store, keys):
    current = keys.current().kid
    pending = rotate_signing_key(
        store, "RS384", activate_in=timedelta(hours=1), secret_name=ASSERTION_KEY_NAME
    )
    keys.refresh()
    assert pending.version in {k["kid"] for k in keys.jwks()["keys"]}
    assert keys.current().kid == current


def test_the_assertion_jwks_has_public_keys_only_and_a_cache_lifetime(keys):
    answer = jwks_response(keys)
    assert answer.headers.get("Cache-Control") == "public, max-age=60"
    for jwk in answer.json()["keys"]:
        assert jwk["alg"] == "RS384"
        assert jwk["use"] == "sig"
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk)


# -- a provider's refusal says which rule failed, never the assertion ------------------------


def test_a_refused_audience_is_reported_by_its_rule(auth, fhir, registered):
    registered.audience = "https://fhir.hospital-e.example/oauth2/token"
    refused = refusal_of(auth, pkjwt_tenant(fhir))
    assert refused.refusal == "invalid_client: aud must be the token URL"
    assert "signed assertion" in str(refused)


def test_an_exp_too_far_ahead_for_the_provider_is_reported_by_its_rule(auth, fhir, registered):
    registered.max_lifetime = 60
    assert refusal_of(auth, pkjwt_tenant(fhir)).refusal == (
        "invalid_client: exp is more than 60 s ahead"
    )


def test_a_reused_jti_is_reported_by_its_rule(auth, fhir, registered, monkeypatch):
    import shared.proxy.assertions as assertions

    monkeypatch.setattr(assertions.secrets, "token_urlsafe", lambda n: "the-same-jti-" + "x" * 30)
    mapping = pkjwt_tenant(fhir)
    auth.headers_for(mapping)
    with pytest.raises(ProviderAuthError) as refused:
        auth.headers_for(mapping, force_refresh=True)
    assert refused.value.refusal == "invalid_client: jti was used before (replay)"


def test_an_unknown_kid_is_reported_by_its_rule(auth, fhir, registered, jwks_document):
    jwks_document["override"] = {"keys": []}
    assert refusal_of(auth, pkjwt_tenant(fhir)).refusal == (
        "invalid_client: unknown kid: no key of the registered JWKS has it"
    )


def test_an_algorithm_the_provider_does_not_take_is_reported_by_its_rule(auth, fhir, registered):
    registered.algorithms = ("ES384",)
    assert refusal_of(auth, pkjwt_tenant(fhir)).refusal == (
        "invalid_client: alg must be one of ES384"
    )


def test_an_unknown_client_id_is_reported_by_its_rule(auth, fhir, registered):
    mapping = pkjwt_tenant(fhir, provider_client_id="someone-else")
    assert refusal_of(auth, mapping).refusal == "invalid_client: unknown client (iss)"


def test_a_provider_echoing_the_assertion_gets_it_redacted(auth, fhir, registered, caplog):
    registered.audience = "https://elsewhere.example/token"
    fhir.assertions.echo_assertion = True
    with caplog.at_level(logging.DEBUG):
        refused = refusal_of(auth, pkjwt_tenant(fhir))
    assertion = token_forms(fhir)[0]["client_assertion"]
    assert refused.refusal is not None
    assert refused.refusal.startswith("invalid_client: aud must be the token URL")
    assert "[redacted]" in refused.refusal
    for part in assertion.split(".")[1:]:
        assert part not in str(refused)
        assert part not in caplog.text


def test_without_an_assertion_key_no_request_is_made(fhir, registered, clock):
    store = LocalSecretStore(None)
    empty = SigningKeys(store, "RS384", 60, secret_name=ASSERTION_KEY_NAME)
    auth = ProviderAuth(store, clock=clock, address_policy=LOOPBACK_ALLOWED, assertion_keys=empty)
    with pytest.raises(ProviderAuthError, match="assertion-signing-key"):
        auth.headers_for(pkjwt_tenant(fhir))
    assert fhir.token_requests() == 0


def test_key_vault_unavailable_is_an_outage_not_a_refusal(fhir, registered, clock):
    keys = SigningKeys(DownStore(), "RS384", 60, secret_name=ASSERTION_KEY_NAME)
    auth = ProviderAuth(DownStore(), clock=clock, assertion_keys=keys)
    with pytest.raises(SecretStoreUnavailable):
        auth.headers_for(pkjwt_tenant(fhir))
    assert fhir.token_requests() == 0


def test_a_token_url_at_a_refused_address_gets_no_request(store, keys, fhir, registered, clock):
    production = ProviderAuth(store, clock=clock, assertion_keys=keys)
    with pytest.raises(ProviderAuthError, match="loopback"):
        production.headers_for(pkjwt_tenant(fhir))
    assert fhir.token_requests() == 0


# -- through the proxy and the tenant check -------------------------------------------------


@pytest.fixture
def wired(proxy_services, client, fhir_server) -> Iterator[Any]:
    """A private_key_jwt tenant of the wired services, its provider and a caller's token."""
    from tests.conftest import bearer_token

    services = proxy_services
    ensure_signing_key(services.secret_store, "RS384", secret_name=ASSERTION_KEY_NAME)
    provider = fhir_server(version="r4", require_bearer=True)

    def answer() -> Response:
        services.assertion_keys.refresh()
        return jwks_response(services.assertion_keys)

    with serving({"/api/oauth2/assertion-jwks": answer}) as served:
        client_rules = provider.require_assertion(
            CLIENT_ID, served.url("/api/oauth2/assertion-jwks")
        )
        mapping = TenantMapping(
            tenant_id=str(uuid.uuid4()),
            provider_base_url=provider.base_url,
            provider_fhir_version="r4",
            provider_auth_kind="private_key_jwt",
            provider_token_url=provider.token_url,
            provider_client_id=CLIENT_ID,
            allowed_client_ids=(client.client.client_id,),
        )
        services.tenants.put(mapping)
        token = bearer_token(services, client, mapping.tenant_id)
        yield services, provider, client_rules, mapping, token


def proxied(services: Any, token: str, path: str = "Patient/example") -> Response:
    from tools.testkit.inbound import fhir_request

    return services.proxy.handle(fhir_request("GET", path, token), "r4")


def test_the_proxy_reaches_a_private_key_jwt_provider_with_its_token(wired):
    services, provider, _, _, token = wired
    response = proxied(services, token)
    assert response.status == 200
    assert provider.last().bearer in provider.issued_tokens


def test_a_provider_401_makes_the_proxy_fetch_one_new_token_and_retry(wired):
    services, provider, _, _, token = wired
    assert proxied(services, token).status == 200
    provider.rotate_tokens()  # every token issued so far now gets 401
    assert proxied(services, token).status == 200
    assert provider.token_requests() == 2


def test_the_proxys_502_names_the_providers_rule_and_alerts_without_the_assertion(wired, caplog):
    services, provider, rules, _, token = wired
    rules.audience = "https://fhir.hospital-e.example/token"
    provider.assertions.echo_assertion = True
    with caplog.at_level(logging.DEBUG):
        response = proxied(services, token)
    assert response.status == 502
    diagnostics = response.json()["issue"][0]["diagnostics"]
    assert "invalid_client: aud must be the token URL" in diagnostics
    assert "ALERT" in caplog.text and "aud must be the token URL" in caplog.text
    sent = token_forms(provider)[0]["client_assertion"]
    for part in sent.split(".")[1:]:
        assert part not in response.text
        assert part not in caplog.text


def test_the_tenant_check_names_the_providers_rule(wired):
    services, _, rules, mapping, _ = wired
    rules.max_lifetime = 60
    report = services.checker.check(services.tenants.get(mapping.tenant_id))
    auth_step = next(step for step in report["steps"] if step["step"] == "auth")
    assert auth_step["ok"] is False
    assert "exp is more than 60 s ahead" in auth_step["error"]


def test_the_tenant_check_passes_with_a_provider_that_takes_our_assertion(wired):
    services, _, _, mapping, _ = wired
    report = services.checker.check(services.tenants.get(mapping.tenant_id))
    assert report["ok"] is True
