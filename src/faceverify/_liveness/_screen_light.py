"""The screen-light challenge: the face must reflect a random colour sequence, in time.

A browser page or a kiosk screen lights the face in front of it. The session
draws a sequence of screen colours from the OS CSPRNG when it starts, tells
the client the colour to show with every frame's answer
(:attr:`ChallengeSession.screen_colour`), switches to the next one every
``step_time`` (on the server's clock, at the first frame after it), and reads
each frame's skin colour against the colour that was on screen. A recording,
or an animation rendered before the session, cannot know the sequence, so its
colour follows some other one (or none).

**What is read.** On the aligned 112 × 112 crop, three skin regions placed by
the five-point template (both cheeks, the nose's bridge): the mean of their
pixels in linear light (sRGB decoded), as a log-chromaticity ``q = log(rgb) -
mean(log(rgb))`` — the skin's own colour (a constant factor per channel) and
the brightness (a factor on all three) drop out of the step-to-step changes.
A frame taken less than ``settle`` after a switch was told is not read (the
display and the camera lag), nor a face turned or nodded away from its rest
pose (the session says which: its skin regions then hold other parts).

**The decision** (:meth:`ScreenLight.verdict`): at each switch between two
read steps the face's mean ``q`` changes; the change must point from the old
colour toward the new one — closest (cosine) to ``direction(new) -
direction(old)`` among the five colours the screen could have switched to, at
most ``max_missed`` switches otherwise — and the changes as a whole must
*correlate* with the expected ones at ``min_correlation`` or more. The
classification depends only on the frames and on the colour before the
switch; the new colour is uniform over the five others, drawn independently of
anything the capture could depend on, so a capture that does not see the
screen meets each switch with probability 1/5 whatever came before, and
passes ``steps`` of them with probability at most the binomial tail
:func:`chance_bound` (4.2e-6 under the defaults).

**Cannot assess.** A grayscale or infrared capture (no chroma), a face
clipped to white, or changes smaller than ``min_shift`` (the screen too weak
for this light, or no response at all) are reported as not assessed
(:attr:`ScreenLightResult.assessed` False), and ``ScreenLightPolicy.unassessable``
decides: ``"refuse"`` (the default) fails the session, ``"active-only"`` lets
the other checks decide and records it. Never a silent pass or rejection.

What it does not stop: anything that reads the colour from the protocol and
tints its frames live (a real-time injector). It closes the replay of a
recorded session, which cannot.
"""

from __future__ import annotations

import enum
import itertools
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from random import Random
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from .._errors import ConfigurationError
from .._pipeline._capture import RGBImage
from . import _session_state as st

__all__ = [
    "ScreenColour",
    "ScreenLight",
    "ScreenLightPolicy",
    "ScreenLightResult",
    "chance_bound",
    "skin_colour",
]


class ScreenColour(enum.Enum):
    """A colour the screen shows; the value is a stable key, ``hex`` the CSS colour."""

    RED = "red"
    YELLOW = "yellow"
    GREEN = "green"
    CYAN = "cyan"
    BLUE = "blue"
    MAGENTA = "magenta"

    @property
    def rgb(self) -> tuple[int, int, int]:
        return _RGB[self]

    @property
    def hex(self) -> str:
        return "#" + "".join(f"{v:02x}" for v in self.rgb)


_RGB = {
    ScreenColour.RED: (255, 0, 0),
    ScreenColour.YELLOW: (255, 255, 0),
    ScreenColour.GREEN: (0, 255, 0),
    ScreenColour.CYAN: (0, 255, 255),
    ScreenColour.BLUE: (0, 0, 255),
    ScreenColour.MAGENTA: (255, 0, 255),
}
PALETTE = tuple(ScreenColour)


def _direction(c: ScreenColour) -> npt.NDArray[np.float64]:
    """The unit log-chromaticity direction a face lit by ``c`` moves toward (palette-centred)."""
    v = np.asarray(c.rgb, dtype=np.float64) / 255.0 - 0.5
    v -= v.mean()
    out: npt.NDArray[np.float64] = v / np.linalg.norm(v)
    return out


_DIRECTIONS = np.stack([_direction(c) for c in PALETTE])  # six unit vectors, 60 degrees apart

#: Skin regions of the aligned 112 × 112 crop (rows, columns), from the ArcFace
#: template's points (eyes at y 52, nose tip 72, mouth 92): the cheeks below the
#: outer eye corners, beside the nose, and the nose's bridge between the eyes.
_REGIONS = ((slice(62, 80), slice(22, 40)), (slice(62, 80), slice(72, 90)), (slice(50, 64), slice(50, 62)))


