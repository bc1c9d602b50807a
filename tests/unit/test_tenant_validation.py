"""Tenant mapping validation: what a mapping may point at, and how each problem is named."""

from __future__ import annotations

import uuid

import pytest

from shared.tenants import InvalidTenantInput, parse_mapping, validate_provider_url

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT = "0f5d2a52-1b3e-4c1f-9b6a-3b8f1a2c4d5e"


def parse(body: dict, *, allow_insecure: bool = False, tenant_id: str = TENANT):
    return parse_mapping(
        tenant_id, body, allow_insecure=allow_insecure, client_exists=lambda c: c == CLIENT
    )


def minimal(**extra) -> dict:
    return {
        "provider_base_url": "https://fhir.example.org/r4",
        "provider_fhir_version": "r4",
        **extra,
    }


def test_minimal_mapping_gets_safe_defaults():
    mapping = parse(minimal())
    assert mapping.provider_auth_kind == "none"
    assert mapping.enabled is True
    assert mapping.allow_writes is False
    assert mapping.allowed_client_ids == ()


def test_tenant_id_and_client_ids_are_stored_lower_case():
    mapping = parse(minimal(allowed_client_ids=[CLIENT.upper()]), tenant_id=TENANT.upper())
    assert mapping.tenant_id == TENANT
    assert mapping.allowed_client_ids == (CLIENT,)


def test_trailing_slash_of_provider_base_is_dropped():
    assert parse(minimal(provider_base_url="https://fhir.example.org/r4/")).provider_base_url == (
        "https://fhir.example.org/r4"
    )


@pytest.mark.parametrize(
    "tenant_id",
    [
        "not-a-guid",
        "{72f988bf-86f1-41af-91ab-2d7cd011db47}",
        "urn:uuid:72f988bf-86f1-41af-91ab-2d7cd011db47",
        "72f988bf86f141af91ab2d7cd011db47",
        "７2f988bf-86f1-41af-91ab-2d7cd011db47",
        "",
    ],
)
def test_non_canonical_tenant_ids_are_rejected(tenant_id):
    with pytest.raises(InvalidTenantInput) as error:
        parse(minimal(), tenant_id=tenant_id)
    assert error.value.field == "tenant_id"


def test_unknown_field_is_named():
    with pytest.raises(InvalidTenantInput) as error:
        parse(minimal(provider_password="x"))
    assert error.value.field == "provider_password"


@pytest.mark.parametrize("missing", ["provider_base_url", "provider_fhir_version"])
def test_missing_required_field_is_named(missing):
    body = minimal()
    del body[missing]
    with pytest.raises(InvalidTenantInput) as error:
        parse(body)
    assert error.value.field == missing


@pytest.mark.parametrize(
    "url",
    [
        "fhir.example.org/r4",
        "ftp://fhir.example.org/r4",
        "https://user:pw@fhir.example.org/r4",
        "https://fhir.example.org@evil.example/r4",
        "https://fhir.example.org/r4?tenant=x",
        "https://fhir.example.org/r4#frag",
        "https://fhir.example.org/r4/../admin",
        "https://fhir.example.org/r4/%2e%2e/admin",
        "https://fhir.example.org\\r4",
        "https://fhir.example.org//r4",
        "https://fhir.example.org:99999/r4",
        "https://fhir.example.org/r 4",
        "https://fhir.example.org/r4\r\nX-Injected: 1",
        "https://fhír.example.org/r4",
        "https://169.254.169.254/metadata",
        "https://[fe80::1]/fhir",
        "https://0.0.0.0/fhir",
        "https:///fhir",
        "",
        42,
    ],
)
def test_provider_url_that_is_not_a_plain_absolute_https_url_is_rejected(url):
    with pytest.raises(InvalidTenantInput) as error:
        validate_provider_url(url, "provider_base_url", allow_insecure=True)
    assert error.value.field == "provider_base_url"


@pytest.mark.parametrize(
    "url",
    ["http://fhir.example.org/r4", "https://127.0.0.1:8443/fhir", "https://localhost/fhir"],
)
def test_plain_http_and_loopback_need_the_development_setting(url):
    with pytest.raises(InvalidTenantInput):
        validate_provider_url(url, "provider_base_url", allow_insecure=False)
    assert validate_provider_url(url, "provider_base_url", allow_insecure=True) == url


def test_ipv6_loopback_needs_the_development_setting():
    with pytest.raises(InvalidTenantInput):
        validate_provider_url("https://[::1]/fhir", "provider_base_url", allow_insecure=False)


@pytest.mark.parametrize("url", ["https://10.1.2.3/fhir", "https://[fd12::1]/fhir"])
def test_private_network_provider_needs_the_development_setting(url):
    # Production reaches public unicast only (row 100): this deployment has no private network.
    with pytest.raises(InvalidTenantInput) as error:
        validate_provider_url(url, "provider_base_url", allow_insecure=False)
    assert error.value.field == "provider_base_url"
    assert validate_provider_url(url, "provider_base_url", allow_insecure=True) == url


def test_unknown_fhir_version_is_rejected():
    with pytest.raises(InvalidTenantInput) as error:
        parse(minimal(provider_fhir_version="r5"))
    assert error.value.field == "provider_fhir_version"


def test_unknown_auth_kind_is_rejected():
    with pytest.raises(InvalidTenantInput) as error:
        parse(minimal(provider_auth_kind="basic"))
    assert error.value.field == "provider_auth_kind"


def test_client_credentials_needs_a_token_url_and_client_id():
    with pytest.raises(InvalidTenantInput) as error:
        parse(minimal(provider_auth_kind="client_credentials", provider_client_id="bridge"))
    assert error.value.field == "provider_token_url"
    mapping = parse(
        minimal(
            provider_auth_kind="client_credentials",
            provider_token_url="https://login.example.org/token",
            provider_client_id="bridge",
        )
    )
    assert mapping.provider_token_url == "https://login.example.org/token"


def test_token_url_is_refused_for_other_auth_kinds():
    with pytest.raises(InvalidTenantInput) as error:
        parse(minimal(provider_token_url="https://login.example.org/token"))
    assert error.value.field == "provider_token_url"


def test_unknown_allowed_client_is_rejected():
    with pytest.raises(InvalidTenantInput) as error:
        parse(minimal(allowed_client_ids=[str(uuid.uuid4())]))
    assert error.value.field == "allowed_client_ids"
    assert "unknown client" in str(error.value)


@pytest.mark.parametrize("clients", ["x", [1], ["not-a-guid"], [CLIENT] * 101])
def test_allowed_clients_must_be_a_bounded_list_of_guids(clients):
    with pytest.raises(InvalidTenantInput) as error:
        parse(minimal(allowed_client_ids=clients))
    assert error.value.field == "allowed_client_ids"


@pytest.mark.parametrize("field", ["enabled", "allow_writes"])
def test_flags_must_be_booleans(field):
    with pytest.raises(InvalidTenantInput) as error:
        parse(minimal(**{field: "yes"}))
    assert error.value.field == field


def test_display_name_must_be_printable():
    with pytest.raises(InvalidTenantInput) as error:
        parse(minimal(display_name="Hospital\nA"))
    assert error.value.field == "display_name"
