"""The version-conversion hook: it sits between the request/response and the transport.

The proxy calls ``request`` before anything goes upstream and ``response`` on what comes back,
each with the face's and the provider's FHIR versions. ``FhirVersionConverter`` converts
between every pair (shared.fhir.convert).

``response`` takes an optional ``enrich`` callable (shared.proxy.enrich): it sees the parsed
provider document before conversion, so the proxy can fill what the app shows and servers omit
without parsing the body twice. Section numbers (§) refer to docs/conversion/mapping.md.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, Protocol

from shared.fhir import json_mime_type
from shared.fhir.convert import ConversionError, UnsupportedResource, convert, supports
from shared.fhir.convert.common import prune_empty_twins, reference_string, strip_fhir_comments
from shared.fhir.convert.request import (
    ParameterNotConvertible,
    convert_batch_request,
    convert_links,
    convert_path,
    convert_query,
    resource_type_of,
)
from shared.fhir.errors import InvalidRequest, NotConvertible, UpstreamError
from shared.fhir.versions import FhirVersion
from shared.http import Headers
from shared.proxy.model import UpstreamRequest, UpstreamResponse

log = logging.getLogger(__name__)

LABELS = {version.value: version.label for version in FhirVersion}
FORM_TYPE = "application/x-www-form-urlencoded"
Enrich = Callable[[dict[str, Any]], None]
# Response headers that carry a FHIR URL whose type segment a DSTU2 face names differently.
_URL_HEADERS = ("Location", "Content-Location")


class VersionConverter(Protocol):
    """Converts requests from the face's version and responses back to it."""

    def request(self, face: str, provider: str, request: UpstreamRequest) -> UpstreamRequest:
        """The request as the provider's version spells it."""
        ...

    def response(
        self,
        face: str,
        provider: str,
        response: UpstreamResponse,
        enrich: Enrich | None = None,
    ) -> UpstreamResponse:
        """The response as the face's version spells it (``enrich`` sees the provider's)."""
        ...


