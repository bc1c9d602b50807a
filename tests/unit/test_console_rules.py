"""The console's rules without a server: operators and roles, secret expiry and hints, last use,
signing-key rotation delays, the Patients app view's own-origin rule and token wallet."""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from shared.auth.clients import HINT_CHARS, secret_tags
from shared.auth.secret_usage import MAX_TRACKED, USED_PARTITION, SecretUsage
from shared.console import keys as signing
from shared.console.appview import AppView, FhirCall, Wallet, patient_missing
from shared.console.rules import MAX_EXPIRY_DAYS, parse_expiry, parse_grace, when
from shared.hosting import detect
from shared.operators import (
    OPERATOR_ROLE,
    READER_ROLE,
    NotAllowed,
    parse_principal,
    platform_sign_in,
)
from shared.settings import Settings
from tests.support.console import entra_hosting, principal_header
from tests.support.memory_table import MemoryEntityTable
from tools.ops import default_activate_in_seconds, default_retire_after_seconds

# -- operators ---------------------------------------------------------------------------------


def test_the_operator_role_may_change_and_look():
    operator = parse_principal(principal_header(OPERATOR_ROLE))
    assert operator is not None and operator.can_change and operator.can_look


def test_the_reader_role_may_look_but_not_change():
    reader = parse_principal(principal_header(READER_ROLE))
    assert reader is not None and reader.can_look and not reader.can_change
    with pytest.raises(NotAllowed) as refused:
        reader.require(change=True)
    assert refused.value.status == 403


def test_a_principal_without_a_role_may_not_even_look():
    nobody = parse_principal(principal_header())
    assert nobody is not None
    with pytest.raises(NotAllowed):
        nobody.require(change=False)


def test_the_operator_is_named_by_sign_in_name_and_object_id():
    operator = parse_principal(principal_header(OPERATOR_ROLE, name="ada@contoso.example"))
    assert operator is not None
    assert operator.actor().to_json() == {
        "kind": "entra",
        "name": "ada@contoso.example (0b1c2d3e-0000-4000-8000-000000000001)",
    }


@pytest.mark.parametrize(
    "header",
    [
        "",
        "not base64!",
        base64.b64encode(b"[1, 2]").decode(),
        base64.b64encode(json.dumps({"auth_typ": "github", "claims": []}).encode()).decode(),
        base64.b64encode(json.dumps({"auth_typ": "aad", "claims": []}).encode()).decode(),
        "A" * 40_000,
    ],
)
def test_anything_but_an_entra_principal_with_an_object_id_is_no_operator(header):
    assert parse_principal(header) is None


def test_a_role_claimed_under_another_claim_type_does_not_count():
    document = {
        "auth_typ": "aad",
        "claims": [
            {"typ": "oid", "val": "x"},
            {"typ": "groups", "val": OPERATOR_ROLE},
        ],
        "role_typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
    }
    operator = parse_principal(base64.b64encode(json.dumps(document).encode()).decode())
    assert operator is not None and not operator.can_change


def test_the_principal_header_is_trusted_only_in_azure_with_platform_auth_and_the_setting():
    base = Settings(entra_auth=True, hosting=entra_hosting())
    assert platform_sign_in(base)
    assert not platform_sign_in(dataclasses.replace(base, entra_auth=False))
    assert not platform_sign_in(
        dataclasses.replace(base, hosting=detect({"WEBSITE_AUTH_ENABLED": "True"}))
    )
    flex_without_auth = detect(
        {"WEBSITE_SKU": "FlexConsumption", "CONTAINER_NAME": "c", "LEGION_SERVICE_HOST": "1"}
    )
    assert not platform_sign_in(dataclasses.replace(base, hosting=flex_without_auth))


# -- secrets ----------------------------------------------------------------------------------


def test_a_secrets_hint_is_its_first_three_characters_and_nothing_else():
    tags = secret_tags("client", "abcdefghij" * 4 + "xyz", "prod")
    assert HINT_CHARS == 3
    assert tags == {"client_id": "client", "hint": "abc", "description": "prod"}


def test_expiry_choices_stop_at_a_year():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert MAX_EXPIRY_DAYS == 365
    assert parse_expiry("365", now) == now + timedelta(days=365)
    assert parse_expiry("730", now) is None
    assert parse_expiry("", now) is None


def test_grace_periods_are_the_listed_ones_only():
    assert parse_grace("0") == 0
    assert parse_grace("86400") == 86400
    assert parse_grace("31536000") is None


def test_dates_read_the_same_in_every_locale_in_utc():
    moment = datetime(2026, 3, 4, 5, 6, tzinfo=UTC)
    shown = when(moment.astimezone(timezone(timedelta(hours=2))))
    assert shown.text == "2026-03-04 05:06 UTC"
    assert shown.iso == "2026-03-04T05:06:00+00:00"


class Immediate:
    """An executor that runs what it is given at once (so tests see the write)."""

    def submit(self, fn: Any, *args: Any) -> None:
        fn(*args)


