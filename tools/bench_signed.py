"""``make bench``, signed credentials: the cost of ``private_key_jwt`` and of Entra ID tokens.

- client assertions signed per second, in-process, RS384 and ES384 (``shared/proxy/assertions``);
- provider tokens fetched per second through ``ProviderAuth`` from the fake provider on loopback,
  ``client_credentials`` (a secret) next to ``private_key_jwt`` (our assertion, which the fake
  checks with joserfc against our JWKS served over HTTP; it runs in this process, so its check
  is in the figure too), each fetch a full one (no cached token);
- Entra ID app-only tokens verified per second, in-process, against the local stand-in: a token
  seen for the first time (signature and claims; keys already fetched) and one seen before (the
  digest cache, then the per-request checks).

Loopback only; figures, never verdicts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tools.bench import BenchFixture

ASSERTION_ALGORITHMS = ("RS384", "ES384")
CLIENT_ID = "ehr-bridge-bench"
SECRET = "bench-provider-secret-" + "s" * 16
AUDIENCE = "4f6b7c8d-1111-4222-8333-444455556666"
TOKEN_URL = "https://ehr.bench.example/oauth2/token"


def _rate(call: Callable[[], None], requests: int, budget_s: float) -> dict[str, float]:
    from tools.bench import _timed_loop

    return _timed_loop(call, requests, budget_s)


def measure_assertions(
    algorithm: str, *, requests: int = 2_000, budget_s: float = 2.0
) -> dict[str, Any]:
    """Client assertions signed per second with a key of ``algorithm``."""
    from shared.auth.signing_keys import SigningKeys, ensure_signing_key
    from shared.ids import ASSERTION_KEY_NAME
    from shared.proxy.assertions import client_assertion
    from shared.secret_store import LocalSecretStore

    store = LocalSecretStore(None)
    ensure_signing_key(store, algorithm, secret_name=ASSERTION_KEY_NAME)
    key = SigningKeys(store, algorithm, 60, secret_name=ASSERTION_KEY_NAME).current()

    def sign() -> None:
        client_assertion(key, client_id=CLIENT_ID, token_url=TOKEN_URL, now=time.time())

    return {"algorithm": algorithm, **_rate(sign, requests, budget_s)}


@contextlib.contextmanager
def _provider(algorithm: str) -> Iterator[tuple[Any, Any, Any]]:
    """A fake provider that takes our secret and our assertions, and a ProviderAuth for it."""
    from shared.auth.jwks import jwks_response
    from shared.auth.signing_keys import SigningKeys, ensure_signing_key
    from shared.ids import ASSERTION_KEY_NAME
    from shared.net.addresses import AddressPolicy
    from shared.proxy.provider_auth import ProviderAuth
    from shared.secret_store import LocalSecretStore
    from tools.testkit.fake_fhir import running_fake_fhir
    from tools.testkit.served import serving

    store = LocalSecretStore(None)
    ensure_signing_key(store, algorithm, secret_name=ASSERTION_KEY_NAME)
    keys = SigningKeys(store, algorithm, 60, secret_name=ASSERTION_KEY_NAME)
    with (
        running_fake_fhir(require_bearer=True) as fhir,
        serving({"/jwks": lambda: jwks_response(keys)}) as served,
    ):
        fhir.issue_tokens(CLIENT_ID, SECRET)
        fhir.require_assertion(CLIENT_ID, served.url("/jwks"), algorithms=(algorithm,))
        auth = ProviderAuth(
            store, address_policy=AddressPolicy(allow_local=True), assertion_keys=keys
        )
        try:
            yield fhir, auth, store
        finally:
            auth.close()


def measure_provider_tokens(
    kind: str, algorithm: str = "RS384", *, requests: int = 300, budget_s: float = 3.0
) -> dict[str, Any]:
    """Provider tokens fetched per second for ``kind`` (every call a full fetch)."""
    from shared.ids import provider_secret_name
    from shared.tenants import TenantMapping

    with _provider(algorithm) as (fhir, auth, store):
        mapping = TenantMapping(
            tenant_id=str(uuid.uuid4()),
            provider_base_url=fhir.base_url,
            provider_fhir_version="r4",
            provider_auth_kind=kind,
            provider_token_url=fhir.token_url,
            provider_client_id=CLIENT_ID,
        )
        store.set_secret(provider_secret_name(mapping.tenant_id), SECRET)

        def fetch() -> None:
            auth.headers_for(mapping, force_refresh=True)

        fetch()  # the provider fetches our JWKS once; the session connects once
        return {"kind": kind, "algorithm": algorithm, **_rate(fetch, requests, budget_s)}


def measure_entra_verification(
    fixture: BenchFixture, *, requests: int = 2_000, budget_s: float = 2.0
) -> dict[str, Any]:
    """Entra app tokens verified per second: each one new, and one token over and over."""
    from shared.services import Services
    from shared.tenants import TenantMapping
    from tools.testkit.entra import running_entra
    from tools.testkit.inbound import fhir_request

    with running_entra() as entra:
        settings = dataclasses.replace(
            fixture.settings("RS256"),
            entra_audience=AUDIENCE,
            entra_authority=entra.authority,
            entra_ca_bundle=entra.ca_path,
            allow_insecure_provider_urls=True,
        )
        services = Services(settings)
        tenant_id, app_id = entra.add_tenant(), str(uuid.uuid4())
        services.tenants.put(
            TenantMapping(
                tenant_id=tenant_id,
                provider_base_url="https://fhir.bench.example/r4",
                provider_fhir_version="r4",
                entra_app_ids=(app_id,),
            )
        )
        verifier = services.verifier
        count = max(5, requests)
        tokens = iter([entra.token(tenant_id, app_id, AUDIENCE) for _ in range(count + 1)])
        verifier.verify(fhir_request("GET", "Patient", next(tokens)))  # fetches the keys once

        def first_time() -> None:
            verifier.verify(fhir_request("GET", "Patient", next(tokens)))

        fresh = _rate(first_time, count, budget_s)
        same = entra.token(tenant_id, app_id, AUDIENCE)
        request = fhir_request("GET", "Patient", same)
        verifier.verify(request)

        def again() -> None:
            verifier.verify(request)

        cached = _rate(again, requests, budget_s)
        return {"first_seen": fresh, "seen_before": cached}


def print_signed(
    assertions: list[dict[str, Any]],
    provider_tokens: list[dict[str, Any]],
    entra: dict[str, Any],
) -> None:
    """The figures as tables."""
    from tools.bench import _table

    print("Signed credentials (loopback, single thread)")
    rows = [
        (
            f"assertion signed, {result['algorithm']}",
            "in-process",
            f"{result['tokens_per_s']:.0f}/s",
            f"{result['p50_ms']:.2f} ms",
            f"{result['p99_ms']:.2f} ms",
        )
        for result in assertions
    ]
    rows += [
        (
            f"provider token, {result['kind']}"
            + (f" ({result['algorithm']})" if result["kind"] == "private_key_jwt" else ""),
            "HTTP fake provider",
            f"{result['tokens_per_s']:.0f}/s",
            f"{result['p50_ms']:.2f} ms",
            f"{result['p99_ms']:.2f} ms",
        )
        for result in provider_tokens
    ]
    for label, result in (
        ("Entra app token verified, first seen", entra["first_seen"]),
        ("Entra app token verified, seen before", entra["seen_before"]),
    ):
        rows.append(
            (
                label,
                "in-process",
                f"{result['tokens_per_s']:.0f}/s",
                f"{result['p50_ms']:.2f} ms",
                f"{result['p99_ms']:.2f} ms",
            )
        )
    print(_table(("what", "path", "rate", "p50", "p99"), rows))
    print(
        "  provider tokens: the fake provider checks each assertion (joserfc) in this process, "
        "so its work is in the figure"
    )
