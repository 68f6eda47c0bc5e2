"""Throttling guesses: per-subject lockout, and refusing 1:N searches in disguise.

**Lockout.** After ``max_failures`` (5) consecutive failed verifications of a
subject, attempts are refused for ``base`` (30 s), doubling with each further
lockout (60 s, 120 s, … capped at a day) until a success resets everything.
The state lives in the template store, so it holds across processes and
restarts: an attacker cannot reset it by reconnecting.

**Anti-enumeration.** A thief holding one photo of an unknown person could ask
"is this Alice?", "is this Bob?", … — a 1:N search through a 1:1 interface.
So each verification attempt records short-lived *probe digests*, and an
attempt whose capture matches captures already tried against
``max_subjects - 1`` (2) other subjects within ``window`` (10 min) is refused
before any comparison.

How the digests are made, and why they are not biometric data at rest:

- the probe embedding is projected on 256 keyed random directions and only the
  *signs* are kept (SimHash); they are cut into 32 bands of 8 bits. Two
  attempts are "the same capture" when at least 10 bands agree exactly. A
  capture re-encoded (JPEG quality 70 gives cosine ≈ 0.97 with the original on
  SFace) keeps most signs: at cosine 0.967 10 bands agree with probability
  ≈ 0.99, at 0.95 ≈ 0.92. Unrelated faces (cosine < 0.5) agree on 10 bands
  with probability < 10⁻⁶, so even a busy site does not refuse honest users.
  Another photo of the same person (cosine ≈ 0.7) is rarely caught (≈ 10⁻³):
  this guards against one stolen capture replayed, not against a thief with
  many photos (lockout and the host's rate limits do);
- each band is stored only as ``HMAC-SHA256(k_probe, dim ‖ band index ‖ bits)``
  truncated to 128 bits, with ``k_probe`` derived from the master key (which
  is not in the template database). Without the master key the digests are
  random-looking strings: they cannot be compared with a face, nor linked to
  each other except by equality;
- digests are deleted after ``window`` (10 minutes) and on erasure.

With the master key an attacker could brute-force each 8-bit band and
recover a 256-bit sign sketch of faces probed in the last 10 minutes — a weak
biometric sketch, bounded to that window. ``docs/privacy.md`` says so.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from .._errors import ConfigurationError
from ._store import LockoutState

BANDS = 32
_BAND_BITS = 8


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    """When consecutive failures lock a subject, and for how long."""

    max_failures: int = 5
    base: timedelta = timedelta(seconds=30)
    cap: timedelta = timedelta(days=1)

    def __post_init__(self) -> None:
        if self.max_failures < 1 or self.base <= timedelta(0) or self.cap < self.base:
            raise ConfigurationError("lockout needs max_failures >= 1 and 0 < base <= cap")

    def retry_after(self, state: LockoutState, now: datetime) -> timedelta | None:
        """How long the subject is still locked at ``now``, or ``None``."""
        if state.locked_until is not None and now < state.locked_until:
            return state.locked_until - now
        return None

    def after_failure(self, state: LockoutState, now: datetime) -> LockoutState:
        failures = state.failures + 1
        if failures < self.max_failures:
            return LockoutState(failures, state.locked_until, state.level)
        level = state.level + 1
        duration = min(self.base * 2 ** min(level - 1, 32), self.cap)
        return LockoutState(0, now + duration, level)

    @staticmethod
    def after_success(state: LockoutState, now: datetime) -> LockoutState:
        return LockoutState()


@dataclass(frozen=True, slots=True)
class EnumerationPolicy:
    """Refuse a capture tried against ``max_subjects`` distinct subjects within ``window``."""

    max_subjects: int = 3
    window: timedelta = timedelta(minutes=10)
    min_shared_bands: int = 10

    def __post_init__(self) -> None:
        if self.max_subjects < 2 or self.window <= timedelta(0) or not 1 <= self.min_shared_bands <= BANDS:
            raise ConfigurationError(
                f"enumeration guard needs max_subjects >= 2, a positive window and 1..{BANDS} shared bands"
            )


def probe_digests(embedding: npt.ArrayLike, key: bytes) -> list[bytes]:
    """Keyed, banded sign-sketch digests of one probe embedding (see the module docstring)."""
    vector = np.asarray(embedding, dtype=np.float64).reshape(-1)
    dim = vector.shape[0]
    seed = int.from_bytes(hmac.new(key, b"projection:%d" % dim, hashlib.sha256).digest(), "big")
    directions = np.random.default_rng(seed).standard_normal((BANDS * _BAND_BITS, dim))
    bits = (directions @ vector) >= 0.0
    digests = []
    for band in range(BANDS):
        packed = np.packbits(bits[band * _BAND_BITS : (band + 1) * _BAND_BITS]).tobytes()
        message = b"%d:%d:" % (dim, band) + packed
        digests.append(hmac.new(key, message, hashlib.sha256).digest()[:16])
    return digests