def test_last_use_is_written_at_most_once_per_interval_per_version():
    table = MemoryEntityTable()
    clock = [1000.0]
    usage = SecretUsage(table, interval=300, clock=lambda: clock[0], executor=Immediate())  # type: ignore[arg-type]
    writes = []
    original = table.upsert
    table.upsert = lambda entity: writes.append(entity) or original(entity)  # type: ignore[method-assign]
    for _ in range(50):
        usage.record("c1", "v1")
    clock[0] += 299
    usage.record("c1", "v1")
    assert len(writes) == 1
    clock[0] += 2
    usage.record("c1", "v1")
    usage.record("c1", "v2")
    assert len(writes) == 3
    assert set(usage.last_used("c1")) == {"v1", "v2"}
    assert writes[0].partition_key == USED_PARTITION


def test_a_failed_last_use_write_never_reaches_the_caller():
    class Broken(MemoryEntityTable):
        def upsert(self, entity: Any) -> Any:
            raise OSError("table down")

    SecretUsage(Broken(), executor=Immediate()).record("c1", "v1")  # type: ignore[arg-type]


def test_the_versions_tracked_for_last_use_are_bounded():
    usage = SecretUsage(MemoryEntityTable(), executor=Immediate())  # type: ignore[arg-type]
    for index in range(MAX_TRACKED + 10):
        usage.record("c", f"v{index}")
    assert len(usage._written) == MAX_TRACKED


# -- signing keys -----------------------------------------------------------------------------


def test_the_consoles_rotation_delays_are_the_ops_clis_defaults():
    settings = Settings(cache_ttl_seconds=45, token_lifetime_seconds=600)
    assert signing.activate_in_seconds(settings) == default_activate_in_seconds(settings)
    assert signing.retire_after_seconds(settings) == default_retire_after_seconds(settings)


# -- the Patients app view --------------------------------------------------------------------


class RecordingHttp:
    """Answers the metadata with a token URL; records every call (and any secret sent)."""

    def __init__(self, token_url: str) -> None:
        self.token_url = token_url
        self.calls: list[tuple[str, str, Any]] = []

    def call(self, method: str, url: str, **kwargs: Any) -> tuple[FhirCall, Any]:
        self.calls.append((method, url, kwargs.get("data")))
        if url.endswith("/metadata"):
            statement = {
                "resourceType": "CapabilityStatement",
                "rest": [
                    {
                        "security": {
                            "extension": [
                                {
                                    "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                                    "extension": [{"url": "token", "valueUri": self.token_url}],
                                }
                            ]
                        }
                    }
                ],
            }
            return FhirCall(method, url, 200, 1.0), statement
        return FhirCall(method, url, 200, 1.0), {
            "access_token": "t",
            "token_type": "Bearer",
            "expires_in": 900,
        }


def view(http: RecordingHttp) -> AppView:
    return AppView(Settings(), None, None, None, http=http)  # type: ignore[arg-type]


def test_a_token_url_on_another_origin_gets_no_secret():
    from shared.console.appview import Failed, Run
    from shared.fhir.versions import FhirVersion

    http = RecordingHttp("https://evil.example/api/oauth2/token")
    values = {"tenant": "t", "client": "c"}
    with pytest.raises(Failed, match="another origin"):
        view(http)._token(Run(), "https://bridge.test", FhirVersion.STU3, values, "s3cret", ("k",))
    assert [c[0] for c in http.calls] == ["GET"]  # the metadata only


def test_a_token_url_on_the_apps_own_origin_gets_the_secret_once_then_the_wallet_answers():
    from shared.console.appview import Run
    from shared.fhir.versions import FhirVersion

    http = RecordingHttp("https://bridge.test/api/oauth2/token")
    app = view(http)
    values = {"tenant": "t", "client": "c"}
    assert (
        app._token(Run(), "https://bridge.test", FhirVersion.STU3, values, "s3cret", ("k",)) == "t"
    )
    assert app._token(Run(), "https://bridge.test", FhirVersion.STU3, values, "", ("k",)) == "t"
    assert [c[0] for c in http.calls] == ["GET", "POST", "GET"]


def test_the_wallet_forgets_tokens_a_minute_before_they_expire_and_is_bounded():
    clock = [0.0]
    wallet = Wallet(clock=lambda: clock[0])
    wallet.put(("a",), "token", 900)
    clock[0] = 839
    assert wallet.get(("a",)) == "token"
    clock[0] = 841
    assert wallet.get(("a",)) is None


def test_a_patient_without_an_mrn_or_birth_date_is_reported_missing_them():
    patient = {"name": [{"family": "Black", "given": ["Ruth"]}], "gender": "female"}
    assert patient_missing(patient) == ["birthDate", "an MRN (identifier with type code MR)"]


def test_the_platforms_auth_marker_is_read_as_app_service_sets_it():
    assert detect({"WEBSITE_AUTH_ENABLED": "True"}).platform_auth is True
    assert detect({"WEBSITE_AUTH_ENABLED": "false"}).platform_auth is False
    assert detect({}).platform_auth is False
