"""Token endpoint (docs/security.md table A) against Azurite and the local secret store."""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from urllib.parse import quote

import jwt
import pytest

from shared.auth.client_secrets import hash_secret
from shared.auth.clients import IssuedSecret
from shared.auth.jwks import jwks_response
from shared.http import Headers, Request
from shared.ids import client_secret_name
from shared.secret_store import SecretStoreUnavailable, utcnow
from shared.services import Services
from shared.tables import CLIENTS_TABLE, Entity
from tests.conftest import request_token
from tools.testkit.inbound import form_request


def basic(client_id: str, secret: str) -> dict[str, str]:
    """An Authorization header with RFC 6749 §2.3.1 encoding."""
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def grant(tenant_id: str) -> dict[str, str]:
    return {"grant_type": "client_credentials", "scope": tenant_id}


def post_credentials(client: IssuedSecret) -> dict[str, str]:
    return {"client_id": client.client.client_id, "client_secret": client.secret}


def assert_oauth_error(response, status: int, error: str) -> dict:
    assert response.status == status
    assert response.headers.get("Content-Type", "").startswith("application/json")
    assert response.headers.get("Cache-Control") == "no-store"
    assert response.headers.get("Pragma") == "no-cache"
    body = response.json()
    assert body["error"] == error
    assert body.get("error_description", "").isascii()
    assert "access_token" not in body
    return body


def verify_with_jwks(services: Services, token: str) -> dict:
    """Verify a token the way an independent resource server would: JWKS + pyjwt."""
    jwks = jwks_response(services.signing_keys).json()
    header = jwt.get_unverified_header(token)
    key = jwt.PyJWKSet.from_dict(jwks)[header["kid"]]
    return jwt.decode(
        token,
        key.key,
        algorithms=[services.settings.token_algorithm],
        audience=services.settings.token_audience,
        issuer=services.settings.token_issuer,
        options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]},
    )


# 1, 2, 22


def test_basic_credentials_get_a_bearer_token_with_no_store(services, client, tenant):
    response = request_token(
        services, grant(tenant.tenant_id), headers=basic(client.client.client_id, client.secret)
    )
    assert response.status == 200
    assert response.headers.get("Cache-Control") == "no-store"
    assert response.headers.get("Pragma") == "no-cache"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == services.settings.token_lifetime_seconds
    assert isinstance(body["expires_in"], int)
    assert body["scope"] == tenant.tenant_id
    assert "refresh_token" not in body


def test_form_body_credentials_get_a_token(services, client, tenant):
    response = request_token(services, {**grant(tenant.tenant_id), **post_credentials(client)})
    assert response.status == 200
    assert response.json()["token_type"] == "Bearer"


def test_issued_token_verifies_against_the_published_jwks_with_every_claim(
    services, client, tenant
):
    body = request_token(services, {**grant(tenant.tenant_id), **post_credentials(client)}).json()
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "RS256"
    assert header["typ"] == "at+jwt"
    assert header["kid"] == services.signing_keys.current().kid
    claims = verify_with_jwks(services, body["access_token"])
    assert claims["client_id"] == claims["sub"] == client.client.client_id
    assert claims["tid"] == tenant.tenant_id
    assert claims["scope"] == f"{tenant.tenant_id} system/*.rs"  # the registered default
    assert claims["exp"] - claims["iat"] == body["expires_in"]
    assert claims["nbf"] == claims["iat"]
    assert claims["sv"] == client.version.version
    uuid.UUID(claims["jti"])


def test_every_token_has_a_unique_jti(services, client, tenant):
    fields = {**grant(tenant.tenant_id), **post_credentials(client)}
    tokens = [request_token(services, fields).json()["access_token"] for _ in range(3)]
    jtis = {jwt.decode(t, options={"verify_signature": False})["jti"] for t in tokens}
    assert len(jtis) == 3


