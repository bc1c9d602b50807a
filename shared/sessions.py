"""Browser sessions kept on the server: random ids, an expiry, and a sign-out that ends them.

The cookie carries a random 256-bit id and nothing else; the table row is keyed by the id's
SHA-256, so reading the table gives no usable cookie. A row holds its expiry and a ``binding``
(a value derived from the credential that signed in, e.g. the sandbox key), so rotating that
credential ends every session made with it. Used by the sandbox editor (partition
``ui-session`` of the sandbox table) and the console (partition ``console-session`` of the
clients table).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

from shared.secret_store import utcnow
from shared.tables import Entity, EntityNotFound, EntityTable

SESSION_ID_BYTES = 32
_MAX_ID_CHARS = 128


def _row_key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "replace")).hexdigest()


class SessionStore:
    """Sessions in one partition of a table; thread-safe as the table is."""

    def __init__(
        self,
        table: EntityTable,
        partition: str,
        lifetime_seconds: int,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._table = table
        self._partition = partition
        self._lifetime = timedelta(seconds=lifetime_seconds)
        self._clock = clock

    def start(self, binding: str) -> str:
        """A new session's id (for the cookie), valid for the lifetime from now."""
        session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
        expires = self._clock() + self._lifetime
        self._table.create(
            Entity(
                self._partition,
                _row_key(session_id),
                {"expires_at": expires.isoformat(), "binding": binding},
            )
        )
        return session_id

    def valid(self, session_id: str, binding: str) -> bool:
        """True for a session that exists, has not expired and was made under ``binding``."""
        if not session_id or len(session_id) > _MAX_ID_CHARS:
            return False
        try:
            entity = self._table.get(self._partition, _row_key(session_id))
        except EntityNotFound:
            return False
        try:
            expires = datetime.fromisoformat(str(entity.properties.get("expires_at", "")))
        except ValueError:
            expires = self._clock()
        if expires <= self._clock():
            self._table.delete(self._partition, entity.row_key)
            return False
        stored = str(entity.properties.get("binding", "")).encode("utf-8")
        return hmac.compare_digest(stored, binding.encode("utf-8"))

    def end(self, session_id: str) -> None:
        """End a session (sign-out); an unknown id is not an error."""
        if session_id and len(session_id) <= _MAX_ID_CHARS:
            self._table.delete(self._partition, _row_key(session_id))
