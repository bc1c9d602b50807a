"""HTTP to provider FHIR servers: pooled sessions, timeouts, one retry, a circuit breaker.

Rules (docs/security.md §2 and table F; docs/architecture.md "Facts that bite"):

- One ``requests.Session`` per (tenant, provider base URL), created on first use, pooled for the
  worker's thread count (``min(32, cpu + 4)``, the Functions Python worker's default), never
  shared between tenants (connection pools are keyed by tenant, §2 "Cross-tenant access"), with
  cookies switched off: nothing a provider sets travels with a later request.
- Redirects are never followed (``requests`` follows them by default; RFC 9700 §4.12): a 3xx
  answer other than 304 is a 502. TLS verification is always on.
- Timeouts from settings: ``(connect, read)`` per socket operation, and connect + read as the
  bound on one attempt including the body, so a body trickling in at 1 B/s ends in a 504 too.
- A connection failure before any answer (refused, reset, dropped) is retried once, after
  50–250 ms of jitter, for idempotent requests only; then 502. A timeout is a 504 and is not
  retried: a slow provider is not faster the second time, and the caller's wait would double.
- A provider 401 refreshes our credential once (``ProviderAuth.headers_for(force_refresh=True)``)
  and retries once, whatever the method: the provider did not process the request. A second 401
  is returned as it is (the proxy answers 502 and alerts).
- Responses are read with a hard size cap (``max_response_bytes``, after decompression): over it,
  the connection is closed and the call is a 502.
- The circuit breaker (per provider base URL) counts connection failures, timeouts and 502/503/504
  answers; any other answer closes it. An open circuit answers 503 with ``Retry-After`` without
  calling the provider.

Nothing here logs a token, a secret, a body or a query string: at debug level the provider host and
path, the status and the time.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from shared.circuit import CLOSED, CircuitBreaker
from shared.fhir.errors import FhirError, Unavailable, UpstreamError, UpstreamTimeout
from shared.http import Headers
from shared.net.addresses import AddressPolicy, AddressRefused
from shared.proxy.budget import SPENT_TIME
from shared.proxy.model import UpstreamResponse
from shared.proxy.provider_auth import ProviderAuth, upstream_session
from shared.settings import Settings
from shared.tenants import TenantMapping

if TYPE_CHECKING:
    import requests

__all__ = ["ProviderTransport", "provider_paused"]

_LOGGER = logging.getLogger(__name__)

_CHUNK = 64 * 1024
_SUCCESS, _FAILURE, _RELEASE = "success", "failure", "release"
_BREAKER_FAILURES = frozenset({502, 503, 504})
# Content codings urllib3 decodes without optional packages; we ask for these only.
_DECODED = frozenset({"gzip", "x-gzip", "deflate", "identity"})
# Never taken from the caller: its credentials do not travel upstream (RFC 9700 §4.9), ours are
# added here; Host and Content-Length come from the URL and body; we decode gzip/deflate only.
_NEVER_FORWARDED = (
    "Authorization",
    "Cookie",
    "Proxy-Authorization",
    "Host",
    "Content-Length",
    "Accept-Encoding",
)


def provider_paused(retry_after: int) -> Unavailable:
    """The 503 an open provider circuit answers with."""
    return Unavailable(
        "The provider FHIR server is failing; calls to it are paused. Retry later.",
        headers={"Retry-After": str(retry_after)},
    )


class _RedactUpstream(logging.Filter):
    """Keep provider hosts, paths and queries out of urllib3's log lines.

    Its debug lines name the host, port and request target of every call; a log must never
    carry a provider URL, so those lines are dropped and warnings keep only their wording.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return False
        if isinstance(record.args, tuple):
            record.args = tuple("…" if isinstance(arg, str) else arg for arg in record.args)
        return True


_REDACTION = _RedactUpstream()


def _redact_urllib3_logs() -> None:
    for name in ("urllib3.connectionpool", "urllib3.util.retry"):
        target = logging.getLogger(name)
        if _REDACTION not in target.filters:
            target.addFilter(_REDACTION)


class _ConnectionFailed(Exception):
    """No answer at all: refused, reset or dropped before the status line."""


class _Timeout(Exception):
    """Connect or read timeout, or the attempt's deadline passed."""


