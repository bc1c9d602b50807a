"""How client secrets are kept in Key Vault: a SHA-256 of the secret, or (older) the secret.

Client secrets are 256 random bits, so a plain SHA-256 is as good as a slow password hash
here: nobody can search 2^256 values. Storing ``sha256:<hex>`` makes a read of the vault useless
for impersonating a client, while the secret handed to the client (shown once) is unchanged.

Both forms authenticate, so an operator can still add a version by hand in the portal or with
``az keyvault secret set`` (docs/runbook.md §6.2 shows how to produce the hashed form), and
versions written before hashing keep working until they are migrated
(``ops clients hash-secrets``). Every comparison is constant-time on bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

PREFIX = "sha256:"
# 32 bytes from a CSPRNG: 256 bits, far beyond RFC 6749 §10.10's 2^-128 guessing bound.
SECRET_BYTES = 32
_HASHED = re.compile(r"sha256:[0-9a-f]{64}")


def new_client_secret() -> str:
    """A fresh client secret with 256 bits of entropy, URL-safe."""
    return secrets.token_urlsafe(SECRET_BYTES)


def hash_secret(secret: str) -> str:
    """The stored form of a secret: ``sha256:`` + the hex SHA-256 of its UTF-8 bytes."""
    return PREFIX + hashlib.sha256(secret.encode("utf-8")).hexdigest()


def is_hashed(stored: str) -> bool:
    """True when a stored value is the hashed form (case of the hex digits ignored)."""
    return _HASHED.fullmatch(stored.strip().lower()) is not None


def secret_matches(candidate: str, stored: str) -> bool:
    """Whether ``candidate`` is the secret ``stored`` holds, in either form, in constant time."""
    if is_hashed(stored):
        # A hand-made version may carry upper-case hex or a trailing newline from a file.
        expected = stored.strip().lower().encode("ascii")
        return hmac.compare_digest(hash_secret(candidate).encode("ascii"), expected)
    # Bytes: compare_digest raises TypeError on a non-ASCII str (docs/architecture.md §7).
    return hmac.compare_digest(candidate.encode("utf-8"), stored.encode("utf-8"))
