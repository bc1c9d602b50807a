"""Named, versioned secrets with Key Vault's semantics, and a local file-backed store.

The interface mirrors exactly the Key Vault behaviour EHR Bridge relies on. Two Key Vault facts
shape it: a disabled version answers 403 ``SecretDisabled`` (surfaced as ``SecretDisabled``), and
``expires_on``/``not_before`` are *not* enforced on reads, so callers check ``is_usable`` in code.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol


class SecretStoreError(Exception):
    """Base class of secret-store failures."""


class SecretNotFound(SecretStoreError):
    """No such secret, or no such version."""


class SecretDisabled(SecretStoreError):
    """The version exists but is disabled (Key Vault answers 403 SecretDisabled)."""


class SecretStoreUnavailable(SecretStoreError):
    """The store could not answer in time (throttled, down, timing out, or denied by RBAC)."""

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LocalStoreRefused(SecretStoreError):
    """The local store was asked to start where it must not (in Azure)."""


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class SecretVersion:
    """Properties of one version of a secret; never its value."""

    name: str
    version: str
    enabled: bool
    created_on: datetime
    updated_on: datetime | None = None
    expires_on: datetime | None = None
    not_before: datetime | None = None
    tags: dict[str, str] = field(default_factory=dict)

    def is_usable(self, now: datetime | None = None) -> bool:
        """Enabled and inside its not-before/expires window (checked here, not by the store)."""
        moment = now or utcnow()
        if not self.enabled:
            return False
        if self.not_before is not None and moment < self.not_before:
            return False
        return not (self.expires_on is not None and moment >= self.expires_on)

    def state(self, now: datetime | None = None) -> str:
        """One word for operators: active, pending, expired or disabled."""
        moment = now or utcnow()
        if not self.enabled:
            return "disabled"
        if self.expires_on is not None and moment >= self.expires_on:
            return "expired"
        if self.not_before is not None and moment < self.not_before:
            return "pending"
        return "active"


@dataclass(frozen=True)
class Secret:
    """A secret value with the properties of its version."""

    properties: SecretVersion
    value: str = field(repr=False)


class SecretStore(Protocol):
    """What EHR Bridge needs from Key Vault."""

    def set_secret(
        self,
        name: str,
        value: str,
        *,
        expires_on: datetime | None = None,
        not_before: datetime | None = None,
        tags: dict[str, str] | None = None,
    ) -> SecretVersion:
        """Create a new, enabled version of ``name``."""
        ...

    def get_secret(self, name: str, version: str | None = None) -> Secret:
        """One version's value (the latest when ``version`` is None)."""
        ...

    def list_versions(self, name: str) -> list[SecretVersion]:
        """Every version's properties, newest first; [] for an unknown secret. No values."""
        ...

    def update_version(
        self,
        name: str,
        version: str,
        *,
        enabled: bool | None = None,
        expires_on: datetime | None = None,
    ) -> SecretVersion:
        """Change a version's ``enabled`` flag or expiry."""
        ...


def disable_version(store: SecretStore, name: str, version: str) -> SecretVersion:
    """Disable one version at once; it stops authenticating immediately."""
    return store.update_version(name, version, enabled=False)


def usable_secrets(store: SecretStore, name: str, now: datetime | None = None) -> list[Secret]:
    """Values of every version that is enabled and inside its validity window, newest first."""
    moment = now or utcnow()
    found: list[Secret] = []
    for props in store.list_versions(name):
        if not props.is_usable(moment):
            continue
        try:
            found.append(store.get_secret(name, props.version))
        except (SecretDisabled, SecretNotFound):
            # Disabled or deleted between the listing and the read: not usable.
            continue
    return found


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