def test_es256_tokens_verify_against_the_jwks(make_services, client, tenant):
    services = make_services(token_algorithm="ES256")
    body = request_token(services, {**grant(tenant.tenant_id), **post_credentials(client)}).json()
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "ES256"
    assert verify_with_jwks(services, body["access_token"])["tid"] == tenant.tenant_id


def test_misspelled_grant_type_from_the_patients_app_guide_is_accepted(services, client, tenant):
    fields = {"grant-type": "client_credentials", "scope": tenant.tenant_id}
    response = request_token(services, {**fields, **post_credentials(client)})
    assert response.status == 200


def test_content_type_with_charset_is_accepted(services, client, tenant):
    request = form_request({**grant(tenant.tenant_id), **post_credentials(client)})
    request.headers.set("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")
    assert services.token_endpoint.handle(request).status == 200


# 3, 4, 5


def test_wrong_basic_secret_is_401_invalid_client_with_basic_challenge(services, client, tenant):
    response = request_token(
        services, grant(tenant.tenant_id), headers=basic(client.client.client_id, "wrong")
    )
    assert_oauth_error(response, 401, "invalid_client")
    assert response.headers.get("WWW-Authenticate").startswith("Basic realm=")


def test_wrong_body_secret_is_401_invalid_client_with_a_challenge(services, client, tenant):
    fields = {**grant(tenant.tenant_id), "client_id": client.client.client_id}
    response = request_token(services, {**fields, "client_secret": "wrong"})
    assert_oauth_error(response, 401, "invalid_client")
    assert response.headers.get("WWW-Authenticate").startswith("Basic ")


def test_missing_credentials_is_401_invalid_client_with_a_challenge(services, tenant):
    response = request_token(services, grant(tenant.tenant_id))
    assert_oauth_error(response, 401, "invalid_client")
    assert "WWW-Authenticate" in response.headers


def test_client_id_without_secret_is_401_invalid_client(services, client, tenant):
    fields = {**grant(tenant.tenant_id), "client_id": client.client.client_id}
    assert_oauth_error(request_token(services, fields), 401, "invalid_client")


def test_unknown_client_is_401_invalid_client(services, tenant):
    fields = {**grant(tenant.tenant_id), "client_id": str(uuid.uuid4()), "client_secret": "x"}
    assert_oauth_error(request_token(services, fields), 401, "invalid_client")


def test_non_guid_client_id_is_401_invalid_client(services, tenant):
    fields = {**grant(tenant.tenant_id), "client_id": "admin", "client_secret": "x"}
    assert_oauth_error(request_token(services, fields), 401, "invalid_client")


# 6, 7


def test_basic_and_body_secret_together_is_400_invalid_request(services, client, tenant):
    response = request_token(
        services,
        {**grant(tenant.tenant_id), "client_secret": client.secret},
        headers=basic(client.client.client_id, client.secret),
    )
    assert_oauth_error(response, 400, "invalid_request")


def test_basic_with_a_different_body_client_id_is_400_invalid_request(services, client, tenant):
    response = request_token(
        services,
        {**grant(tenant.tenant_id), "client_id": str(uuid.uuid4())},
        headers=basic(client.client.client_id, client.secret),
    )
    assert_oauth_error(response, 400, "invalid_request")


def test_secret_in_query_string_is_400_and_never_logged(services, client, tenant, caplog):
    caplog.set_level(logging.DEBUG)
    request = form_request(
        grant(tenant.tenant_id),
        url=f"https://bridge.test/api/oauth2/token?client_id={client.client.client_id}"
        f"&client_secret={client.secret}",
    )
    response = services.token_endpoint.handle(request)
    assert_oauth_error(response, 400, "invalid_request")
    assert client.secret not in caplog.text
    assert client.secret not in response.text


# 8, 9, 10


@pytest.mark.parametrize("grant_type", ["password", "authorization_code", "not_a_grant_type"])
def test_other_grant_types_are_unsupported_grant_type(services, client, tenant, grant_type):
    fields = {"grant_type": grant_type, "scope": tenant.tenant_id, **post_credentials(client)}
    assert_oauth_error(request_token(services, fields), 400, "unsupported_grant_type")