class FhirVersionConverter:
    """Converts requests face → provider and responses provider → face (§14, §11).

    Same-version traffic passes untouched and unparsed, unless ``enrich`` asks for the document.
    """

    def request(self, face: str, provider: str, request: UpstreamRequest) -> UpstreamRequest:
        """Path, query, form or batch body and media types in the provider's version.

        Raises ``InvalidRequest`` (400) for a parameter the provider's version cannot express,
        ``NotConvertible`` (501) for a resource type no converter handles.
        """
        if face == provider:
            return request
        resource_type = resource_type_of(request.path)
        _check_supported(resource_type, face, provider)
        try:
            path = convert_path(request.path, face, provider)
            query = convert_query(request.query, resource_type, face, provider)
            body = self._request_body(request, resource_type, face, provider)
        except ParameterNotConvertible as error:
            raise InvalidRequest(str(error), code="not-supported") from None
        except UnsupportedResource as error:
            raise NotConvertible(_unsupported(error.resource_type, face, provider)) from None
        except ConversionError:
            raise NotConvertible(
                f"this request cannot be expressed in FHIR {LABELS[provider]}"
            ) from None
        headers = _request_headers(request.headers, provider)
        return UpstreamRequest(request.method, path, query, headers, body)

    def response(
        self,
        face: str,
        provider: str,
        response: UpstreamResponse,
        enrich: Enrich | None = None,
    ) -> UpstreamResponse:
        """The provider's JSON in the face's version: resources, Bundle links, media type."""
        # DSTU2 JSON may carry "fhir_comments", which is not FHIR: never emitted (§2.1).
        comments = provider == FhirVersion.DSTU2 and b'"fhir_comments"' in response.body
        if face == provider and enrich is None and not comments:
            return response
        headers = _response_headers(response.headers, face, provider)
        if not response.body:
            return UpstreamResponse(response.status, headers, response.body, response.elapsed_ms)
        try:
            document = json.loads(response.body)
        except (ValueError, RecursionError):
            raise UpstreamError("the provider answered something that is not FHIR JSON") from None
        if not isinstance(document, dict):
            raise UpstreamError("the provider answered something that is not FHIR JSON")
        if enrich is not None:
            enrich(document)
        if face != provider:
            document = _convert_document(document, face, provider)
        elif comments:
            prune_empty_twins(strip_fhir_comments(document))
        body = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return UpstreamResponse(response.status, headers, body, response.elapsed_ms)

    @staticmethod
    def _request_body(
        request: UpstreamRequest, resource_type: str | None, face: str, provider: str
    ) -> bytes:
        if not request.body:
            return request.body
        media_type = _media_type(request.headers.get("Content-Type"))
        if media_type == FORM_TYPE:
            # A _search form body is a query string in another place (§14.1).
            text = request.body.decode("ascii")
            return convert_query(text, resource_type, face, provider).encode("ascii")
        try:
            document = json.loads(request.body)
        except (ValueError, RecursionError):
            raise InvalidRequest("the body is not valid JSON", code="structure") from None
        if not isinstance(document, dict):
            raise InvalidRequest("the body is not a FHIR resource", code="structure")
        if resource_type is None and document.get("resourceType") == "Bundle":
            converted = convert_batch_request(document, face, provider)
            for entry in converted.get("entry") or ():
                request_part = entry.get("request") if isinstance(entry, dict) else None
                url = request_part.get("url") if isinstance(request_part, dict) else None
                _check_supported(
                    resource_type_of(url) if isinstance(url, str) else None, face, provider
                )
        else:
            converted = convert(document, face, provider, copy=False)  # parsed here: ours
        return json.dumps(converted, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _convert_document(document: dict[str, Any], face: str, provider: str) -> dict[str, Any]:
    # Links first, on the provider's own spelling (the query parameters are the provider's);
    # the document is ours (just parsed), so in place, and converted without a copy.
    convert_links(document, provider, face)
    resource_type = str(document.get("resourceType") or "resource")  # before it is converted
    try:
        return convert(document, provider, face, copy=False)
    except UnsupportedResource as error:
        raise NotConvertible(_unsupported(error.resource_type, provider, face)) from None
    except ConversionError as error:
        log.warning("response conversion failed for %s: %s", resource_type, error)
        raise NotConvertible(
            f"the provider's {resource_type} cannot be expressed in FHIR {LABELS[face]}"
        ) from None


def _check_supported(resource_type: str | None, face: str, provider: str) -> None:
    if resource_type is not None and not supports(resource_type):
        raise NotConvertible(_unsupported(resource_type, face, provider))


def _unsupported(resource_type: str, source: str, target: str) -> str:
    # The type comes from an allow-listed path or a provider's resourceType, never free text.
    name = resource_type if resource_type.isalnum() and len(resource_type) <= 64 else "resource"
    return (
        f"EHR Bridge cannot convert {name} between FHIR {LABELS.get(source, source)} and "
        f"{LABELS.get(target, target)}"
    )


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def _is_json(media_type: str) -> bool:
    return media_type in ("application/json", "") or media_type.endswith(("+json", "json+fhir"))


def _request_headers(incoming: Headers, provider: str) -> Headers:
    headers = Headers(incoming.items())
    target_type = json_mime_type(provider)
    content_type = incoming.get("Content-Type")
    if content_type is not None and _is_json(_media_type(content_type)):
        headers.set("Content-Type", f"{target_type}; charset=utf-8")
    accepts = incoming.get_all("Accept")
    if not accepts or all(_is_json(_media_type(a)) for a in ",".join(accepts).split(",")):
        headers.set("Accept", target_type)
    return headers


def _response_headers(incoming: Headers, face: str, provider: str) -> Headers:
    headers = Headers(incoming.items())
    if face == provider:
        return headers
    for name in _URL_HEADERS:
        values = headers.get_all(name)
        if values:
            headers.remove(name)
            for value in values:
                headers.add(name, reference_string(value, face))
    if incoming.get("Content-Type") is not None:
        headers.set("Content-Type", f"{json_mime_type(face)}; charset=utf-8")
    return headers
