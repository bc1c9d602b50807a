"""OAuth client registration and secret rotation.

A client is a row in the ``clients`` table (no secret there) plus the Key Vault secret
``client-<client_id>``, whose versions are the client's secrets. Rotation adds a version and
retires the older ones, at once or after a grace period (their ``expires_on``).
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.audit import change, fingerprint
from shared.auth.client_secrets import hash_secret, is_hashed, new_client_secret
from shared.auth.smart_scopes import DEFAULT_SCOPES, InvalidScope, parse_scopes, registered
from shared.ids import client_secret_name, is_guid, new_client_id
from shared.secret_store import (
    SecretDisabled,
    SecretNotFound,
    SecretStore,
    SecretStoreError,
    SecretVersion,
    disable_version,
    utcnow,
)
from shared.tables import Entity, EntityChanged, EntityNotFound, EntityTable, ETagMismatch

log = logging.getLogger(__name__)

PARTITION = "client"
CLIENT_CREDENTIALS = "client_credentials"
MAX_GRACE_SECONDS = 30 * 24 * 3600
MAX_DISPLAY_NAME = 200
# What a secret version's Key Vault tags say about it (never the secret): its description, and
# its hint, the first characters of the secret, as the Azure portal shows them. Three of the 43
# characters of a 256-bit secret: 18 bits told, 238 still unknown, and enough for a person to
# tell which secret a configuration holds.
DESCRIPTION_TAG = "description"
HINT_TAG = "hint"
HINT_CHARS = 3
MAX_DESCRIPTION = 100
# How long one rotation may hold a client (a crashed one frees it after this).
ROTATION_LEASE_SECONDS = 60


class ClientError(Exception):
    """Base class of client-registry errors."""


class ClientNotFound(ClientError):
    """No client with that id."""


class ClientConflict(ClientError):
    """The client changed concurrently, or the request contradicts its state."""


class InvalidClientInput(ClientError):
    """A value the registry will not store; the message names the field."""


@dataclass(frozen=True)
class ClientRecord:
    """A registered client as stored in the table (never its secret)."""

    client_id: str
    display_name: str
    enabled: bool
    grant_types: tuple[str, ...]
    created_at: str
    updated_at: str
    # SMART system scopes (shared/auth/smart_scopes.py): the most a token may carry, and what a
    # request naming only its tenant gets. Rows stored before scopes existed read as the default.
    allowed_scopes: tuple[str, ...] = DEFAULT_SCOPES
    default_scopes: tuple[str, ...] = DEFAULT_SCOPES
    # May introspect (RFC 7662) the tokens of other clients, for tenants that allow it.
    resource_server: bool = False
    etag: str | None = None
    # "<expiry ISO time> <random id>" while a rotation runs; empty otherwise. Not shown.
    rotation_lease: str = ""
    # private_key_jwt (shared/auth/client_keys.py): a JWKS URL or an inline JWK Set, or neither.
    jwks_uri: str = ""
    jwks: str = ""

    @property
    def has_keys(self) -> bool:
        """True when the client may authenticate with ``private_key_jwt``."""
        return bool(self.jwks_uri or self.jwks)

    def to_json(self) -> dict[str, Any]:
        """The record as the management API shows it."""
        return {
            "client_id": self.client_id,
            "display_name": self.display_name,
            "enabled": self.enabled,
            "grant_types": list(self.grant_types),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "allowed_scopes": list(self.allowed_scopes),
            "default_scopes": list(self.default_scopes),
            "resource_server": self.resource_server,
        }


@dataclass(frozen=True)
class IssuedSecret:
    """A freshly generated secret, returned exactly once."""

    client: ClientRecord
    secret: str
    version: SecretVersion

    def __repr__(self) -> str:
        return (
            f"IssuedSecret(client_id={self.client.client_id!r}, version={self.version.version!r})"
        )


def version_json(props: SecretVersion, now: datetime | None = None) -> dict[str, Any]:
    """A secret version's metadata as the management API shows it (no value)."""
    return {
        "version": props.version,
        "description": props.tags.get(DESCRIPTION_TAG, ""),
        "hint": props.tags.get(HINT_TAG, ""),
        "state": props.state(now),
        "enabled": props.enabled,
        "created_on": props.created_on.isoformat(),
        "expires_on": props.expires_on.isoformat() if props.expires_on else None,
        "not_before": props.not_before.isoformat() if props.not_before else None,
    }