@pytest.mark.parametrize("fields", [{}, {"grant_type": ""}])
def test_missing_or_empty_grant_type_is_invalid_request(services, client, tenant, fields):
    body = {"scope": tenant.tenant_id, **post_credentials(client), **fields}
    assert_oauth_error(request_token(services, body), 400, "invalid_request")


@pytest.mark.parametrize("repeated", ["grant_type", "scope", "client_id"])
def test_repeated_parameter_is_invalid_request(services, client, tenant, repeated):
    fields = list({**grant(tenant.tenant_id), **post_credentials(client)}.items())
    fields.append((repeated, dict(fields)[repeated]))
    assert_oauth_error(request_token(services, fields), 400, "invalid_request")


def test_both_grant_type_spellings_together_is_invalid_request(services, client, tenant):
    fields = {**grant(tenant.tenant_id), "grant-type": "client_credentials"}
    assert_oauth_error(
        request_token(services, {**fields, **post_credentials(client)}), 400, "invalid_request"
    )


# 11


def test_get_is_405_with_allow_post_and_no_token(services, client, tenant):
    request = form_request({}, method="GET")
    response = services.token_endpoint.handle(request)
    assert_oauth_error(response, 405, "invalid_request")
    assert response.headers.get("Allow") == "POST"


def test_json_body_is_invalid_request(services, client, tenant):
    document = {**grant(tenant.tenant_id), **post_credentials(client)}
    request = Request(
        "POST",
        "https://bridge.test/api/oauth2/token",
        Headers({"Content-Type": "application/json"}),
        json.dumps(document).encode(),
    )
    assert_oauth_error(services.token_endpoint.handle(request), 400, "invalid_request")


# 12, 13, 14, 15


def test_missing_scope_is_invalid_scope(services, client, tenant):
    fields = {"grant_type": "client_credentials", **post_credentials(client)}
    assert_oauth_error(request_token(services, fields), 400, "invalid_scope")


def test_other_clients_tenant_and_unknown_tenant_are_indistinguishable(
    services, client, make_tenant
):
    other = services.clients.register("Another app")
    other_tenant = make_tenant(other.client.client_id)
    answers = []
    for scope in (other_tenant.tenant_id, str(uuid.uuid4())):
        response = request_token(services, {**grant(scope), **post_credentials(client)})
        assert_oauth_error(response, 400, "invalid_scope")
        answers.append(response.body)
    assert answers[0] == answers[1]


def test_two_tenants_in_scope_is_invalid_scope(services, client, tenant, make_tenant):
    second = make_tenant(client.client.client_id)
    scope = f"{tenant.tenant_id} {second.tenant_id}"
    assert_oauth_error(
        request_token(services, {**grant(scope), **post_credentials(client)}), 400, "invalid_scope"
    )


def test_upper_case_tenant_gets_a_canonical_lower_case_claim(services, client, tenant):
    fields = {**grant(tenant.tenant_id.upper()), **post_credentials(client)}
    body = request_token(services, fields).json()
    assert body["scope"] == tenant.tenant_id
    assert jwt.decode(body["access_token"], options={"verify_signature": False})["tid"] == (
        tenant.tenant_id
    )


@pytest.mark.parametrize(
    "spelling",
    [
        "{%s}",
        "urn:uuid:%s",
        "%s ",
    ],
)
def test_non_canonical_guid_spellings_are_invalid_scope(services, client, tenant, spelling):
    scope = spelling % tenant.tenant_id
    assert_oauth_error(
        request_token(services, {**grant(scope), **post_credentials(client)}), 400, "invalid_scope"
    )


def test_undashed_and_fullwidth_guids_are_invalid_scope(services, client, tenant):
    fullwidth = "\uff11" + tenant.tenant_id[1:]  # a full-width digit first: uuid.UUID() takes it
    for scope in (tenant.tenant_id.replace("-", ""), fullwidth):
        response = request_token(services, {**grant(scope), **post_credentials(client)})
        assert_oauth_error(response, 400, "invalid_scope")


