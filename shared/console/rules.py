"""What the console's pages show and accept, free of HTML: choices, rows and dates.

**Secret expiry.** A secret made in the console always expires: 30, 90, 180 (the default) or
365 days. The maximum is one year: the Azure portal's app registrations recommend 180 days and
Microsoft's guidance is under 12 months; a longer-lived secret outlives the people who know
where it is configured, and the Patients app's secret is typed in by hand, so a yearly change
is the most a partner should have to remember. (Secrets made through the management API or
the ops CLI keep their own rules: no expiry unless asked.)

**Grace period** for the versions a new secret replaces: none (disabled at once), an hour, a
day, a week or 30 days (the registry's maximum), so the app can be reconfigured before the old
secret stops working.

**Dates** are written one way only, ``YYYY-MM-DD HH:MM UTC``, whatever the browser's locale,
with the full ISO 8601 time in the ``<time datetime>`` attribute.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.auth.clients import DESCRIPTION_TAG, HINT_TAG, MAX_GRACE_SECONDS
from shared.secret_store import SecretVersion, utcnow

EXPIRY_DAYS: tuple[int, ...] = (30, 90, 180, 365)
DEFAULT_EXPIRY_DAYS = 180
MAX_EXPIRY_DAYS = max(EXPIRY_DAYS)
GRACE_CHOICES: tuple[tuple[int, str], ...] = (
    (0, "None: the current secrets stop working at once"),
    (3600, "1 hour"),
    (86400, "1 day"),
    (7 * 86400, "7 days"),
    (MAX_GRACE_SECONDS, "30 days"),
)
STATE_LABELS = {
    "active": "Active",
    "pending": "Not yet valid",
    "expired": "Expired",
    "disabled": "Invalidated",
}


def expiry_choices() -> list[tuple[str, str]]:
    """The expiry select's options: (days, label)."""
    labels = {DEFAULT_EXPIRY_DAYS: " (recommended)", MAX_EXPIRY_DAYS: " (the maximum)"}
    return [(str(days), f"{days} days{labels.get(days, '')}") for days in EXPIRY_DAYS]


def grace_choices() -> list[tuple[str, str]]:
    """The grace-period select's options: (seconds, label)."""
    return [(str(seconds), label) for seconds, label in GRACE_CHOICES]


def parse_expiry(value: str, now: datetime | None = None) -> datetime | None:
    """The expiry a form chose, or None when it is not one of the choices."""
    if value not in {str(days) for days in EXPIRY_DAYS}:
        return None
    return (now or utcnow()) + timedelta(days=int(value))


def parse_grace(value: str) -> int | None:
    """The grace period (seconds) a form chose, or None when it is not one of the choices."""
    allowed = {str(seconds): seconds for seconds, _ in GRACE_CHOICES}
    return allowed.get(value)


@dataclass(frozen=True)
class When:
    """A moment as the pages write it: text for people, ISO 8601 for the ``datetime`` attribute."""

    text: str
    iso: str


def when(moment: datetime | None, never: str = "Never") -> When:
    """``moment`` in UTC as ``YYYY-MM-DD HH:MM UTC`` (``never`` when there is none)."""
    if moment is None:
        return When(never, "")
    utc = moment.astimezone(utcnow().tzinfo)
    return When(utc.strftime("%Y-%m-%d %H:%M UTC"), utc.isoformat(timespec="seconds"))


@dataclass(frozen=True)
class SecretRow:
    """One secret version as "Certificates & secrets" lists it (never its value)."""

    version: str
    description: str
    hint: str
    created: When
    expires: When
    state: str
    last_used: When
    usable: bool


def secret_rows(
    versions: list[SecretVersion],
    last_used: dict[str, datetime],
    deleted: dict[str, datetime],
    now: datetime | None = None,
) -> list[SecretRow]:
    """The rows of a client's secrets page, newest first, without deleted versions."""
    moment = now or utcnow()
    rows: list[SecretRow] = []
    for props in versions:
        if props.version in deleted:
            continue
        rows.append(
            SecretRow(
                version=props.version,
                description=props.tags.get(DESCRIPTION_TAG, ""),
                hint=f"{props.tags[HINT_TAG]}…" if props.tags.get(HINT_TAG) else "(not recorded)",
                created=when(props.created_on),
                expires=when(props.expires_on),
                state=STATE_LABELS.get(props.state(moment), props.state(moment)),
                last_used=when(last_used.get(props.version), never="Not used since recorded"),
                usable=props.is_usable(moment),
            )
        )
    return rows
