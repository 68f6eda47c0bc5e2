"""Retention: how long a template may be kept, and when it must go.

A template expires at the earlier of

- its consent's ``expires_at`` (the subject agreed to this long and no longer), and
- the last *successful* use + the retention window (default 365 days): a
  template nobody has used for a year is data kept for no one's benefit.

No window may exceed three years: past that, faces change enough that the
template is both a privacy liability and a poor reference. Expiry is checked
on every read (an expired template is never compared) and ``purge`` erases
expired templates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from .._errors import ConfigurationError
from ._consent import ConsentRecord

DEFAULT_RETENTION = timedelta(days=365)
MAX_RETENTION = timedelta(days=3 * 365 + 1)  # three years, one leap day included


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """The retention window after the last successful use."""

    window: timedelta = DEFAULT_RETENTION

    def __post_init__(self) -> None:
        if not isinstance(self.window, timedelta) or self.window <= timedelta(0):
            raise ConfigurationError("the retention window must be a positive timedelta")
        if self.window > MAX_RETENTION:
            raise ConfigurationError(
                f"a retention window of {self.window.days} days exceeds the 3-year maximum"
            )

    def expires_at(self, consent: ConsentRecord, last_used_at: datetime) -> datetime:
        """The earliest of consent expiry and last use + window."""
        return min(consent.expires_at, last_used_at + self.window)

    def is_expired(self, consent: ConsentRecord, last_used_at: datetime, now: datetime) -> bool:
        return now >= self.expires_at(consent, last_used_at)
