"""FHIR request failures, each with the HTTP status and OperationOutcome issue code it answers
with. The proxy and the sandbox provider raise them alike; whoever catches one answers an
OperationOutcome in the face's version."""

from __future__ import annotations


class FhirError(Exception):
    """A request answered with an OperationOutcome instead of a resource.

    ``diagnostics`` reaches the caller: it names the rule that failed and never carries
    request input, a token, a secret, or a provider URL.
    """

    status = 400
    code = "invalid"

    def __init__(
        self,
        diagnostics: str,
        *,
        status: int | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(diagnostics)
        self.diagnostics = diagnostics
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.headers = dict(headers or {})


class InvalidRequest(FhirError):
    """The request is malformed or outside what is served or forwarded (400)."""


class NotFound(FhirError):
    """No such resource type or interaction here (404)."""

    status = 404
    code = "not-found"


class MethodNotAllowed(FhirError):
    """A write, or a method the interaction does not take (405, with Allow)."""

    status = 405
    code = "not-supported"


class Unauthorized(FhirError):
    """The bearer token is missing, malformed, expired or revoked (401 + challenge)."""

    status = 401
    code = "login"


class Forbidden(FhirError):
    """Valid token, but the tenant or client may not do this (403)."""

    status = 403
    code = "forbidden"


class TooLarge(FhirError):
    """Body or URL over the cap (413 or 414)."""

    status = 413
    code = "too-long"


class RateLimited(FhirError):
    """Over a per-tenant or per-client rate (429 + Retry-After)."""

    status = 429
    code = "throttled"


class NotConvertible(FhirError):
    """The face and the provider speak different FHIR versions and this cannot be converted."""

    status = 501
    code = "not-supported"


class UpstreamError(FhirError):
    """The provider failed, refused us, redirected, or answered garbage (502)."""

    status = 502
    code = "exception"


class UpstreamTimeout(FhirError):
    """The provider did not answer in time (504)."""

    status = 504
    code = "timeout"


class Unavailable(FhirError):
    """Our own dependency, or a provider's open circuit, cannot serve now (503 + Retry-After)."""

    status = 503
    code = "transient"
