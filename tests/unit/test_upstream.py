"""Upstream: the one way a proxied request calls its provider, drawing on the request's budget."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from shared.fhir.errors import InvalidRequest, UpstreamTimeout
from shared.fhir.paths import parse_fhir_path
from shared.http import Headers
from shared.proxy.budget import RequestBudget
from shared.proxy.interaction import Interaction, interaction_of
from shared.proxy.model import Exchange, ProviderCall, UpstreamRequest, UpstreamResponse
from shared.proxy.upstream import Upstream
from shared.tenants import TenantMapping

BASE = "https://fhir.example.org/r4"
TENANT = TenantMapping("11111111-2222-4333-8444-555555555555", BASE, "r4")


class RecordingTransport:
    """Answers every call with ``status``; records what it was asked."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.calls: list[dict[str, Any]] = []

    def send(
        self,
        tenant: TenantMapping,
        method: str,
        url: str,
        headers: Headers,
        body: bytes,
        *,
        idempotent: bool,
        deadline: float | None = None,
    ) -> UpstreamResponse:
        self.calls.append(
            {"method": method, "url": url, "idempotent": idempotent, "deadline": deadline}
        )
        return UpstreamResponse(self.status, Headers(), b"{}")


def upstream(calls: int = 10, seconds: float = 60, status: int = 200) -> Any:
    transport = RecordingTransport(status)
    budget = RequestBudget(calls, seconds)
    exchange = Exchange("req-1", "r4", "GET")
    return Upstream(transport, TENANT, budget, exchange), transport, budget, exchange


def test_a_call_is_built_under_the_provider_base_and_validated_again() -> None:
    way, _, _, _ = upstream()
    headers = Headers({"Accept": "application/fhir+json"})
    call = way.call(UpstreamRequest("GET", "Observation", "patient=1", headers))
    assert call == ProviderCall("GET", f"{BASE}/Observation?patient=1", headers, b"", True)
    with pytest.raises(InvalidRequest):
        way.call(UpstreamRequest("GET", "../admin"))


def test_the_answer_carries_the_requests_deadline_and_is_recorded() -> None:
    way, transport, budget, exchange = upstream(status=404)
    way.answer(way.call(UpstreamRequest("POST", "Patient", "", Headers()), idempotent=False))
    assert transport.calls == [
        {
            "method": "POST",
            "url": f"{BASE}/Patient",
            "idempotent": False,
            "deadline": budget.deadline,
        }
    ]
    assert exchange.provider_status == 404


def test_the_answer_is_refused_once_the_budget_is_spent() -> None:
    way, transport, _, _ = upstream(calls=1)
    call = way.call(UpstreamRequest("GET", "Patient/1"))
    way.answer(call)
    with pytest.raises(InvalidRequest) as refused:
        way.answer(call)
    assert refused.value.code == "too-costly"
    assert len(transport.calls) == 1


def test_no_answer_is_asked_for_past_the_deadline() -> None:
    way, transport, _, _ = upstream(seconds=0)
    with pytest.raises(UpstreamTimeout):
        way.answer(way.call(UpstreamRequest("GET", "Patient/1")))
    assert transport.calls == []


def test_extra_pages_stop_quietly_and_leave_reserved_answers_alone() -> None:
    way, transport, _, exchange = upstream(calls=3)
    way.reserve_answers(2)
    call = ProviderCall("GET", f"{BASE}?_getpages=abc", Headers())
    assert way.extra_page(call) is not None  # the one call nobody reserved
    assert way.extra_page(call) is None
    assert exchange.provider_status == 200
    way.answer(way.call(UpstreamRequest("GET", "Patient/1")))
    way.answer(way.call(UpstreamRequest("GET", "Patient/2")))
    assert len(transport.calls) == 3


def test_lookups_make_the_first_calls_the_budget_allows_and_are_not_recorded() -> None:
    way, transport, _, exchange = upstream(calls=3, status=404)
    calls = [way.call(UpstreamRequest("GET", f"Location/{n}")) for n in range(5)]
    with ThreadPoolExecutor(2) as pool:
        answers = way.lookups(calls, pool)
        assert way.lookups(calls, pool) == []
    assert len(answers) == 3
    assert sorted(c["url"] for c in transport.calls) == [f"{BASE}/Location/{n}" for n in range(3)]
    assert exchange.provider_status is None


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "Patient/1", Interaction.READ),
        ("GET", "Observation", Interaction.SEARCH),
        ("GET", "Patient/1/_history", Interaction.HISTORY),
        ("POST", "Patient/_search", Interaction.SEARCH),
        ("POST", "", Interaction.BATCH),
        ("POST", "Patient", Interaction.WRITE),
        ("PUT", "Patient/1", Interaction.WRITE),
        ("PATCH", "Patient/1", Interaction.WRITE),
        ("DELETE", "Patient/1", Interaction.WRITE),
    ],
)
def test_the_interaction_comes_from_the_method_and_the_paths_shape(
    method: str, path: str, expected: Interaction
) -> None:
    parsed = parse_fhir_path(path, allowed_types=frozenset({"Patient", "Observation"}))
    assert interaction_of(method, parsed) is expected
    assert f"{expected}" == expected.value  # the audit event's spelling
