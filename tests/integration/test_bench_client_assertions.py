"""``make bench``'s private_key_jwt figure keeps working (shape only, no timings asserted)."""

from __future__ import annotations

from tools import bench
from tools.bench_client_assertions import CLIENT_ALGORITHMS, measure_private_key_jwt


def test_private_key_jwt_token_rates_are_measured_for_each_client_algorithm(azurite: str) -> None:
    with bench.bench_fixture(azurite) as fixture:
        for client_algorithm in CLIENT_ALGORITHMS:
            result = measure_private_key_jwt(fixture, "RS256", client_algorithm, requests=5)
            assert result["client_algorithm"] == client_algorithm
            assert result["requests"] == 5
            assert result["tokens_per_s"] > 0
