"""Passive presentation-attack detection (PAD): the protocol and its result.

A :class:`LivenessCheck` scores one face in one frame: the probability that a
live person, not a print, a screen or a mask, was in front of the camera.
:func:`assess` scores a few frames of the same face and decides at the
check's threshold. Checks are injected through the protocol, so tests can use
fakes and deployments their own models.

RGB-only passive checks are weak evidence (see docs/liveness.md); faceverify's
default live capture is the active challenge session, which can run a passive
check on chosen frames as an extra gate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .._errors import ConfigurationError, PresentationAttackError
from .._pipeline._capture import RGBImage
from .._pipeline._detect import Face


class LivenessCheck(Protocol):
    """Scores a detected face: probability in [0, 1] that it is live."""

    name: str
    threshold: float

    def score(self, image: RGBImage, face: Face) -> float: ...


@dataclass(frozen=True, slots=True)
class LivenessResult:
    """A passive check's verdict on a few frames of one face.

    ``score`` is the mean probability of live over ``frames`` frames; ``live``
    is ``score >= threshold``. ``frame_scores`` keeps each frame's score.

    ``assessed`` is False when the check said it **cannot judge** these frames
    (e.g. a colour check on a grayscale or infrared capture): then ``live`` is
    False, ``score`` is NaN, ``frame_scores`` is empty and ``note`` says why.
    That is neither a pass nor an attack: the caller's policy decides (the
    challenge session's ``ChallengePolicy.unassessable``).
    """

    check: str
    score: float
    threshold: float
    live: bool
    frame_scores: tuple[float, ...]
    assessed: bool = True
    note: str = ""

    @property
    def frames(self) -> int:
        return len(self.frame_scores)


def cannot_assess(check: LivenessCheck, image: RGBImage, face: Face) -> str:
    """Why ``check`` cannot judge this face ('' when it can).

    A check may define ``cannot_assess(image, face) -> str`` (optional: the
    protocol does not require it); faceverify's colour-based checks say so for
    grayscale captures.
    """
    ask = getattr(check, "cannot_assess", None)
    return str(ask(image, face)) if ask is not None else ""


#: Mean chroma distance from grey (|Cr - 128| + |Cb - 128|, 8-bit levels) on the
#: face box below which a capture is taken as grayscale. Measured: colour faces of
#: 150 LFW photos sit at 13 or more (1st percentile; median 37), 98 PAD crops at
#: 11.7 or more; a grayscale capture at 0 (one LFW news photo is black and white: 0.3).
GRAYSCALE_CHROMA = 4.0


def grayscale_reason(image: RGBImage, face: Face) -> str:
    """'' for a colour capture; the reason a colour cue cannot be read otherwise."""
    patch = square_crop(image, face, scale=1.0, size=32).astype(np.float32)
    r, g, b = patch[..., 0], patch[..., 1], patch[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    chroma = float(np.mean(np.abs((r - y) * 0.713) + np.abs((b - y) * 0.564)))
    if chroma < GRAYSCALE_CHROMA:
        return (
            f"cannot assess colour: the capture is grayscale (chroma {chroma:.1f} < "
            f"{GRAYSCALE_CHROMA:.0f}), as an infrared or monochrome camera delivers"
        )
    return ""


def decide(check: LivenessCheck, scores: Sequence[float], *, note: str = "") -> LivenessResult:
    """The verdict on already computed frame scores; ``note`` non-empty: not assessed."""
    if note:
        return LivenessResult(check.name, math.nan, check.threshold, False, (), assessed=False, note=note)
    if not scores:
        raise ConfigurationError("a liveness check needs at least one frame")
    for s in scores:
        if not 0.0 <= s <= 1.0 or math.isnan(s):
            raise ConfigurationError(f"liveness check {check.name!r} returned {s}, not a probability")
    mean = float(np.mean(scores))
    return LivenessResult(
        check=check.name,
        score=mean,
        threshold=check.threshold,
        live=mean >= check.threshold,
        frame_scores=tuple(float(s) for s in scores),
    )


def assess(check: LivenessCheck, frames: Sequence[tuple[RGBImage, Face]]) -> LivenessResult:
    """Score each ``(image, face)`` and decide on their mean at the check's threshold.

    If the check cannot judge any of the frames (see :func:`cannot_assess`),
    the result is not assessed rather than a score.
    """
    if not frames:
        raise ConfigurationError("a liveness check needs at least one frame")
    for image, face in frames:
        note = cannot_assess(check, image, face)
        if note:
            return decide(check, (), note=note)
    return decide(check, [float(check.score(image, face)) for image, face in frames])


def require_live(result: LivenessResult) -> LivenessResult:
    """Return the result if live, else raise :class:`PresentationAttackError`
    (also when the check could not assess the capture: never a silent pass)."""
    if not result.assessed:
        raise PresentationAttackError(
            f"passive check {result.check!r} could not judge the capture: {result.note}"
        )
    if not result.live:
        raise PresentationAttackError(
            f"passive check {result.check!r} scored the face as an attack "
            f"(live probability {result.score:.2f} < threshold {result.threshold:.2f})"
        )
    return result


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1.0 - 1e-6)
    return math.log(p / (1.0 - p))


class FusedCheck:
    """Several passive checks as one: the mean of their margins over threshold.

    Each check's score is turned into a log-odds margin over its own
    threshold, the margins are averaged, and the result is mapped back to
    (0, 1). A fused score of 0.5 is "on average exactly at threshold", so the
    fused threshold defaults to 0.5 and moves only with a measured reason.
    """

    def __init__(self, checks: Sequence[LivenessCheck], *, threshold: float = 0.5) -> None:
        if not checks:
            raise ConfigurationError("a fused check needs at least one check")
        self.checks = tuple(checks)
        self.threshold = threshold
        self.name = "fused(" + "+".join(c.name for c in self.checks) + ")"

    def score(self, image: RGBImage, face: Face) -> float:
        return fuse([c.score(image, face) for c in self.checks], [c.threshold for c in self.checks])

    def cannot_assess(self, image: RGBImage, face: Face) -> str:
        """The first member's reason it cannot judge ('' when all can)."""
        return next((r for c in self.checks if (r := cannot_assess(c, image, face))), "")


