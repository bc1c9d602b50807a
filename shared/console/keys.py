"""The signing keys page: each key's role (pending, current, previous) and a rotation.

A rotation publishes before it signs: the new key is in the JWKS at once and signs only after
the cache TTL plus the JWKS max-age, so every instance and every verifier knows it first; the
keys it replaces keep verifying for the token lifetime plus twice the cache TTL plus a minute.
These are ``ops signing-key rotate``'s defaults; a test keeps the two equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.console.rules import When, when
from shared.ids import SIGNING_KEY_NAME
from shared.secret_store import SecretStore, SecretVersion, utcnow
from shared.settings import Settings

JWKS_MAX_AGE_SECONDS = 60  # shared/auth/jwks.py's Cache-Control
CLOCK_SKEW_SECONDS = 60


def activate_in_seconds(settings: Settings) -> int:
    """How long a new key is published before it signs."""
    return settings.cache_ttl_seconds + JWKS_MAX_AGE_SECONDS


def retire_after_seconds(settings: Settings) -> int:
    """How long a replaced key keeps verifying once the new one signs."""
    return settings.token_lifetime_seconds + 2 * settings.cache_ttl_seconds + CLOCK_SKEW_SECONDS


@dataclass(frozen=True)
class KeyRow:
    """One signing-key version as the page lists it (never the key)."""

    kid: str
    algorithm: str
    role: str
    created: When
    signs_from: When
    expires: When


def key_rows(
    versions: list[SecretVersion], algorithm: str, now: datetime | None = None
) -> list[KeyRow]:
    """Every key version, newest first, with its role: Pending, Current, Previous or Retired."""
    moment = now or utcnow()
    signing = next(
        (v.version for v in versions if v.tags.get("alg") == algorithm and v.is_usable(moment)),
        None,
    )
    rows: list[KeyRow] = []
    for props in versions:
        alg = props.tags.get("alg", "")
        if props.version == signing:
            role = "Current: signs new tokens"
        elif not props.enabled or (props.expires_on is not None and moment >= props.expires_on):
            role = "Retired: no longer published"
        elif props.not_before is not None and moment < props.not_before:
            role = "Pending: published, signs from its start date"
        elif alg != algorithm:
            role = f"Unused: {alg or 'no'} algorithm, the app signs with {algorithm}"
        else:
            role = "Previous: published, verifies tokens it signed"
        rows.append(
            KeyRow(
                kid=props.version,
                algorithm=alg,
                role=role,
                created=when(props.created_on),
                signs_from=when(props.not_before or props.created_on),
                expires=when(props.expires_on),
            )
        )
    return rows


def rotate(store: SecretStore, settings: Settings) -> SecretVersion:
    """Add a key that publishes now and signs later; the keys it replaces retire later still."""
    from shared.auth.signing_keys import rotate_signing_key

    return rotate_signing_key(
        store,
        settings.token_algorithm,
        activate_in=timedelta(seconds=activate_in_seconds(settings)),
        retire_previous_after=timedelta(seconds=retire_after_seconds(settings)),
    )


def list_keys(store: SecretStore) -> list[SecretVersion]:
    """The signing key's versions, newest first (metadata only)."""
    return store.list_versions(SIGNING_KEY_NAME)