def test_disabled_tenant_is_invalid_scope(services, client, make_tenant):
    disabled = make_tenant(client.client.client_id, enabled=False)
    fields = {**grant(disabled.tenant_id), **post_credentials(client)}
    assert_oauth_error(request_token(services, fields), 400, "invalid_scope")


# 16, 17


def test_disabled_client_is_invalid_client(services, client, tenant):
    services.clients.update(client.client.client_id, enabled=False)
    services.lookups.forget()
    fields = {**grant(tenant.tenant_id), **post_credentials(client)}
    assert_oauth_error(request_token(services, fields), 401, "invalid_client")


def test_client_with_every_secret_version_disabled_is_invalid_client(services, client, tenant):
    services.clients.disable_secret_version(client.client.client_id, client.version.version)
    services.lookups.forget()
    fields = {**grant(tenant.tenant_id), **post_credentials(client)}
    assert_oauth_error(request_token(services, fields), 401, "invalid_client")


def test_client_without_the_client_credentials_grant_is_unauthorized_client(
    services, client, tenant, table_service
):
    table = table_service.get_table_client(CLIENTS_TABLE)
    entity = table.get_entity("client", client.client.client_id)
    entity["grant_types"] = "none"
    table.update_entity(entity)
    fields = {**grant(tenant.tenant_id), **post_credentials(client)}
    assert_oauth_error(request_token(services, fields), 400, "unauthorized_client")


# 18, 19


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon-here").decode(),
        "Basic ",
        "Basic " + base64.b64encode(b":").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
        "Bearer abc",
        "Token x",
    ],
)
def test_malformed_authorization_is_401_invalid_client_never_500(services, tenant, authorization):
    response = request_token(
        services, grant(tenant.tenant_id), headers={"Authorization": authorization}
    )
    assert_oauth_error(response, 401, "invalid_client")


def test_lower_case_basic_scheme_is_accepted(services, client, tenant):
    header = basic(client.client.client_id, client.secret)["Authorization"]
    response = request_token(
        services,
        grant(tenant.tenant_id),
        headers={"Authorization": header.replace("Basic", "basic")},
    )
    assert response.status == 200


def test_two_authorization_headers_is_invalid_request(services, client, tenant):
    header = basic(client.client.client_id, client.secret)["Authorization"]
    request = form_request(grant(tenant.tenant_id))
    request.headers.add("Authorization", header)
    request.headers.add("Authorization", header)
    assert_oauth_error(services.token_endpoint.handle(request), 400, "invalid_request")


def test_non_ascii_secret_is_invalid_client_not_500(services, client, tenant):
    fields = {**grant(tenant.tenant_id), "client_id": client.client.client_id}
    response = request_token(services, {**fields, "client_secret": "é" * 43})
    assert_oauth_error(response, 401, "invalid_client")


def test_non_ascii_secret_in_basic_is_invalid_client_not_500(services, client, tenant):
    response = request_token(
        services, grant(tenant.tenant_id), headers=basic(client.client.client_id, "é…secret")
    )
    assert_oauth_error(response, 401, "invalid_client")


def test_megabyte_secret_is_413_not_500(services, client, tenant):
    fields = {**grant(tenant.tenant_id), "client_id": client.client.client_id}
    response = request_token(services, {**fields, "client_secret": "a" * 1_000_000})
    assert_oauth_error(response, 413, "invalid_request")


def test_invalid_utf8_in_form_is_invalid_request(services, tenant):
    request = form_request({})
    request.body = b"grant_type=client_credentials&client_secret=%FF%FE"
    assert_oauth_error(services.token_endpoint.handle(request), 400, "invalid_request")


# 20