class ProviderTransport:
    """Sends proxied requests to a tenant's provider FHIR server; thread-safe."""

    def __init__(
        self,
        settings: Settings,
        auth: ProviderAuth,
        *,
        pool_size: int | None = None,
        breaker: CircuitBreaker | None = None,
        max_response_bytes: int = 32 * 1024 * 1024,
        sleep: Callable[[float], None] = time.sleep,
        ca_bundle: str | None = None,
        address_policy: AddressPolicy | None = None,
    ) -> None:
        self._auth = auth
        self._policy = address_policy or AddressPolicy(settings.allow_insecure_provider_urls)
        self._connect_timeout = float(settings.upstream_connect_timeout_seconds)
        self._read_timeout = float(settings.upstream_read_timeout_seconds)
        # One connection per worker thread: more would idle, fewer would be opened and dropped.
        self._pool_size = pool_size or settings.worker_threads
        self._breaker = breaker or CircuitBreaker(
            settings.circuit_failure_threshold,
            settings.circuit_open_seconds,
            refusal=provider_paused,
        )
        self._max_bytes = max_response_bytes
        self._sleep = sleep
        # A path to a CA bundle (tests, private CAs) still verifies; there is no way to turn
        # verification off.
        self._verify: str | bool = ca_bundle or True
        self._jitter = random.Random()  # noqa: S311 - retry jitter, not a secret
        self._lock = threading.Lock()
        self._sessions: dict[tuple[str, str], requests.Session] = {}
        _redact_urllib3_logs()

    @property
    def breaker(self) -> CircuitBreaker:
        """The circuit breaker (per provider base URL)."""
        return self._breaker

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
        """One request to the tenant's provider; the answer, or UpstreamError/Timeout/Unavailable.

        ``url`` must lie under ``tenant.provider_base_url`` (built by the path rules). Nothing
        waits past ``deadline`` (``time.monotonic()``, the request's budget): 504 then. Raises
        ``Unavailable`` (503) when the provider's circuit is open, ``UpstreamError`` (502) for
        no answer, a redirect, a broken or oversized answer, ``UpstreamTimeout`` (504);
        ``ProviderAuthError`` and ``SecretStoreUnavailable`` propagate from ``ProviderAuth``.
        """
        return self._send(
            tenant, method, url, headers, body, idempotent, use_breaker=True, deadline=deadline
        )

    def probe(self, tenant: TenantMapping, url: str, headers: Headers) -> UpstreamResponse:
        """A GET like ``send`` that neither consults nor feeds the circuit breaker (diagnosis)."""
        return self._send(tenant, "GET", url, headers, b"", True, use_breaker=False)

    def open_circuits(self) -> list[tuple[float, dict[str, str | None]]]:
        """1 for each tenant whose provider's circuit is open or half-open (a metric)."""
        with self._lock:
            keys = list(self._sessions)
        return [
            (1.0, {"circuit": "provider", "tenant": tenant_id})
            for tenant_id, base_url in keys
            if self._breaker.state(base_url) != CLOSED
        ]

    def close(self) -> None:
        """Close every pooled connection."""
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for session in sessions:
            session.close()

    # -- the call ---------------------------------------------------------------------------

    def _send(
        self,
        tenant: TenantMapping,
        method: str,
        url: str,
        headers: Headers,
        body: bytes,
        idempotent: bool,
        *,
        use_breaker: bool,
        deadline: float | None = None,
    ) -> UpstreamResponse:
        _check_url(tenant.provider_base_url, url)
        key = tenant.provider_base_url
        if use_breaker:
            self._breaker.before_call(key)
        # Until an attempt settles it, the call made no verdict (e.g. no credential): release.
        verdict = _RELEASE
        try:
            response, verdict = self._exchange(
                tenant, method.upper(), url, headers, body, idempotent, deadline
            )
            return response
        except _Ended as ended:
            verdict = ended.verdict
            raise ended.error from None
        finally:
            if use_breaker:
                if verdict == _SUCCESS:
                    self._breaker.record_success(key)
                elif verdict == _FAILURE:
                    self._breaker.record_failure(key)
                else:
                    self._breaker.release(key)

    def _exchange(
        self,
        tenant: TenantMapping,
        method: str,
        url: str,
        headers: Headers,
        body: bytes,
        idempotent: bool,
        deadline: float | None = None,
    ) -> tuple[UpstreamResponse, str]:
        """The answer and the breaker's verdict; an error ends the call as ``_Ended``."""
        session = self._session(tenant)
        auth_headers = self._auth.headers_for(tenant)
        started = time.monotonic()
        retried_connection = False
        refreshed = False
        # Logs name the tenant and the FHIR path, never the provider's URL
        # (docs/architecture.md §4).
        base_path = urlsplit(tenant.provider_base_url).path
        where = f"tenant {tenant.tenant_id} /{urlsplit(url).path[len(base_path) :].lstrip('/')}"
        while True:
            try:
                status, raw_headers, content = self._attempt(
                    session, method, url, _merge(headers, auth_headers), body, deadline
                )
            except _ConnectionFailed:
                if idempotent and not retried_connection:
                    retried_connection = True
                    self._sleep(self._jitter.uniform(0.05, 0.25))
                    continue
                _LOGGER.warning("upstream %s %s: no answer", method, where)
                raise _Ended(
                    UpstreamError("the provider FHIR server did not answer"), _FAILURE
                ) from None
            except _Timeout:
                if deadline is not None and time.monotonic() >= deadline:
                    # The request's own time ran out: no verdict on the provider.
                    raise _Ended(UpstreamTimeout(SPENT_TIME), _RELEASE) from None
                _LOGGER.warning("upstream %s %s: timed out", method, where)
                raise _Ended(
                    UpstreamTimeout("the provider FHIR server did not answer in time"), _FAILURE
                ) from None
            except _Broken as broken:
                _LOGGER.warning("upstream %s %s: %s", method, where, broken.reason)
                # A refused answer (redirect, oversized) still shows the provider is alive.
                verdict = _SUCCESS if isinstance(broken, _Refused) else _FAILURE
                raise _Ended(UpstreamError(broken.diagnostics), verdict) from None
            if status == 401 and not refreshed and self._auth.sends_credential(tenant):
                refreshed = True
                try:
                    auth_headers = self._auth.headers_for(
                        tenant, force_refresh=True, rejected=auth_headers
                    )
                except Exception as error:
                    # The provider did answer; our credential is what failed.
                    raise _Ended(error, _SUCCESS) from None
                continue
            elapsed_ms = (time.monotonic() - started) * 1000
            _LOGGER.debug("upstream %s %s -> %s in %.0f ms", method, where, status, elapsed_ms)
            verdict = _FAILURE if status in _BREAKER_FAILURES else _SUCCESS
            return UpstreamResponse(status, raw_headers, content, elapsed_ms), verdict

    def _attempt(
        self,
        session: requests.Session,
        method: str,
        url: str,
        headers: Headers,
        body: bytes,
        request_deadline: float | None = None,
    ) -> tuple[int, Headers, bytes]:
        import requests

        now = time.monotonic()
        deadline = now + self._connect_timeout + self._read_timeout
        if request_deadline is not None:
            deadline = min(deadline, request_deadline)
        left = deadline - now
        if left <= 0:
            raise _Timeout()
        try:
            response = session.request(
                method,
                url,
                headers=_flatten(headers),
                data=body if body else None,
                timeout=(min(self._connect_timeout, left), min(self._read_timeout, left)),
                allow_redirects=False,
                verify=self._verify,
                stream=True,
            )
        except AddressRefused as refused:
            # Nothing was sent: the address the provider's name led to is one we never reach.
            raise _Broken(
                f"refused address ({refused.reason})",
                "the provider FHIR server's address is not one EHR Bridge connects to",
            ) from None
        except requests.exceptions.Timeout:
            raise _Timeout() from None
        except requests.exceptions.SSLError:
            # A certificate that does not verify is not fixed by retrying.
            raise _Broken("TLS failed", "the provider FHIR server's TLS did not verify") from None
        except requests.exceptions.ConnectionError:
            raise _ConnectionFailed() from None
        except requests.exceptions.RequestException as error:
            raise _Broken(
                type(error).__name__, "the request to the provider FHIR server failed"
            ) from None
        try:
            status = response.status_code
            if 300 <= status < 400 and status != 304:
                raise _Refused(
                    f"redirected ({status}), not followed",
                    "the provider FHIR server redirected the request; redirects are not followed",
                )
            raw_headers = Headers(response.raw.headers.items())
            content = self._read_body(response, raw_headers, deadline)
        except BaseException:
            # Close, not release: the connection may still carry the unread rest of the body.
            response.close()
            raise
        response.close()
        return status, raw_headers, content

    def _read_body(self, response: requests.Response, headers: Headers, deadline: float) -> bytes:
        from urllib3.exceptions import HTTPError, ReadTimeoutError

        declared = headers.get("Content-Length")
        if declared and declared.strip().isdigit() and int(declared) > self._max_bytes:
            raise _Refused("answer over the size cap", _TOO_LARGE)
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in _read1_chunks(response, deadline, self._read_timeout):
                size += len(chunk)
                if size > self._max_bytes:
                    raise _Refused("answer over the size cap", _TOO_LARGE)
                chunks.append(chunk)
        except ReadTimeoutError:
            raise _Timeout() from None
        except (HTTPError, OSError, ValueError) as error:
            # ProtocolError (reset, incomplete), DecodeError (bad gzip), SSLError, ...
            raise _Broken(
                f"answer broken off ({type(error).__name__})",
                "the provider FHIR server broke off its answer",
            ) from None
        encoding = (headers.get("Content-Encoding") or "").strip().lower()
        if encoding in _DECODED:
            # The body is decoded now: its coding and length headers no longer describe it.
            headers.remove("Content-Encoding")
            headers.remove("Content-Length")
        return b"".join(chunks)

    # -- sessions ---------------------------------------------------------------------------

    def _session(self, tenant: TenantMapping) -> requests.Session:
        key = (tenant.tenant_id, tenant.provider_base_url)
        with self._lock:
            session = self._sessions.get(key)
            if session is not None:
                return session
            stale = [k for k in self._sessions if k[0] == tenant.tenant_id]
            retired = [self._sessions.pop(k) for k in stale]
            session = self._new_session()
            self._sessions[key] = session
        for old in retired:
            # The tenant was remapped to another provider: its old pool goes.
            old.close()
        return session

    def _new_session(self) -> requests.Session:
        session = upstream_session(self._pool_size, policy=self._policy)
        session.headers.update({"User-Agent": "EHR-Bridge", "Accept-Encoding": "gzip, deflate"})
        return session


