"""``make bench``: tokens per second with ``private_key_jwt`` beside ``client_secret_post``.

The same seeded client and tenant as the secret figure (``bench_fixture``), given an inline
public key; the assertions are signed before the clock starts (signing is the client's cost),
so a figure is what the token endpoint spends: parse, look up the key, verify the signature,
write the jti to the shared replay cache in Table Storage (Azurite here), sign the token.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tools.bench import BenchFixture

CLIENT_ALGORITHMS = ("RS384", "ES384")


def measure_private_key_jwt(
    fixture: BenchFixture,
    token_algorithm: str,
    client_algorithm: str,
    *,
    requests: int = 600,
    budget_s: float = 3.0,
) -> dict[str, Any]:
    """Single-threaded token requests authenticated with ``private_key_jwt``: tokens/s, p50/p99."""
    from shared.auth.client_keys import validate_inline_jwks
    from shared.services import Services
    from tools.bench import WARMUP, _timed_loop
    from tools.testkit.backend_client import BackendKey
    from tools.testkit.inbound import form_request

    services = Services(fixture.settings(token_algorithm))
    key = BackendKey(client_algorithm)
    services.clients.set_keys(fixture.client_id, "", validate_inline_jwks(json.dumps(key.jwks())))
    audience = "https://bridge.test/api/oauth2/token"  # form_request's URL
    grant = {"grant_type": "client_credentials", "scope": fixture.tenant_id}
    total = requests + WARMUP
    bodies = iter([{**grant, **key.form(fixture.client_id, audience)} for _ in range(total)])
    endpoint = services.token_endpoint

    def one() -> None:
        response = endpoint.handle(form_request(next(bodies)))
        if response.status != 200:
            raise RuntimeError(f"token request answered {response.status}: {response.body!r}")

    try:
        for _ in range(min(WARMUP, requests)):
            one()
        figures = _timed_loop(one, requests, budget_s)
    finally:
        services.clients.set_keys(fixture.client_id, "", "")
    return {"algorithm": token_algorithm, "client_algorithm": client_algorithm, **figures}
