"""The one way a proxied request calls its provider.

Every provider call a request makes — its answer, the extra pages read to sort by date for a
provider that cannot, the reads that fill in displays — goes through the request's
``Upstream``: the URL is built under the tenant's provider base, the call draws on the request's
budget (``shared/proxy/budget.py``) and waits no longer than its deadline, and the status of
the calls that make the caller's answer is recorded for the audit. What differs between calls
is only what they draw on the budget:

- ``answer``: the answer itself; when the budget is spent the request is refused (400
  ``too-costly``, or 504 once the time is up);
- ``extra_page``: another page of the answer, made only while the budget allows;
- ``lookups``: reads that fill in displays, as many as the budget allows, in parallel; their
  statuses are not the answer's.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor

from shared.fhir.paths import ALLOWED_TYPES, FhirPath, parse_fhir_path, upstream_url
from shared.proxy.budget import RequestBudget
from shared.proxy.model import Exchange, ProviderCall, UpstreamRequest, UpstreamResponse
from shared.proxy.transport import ProviderTransport
from shared.telemetry.provider import provider_call
from shared.telemetry.tracing import in_this_trace
from shared.tenants import TenantMapping

_ALL_TYPES = frozenset().union(*ALLOWED_TYPES.values())


class Upstream:
    """One request's calls to its tenant's provider; thread-safe (batch entries share it)."""

    __slots__ = ("_budget", "_exchange", "_tenant", "_transport")

    def __init__(
        self,
        transport: ProviderTransport,
        tenant: TenantMapping,
        budget: RequestBudget,
        exchange: Exchange,
    ) -> None:
        self._transport = transport
        self._tenant = tenant
        self._budget = budget
        self._exchange = exchange

    def reserve_answers(self, count: int) -> None:
        """Keep a call for each of ``count`` answers still to come (a batch the proxy runs),
        so that the extra pages and lookups of early entries cannot spend them."""
        self._budget.reserve(count)

    def call(self, request: UpstreamRequest, *, idempotent: bool = True) -> ProviderCall:
        """The call for a request relative to the provider's base (its path validated again)."""
        url = upstream_url(
            self._tenant.provider_base_url, _relative_path(request.path), request.query
        )
        return ProviderCall(request.method, url, request.headers, request.body, idempotent)

    def answer(self, call: ProviderCall) -> UpstreamResponse:
        """The call the caller's answer is made from: 400 too-costly or 504 when spent."""
        self._budget.take()
        return self._recorded(self._send(call))

    def extra_page(self, call: ProviderCall) -> UpstreamResponse | None:
        """Another page of the answer while the budget allows; None once it is spent."""
        if not self._budget.try_take():
            return None
        return self._recorded(self._send(call))

    def lookups(self, calls: Sequence[ProviderCall], pool: Executor) -> list[UpstreamResponse]:
        """The answers to the first of ``calls`` the budget allows (all of them, or fewer),
        made in parallel on ``pool``; the first error raised ends them."""
        granted = calls[: self._budget.take_up_to(len(calls))]
        if len(granted) == 1:
            return [self._send(granted[0])]
        return list(pool.map(in_this_trace(self._send), granted))

    def _send(self, call: ProviderCall) -> UpstreamResponse:
        # A client span whose traceparent goes upstream, so the provider's tracing joins ours.
        with provider_call(self._tenant.tenant_id, call.method) as traced:
            answer = self._transport.send(
                self._tenant,
                call.method,
                call.url,
                traced.headers(call.headers),
                call.body,
                idempotent=call.idempotent,
                deadline=self._budget.deadline,
            )
            traced.answered(answer.status)
            return answer

    def _recorded(self, answer: UpstreamResponse) -> UpstreamResponse:
        self._exchange.provider_status = answer.status
        return answer


def _relative_path(path: str) -> FhirPath:
    # Converters hand back a relative path string; it is validated again before use.
    return parse_fhir_path(path, allowed_types=_ALL_TYPES)
