"""Batch Bundles: validate every entry before anything is forwarded, and run them ourselves
when a provider refuses batch.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from shared.fhir.errors import FhirError, InvalidRequest, MethodNotAllowed
from shared.fhir.paths import FhirPath, parse_fhir_path, validate_query


@dataclass(frozen=True)
class BatchEntry:
    """One validated entry of a batch request: a read or a search."""

    index: int
    path: FhirPath
    query: str


def load_json(body: bytes, what: str) -> Any:
    """Parse JSON, mapping every parser failure (bombs included) to a 400."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        # ValueError: malformed, or a 5,000-digit number; RecursionError: deep nesting.
        raise InvalidRequest(f"{what} is not valid JSON", code="structure") from None


@dataclass(frozen=True)
class Batch:
    """A validated batch request: its entries, and the bytes to forward.

    ``body`` is the parsed Bundle serialised again, never the caller's bytes: JSON with a
    repeated key (``"method":"DELETE","method":"GET"``) parses here to its last value, while a
    provider keeping the first would see another request than the one validated.
    """

    entries: list[BatchEntry]
    body: bytes


def parse_batch(body: bytes, *, allowed_types: frozenset[str], max_entries: int) -> Batch:
    """A batch Bundle of reads, validated, or a 400/405 naming what is wrong."""
    bundle = load_json(body, "the Bundle")
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise InvalidRequest("POST to the base takes a batch Bundle", code="structure")
    if bundle.get("type") != "batch":
        raise InvalidRequest("only Bundle.type batch is supported here", code="not-supported")
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise InvalidRequest("Bundle.entry must be a list", code="structure")
    if len(entries) > max_entries:
        raise InvalidRequest(f"a batch may carry at most {max_entries} entries", code="too-costly")
    parsed: list[BatchEntry] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("request"), dict):
            raise InvalidRequest(f"entry {index} has no request", code="structure")
        full_url = entry.get("fullUrl")
        if isinstance(full_url, str) and "://" in full_url:
            raise InvalidRequest(f"entry {index}: fullUrl must not be absolute")
        request = entry["request"]
        if request.get("method") != "GET":
            raise MethodNotAllowed(
                f"entry {index}: only GET entries are forwarded (read-only)",
                headers={"Allow": "GET"},
            )
        url = request.get("url")
        if not isinstance(url, str) or not url or "://" in url or url.startswith("//"):
            raise InvalidRequest(f"entry {index}: request.url must be a relative FHIR URL")
        path, _, query = url.removeprefix("/").partition("?")
        try:
            fhir_path = parse_fhir_path(path, allowed_types=allowed_types)
            validate_query(query)
        except FhirError as error:
            raise FhirError(
                f"entry {index}: {error.diagnostics}",
                status=error.status,
                code=error.code,
                headers=error.headers,
            ) from None
        if fhir_path.interaction not in ("type", "instance", "history"):
            raise InvalidRequest(f"entry {index}: only reads and searches are allowed")
        parsed.append(BatchEntry(index, fhir_path, query))
    forwarded = json.dumps(bundle, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return Batch(parsed, forwarded)


@dataclass(frozen=True)
class EntryResult:
    """What one entry's request answered."""

    status: int
    resource: Any = None
    location: str | None = None
    etag: str | None = None


def run_entries(
    entries: Sequence[BatchEntry],
    send: Callable[[BatchEntry], EntryResult],
    pool: ThreadPoolExecutor,
) -> dict[str, Any]:
    """Run every entry (bounded by ``pool``) and assemble a batch-response in entry order."""
    results = list(pool.map(send, entries))
    response_entries: list[dict[str, Any]] = []
    for result in results:
        response: dict[str, Any] = {"status": _status_line(result.status)}
        if result.location:
            response["location"] = result.location
        if result.etag:
            response["etag"] = result.etag
        item: dict[str, Any] = {"response": response}
        if result.resource is not None:
            item["resource"] = result.resource
        response_entries.append(item)
    return {"resourceType": "Bundle", "type": "batch-response", "entry": response_entries}


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)