def validate_display_name(value: object) -> str:
    """A printable display name of at most 200 characters."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidClientInput("display_name must be a non-empty string")
    if len(value) > MAX_DISPLAY_NAME or not value.isprintable():
        raise InvalidClientInput("display_name must be printable and at most 200 characters")
    return value.strip()


def validate_description(value: object) -> str:
    """A printable secret description of at most 100 characters ("" for none)."""
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION or not value.isprintable():
        raise InvalidClientInput(
            f"description must be printable and at most {MAX_DESCRIPTION} characters"
        )
    return value.strip()


def secret_tags(client_id: str, secret: str, description: str) -> dict[str, str]:
    """The Key Vault tags of a new secret version: its client, description and hint."""
    tags = {"client_id": client_id, HINT_TAG: secret[:HINT_CHARS]}
    if description:
        tags[DESCRIPTION_TAG] = description
    return tags


def _record(entity: Entity) -> ClientRecord:
    props = entity.properties
    grants = tuple(g for g in str(props.get("grant_types", CLIENT_CREDENTIALS)).split() if g)
    return ClientRecord(
        client_id=entity.row_key,
        display_name=str(props.get("display_name", "")),
        enabled=bool(props.get("enabled", False)),
        grant_types=grants,
        created_at=str(props.get("created_at", "")),
        updated_at=str(props.get("updated_at", "")),
        allowed_scopes=_stored_scopes(props.get("allowed_scopes")),
        default_scopes=_stored_scopes(props.get("default_scopes")),
        resource_server=props.get("resource_server") is True,
        etag=entity.etag,
        rotation_lease=str(props.get("rotation_lease", "")),
        jwks_uri=str(props.get("jwks_uri", "")),
        jwks=str(props.get("jwks", "")),
    )


def _stored_scopes(value: object) -> tuple[str, ...]:
    # A row no one wrote scopes to, or one no longer valid, reads as the safe default.
    try:
        return registered(value)
    except InvalidScope:
        log.warning("a client row holds scopes that are no longer valid; reading the default")
        return DEFAULT_SCOPES


def validate_scopes(
    allowed: object, default: object, current: ClientRecord
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The allowed and default scopes to store; the default must lie within the allowed."""
    try:
        maximum = current.allowed_scopes if allowed is None else registered(allowed)
    except InvalidScope as error:
        raise InvalidClientInput(f"allowed_scopes: {error}") from None
    try:
        chosen = current.default_scopes if default is None else registered(default)
    except InvalidScope as error:
        raise InvalidClientInput(f"default_scopes: {error}") from None
    if not parse_scopes(maximum).covers(parse_scopes(chosen)):
        raise InvalidClientInput("default_scopes must lie within allowed_scopes")
    return maximum, chosen


def _props(record: ClientRecord, **changes: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "display_name": record.display_name,
        "enabled": record.enabled,
        "grant_types": " ".join(record.grant_types),
        "allowed_scopes": " ".join(record.allowed_scopes),
        "default_scopes": " ".join(record.default_scopes),
        "resource_server": record.resource_server,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "rotation_lease": record.rotation_lease,
        "jwks_uri": record.jwks_uri,
        "jwks": record.jwks,
    }
    props.update(changes)
    return props


def _lease_active(lease: str, now: datetime) -> bool:
    until = lease.split(" ", 1)[0]
    try:
        return bool(until) and datetime.fromisoformat(until) > now
    except ValueError:
        return False


