"""The proxy pipeline: one request from the Patients app to its tenant's provider and back."""

from __future__ import annotations

import functools
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from shared.audit import audit
from shared.auth.smart_scopes import ScopeGrant
from shared.fhir import json_mime_type
from shared.fhir.errors import (
    FhirError,
    Forbidden,
    InvalidRequest,
    MethodNotAllowed,
    NotConvertible,
    NotFound,
    RateLimited,
    TooLarge,
    Unavailable,
    UpstreamError,
)
from shared.fhir.media import check_content_negotiation, is_json_patch, request_id
from shared.fhir.outcome import operation_outcome, outcome_response
from shared.fhir.paths import (
    ALLOWED_TYPES,
    FhirPath,
    face_relative_path,
    parse_fhir_path,
    parse_form_body,
    validate_query,
)
from shared.http import Headers, Request, Response, public_origin
from shared.lookups import Lookups
from shared.proxy import answer as answer_steps
from shared.proxy import compensate, scope_check
from shared.proxy.batch import BatchEntry, EntryResult, load_json, parse_batch, run_entries
from shared.proxy.bearer import BearerVerifier
from shared.proxy.budget import RequestBudget
from shared.proxy.capabilities import Capabilities, effective
from shared.proxy.conversion import FhirVersionConverter, VersionConverter
from shared.proxy.enrich import Enricher, read_batch, read_batch_results
from shared.proxy.headers import upstream_request_headers
from shared.proxy.interaction import Interaction, interaction_of
from shared.proxy.model import (
    Caller,
    Exchange,
    ProviderCall,
    UpstreamRequest,
    UpstreamResponse,
)
from shared.proxy.provider_auth import ProviderAuthError
from shared.proxy.transport import ProviderTransport
from shared.proxy.upstream import Upstream
from shared.ratelimit import RequestRates
from shared.routes import face_base_url
from shared.secret_store import SecretStoreUnavailable
from shared.settings import FACES, Settings
from shared.tables import StoreUnavailable
from shared.telemetry import tracing
from shared.tenants import TenantMapping

log = logging.getLogger(__name__)

MAX_URL_BYTES = 4096
FORM_TYPE = "application/x-www-form-urlencoded"
# A provider that refuses an interaction answers one of these; then we compensate.
REFUSED = frozenset({404, 405, 501})
_TENANT_HEADERS = ("X-Tenant-Id", "X-Ms-Tenant-Id", "X-Tenant")
_TENANT_PARAMS = frozenset({"tenant", "tenant_id", "tenantid", "tid"})
_SORT_PARAMS = frozenset({"_sort", "_count"})
_PAGE_SIZE = 100
_ALL_TYPES = frozenset().union(*ALLOWED_TYPES.values())