def _closest(change: npt.NDArray[np.float64], before: ScreenColour) -> ScreenColour:
    """The colour a switch from ``before`` most likely went to, from the face's change:
    the largest cosine with ``direction(c) - direction(before)`` over the five others."""
    d = _DIRECTIONS - _DIRECTIONS[PALETTE.index(before)]
    norms = np.linalg.norm(d, axis=1)
    cos = np.where(norms > 0, d @ change / np.maximum(norms, 1e-12), -np.inf)
    return PALETTE[int(np.argmax(cos))]


def skin_colour(crop: RGBImage) -> tuple[npt.NDArray[np.float64], float, float]:
    """``(mean linear RGB, clipped share, chroma)`` of the skin regions of an aligned crop.

    Linear: sRGB decoded (8-bit levels to 0..1), the mean of the pixels with
    no channel at 250 or more; ``clipped``: the share of those that have one
    (zeros when all are). ``chroma``: the mean absolute difference between
    channels, 8-bit levels (0 for a grayscale capture).
    """
    f = crop.shape[0] / 112.0
    pixels = np.concatenate(
        [
            crop[
                int(r.start * f) : int(r.stop * f),
                int(c.start * f) : int(c.stop * f),
            ].reshape(-1, 3)
            for r, c in _REGIONS
        ]
    ).astype(np.float64)
    bright = pixels.max(axis=1) >= 250
    clipped = float(np.mean(bright))
    chroma = float(np.mean(np.abs(pixels - pixels.mean(axis=1, keepdims=True)).sum(axis=1)) * 1.5)
    if bright.all():
        return np.zeros(3), clipped, chroma
    s = pixels[~bright] / 255.0
    linear = np.where(s <= 0.04045, s / 12.92, ((s + 0.055) / 1.055) ** 2.4)
    return linear.mean(axis=0), clipped, chroma


@dataclass(frozen=True, slots=True)
class ScreenLightPolicy:
    """The screen-light challenge's parameters (``ChallengePolicy(screen_light=...)``).

    The screen shows each colour for at least ``step_time`` (it switches at the
    first frame after that); a frame taken less than ``settle`` after a switch
    was told to the client is not read (the display's and the camera's lag); a
    step is read once ``min_frames`` of its frames were. The session may pass
    only after ``steps`` colour *switches* were seen (both steps read; it waits,
    the person looking at the camera, if the challenges were quicker: about
    ``(steps + 1) * step_time`` from the first frame). The decision: at most
    ``max_missed`` switches whose change of the face's colour is closest to
    another colour's, and a correlation of ``min_correlation`` or more between
    the observed and the expected changes. Not assessed (see
    ``unassessable``): a capture whose skin chroma is under ``min_chroma``
    (8-bit levels: grayscale or infrared), one whose skin is clipped (a share
    over ``max_clipped`` of its pixels at 250 or more; below it, the unclipped
    pixels are read) on too many frames to read ``steps`` switches, or
    changes whose RMS is under ``min_shift`` (log-chromaticity: the light too
    weak to see here, or nothing answering it). ``chance`` is the most a
    capture blind to the sequence passes with. The figures behind the
    defaults are in docs/liveness.md (benchmarks/screen_light.py, tuning half).
    """

    # Tuning half (benchmarks/screen_light.py): 0.8 s steps, not 0.5, halved the switches a real face
    # lit at strength 0.12-0.25 missed; reading the unclipped pixels of a frame up to half clipped,
    # not a quarter, kept strongly lit bright faces assessable; no attack reached 0.8 or 9 of 10.
    step_time: timedelta = timedelta(milliseconds=800)
    settle: timedelta = timedelta(milliseconds=250)
    min_frames: int = 2
    steps: int = 10
    max_missed: int = 1
    min_correlation: float = 0.8
    min_shift: float = 0.003
    min_chroma: float = 4.0
    max_clipped: float = 0.5
    unassessable: Literal["refuse", "active-only"] = "refuse"

    def __post_init__(self) -> None:
        if not timedelta(0) <= self.settle < self.step_time:
            raise ConfigurationError("screen light: settle must be at least 0 and shorter than step_time")
        if self.min_frames < 1 or self.steps < 2 or not 0 <= self.max_missed < self.steps:
            raise ConfigurationError(
                "screen light: min_frames >= 1, steps >= 2 and 0 <= max_missed < steps are required"
            )
        if not -1.0 <= self.min_correlation <= 1.0 or self.min_shift < 0 or not 0 < self.max_clipped <= 1:
            raise ConfigurationError("screen light: a threshold is out of its range")
        if self.unassessable not in ("refuse", "active-only"):
            raise ConfigurationError(
                f"screen light: unassessable must be 'refuse' or 'active-only', not {self.unassessable!r}"
            )

    @property
    def chance(self) -> float:
        """The most a capture that does not see the screen passes with (:func:`chance_bound`)."""
        return chance_bound(self.steps, self.max_missed)


