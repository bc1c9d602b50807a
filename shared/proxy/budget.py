"""What one incoming request may spend upstream: provider calls and time.

A request can fan out: a batch the proxy runs itself makes one call per entry, sorting for a
provider that cannot sort reads page after page, and filling displays reads every referenced
resource. Without a bound, one 50-entry batch made 3,000 provider calls. Every call a request
makes draws on one ``RequestBudget`` (``EHRB_REQUEST_UPSTREAM_CALLS`` calls, and nothing starts
after ``EHRB_REQUEST_DEADLINE_SECONDS``), shared by its entries, compensation and enrichment.
When it is spent, what is optional stops with an OperationOutcome warning (pages not read,
displays not filled) and what is not is refused: 400 ``too-costly`` for calls, 504 ``timeout``
for time, per batch entry when inside a batch. A batch reserves one call per entry first, so
optional calls of early entries cannot starve the later entries of their own answer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from shared.fhir.errors import InvalidRequest, UpstreamTimeout

SPENT_CALLS = "this request has made as many provider calls as one request may"
SPENT_TIME = "this request has run as long as one request may"


class RequestBudget:
    """Provider calls and a deadline for one request; thread-safe (batch entries share it)."""

    def __init__(
        self, calls: int, seconds: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._left = calls
        self._reserved = 0
        self._clock = clock
        self.deadline = clock() + seconds
        self.spent = False
        self._lock = threading.Lock()

    def reserve(self, calls: int) -> None:
        """Keep ``calls`` for essential calls (``take``): optional ones cannot spend them."""
        with self._lock:
            self._reserved = min(self._left, self._reserved + calls)

    def take(self) -> None:
        """One essential call (the answer itself), or raise: 400 too-costly, 504 timeout."""
        if not self._grant(1, essential=True):
            if self._clock() >= self.deadline:
                raise UpstreamTimeout(SPENT_TIME)
            raise InvalidRequest(SPENT_CALLS, code="too-costly")

    def try_take(self) -> bool:
        """One optional call (another page, a display) if the budget allows it."""
        return self._grant(1, essential=False) == 1

    def take_up_to(self, wanted: int) -> int:
        """As many of ``wanted`` optional calls as the budget allows."""
        return self._grant(wanted, essential=False)

    def _grant(self, wanted: int, *, essential: bool) -> int:
        with self._lock:
            available = self._left if essential else self._left - self._reserved
            granted = 0 if self._clock() >= self.deadline else max(0, min(wanted, available))
            self._left -= granted
            if essential:
                self._reserved = max(0, self._reserved - granted)
            if granted < wanted:
                self.spent = True
            return granted
