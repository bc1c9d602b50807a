"""The provider auth kinds are one table: validation, ProviderAuth and the ops CLI read it."""

from __future__ import annotations

import pytest

from shared.proxy.auth_kinds import (
    AUTH_KINDS,
    CREDENTIAL_FIELDS,
    AuthKind,
    UnknownAuthKind,
    auth_kind,
    kinds_requiring,
    kinds_storing_a_credential,
    one_of,
)
from shared.tenants import InvalidTenantInput, TenantMapping, parse_mapping
from tools.ops import CliError, build_parser

TENANT = "11111111-2222-4333-8444-555555555555"


def parse(**body: object) -> TenantMapping:
    document = {"provider_base_url": "https://fhir.example.org/r4", "provider_fhir_version": "r4"}
    return parse_mapping(TENANT, {**document, **body}, allow_insecure=False, client_exists=bool)


def test_every_kind_has_one_row_named_by_it() -> None:
    assert list(AUTH_KINDS) == list(AuthKind)
    assert all(rules.kind is kind for kind, rules in AUTH_KINDS.items())


def test_a_plain_string_finds_its_row_and_anything_else_is_unknown() -> None:
    assert auth_kind("bearer") is AUTH_KINDS[AuthKind.BEARER]
    for value in ("kerberos", "Bearer", "", None, 1, ["bearer"]):
        with pytest.raises(UnknownAuthKind):
            auth_kind(value)


def test_only_none_sends_no_credential() -> None:
    assert [k for k, rules in AUTH_KINDS.items() if not rules.sends_credential] == [AuthKind.NONE]


def test_the_two_token_endpoint_kinds_alone_own_the_token_url_and_client_id() -> None:
    assert CREDENTIAL_FIELDS == ("provider_token_url", "provider_client_id")
    for field in CREDENTIAL_FIELDS:
        assert kinds_requiring(field) == (AuthKind.CLIENT_CREDENTIALS, AuthKind.PRIVATE_KEY_JWT)


def test_the_stored_credential_is_the_client_secret_or_the_static_token() -> None:
    assert kinds_storing_a_credential() == (AuthKind.CLIENT_CREDENTIALS, AuthKind.BEARER)


def test_the_validation_message_lists_the_tables_kinds() -> None:
    with pytest.raises(InvalidTenantInput) as refused:
        parse(provider_auth_kind="basic")
    assert str(refused.value) == (
        "provider_auth_kind must be none, client_credentials, managed_identity, bearer "
        "or private_key_jwt"
    )
    assert str(refused.value) == f"provider_auth_kind must be {one_of(list(AuthKind))}"


def test_a_parsed_mapping_carries_the_kind_as_its_plain_name() -> None:
    mapping = parse(provider_auth_kind="bearer")
    assert mapping.provider_auth_kind == "bearer"
    assert f"{mapping.provider_auth_kind}" == "bearer"


def test_a_field_of_another_kind_names_the_kind_that_owns_it() -> None:
    with pytest.raises(InvalidTenantInput) as refused:
        parse(provider_auth_kind="bearer", provider_client_id="bridge")
    assert refused.value.field == "provider_client_id"
    assert str(refused.value) == (
        "provider_client_id applies only to client_credentials or private_key_jwt"
    )


def test_the_ops_cli_offers_exactly_the_tables_kinds() -> None:
    def put(kind: str) -> str:
        args = build_parser().parse_args(["tenants", "put", TENANT, "--auth-kind", kind])
        return str(args.auth_kind)

    assert [put(str(kind)) for kind in AuthKind] == [str(kind) for kind in AuthKind]
    with pytest.raises(CliError):
        put("kerberos")


def test_private_key_jwt_needs_the_token_url_and_our_client_id_and_stores_nothing() -> None:
    with pytest.raises(InvalidTenantInput) as refused:
        parse(provider_auth_kind="private_key_jwt", provider_client_id="bridge")
    assert refused.value.field == "provider_token_url"
    mapping = parse(
        provider_auth_kind="private_key_jwt",
        provider_token_url="https://fhir.example.org/oauth2/token",
        provider_client_id="bridge",
    )
    assert mapping.provider_auth_kind == "private_key_jwt"
    assert AUTH_KINDS[AuthKind.PRIVATE_KEY_JWT].stored_credential is None