def chance_bound(steps: int, missed: int) -> float:
    """P(at least ``steps - missed`` of ``steps`` matched) for a capture blind to the sequence.

    Each step's colour is uniform over the five colours other than the previous
    step's, drawn after everything the capture could depend on: a match has
    conditional probability at most 1/5 whatever came before, so the matches
    are dominated by a Binomial(steps, 1/5).
    """
    p = 1.0 / (len(PALETTE) - 1)
    return sum(math.comb(steps, k) * p**k * (1 - p) ** (steps - k) for k in range(steps - missed, steps + 1))


@dataclass(frozen=True, slots=True)
class ScreenLightResult:
    """The screen-light verdict: assessed or not (``note`` says why), and what was seen.

    ``steps``: the colour switches read (both steps read), ``matched`` of them
    moved toward their new colour; ``correlation`` of the observed changes with
    the expected ones; ``shift`` the changes' RMS (log-chromaticity).
    """

    assessed: bool
    passed: bool
    steps: int
    matched: int
    correlation: float
    shift: float
    note: str

    @property
    def detail(self) -> str:
        return (
            f"{self.matched} of {self.steps} colour steps followed, correlation {self.correlation:.2f}, "
            f"shift {self.shift:.4f}"
        )


def draw_sequence(rand: Random, count: int) -> tuple[ScreenColour, ...]:
    """``count`` colours, each uniform over the palette but the previous one."""
    out = [rand.choice(PALETTE)]
    while len(out) < count:
        out.append(rand.choice([c for c in PALETTE if c is not out[-1]]))
    return tuple(out)


@dataclass(slots=True)
class _Step:
    seen: int = 0  # frames with a face, after the settle time
    read: int = 0  # of them, with readable colour (not grayscale, not clipped)
    grey: int = 0
    clipped: int = 0
    total: tuple[float, float, float] = (0.0, 0.0, 0.0)  # the sum of the read frames' log-chromaticity