def test_repeated_failures_for_one_client_are_slowed_down_with_retry_after(
    make_services, client, tenant
):
    services = make_services(token_failure_limit=5)
    bad = {**grant(tenant.tenant_id), "client_id": client.client.client_id, "client_secret": "no"}
    statuses = [request_token(services, bad).status for _ in range(5)]
    assert statuses == [401] * 5
    response = request_token(services, bad)
    assert_oauth_error(response, 429, "slow_down")
    assert 1 <= int(response.headers.get("Retry-After")) <= 60
    # The right secret does not get through a lockout either: that is what stops guessing.
    good = {**grant(tenant.tenant_id), **post_credentials(client)}
    assert request_token(services, good).status == 429


def test_throttling_one_client_leaves_other_clients_unaffected(make_services, client, make_tenant):
    services = make_services(token_failure_limit=3)
    other = services.clients.register("Other app")
    other_tenant = make_tenant(other.client.client_id)
    bad = {"grant_type": "client_credentials", "client_id": client.client.client_id}
    for _ in range(4):
        request_token(services, {**bad, "client_secret": "no"})
    fields = {**grant(other_tenant.tenant_id), **post_credentials(other)}
    assert request_token(services, fields).status == 200


def test_failures_from_one_source_address_are_slowed_down_across_client_ids(make_services, tenant):
    services = make_services(token_failure_limit=2)  # 10 per address
    headers = {"X-Forwarded-For": "203.0.113.9:51234"}
    for _ in range(10):
        fields = {"grant_type": "client_credentials", "client_id": str(uuid.uuid4())}
        request_token(services, {**fields, "client_secret": "x"}, headers=headers)
    fields = {"grant_type": "client_credentials", "client_id": str(uuid.uuid4())}
    response = request_token(services, {**fields, "client_secret": "x"}, headers=headers)
    assert response.status == 429


def test_guessing_from_one_address_does_not_lock_the_client_out_from_its_own(
    make_services, client, tenant
):
    """Row 75: knowing a client_id is not enough to deny the client its tokens."""
    services = make_services(token_failure_limit=5)
    attacker = {"X-Forwarded-For": "198.51.100.66:40000"}
    bad = {**grant(tenant.tenant_id), "client_id": client.client.client_id, "client_secret": "no"}
    for _ in range(5):
        assert request_token(services, bad, headers=attacker).status == 401
    assert request_token(services, bad, headers=attacker).status == 429
    own = {"X-Forwarded-For": "203.0.113.20:51000"}
    good = {**grant(tenant.tenant_id), **post_credentials(client)}
    assert request_token(services, good, headers=own).status == 200


def test_many_addresses_past_the_client_ceiling_still_leave_a_clean_source_its_tokens(
    make_services, client, tenant
):
    """Row 75: the per-client ceiling holds back sources that failed, not the real client."""
    services = make_services(token_failure_limit=3, token_client_failure_ceiling=9)
    bad = {**grant(tenant.tenant_id), "client_id": client.client.client_id, "client_secret": "no"}
    for n in range(3):
        for _ in range(3):
            headers = {"X-Forwarded-For": f"198.51.100.{n}:40000"}
            assert request_token(services, bad, headers=headers).status == 401
    fourth = {"X-Forwarded-For": "198.51.100.200:40000"}
    assert request_token(services, bad, headers=fourth).status == 401  # a clean record
    assert request_token(services, bad, headers=fourth).status == 429  # failed, over ceiling
    good = {**grant(tenant.tenant_id), **post_credentials(client)}
    own = {"X-Forwarded-For": "203.0.113.20:51000"}
    assert request_token(services, good, headers=own).status == 200


