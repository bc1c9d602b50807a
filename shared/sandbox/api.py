"""The sandbox's FHIR R4 HTTP interface (``sandbox/fhir/{*path}``) over ``SandboxStore``.

JSON only. ``metadata`` is open; everything else needs ``Authorization: Bearer <sandbox key>``.
Failures answer R4 OperationOutcomes; the proxy's error classes (``shared.fhir.errors``) carry
status, issue code and diagnostics here too, so the path and query rules shared with the proxy
(``shared.fhir.paths``) answer the same way in both places.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlencode

from shared import routes
from shared.fhir.errors import (
    FhirError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    TooLarge,
    Unauthorized,
)
from shared.fhir.media import JSON_MEDIA_TYPES, check_content_negotiation, request_id
from shared.fhir.outcome import operation_outcome
from shared.fhir.paths import FhirPath, parse_fhir_path, parse_form_body, validate_query
from shared.http import Headers, Request, Response, json_response, public_origin
from shared.sandbox.access import SandboxKeyMissing
from shared.sandbox.capability import capability_statement
from shared.sandbox.errors import (
    InvalidResource,
    LayoutOutdated,
    ResourceNotFound,
    UnsupportedSearch,
    UnsupportedType,
)
from shared.sandbox.store import SUPPORTED_TYPES, SearchPage
from shared.secret_store import SecretStoreUnavailable
from shared.settings import Settings
from shared.tables import StoreUnavailable

if TYPE_CHECKING:
    from shared.sandbox.access import SandboxKey
    from shared.sandbox.store import SandboxStore

log = logging.getLogger(__name__)

ROUTE: Final = routes.SANDBOX_FHIR
FHIR_JSON: Final = "application/fhir+json"
MAX_BATCH_ENTRIES: Final = 100
BATCH_READERS: Final = 6
"""Entries of a batch of reads run at once (the Patients app's chart batch has six)."""
MAX_URL_BYTES: Final = 4096
FORM_TYPE: Final = "application/x-www-form-urlencoded"
CHALLENGE: Final = 'Bearer realm="sandbox"'
# Parameters a read accepts (``_format`` is checked to be JSON by validate_query).
_READ_PARAMS: Final = frozenset({"_format"})
_PAGING_PARAMS: Final = frozenset({"_count", "_offset"})
_TYPES: Final = frozenset(SUPPORTED_TYPES)
_UNSUPPORTED_TYPE: Final = (
    f"the sandbox does not keep this resource type; it keeps {', '.join(SUPPORTED_TYPES)}"
)


def disabled_response() -> Response:
    """What every sandbox route answers while ``settings.sandbox_enabled`` is false."""
    return _http(_outcome(404, "not-found", "the sandbox is not enabled on this server"), "")


@dataclass
class _Answer:
    """One interaction's result, before it becomes an HTTP response or a batch entry."""

    status: int
    resource: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Call:
    """One interaction to run, from the HTTP request or from a batch entry."""

    method: str
    path: FhirPath
    query: list[tuple[str, str]]
    resource: Any = None


class SandboxApi:
    """Answers ``sandbox/fhir/{*path}``: read, search, create, update, delete and batch."""

    def __init__(self, settings: Settings, store: SandboxStore, key: SandboxKey) -> None:
        self._settings = settings
        self._store = store
        self._key = key
        # Reads of a batch run side by side (the store has its own pool for each one's reads).
        self._entries = ThreadPoolExecutor(BATCH_READERS, thread_name_prefix="sandbox-batch")

    def handle(self, request: Request) -> Response:
        """Answer one sandbox FHIR request; never raises, never sends a stack trace."""
        rid = request_id(request.headers)
        try:
            return self._handle(request, rid)
        except Exception as error:
            return _http(_failure(error, rid), rid)

    # -- the HTTP request ------------------------------------------------------------------------

    def _handle(self, request: Request, rid: str) -> Response:
        if not self._settings.sandbox_enabled:
            return disabled_response()
        if len(request.url.encode("utf-8")) > MAX_URL_BYTES:
            raise TooLarge("the URL is longer than 4 KB", status=414)
        limit = self._settings.max_request_body_bytes
        if len(request.body) > limit:
            raise TooLarge(f"the body is larger than {limit} bytes")
        base = routes.sandbox_base_url(
            public_origin(
                request, self._settings.public_base_url, self._settings.trust_forwarded_headers
            )
        )
        raw_path = _relative_path(request)
        if raw_path != "metadata":
            self._authenticate(request)
        query = validate_query(request.raw_query)
        check_content_negotiation(request.headers, request.method)
        if raw_path == "metadata":
            if request.method != "GET":
                raise MethodNotAllowed("only GET is allowed here", headers={"Allow": "GET"})
            return _http(_Answer(200, capability_statement(base)), rid)
        path = _parse_path(raw_path)
        if path.interaction == "base" and request.method == "POST":
            return _http(self._batch(_json_body(request), base, rid), rid)
        resource = None
        if request.method == "POST" and path.interaction == "search-post":
            query = [*query, *_form(request)]
        elif (request.method, path.interaction) in (("POST", "type"), ("PUT", "instance")):
            resource = _json_body(request)
        return _http(self._dispatch(_Call(request.method, path, query, resource), base), rid)

    def _authenticate(self, request: Request) -> None:
        scheme, _, token = (request.header("Authorization") or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized(
                "send the sandbox API key as Authorization: Bearer <key>",
                headers={"WWW-Authenticate": CHALLENGE},
            )
        if not self._key.matches(token):
            raise Unauthorized(
                "the sandbox API key is not valid",
                headers={"WWW-Authenticate": f'{CHALLENGE}, error="invalid_token"'},
            )

    # -- interactions ----------------------------------------------------------------------------

    def _dispatch(self, call: _Call, base: str) -> _Answer:
        path, method = call.path, call.method
        kind, resource_type = path.interaction, path.resource_type or ""
        if kind == "base":
            raise MethodNotAllowed(
                "the base takes POST of a batch Bundle only", headers={"Allow": "POST"}
            )
        if kind == "type" and method == "GET":
            return self._search(resource_type, call.query, base)
        if kind == "type" and method == "POST":
            _only_format(call.query)
            return self._create(resource_type, call.resource, base)
        if kind == "type":
            raise MethodNotAllowed("method not allowed here", headers={"Allow": "GET, POST"})
        if kind == "search-post" and method == "POST":
            return self._search(resource_type, call.query, base)
        if kind == "search-post":
            raise MethodNotAllowed("use POST for _search", headers={"Allow": "POST"})
        if kind == "history":
            return self._version(call, base)
        resource_id = path.resource_id or ""
        _only_format(call.query)
        if method == "GET":
            return _resource_answer(200, self._store.read(resource_type, resource_id), base)
        if method == "PUT":
            return self._update(resource_type, resource_id, call.resource, base)
        if method == "DELETE":
            self._store.delete(resource_type, resource_id)
            return _Answer(204)
        raise MethodNotAllowed("method not allowed here", headers={"Allow": "GET, PUT, DELETE"})

    def _search(self, resource_type: str, params: list[tuple[str, str]], base: str) -> _Answer:
        page = self._store.search(resource_type, params)
        return _Answer(200, searchset(resource_type, params, page, base))

    def _create(self, resource_type: str, resource: Any, base: str) -> _Answer:
        _check_type(resource, resource_type)
        return _resource_answer(201, self._store.create(resource), base, location=True)

    def _update(self, resource_type: str, resource_id: str, resource: Any, base: str) -> _Answer:
        _check_type(resource, resource_type)
        if resource.get("id") != resource_id:
            raise InvalidRequest("the resource's id must equal the id in the URL")
        stored, created = self._store.update(resource_type, resource_id, resource)
        return _resource_answer(201 if created else 200, stored, base, location=created)

    def _version(self, call: _Call, base: str) -> _Answer:
        # Only the current version is kept: Type/id/_history/<its versionId> reads it (that is
        # where Location points), any other version is gone, and history lists are not offered.
        version_id = call.path.version_id
        if version_id is None or call.method != "GET":
            raise InvalidRequest("the sandbox keeps no history", code="not-supported")
        _only_format(call.query)
        current = self._store.read(call.path.resource_type or "", call.path.resource_id or "")
        if (current.get("meta") or {}).get("versionId") != version_id:
            raise NotFound("the sandbox keeps only the current version of a resource")
        return _resource_answer(200, current, base)

    # -- batch -----------------------------------------------------------------------------------

    def _batch(self, bundle: Any, base: str, rid: str) -> _Answer:
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            raise InvalidRequest("POST to the base takes a batch Bundle", code="structure")
        if bundle.get("type") == "transaction":
            raise InvalidRequest(
                "transaction Bundles are not supported: send a batch (each entry succeeds or "
                "fails on its own) or load data with the sandbox loader (tools/ops.py sandbox "
                "load)",
                code="not-supported",
            )
        if bundle.get("type") != "batch":
            raise InvalidRequest("only Bundle.type batch is supported here", code="not-supported")
        entries = bundle.get("entry") or []
        if not isinstance(entries, list):
            raise InvalidRequest("Bundle.entry must be a list", code="structure")
        if len(entries) > MAX_BATCH_ENTRIES:
            raise InvalidRequest(
                f"a batch may carry at most {MAX_BATCH_ENTRIES} entries", code="too-costly"
            )
        if all(_reads_only(entry) for entry in entries):
            # Reads change nothing, so they may run at once: the app's chart batch is six.
            answered = list(
                self._entries.map(
                    lambda item: self._entry(item[0], item[1], base, rid), enumerate(entries)
                )
            )
        else:
            # In order, one at a time: a later entry may read what an earlier one wrote.
            answered = [self._entry(index, entry, base, rid) for index, entry in enumerate(entries)]
        return _Answer(200, {"resourceType": "Bundle", "type": "batch-response", "entry": answered})

    def _entry(self, index: int, entry: Any, base: str, rid: str) -> dict[str, Any]:
        try:
            answer = self._dispatch(_entry_call(index, entry), base)
        except Exception as error:
            answer = _failure(error, rid)
        response: dict[str, Any] = {"status": _status_line(answer.status)}
        if answer.status >= 400:
            response["outcome"] = answer.resource
            return {"response": response}
        for header, element in (("Location", "location"), ("ETag", "etag")):
            if header in answer.headers:
                response[element] = answer.headers[header]
        if "Last-Modified" in answer.headers and answer.resource is not None:
            # Bundle.entry.response.lastModified is an instant, not an HTTP date.
            response["lastModified"] = answer.resource["meta"]["lastUpdated"]
        item: dict[str, Any] = {"response": response}
        if answer.resource is not None:
            item["resource"] = answer.resource
        return item


# -- building blocks ---------------------------------------------------------------------------


def searchset(
    resource_type: str, params: Sequence[tuple[str, str]], page: SearchPage, base: str
) -> dict[str, Any]:
    """A searchset Bundle for one page, with total, self and next links and full URLs."""
    kept = [(name, value) for name, value in params if name not in _PAGING_PARAMS]

    def page_url(offset: int) -> str:
        query = urlencode(
            [*kept, ("_count", str(page.count)), ("_offset", str(offset))], safe=":,/"
        )
        return f"{base}/{resource_type}?{query}"

    links = [{"relation": "self", "url": page_url(page.offset)}]
    if page.has_next:
        links.append({"relation": "next", "url": page_url(page.offset + page.count)})
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": page.total,
        "link": links,
        "entry": [
            {
                "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in page.resources
        ],
    }


def _resource_answer(
    status: int, resource: dict[str, Any], base: str, *, location: bool = False
) -> _Answer:
    meta = resource.get("meta") or {}
    headers: dict[str, str] = {}
    version = meta.get("versionId")
    if version:
        headers["ETag"] = f'W/"{version}"'
        if location:
            headers["Location"] = (
                f"{base}/{resource['resourceType']}/{resource['id']}/_history/{version}"
            )
    modified = _http_date(meta.get("lastUpdated"))
    if modified:
        headers["Last-Modified"] = modified
    return _Answer(status, resource, headers)


def _http_date(instant: Any) -> str | None:
    if not isinstance(instant, str):
        return None
    try:
        moment = datetime.fromisoformat(instant)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def _check_type(resource: Any, resource_type: str) -> None:
    if not isinstance(resource, dict):
        raise InvalidRequest("the body must be a JSON object (a FHIR resource)", code="structure")
    if resource.get("resourceType") != resource_type:
        raise InvalidRequest(f"the resource's resourceType must be {resource_type}")


def _only_format(query: list[tuple[str, str]]) -> None:
    for name, _ in query:
        if name not in _READ_PARAMS:
            raise InvalidRequest(
                f"parameter {name[:64]} is not supported on this interaction", code="not-supported"
            )


def _relative_path(request: Request) -> str:
    """The raw (still percent-encoded) part of the URL path after ``/api/sandbox/fhir/``."""
    prefix = f"/{routes.ROUTE_PREFIX}/{ROUTE}"
    path = request.path
    # The host routes case-insensitively; the rest is judged by parse_fhir_path.
    if path[: len(prefix)].lower() != prefix.lower():
        raise InvalidRequest("request path is outside the sandbox endpoint")
    rest = path[len(prefix) :]
    if rest in ("", "/"):
        return ""
    if not rest.startswith("/"):
        raise InvalidRequest("request path is outside the sandbox endpoint")
    return rest[1:]


def _parse_path(raw: str) -> FhirPath:
    try:
        return parse_fhir_path(raw, allowed_types=_TYPES)
    except NotFound:
        raise NotFound(_UNSUPPORTED_TYPE, code="not-supported") from None


def _json_body(request: Request) -> Any:
    media_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
    if media_type not in JSON_MEDIA_TYPES:
        raise FhirError(f"send the body as {FHIR_JSON}", status=415, code="not-supported")
    return _load_json(request.body, "the body")


def _load_json(body: bytes, what: str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        # ValueError: malformed or not UTF-8, or a 5,000-digit number; RecursionError: nesting.
        raise InvalidRequest(f"{what} is not valid JSON", code="structure") from None


def _form(request: Request) -> list[tuple[str, str]]:
    media_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
    if request.body and media_type != FORM_TYPE:
        raise FhirError(f"POST _search takes an {FORM_TYPE} body", status=415, code="not-supported")
    return parse_form_body(request.body)


def _reads_only(entry: Any) -> bool:
    """True for an entry that asks for a GET (whatever else is wrong with it)."""
    request = entry.get("request") if isinstance(entry, dict) else None
    return isinstance(request, dict) and request.get("method") == "GET"


def _entry_call(index: int, entry: Any) -> _Call:
    """The interaction a batch entry asks for; errors name the entry."""
    if not isinstance(entry, dict) or not isinstance(entry.get("request"), dict):
        raise InvalidRequest(f"entry {index} has no request", code="structure")
    request = entry["request"]
    method, url = request.get("method"), request.get("url")
    if method not in ("GET", "POST", "PUT", "DELETE"):
        raise MethodNotAllowed(
            f"entry {index}: request.method must be GET, POST, PUT or DELETE",
            headers={"Allow": "GET, POST, PUT, DELETE"},
        )
    if not isinstance(url, str) or not url or "://" in url or url.startswith("//"):
        raise InvalidRequest(f"entry {index}: request.url must be a relative FHIR URL")
    raw_path, _, raw_query = url.removeprefix("/").partition("?")
    try:
        path = _parse_path(raw_path)
        query = validate_query(raw_query)
    except FhirError as error:
        raise FhirError(
            f"entry {index}: {error.diagnostics}", status=error.status, code=error.code
        ) from None
    if path.interaction == "search-post":
        raise InvalidRequest(f"entry {index}: search with GET {path.resource_type}?…")
    resource = entry.get("resource")
    if method in ("POST", "PUT") and not isinstance(resource, dict):
        raise InvalidRequest(f"entry {index}: {method} needs a resource", code="structure")
    return _Call(method, path, query, resource)


def _outcome(
    status: int,
    code: str,
    diagnostics: str,
    headers: dict[str, str] | None = None,
    expression: str | None = None,
) -> _Answer:
    document = operation_outcome("error", code, diagnostics)
    if expression:
        document["issue"][0]["expression"] = [expression]
    return _Answer(status, document, dict(headers or {}))


def _failure(error: Exception, rid: str) -> _Answer:
    """The OperationOutcome answer of any failure; unexpected ones are logged, never shown."""
    if isinstance(error, FhirError):
        return _outcome(error.status, error.code, error.diagnostics, error.headers)
    if isinstance(error, ResourceNotFound):
        return _outcome(404, "not-found", "no such resource")
    if isinstance(error, UnsupportedType):
        return _outcome(404, "not-supported", _UNSUPPORTED_TYPE)
    if isinstance(error, InvalidResource):
        return _outcome(422, "invalid", error.message, expression=error.element)
    if isinstance(error, UnsupportedSearch):
        message = error.message
        if error.parameter not in message:
            message = f"{error.parameter}: {message}"
        return _outcome(400, "not-supported", message)
    if isinstance(error, LayoutOutdated):
        log.warning("sandbox request refused: %s", error)
        return _outcome(503, "transient", str(error), {"Retry-After": "60"})
    if isinstance(error, SandboxKeyMissing):
        log.warning("sandbox request refused: %s", error)
        return _outcome(
            503,
            "transient",
            "the sandbox API key is not provisioned; provision it (tools/ops.py sandbox key, "
            "or make run) and retry",
            {"Retry-After": "30"},
        )
    if isinstance(error, (StoreUnavailable, SecretStoreUnavailable)):
        log.warning("sandbox dependency unavailable: %s", error)
        retry = str(getattr(error, "retry_after", 5))
        return _outcome(
            503,
            "transient",
            "the sandbox's storage is unavailable; retry later",
            {"Retry-After": retry},
        )
    log.exception("sandbox request failed (request id %s)", rid)
    return _outcome(500, "exception", f"internal error (correlation id {rid})")


def _http(answer: _Answer, rid: str) -> Response:
    headers = {**answer.headers, "Cache-Control": "no-store"}
    if rid:
        headers["X-Request-Id"] = rid
    if answer.resource is None:
        return Response(status=answer.status, headers=Headers(headers))
    return json_response(answer.status, answer.resource, content_type=FHIR_JSON, headers=headers)


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)