class FhirProxy:
    """Handles ``ANY fhir/{face}/{*path}``."""

    def __init__(
        self,
        settings: Settings,
        verifier: BearerVerifier,
        lookups: Lookups,
        transport: ProviderTransport,
        *,
        converter: VersionConverter | None = None,
        rates: RequestRates | None = None,
    ) -> None:
        self._settings = settings
        self._verifier = verifier
        self._lookups = lookups
        self._transport = transport
        self._converter = converter or FhirVersionConverter()
        self._rates = rates or RequestRates.from_settings(settings)
        self._batch_pool = ThreadPoolExecutor(
            max_workers=settings.batch_concurrency, thread_name_prefix="batch"
        )
        # Its own pool: enrichment runs inside batch entries, which hold _batch_pool's workers.
        self._enrich_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="enrich")

    def handle(self, request: Request, face: str) -> Response:
        """Answer one FHIR request; never raises, never leaks a provider URL or a token."""
        # Without an X-Request-Id of the caller's, the trace id is the correlation id.
        trace_id = tracing.current_trace_id()
        exchange = Exchange(request_id(request.headers, trace_id), face, request.method)
        try:
            response = self._handle(request, exchange)
        except FhirError as error:
            response = self._outcome(error, exchange)
        except (SecretStoreUnavailable, StoreUnavailable) as error:
            log.warning("proxy dependency unavailable: %s", error)
            retry = str(getattr(error, "retry_after", 5))
            response = self._outcome(
                Unavailable(
                    "a service EHR Bridge depends on is unavailable; retry later",
                    headers={"Retry-After": retry},
                ),
                exchange,
            )
        except ProviderAuthError as error:
            # The provider's own refusal (its OAuth error, sanitized: provider_tokens.py) says
            # which rule failed; nothing else of ours (secret names, addresses) reaches the caller.
            said = f"; the provider said {error.refusal}" if error.refusal else ""
            log.warning(
                "ALERT provider credentials refused for tenant %s: %s%s",
                exchange.caller.tenant_id if exchange.caller else "?",
                type(error).__name__,
                said,
            )
            response = self._outcome(
                UpstreamError(
                    f"EHR Bridge could not authenticate to the provider FHIR server{said} "
                    f"(correlation id {exchange.request_id})"
                ),
                exchange,
            )
        except Exception:
            # A bug of ours: logged with its trace here, never sent to the caller.
            log.exception("proxy failed (request id %s)", exchange.request_id)
            response = self._outcome(
                FhirError(
                    f"internal error (correlation id {exchange.request_id})",
                    status=500,
                    code="exception",
                ),
                exchange,
            )
        response.headers.set("X-Request-Id", exchange.request_id)
        self._audit(exchange, response.status)
        return response

    # -- pipeline ------------------------------------------------------------------------------

    def _handle(self, request: Request, exchange: Exchange) -> Response:
        settings = self._settings
        # From the request's start: its deadline counts the time spent verifying it too.
        budget = RequestBudget(settings.request_upstream_calls, settings.request_deadline_seconds)
        face = exchange.face
        if face not in FACES:
            raise NotFound("unknown FHIR endpoint; use dstu2, stu3 or r4")
        if len(request.url.encode("utf-8")) > MAX_URL_BYTES:
            raise TooLarge("the URL is longer than 4 KB", status=414)
        if len(request.body) > settings.max_request_body_bytes:
            raise TooLarge(f"the body is larger than {settings.max_request_body_bytes} bytes")
        with tracing.span("bearer.verify"):
            caller = self._verifier.verify(request)
        exchange.caller = caller
        with tracing.span("tenant.lookup", tenant=caller.tenant_id):
            tenant = self._lookups.tenant(caller.tenant_id)
        if tenant is None:  # unmapped between verification and now: fail closed
            raise Forbidden("tenant is not mapped")
        self._check_rates(caller)
        query = request.query  # parsed once: the tenant hints and the audit read it
        self._check_tenant_hints(request.headers, query, caller)
        path = parse_fhir_path(
            face_relative_path(request.path, face), allowed_types=ALLOWED_TYPES[face]
        )
        validate_query(request.raw_query)
        interaction = interaction_of(request.method, path)
        writes = interaction is Interaction.WRITE
        if writes and not tenant.allow_writes:
            # The method is refused before its body is judged: 405 with Allow, whatever the
            # media type (docs/architecture.md §2).
            raise MethodNotAllowed(
                "EHR Bridge is read-only for this tenant", headers={"Allow": "GET, POST"}
            )
        scope_check.check(caller.scopes, request.method, path, query)
        check_content_negotiation(request.headers, request.method, json_patch=writes)
        exchange.resource_type, exchange.resource_id = path.resource_type, path.resource_id
        context = self._context(request, query, exchange, tenant, path, budget)
        if request.method == "GET":
            return self._get(context, path, interaction)
        if interaction is Interaction.SEARCH:
            return self._post_search(context, path)
        if interaction is Interaction.BATCH:
            return self._batch(context)
        return self._write(context, path)

    def _context(
        self,
        request: Request,
        query: list[tuple[str, str]],
        exchange: Exchange,
        tenant: TenantMapping,
        path: FhirPath,
        budget: RequestBudget,
    ) -> _Context:
        """What the interaction works with: the tenant, its provider's capabilities, the
        face's base URL, and the request's way to the provider with its budget."""
        settings = self._settings
        origin = public_origin(request, settings.public_base_url, settings.trust_forwarded_headers)
        context = _Context(
            tenant=tenant,
            caps=effective(tenant.detected_capabilities, tenant.capabilities),
            face=exchange.face,
            face_base=face_base_url(origin, exchange.face),
            exchange=exchange,
            request=request,
            query=query,
            upstream=Upstream(self._transport, tenant, budget, exchange),
        )
        context.enricher = Enricher(
            functools.partial(self._read_references, context),
            total_required=path.resource_type == "Patient" and path.interaction != "instance",
        )
        return context

    def _check_rates(self, caller: Caller) -> None:
        for limiter, key, what in (
            (self._rates.tenant, caller.tenant_id, "tenant"),
            (self._rates.client, caller.client_id, "client"),
        ):
            wait = limiter.acquire(key)
            if wait is not None:
                raise RateLimited(
                    f"too many requests for this {what}; retry later",
                    headers={"Retry-After": str(wait)},
                )

    @classmethod
    def _check_tenant_hints(
        cls, headers: Headers, query: list[tuple[str, str]], caller: Caller
    ) -> None:
        # The tenant comes from the token only; a different one named anywhere is refused
        # without saying whether it exists (RFC 9700 §2.3).
        for name in _TENANT_HEADERS:
            for hint in headers.get_all(name):
                if hint.strip().lower() != caller.tenant_id:
                    raise Forbidden("the request names a tenant other than the token's")
        cls._check_tenant_params(query, caller)

    @staticmethod
    def _check_tenant_params(pairs: list[tuple[str, str]], caller: Caller | None) -> None:
        """A tenant parameter naming another tenant, in a query, form body or batch entry."""
        for name, hint in pairs:
            if name.lower() in _TENANT_PARAMS and (
                caller is None or hint.strip().lower() != caller.tenant_id
            ):
                raise Forbidden("the request names a tenant other than the token's")

    @staticmethod
    def _scopes(ctx: _Context) -> ScopeGrant:
        caller = ctx.exchange.caller
        # Set before any context exists (verification comes first); nothing without it.
        return caller.scopes if caller is not None else ScopeGrant()

    # -- interactions --------------------------------------------------------------------------

    def _get(self, ctx: _Context, path: FhirPath, interaction: Interaction) -> Response:
        """A read, search or history GET of the caller's: recorded, then answered."""
        if path.interaction == "base":
            raise MethodNotAllowed("GET on the base is not supported", headers={"Allow": "POST"})
        if path.interaction == "search-post":
            raise MethodNotAllowed("use POST for _search", headers={"Allow": "POST"})
        ctx.exchange.interaction = interaction
        self._note_patients(ctx.exchange, path, ctx.query)
        return self._read_or_search(ctx, path, ctx.request.raw_query)

    def _read_or_search(self, ctx: _Context, path: FhirPath, raw_query: str) -> Response:
        """A read or search of the face's, answered by the provider (the caller's GET, a POST
        _search the provider does not take, or one entry of a batch the proxy runs)."""
        if (
            path.interaction == "type"
            and not ctx.caps.sort_by_date
            and compensate.wants_date_sort(raw_query)
        ):
            return self._sorted_search(ctx, path, raw_query)
        request = UpstreamRequest("GET", path.relative, raw_query, self._headers(ctx))
        return self._respond(ctx, ctx.upstream.answer(self._call(ctx, request)))

    def _post_search(self, ctx: _Context, path: FhirPath) -> Response:
        ctx.exchange.interaction = Interaction.SEARCH
        media_type = (ctx.request.header("Content-Type") or "").split(";")[0].strip().lower()
        if ctx.request.body and media_type != FORM_TYPE:
            raise InvalidRequest("POST _search takes an application/x-www-form-urlencoded body")
        form = parse_form_body(ctx.request.body)
        # A form body is a query string in another place: the same rules apply to it.
        self._check_tenant_params(form, ctx.exchange.caller)
        scope_check.check_includes(self._scopes(ctx), form)
        query_names = {name for name, _ in ctx.query}
        if query_names & {name for name, _ in form}:
            raise InvalidRequest("a search parameter is in both the URL and the body")
        combined = compensate.form_as_query(ctx.request.raw_query, ctx.request.body)
        self._note_patients(ctx.exchange, path, _pairs(combined))
        if ctx.caps.post_search:
            headers = self._headers(ctx)
            headers.set("Content-Type", FORM_TYPE)
            request = UpstreamRequest(
                "POST", path.relative, ctx.request.raw_query, headers, ctx.request.body
            )
            answer = ctx.upstream.answer(self._call(ctx, request))
            if answer.status not in REFUSED:
                return self._respond(ctx, answer)
        # The provider does not take POST _search: the same search as a GET.
        search = FhirPath((path.resource_type or "",), path.resource_type, None, "type")
        return self._read_or_search(ctx, search, combined)

    def _batch(self, ctx: _Context) -> Response:
        ctx.exchange.interaction = Interaction.BATCH
        batch = parse_batch(
            ctx.request.body,
            allowed_types=ALLOWED_TYPES[ctx.face],
            max_entries=self._settings.batch_max_entries,
        )
        ctx.exchange.entries = len(batch.entries)
        for entry in batch.entries:
            # Parameters in a batch entry follow the rules of the request's own query.
            pairs = _pairs(entry.query)
            self._check_tenant_params(pairs, ctx.exchange.caller)
            scope_check.check_entry(self._scopes(ctx), entry.index, entry.path, pairs)
            self._note_patients(ctx.exchange, entry.path, pairs)
        if ctx.caps.batch:
            headers = self._headers(ctx)
            headers.set(
                "Content-Type", ctx.request.header("Content-Type") or json_mime_type(ctx.face)
            )
            # A batch of reads changes nothing, so it may be retried like a read.
            request = UpstreamRequest("POST", "", "", headers, batch.body)
            answer = ctx.upstream.answer(self._call(ctx, request))
            if answer.status not in REFUSED:
                return self._respond(ctx, answer)
        return self._run_batch(ctx, batch.entries)

    def _run_batch(self, ctx: _Context, entries: list[BatchEntry]) -> Response:
        """The entries run by the proxy, a few at once, answered as one batch-response."""
        ctx.upstream.reserve_answers(len(entries))
        entry = tracing.in_this_trace(functools.partial(self._run_entry, ctx))
        bundle = run_entries(entries, entry, self._batch_pool)
        body = json.dumps(bundle, separators=(",", ":")).encode("utf-8")
        headers = Headers({"Content-Type": f"{json_mime_type(ctx.face)}; charset=utf-8"})
        # Each entry was checked, converted and enriched on its own way back: not again.
        ours = UpstreamResponse(200, headers, body)
        return self._rewritten(ctx, answer_steps.downstream(ours, ctx.face))

    def _run_entry(self, ctx: _Context, entry: BatchEntry) -> EntryResult:
        try:
            response = self._read_or_search(ctx, entry.path, entry.query)
        except FhirError as error:
            outcome = operation_outcome("error", error.code, error.diagnostics, ctx.face)
            return EntryResult(error.status, outcome)
        resource = json.loads(response.body) if response.body else None
        return EntryResult(
            response.status,
            resource,
            location=response.headers.get("Location"),
            etag=response.headers.get("ETag"),
        )

    def _write(self, ctx: _Context, path: FhirPath) -> Response:
        # Only reached when the tenant's mapping allows writes (checked in _handle).
        ctx.exchange.interaction = Interaction.WRITE
        headers = self._headers(ctx)
        content_type = ctx.request.header("Content-Type")
        if is_json_patch(content_type) and ctx.face != ctx.tenant.provider_fhir_version:
            # Patch paths name elements of one FHIR version; they cannot be translated.
            raise NotConvertible("a JSON Patch cannot be converted between FHIR versions")
        if content_type:
            headers.set("Content-Type", content_type)
        request = UpstreamRequest(
            ctx.request.method, path.relative, ctx.request.raw_query, headers, ctx.request.body
        )
        return self._respond(ctx, ctx.upstream.answer(self._call(ctx, request, idempotent=False)))

    def _sorted_search(self, ctx: _Context, path: FhirPath, raw_query: str) -> Response:
        """A search sorted by date for a provider that cannot: its matches read page by page,
        up to the cap, and sorted here."""
        cap = self._settings.sort_compensation_cap
        count = compensate.requested_count(raw_query)
        query = compensate.without_params(raw_query, _SORT_PARAMS)
        query = "&".join(p for p in (query, f"_count={min(_PAGE_SIZE, cap)}") if p)
        first = self._call(ctx, UpstreamRequest("GET", path.relative, query, self._headers(ctx)))
        collected: list[dict[str, Any]] = []
        total: int | None = None
        answer = ctx.upstream.answer(first)
        while True:
            if answer.status != 200:
                return self._respond(ctx, answer)
            page = _provider_page(answer)
            total = page.get("total", total)
            for entry in _page_entries(page):
                search = entry.get("search")
                mode = search.get("mode", "match") if isinstance(search, dict) else "match"
                resource = entry.get("resource")
                if mode == "match" and isinstance(resource, dict):
                    collected.append(resource)
            url = _next_link(page, ctx.tenant.provider_base_url)
            if url is None or len(collected) >= cap:
                break
            # The first page is the answer; the others only improve the order, so they stop
            # quietly when the request's budget is spent (the warning below says so).
            more = ctx.upstream.extra_page(ProviderCall("GET", url, first.headers))
            if more is None:
                break
            answer = more
        truncated = url is not None or len(collected) > cap
        warning = operation_outcome(
            "warning",
            "too-costly",
            "the provider cannot sort by date; EHR Bridge sorted the first "
            f"{min(cap, len(collected))} matches only",
            ctx.tenant.provider_fhir_version,  # converted to the face with the Bundle
        )
        bundle = compensate.sorted_searchset(
            collected[:cap], count=count, truncated=truncated, cap=cap, total=total, outcome=warning
        )
        body = json.dumps(bundle, separators=(",", ":")).encode("utf-8")
        headers = Headers({"Content-Type": json_mime_type(ctx.tenant.provider_fhir_version)})
        # Ours, in the provider's version: converted (and enriched) like a provider's answer.
        sorted_answer = self._in_face(ctx, UpstreamResponse(200, headers, body))
        return self._rewritten(ctx, answer_steps.downstream(sorted_answer, ctx.face))

    # -- calls ---------------------------------------------------------------------------------

    def _headers(self, ctx: _Context) -> Headers:
        return upstream_request_headers(
            ctx.request.headers,
            request_id=ctx.exchange.request_id,
            accept=json_mime_type(ctx.tenant.provider_fhir_version),
        )

    def _call(
        self, ctx: _Context, request: UpstreamRequest, *, idempotent: bool = True
    ) -> ProviderCall:
        """The provider call for a request of the face's: converted to the provider's version."""
        provider = ctx.tenant.provider_fhir_version
        with tracing.span("request.translate", face=ctx.face, provider_version=provider):
            converted = self._converter.request(ctx.face, provider, request)
        return ctx.upstream.call(converted, idempotent=idempotent)

    def _read_references(self, ctx: _Context, references: list[str]) -> dict[str, dict[str, Any]]:
        """The resources behind ``references``: one provider batch of reads, else parallel reads."""
        # Only types the token may read: a display is a piece of the resource it names.
        readable = scope_check.readable(
            self._scopes(ctx), [r for r in references if r.partition("/")[0] in _ALL_TYPES]
        )
        if not readable:
            return {}
        with tracing.span("enrich.read", tenant=ctx.tenant.tenant_id):
            return self._read_readable(ctx, readable)

    def _read_readable(self, ctx: _Context, readable: list[str]) -> dict[str, dict[str, Any]]:
        if ctx.caps.batch:
            answer = self._batch_of_reads(ctx, readable)
            if answer is None:
                return {}  # displays stay missing, and the Enricher's warning says so
            if answer.status == 200:
                return read_batch_results(readable, load_json(answer.body, "the provider's answer"))
            if answer.status not in REFUSED:
                return {}
        headers = self._headers(ctx)
        calls = [ctx.upstream.call(UpstreamRequest("GET", r, "", headers)) for r in readable]
        answers = ctx.upstream.lookups(calls, self._enrich_pool)
        found: dict[str, dict[str, Any]] = {}
        for reference, answer in zip(readable, answers, strict=False):
            resource = (
                load_json(answer.body, "the provider's answer") if answer.status == 200 else None
            )
            if isinstance(resource, dict) and resource:
                found[reference] = resource
        return found

    def _batch_of_reads(self, ctx: _Context, readable: list[str]) -> UpstreamResponse | None:
        """The provider's answer to one batch of reads; None when the budget allows no call."""
        headers = self._headers(ctx)
        headers.set("Content-Type", json_mime_type(ctx.tenant.provider_fhir_version))
        body = json.dumps(read_batch(readable)).encode("utf-8")
        call = ctx.upstream.call(UpstreamRequest("POST", "", "", headers, body))
        answers = ctx.upstream.lookups([call], self._enrich_pool)
        return answers[0] if answers else None

    # -- the answer, step by step --------------------------------------------------------------

    def _respond(self, ctx: _Context, answer: UpstreamResponse) -> Response:
        """The provider's answer as the caller gets it."""
        checked = answer_steps.accepted(
            answer, tenant_id=ctx.tenant.tenant_id, request_id=ctx.exchange.request_id
        )
        return self._rewritten(ctx, answer_steps.downstream(self._in_face(ctx, checked), ctx.face))

    def _in_face(self, ctx: _Context, answer: UpstreamResponse) -> UpstreamResponse:
        """The answer in the face's FHIR version, with displays and totals filled in."""
        enrich = ctx.enricher if answer_steps.enrichable(answer) else None
        provider = ctx.tenant.provider_fhir_version
        with tracing.span("response.convert", face=ctx.face, provider_version=provider):
            return self._converter.response(ctx.face, provider, answer, enrich)

    @staticmethod
    def _rewritten(ctx: _Context, response: Response) -> Response:
        return answer_steps.rewritten(
            response,
            provider_base=ctx.tenant.provider_base_url,
            face_base=ctx.face_base,
            tenant_id=ctx.tenant.tenant_id,
            request_id=ctx.exchange.request_id,
        )

    def _outcome(self, error: FhirError, exchange: Exchange) -> Response:
        face = exchange.face if exchange.face in FACES else None
        headers = dict(error.headers)
        headers["Cache-Control"] = "no-store"
        return outcome_response(error.status, error.code, error.diagnostics, face, headers)

    # -- audit ---------------------------------------------------------------------------------

    @staticmethod
    def _note_patients(exchange: Exchange, path: FhirPath, query: list[tuple[str, str]]) -> None:
        if path.resource_type == "Patient" and path.resource_id:
            exchange.patients.append(path.resource_id)
        for name, value in query:
            base = name.split(":")[0]
            if base in ("patient", "subject") or (
                path.resource_type == "Patient" and base in ("_id", "id")
            ):
                for one in value.split(","):
                    exchange.patients.append(one.removeprefix("Patient/"))

    def _audit(self, exchange: Exchange, status: int) -> None:
        caller = exchange.caller
        audit(
            "fhir.request",
            request_id=exchange.request_id,
            trace_id=tracing.current_trace_id(),
            jti=caller.jti if caller else None,
            client_id=caller.client_id if caller else None,
            # Whose id client_id is: one of our clients, or an Entra ID application.
            via=caller.via if caller else None,
            tenant_id=caller.tenant_id if caller else None,
            face=exchange.face if exchange.face in FACES else None,
            method=exchange.method,
            interaction=exchange.interaction,
            resource_type=exchange.resource_type,
            resource_id=exchange.resource_id,
            patient_ids=sorted(set(exchange.patients)) or None,
            entries=exchange.entries,
            status=status,
            provider_status=exchange.provider_status,
            latency_ms=round((time.perf_counter() - exchange.started) * 1000, 2),
        )

    def close(self) -> None:
        """Stop the batch workers."""
        self._batch_pool.shutdown(wait=False)
        self._enrich_pool.shutdown(wait=False)