def test_concurrent_wrong_guesses_are_throttled_at_once_and_reread_the_secrets_once(
    make_services, client, tenant, monkeypatch
):
    """Row 76: failures are counted and judged in one step; misses share one re-read."""
    import threading

    services = make_services(token_failure_limit=10)
    good = {**grant(tenant.tenant_id), **post_credentials(client)}
    assert request_token(services, good).status == 200  # the client's versions are cached
    reads: list[str] = []
    store = services.secret_store
    real = store.list_versions

    def slow_list_versions(name: str):
        reads.append(name)
        time.sleep(0.05)  # Key Vault takes a while: the other guesses arrive meanwhile
        return real(name)

    monkeypatch.setattr(store, "list_versions", slow_list_versions)
    bad = {**grant(tenant.tenant_id), "client_id": client.client.client_id, "client_secret": "no"}
    barrier = threading.Barrier(100)
    statuses: list[int] = []

    def guess() -> None:
        barrier.wait()
        statuses.append(request_token(services, bad).status)

    threads = [threading.Thread(target=guess) for _ in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses.count(401) == 10
    assert statuses.count(429) == 90
    assert len(reads) <= 1


def test_behind_a_trusted_gateway_each_caller_is_its_own_source(make_services, client, tenant):
    """Row 77: the gateway's hop is skipped, so one caller's failures are not everyone's."""
    services = make_services(token_failure_limit=2, trusted_proxy_hops=1)  # 10 per address
    gateway = "10.1.0.5:5000"
    for n in range(12):
        fields = {"grant_type": "client_credentials", "client_id": str(uuid.uuid4())}
        headers = {"X-Forwarded-For": f"198.51.100.66:{40000 + n}, {gateway}"}
        request_token(services, {**fields, "client_secret": "x"}, headers=headers)
    good = {**grant(tenant.tenant_id), **post_credentials(client)}
    headers = {"X-Forwarded-For": f"203.0.113.20:51000, {gateway}"}
    assert request_token(services, good, headers=headers).status == 200


def test_hops_written_by_the_caller_do_not_escape_the_address_limit(make_services):
    """Row 77: only the right-most hop (appended by the platform) counts without a gateway."""
    services = make_services(token_failure_limit=2)  # 10 per address
    statuses = []
    for n in range(11):
        fields = {"grant_type": "client_credentials", "client_id": str(uuid.uuid4())}
        headers = {"X-Forwarded-For": f"192.0.2.{n}, 198.51.100.66:40000"}
        statuses.append(request_token(services, {**fields, "client_secret": "x"}, headers=headers))
    assert [r.status for r in statuses] == [401] * 10 + [429]


def test_without_any_forwarded_hop_the_address_limit_still_applies(make_services):
    """Row 77: no X-Forwarded-For is one shared source, limited, never unlimited."""
    services = make_services(token_failure_limit=2)  # 10 per address
    for _ in range(10):
        fields = {"grant_type": "client_credentials", "client_id": str(uuid.uuid4())}
        assert request_token(services, {**fields, "client_secret": "x"}).status == 401
    fields = {"grant_type": "client_credentials", "client_id": str(uuid.uuid4())}
    assert request_token(services, {**fields, "client_secret": "x"}).status == 429


def test_addresses_of_one_ipv6_64_share_the_address_limit(make_services):
    """Row 77: rotating through one's own /64 gains nothing."""
    services = make_services(token_failure_limit=2)  # 10 per address
    statuses = []
    for n in range(11):
        fields = {"grant_type": "client_credentials", "client_id": str(uuid.uuid4())}
        headers = {"X-Forwarded-For": f"[2001:db8:1:2::{n + 1:x}]:40000"}
        statuses.append(request_token(services, {**fields, "client_secret": "x"}, headers=headers))
    assert statuses[-1].status == 429


def test_unknown_and_known_client_ids_make_the_same_table_reads(
    make_services, client, tenant, monkeypatch
):
    """Row 78: an unknown id costs a known one's work: none, from the same cached listing."""
    services = make_services(token_failure_limit=1000)
    good = {**grant(tenant.tenant_id), **post_credentials(client)}
    assert request_token(services, good).status == 200  # a warm instance
    reads: list[str] = []
    table = services.clients._table
    for name in ("get", "query_partition"):
        real = getattr(table, name)
        monkeypatch.setattr(
            table, name, lambda *a, real=real, name=name: reads.append(name) or real(*a)
        )
    for _ in range(20):
        unknown = {**grant(tenant.tenant_id), "client_id": str(uuid.uuid4()), "client_secret": "x"}
        assert request_token(services, unknown).status == 401
    unknown_reads, reads[:] = len(reads), []
    wrong = {**good, "client_secret": "wrong"}
    for _ in range(20):
        assert request_token(services, wrong).status == 401
    assert unknown_reads == len(reads) == 0


# 23


@pytest.mark.parametrize("scope", ["<script>alert(1)</script>", "A" * 10_000])
def test_error_description_never_reflects_input(services, client, scope):
    response = request_token(services, {**grant(scope), **post_credentials(client)})
    body = assert_oauth_error(response, 400, "invalid_scope")
    assert "<script>" not in response.text
    assert "AAAA" not in response.text
    assert body["error_description"].isascii()


# Rotation (66) and secret validity (70)


def test_rotated_secret_works_at_once_although_the_old_one_was_cached(services, client, tenant):
    fields = {**grant(tenant.tenant_id), **post_credentials(client)}
    assert request_token(services, fields).status == 200  # warms the secret cache
    rotated = services.clients.rotate_secret(client.client.client_id, grace_seconds=0)
    fresh = {**grant(tenant.tenant_id), **post_credentials(rotated)}
    response = request_token(services, fresh)
    assert response.status == 200
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert claims["sv"] == rotated.version.version


def test_old_secret_works_during_grace_period(services, client, tenant):
    services.clients.rotate_secret(client.client.client_id, grace_seconds=3600)
    services.lookups.forget()
    fields = {**grant(tenant.tenant_id), **post_credentials(client)}
    assert request_token(services, fields).status == 200


def test_old_secret_stops_when_grace_period_ends_without_waiting_for_cache(
    services, client, tenant
):
    services.clients.rotate_secret(client.client.client_id, grace_seconds=1)
    fields = {**grant(tenant.tenant_id), **post_credentials(client)}
    assert request_token(services, fields).status == 200
    time.sleep(1.1)
    assert_oauth_error(request_token(services, fields), 401, "invalid_client")


def test_old_secret_stops_at_once_after_rotation_without_grace(services, client, tenant):
    services.clients.rotate_secret(client.client.client_id, grace_seconds=0)
    services.lookups.forget()
    fields = {**grant(tenant.tenant_id), **post_credentials(client)}
    assert_oauth_error(request_token(services, fields), 401, "invalid_client")


def test_expired_version_still_returned_by_the_store_does_not_authenticate(
    services, secret_store, client, tenant
):
    name = client_secret_name(client.client.client_id)
    secret_store.update_version(
        name, client.version.version, expires_on=utcnow() - timedelta(seconds=1)
    )
    assert secret_store.get_secret(name, client.version.version).value == hash_secret(client.secret)
    services.lookups.forget()
    fields = {**grant(tenant.tenant_id), **post_credentials(client)}
    assert_oauth_error(request_token(services, fields), 401, "invalid_client")


def test_version_not_yet_valid_does_not_authenticate(services, secret_store, client, tenant):
    name = client_secret_name(client.client.client_id)
    secret_store.set_secret(name, "future-secret", not_before=utcnow() + timedelta(hours=1))
    fields = {
        **grant(tenant.tenant_id),
        "client_id": client.client.client_id,
        "client_secret": "future-secret",
    }
    assert_oauth_error(request_token(services, fields), 401, "invalid_client")


# Fail closed (68, 71)


class UnavailableStore:
    """A secret store that is down."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        def fail(*args, **kwargs):
            raise SecretStoreUnavailable("down", retry_after=7)

        return fail


def test_secret_store_down_is_503_temporarily_unavailable_not_invalid_client(
    settings, table_service, client, tenant
):
    services = Services(settings, secret_store=UnavailableStore(), table_service=table_service)
    fields = {**grant(tenant.tenant_id), **post_credentials(client)}
    response = request_token(services, fields)
    assert_oauth_error(response, 503, "temporarily_unavailable")
    assert response.headers.get("Retry-After") == "7"


def test_table_storage_down_is_503_temporarily_unavailable(settings, secret_store, client):
    from azure.data.tables import TableServiceClient

    from tools.azurite import connection_string, free_port

    dead = TableServiceClient.from_connection_string(
        connection_string(free_port()), retry_total=0, connection_timeout=1
    )
    services = Services(settings, secret_store=secret_store, table_service=dead)
    fields = {**grant(str(uuid.uuid4())), **post_credentials(client)}
    response = request_token(services, fields)
    assert_oauth_error(response, 503, "temporarily_unavailable")
    assert "Retry-After" in response.headers


def test_no_signing_key_is_503_not_a_token(settings, table_service, client, tenant, tmp_path):
    from shared.secret_store import LocalSecretStore

    store = LocalSecretStore(tmp_path / "other.json")
    name = client_secret_name(client.client.client_id)
    version = store.set_secret(name, client.secret)
    services = Services(settings, secret_store=store, table_service=table_service)
    fields = {**grant(tenant.tenant_id), **post_credentials(client)}
    response = request_token(services, fields)
    assert_oauth_error(response, 503, "temporarily_unavailable")
    assert version.version


# Audit


def test_token_events_are_audited_without_secrets(services, client, tenant, caplog):
    caplog.set_level(logging.INFO, logger="ehrbridge.audit")
    fields = {**grant(tenant.tenant_id), **post_credentials(client)}
    token = request_token(services, fields).json()["access_token"]
    request_token(services, {**fields, "client_secret": "wrong-secret-value"})
    events = [json.loads(r.message) for r in caplog.records if r.name == "ehrbridge.audit"]
    issued = [e for e in events if e["event"] == "token.issued"]
    denied = [e for e in events if e["event"] == "token.denied"]
    assert issued[0]["client_id"] == client.client.client_id
    assert issued[0]["tenant_id"] == tenant.tenant_id
    assert denied[0]["reason"] == "secret mismatch"
    assert client.secret not in caplog.text
    assert token not in caplog.text
    assert "wrong-secret-value" not in caplog.text


def test_tenant_mapping_is_cached_so_a_removed_client_works_until_the_ttl(services, client, tenant):
    # Documented revocation delay: a change made elsewhere is seen after the cache TTL.
    fields = {**grant(tenant.tenant_id), **post_credentials(client)}
    assert request_token(services, fields).status == 200
    services.tenants.put(dataclasses.replace(tenant, allowed_client_ids=()))
    assert request_token(services, fields).status == 200
    services.lookups.forget()
    assert_oauth_error(request_token(services, fields), 400, "invalid_scope")


def test_client_row_without_display_fields_still_reads(services, table_service):
    client_id = str(uuid.uuid4())
    services.clients._table.create(Entity("client", client_id, {"enabled": True}))
    record = services.clients.get(client_id)
    assert record.grant_types == ("client_credentials",)
    assert record.display_name == ""


def test_table_storage_busy_is_503_after_bounded_retries(settings, secret_store, client):
    """Table 503 ServerBusy and 500 OperationTimedOut: retried, then fail closed (table F, 71)."""
    import http.server
    import threading

    from azure.data.tables import TableServiceClient

    from tools.azurite import connection_string

    seen: list[str] = []

    class Busy(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            code, status = ("ServerBusy", 503) if len(seen) % 2 else ("OperationTimedOut", 500)
            body = json.dumps({"odata.error": {"code": code, "message": {"value": code}}})
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        busy = TableServiceClient.from_connection_string(
            connection_string(server.server_address[1]),
            retry_total=2,
            retry_backoff_factor=0.01,
        )
        services = Services(settings, secret_store=secret_store, table_service=busy)
        fields = {**grant(str(uuid.uuid4())), **post_credentials(client)}
        started = time.monotonic()
        response = request_token(services, fields)
        assert_oauth_error(response, 503, "temporarily_unavailable")
        assert "Retry-After" in response.headers
        assert len(seen) == 3  # the first try and two retries, then fail closed
        assert time.monotonic() - started < 10
    finally:
        server.shutdown()
