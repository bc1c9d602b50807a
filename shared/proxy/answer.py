"""What the caller gets of a provider's answer, one step at a time.

The handler takes an answer through these in order: ``accepted`` (a failure the caller must not
see as the provider gave it becomes our error), conversion to the face's version with displays
filled in (``conversion.py``, ``enrich.py``), ``downstream`` (the headers the caller may see),
``rewritten`` (the provider's URLs made the face's). A batch the proxy ran itself, and a
searchset it sorted itself, skip the steps they have no need of.
"""

from __future__ import annotations

import functools
import logging

from shared.fhir import json_mime_type
from shared.fhir.errors import FhirError, UpstreamError
from shared.http import Headers, Response
from shared.proxy.headers import RESPONSE_CACHE_CONTROL, downstream_response_headers
from shared.proxy.model import UpstreamResponse
from shared.proxy.rewrite import UrlRewriter

log = logging.getLogger(__name__)

# Response headers that carry URLs: the provider's base in them becomes the face's.
URL_HEADERS = ("Location", "Content-Location", "Link")
_URL_HEADER_NAMES = frozenset(name.lower() for name in URL_HEADERS)
_ENRICHED = (b'"Patient"', b'"Encounter"', b'"MedicationRequest"', b'"MedicationOrder"')


def accepted(answer: UpstreamResponse, *, tenant_id: str, request_id: str) -> UpstreamResponse:
    """The answer, unless it is a failure the caller must not see as such (then our error):
    401/403 (an ALERT: our credential), 5xx and 3xx are 502; a non-FHIR body is withheld."""
    status = answer.status
    if status in (401, 403):
        log.warning("ALERT provider answered %s to EHR Bridge for tenant %s", status, tenant_id)
        raise UpstreamError(
            "the provider FHIR server refused EHR Bridge's credentials "
            f"(correlation id {request_id})"
        )
    if status >= 500 or 300 <= status < 400:
        raise UpstreamError(
            f"the provider FHIR server failed (status {status}; correlation id {request_id})"
        )
    if not is_fhir_json(answer):
        if status < 300:
            raise UpstreamError(
                f"the provider answered something that is not FHIR JSON (correlation id "
                f"{request_id})"
            )
        # A provider error that is not FHIR: wrapped, its body (maybe HTML, maybe a trace)
        # withheld.
        raise FhirError(
            f"the provider answered {status} (correlation id {request_id})",
            status=status,
            code="processing",
        )
    return answer


def enrichable(answer: UpstreamResponse) -> bool:
    """True when the answer may carry references whose displays the app prints."""
    # A cheap look before parsing: only these types carry such references.
    return answer.status == 200 and any(name in answer.body for name in _ENRICHED)


def downstream(answer: UpstreamResponse, face: str) -> Response:
    """The response with the headers the caller may see, labelled with the face's type."""
    headers = downstream_response_headers(answer.headers)
    headers.set("Content-Type", f"{json_mime_type(face)}; charset=utf-8")
    headers.set("Cache-Control", RESPONSE_CACHE_CONTROL)
    return Response(status=answer.status, body=answer.body, headers=headers)


def rewritten(
    response: Response, *, provider_base: str, face_base: str, tenant_id: str, request_id: str
) -> Response:
    """The response with the provider's URLs, in the body and the URL headers, the face's
    (rewriting is idempotent: a batch the proxy ran holds entries rewritten already)."""
    rewriter = _rewriter(provider_base, face_base)
    body = rewriter.body(response.body)
    if rewriter.leaks(body):
        # The provider's host in a form the rewriter cannot map (another path on it, say):
        # worth an operator's look, never a reason to fail the clinician's request.
        log.warning(
            "provider host still present in a response for tenant %s (request id %s)",
            tenant_id,
            request_id,
        )
    headers = response.headers
    if any(name in headers for name in URL_HEADERS):
        headers = Headers(
            (name, rewriter.header(value) if name.lower() in _URL_HEADER_NAMES else value)
            for name, value in headers.items()
        )
    return Response(status=response.status, body=body, headers=headers)


def is_fhir_json(answer: UpstreamResponse) -> bool:
    """A FHIR JSON resource, judged by content type and shape, without a full parse.

    Parsing a whole page costs ~5 µs per KB on every response; the converters parse anyway
    when the versions differ, and a truncated body is caught by the transport.
    """
    if not answer.body:
        return answer.status < 300
    content_type = (answer.headers.get("Content-Type") or "").lower()
    if "json" not in content_type:
        return False
    body = answer.body.strip()
    return body[:1] == b"{" and body[-1:] == b"}" and b'"resourceType"' in body[:4096]


@functools.lru_cache(maxsize=1024)
def _rewriter(provider_base: str, face_base: str) -> UrlRewriter:
    # Compiling the patterns costs ~12 µs; a tenant's pair of bases rarely changes.
    return UrlRewriter(provider_base, face_base)
