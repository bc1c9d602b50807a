"""The version-conversion hook: it sits between the request/response and the transport.

The proxy calls ``request`` before anything goes upstream and ``response`` on what comes back,
each with the face's and the provider's FHIR versions. The conversion milestone replaces
``SameVersionOnly`` with converters for every pair; until then a face over a provider of
another version answers 501.
"""

from __future__ import annotations

from typing import Protocol

from shared.proxy.errors import NotConvertible
from shared.proxy.model import UpstreamRequest, UpstreamResponse

LABELS = {"dstu2": "DSTU2", "stu3": "STU3", "r4": "R4"}


class VersionConverter(Protocol):
    """Converts requests from the face's version and responses back to it."""

    def request(self, face: str, provider: str, request: UpstreamRequest) -> UpstreamRequest:
        """The request as the provider's version spells it."""
        ...

    def response(self, face: str, provider: str, response: UpstreamResponse) -> UpstreamResponse:
        """The response as the face's version spells it."""
        ...


class SameVersionOnly:
    """Passes same-version traffic through untouched and refuses the rest with 501."""

    def request(self, face: str, provider: str, request: UpstreamRequest) -> UpstreamRequest:
        """Refuse a cross-version request; pass a same-version one through."""
        if face != provider:
            raise NotConvertible(
                f"This endpoint speaks FHIR {LABELS[face]} and this tenant's provider speaks "
                f"{LABELS.get(provider, provider)}; conversion between them is not available "
                "yet. Use the endpoint of the provider's version."
            )
        return request

    def response(self, face: str, provider: str, response: UpstreamResponse) -> UpstreamResponse:
        """Same-version responses need no change."""
        return response