def fuse(scores: Sequence[float], thresholds: Sequence[float]) -> float:
    """Mean log-odds margin of each score over its threshold, mapped back to (0, 1)."""
    margins = [_logit(s) - _logit(t) for s, t in zip(scores, thresholds, strict=True)]
    return 1.0 / (1.0 + math.exp(-float(np.mean(margins))))


def square_crop(image: RGBImage, face: Face, *, scale: float, size: int) -> RGBImage:
    """The face box scaled ``scale`` times about its centre, resized to ``size``².

    As in Silent-Face-Anti-Spoofing (the MiniFASNet crop): the scale shrinks
    until the box fits the image, and the box is shifted to stay inside it, so
    no padding is invented. The box is not made square first: the result is
    resized to a square, as the model was trained.
    """
    from PIL import Image

    h, w = image.shape[:2]
    x, y, bw, bh = face.box
    bw, bh = max(bw, 1.0), max(bh, 1.0)
    s = min(scale, (h - 1) / bh, (w - 1) / bw)
    cx, cy = x + bw / 2, y + bh / 2
    nw, nh = bw * s, bh * s
    left, top = cx - nw / 2, cy - nh / 2
    left = min(max(left, 0.0), w - 1 - nw)
    top = min(max(top, 0.0), h - 1 - nh)
    x0, y0 = round(left), round(top)
    x1, y1 = round(left + nw), round(top + nh)
    patch = image[max(y0, 0) : max(y1, y0 + 1) + 1, max(x0, 0) : max(x1, x0 + 1) + 1]
    return np.asarray(Image.fromarray(patch).resize((size, size), Image.Resampling.BILINEAR))
