"""What a proxied FHIR request does: the interaction the proxy serves and the audit records."""

from __future__ import annotations

from enum import StrEnum

from shared.fhir.paths import FhirPath


class Interaction(StrEnum):
    """The interactions of the ``fhir.request`` audit event (README, "Audit")."""

    READ = "read"
    """``GET [type]/[id]``."""
    SEARCH = "search"
    """``GET [type]?…`` or ``POST [type]/_search``."""
    HISTORY = "history"
    """``GET [type]/[id]/_history[/vid]``."""
    BATCH = "batch"
    """``POST`` of a batch Bundle to the base."""
    WRITE = "write"
    """Anything else; only for a tenant whose mapping allows writes."""


# The interaction a GET asks for, by the shape of its path (shared/fhir/paths.py). A GET on the
# base or on _search would be a search the proxy does not take (405).
_GETS = {
    "instance": Interaction.READ,
    "type": Interaction.SEARCH,
    "history": Interaction.HISTORY,
    "base": Interaction.SEARCH,
    "search-post": Interaction.SEARCH,
}


def interaction_of(method: str, path: FhirPath) -> Interaction:
    """The interaction a request's method and path ask for."""
    if method == "GET":
        # An allow-listed $operation (there are none today) is a read of what it computes.
        return _GETS.get(path.interaction, Interaction.READ)
    if method == "POST" and path.interaction == "search-post":
        return Interaction.SEARCH
    if method == "POST" and path.interaction == "base":
        return Interaction.BATCH
    return Interaction.WRITE