_TOO_LARGE = "the provider's answer is larger than EHR Bridge accepts"


class _Broken(Exception):
    """The provider answered badly or not at all in a way a retry does not fix."""

    def __init__(self, reason: str, diagnostics: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.diagnostics = diagnostics


class _Refused(_Broken):
    """We refuse an answer the provider did give (redirect, oversized)."""


class _Ended(Exception):
    """The error that ends a call, with the circuit breaker's verdict on it."""

    def __init__(self, error: Exception, verdict: str) -> None:
        super().__init__(type(error).__name__)
        self.error = error
        self.verdict = verdict


def _read1_chunks(
    response: requests.Response, deadline: float, read_timeout: float
) -> Iterator[bytes]:
    """The decoded body, chunk by chunk as it arrives, within ``deadline``.

    ``read1`` returns what one socket read yields, so a trickling body is seen chunk by chunk and
    the deadline is checked between them; the socket timeout shrinks to the time left, so a
    stalled read cannot overrun the deadline either.
    """
    raw = response.raw
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise _Timeout()
        _set_socket_timeout(raw, min(read_timeout, left))
        chunk = raw.read1(_CHUNK, decode_content=True)
        if not chunk:
            return
        yield chunk


def _set_socket_timeout(raw: Any, seconds: float) -> None:
    connection = getattr(raw, "connection", None)
    sock = getattr(connection, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.settimeout(max(seconds, 0.001))


def _check_url(base: str, url: str) -> None:
    """The URL lies under the provider base (scheme, host, port and path prefix): §2 SSRF rule."""
    target = urlsplit(url)
    root = urlsplit(base)
    base_path = root.path.rstrip("/")
    inside = (
        target.scheme.lower() == root.scheme.lower()
        and target.netloc.lower() == root.netloc.lower()
        and not target.fragment
        and "@" not in target.netloc
        and (target.path == base_path or target.path.startswith(base_path + "/"))
    )
    relative = target.path[len(base_path) :]
    dotted = any(
        segment.lower().replace("%2e", ".") in (".", "..") for segment in relative.split("/")
    )
    if not inside or dotted or "\\" in url:
        raise FhirError(
            "the upstream URL is outside the provider base URL", status=500, code="exception"
        )


def _merge(headers: Headers, auth: dict[str, str]) -> Headers:
    out = Headers(headers.items())
    for name in _NEVER_FORWARDED:
        out.remove(name)
    for name, value in auth.items():
        out.set(name, value)
    return out


def _flatten(headers: Headers) -> dict[str, str]:
    """One value per name (repeats joined with ", ", RFC 9110 §5.3)."""
    merged: dict[str, tuple[str, list[str]]] = {}
    for name, value in headers.items():
        merged.setdefault(name.lower(), (name, []))[1].append(value)
    return {name: ", ".join(values) for name, values in merged.values()}
