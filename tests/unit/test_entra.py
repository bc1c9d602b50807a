"""shared/proxy/entra.py without a network: which tenants opt in, what a configuration may say,
and how a mapping names its Entra ID applications."""

from __future__ import annotations

import uuid

import pytest

from shared.proxy.entra import EntraTenants, EntraTokens, configuration_parser
from shared.tenants import InvalidTenantInput, TenantMapping, parse_mapping

AUTHORITY = "https://login.microsoftonline.com"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Registry:
    """A TenantRegistry stand-in that counts its listings."""

    def __init__(self, *mappings: TenantMapping) -> None:
        self.mappings = list(mappings)
        self.listings = 0

    def list_all(self) -> list[TenantMapping]:
        self.listings += 1
        return list(self.mappings)


def mapping(tenant_id: str, *apps: str, enabled: bool = True) -> TenantMapping:
    return TenantMapping(
        tenant_id=tenant_id,
        provider_base_url="https://fhir.example.org/r4",
        provider_fhir_version="r4",
        entra_app_ids=apps,
        enabled=enabled,
    )


def directory(registry: Registry, clock: Clock) -> EntraTenants:
    return EntraTenants(registry, 60, refresh_seconds=10, clock=clock)  # type: ignore[arg-type]


def test_an_enabled_mapping_with_app_ids_opts_its_tenant_in():
    tenants = directory(Registry(mapping(TENANT, str(uuid.uuid4()))), Clock())
    assert tenants.opted_in(TENANT)


def test_a_mapping_without_app_ids_or_disabled_does_not_opt_in():
    other = str(uuid.uuid4())
    registry = Registry(mapping(TENANT), mapping(other, str(uuid.uuid4()), enabled=False))
    tenants = directory(registry, Clock())
    assert not tenants.opted_in(TENANT)
    assert not tenants.opted_in(other)


def test_random_tenant_ids_list_the_mappings_at_most_once_per_interval():
    clock = Clock()
    registry = Registry(mapping(TENANT, str(uuid.uuid4())))
    tenants = directory(registry, clock)
    for _ in range(1000):
        assert not tenants.opted_in(str(uuid.uuid4()))
    assert registry.listings == 2  # the first listing, and one re-read for a miss
    clock.now += 11
    for _ in range(1000):
        tenants.opted_in(str(uuid.uuid4()))
    assert registry.listings == 3


def test_a_tenant_opted_in_a_moment_ago_is_found_by_the_re_read():
    clock = Clock()
    registry = Registry()
    tenants = directory(registry, clock)
    assert not tenants.opted_in(TENANT)
    registry.mappings.append(mapping(TENANT, str(uuid.uuid4())))
    clock.now += 11
    assert tenants.opted_in(TENANT)


def test_a_configuration_on_the_authority_is_read():
    parse = configuration_parser(AUTHORITY)
    configuration = parse(
        {
            "issuer": f"{AUTHORITY}/{TENANT}/v2.0",
            "jwks_uri": f"{AUTHORITY}/{TENANT}/discovery/v2.0/keys",
        }
    )
    assert configuration.jwks_uri.endswith("/discovery/v2.0/keys")


@pytest.mark.parametrize(
    "jwks_uri",
    [
        "https://attacker.example/keys",
        "http://login.microsoftonline.com/t/discovery/v2.0/keys",
        "https://login.microsoftonline.com@attacker.example/keys",
        "https://login.microsoftonline.com.attacker.example/keys",
        "https://login.microsoftonline.com:8443/keys",
    ],
)
def test_a_configuration_sending_us_elsewhere_for_keys_is_refused(jwks_uri):
    with pytest.raises(ValueError):
        configuration_parser(AUTHORITY)({"issuer": "x", "jwks_uri": jwks_uri})


def test_a_configuration_without_issuer_or_jwks_uri_is_refused():
    with pytest.raises(ValueError):
        configuration_parser(AUTHORITY)({"issuer": "x"})


def test_only_headers_typed_jwt_are_entras_to_check():
    assert EntraTokens.recognises({"typ": "JWT", "alg": "RS256"})
    assert EntraTokens.recognises({"typ": "jwt"})
    assert not EntraTokens.recognises({"typ": "at+jwt"})
    assert not EntraTokens.recognises({})


# -- the mapping's allow-list -----------------------------------------------------------------


def parse(**body: object) -> TenantMapping:
    document = {"provider_base_url": "https://fhir.example.org/r4", "provider_fhir_version": "r4"}
    return parse_mapping(TENANT, {**document, **body}, allow_insecure=False, client_exists=bool)


def test_entra_app_ids_are_stored_lower_case_once_each():
    app = "6E74172B-BE56-4843-9FF4-E66A39BB12E3"
    parsed = parse(entra_app_ids=[app, app.lower()])
    assert parsed.entra_app_ids == (app.lower(),)
    assert parsed.allows_entra_app(app)


@pytest.mark.parametrize(
    "value", ["6e74172b-be56-4843-9ff4-e66a39bb12e3", ["not-a-guid"], [str(uuid.uuid4())] * 101]
)
def test_entra_app_ids_must_be_a_bounded_list_of_guids(value):
    with pytest.raises(InvalidTenantInput) as refused:
        parse(entra_app_ids=value)
    assert refused.value.field == "entra_app_ids"


def test_a_mapping_lists_no_entra_app_unless_told():
    assert parse().entra_app_ids == ()
    assert parse().to_json()["entra_app_ids"] == []
