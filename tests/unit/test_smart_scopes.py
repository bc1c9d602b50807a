"""SMART system scopes: the grammar accepted, what each form grants, and cutting a request down
to a registration (docs/security.md table N)."""

from __future__ import annotations

import pytest

from shared.auth.smart_scopes import (
    DEFAULT_SCOPES,
    LEGACY_GRANT,
    MAX_SCOPES,
    InvalidScope,
    parse_scope,
    parse_scopes,
    registered,
)
from shared.proxy.entra import roles_as_scopes


@pytest.mark.parametrize(
    ("scope", "letters"),
    [
        ("system/Patient.read", "rs"),
        ("system/Patient.write", "cud"),
        ("system/Patient.*", "cruds"),
        ("system/Patient.rs", "rs"),
        ("system/Patient.r", "r"),
        ("system/Patient.cruds", "cruds"),
        ("system/Patient.cud", "cud"),
    ],
)
def test_v1_and_v2_permissions_grant_their_letters(scope: str, letters: str) -> None:
    assert parse_scope(scope) == ("Patient", letters)


@pytest.mark.parametrize("scope", ["patient/Patient.read", "user/*.rs", "patient/*.*"])
def test_patient_and_user_scopes_are_invalid_for_client_credentials(scope: str) -> None:
    with pytest.raises(InvalidScope, match="only system/"):
        parse_scope(scope)


@pytest.mark.parametrize("scope", ["system/Patient.sr", "system/Patient.rr", "system/Patient.x"])
def test_v2_letters_out_of_order_repeated_or_unknown_are_invalid(scope: str) -> None:
    with pytest.raises(InvalidScope, match="cruds in that order"):
        parse_scope(scope)


def test_a_granular_v2_scope_is_invalid_because_the_proxy_cannot_enforce_it() -> None:
    with pytest.raises(InvalidScope, match="granular"):
        parse_scope("system/Observation.rs?category=laboratory")


@pytest.mark.parametrize("scope", ["system/Appointment.read", "system/patient.read"])
def test_a_type_the_proxy_does_not_forward_is_invalid(scope: str) -> None:
    with pytest.raises(InvalidScope, match="does not forward"):
        parse_scope(scope)


@pytest.mark.parametrize("scope", ["openid", "launch", "offline_access", "system/", "system/*"])
def test_other_scopes_are_invalid(scope: str) -> None:
    with pytest.raises(InvalidScope):
        parse_scope(scope)


def test_dstu2_medication_order_and_r4_medication_request_are_one_type() -> None:
    grant = parse_scopes(["system/MedicationOrder.rs"])
    assert grant.scopes() == ("system/MedicationRequest.rs",)
    assert grant.allows("MedicationOrder", "r") and grant.allows("MedicationRequest", "s")


def test_the_wildcard_grants_every_forwarded_type() -> None:
    grant = parse_scopes(["system/*.read"])
    assert grant.allows("Observation", "r") and grant.allows("Coverage", "s")
    assert not grant.allows("Observation", "c")


def test_a_grant_reads_back_in_v2_form_wildcard_first() -> None:
    grant = parse_scopes(["system/Patient.read", "system/*.r", "system/Observation.write"])
    assert grant.scopes() == ("system/*.r", "system/Observation.cud", "system/Patient.s")


def test_a_request_is_cut_down_to_what_the_registration_allows() -> None:
    maximum = parse_scopes(["system/Patient.rs", "system/Observation.r"])
    kept = parse_scopes(["system/*.cruds"]).within(maximum)
    assert kept.scopes() == ("system/Observation.r", "system/Patient.rs")


def test_nothing_is_left_of_a_request_outside_the_registration() -> None:
    maximum = parse_scopes(["system/Patient.rs"])
    assert parse_scopes(["system/Observation.read"]).within(maximum).empty


def test_covers_is_false_when_the_other_grant_reaches_further() -> None:
    maximum = parse_scopes(["system/Patient.rs"])
    assert maximum.covers(parse_scopes(["system/Patient.r"]))
    assert not maximum.covers(parse_scopes(["system/*.r"]))


def test_more_than_the_maximum_number_of_scopes_is_invalid() -> None:
    with pytest.raises(InvalidScope, match="at most"):
        parse_scopes(["system/Patient.r"] * (MAX_SCOPES + 1))


def test_an_unset_registration_reads_as_the_patients_app_default() -> None:
    assert registered(None) == registered("") == DEFAULT_SCOPES == ("system/*.rs",)


def test_a_registration_is_stored_in_v2_form() -> None:
    assert registered(["system/Patient.read", "system/Patient.write"]) == ("system/Patient.cruds",)


def test_a_registration_of_no_scope_is_invalid() -> None:
    with pytest.raises(InvalidScope, match="at least one"):
        registered([])


def test_entra_roles_that_are_smart_scopes_are_the_grant() -> None:
    grant = roles_as_scopes(["Reader", "system/Patient.rs"])
    assert grant.scopes() == ("system/Patient.rs",)


def test_an_entra_token_without_smart_roles_gets_the_default_read_grant() -> None:
    assert roles_as_scopes(["Reader"]) == LEGACY_GRANT
