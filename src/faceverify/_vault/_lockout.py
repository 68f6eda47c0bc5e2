"""Throttling guesses: per-subject lockout, and refusing 1:N searches in disguise.

**Lockout.** After ``max_failures`` (5) consecutive failed verifications of a
subject, attempts are refused for ``base`` (30 s), doubling with each further
lockout (60 s, 120 s, … capped at a day) until a success resets everything.
The state lives in the template store, so it holds across processes and
restarts: an attacker cannot reset it by reconnecting.

**Anti-enumeration.** A thief holding one photo of an unknown person could ask
"is this Alice?", "is this Bob?", … — a 1:N search through a 1:1 interface.
So each verification attempt records a short-lived *probe sketch*, and an
attempt whose probe is close to probes already tried against
``max_subjects - 1`` (2) other subjects within ``window`` (10 min) is refused
before any comparison. The guard is keyed to the **embedding**, not the pixels,
and it links probes transitively: grayscale, equalised, posterised,
gamma-shifted, channel-swapped or JPEG-q10 variants of one photo embed at cosine
0.54-0.97 to the original on SFace (another photo of the same person ≈ 0.76),
so each variant lies within ``min_cosine`` (0.55) of *some* earlier one, and
all of them fall into one *cluster* of attempts; the subjects counted are those
of the whole cluster. Against the 36 variants of ``tests/vault/
test_vault_enumeration.py`` tried one after another, a search reached at most
2 subjects in 300 of 300 simulated vaults (random keys), where linking each
probe only to its direct neighbours let a quarter of them reach 3.

**Refused tries cost.** Each enumeration refusal is counted against the caller
(``actor``: an API client, a door, a kiosk; callers that give none share one
bucket): a caller with ``max_refusals`` (3) refusals within the window has every
further verification refused until they age out. A search in disguise gets
slower, not free.

How the sketches are made, and why they are not biometric data at rest:

- the probe embedding is projected on 512 random directions drawn from a seed
  derived from the vault secret (kept wrapped in the key store, not in the
  vault), and only the *signs* are kept: 64 bytes. The fraction of differing
  signs between two sketches estimates the angle between the embeddings
  (SimHash): linked when at most ``acos(min_cosine)/π`` of the bits differ
  (cosine 0.55: 31 %, ±2 % at 512 bits). Two people's faces (cosine ≈ 0.1 on
  SFace; above 0.42 in fewer than 1 pair in 10⁴) are linked with probability
  < 10⁻⁶, so honest users, each verifying their own subject, are not refused;
- without the vault secret the directions are unknown and a sketch is 512
  random-looking bits: it cannot be compared with a face;
- sketches are deleted after ``window`` (10 minutes) and on erasure.

With the master key an attacker could recover a 512-bit sign sketch of faces
probed in the last 10 minutes — a weak biometric sketch, bounded to that
window. ``docs/privacy.md`` says so.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from .._errors import ConfigurationError
from ._store import LockoutState

SKETCH_BITS = 512


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
    """Refuse a capture tried against ``max_subjects`` distinct subjects within ``window``;
    refuse a caller who collected ``max_refusals`` such refusals within it."""

    max_subjects: int = 3
    window: timedelta = timedelta(minutes=10)
    min_cosine: float = 0.55
    max_refusals: int = 3

    def __post_init__(self) -> None:
        if (
            self.max_subjects < 2
            or self.window <= timedelta(0)
            or not 0.0 < self.min_cosine < 1.0
            or self.max_refusals < 1
        ):
            raise ConfigurationError(
                "enumeration guard needs max_subjects >= 2, a positive window, 0 < min_cosine < 1"
                " and max_refusals >= 1"
            )

    @property
    def max_differing_bits(self) -> int:
        return int(SKETCH_BITS * math.acos(self.min_cosine) / math.pi)


class Sketcher:
    """Keyed sign sketches of probe embeddings (see the module docstring)."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._directions: dict[int, npt.NDArray[np.float64]] = {}

    def sketch(self, embedding: npt.ArrayLike) -> bytes:
        vector = np.asarray(embedding, dtype=np.float64).reshape(-1)
        dim = vector.shape[0]
        directions = self._directions.get(dim)
        if directions is None:
            seed = int.from_bytes(hmac.new(self._key, b"projection:%d" % dim, hashlib.sha256).digest(), "big")
            directions = np.random.default_rng(seed).standard_normal((SKETCH_BITS, dim))
            self._directions[dim] = directions
        return np.packbits((directions @ vector) >= 0.0).tobytes()


def linked(sketch: bytes, others: Sequence[bytes], max_differing_bits: int) -> npt.NDArray[np.bool_]:
    """Which of ``others`` are sketches of a probe close to ``sketch`` (a malformed one never is)."""
    if not others:
        return np.zeros(0, dtype=bool)
    size = len(sketch)
    ok = np.array([len(o) == size for o in others])
    rows = np.frombuffer(b"".join(o if len(o) == size else bytes(size) for o in others), dtype=np.uint8)
    xor = rows.reshape(len(others), size) ^ np.frombuffer(sketch, dtype=np.uint8)
    differing = np.unpackbits(xor, axis=1).sum(axis=1)
    result: npt.NDArray[np.bool_] = ok & (differing <= max_differing_bits)
    return result
