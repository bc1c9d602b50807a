"""Other parties' documents and key sets, cached per URL as their ``Cache-Control`` allows.

A document is kept for its ``max-age``, but never longer than ``max_ttl`` (a day: Microsoft
suggests looking for new Entra keys daily) and not at all after ``no-store``/``no-cache``
(SMART: a JWKS is not cached longer than its ``Cache-Control`` says); without a directive, for
``default_ttl``. What is kept is the parsed value (a few keys, two URLs), never the body, for at
most ``max_entries`` URLs, and only URLs the caller already trusts reach this cache (the
Entra check asks only for tenants an operator opted in). Fills are single-flight per URL, and a
failed fetch is shared for ``failure_ttl`` seconds, so a burst behind a failing server makes
one call. A key set is fetched again for a ``kid`` it does not hold, at most once per
``unknown_kid_interval`` per URL however many unknown ``kid`` values arrive (RFC 8725 §3.10:
a ``kid`` picks among keys we fetched, it never makes us fetch at will).

All of it is per instance: with N instances, each fetches and forgets on its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from shared.cache import TTLCache
from shared.jose.fetch import MAX_DOCUMENT_BYTES, FetchRefused, fetch_json
from shared.jose.jwk import KeySet, PublicKey, parse_key_set

if TYPE_CHECKING:
    import requests

T = TypeVar("T")

DEFAULT_TTL_SECONDS = 300.0
MAX_TTL_SECONDS = 86_400.0
UNKNOWN_KID_INTERVAL_SECONDS = 60.0
MAX_URLS = 1_000


@dataclass(frozen=True)
class _Kept(Generic[T]):
    value: T
    fetched_at: float
    ttl: float


class RemoteDocuments(Generic[T]):
    """JSON documents fetched from URLs and kept parsed (``parse`` raises ValueError to refuse).

    ``session`` builds the HTTP session once, on first use; it must be an ``upstream_session``
    (address policy on every connection, no redirects, no cookies).
    """

    def __init__(
        self,
        parse: Callable[[dict[str, Any]], T],
        session: Callable[[], requests.Session],
        *,
        timeout: tuple[float, float] = (3.0, 5.0),
        deadline: float = 10.0,
        max_bytes: int = MAX_DOCUMENT_BYTES,
        default_ttl: float = DEFAULT_TTL_SECONDS,
        max_ttl: float = MAX_TTL_SECONDS,
        max_entries: int = MAX_URLS,
        failure_ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._parse = parse
        self._session_factory = session
        self._session: requests.Session | None = None
        self._lock = threading.Lock()
        self._timeout = timeout
        self._deadline = deadline
        self._max_bytes = max_bytes
        self._default_ttl = default_ttl
        self._max_ttl = max_ttl
        self._clock = clock
        self._cache: TTLCache[_Kept[T]] = TTLCache(
            default_ttl, failure_ttl=failure_ttl, max_entries=max_entries, clock=clock
        )

    def get(self, url: str) -> T:
        """The document at ``url``, fetched when it is not kept (FetchRefused, FetchUnavailable)."""
        return self._cache.get(url, lambda: self._fetch(url), ttl=_kept_ttl).value

    def refreshed(self, url: str, *, min_interval: float) -> T:
        """The document fetched again, unless it was fetched less than ``min_interval`` ago."""
        kept = self._cache.peek(url)
        if kept is not None and self._clock() - kept.fetched_at < min_interval:
            return kept.value
        return self._cache.refresh(
            url, lambda: self._fetch(url), min_interval=min_interval, ttl=_kept_ttl
        ).value

    def forget(self) -> None:
        """Drop everything kept (tests, and after a configuration change)."""
        self._cache.clear()

    def close(self) -> None:
        """Close the HTTP session, if one was made."""
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            session.close()

    def _fetch(self, url: str) -> _Kept[T]:
        with self._lock:
            if self._session is None:
                self._session = self._session_factory()
            session = self._session
        fetched = fetch_json(
            session,
            url,
            timeout=self._timeout,
            deadline=self._deadline,
            max_bytes=self._max_bytes,
            clock=self._clock,
        )
        try:
            value = self._parse(fetched.document)
        except ValueError as invalid:
            raise FetchRefused(str(invalid)) from None
        age = fetched.max_age
        ttl = self._default_ttl if age is None else min(age, self._max_ttl)
        return _Kept(value, self._clock(), ttl)


def _kept_ttl(kept: _Kept[Any]) -> float:
    return kept.ttl


class RemoteKeySets(RemoteDocuments[KeySet]):
    """JWK Sets fetched from URLs; a ``kid`` they lack makes at most one re-fetch per interval."""

    def __init__(
        self,
        session: Callable[[], requests.Session],
        *,
        unknown_kid_interval: float | None = None,
        **options: Any,
    ) -> None:
        # parse_key_set raises InvalidKeySet, a ValueError: the set is refused.
        super().__init__(parse_key_set, session, **options)
        self._unknown_kid_interval = (
            UNKNOWN_KID_INTERVAL_SECONDS if unknown_kid_interval is None else unknown_kid_interval
        )

    def key(self, url: str, kid: str) -> PublicKey | None:
        """The key ``kid`` of the set at ``url``; None when it is not there even after a look."""
        found = self.get(url).get(kid)
        if found is None:
            # A key rotated in since the set was fetched verifies at once; a made-up kid costs
            # at most one fetch per interval, shared by every caller.
            found = self.refreshed(url, min_interval=self._unknown_kid_interval).get(kid)
        return found
