"""Tenant mappings: an Azure AD tenant GUID to its provider FHIR server and allowed clients.

Callers are EHR Bridge clients (``allowed_client_ids``, with our access tokens) and, when the
mapping opts in, applications of the tenant's own Entra ID (``entra_app_ids``, presenting an
Entra app-only access token: ``shared/proxy/entra.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from shared.audit import change, fingerprint
from shared.fhir.versions import VERSIONS
from shared.ids import canonical_guid, is_guid
from shared.net.addresses import AddressPolicy, AddressRefused, InvalidHost
from shared.proxy.auth_kinds import (
    AUTH_KINDS,
    CREDENTIAL_FIELDS,
    AuthKind,
    AuthKindRuleBroken,
    AuthKindRules,
    UnknownAuthKind,
    auth_kind,
    kinds_requiring,
    one_of,
)
from shared.secret_store import utcnow
from shared.tables import (
    Entity,
    EntityChanged,
    EntityExists,
    EntityNotFound,
    EntityTable,
    ETagMismatch,
)

PARTITION = "tenant"
FHIR_VERSIONS = VERSIONS
MAX_URL_LENGTH = 2048
MAX_ALLOWED_CLIENTS = 100

FIELDS = frozenset(
    {
        "display_name",
        "provider_base_url",
        "provider_fhir_version",
        "provider_auth_kind",
        "provider_token_url",
        "provider_client_id",
        "provider_scope",
        "allowed_client_ids",
        "entra_app_ids",
        "enabled",
        "allow_writes",
        "capabilities",
    }
)
REQUIRED = frozenset({"provider_base_url", "provider_fhir_version"})


class TenantError(Exception):
    """Base class of tenant-registry errors."""


class TenantNotFound(TenantError):
    """No mapping for that tenant."""


class TenantConflict(TenantError):
    """The mapping changed concurrently, or already exists where it must not."""


class InvalidTenantInput(TenantError):
    """A mapping the registry will not store; ``field`` names the offending field."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class TenantMapping:
    """Where one tenant's FHIR calls go, and who may make them."""

    tenant_id: str
    provider_base_url: str
    provider_fhir_version: str
    provider_auth_kind: str = AuthKind.NONE
    display_name: str = ""
    provider_token_url: str = ""
    provider_client_id: str = ""
    provider_scope: str = ""
    allowed_client_ids: tuple[str, ...] = ()
    entra_app_ids: tuple[str, ...] = ()
    """Entra ID application ids of this tenant whose app-only tokens are accepted; () none."""
    enabled: bool = True
    allow_writes: bool = False
    # Operator overrides of what the provider can do (batch, sort_by_date, post_search) and
    # what its CapabilityStatement said when it was last checked; see shared/proxy/capabilities.
    capabilities: dict[str, bool] = field(default_factory=dict)
    detected_capabilities: dict[str, bool] = field(default_factory=dict)
    capabilities_checked_at: str = ""
    created_at: str = ""
    updated_at: str = ""
    etag: str | None = None

    def allows_client(self, client_id: str) -> bool:
        """True when ``client_id`` may obtain tokens for this tenant."""
        return client_id.lower() in self.allowed_client_ids

    def allows_entra_app(self, app_id: str) -> bool:
        """True when the Entra ID application ``app_id`` may call with its app-only token."""
        return app_id.lower() in self.entra_app_ids

    def to_json(self) -> dict[str, Any]:
        """The mapping as the management API shows it."""
        return {
            "tenant_id": self.tenant_id,
            "display_name": self.display_name,
            "provider_base_url": self.provider_base_url,
            "provider_fhir_version": self.provider_fhir_version,
            "provider_auth_kind": self.provider_auth_kind,
            "provider_token_url": self.provider_token_url or None,
            "provider_client_id": self.provider_client_id or None,
            "provider_scope": self.provider_scope or None,
            "allowed_client_ids": list(self.allowed_client_ids),
            "entra_app_ids": list(self.entra_app_ids),
            "enabled": self.enabled,
            "allow_writes": self.allow_writes,
            "capabilities": dict(self.capabilities),
            "detected_capabilities": dict(self.detected_capabilities),
            "capabilities_checked_at": self.capabilities_checked_at or None,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def validate_provider_url(value: object, field: str, *, allow_insecure: bool) -> str:
    """An absolute https URL (http and loopback only when ``allow_insecure``), normalised."""
    if not isinstance(value, str) or not value:
        raise InvalidTenantInput(f"{field} must be an absolute https URL", field)
    if len(value) > MAX_URL_LENGTH or any(c.isspace() or ord(c) < 0x20 for c in value):
        raise InvalidTenantInput(f"{field} must be an absolute https URL", field)
    if not value.isascii():
        raise InvalidTenantInput(f"{field} must be ASCII (punycode for IDN hosts)", field)
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise InvalidTenantInput(f"{field} must be an absolute http(s) URL", field)
    if parts.scheme == "http" and not allow_insecure:
        raise InvalidTenantInput(f"{field} must use https", field)
    if "@" in parts.netloc or parts.username or parts.password:
        raise InvalidTenantInput(f"{field} must not carry credentials", field)
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        raise InvalidTenantInput(f"{field} must not have a query or fragment", field)
    if (
        "\\" in value
        or "%" in parts.path
        or "//" in parts.path
        or "/../" in f"{parts.path}/"
        or "/./" in f"{parts.path}/"
    ):
        raise InvalidTenantInput(f"{field} has a path that is not plain", field)
    try:
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise InvalidTenantInput(f"{field} has an invalid port", field) from None
    if not host:
        raise InvalidTenantInput(f"{field} has no host", field)
    _check_host(host, field, allow_insecure=allow_insecure)
    return value.rstrip("/")


def _check_host(host: str, field: str, *, allow_insecure: bool) -> None:
    # Every numeric spelling is read as resolvers read it, and judged by the address it means.
    try:
        AddressPolicy(allow_local=allow_insecure).check_host(host)
    except InvalidHost:
        raise InvalidTenantInput(
            f"{field} has a host that is no DNS name or IP address", field
        ) from None
    except AddressRefused as refused:
        raise InvalidTenantInput(f"{field} must not be {refused.reason}", field) from None


def check_provider_addresses(mapping: TenantMapping, policy: AddressPolicy) -> None:
    """Refuse a mapping whose provider or token host resolves, now, to a refused address.

    The same policy holds at every connection (a name's answer can change after this check);
    checking here as well keeps such a mapping from being stored and checked at all.
    """
    for name in ("provider_base_url", "provider_token_url"):
        url = getattr(mapping, name)
        if not url:
            continue
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            policy.check_resolved(parts.hostname or "", port)
        except InvalidHost:
            raise InvalidTenantInput(
                f"{name} has a host that is no DNS name or IP address", name
            ) from None
        except AddressRefused as refused:
            raise InvalidTenantInput(
                f"{name} resolves to {refused.reason}, which EHR Bridge never connects to",
                name,
            ) from None


def _flag(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidTenantInput(f"{field} must be true or false", field)
    return value


def _text(value: object, field: str, limit: int = 200) -> str:
    if not isinstance(value, str) or len(value) > limit or not value.isprintable():
        raise InvalidTenantInput(
            f"{field} must be printable text of at most {limit} characters", field
        )
    return value.strip()


def parse_mapping(
    tenant_id: str,
    body: Mapping[str, Any],
    *,
    allow_insecure: bool,
    client_exists: Callable[[str], bool],
    managed_identity_scopes: tuple[str, ...] = (),
) -> TenantMapping:
    """Validate a mapping document from the API or CLI; every problem names its field."""
    if not is_guid(tenant_id):
        raise InvalidTenantInput("tenant id must be a GUID (8-4-4-4-12 hex)", "tenant_id")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise InvalidTenantInput(f"unknown field: {unknown[0]}", unknown[0])
    missing = sorted(REQUIRED - set(body))
    if missing:
        raise InvalidTenantInput(f"missing field: {missing[0]}", missing[0])
    base = validate_provider_url(
        body["provider_base_url"], "provider_base_url", allow_insecure=allow_insecure
    )
    version = body["provider_fhir_version"]
    if version not in FHIR_VERSIONS:
        raise InvalidTenantInput(
            "provider_fhir_version must be dstu2, stu3 or r4", "provider_fhir_version"
        )
    rules = _auth_kind(body.get("provider_auth_kind", AuthKind.NONE))
    credential = _credential_fields(rules, body, allow_insecure=allow_insecure)
    scope = _text(body.get("provider_scope", ""), "provider_scope", 500)
    try:
        rules.check(scope, base, managed_identity_scopes)
    except AuthKindRuleBroken as broken:
        raise InvalidTenantInput(str(broken), broken.field) from None
    clients = body.get("allowed_client_ids", [])
    if not isinstance(clients, list) or len(clients) > MAX_ALLOWED_CLIENTS:
        raise InvalidTenantInput(
            f"allowed_client_ids must be a list of at most {MAX_ALLOWED_CLIENTS} client ids",
            "allowed_client_ids",
        )
    allowed: list[str] = []
    for client_id in clients:
        if not is_guid(client_id):
            raise InvalidTenantInput("allowed_client_ids must hold GUIDs", "allowed_client_ids")
        canonical = canonical_guid(client_id)
        if not client_exists(canonical):
            raise InvalidTenantInput(
                f"allowed_client_ids: unknown client {canonical}", "allowed_client_ids"
            )
        if canonical not in allowed:
            allowed.append(canonical)
    entra_apps = _entra_app_ids(body.get("entra_app_ids", []))
    return TenantMapping(
        tenant_id=canonical_guid(tenant_id),
        provider_base_url=base,
        provider_fhir_version=version,
        provider_auth_kind=rules.kind,
        display_name=_text(body.get("display_name", ""), "display_name"),
        provider_token_url=credential.get("provider_token_url", ""),
        provider_client_id=credential.get("provider_client_id", ""),
        provider_scope=scope,
        allowed_client_ids=tuple(allowed),
        entra_app_ids=entra_apps,
        enabled=_flag(body.get("enabled", True), "enabled"),
        allow_writes=_flag(body.get("allow_writes", False), "allow_writes"),
        capabilities=_capabilities(body.get("capabilities", {})),
    )


def _entra_app_ids(value: object) -> tuple[str, ...]:
    """Entra application ids (GUIDs, any case), stored lower case, each once."""
    if not isinstance(value, list) or len(value) > MAX_ALLOWED_CLIENTS:
        raise InvalidTenantInput(
            f"entra_app_ids must be a list of at most {MAX_ALLOWED_CLIENTS} application ids",
            "entra_app_ids",
        )
    if not all(is_guid(app_id) for app_id in value):
        raise InvalidTenantInput("entra_app_ids must hold GUIDs", "entra_app_ids")
    return tuple(dict.fromkeys(canonical_guid(app_id) for app_id in value))


def _auth_kind(value: object) -> AuthKindRules:
    try:
        return auth_kind(value)
    except UnknownAuthKind:
        raise InvalidTenantInput(
            f"provider_auth_kind must be {one_of(list(AUTH_KINDS))}", "provider_auth_kind"
        ) from None


def _credential_fields(
    rules: AuthKindRules, body: Mapping[str, Any], *, allow_insecure: bool
) -> dict[str, str]:
    """The fields the auth kind requires, validated; a field of another kind is refused."""
    missing = [name for name in rules.required if name not in body]
    if missing:
        raise InvalidTenantInput(f"{missing[0]} is required for {rules.kind}", missing[0])
    for name in CREDENTIAL_FIELDS:
        if name not in rules.required and body.get(name):
            owners = one_of(kinds_requiring(name))
            raise InvalidTenantInput(f"{name} applies only to {owners}", name)
    return {
        name: _credential_field(name, body[name], allow_insecure=allow_insecure)
        for name in rules.required
    }


def _credential_field(name: str, value: object, *, allow_insecure: bool) -> str:
    if name == "provider_token_url":
        # A token endpoint is a provider address too: the base URL's rules hold.
        return validate_provider_url(value, name, allow_insecure=allow_insecure)
    return _text(value, name)


def _capabilities(value: object) -> dict[str, bool]:
    from shared.proxy.capabilities import validate_overrides

    try:
        return validate_overrides(value)
    except ValueError as error:
        raise InvalidTenantInput(str(error), "capabilities") from None


def _properties(mapping: TenantMapping, created_at: str, updated_at: str) -> dict[str, Any]:
    return {
        "display_name": mapping.display_name,
        "provider_base_url": mapping.provider_base_url,
        "provider_fhir_version": mapping.provider_fhir_version,
        "provider_auth_kind": mapping.provider_auth_kind,
        "provider_token_url": mapping.provider_token_url,
        "provider_client_id": mapping.provider_client_id,
        "provider_scope": mapping.provider_scope,
        # Tables have no list type: a JSON array in a string column.
        "allowed_client_ids": json.dumps(list(mapping.allowed_client_ids)),
        "entra_app_ids": json.dumps(list(mapping.entra_app_ids)),
        "enabled": mapping.enabled,
        "allow_writes": mapping.allow_writes,
        "capabilities": json.dumps(mapping.capabilities),
        "detected_capabilities": json.dumps(mapping.detected_capabilities),
        "capabilities_checked_at": mapping.capabilities_checked_at,
        "created_at": created_at,
        "updated_at": updated_at,
    }


def _mapping(entity: Entity) -> TenantMapping:
    p = entity.properties
    return TenantMapping(
        tenant_id=entity.row_key,
        provider_base_url=str(p.get("provider_base_url", "")),
        provider_fhir_version=str(p.get("provider_fhir_version", "")),
        provider_auth_kind=str(p.get("provider_auth_kind", "none")),
        display_name=str(p.get("display_name", "")),
        provider_token_url=str(p.get("provider_token_url", "")),
        provider_client_id=str(p.get("provider_client_id", "")),
        provider_scope=str(p.get("provider_scope", "")),
        allowed_client_ids=tuple(json.loads(p.get("allowed_client_ids") or "[]")),
        entra_app_ids=tuple(json.loads(p.get("entra_app_ids") or "[]")),
        enabled=bool(p.get("enabled", False)),
        allow_writes=bool(p.get("allow_writes", False)),
        capabilities=json.loads(p.get("capabilities") or "{}"),
        detected_capabilities=json.loads(p.get("detected_capabilities") or "{}"),
        capabilities_checked_at=str(p.get("capabilities_checked_at", "")),
        created_at=str(p.get("created_at", "")),
        updated_at=str(p.get("updated_at", "")),
        etag=entity.etag,
    )


class TenantRegistry:
    """Create, read, replace and delete tenant mappings with ETag concurrency."""

    def __init__(self, table: EntityTable) -> None:
        self._table = table

    def get(self, tenant_id: str) -> TenantMapping:
        """One mapping, or TenantNotFound."""
        if not is_guid(tenant_id):
            raise TenantNotFound(tenant_id)
        try:
            return _mapping(self._table.get(PARTITION, canonical_guid(tenant_id)))
        except EntityNotFound:
            raise TenantNotFound(tenant_id) from None

    def list_all(self) -> list[TenantMapping]:
        """Every mapping, sorted by tenant id."""
        return sorted(
            (_mapping(e) for e in self._table.query_partition(PARTITION)), key=lambda m: m.tenant_id
        )

    def put(
        self,
        mapping: TenantMapping,
        *,
        if_match: str | None = None,
        create_only: bool = False,
    ) -> tuple[TenantMapping, bool]:
        """Create or replace a mapping; returns it and whether it was created."""
        now = utcnow().isoformat()
        try:
            current = self.get(mapping.tenant_id)
        except TenantNotFound:
            current = None
        if current is None:
            if if_match is not None:
                raise ETagMismatch("the mapping does not exist (If-Match)")
            try:
                stored = self._table.create(
                    Entity(PARTITION, mapping.tenant_id, _properties(mapping, now, now))
                )
            except EntityExists:
                raise TenantConflict("the tenant was created concurrently; retry") from None
            change("tenant.created", **_audit_fields(mapping), changes=_changes(None, mapping))
            return _mapping(stored), True
        if create_only:
            raise TenantConflict("the tenant is already mapped")
        if if_match is not None and if_match != current.etag:
            raise ETagMismatch("the mapping changed since you read it (If-Match)")
        if not mapping.detected_capabilities and mapping.provider_base_url == (
            current.provider_base_url
        ):
            # Same provider: what we learnt about it still holds.
            mapping = replace(
                mapping,
                detected_capabilities=current.detected_capabilities,
                capabilities_checked_at=current.capabilities_checked_at,
            )
        entity = Entity(
            PARTITION,
            mapping.tenant_id,
            _properties(mapping, current.created_at, now),
            current.etag,
        )
        try:
            stored = self._table.replace(entity)
        except EntityChanged:
            raise TenantConflict("the mapping changed concurrently; read it and retry") from None
        except EntityNotFound:
            raise TenantConflict("the mapping was deleted concurrently; retry") from None
        change("tenant.replaced", **_audit_fields(mapping), changes=_changes(current, mapping))
        return _mapping(stored), False

    def record_capabilities(self, tenant_id: str, detected: dict[str, bool]) -> TenantMapping:
        """Store what the provider's CapabilityStatement declared, and when."""
        current = self.get(tenant_id)
        checked = replace(
            current,
            detected_capabilities=dict(detected),
            capabilities_checked_at=utcnow().isoformat(),
        )
        entity = Entity(
            PARTITION,
            current.tenant_id,
            _properties(checked, current.created_at, current.updated_at),
            current.etag,
        )
        try:
            return _mapping(self._table.replace(entity))
        except (EntityChanged, EntityNotFound):
            raise TenantConflict("the mapping changed while it was checked; check again") from None

    def delete(self, tenant_id: str, *, if_match: str | None = None) -> None:
        """Remove a mapping (offboarding); its tokens stop routing within the cache TTL."""
        current = self.get(tenant_id)
        if if_match is not None and if_match != current.etag:
            raise ETagMismatch("the mapping changed since you read it (If-Match)")
        try:
            self._table.delete(PARTITION, current.tenant_id, etag=current.etag)
        except EntityChanged:
            raise TenantConflict("the mapping changed concurrently; read it and retry") from None
        change("tenant.deleted", tenant_id=current.tenant_id, changes=_changes(current, None))


# Fields whose values are logged as a fingerprint only: they name (or embed) the provider's host.
_FINGERPRINTED = ("provider_base_url", "provider_token_url", "provider_scope")
_AUDITED = (
    "display_name",
    "provider_base_url",
    "provider_fhir_version",
    "provider_auth_kind",
    "provider_token_url",
    "provider_client_id",
    "provider_scope",
    "allowed_client_ids",
    "entra_app_ids",
    "enabled",
    "allow_writes",
    "capabilities",
)


def _audited_value(mapping: TenantMapping | None, name: str) -> Any:
    if mapping is None:
        return None
    value = getattr(mapping, name)
    if name in _FINGERPRINTED:
        return fingerprint(value)
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value


def _changes(old: TenantMapping | None, new: TenantMapping | None) -> dict[str, Any]:
    """Each changed field's old and new value (URLs and scope as fingerprints)."""
    found: dict[str, Any] = {}
    for name in _AUDITED:
        before, after = _audited_value(old, name), _audited_value(new, name)
        if before != after:
            found[name] = {"old": before, "new": after}
    return found


def _audit_fields(mapping: TenantMapping) -> dict[str, Any]:
    # The provider URL is configuration, not a secret, but it stays out of logs anyway:
    # responses and logs never name an upstream.
    return {
        "tenant_id": mapping.tenant_id,
        "provider_fhir_version": mapping.provider_fhir_version,
        "provider_auth_kind": mapping.provider_auth_kind,
        "allowed_client_ids": list(mapping.allowed_client_ids),
        "entra_app_ids": list(mapping.entra_app_ids),
        "enabled": mapping.enabled,
    }