class ClientRegistry:
    """Registers clients, rotates and disables their secrets."""

    def __init__(self, table: EntityTable, secrets: SecretStore) -> None:
        self._table = table
        self._secrets = secrets
        self._locks_guard = threading.Lock()
        self._rotation_locks: dict[str, threading.Lock] = {}

    def register(
        self,
        display_name: str,
        *,
        description: str = "",
        expires_on: datetime | None = None,
    ) -> IssuedSecret:
        """Create a client with a server-generated id and secret (shown once)."""
        name = validate_display_name(display_name)
        description = validate_description(description)
        client_id = new_client_id()
        secret = new_client_secret()
        # Secret first: a client row without a secret could never authenticate, but a row
        # written before a failed secret write would look registered when it is not.
        version = self._secrets.set_secret(
            client_secret_name(client_id),
            hash_secret(secret),
            expires_on=expires_on,
            tags=secret_tags(client_id, secret, description),
        )
        now = utcnow().isoformat()
        entity = Entity(
            PARTITION,
            client_id,
            {
                "display_name": name,
                "enabled": True,
                "grant_types": CLIENT_CREDENTIALS,
                "created_at": now,
                "updated_at": now,
            },
        )
        try:
            stored = self._table.create(entity)
        except Exception:
            self._retire_orphan(client_id, version.version)
            raise
        record = _record(stored)
        change(
            "client.registered",
            client_id=client_id,
            secret_version=version.version,
            changes={
                "display_name": {"old": None, "new": name},
                "enabled": {"old": None, "new": True},
            },
        )
        return IssuedSecret(client=record, secret=secret, version=version)

    def _retire_orphan(self, client_id: str, version: str) -> None:
        try:
            disable_version(self._secrets, client_secret_name(client_id), version)
        except SecretStoreError:
            log.warning("could not disable orphaned secret version of client %s", client_id)

    def get(self, client_id: str) -> ClientRecord:
        """One client, or ClientNotFound."""
        if not is_guid(client_id):
            raise ClientNotFound(client_id)
        try:
            return _record(self._table.get(PARTITION, client_id.lower()))
        except EntityNotFound:
            raise ClientNotFound(client_id) from None

    def list_all(self) -> list[ClientRecord]:
        """Every client, sorted by display name."""
        records = [_record(e) for e in self._table.query_partition(PARTITION)]
        return sorted(records, key=lambda r: (r.display_name.lower(), r.client_id))

    def update(
        self,
        client_id: str,
        *,
        display_name: str | None = None,
        enabled: bool | None = None,
        if_match: str | None = None,
        allowed_scopes: object = None,
        default_scopes: object = None,
        resource_server: bool | None = None,
    ) -> ClientRecord:
        """Change a client's name, enabled flag, scopes or resource-server flag (ETag checked)."""
        current = self.get(client_id)
        if if_match is not None and if_match != current.etag:
            raise ETagMismatch("the client changed since you read it (If-Match)")
        maximum, default = validate_scopes(allowed_scopes, default_scopes, current)
        props = _props(
            current,
            display_name=current.display_name
            if display_name is None
            else validate_display_name(display_name),
            enabled=current.enabled if enabled is None else enabled,
            updated_at=utcnow().isoformat(),
            allowed_scopes=" ".join(maximum),
            default_scopes=" ".join(default),
            resource_server=current.resource_server if resource_server is None else resource_server,
        )
        try:
            stored = self._table.replace(Entity(PARTITION, current.client_id, props, current.etag))
        except EntityChanged:
            raise ClientConflict("the client changed concurrently; read it and retry") from None
        except EntityNotFound:
            raise ClientNotFound(client_id) from None
        changes = {
            field: {"old": old, "new": props[field]}
            for field, old in (
                ("display_name", current.display_name),
                ("enabled", current.enabled),
                ("allowed_scopes", " ".join(current.allowed_scopes)),
                ("default_scopes", " ".join(current.default_scopes)),
                ("resource_server", current.resource_server),
            )
            if props[field] != old
        }
        change(
            "client.updated", client_id=current.client_id, enabled=props["enabled"], changes=changes
        )
        return _record(stored)

    def set_keys(
        self, client_id: str, jwks_uri: str, jwks: str, *, if_match: str | None = None
    ) -> ClientRecord:
        """Register (or, both empty, remove) the client's JWKS URL or inline JWK Set."""
        current = self.get(client_id)
        if if_match is not None and if_match != current.etag:
            raise ETagMismatch("the client changed since you read it (If-Match)")
        props = _props(current, jwks_uri=jwks_uri, jwks=jwks, updated_at=utcnow().isoformat())
        try:
            stored = self._table.replace(Entity(PARTITION, current.client_id, props, current.etag))
        except EntityChanged:
            raise ClientConflict("the client changed concurrently; read it and retry") from None
        except EntityNotFound:
            raise ClientNotFound(client_id) from None
        change(
            "client.keys_removed" if not (jwks_uri or jwks) else "client.keys_registered",
            client_id=current.client_id,
            changes={
                # A digest, as for provider URLs: audit logs are read more widely than the table.
                "jwks_uri": {"old": fingerprint(current.jwks_uri), "new": fingerprint(jwks_uri)},
                "jwks": {"old": bool(current.jwks), "new": bool(jwks)},
            },
        )
        return _record(stored)

    def rotate_secret(
        self,
        client_id: str,
        grace_seconds: int = 0,
        *,
        description: str = "",
        expires_on: datetime | None = None,
    ) -> IssuedSecret:
        """Add a new secret version; older usable versions expire after ``grace_seconds``."""
        description = validate_description(description)
        if (
            isinstance(grace_seconds, bool)
            or not isinstance(grace_seconds, int)
            or not 0 <= grace_seconds <= MAX_GRACE_SECONDS
        ):
            raise InvalidClientInput(
                f"grace_period_seconds must be an integer from 0 to {MAX_GRACE_SECONDS}"
            )
        with self._rotation(client_id) as record:
            return self._rotate(record, grace_seconds, description, expires_on)

    @contextmanager
    def _rotation(self, client_id: str) -> Iterator[ClientRecord]:
        """Hold the client for one rotation: queue on this instance, 409 against another.

        Two rotations at once would each retire what they saw before the other's new version
        existed, or retire the other's new version: a secret "shown once" would be disabled
        before anyone used it. One instance serialises with a lock; instances (and the ops CLI)
        take a lease on the client's row with its ETag.
        """
        key = client_id.lower()
        with self._locks_guard:
            lock = self._rotation_locks.setdefault(key, threading.Lock())
        with lock:
            record = self.get(client_id)
            now = utcnow()
            if _lease_active(record.rotation_lease, now):
                raise ClientConflict("another rotation of this client is in progress; retry")
            lease = f"{(now + timedelta(seconds=ROTATION_LEASE_SECONDS)).isoformat()} " + (
                secrets.token_hex(8)
            )
            try:
                stored = self._table.replace(
                    Entity(
                        PARTITION,
                        record.client_id,
                        _props(record, rotation_lease=lease),
                        record.etag,
                    )
                )
            except (EntityChanged, EntityNotFound):
                raise ClientConflict(
                    "the client changed while its secret was rotated; retry"
                ) from None
            try:
                yield _record(stored)
            finally:
                self._release(record.client_id, lease)

    def _release(self, client_id: str, lease: str) -> None:
        for _ in range(2):
            try:
                current = self.get(client_id)
                if current.rotation_lease != lease:
                    return
                self._table.replace(
                    Entity(PARTITION, client_id, _props(current, rotation_lease=""), current.etag)
                )
                return
            except (EntityChanged, ClientNotFound):
                continue
            except Exception:  # the lease ends on its own within a minute
                log.warning("could not release the rotation lease of client %s", client_id)
                return

    def _rotate(
        self,
        record: ClientRecord,
        grace_seconds: int,
        description: str = "",
        expires_on: datetime | None = None,
    ) -> IssuedSecret:
        name = client_secret_name(record.client_id)
        now = utcnow()
        previous = [v for v in self._secrets.list_versions(name) if v.is_usable(now)]
        secret = new_client_secret()
        version = self._secrets.set_secret(
            name,
            hash_secret(secret),
            expires_on=expires_on,
            tags=secret_tags(record.client_id, secret, description),
        )
        retire_at = now + timedelta(seconds=grace_seconds)
        changed: list[SecretVersion] = []
        try:
            for old in previous:
                if grace_seconds == 0:
                    self._secrets.update_version(name, old.version, enabled=False)
                elif old.expires_on is None or old.expires_on > retire_at:
                    self._secrets.update_version(name, old.version, expires_on=retire_at)
                else:
                    continue
                changed.append(old)
        except SecretStoreError:
            self._undo_rotation(name, version.version, changed)
            raise
        change(
            "client.secret_rotated",
            client_id=record.client_id,
            secret_version=version.version,
            grace_seconds=grace_seconds,
            retired_versions=[v.version for v in changed],
        )
        return IssuedSecret(client=record, secret=secret, version=version)

    def hash_stored_secrets(self, client_id: str) -> dict[str, list[str]]:
        """Replace each enabled plain-text secret version by a hashed copy; returns what changed.

        The copy keeps the version's validity window and tags; the plain version is then
        disabled (not just expired: Key Vault still returns an expired version's value).
        Tokens issued with a plain version stop within the cache TTL; the client's next token
        request, with the same secret, authenticates against the copy.
        """
        with self._rotation(client_id) as record:
            name = client_secret_name(record.client_id)
            now = utcnow()
            hashed: list[str] = []
            disabled: list[str] = []
            for props in self._secrets.list_versions(name):
                if not props.enabled:
                    continue
                try:
                    stored = self._secrets.get_secret(name, props.version)
                except (SecretDisabled, SecretNotFound):
                    continue
                if is_hashed(stored.value):
                    continue
                if props.expires_on is None or props.expires_on > now:
                    copy = self._secrets.set_secret(
                        name,
                        hash_secret(stored.value),
                        expires_on=props.expires_on,
                        not_before=props.not_before,
                        tags={**props.tags, "client_id": record.client_id},
                    )
                    hashed.append(copy.version)
                self._secrets.update_version(name, props.version, enabled=False)
                disabled.append(props.version)
        if disabled:
            change(
                "client.secrets_hashed",
                client_id=record.client_id,
                hashed_versions=hashed,
                disabled_versions=disabled,
            )
        return {"hashed_versions": hashed, "disabled_versions": disabled}

    def _undo_rotation(self, name: str, new_version: str, changed: list[SecretVersion]) -> None:
        """Best effort: disable the new version and restore what was already changed."""
        try:
            self._secrets.update_version(name, new_version, enabled=False)
            for old in changed:
                # Key Vault cannot clear an expiry through the SDK; an old version that had none
                # keeps the grace expiry, which only ever shortens its life.
                self._secrets.update_version(
                    name, old.version, enabled=old.enabled, expires_on=old.expires_on
                )
        except SecretStoreError:
            log.warning("rotation of %s failed and could not be fully undone", name)

    def list_secret_versions(self, client_id: str) -> list[SecretVersion]:
        """Metadata of every secret version of a client, newest first."""
        record = self.get(client_id)
        return self._secrets.list_versions(client_secret_name(record.client_id))

    def disable_secret_version(self, client_id: str, version: str) -> SecretVersion:
        """Disable one secret version immediately."""
        record = self.get(client_id)
        name = client_secret_name(record.client_id)
        known = {v.version for v in self._secrets.list_versions(name)}
        if version not in known:
            raise ClientNotFound(f"{client_id}/{version}")
        try:
            props = disable_version(self._secrets, name, version)
        except SecretNotFound:
            raise ClientNotFound(f"{client_id}/{version}") from None
        change("client.secret_disabled", client_id=record.client_id, secret_version=version)
        return props
