"""Identifier rules: tenant GUIDs, client ids and the names derived from them."""

from __future__ import annotations

import re
import uuid

# uuid.UUID() accepts braces, urn:uuid:, undashed and full-width digits; a tenant id in a token
# or a table key must have exactly one spelling, so validate with a strict ASCII pattern.
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def is_guid(value: object) -> bool:
    """True for a canonical 8-4-4-4-12 ASCII hex GUID (either case)."""
    return isinstance(value, str) and _GUID.fullmatch(value) is not None


def canonical_guid(value: str) -> str:
    """The lower-case form of a GUID already checked with ``is_guid``."""
    return value.lower()


def new_client_id() -> str:
    """A fresh, server-generated client id (random GUID, lower case)."""
    return str(uuid.uuid4())


def client_secret_name(client_id: str) -> str:
    """Key Vault secret name holding a client's secret versions."""
    return f"client-{client_id}"


def provider_secret_name(tenant_id: str) -> str:
    """Key Vault secret name holding a tenant's provider credential."""
    return f"provider-{tenant_id}"


SIGNING_KEY_NAME = "token-signing-key"
# The key of the client assertions we sign for providers: never the access-token key (RFC 8725
# §3.12: a JWT of one kind must not pass for another, so each kind has its own key).
ASSERTION_KEY_NAME = "assertion-signing-key"
