"""Entra ID app-only tokens accepted per tenant (shared/proxy/entra.py), against a local issuer.

Entra cannot be reached from here: tools/testkit/entra.py serves a tenant's OpenID configuration,
keys and token endpoint over HTTPS on 127.0.0.1 from its own throwaway CA, and the app is pointed
at it with EHRB_ENTRA_AUTHORITY and EHRB_ENTRA_CA_BUNDLE (loopback needs the development address
setting). Tokens are signed by joserfc there and verified by pyjwt here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from joserfc import jwt as jose_jwt
from joserfc.jwk import RSAKey

from shared.fhir.errors import FhirError, Forbidden, Unauthorized, Unavailable
from shared.proxy.model import Caller
from shared.services import Services
from shared.tenants import TenantMapping
from tools.testkit.entra import LocalEntra, running_entra
from tools.testkit.inbound import fhir_request

API_CLIENT_ID = "6e74172b-be56-4843-9ff4-e66a39bb12e3"
API_ID_URI = "api://ehr-bridge-test"


@pytest.fixture(scope="module")
def entra() -> Iterator[LocalEntra]:
    with running_entra() as server:
        server.register_api(API_ID_URI, API_CLIENT_ID)
        yield server


@pytest.fixture(autouse=True)
def clean(entra: LocalEntra) -> None:
    entra.oidc_overrides = {}
    entra.keys_body = None
    entra.keys_cache_control = "max-age=86400, private"
    entra.published_extra = []


@pytest.fixture
def services(make_services: Callable[..., Services], entra: LocalEntra) -> Iterator[Services]:
    built = make_services(
        allow_insecure_provider_urls=True,
        upstream_connect_timeout_seconds=1,
        upstream_read_timeout_seconds=2,
        entra_audience=API_CLIENT_ID,
        entra_authority=entra.authority,
        entra_ca_bundle=entra.ca_path,
    )
    yield built
    if "proxy" in built.__dict__:
        built.proxy.close()


def opted_in(services: Services, entra: LocalEntra, *app_ids: str, **fields: Any) -> TenantMapping:
    """A tenant known to the issuer and mapped with the given Entra app ids."""
    mapping = TenantMapping(
        tenant_id=fields.pop("tenant_id", None) or entra.add_tenant(),
        provider_base_url=fields.pop("provider_base_url", "https://fhir.hospital-a.example/r4"),
        provider_fhir_version="r4",
        entra_app_ids=app_ids,
        **fields,
    )
    return services.tenants.put(mapping)[0]


def verify(services: Services, token: str) -> Caller:
    return services.verifier.verify(fhir_request("GET", "Patient", token))


def refused(services: Services, token: str, kind: type[FhirError] = Unauthorized) -> FhirError:
    with pytest.raises(kind) as caught:
        verify(services, token)
    return caught.value


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return ".".join(
        [b64(json.dumps(header).encode()), b64(json.dumps(claims).encode()), b64(signature)]
    )


def fetches(entra: LocalEntra, tenant_id: str) -> int:
    return entra.count(f"/{tenant_id}/v2.0/.well-known/openid-configuration") + entra.count(
        f"/{tenant_id}/discovery/v2.0/keys"
    )


@pytest.fixture
def app_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def tenant(services: Services, entra: LocalEntra, app_id: str) -> TenantMapping:
    return opted_in(services, entra, app_id)


# -- accepted ---------------------------------------------------------------------------------


def test_an_app_token_of_an_opted_in_tenant_for_its_app_is_accepted(
    services, entra, tenant, app_id
):
    caller = verify(services, entra.token(tenant.tenant_id, app_id, API_CLIENT_ID))
    assert (caller.via, caller.client_id, caller.tenant_id) == ("entra", app_id, tenant.tenant_id)
    assert caller.secret_version == ""


def test_a_token_from_the_issuers_token_endpoint_reads_through_the_proxy(
    services, entra, fhir_server
):
    provider = fhir_server(version="r4")
    tenant_id = entra.add_tenant()
    app = entra.register_app(tenant_id, ("FHIR.Read",))
    opted_in(services, entra, app.app_id, tenant_id=tenant_id, provider_base_url=provider.base_url)
    answer = requests.post(
        entra.token_url(tenant_id),
        data={
            "grant_type": "client_credentials",
            "client_id": app.app_id,
            "client_secret": app.secret,
            "scope": f"{API_ID_URI}/.default",
        },
        verify=entra.ca_path,
        timeout=5,
    )
    token = answer.json()["access_token"]
    response = services.proxy.handle(fhir_request("GET", "Patient/example", token), "r4")
    assert response.status == 200, response.text
    assert provider.last().bearer is None  # the caller's Entra token never reaches the provider


def test_a_key_rotated_in_a_moment_after_the_set_was_fetched_waits_for_the_interval(
    services, entra, tenant, app_id
):
    verify(services, entra.token(tenant.tenant_id, app_id, API_CLIENT_ID))
    entra.rotate()
    token = entra.token(tenant.tenant_id, app_id, API_CLIENT_ID)
    assert refused(services, token).diagnostics == "unknown signing key"
    assert entra.count(f"/{tenant.tenant_id}/discovery/v2.0/keys") == 1


def test_a_verified_token_is_not_fetched_for_again(services, entra, tenant, app_id):
    token = entra.token(tenant.tenant_id, app_id, API_CLIENT_ID)
    verify(services, token)
    before = fetches(entra, tenant.tenant_id)
    for _ in range(5):
        verify(services, token)
    assert fetches(entra, tenant.tenant_id) == before


def test_a_key_rotated_in_at_the_issuer_verifies_after_one_refetch(
    make_services, entra, app_id, monkeypatch
):
    import shared.jose.remote

    # The set was fetched a moment ago: let the unknown-kid interval be over already.
    monkeypatch.setattr(shared.jose.remote, "UNKNOWN_KID_INTERVAL_SECONDS", 0.0)
    services = make_services(
        entra_audience=API_CLIENT_ID,
        entra_authority=entra.authority,
        entra_ca_bundle=entra.ca_path,
        allow_insecure_provider_urls=True,
    )
    tenant = opted_in(services, entra, app_id)
    verify(services, entra.token(tenant.tenant_id, app_id, API_CLIENT_ID))
    before = entra.count(f"/{tenant.tenant_id}/discovery/v2.0/keys")
    entra.rotate()
    verify(services, entra.token(tenant.tenant_id, app_id, API_CLIENT_ID))
    assert entra.count(f"/{tenant.tenant_id}/discovery/v2.0/keys") == before + 1


def test_tokens_are_never_logged_accepted_or_refused(services, entra, tenant, app_id, caplog):
    good = entra.token(tenant.tenant_id, app_id, API_CLIENT_ID)
    bad = entra.token(tenant.tenant_id, str(uuid.uuid4()), API_CLIENT_ID)
    with caplog.at_level(logging.DEBUG):
        verify(services, good)
        with pytest.raises(Forbidden):
            verify(services, bad)
    for token in (good, bad):
        for part in token.split("."):
            assert part not in caplog.text


# -- tenant isolation -------------------------------------------------------------------------


def test_a_token_of_tenant_a_never_reaches_tenant_bs_provider(services, entra, fhir_server):
    provider_a, provider_b = fhir_server(version="r4"), fhir_server(version="r4")
    app = str(uuid.uuid4())
    a = opted_in(services, entra, app, provider_base_url=provider_a.base_url)
    b = opted_in(services, entra, app, provider_base_url=provider_b.base_url)
    token = entra.token(a.tenant_id, app, API_CLIENT_ID)
    named_b = services.proxy.handle(
        fhir_request("GET", "Patient/example", token, headers={"X-Tenant-Id": b.tenant_id}), "r4"
    )
    assert named_b.status == 403
    assert services.proxy.handle(fhir_request("GET", "Patient/example", token), "r4").status == 200
    assert provider_a.count() == 1
    assert provider_b.count() == 0


def test_a_tid_that_disagrees_with_the_issuer_is_refused_before_any_fetch(
    services, entra, tenant, app_id
):
    other = opted_in(services, entra, app_id)
    token = entra.token(tenant.tenant_id, app_id, API_CLIENT_ID, tid=other.tenant_id)
    assert refused(services, token).diagnostics == "wrong issuer"
    assert fetches(entra, tenant.tenant_id) + fetches(entra, other.tenant_id) == 0


def test_a_tenant_that_did_not_opt_in_is_refused_and_nothing_is_fetched(
    services, entra, make_tenant, app_id
):
    plain = make_tenant(tenant_id=entra.add_tenant())  # mapped, no entra_app_ids
    unmapped = entra.add_tenant()
    for tenant_id in (plain.tenant_id, unmapped):
        token = entra.token(tenant_id, app_id, API_CLIENT_ID)
        assert refused(services, token).diagnostics == "token issuer is not accepted"
        assert fetches(entra, tenant_id) == 0


def test_an_app_not_on_the_mappings_list_is_forbidden(services, entra, tenant):
    token = entra.token(tenant.tenant_id, str(uuid.uuid4()), API_CLIENT_ID)
    assert refused(services, token, Forbidden).diagnostics == (
        "application is not allowed for this tenant"
    )


def test_removing_the_app_from_the_mapping_stops_its_tokens(services, entra, tenant, app_id):
    token = entra.token(tenant.tenant_id, app_id, API_CLIENT_ID)
    verify(services, token)
    services.tenants.put(
        TenantMapping(
            tenant_id=tenant.tenant_id,
            provider_base_url=tenant.provider_base_url,
            provider_fhir_version="r4",
            entra_app_ids=(str(uuid.uuid4()),),
        )
    )
    services.lookups.forget()
    assert isinstance(refused(services, token, Forbidden), Forbidden)


def test_a_disabled_tenant_stops_its_entra_tokens(services, entra, tenant, app_id):
    token = entra.token(tenant.tenant_id, app_id, API_CLIENT_ID)
    verify(services, token)
    services.tenants.put(
        TenantMapping(
            tenant_id=tenant.tenant_id,
            provider_base_url=tenant.provider_base_url,
            provider_fhir_version="r4",
            entra_app_ids=(app_id,),
            enabled=False,
        )
    )
    services.lookups.forget()
    assert refused(services, token, Forbidden).diagnostics == "tenant is disabled"


# -- forged tokens ----------------------------------------------------------------------------


def test_alg_none_is_refused_before_any_fetch(services, entra, tenant, app_id):
    claims = entra.claims(tenant.tenant_id, app_id, API_CLIENT_ID)
    token = compact({"typ": "JWT", "alg": "none", "kid": entra.kid}, claims)
    assert refused(services, token).diagnostics == "algorithm not allowed"
    assert fetches(entra, tenant.tenant_id) == 0


def test_hs256_signed_with_the_issuers_public_key_is_refused_before_any_fetch(
    services, entra, tenant, app_id
):
    header = {"typ": "JWT", "alg": "HS256", "kid": entra.kid}
    claims = entra.claims(tenant.tenant_id, app_id, API_CLIENT_ID)
    signing_input = f"{compact(header, claims).rsplit('.', 1)[0]}"
    signature = hmac.new(entra.public_key_pem(), signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{b64(signature)}"
    assert refused(services, token).diagnostics == "algorithm not allowed"
    assert fetches(entra, tenant.tenant_id) == 0


def test_an_attackers_key_with_its_own_kid_is_an_unknown_key_and_refetches_once(
    services, entra, tenant, app_id
):
    forger = RSAKey.generate_key(2048, parameters={"kid": "attacker"}, private=True)
    claims = entra.claims(tenant.tenant_id, app_id, API_CLIENT_ID)
    for n in range(20):
        header = {"typ": "JWT", "alg": "RS256", "kid": f"attacker-{n}"}
        token = jose_jwt.encode(header, claims, forger)
        assert refused(services, token).diagnostics == "unknown signing key"
    # The configuration, the key set, and one re-fetch for the first unknown kid: no more.
    assert entra.count(f"/{tenant.tenant_id}/discovery/v2.0/keys") <= 2


def test_an_attackers_key_under_the_issuers_kid_fails_the_signature(
    services, entra, tenant, app_id
):
    forger = RSAKey.generate_key(2048, parameters={"kid": entra.kid}, private=True)
    header = {"typ": "JWT", "alg": "RS256", "kid": entra.kid}
    token = jose_jwt.encode(header, entra.claims(tenant.tenant_id, app_id, API_CLIENT_ID), forger)
    assert refused(services, token).diagnostics == "token signature is invalid"


def test_a_jku_or_jwk_in_the_header_is_never_followed(services, entra, tenant, app_id):
    forger = RSAKey.generate_key(2048, parameters={"kid": "own"}, private=True)
    header = {
        "typ": "JWT",
        "alg": "RS256",
        "kid": "own",
        "jku": f"{entra.authority}/attacker/keys",
        "jwk": forger.as_dict(private=False),
    }
    token = jose_jwt.encode(header, entra.claims(tenant.tenant_id, app_id, API_CLIENT_ID), forger)
    assert refused(services, token).diagnostics == "unknown signing key"
    assert entra.count("/attacker/keys") == 0


def test_a_token_for_another_api_is_refused(services, entra, tenant, app_id):
    token = entra.token(tenant.tenant_id, app_id, "00000003-0000-0000-c000-000000000000")
    assert refused(services, token).diagnostics == "wrong audience"


def test_a_token_with_several_audiences_is_refused(services, entra, tenant, app_id):
    token = entra.token(tenant.tenant_id, app_id, API_CLIENT_ID, aud=[API_CLIENT_ID, "x"])
    assert refused(services, token).diagnostics == "wrong audience"


@pytest.mark.parametrize(
    "changes",
    [
        {"scp": "user_impersonation"},
        {"idtyp": "user"},
        {"oid": "7f1c6f2e-0000-4000-8000-000000000001"},
    ],
    ids=["scp", "idtyp-user", "oid-not-sub"],
)
def test_a_token_on_behalf_of_a_user_is_refused(services, entra, tenant, app_id, changes):
    token = entra.token(tenant.tenant_id, app_id, API_CLIENT_ID, **changes)
    assert isinstance(refused(services, token), Unauthorized)


def test_a_v1_token_is_refused_by_name(services, entra, tenant, app_id):
    token = entra.token(
        tenant.tenant_id, app_id, API_CLIENT_ID, iss=f"https://sts.windows.net/{tenant.tenant_id}/"
    )
    assert "v1.0" in refused(services, token).diagnostics


def test_an_expired_token_is_refused_as_expired(services, entra, tenant, app_id):
    token = entra.token(tenant.tenant_id, app_id, API_CLIENT_ID, exp=1_700_000_000)
    error = refused(services, token)
    assert error.code == "expired"


def test_a_token_not_yet_valid_is_refused(services, entra, tenant, app_id):
    import time

    later = int(time.time()) + 600
    token = entra.token(tenant.tenant_id, app_id, API_CLIENT_ID, nbf=later, iat=later)
    assert refused(services, token).diagnostics == "token not yet valid"


def test_a_key_the_issuer_scopes_to_another_tenant_is_refused(services, entra, tenant, app_id):
    other = RSAKey.generate_key(2048, parameters={"kid": "scoped"}, private=True)
    entra.published_extra = [
        {**other.as_dict(private=False), "issuer": f"{entra.authority}/{uuid.uuid4()}/v2.0"}
    ]
    header = {"typ": "JWT", "alg": "RS256", "kid": "scoped"}
    token = jose_jwt.encode(header, entra.claims(tenant.tenant_id, app_id, API_CLIENT_ID), other)
    assert refused(services, token).diagnostics == "signing key is not one of this issuer's"


# -- the authority misbehaving ----------------------------------------------------------------


def test_a_jwks_uri_off_the_authority_is_never_fetched(services, entra, tenant, app_id):
    entra.oidc_overrides = {"jwks_uri": "https://127.0.0.2:9/keys"}
    token = entra.token(tenant.tenant_id, app_id, API_CLIENT_ID)
    assert isinstance(refused(services, token, Unavailable), Unavailable)
    assert entra.count(f"/{tenant.tenant_id}/discovery/v2.0/keys") == 0


def test_a_configuration_naming_another_issuer_is_refused(services, entra, tenant, app_id):
    entra.oidc_overrides = {"issuer": f"{entra.authority}/{uuid.uuid4()}/v2.0"}
    token = entra.token(tenant.tenant_id, app_id, API_CLIENT_ID)
    assert isinstance(refused(services, token, Unavailable), Unavailable)


def test_an_authority_that_fails_is_a_503_with_retry_after(services, entra, tenant, app_id):
    entra.fail_next("openid-configuration", 503)
    error = refused(services, entra.token(tenant.tenant_id, app_id, API_CLIENT_ID), Unavailable)
    assert error.status == 503
    assert error.headers["Retry-After"] == "5"


def test_an_oversized_key_set_is_refused(services, entra, tenant, app_id):
    entra.keys_body = b'{"keys": [], "pad": "' + b"x" * 70_000 + b'"}'
    token = entra.token(tenant.tenant_id, app_id, API_CLIENT_ID)
    assert isinstance(refused(services, token, Unavailable), Unavailable)


def test_in_production_a_loopback_authority_is_never_contacted(make_services, entra, app_id):
    production = make_services(
        entra_audience=API_CLIENT_ID,
        entra_authority=entra.authority,
        entra_ca_bundle=entra.ca_path,
    )
    tenant = opted_in(production, entra, app_id)
    token = entra.token(tenant.tenant_id, app_id, API_CLIENT_ID)
    assert isinstance(refused(production, token, Unavailable), Unavailable)
    assert fetches(entra, tenant.tenant_id) == 0


def test_without_the_audience_setting_entra_tokens_are_refused_as_not_ours(
    make_services, entra, app_id
):
    services = make_services(entra_authority=entra.authority, entra_ca_bundle=entra.ca_path)
    tenant = opted_in(services, entra, app_id)
    token = entra.token(tenant.tenant_id, app_id, API_CLIENT_ID)
    assert refused(services, token).diagnostics == "token is not an access token (typ)"
    assert fetches(entra, tenant.tenant_id) == 0
