"""HTTP for the checker: one ``requests`` session, the face's media type, concrete failures.

Every call answers an ``Answer`` (any HTTP status) or raises ``CallFailed`` carrying evidence
("timed out after 30 s", "connection refused"); nothing else escapes. Redirects are not
followed: the Patients app gets no second chance either, and a bearer token must never travel
to a URL the user did not give.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

import requests

USER_AGENT: Final = "ehr-bridge-conformance/1.0"
FORM: Final = "application/x-www-form-urlencoded"
# Before fhirVersion is known: any FHIR JSON spelling, or plain JSON.
ANY_FHIR_JSON: Final = "application/fhir+json, application/json+fhir;q=0.9, application/json;q=0.8"
_OUTCOME_TEXT: Final = 120
MAX_BODY_MB: Final = 64
MAX_BODY_BYTES: Final = MAX_BODY_MB * 1024 * 1024


class CallFailed(Exception):
    """No HTTP answer (connection, TLS, timeout), or an answer that is not what was asked."""

    def __init__(self, evidence: str, *, connection: bool = False) -> None:
        super().__init__(evidence)
        self.evidence = evidence
        # True when no HTTP answer came back at all (the server is unreachable).
        self.connection = connection


@dataclass
class Answer:
    """One HTTP answer."""

    method: str
    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes = field(repr=False)
    elapsed_ms: int

    @property
    def took(self) -> str:
        """``took N ms``, for evidence."""
        return f"took {self.elapsed_ms} ms"

    def json(self) -> dict[str, Any]:
        """The body as a JSON object (``CallFailed`` when it is not one)."""
        try:
            document = json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            kind = self.headers.get("Content-Type") or "no Content-Type"
            raise CallFailed(f"HTTP {self.status}, body is not JSON ({kind})") from None
        if not isinstance(document, dict):
            raise CallFailed(f"HTTP {self.status}, body is JSON but not an object")
        return document

    def describe(self) -> str:
        """``HTTP <status>`` and, for an error, what its OperationOutcome or OAuth error says."""
        text = f"HTTP {self.status}"
        if self.status in (301, 302, 303, 307, 308):
            return f"{text} redirect (not followed) to {self.headers.get('Location', '?')}"
        if 200 <= self.status < 300:
            return text
        detail = _error_detail(self.body)
        return f"{text} ({detail})" if detail else text


def _error_detail(body: bytes) -> str:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    if not isinstance(document, dict):
        return ""
    if document.get("resourceType") == "OperationOutcome":
        for issue in document.get("issue") or []:
            if not isinstance(issue, dict):
                continue
            details = issue.get("details")
            text = issue.get("diagnostics") or (
                details.get("text") if isinstance(details, dict) else None
            )
            if isinstance(text, str) and text:
                return f"OperationOutcome: {text[:_OUTCOME_TEXT]}"
        return "OperationOutcome"
    error = document.get("error")
    if isinstance(error, str):
        return f"error={error[:_OUTCOME_TEXT]}"
    return ""


class Client:
    """Calls to one FHIR base (and its token URL), with a timeout and TLS verification."""

    def __init__(self, base_url: str, *, timeout: float, verify: bool) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.accept = ANY_FHIR_JSON
        self.token: str | None = None
        self.verify = verify
        self._session = requests.Session()
        self._session.headers["User-Agent"] = USER_AGENT

    def close(self) -> None:
        """Release pooled connections."""
        self._session.close()

    def url(self, path: str) -> str:
        """``path`` under the base URL ("" is the base itself)."""
        return f"{self.base_url}/{path}" if path else self.base_url

    def get(self, path: str, *, auth: bool = True) -> Answer:
        """GET a path under the base (with the bearer token unless ``auth`` is False)."""
        return self._call("GET", self.url(path), self._headers(auth))

    def post_form(self, path: str, fields: list[tuple[str, str]]) -> Answer:
        """POST a form body to a path under the base, as ``[type]/_search`` takes it."""
        headers = {**self._headers(True), "Content-Type": FORM}
        # Modifiers stay readable on the wire ("family:contains"), as the app writes them.
        return self._call("POST", self.url(path), headers, data=urlencode(fields, safe=":"))

    def post_json(self, path: str, document: Mapping[str, Any], content_type: str) -> Answer:
        """POST a JSON document (a batch Bundle) to a path under the base."""
        headers = {**self._headers(True), "Content-Type": content_type}
        return self._call("POST", self.url(path), headers, data=json.dumps(document).encode())

    def post_token(self, token_url: str, fields: Mapping[str, str]) -> Answer:
        """POST the client-credentials form to the token URL (credentials in the body)."""
        headers = {"Accept": "application/json", "Content-Type": FORM}
        return self._call("POST", token_url, headers, data=dict(fields))

    def _headers(self, auth: bool) -> dict[str, str]:
        headers = {"Accept": self.accept}
        if auth and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def _call(self, method: str, url: str, headers: Mapping[str, str], **kwargs: Any) -> Answer:
        started = time.monotonic()
        try:
            response = self._session.request(
                method,
                url,
                headers=dict(headers),
                timeout=self.timeout,
                # Per request: a session-level False loses to REQUESTS_CA_BUNDLE in the environment.
                verify=self.verify,
                allow_redirects=False,
                stream=True,
                **kwargs,
            )
            body = _read(response)
        except requests.exceptions.SSLError as error:
            raise CallFailed(f"TLS failed: {_reason(error)}", connection=True) from None
        except requests.exceptions.ConnectTimeout:
            raise CallFailed(
                f"no connection within {self.timeout:g} s (timeout)", connection=True
            ) from None
        except requests.exceptions.Timeout:
            raise CallFailed(f"no answer within {self.timeout:g} s (timeout)") from None
        except requests.exceptions.ConnectionError as error:
            reached = "Connection aborted" in str(error) or "RemoteDisconnected" in str(error)
            raise CallFailed(
                f"{'connection dropped' if reached else 'cannot connect'}: {_reason(error)}",
                connection=not reached,
            ) from None
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema) as error:
            raise CallFailed(f"invalid URL: {_reason(error)}", connection=True) from None
        except requests.exceptions.RequestException as error:
            raise CallFailed(f"request failed: {_reason(error)}") from None
        elapsed = int((time.monotonic() - started) * 1000)
        return Answer(method, url, response.status_code, response.headers, body, elapsed)


def _read(response: requests.Response) -> bytes:
    """The whole body, unless it outgrows what any answer the app asks for could need."""
    chunks, size = [], 0
    with response:
        for chunk in response.iter_content(64 * 1024):
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise CallFailed(f"HTTP {response.status_code}, body over {MAX_BODY_MB} MB")
            chunks.append(chunk)
    return b"".join(chunks)


_ERRNO: Final = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")
_TLS: Final = re.compile(r"certificate verify failed: ([^'\"()\]]+)", re.IGNORECASE)


def _reason(error: Exception) -> str:
    """The readable cause inside a requests error ("Connection refused"), short."""
    text = str(error)
    for pattern, prefix in ((_TLS, "certificate verify failed: "), (_ERRNO, "")):
        found = pattern.search(text)
        if found:
            return prefix + found.group(1).strip()[:120]
    return f"{type(error).__name__}: {text[:120]}"


def is_loopback(url: str) -> bool:
    """Whether ``url`` names this machine (plain HTTP is then acceptable for testing)."""
    host = (urlsplit(url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")