class ScreenLight:
    """One session's screen-light sequence and what the frames showed (server-side state)."""

    def __init__(
        self, policy: ScreenLightPolicy, sequence: tuple[ScreenColour, ...], started: datetime
    ) -> None:
        if len(sequence) < policy.steps:
            raise ConfigurationError("a screen-light sequence shorter than the steps it must show")
        self.policy = policy
        self.sequence = sequence
        self._index = 0
        self._switched = started  # when the current colour was told to the client
        self._steps: list[_Step] = [_Step()]

    @classmethod
    def draw(
        cls, policy: ScreenLightPolicy, rand: Random, started: datetime, deadline: datetime
    ) -> ScreenLight:
        """A sequence long enough for the whole session (one colour per ``step_time`` to its deadline)."""
        count = max(policy.steps, math.ceil((deadline - started) / policy.step_time) + 1)
        return cls(policy, draw_sequence(rand, count), started)

    @property
    def colour(self) -> ScreenColour:
        """The colour the screen must show now."""
        return self.sequence[self._index]

    @property
    def shown(self) -> tuple[ScreenColour, ...]:
        """The colours put on screen so far, in order (for the decision's binding)."""
        return self.sequence[: self._index + 1]

    def frame(self, at: datetime, crop: RGBImage, *, steady: bool = True) -> None:
        """Read one frame's face (its aligned crop) against the colour on screen, then switch
        to the next colour if this one has been shown for ``step_time``. A face not ``steady``
        (turned or nodded away from its rest pose, answering a challenge) is not read: its
        skin regions hold other parts of the face, whose colour is not comparable."""
        p, step = self.policy, self._steps[-1]
        if steady and at - self._switched >= p.settle:
            rgb, clipped, chroma = skin_colour(crop)
            step.seen += 1
            if chroma < p.min_chroma:
                step.grey += 1
            elif clipped > p.max_clipped or float(rgb.min()) <= 0.0:
                step.clipped += 1
            else:
                q = np.log(rgb)
                q -= q.mean()
                step.read += 1
                step.total = tuple(float(a + b) for a, b in zip(step.total, q, strict=True))  # type: ignore[assignment]
        if at - self._switched >= p.step_time and self._index + 1 < len(self.sequence):
            self._index += 1
            self._switched = at
            self._steps.append(_Step())

    def _pairs(self, enough: int, of: str) -> list[tuple[ScreenColour, ScreenColour, _Step, _Step]]:
        """Consecutive finished steps both with ``enough`` frames (``of``: 'seen' or 'read')."""
        done = list(zip(self.sequence, self._steps[:-1], strict=False))
        return [
            (a, b, s, t)
            for (a, s), (b, t) in itertools.pairwise(done)
            if getattr(s, of) >= enough and getattr(t, of) >= enough
        ]

    @property
    def ready(self) -> bool:
        """Enough colour switches were seen (both sides with a face, after their settle time)."""
        return len(self._pairs(self.policy.min_frames, "seen")) >= self.policy.steps

    def verdict(self) -> ScreenLightResult:
        """Did the face's colour follow the screen? (see the module's docstring)"""
        p = self.policy
        seen = self._pairs(p.min_frames, "seen")
        read = self._pairs(p.min_frames, "read")

        def unassessed(note: str, shift: float = 0.0) -> ScreenLightResult:
            note = f"cannot assess the screen light: {note}"
            return ScreenLightResult(False, False, len(read), 0, 0.0, shift, note)

        if len(seen) < p.steps:
            note = f"only {len(seen)} colour switches seen before the session ended (at least {p.steps})"
            return ScreenLightResult(True, False, len(read), 0, 0.0, 0.0, note)
        steps = {id(s): s for *_, s, t in seen} | {id(t): t for *_, s, t in seen}
        if sum(s.grey for s in steps.values()) * 2 > sum(s.seen for s in steps.values()):
            return unassessed(
                f"the capture is grayscale (skin chroma under {p.min_chroma:.0f} levels), as an "
                "infrared or monochrome camera delivers"
            )
        if len(read) < p.steps:
            return unassessed(
                f"only {len(read)} of {len(seen)} colour switches readable (at least {p.steps}): "
                f"the face clipped to white (over {p.max_clipped:.0%} of its skin) on too many frames"
            )
        # Each switch's observed change of the face's log-chromaticity, and the expected one.
        observed = np.array(
            [np.asarray(t.total) / t.read - np.asarray(s.total) / s.read for *_, s, t in read]
        )
        expected = np.array(
            [_DIRECTIONS[PALETTE.index(b)] - _DIRECTIONS[PALETTE.index(a)] for a, b, *_ in read]
        )
        shift = float(np.sqrt(np.mean(np.sum(observed**2, axis=1))))
        if shift < p.min_shift:
            return unassessed(
                f"the face's colour did not change with the screen (shift {shift:.4f} < {p.min_shift:.4f}): "
                "the screen is too weak for this light, or nothing answers it",
                shift,
            )
        matched = sum(_closest(o, a) is b for o, (a, b, *_) in zip(observed, read, strict=True))
        norm = float(np.linalg.norm(observed) * np.linalg.norm(expected))
        correlation = float(np.sum(observed * expected)) / norm if norm > 0 else 0.0
        passed = len(read) - matched <= p.max_missed and correlation >= p.min_correlation
        result = ScreenLightResult(True, passed, len(read), matched, correlation, shift, "")
        if passed:
            return result
        note = (
            f"the face's colour did not follow the screen's sequence ({result.detail}; at most "
            f"{p.max_missed} missed and correlation {p.min_correlation:.2f} needed)"
        )
        return ScreenLightResult(True, False, len(read), matched, correlation, shift, note)

    # -- as data (the session's snapshot) --------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "sequence": [c.value for c in self.sequence],
            "index": self._index,
            "switched": st.pack_time(self._switched),
            "steps": [[s.seen, s.read, s.grey, s.clipped, list(s.total)] for s in self._steps],
        }

    @classmethod
    def load(cls, policy: ScreenLightPolicy, d: Any) -> ScreenLight:
        switched = st.unpack_time(d["switched"])
        if switched is None:
            raise st.StateError("a screen-light state without its switch time")
        light = cls(policy, tuple(ScreenColour(v) for v in d["sequence"]), switched)
        light._index = int(d["index"])
        light._steps = [
            _Step(int(a), int(b), int(g), int(c), tuple(float(v) for v in t))  # type: ignore[arg-type]
            for a, b, g, c, t in d["steps"]
        ]
        if not 0 <= light._index < len(light.sequence) or len(light._steps) != light._index + 1:
            raise st.StateError("a screen-light state out of range")
        return light