@dataclass
class _Context:
    tenant: TenantMapping
    caps: Capabilities
    face: str
    face_base: str
    exchange: Exchange
    request: Request
    query: list[tuple[str, str]]
    """The request's query parameters, parsed once."""
    upstream: Upstream
    enricher: Enricher | None = None


def _pairs(raw_query: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(raw_query, keep_blank_values=True)


def _provider_page(answer: UpstreamResponse) -> dict[str, Any]:
    """One page of the provider's searchset (a 502 when it is not a JSON object)."""
    try:
        page = load_json(answer.body, "the provider's answer")
    except InvalidRequest:  # the provider's JSON, not the caller's: a 502
        page = None
    if not isinstance(page, dict):
        raise UpstreamError("the provider answered a page that is not FHIR JSON")
    return page


def _page_entries(page: dict[str, Any]) -> list[dict[str, Any]]:
    """The page's entries (a 502 when ``entry`` is not a list of JSON objects)."""
    entries = page.get("entry") or []
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise UpstreamError("the provider answered a page that is not FHIR JSON")
    return entries


def _next_link(page: dict[str, Any], provider_base: str) -> str | None:
    """The provider's next-page URL, only if it stays under the provider's base."""
    for link in page.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next":
            url = link.get("url")
            if isinstance(url, str) and url.startswith(provider_base.rstrip("/") + "/"):
                return url
    return None