class LocalSecretStore:
    """A JSON-file secret store for development and tests; refuses to run in Azure.

    Every operation re-reads the file under an exclusive lock, so the dev host and the ops CLI
    see each other's changes; writes go to a temporary file that replaces the original, so a
    crash never leaves it half-written. ``path=None`` keeps secrets in memory only.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        *,
        running_in_azure: bool = False,
        allow_in_azure: bool = False,
    ) -> None:
        if running_in_azure and not allow_in_azure:
            raise LocalStoreRefused(
                "the local secret store does not run in Azure; use Key Vault "
                "(or set EHRB_ALLOW_LOCAL_SECRET_STORE_IN_AZURE=true for a throwaway test slot)"
            )
        self._path = Path(path) if path is not None else None
        self._memory: dict[str, Any] = {"secrets": {}}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _document(self, write: bool) -> Iterator[dict[str, Any]]:
        with self._lock:
            if self._path is None:
                yield self._memory
                return
            self._path.parent.mkdir(parents=True, exist_ok=True)
            lock_path = self._path.with_suffix(self._path.suffix + ".lock")
            with open(lock_path, "a+") as lock_file:
                fcntl.flock(lock_file, fcntl.LOCK_EX)
                try:
                    doc = (
                        json.loads(self._path.read_text("utf-8"))
                        if self._path.exists()
                        else {"secrets": {}}
                    )
                    yield doc
                    if write:
                        self._atomic_write(doc)
                finally:
                    fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _atomic_write(self, doc: dict[str, Any]) -> None:
        assert self._path is not None
        fd, tmp = tempfile.mkstemp(dir=self._path.parent, prefix=".secrets-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(doc, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self._path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    @staticmethod
    def _props(name: str, raw: dict[str, Any]) -> SecretVersion:
        return SecretVersion(
            name=name,
            version=raw["version"],
            enabled=raw["enabled"],
            created_on=datetime.fromisoformat(raw["created_on"]),
            updated_on=_dt(raw.get("updated_on")),
            expires_on=_dt(raw.get("expires_on")),
            not_before=_dt(raw.get("not_before")),
            tags=dict(raw.get("tags") or {}),
        )

    def set_secret(
        self,
        name: str,
        value: str,
        *,
        expires_on: datetime | None = None,
        not_before: datetime | None = None,
        tags: dict[str, str] | None = None,
    ) -> SecretVersion:
        """Create a new, enabled version of ``name``."""
        now = utcnow()
        raw = {
            "version": secrets.token_hex(16),
            "value": value,
            "enabled": True,
            "created_on": now.isoformat(),
            "updated_on": now.isoformat(),
            "expires_on": _iso(expires_on),
            "not_before": _iso(not_before),
            "tags": dict(tags or {}),
        }
        with self._document(write=True) as doc:
            doc["secrets"].setdefault(name, []).append(raw)
        return self._props(name, raw)

    def get_secret(self, name: str, version: str | None = None) -> Secret:
        """One version's value (the latest when ``version`` is None)."""
        with self._document(write=False) as doc:
            versions = doc["secrets"].get(name) or []
            if not versions:
                raise SecretNotFound(name)
            if version is None:
                raw = versions[-1]
            else:
                matches = [v for v in versions if v["version"] == version]
                if not matches:
                    raise SecretNotFound(f"{name}/{version}")
                raw = matches[0]
            if not raw["enabled"]:
                raise SecretDisabled(f"{name}/{raw['version']}")
            return Secret(properties=self._props(name, raw), value=raw["value"])

    def list_versions(self, name: str) -> list[SecretVersion]:
        """Every version's properties, newest first; [] for an unknown secret."""
        with self._document(write=False) as doc:
            versions = doc["secrets"].get(name) or []
            return [self._props(name, raw) for raw in reversed(versions)]

    def update_version(
        self,
        name: str,
        version: str,
        *,
        enabled: bool | None = None,
        expires_on: datetime | None = None,
    ) -> SecretVersion:
        """Change a version's ``enabled`` flag or expiry."""
        with self._document(write=True) as doc:
            for raw in doc["secrets"].get(name) or []:
                if raw["version"] == version:
                    if enabled is not None:
                        raw["enabled"] = enabled
                    if expires_on is not None:
                        raw["expires_on"] = expires_on.isoformat()
                    raw["updated_on"] = utcnow().isoformat()
                    return self._props(name, raw)
        raise SecretNotFound(f"{name}/{version}")
