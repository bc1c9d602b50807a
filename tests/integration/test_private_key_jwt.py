"""``private_key_jwt`` at the token endpoint (docs/security.md table A rows 24-27, table M).

Against Azurite (clients, the shared ``expiring`` table that holds the jti replay cache) and, for
JWKS URLs, a local HTTPS server from a throwaway CA (``tools/testkit/backend_client.py``).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest

from shared.auth.client_assertions import (
    CLOCK_SKEW_SECONDS,
    MAX_ASSERTION_BYTES,
    REPLAY_NAMESPACE,
)
from shared.auth.client_keys import validate_inline_jwks
from shared.auth.clients import IssuedSecret
from shared.auth.signing_keys import ensure_signing_key
from shared.expiring import LEASE_ROW
from shared.fhir.errors import Unauthorized
from shared.http import Headers, Request
from shared.jose.remote import UNKNOWN_KID_INTERVAL_SECONDS
from shared.proxy.bearer import BearerVerifier
from shared.services import Services
from shared.tables import EXPIRING_TABLE
from shared.tenants import TenantMapping
from tests.conftest import request_token
from tools.testkit.backend_client import JWT_BEARER, BackendKey, JwksServer

AUDIENCE = "https://bridge.test/api/oauth2/token"  # what tools/testkit/inbound.form_request uses
GENERIC = "client authentication failed"


@pytest.fixture(scope="module")
def key() -> BackendKey:
    return BackendKey("RS384")


@pytest.fixture
def inline_client(services: Services, client: IssuedSecret, key: BackendKey) -> str:
    """The ``client`` fixture with ``key`` registered inline; its client id."""
    client_id = client.client.client_id
    services.clients.set_keys(client_id, "", validate_inline_jwks(key.jwks()))
    services.lookups.forget()
    return client_id


@pytest.fixture
def jwks_server(key: BackendKey) -> Iterator[JwksServer]:
    with JwksServer(key.jwks()) as server:
        yield server


@pytest.fixture
def url_services(make_services: Any, jwks_server: JwksServer) -> Services:
    return make_services(
        allow_insecure_provider_urls=True, client_jwks_ca_bundle=jwks_server.ca_path
    )


@pytest.fixture
def url_client(url_services: Services, jwks_server: JwksServer) -> str:
    issued = url_services.clients.register("Backend service")
    url_services.clients.set_keys(issued.client.client_id, jwks_server.url, "")
    url_services.lookups.forget()
    return issued.client.client_id


def grant(tenant_id: str) -> dict[str, str]:
    return {"grant_type": "client_credentials", "scope": tenant_id}


def token_with(
    services: Services, tenant: TenantMapping, fields: dict[str, str], **kwargs: Any
) -> Any:
    return request_token(services, {**grant(tenant.tenant_id), **fields}, **kwargs)


def assertion_fields(assertion: str) -> dict[str, str]:
    return {"client_assertion_type": JWT_BEARER, "client_assertion": assertion}


def refused_as(response: Any, status: int, error: str) -> str:
    assert response.status == status
    assert response.headers.get("Cache-Control") == "no-store"
    body = response.json()
    assert body["error"] == error
    assert "access_token" not in body
    return str(body["error_description"])


def claims_of(response: Any) -> dict[str, Any]:
    assert response.status == 200, response.body
    return jwt.decode(response.json()["access_token"], options={"verify_signature": False})


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


# -- a client with keys gets tokens (table A row 24) -------------------------------------------


def test_an_rs384_assertion_with_an_inline_key_gets_a_token(services, inline_client, key, tenant):
    response = token_with(services, tenant, key.form(inline_client, AUDIENCE))
    claims = claims_of(response)
    assert claims["client_id"] == inline_client
    assert claims["tid"] == tenant.tenant_id


@pytest.mark.parametrize("alg", ["ES384", "RS256", "ES256"])
def test_each_other_accepted_algorithm_gets_a_token(services, client, tenant, alg):
    other = BackendKey(alg)
    services.clients.set_keys(client.client.client_id, "", validate_inline_jwks(other.jwks()))
    services.lookups.forget()
    response = token_with(services, tenant, other.form(client.client.client_id, AUDIENCE))
    assert response.status == 200


def test_a_key_token_names_the_key_registration_in_sv_not_a_secret_version(
    services, inline_client, key, tenant, client
):
    claims = claims_of(token_with(services, tenant, key.form(inline_client, AUDIENCE)))
    assert claims["sv"].startswith("jwk.")
    assert claims["sv"] != client.version.version


def test_aud_as_an_array_holding_the_token_url_is_accepted(services, inline_client, key, tenant):
    fields = key.form(inline_client, AUDIENCE, aud=["https://other.example/token", AUDIENCE])
    assert token_with(services, tenant, fields).status == 200


def test_with_a_public_base_url_the_aud_is_the_public_token_url(
    make_services, inline_client, key, tenant
):
    services = make_services(public_base_url="https://public.example")
    public = key.form(inline_client, "https://public.example/api/oauth2/token")
    assert token_with(services, tenant, public).status == 200
    # The Host the request arrived at no longer counts.
    refused_as(
        token_with(services, tenant, key.form(inline_client, AUDIENCE)), 401, "invalid_client"
    )


def test_a_client_keeps_its_secret_beside_its_keys(services, inline_client, client, tenant):
    fields = {"client_id": inline_client, "client_secret": client.secret}
    assert token_with(services, tenant, fields).status == 200


# -- negative cases (table A rows 25-27) -------------------------------------------------------


def test_a_replayed_jti_is_invalid_client(services, inline_client, key, tenant):
    assertion = key.assertion(inline_client, AUDIENCE)
    assert token_with(services, tenant, assertion_fields(assertion)).status == 200
    again = token_with(services, tenant, assertion_fields(assertion))
    assert refused_as(again, 401, "invalid_client") == GENERIC


def test_a_jti_reused_in_a_new_assertion_is_invalid_client(services, inline_client, key, tenant):
    # The same exp: the replay row's partition is the minute of the (signed) exp.
    exp = int(time.time()) + 240
    first = key.form(inline_client, AUDIENCE, jti="one-jti", exp=exp)
    assert token_with(services, tenant, first).status == 200
    second = key.form(inline_client, AUDIENCE, jti="one-jti", exp=exp, iat=int(time.time()) - 1)
    refused_as(token_with(services, tenant, second), 401, "invalid_client")


def test_a_wrong_aud_is_invalid_client(services, inline_client, key, tenant):
    fields = key.form(inline_client, "https://bridge.test/api/fhir/r4")
    assert refused_as(token_with(services, tenant, fields), 401, "invalid_client") == GENERIC


def test_an_exp_more_than_five_minutes_ahead_is_invalid_client(
    services, inline_client, key, tenant
):
    fields = key.form(inline_client, AUDIENCE, exp=int(time.time()) + 305)
    assert refused_as(token_with(services, tenant, fields), 401, "invalid_client") == GENERIC


def test_an_expired_assertion_is_invalid_client(services, inline_client, key, tenant):
    now = int(time.time())
    fields = key.form(inline_client, AUDIENCE, exp=now - CLOCK_SKEW_SECONDS - 5, iat=now - 200)
    refused_as(token_with(services, tenant, fields), 401, "invalid_client")


def test_an_assertion_without_exp_is_invalid_client(services, inline_client, key, tenant):
    fields = key.form(inline_client, AUDIENCE, exp=None)
    refused_as(token_with(services, tenant, fields), 401, "invalid_client")


def test_an_assertion_without_jti_is_invalid_client(services, inline_client, key, tenant):
    fields = key.form(inline_client, AUDIENCE, jti=None)
    refused_as(token_with(services, tenant, fields), 401, "invalid_client")


def test_alg_none_is_refused_before_any_key_is_looked_at(services, inline_client, key, tenant):
    claims = key.claims(inline_client, AUDIENCE)
    unsigned = f"{b64({'alg': 'none', 'kid': key.kid})}.{b64(claims)}."
    description = refused_as(
        token_with(services, tenant, assertion_fields(unsigned)), 401, "invalid_client"
    )
    assert "alg" in description or "malformed" in description


def test_hs256_signed_with_the_public_key_is_refused(services, inline_client, key, tenant):
    from cryptography.hazmat.primitives import serialization

    public_pem = key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64({"alg": "HS256", "kid": key.kid, "typ": "JWT"})
    body = b64(key.claims(inline_client, AUDIENCE))
    mac = hmac.new(public_pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    forged = f"{header}.{body}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    description = refused_as(
        token_with(services, tenant, assertion_fields(forged)), 401, "invalid_client"
    )
    assert "alg" in description


def test_an_unknown_kid_is_invalid_client(services, inline_client, key, tenant):
    assertion = key.assertion(inline_client, AUDIENCE, header={"kid": "not-registered"})
    response = token_with(services, tenant, assertion_fields(assertion))
    assert refused_as(response, 401, "invalid_client") == GENERIC


def test_an_assertion_signed_by_another_key_with_the_registered_kid_is_invalid_client(
    services, inline_client, key, tenant
):
    impostor = BackendKey("RS384", kid=key.kid)
    response = token_with(services, tenant, impostor.form(inline_client, AUDIENCE))
    assert refused_as(response, 401, "invalid_client") == GENERIC


def test_a_key_registered_for_another_alg_is_invalid_client(services, client, tenant):
    es256 = BackendKey("ES256")
    services.clients.set_keys(client.client.client_id, "", validate_inline_jwks(es256.jwks()))
    services.lookups.forget()
    # Same kid, same curve family is not enough: the JWK says ES256, the header ES384.
    other = BackendKey("ES384", kid=es256.kid)
    response = token_with(services, tenant, other.form(client.client.client_id, AUDIENCE))
    refused_as(response, 401, "invalid_client")


def test_an_oversized_assertion_is_refused_before_it_is_decoded(
    services, inline_client, key, tenant
):
    padding = "x" * MAX_ASSERTION_BYTES
    assertion = key.assertion(inline_client, AUDIENCE, pad=padding)
    description = refused_as(
        token_with(services, tenant, assertion_fields(assertion)), 401, "invalid_client"
    )
    assert description == "client assertion is too large"


def test_a_secret_and_an_assertion_in_one_request_are_invalid_request(
    services, inline_client, key, tenant, client
):
    fields = {**key.form(inline_client, AUDIENCE), "client_secret": client.secret}
    refused_as(token_with(services, tenant, fields), 400, "invalid_request")


def test_basic_credentials_and_an_assertion_in_one_request_are_invalid_request(
    services, inline_client, key, tenant, client
):
    raw = f"{inline_client}:{client.secret}".encode()
    headers = {"Authorization": "Basic " + base64.b64encode(raw).decode()}
    response = token_with(services, tenant, key.form(inline_client, AUDIENCE), headers=headers)
    refused_as(response, 400, "invalid_request")


def test_a_client_id_naming_another_client_is_invalid_request(services, inline_client, key, tenant):
    fields = {
        **key.form(inline_client, AUDIENCE),
        "client_id": "00000000-0000-4000-8000-000000000000",
    }
    refused_as(token_with(services, tenant, fields), 400, "invalid_request")


def test_iss_differing_from_sub_is_invalid_client(services, inline_client, key, tenant):
    fields = key.form(inline_client, AUDIENCE, iss="someone-else")
    refused_as(token_with(services, tenant, fields), 401, "invalid_client")


def test_an_assertion_type_other_than_jwt_bearer_is_invalid_client(
    services, inline_client, key, tenant
):
    fields = {**key.form(inline_client, AUDIENCE), "client_assertion_type": "urn:other"}
    refused_as(token_with(services, tenant, fields), 401, "invalid_client")


def test_an_assertion_without_its_type_is_invalid_request(services, inline_client, key, tenant):
    fields = {"client_assertion": key.assertion(inline_client, AUDIENCE)}
    refused_as(token_with(services, tenant, fields), 400, "invalid_request")


def test_a_client_without_keys_cannot_use_private_key_jwt(services, client, key, tenant):
    response = token_with(services, tenant, key.form(client.client.client_id, AUDIENCE))
    assert refused_as(response, 401, "invalid_client") == GENERIC


def test_a_disabled_client_is_refused(services, inline_client, key, tenant):
    services.clients.update(inline_client, enabled=False)
    services.lookups.forget()
    refused_as(
        token_with(services, tenant, key.form(inline_client, AUDIENCE)), 401, "invalid_client"
    )


def test_assertion_failures_are_counted_by_the_throttle(make_services, inline_client, key, tenant):
    services = make_services(token_failure_limit=3)
    wrong = [key.form(inline_client, "https://wrong.example/token") for _ in range(3)]
    assert [token_with(services, tenant, fields).status for fields in wrong] == [401] * 3
    # Locked out: even a good assertion waits, as a good secret does after bad guesses.
    locked = token_with(services, tenant, key.form(inline_client, AUDIENCE))
    assert refused_as(locked, 429, "slow_down")


def test_refusals_after_the_client_is_known_do_not_say_which_check_failed(
    services, inline_client, key, tenant
):
    causes = [
        key.form(inline_client, "https://wrong.example/token"),
        key.form(inline_client, AUDIENCE, exp=int(time.time()) + 3600),
        assertion_fields(key.assertion(inline_client, AUDIENCE, header={"kid": "nope"})),
        BackendKey("RS384", kid=key.kid).form(inline_client, AUDIENCE),
    ]
    descriptions = {
        refused_as(token_with(services, tenant, fields), 401, "invalid_client") for fields in causes
    }
    assert descriptions == {GENERIC}


def test_the_refusal_reason_is_logged_without_the_assertion(
    services, inline_client, key, tenant, caplog
):
    assertion = key.assertion(inline_client, AUDIENCE, header={"kid": "nope"})
    with caplog.at_level(logging.INFO, logger="shared.auth.client_assertions"):
        token_with(services, tenant, assertion_fields(assertion))
    assert "unknown kid" in caplog.text
    assert assertion not in caplog.text
    assert assertion.split(".")[2] not in caplog.text


# -- the replay cache (table M) ----------------------------------------------------------------


def replay_rows(services: Services) -> list[Any]:
    table = services.table_service.get_table_client(EXPIRING_TABLE)
    prefix = REPLAY_NAMESPACE + "."
    return [
        row
        for row in table.query_entities(
            "PartitionKey ge @lo and PartitionKey lt @hi",
            parameters={"lo": prefix, "hi": REPLAY_NAMESPACE + "/"},
        )
        if row["RowKey"] != LEASE_ROW  # the minute's sweep lease, not a jti
    ]


def test_a_used_jti_is_kept_until_the_assertion_expires_plus_the_leeway(
    services, inline_client, key, tenant
):
    exp = int(time.time()) + 120
    before = {row["RowKey"] for row in replay_rows(services)}
    assert token_with(services, tenant, key.form(inline_client, AUDIENCE, exp=exp)).status == 200
    new = [row for row in replay_rows(services) if row["RowKey"] not in before]
    assert [row["expires"] for row in new] == [float(exp + CLOCK_SKEW_SECONDS)]


def test_a_refused_assertion_writes_no_replay_row(services, inline_client, key, tenant):
    before = len(replay_rows(services))
    token_with(services, tenant, key.form(inline_client, "https://wrong.example/token"))
    token_with(services, tenant, key.form("11111111-1111-4111-8111-111111111111", AUDIENCE))
    assert len(replay_rows(services)) == before


# -- JWKS URLs (table M) -----------------------------------------------------------------------


def test_a_client_with_a_jwks_url_gets_a_token(url_services, url_client, key, tenant, make_tenant):
    mapping = make_tenant(url_client)
    claims = claims_of(token_with(url_services, mapping, key.form(url_client, AUDIENCE)))
    assert claims["sv"].startswith("jku.")


def test_the_jwks_is_fetched_once_while_its_cache_control_allows(
    url_services, url_client, key, make_tenant, jwks_server
):
    mapping = make_tenant(url_client)
    for _ in range(3):
        assert token_with(url_services, mapping, key.form(url_client, AUDIENCE)).status == 200
    assert jwks_server.fetches == 1


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_a_key_rotated_into_the_jwks_works_after_one_refetch(
    settings, secret_store, table_service, key, make_tenant, jwks_server
):
    clock = Clock()
    configured = dataclasses.replace(
        settings, allow_insecure_provider_urls=True, client_jwks_ca_bundle=jwks_server.ca_path
    )
    services = Services(
        configured, secret_store=secret_store, table_service=table_service, clock=clock
    )
    ensure_signing_key(secret_store, configured.token_algorithm)
    client_id = services.clients.register("Backend service").client.client_id
    services.clients.set_keys(client_id, jwks_server.url, "")
    mapping = make_tenant(client_id)
    assert token_with(services, mapping, key.form(client_id, AUDIENCE)).status == 200
    rotated = BackendKey("ES384")
    jwks_server.document = {"keys": [key.public_jwk(), rotated.public_jwk()]}
    clock.now += UNKNOWN_KID_INTERVAL_SECONDS  # a minute after the last fetch, not sooner
    assert token_with(services, mapping, rotated.form(client_id, AUDIENCE)).status == 200
    assert jwks_server.fetches == 2


def test_a_burst_of_unknown_kids_makes_no_fetch_beyond_the_first(
    url_services, url_client, key, make_tenant, jwks_server
):
    mapping = make_tenant(url_client)
    for number in range(4):
        assertion = key.assertion(url_client, AUDIENCE, header={"kid": f"made-up-{number}"})
        refused_as(
            token_with(url_services, mapping, assertion_fields(assertion)), 401, "invalid_client"
        )
    # Fetched a moment ago: a made-up kid waits for the interval, it makes no fetch.
    assert jwks_server.fetches == 1


def test_a_jwks_url_at_a_refused_address_is_invalid_client_and_never_contacted(
    make_services, jwks_server, key, make_tenant
):
    # Production's address policy: loopback is no public address.
    services = make_services(
        allow_insecure_provider_urls=False, client_jwks_ca_bundle=jwks_server.ca_path
    )
    issued = services.clients.register("Backend at a private address")
    services.clients.set_keys(issued.client.client_id, jwks_server.url, "")
    services.lookups.forget()
    mapping = make_tenant(issued.client.client_id)
    response = token_with(services, mapping, key.form(issued.client.client_id, AUDIENCE))
    assert refused_as(response, 401, "invalid_client") == GENERIC
    assert jwks_server.fetches == 0


def test_no_jwks_url_is_fetched_for_a_disabled_client(
    url_services, url_client, key, make_tenant, jwks_server
):
    mapping = make_tenant(url_client)
    url_services.clients.update(url_client, enabled=False)
    url_services.lookups.forget()
    refused_as(
        token_with(url_services, mapping, key.form(url_client, AUDIENCE)), 401, "invalid_client"
    )
    assert jwks_server.fetches == 0


def test_a_jwks_url_that_is_down_is_temporarily_unavailable(
    url_services, url_client, key, make_tenant, jwks_server
):
    mapping = make_tenant(url_client)
    jwks_server.status = 503
    response = token_with(url_services, mapping, key.form(url_client, AUDIENCE))
    refused_as(response, 503, "temporarily_unavailable")
    assert response.headers.get("Retry-After")


@pytest.mark.parametrize(
    ("endpoint", "route"), [("introspection", "introspect"), ("revocation", "revoke")]
)
def test_a_jwks_url_that_is_down_at_introspection_or_revocation_is_temporarily_unavailable(
    url_services, url_client, key, jwks_server, endpoint, route
):
    """The endpoints that authenticate like the token endpoint answer a key outage the same."""
    from tools.testkit.inbound import form_request

    jwks_server.status = 503
    fields = {"token": "not-a-token", **key.form(url_client, AUDIENCE)}
    request = form_request(fields, url=f"https://bridge.test/api/oauth2/{route}")
    response = getattr(url_services, endpoint).handle(request)
    refused_as(response, 503, "temporarily_unavailable")
    assert response.headers.get("Retry-After")


# -- what a key-authenticated token rests on (table M) -----------------------------------------


def bearer(services: Services, token: str) -> Request:
    headers = Headers({"Accept": "application/fhir+json", "Authorization": f"Bearer {token}"})
    return Request("GET", "https://bridge.test/api/fhir/r4/Patient", headers)


def verifier_of(services: Services) -> BearerVerifier:
    return BearerVerifier(services.settings, services.signing_keys, services.lookups)


def test_removing_the_client_key_stops_its_tokens_after_the_cache_ttl(
    services, inline_client, key, tenant
):
    token = token_with(services, tenant, key.form(inline_client, AUDIENCE)).json()["access_token"]
    verifier = verifier_of(services)
    assert verifier.verify(bearer(services, token)).client_id == inline_client
    services.clients.set_keys(inline_client, "", "")
    services.lookups.forget()  # the cache TTL passing
    with pytest.raises(Unauthorized) as caught:
        verifier.verify(bearer(services, token))
    assert caught.value.diagnostics == "client key is no longer registered"


def test_adding_a_second_key_keeps_tokens_of_the_first(services, inline_client, key, tenant):
    token = token_with(services, tenant, key.form(inline_client, AUDIENCE)).json()["access_token"]
    second = BackendKey("ES384")
    both = {"keys": [key.public_jwk(), second.public_jwk()]}
    services.clients.set_keys(inline_client, "", validate_inline_jwks(both))
    services.lookups.forget()
    assert verifier_of(services).verify(bearer(services, token)).client_id == inline_client


def test_changing_the_jwks_url_stops_tokens_of_the_old_one(
    url_services, url_client, key, make_tenant
):
    mapping = make_tenant(url_client)
    response = token_with(url_services, mapping, key.form(url_client, AUDIENCE))
    token = response.json()["access_token"]
    url_services.clients.set_keys(url_client, "https://keys.example/other.json", "")
    url_services.lookups.forget()
    with pytest.raises(Unauthorized):
        verifier_of(url_services).verify(bearer(url_services, token))


# -- many instances (table M) ------------------------------------------------------------------


def test_a_jti_used_on_one_instance_is_refused_on_another(
    settings, secret_store, table_service, key, make_tenant
):
    """Two Services on one Azurite are two instances: no memory shared, only the tables."""
    configured = dataclasses.replace(settings, cache_ttl_seconds=60)
    ensure_signing_key(secret_store, configured.token_algorithm)
    first, second = (
        Services(configured, secret_store=secret_store, table_service=table_service)
        for _ in range(2)
    )
    client_id = first.clients.register("Backend service").client.client_id
    first.clients.set_keys(client_id, "", validate_inline_jwks(key.jwks()))
    mapping = make_tenant(client_id)
    assertion = assertion_fields(key.assertion(client_id, AUDIENCE))
    assert token_with(first, mapping, assertion).status == 200
    replayed = token_with(second, mapping, assertion)
    assert refused_as(replayed, 401, "invalid_client") == GENERIC
    # And the second instance was able to verify the assertion: only the jti stopped it.
    assert token_with(second, mapping, key.form(client_id, AUDIENCE)).status == 200


def test_an_assertion_from_the_future_is_invalid_client(services, inline_client, key, tenant):
    later = int(time.time()) + CLOCK_SKEW_SECONDS + 30
    fields = key.form(inline_client, AUDIENCE, iat=later, exp=later + 60)
    refused_as(token_with(services, tenant, fields), 401, "invalid_client")
