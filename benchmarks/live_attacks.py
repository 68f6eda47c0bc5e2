"""Live-capture attack benchmark: one photo animated, printed, thin-plated, replayed, re-captured.

    nice python benchmarks/live_attacks.py [--sessions N] [--replays K] [--halves test] [--seed=S]
    python benchmarks/live_attacks.py --merge A.json B.json [--out OUT]
        → benchmarks/out/live_attacks.json and a markdown table on stdout (docs/liveness.md)

**Attacks** (APCER: share of attack sessions accepted). Each attack session is
a bot that reads the real :class:`ChallengeSession`'s prompt after every frame
and answers it, as an attacker with one photo and a script would over HTTP:
at rest while no prompt is shown (the baseline, the random hold before each
prompt), then it waits a human-like reaction time (0.3-0.9 s), moves to the
asked pose over a few frames, holds, and comes back to rest, at 7-12 frames a
second. The
photo is one LFW image of a person (never enrolled anywhere). Families:

- ``depth-warp``: the depth warp of ``tests/liveness/liveness_frames.py`` (the
  one the issue's attacker used), its own parameters;
- ``depth-warp-random``: the same idea with random head depth, nose size,
  amplitudes, per-frame noise (σ 1-8), blur, JPEG (q 55-95) and exposure flicker;
- ``print-tilted``: the photo as a flat print, turned and tilted in 3-D
  (a homography with perspective), moved closer;
- ``thin-plate``: a thin-plate spline moving the five landmarks (and four
  contour points) along the trajectories a 3-D head's would follow, random depths;
- ``screen-recapture``: the depth-warp frames shown on a screen and filmed:
  camera shake, gamma, colour cast, moiré, blur, sensor noise, JPEG;
- ``replay``: every recorded session that passed the challenge and its timing
  (a depth-warp bot's, the only passing sessions there are to record)
  replayed frame for frame, with its timing, against ``--replays`` new draws
  (challenges and holds);
- ``replay-same-draw``: the same recordings against their own challenge
  sequence with new holds (the draw matched by chance): the "challenge"
  figure is what a recording of the real person would get;
- ``replay-real-video``: the real speaker video (a real head, natural motion,
  one face in view) replayed as the camera against random draws.

**Bona fide** (BPCER: share rejected): the face tracks of the two real videos
in ``../shared/data/video`` (natural head motion of real people, not
cooperative answers). They cannot answer prompts, so the challenge itself is
not measured on them; the animation checks are, on pseudo-sessions: a
baseline (the first frontal frame meeting the quality minimums, as the
session takes it), then the next 8 s of the track, of which the frames at
rest are kept as the session keeps the frames held before its prompts; each
track as filmed, mirrored and played backwards (``VARIANTS``). A session's
first prompt waits for two frames in the same pose (the rigid-texture check's
pair): a pseudo-session without one gets no verdict (a non-response, reported
apart); BPCER is over those the session judges. Besides, each start is run
through the session's whole pre-prompt protocol over its own draws
(:func:`first_prompt`): what natural motion that does not wait for a prompt
meets (not a BPCER: those people are not presenting).

**Split**: attack photos of people A–M and odd-numbered real tracks are the
*tuning* half; N–Z and even tracks the *test* half. Thresholds (the policy's
defaults) were chosen on the tuning half; every figure in the docs' table is
from the test half.
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from random import Random
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "liveness"))
from liveness_frames import Poser, _sample  # noqa: E402  (the tests' own depth warp)

from faceverify import FrozenClock  # noqa: E402
from faceverify._errors import FaceError  # noqa: E402
from faceverify._liveness import Challenge, ChallengePolicy, ChallengeSession, FeaturePADCheck  # noqa: E402
from faceverify._liveness._animation import TextureTrace, face_patch, parallax  # noqa: E402
from faceverify._liveness._challenge import (  # noqa: E402
    _NODS,
    _WRONG,
    _at_rest,
    _draw,
    _holds,
    _Pose,
    _progress,
    same_face,
)
from faceverify.hazmat import FacePipeline, builtin_manifest, load_image, load_pipeline  # noqa: E402

SHARED = Path(os.environ.get("FACEVERIFY_SHARED", ROOT.parent / "shared"))
LFW = SHARED / "data" / "lfw"
VIDEO = SHARED / "data" / "video"
OUT = ROOT / "benchmarks" / "out"
CACHE = Path(os.environ.get("FACEVERIFY_TEST_CACHE", ROOT / ".fv-cache")) / "models"

RGB = npt.NDArray[np.uint8]
F = npt.NDArray[np.float64]
POLICY = ChallengePolicy()  # the shipped defaults (animation checks on)
#: What the sessions run: the shipped policy with the rigid-texture threshold at 0, so that
#: every session goes on to the passive check; the rigid-texture verdict is taken from the
#: session's evidence at the shipped threshold (every check measured on every session).
SESSION = replace(POLICY, texture_change_min=0.0)
#: A session's own verdicts that are not the challenge's (the prompts, their timing, faces, frames).
NOT_CHALLENGE = ("", "rigid-texture", "parallax", "passive-pad")

# -- attack animators: (yaw°, pitch°, zoom) -> frame ----------------------------------


def _jpeg(img: RGB, quality: int) -> RGB:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def _blur(img: RGB, sigma: float) -> RGB:
    if sigma <= 0.05:
        return img
    from PIL import ImageFilter

    return np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(sigma)))


class DepthWarp:
    """The tests' Poser, as it is."""

    amplitudes = (25.0, 38.0, -30.0, 1.4)  # turn, look up, look down, closer

    def __init__(self, pipeline: FacePipeline, image: RGB, rng: Random) -> None:
        self.poser = Poser(pipeline, image, seed=rng.randrange(1 << 30))
        self.rng = rng

    def frame(self, yaw: float, pitch: float, zoom: float) -> RGB:
        return self.poser.frame(yaw=yaw, pitch=pitch, zoom=zoom)


class RandomDepthWarp(DepthWarp):
    """Random head depth, nose, amplitudes, noise, blur, JPEG and exposure flicker."""

    def __init__(self, pipeline: FacePipeline, image: RGB, rng: Random) -> None:
        super().__init__(pipeline, image, rng)
        self.head = rng.uniform(0.6, 1.3)
        self.nose = rng.uniform(0.2, 0.7)
        self.amplitudes = (
            rng.uniform(20, 35),
            rng.uniform(25, 42),
            -rng.uniform(22, 35),
            rng.uniform(1.3, 1.6),
        )
        self.noise, self.sigma, self.quality = rng.uniform(1, 8), rng.uniform(0, 1.2), rng.randint(55, 95)
        poser, iod = self.poser, self.poser.iod
        cx, cy = poser.centre
        nose_pt = poser.points[2]

        def depth(x: F, y: F) -> F:
            u, v = (x - cx) / (1.1 * iod), (y - cy) / (1.6 * iod)
            head = self.head * iod * np.sqrt(np.clip(1 - u**2 - v**2, 0, None))
            r2 = (x - nose_pt[0]) ** 2 + (y - nose_pt[1]) ** 2
            out: F = head + self.nose * iod * np.exp(-r2 / (2 * (0.3 * iod) ** 2))
            return out

        poser._depth = depth  # type: ignore[method-assign]

    def frame(self, yaw: float, pitch: float, zoom: float) -> RGB:
        f = self.poser.frame(yaw=yaw, pitch=pitch, zoom=zoom, noise=False).astype(np.float64)
        f = f * self.rng.uniform(0.92, 1.08) + self.rng.uniform(-6, 6)
        f = f + np.random.default_rng(self.rng.randrange(1 << 30)).normal(0, self.noise, f.shape)
        out = np.clip(f, 0, 255).astype(np.uint8)
        return _jpeg(_blur(out, self.sigma), self.quality)


def _homography_frame(image: RGB, centre: tuple[float, float], yaw: float, pitch: float, zoom: float) -> RGB:
    """The image as a flat print rotated in 3-D about its centre, seen by a pinhole camera."""
    h, w = image.shape[:2]
    f = 2.0 * max(h, w)
    a, b = np.radians(yaw), np.radians(pitch)
    ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    rot = ry @ rx
    cx, cy = centre
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    # Ray through each output pixel, intersected with the rotated print plane at depth f / zoom.
    d = np.stack([(xx - cx), (yy - cy), np.full_like(xx, f)], axis=-1)
    normal = rot @ np.array([0.0, 0.0, 1.0])
    dist = f / zoom
    t = dist * normal[2] / (d @ normal)
    p = d * t[..., None] - np.array([0, 0, dist])
    local = p @ rot  # into print coordinates (rot is orthonormal: inverse = transpose)
    return _sample(image, cx + local[..., 0] * zoom, cy + local[..., 1] * zoom)


class PrintTilted(DepthWarp):
    """A flat print turned about its vertical axis, tilted about its horizontal one, moved closer."""

    def __init__(self, pipeline: FacePipeline, image: RGB, rng: Random) -> None:
        super().__init__(pipeline, image, rng)
        self.amplitudes = (
            rng.uniform(30, 60),
            rng.uniform(25, 50),
            -rng.uniform(25, 50),
            rng.uniform(1.3, 1.6),
        )
        self.image = image

    def frame(self, yaw: float, pitch: float, zoom: float) -> RGB:
        jitter = self.rng.uniform(-1.5, 1.5)
        out = _homography_frame(self.image, self.poser.centre, yaw + jitter, -pitch + jitter, zoom)
        noisy = out + np.random.default_rng(self.rng.randrange(1 << 30)).normal(0, 2.0, out.shape)
        return np.clip(noisy, 0, 255).astype(np.uint8)


def _tps_frame(image: RGB, src: F, dst: F) -> RGB:
    """Thin-plate spline warp taking points ``src`` to ``dst`` (inverse map: dst → src)."""
    n = len(dst)

    def u(r2: F) -> F:
        out: F = np.where(r2 > 0, r2 * np.log(r2 + 1e-12), 0.0)
        return out

    k = u(((dst[:, None, :] - dst[None, :, :]) ** 2).sum(-1))
    p = np.hstack([np.ones((n, 1)), dst])
    a = np.zeros((n + 3, n + 3))
    a[:n, :n], a[:n, n:], a[n:, :n] = k + 1e-6 * np.eye(n), p, p.T
    coef = np.linalg.solve(a, np.vstack([src, np.zeros((3, 2))]))
    h, w = image.shape[:2]
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    grid = np.stack([xx.ravel(), yy.ravel()], axis=1)
    kk = u(((grid[:, None, :] - dst[None, :, :]) ** 2).sum(-1))
    mapped = kk @ coef[:n] + np.hstack([np.ones((len(grid), 1)), grid]) @ coef[n:]
    return _sample(image, mapped[:, 0].reshape(h, w), mapped[:, 1].reshape(h, w))


class ThinPlate(DepthWarp):
    """Landmarks (and four contour points) moved as a 3-D head's would; TPS for the rest."""

    def __init__(self, pipeline: FacePipeline, image: RGB, rng: Random) -> None:
        super().__init__(pipeline, image, rng)
        self.image = image
        p, iod = self.poser.points, self.poser.iod
        cx, cy = self.poser.centre
        contour = np.array(
            [[cx - 1.1 * iod, cy], [cx + 1.1 * iod, cy], [cx, cy - 1.5 * iod], [cx, cy + 1.5 * iod]]
        )
        h, w = image.shape[:2]
        frame_pts = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1], [w / 2, 0], [w / 2, h - 1]])
        self.src = np.vstack([p, contour, frame_pts]).astype(np.float64)
        eyes, nose, mouth = rng.uniform(0.5, 0.9), rng.uniform(1.0, 1.5), rng.uniform(0.5, 0.9)
        self.depth = np.array([eyes, eyes, nose, mouth, mouth, 0.1, 0.1, 0.3, 0.3] + [0.0] * 6) * iod
        self.centre = np.array([cx, cy])
        self.amplitudes = (
            rng.uniform(20, 35),
            rng.uniform(25, 40),
            -rng.uniform(22, 35),
            rng.uniform(1.3, 1.6),
        )

    def frame(self, yaw: float, pitch: float, zoom: float) -> RGB:
        a, b = np.radians(yaw), np.radians(pitch)
        dst = self.src.copy()
        moving = slice(0, 9)
        rel = dst[moving] - self.centre
        z = self.depth[moving]
        dst[moving, 0] = self.centre[0] + (rel[:, 0] * np.cos(a) + z * np.sin(a)) * zoom
        dst[moving, 1] = self.centre[1] + (rel[:, 1] * np.cos(b) - z * np.sin(b)) * zoom
        dst[moving] += np.array([self.rng.uniform(-1, 1), self.rng.uniform(-1, 1)])
        out = _tps_frame(self.image, self.src, dst).astype(np.float64)
        out += np.random.default_rng(self.rng.randrange(1 << 30)).normal(0, 2.0, out.shape)
        return np.clip(out, 0, 255).astype(np.uint8)


class ScreenRecapture(DepthWarp):
    """Depth-warp frames on a screen, filmed: shake, gamma, colour cast, moiré, blur, noise, JPEG."""

    def __init__(self, pipeline: FacePipeline, image: RGB, rng: Random) -> None:
        super().__init__(pipeline, image, rng)
        self.gamma = rng.uniform(0.8, 1.25)
        self.cast = np.array([rng.uniform(0.9, 1.1), 1.0, rng.uniform(0.9, 1.15)])
        self.period = rng.uniform(2.5, 5.0)
        self.depth_moire = rng.uniform(0.03, 0.10)

    def frame(self, yaw: float, pitch: float, zoom: float) -> RGB:
        shown = self.poser.frame(yaw=yaw, pitch=pitch, zoom=zoom, noise=False)
        shake = self.rng.uniform(-3, 3), self.rng.uniform(-3, 3)
        filmed = _homography_frame(shown, self.poser.centre, shake[0], shake[1], self.rng.uniform(0.97, 1.03))
        h, w = filmed.shape[:2]
        yy, xx = np.mgrid[:h, :w].astype(np.float64)
        angle, phase = self.rng.uniform(0, np.pi), self.rng.uniform(0, 2 * np.pi)
        moire = 1 + self.depth_moire * np.sin(
            2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / self.period + phase
        )
        f = (filmed.astype(np.float64) / 255.0) ** self.gamma * 255.0 * self.cast * moire[..., None]
        f = np.asarray(_blur(np.clip(f, 0, 255).astype(np.uint8), 0.8), dtype=np.float64)
        f += np.random.default_rng(self.rng.randrange(1 << 30)).normal(0, 3.0, f.shape)
        return _jpeg(np.clip(f, 0, 255).astype(np.uint8), self.rng.randint(60, 90))


FAMILIES: dict[str, type[DepthWarp]] = {
    "depth-warp": DepthWarp,
    "depth-warp-random": RandomDepthWarp,
    "print-tilted": PrintTilted,
    "thin-plate": ThinPlate,
    "screen-recapture": ScreenRecapture,
}

# -- the bot: answers the session's prompts -----------------------------------------


def _target(animator: DepthWarp, challenge: Challenge | None) -> tuple[float, float, float]:
    turn, up, down, closer = animator.amplitudes
    return {
        None: (0.0, 0.0, 1.0),
        Challenge.TURN_LEFT: (turn, 0.0, 1.0),
        Challenge.TURN_RIGHT: (-turn, 0.0, 1.0),
        Challenge.LOOK_UP: (0.0, up, 1.0),
        Challenge.LOOK_DOWN: (0.0, down, 1.0),
        Challenge.MOVE_CLOSER: (0.0, 0.0, closer),
    }[challenge]


@dataclass
class Recorded:
    frames: list[tuple[RGB, float]]  # frame, seconds since the first
    challenges: tuple[Challenge, ...]
    holds: tuple[float, ...]


def bot_frames(animator: DepthWarp, session: ChallengeSession, rng: Random) -> Iterator[tuple[RGB, float]]:
    """Frames answering the session's current prompt, and the time step before each."""
    pose = (0.0, 0.0, 1.0)
    for _ in range(3):  # the camera starts: a few frames at rest
        yield animator.frame(*pose), rng.uniform(0.08, 0.14)
    while not session.finished:
        asked = session.current
        if asked is None:  # no prompt yet (the baseline, or the hold before one): at rest, watching
            yield animator.frame(0.0, 0.0, 1.0), rng.uniform(0.08, 0.14)
            continue
        wait = rng.uniform(0.3, 0.9)
        while wait > 0 and not session.finished:  # reaction time: still at rest
            step = rng.uniform(0.08, 0.14)
            wait -= step
            yield animator.frame(0.0, 0.0, 1.0), step
        goal = _target(animator, asked)
        for k in (0.5, 1.0, 1.0, 1.0, 1.0):  # move there, hold
            pose = tuple(0.0 + (g - r) * k + r for g, r in zip(goal, (0.0, 0.0, 1.0), strict=True))  # type: ignore[assignment]
            yield animator.frame(*pose), rng.uniform(0.08, 0.14)
            if session.finished or session.current is not asked:
                break
        for _ in range(2):  # back to rest
            yield animator.frame(0.0, 0.0, 1.0), rng.uniform(0.08, 0.14)


def run_session(
    pipeline: FacePipeline,
    frames: Callable[[ChallengeSession], Iterator[tuple[RGB, float]]],
    challenges: tuple[Challenge, ...],
    *,
    passive: FeaturePADCheck | None,
    rng: Random,
    record: bool = False,
) -> tuple[dict[str, Any], Recorded | None]:
    """Feed a session (``SESSION``: the rigid-texture verdict is computed from its evidence);
    its holds before the prompts are drawn from ``rng`` (a CSPRNG in a deployment)."""
    clock = FrozenClock(datetime(2026, 12, 1, 12, 0, tzinfo=UTC))
    session = ChallengeSession(
        pipeline, clock=clock, policy=SESSION, passive=passive, challenges=challenges, rng=rng
    )
    kept: list[tuple[RGB, float]] = []
    t = 0.0
    for frame, step in frames(session):
        clock.advance(timedelta(seconds=step))
        t += step
        if record:
            kept.append((frame, t))
        session.feed(frame, at=clock.now())
        if session.finished or clock.now() > session.deadline:
            break
    result = session.result()
    # The evidence the animation checks decide from, as the session kept it.
    base = session._base_patch
    rc = session._trace.change()
    px = parallax(base, session._posed) if base is not None else None
    failed = next((c.name for c in result.checks if not c.passed), "")
    out = {
        "challenge": failed in NOT_CHALLENGE and not result.abandoned,
        "failed": failed,
        "holds": list(session.holds),
        "reasons": list(result.reasons),
        "rest_change": rc,
        "parallax": px,
        "passive": None if result.passive is None else result.passive.live,
        "frames": result.frames,
    }
    return out, (Recorded(kept, challenges, session.holds) if record and out["challenge"] else None)


# -- bona fide: face tracks of the real videos ------------------------------------


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    return inter / (aw * ah + bw * bh - inter)


VIDEOS = ("speaker-stage", "walking-crowd")
#: The mean grey-level change of a whole frame (at a quarter of its size) that marks a shot cut.
SHOT_CUT = 20.0


def video_tracks(
    pipeline: FacePipeline, *, embed: bool = True, extra: Callable[[RGB, Any], dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Face tracks (IoU-linked detections, >= 15 frames) of each real video; with ``embed``
    each frame's embedding too (the same-face check's); ``extra(image, face)`` adds its fields
    to each frame's record. A track ends at a shot cut (the speaker video cuts at frames 20, 82
    and 211, to other people at 211): the whole frame's mean grey-level change reaches
    ``SHOT_CUT`` (28-30 there; within a shot at most 14)."""
    from faceverify._liveness import frames_from_video
    from faceverify._pipeline._quality import measure

    tracks: list[dict[str, Any]] = []
    for name in VIDEOS:
        path = VIDEO / f"{name}.mp4"
        fps = 29.97 if name == "speaker-stage" else 25.0
        live: list[dict[str, Any]] = []
        done: list[dict[str, Any]] = []
        grey = None
        for k, (image, _) in enumerate(frames_from_video(path)):
            nxt = []
            small, grey = grey, image[::4, ::4].astype(np.float32).mean(axis=-1)
            if small is not None and float(np.abs(grey - small).mean()) >= SHOT_CUT:
                live = []  # another shot: no track goes on across it
            for face in pipeline.detector.detect(image):
                if face.interocular < 18:
                    continue
                crop = pipeline.aligner.align(image, face.landmarks)
                rec = {
                    "t": k / fps,
                    "box": face.box,
                    "pose": _Pose.of(face.landmarks),
                    "patch": face_patch(crop),
                    "quality": measure(image, face, crop),
                    "k": k,
                    "embedding": pipeline.embedder.embed([crop])[0] if embed else None,
                    **(extra(image, face) if extra is not None else {}),
                }
                match = max(live, key=lambda tr: _iou(tr["frames"][-1]["box"], face.box), default=None)
                if (
                    match is not None
                    and match["frames"][-1]["k"] == k - 1
                    and _iou(match["frames"][-1]["box"], face.box) > 0.3
                ):
                    match["frames"].append(rec)
                    nxt.append(match)
                else:
                    track = {"video": name, "frames": [rec]}
                    done.append(track)
                    nxt.append(track)
            live = nxt
        kept = [tr for tr in done if len(tr["frames"]) >= 15]
        for i, tr in enumerate(kept):
            tr["id"] = f"{name}#{i}"
            tr["half"] = "tune" if i % 2 else "test"
        tracks += kept
    return tracks


#: Real 3-D motion, each: the clip as filmed, mirrored (left and right swapped), played backwards.
VARIANTS = ("as-filmed", "mirrored", "time-reversed")


def _variant(frames: list[dict[str, Any]], variant: str) -> list[dict[str, Any]]:
    if variant == "mirrored":
        return [
            {
                **f,
                "pose": replace(f["pose"], yaw=-f["pose"].yaw),
                "patch": np.ascontiguousarray(f["patch"][:, ::-1]),
            }
            for f in frames
        ]
    if variant == "time-reversed":
        end = frames[-1]["t"]
        return [{**f, "t": end - f["t"]} for f in reversed(frames)]
    return frames


def _early_nod(
    frames: list[dict[str, Any]], base: _Pose, policy: ChallengePolicy, margin: float
) -> list[str]:
    """The nods (``look-up``, ``look-down``) that the first prompt's hold (the longest, from the
    baseline) would see ``margin`` times their threshold on ``hold_frames`` frames in a row, while
    the turns and the distance are at rest (the face held still, as before a prompt)."""
    nods = (Challenge.LOOK_UP, Challenge.LOOK_DOWN)
    runs = dict.fromkeys(nods, 0)
    seen: list[str] = []
    for f in frames:
        if f["t"] > policy.prompt_hold[1].total_seconds():
            break
        progress = _progress(policy, base, f["pose"])
        facing = f["pose"].width >= policy.min_turn_width * base.width
        held = facing and all(abs(v) < policy.neutral_fraction for c, v in progress.items() if c not in nods)
        for c in nods:
            runs[c] = runs[c] + 1 if held and progress[c] >= margin else 0
            if runs[c] >= policy.hold_frames and c.value not in seen:
                seen.append(c.value)
    return seen


@functools.cache
def first_pending(how_many: tuple[int, int], draws: int = 200_000) -> dict[str, float]:
    """How often each challenge is the first one a session asks, drawing ``how_many``
    (``ChallengePolicy.challenges``) with the session's own ``_draw`` (a seeded sample, once).

    A nod held before a prompt fails a session only when that very nod is pending (``_WRONG``
    lists no nod for another challenge): the early-nod refusal's rate over the session's draws."""
    rand = Random(0)
    counts: dict[str, int] = {}
    for _ in range(draws):
        first = _draw(rand, *how_many)[0].value
        counts[first] = counts.get(first, 0) + 1
    return {c: k / draws for c, k in counts.items()}


def pseudo_sessions(track: dict[str, Any], policy: ChallengePolicy, variant: str) -> list[dict[str, Any]]:
    """Sessions' evidence from a real track: a baseline at every usable frame (frontal, meeting
    the quality minimums, with ``MIN_SESSION`` of the track after it), the 8 s after it. As the
    session does, the rigid-texture check sees the frames at rest (near the baseline's pose,
    facing the camera, as the session holds the face before each prompt); the same-face check
    reads every frame, the last frame read being the one before (the session reads at least every
    ``identity_every``-th: with the last read 5 frames back, the same sessions are refused); a nod held in
    the first 3.5 s is read at the shipped margin and at its plain threshold (before)."""
    frames = _variant(track["frames"], variant)
    out = []
    for i, base in enumerate(frames):
        pose: _Pose = base["pose"]
        frontal = abs(pose.yaw) <= policy.frontal_yaw and abs(pose.pitch) <= policy.frontal_pitch
        if not frontal or policy.quality.reasons(base["quality"]):
            continue
        if frames[-1]["t"] - base["t"] < MIN_SESSION:
            break  # too little of the track left for a session (reaction + two challenges)
        trace, posed, rest = TextureTrace(policy.trace_rules), [], []
        trace.add(0.0, pose.yaw, pose.pitch, pose.interocular, base["patch"])
        window = [{**f, "t": f["t"] - base["t"]} for f in frames[i + 1 :] if f["t"] - base["t"] <= 8.0]
        other, unsure, previous, last = "", 0, base, base
        for f in window:
            p: _Pose = f["pose"]
            # At rest, and not foreshortened: ``_progress`` reads no turn from a face narrowed
            # like a turned print, so a head turned 40-60 degrees away would pass for one at rest.
            facing = p.width >= policy.min_turn_width * pose.width
            if _at_rest(_progress(policy, pose, p), policy) and facing:
                trace.add(f["t"], p.yaw, p.pitch, p.interocular, f["patch"])
                rest.append(p)
            dyaw, dpitch = p.yaw - pose.yaw, p.pitch - pose.pitch
            turned = abs(dyaw) >= policy.turn_yaw and p.width >= policy.min_turn_width * pose.width
            if (turned or abs(dpitch) >= policy.nod_pitch) and len(posed) < 3:
                posed.append(f["patch"])
            if base["embedding"] is not None and not other:
                e = f["embedding"]
                is_frontal = abs(p.yaw) <= policy.frontal_yaw and abs(p.pitch) <= policy.frontal_pitch
                to_prev = None if is_frontal else float(previous["embedding"] @ e)
                to_last = float(last["embedding"] @ e)
                other, cannot = same_face(policy, float(base["embedding"] @ e), to_prev, to_last=to_last)
                unsure += bool(cannot)
                previous, last = previous if cannot else f, f
        scales = [r.interocular / pose.interocular for r in rest]
        seed = f"{track['id']}-{variant}-{base['k']}"
        ahead = [{**f, "t": f["t"] - base["t"]} for f in frames[i + 1 :]]
        out.append(
            {
                "draws": [
                    first_prompt(ahead, pose, base["patch"], policy, Random(f"{seed}-{d}"), later=window)
                    for d in range(DRAWS)
                ],
                "track": track["id"],
                "variant": variant,
                "half": track["half"],
                "start": base["k"],
                "rest_change": trace.change(),
                "parallax": parallax(base["patch"], posed),
                "pairs": len(trace.pairs()),
                "frames": len(window),
                "rest_frames": len(rest),
                "rest_span": max((r["t"] for r in window if r["pose"] in rest), default=0.0),
                "rest_scale": [min(scales, default=1.0), max(scales, default=1.0)],
                "rest_yaw": [
                    min((r.yaw - pose.yaw for r in rest), default=0.0),
                    max((r.yaw - pose.yaw for r in rest), default=0.0),
                ],
                "other_face": other,
                "unsure_frames": unsure,
                "early_nod": _early_nod(window, pose, policy, policy.wrong_margin),
                "early_nod_plain": _early_nod(window, pose, policy, 1.0),
            }
        )
    return out


#: Draws of the session's challenges and holds per pseudo-session (:func:`first_prompt`).
DRAWS = 8


def first_prompt(
    ahead: list[dict[str, Any]],
    base: _Pose,
    patch: npt.NDArray[np.uint8],
    policy: ChallengePolicy,
    rand: Random,
    *,
    later: list[dict[str, Any]],
) -> dict[str, Any]:
    """One draw of a session (its challenges and holds, the session's own ``_draw`` and
    ``_holds``) run on a real track up to its first prompt, as ``ChallengeSession._await_prompt``
    does: from the baseline every frame enters the rigid-texture trace (as the session takes
    them while the face waits); a response to the pending challenge or a wrong one, held
    ``hold_frames`` frames before the prompt, is refused as early ("timing"); the hold begins at
    the first frame with two frames in the same pose in the trace, and the prompt goes
    out ``hold`` after it. No hold before the challenge's deadline is "no-hold" (the session
    keeps saying "hold still": a non-response, not a verdict); a track that ends first is
    "unobserved". After the prompt the person in the video does not answer it: the frames at
    rest (and facing the camera) in ``later`` stand for the holds before the later prompts, as
    the session takes those, and the trace's change is read at the shipped threshold."""
    challenges = _draw(rand, *policy.challenges)
    hold = _holds(rand, policy, len(challenges))[0]
    wanted = challenges[0]
    deadline = policy.time_per_challenge.total_seconds() + hold
    trace = TextureTrace(policy.trace_rules)
    trace.add(0.0, base.yaw, base.pitch, base.interocular, patch)
    early, hold_from, prompt = 0, None, None
    out: dict[str, Any] = {"first": wanted.value, "hold": hold}
    for f in ahead:
        t, p = f["t"], f["pose"]
        if t > deadline:
            return {**out, "outcome": "no-hold", "hold_from": hold_from}
        progress = _progress(policy, base, p)
        trace.add(t, p.yaw, p.pitch, p.interocular, f["patch"])
        held = [
            c
            for c in (wanted, *_WRONG[wanted])
            if progress[c] >= (policy.wrong_margin if c in _NODS else 1.0)
        ]
        early = early + 1 if held else 0
        if early >= policy.hold_frames:
            return {**out, "outcome": "timing", "early": held[0].value, "at": t}
        if hold_from is None:
            if trace.pairs():
                hold_from = t
        elif t - hold_from >= hold:
            prompt = t
            break
    if prompt is None:
        return {**out, "outcome": "unobserved", "hold_from": hold_from}
    for f in later:
        p = f["pose"]
        facing = p.width >= policy.min_turn_width * base.width
        if f["t"] > prompt and facing and _at_rest(_progress(policy, base, p), policy):
            trace.add(f["t"], p.yaw, p.pitch, p.interocular, f["patch"])
    change = trace.change()  # a pair exists: the hold began with one
    outcome = "accepted" if change is not None and change >= policy.texture_change_min else "rigid-texture"
    return {**out, "outcome": outcome, "hold_from": hold_from, "prompt": prompt, "change": change}


#: The shortest session a person can give: a reaction time and two challenges answered.
MIN_SESSION = 2.0

# -- figures -----------------------------------------------------------------------


def _accepts(row: dict[str, Any], check: str, policy: ChallengePolicy) -> bool:
    if check == "challenge":  # the session's own verdict (prompts, their timing), the others' aside
        return bool(row["challenge"])
    if check == "passive":
        return row["passive"] is not False
    if check == "rigid-texture":
        return row["rest_change"] is not None and row["rest_change"] >= policy.texture_change_min
    if check == "parallax":
        if policy.parallax_min is None:
            return True
        return row["parallax"] is not None and row["parallax"] >= policy.parallax_min
    raise ValueError(check)


CHECKS = ("challenge", "rigid-texture", "parallax", "passive")


def combined(row: dict[str, Any], policy: ChallengePolicy, *, passive: bool) -> bool:
    checks = [c for c in CHECKS if passive or c != "passive"]
    return all(_accepts(row, c, policy) for c in checks)


def lfw_photos(rng: Random, count: int, half: str) -> list[Path]:
    with (LFW / "pairs.csv").open() as fh:
        paths = sorted({r["path1"] for r in csv.DictReader(fh)} | set())
    side = [p for p in paths if (p[0].upper() <= "M") == (half == "tune")]
    rng.shuffle(side)
    return [LFW / p for p in side[: count * 4]]


def usable(pipeline: FacePipeline, image: RGB) -> bool:
    """A photo an attacker would pick: one clear face, not small."""
    faces = [f for f in pipeline.detector.detect(image) if f.interocular >= 12]
    return len(faces) == 1 and faces[0].interocular >= 30


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=24, help="attack sessions per family and half")
    ap.add_argument("--halves", default="tune,test")
    ap.add_argument(
        "--families",
        default=",".join(
            dict.fromkeys(["depth-warp", "replay", "replay-same-draw", "replay-real-video", *FAMILIES])
        ),
    )
    ap.add_argument(
        "--replays", type=int, default=4, help="new draws each recorded session is replayed against"
    )
    ap.add_argument("--no-passive", action="store_true", help="skip the passive colour check")
    ap.add_argument("--no-bona-fide", action="store_true", help="attacks only (e.g. another draw to merge)")
    ap.add_argument("--out", type=Path, default=OUT / "live_attacks.json")
    ap.add_argument(
        "--seed", default="", help="another draw of photos and parameters (more sessions, same halves)"
    )
    ap.add_argument(
        "--merge", type=Path, nargs="*", default=[], help="summarise these runs' JSON together, run nothing"
    )
    args = ap.parse_args()
    if args.merge:
        merged: dict[str, Any] = {"attacks": {}, "bona_fide": {"sessions": []}}
        for path in args.merge:
            run = json.loads(path.read_text())
            for family, halves in run["attacks"].items():
                for half, rows in halves.items():  # runs of other seeds add sessions
                    if rows:
                        merged["attacks"].setdefault(family, {}).setdefault(half, []).extend(rows)
            if not merged["bona_fide"]["sessions"]:
                merged["bona_fide"]["sessions"] = run["bona_fide"]["sessions"]
        merged["policy"] = _policy_figures()
        merged["summary"] = summarise(merged, passive=True)
        args.out.write_text(json.dumps(merged, indent=1, default=_json))
        print(table(merged["summary"]))
        return
    if not (LFW / "pairs.csv").exists() or not (VIDEO / "speaker-stage.mp4").exists():
        sys.exit(f"needs ../shared/data/lfw and ../shared/data/video (looked in {SHARED})")
    pipeline = load_pipeline(builtin_manifest("yunet-sface"), cache=CACHE if CACHE.exists() else None)
    passive = None if args.no_passive else FeaturePADCheck()
    started = time.time()
    report: dict[str, Any] = {
        "policy": _policy_figures(),
        "attacks": {},
        "bona_fide": {},
    }

    tracks = [] if args.no_bona_fide else video_tracks(pipeline)
    bona = [s for tr in tracks for v in VARIANTS for s in pseudo_sessions(tr, POLICY, v)]
    report["bona_fide"]["sessions"] = bona
    print(
        f"bona fide: {len(tracks)} tracks, {len(bona)} pseudo-sessions ({time.time() - started:.0f} s)",
        flush=True,
    )

    families = [f for f in args.families.split(",") if f]  # '': the bona fide part alone
    recorded: dict[str, list[Recorded]] = {}
    for half in args.halves.split(","):
        rng = Random(f"live-attacks-{half}{args.seed}")
        photos = lfw_photos(rng, args.sessions, half)
        for family in families:
            rows: list[dict[str, Any]] = []
            if family in FAMILIES:
                for path in photos:
                    if len(rows) >= args.sessions:
                        break
                    image = load_image(path)
                    if not usable(pipeline, image):
                        continue
                    try:
                        animator = FAMILIES[family](pipeline, image, rng)
                    except FaceError:
                        continue
                    challenges = tuple(rng.sample(list(Challenge), rng.randint(2, 3)))
                    if not {Challenge.TURN_LEFT, Challenge.TURN_RIGHT} & set(challenges):
                        challenges = (
                            rng.choice([Challenge.TURN_LEFT, Challenge.TURN_RIGHT]),
                            *challenges[1:],
                        )
                    row, rec = run_session(
                        pipeline,
                        lambda s, a=animator, r=rng: bot_frames(a, s, r),
                        challenges,
                        passive=passive,
                        rng=rng,
                        record=family == "depth-warp",
                    )
                    row["photo"] = path.parent.name
                    rows.append(row)
                    if rec is not None:
                        recorded.setdefault(half, []).append(rec)
            elif family in ("replay", "replay-same-draw"):
                # Every recorded passing session, replayed frame for frame with its timing against
                # --replays new draws: new challenges and holds ("replay"), or the recording's own
                # challenges with new holds ("replay-same-draw": the draw matched by chance).
                for rec in recorded.get(half, []):
                    steps = [
                        t - s
                        for (_, t), (_, s) in zip(rec.frames, [(None, 0.0), *rec.frames[:-1]], strict=True)
                    ]
                    replay = list(zip([f for f, _ in rec.frames], steps, strict=True))
                    for _ in range(args.replays):
                        draw = (
                            rec.challenges
                            if family == "replay-same-draw"
                            else tuple(_draw(rng, *POLICY.challenges))
                        )
                        row, _ = run_session(
                            pipeline, lambda s, r=replay: iter(r), draw, passive=passive, rng=rng
                        )
                        row["same_draw"] = draw == rec.challenges
                        row["recorded_holds"] = list(rec.holds)
                        rows.append(row)
            elif family == "replay-real-video":
                # The real speaker (one face in view from frame 90; the clip's 275 frames end on the
                # audience), from a random start in its first 2 s, filmed at 15 frames a second.
                from faceverify._liveness import frames_from_video

                clip = [f for f, _ in frames_from_video(VIDEO / "speaker-stage.mp4")]
                offset = 0 if half == "tune" else 1
                for _ in range(args.sessions):
                    draw = tuple(_draw(rng, *POLICY.challenges))
                    start = rng.randrange(90 + offset, 150, 2)
                    replay = [(f, 2 / 29.97) for f in clip[start::2]]
                    row, _ = run_session(
                        pipeline, lambda s, r=replay: iter(r), draw, passive=passive, rng=rng
                    )
                    row["start_frame"] = start
                    rows.append(row)
            report["attacks"].setdefault(family, {})[half] = rows
            print(f"{half} {family}: {len(rows)} sessions ({time.time() - started:.0f} s)", flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=1, default=_json))  # what is done so far

    summary = summarise(report, passive=passive is not None)
    report["summary"] = summary
    report["seconds"] = round(time.time() - started)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=_json))
    print(table(summary))


def _policy_figures() -> dict[str, Any]:
    return {
        "texture_change_min": POLICY.texture_change_min,
        "parallax_min": POLICY.parallax_min,
        "min_response_s": POLICY.min_response.total_seconds(),
        "max_response_s": POLICY.max_response.total_seconds(),
        "prompt_hold_s": [t.total_seconds() for t in POLICY.prompt_hold],
        "pair": [POLICY.pair_yaw, POLICY.pair_pitch, POLICY.pair_scale, POLICY.pair_gap.total_seconds()],
    }


def _json(o: object) -> object:
    if isinstance(o, np.floating | np.integer):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o))


def upper95(k: int, n: int) -> float:
    """One-sided 95 % Clopper-Pearson upper bound of a rate seen k times in n (bisection)."""
    from math import comb

    if k >= n:
        return 1.0
    lo, hi = k / n, 1.0
    for _ in range(60):
        p = (lo + hi) / 2
        tail = sum(comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))  # P(X <= k)
        lo, hi = (p, hi) if tail > 0.05 else (lo, p)
    return hi


def summarise(report: dict[str, Any], *, passive: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"apcer": {}, "bpcer": {}}
    for family, halves in report["attacks"].items():
        for half, rows in halves.items():
            if not rows:
                continue
            fig = {c: float(np.mean([_accepts(r, c, POLICY) for r in rows])) for c in CHECKS}
            scored = [r for r in rows if r["passive"] is not None]  # the sessions that reached it
            fig["passive"] = float(np.mean([r["passive"] for r in scored])) if scored else float("nan")
            fig["passive_n"] = len(scored)
            fig["timing_refused"] = float(np.mean([r["failed"] == "timing" for r in rows]))
            accepted = [combined(r, POLICY, passive=passive) for r in rows]
            fig["combined"] = float(np.mean(accepted))
            fig["combined_upper95"] = upper95(sum(accepted), len(rows))
            fig["challenge_upper95"] = upper95(sum(_accepts(r, "challenge", POLICY) for r in rows), len(rows))
            fig["combined-no-passive"] = float(np.mean([combined(r, POLICY, passive=False) for r in rows]))
            fig["n"] = len(rows)
            out["apcer"].setdefault(family, {})[half] = fig
    sessions = report["bona_fide"]["sessions"]
    groups = [
        (
            f"{half} {variant}",
            [s for s in sessions if s["half"] == half and variant in ("all", s.get("variant", "as-filmed"))],
        )
        for half in ("tune", "test")
        for variant in ("all", *VARIANTS)
    ]
    groups += [
        (f"{video} (both halves)", [s for s in sessions if s["track"].startswith(video)]) for video in VIDEOS
    ]
    groups.append(("every track", sessions))
    for key, rows in groups:
        if rows:
            out["bpcer"][key] = bona_fide_figures(rows)
            if all("draws" in r for r in rows):
                out.setdefault("session", {})[key] = session_figures(rows)
    out["mirror_correlation"] = _mirror_correlation(report["bona_fide"]["sessions"])
    return out


#: The bona fide checks: the session's refusals a real person can meet without a prompt.
BONA_FIDE_CHECKS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "rigid-texture": lambda r: not _accepts(r, "rigid-texture", POLICY),
    "no-pair": lambda r: r["rest_change"] is None,
    "same-face": lambda r: bool(r.get("other_face")),
    "early-nod": lambda r: bool(r.get("early_nod")),
    "early-nod-plain (before)": lambda r: bool(r.get("early_nod_plain")),
}
#: What the shipped session refuses (an early nod counted as if a nod's prompt were pending).
REFUSING = ("rigid-texture", "same-face", "early-nod")


def bona_fide_figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """BPCER per check and combined, with one-sided 95 % upper bounds over pseudo-sessions and
    over tracks (a track refused if any of its pseudo-sessions is: the unit that is independent).

    "combined" counts an early nod as a refusal, as if that nod's prompt were always the first
    (an upper bound); ``expected`` is the refusal rate over the session's own draw of challenges
    (:func:`first_pending`): a session refused by another check counts 1, one refused only by an
    early nod counts the chance that a nod it held is the first prompt."""
    fig: dict[str, Any] = {"n": len(rows), "tracks": len({r["track"] for r in rows})}
    pending = first_pending(POLICY.challenges)

    def expected(r: dict[str, Any]) -> float:
        if any(BONA_FIDE_CHECKS[c](r) for c in REFUSING if c != "early-nod"):
            return 1.0
        return sum(pending.get(nod, 0.0) for nod in r.get("early_nod") or [])

    for name, refuses in BONA_FIDE_CHECKS.items():
        k = sum(map(refuses, rows))
        fig[name] = {"refused": k, "rate": k / len(rows), "upper95": upper95(k, len(rows))}
    combined = [any(BONA_FIDE_CHECKS[c](r) for c in REFUSING) for r in rows]
    tracks = {r["track"] for r in rows}
    refused_tracks = {r["track"] for r, x in zip(rows, combined, strict=True) if x}
    fig["combined"] = {
        "refused": sum(combined),
        "rate": float(np.mean(combined)),
        "expected": float(np.mean([expected(r) for r in rows])),
        "upper95": upper95(sum(combined), len(rows)),
        "tracks_refused": len(refused_tracks),
        "tracks_upper95": upper95(len(refused_tracks), len(tracks)),
    }
    paired = [x for x, r in zip(combined, rows, strict=True) if r["rest_change"] is not None]
    # Held still as a session asks (a pair at rest for the rigid-texture check): "no pair" is the
    # pseudo-session's artifact (walkers never hold still), a refusal by design in a session.
    held = [expected(r) for r in rows if r["rest_change"] is not None]
    fig["paired"] = {
        "n": len(paired),
        "refused": sum(paired),
        "rate": float(np.mean(paired)) if paired else float("nan"),
        "expected": float(np.mean(held)) if held else float("nan"),
        "upper95": upper95(sum(paired), len(paired)),
    }
    # The face checks alone (rigid texture, same face) on the sessions that get a verdict: a
    # session without a pair never reaches its first prompt (it keeps asking to hold still).
    checks = [
        BONA_FIDE_CHECKS["rigid-texture"](r) or BONA_FIDE_CHECKS["same-face"](r)
        for r in rows
        if r["rest_change"] is not None
    ]
    fig["face_checks"] = {
        "n": len(checks),
        "refused": sum(checks),
        "rate": float(np.mean(checks)) if checks else float("nan"),
        "upper95": upper95(sum(checks), len(checks)) if checks else float("nan"),
    }
    fig["non_response"] = (len(rows) - len(paired)) / len(rows)
    changes = [r["rest_change"] for r in rows if r["rest_change"] is not None]
    fig["least_change"] = min(changes) if changes else float("nan")
    fig["unsure_frames"] = int(sum(r.get("unsure_frames", 0) for r in rows))
    fig["frames"] = int(sum(r.get("frames", 0) for r in rows))
    return fig


def session_figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The session's own verdicts on the pseudo-sessions, over their draws (:func:`first_prompt`).

    A draw *responds* when the session reaches a verdict on it: refused before the prompt
    (early), or prompted and then accepted or refused by the rigid-texture check; a face that
    appeared mid-session (``other_face``, read over the 8 s) refuses every draw it is seen in.
    BPCER = refused draws / responding draws. "No hold" draws (the face never held still before
    the challenge's deadline: the session kept asking) are the non-response rate, apart, as ISO/IEC
    30107-3 counts non-responses apart from BPCER. Draws of one start are not independent: the
    bound is over starts refused in any of their draws, and over tracks."""
    fig: dict[str, Any] = {"starts": len(rows), "tracks": len({r["track"] for r in rows})}
    counts: dict[str, int] = {}
    refused_starts, responding_starts, tracks, refused_tracks = 0, 0, set(), set()
    for r in rows:
        verdicts = []
        for d in r["draws"]:
            outcome = d["outcome"]
            if r.get("other_face") and outcome != "unobserved":
                outcome = "same-face"
            counts[outcome] = counts.get(outcome, 0) + 1
            if outcome == "timing":
                key = f"early {d['early']}"
                counts[key] = counts.get(key, 0) + 1
            if outcome not in ("no-hold", "unobserved"):
                verdicts.append(outcome != "accepted")
        if verdicts:
            responding_starts += 1
            tracks.add(r["track"])
            if any(verdicts):
                refused_starts += 1
                refused_tracks.add(r["track"])
    responded = sum(v for k, v in counts.items() if k in ("accepted", "timing", "rigid-texture", "same-face"))
    refused = responded - counts.get("accepted", 0)
    fig["draws"] = counts
    fig["responded"] = responded
    fig["bpcer"] = refused / responded if responded else float("nan")
    fig["no_hold"] = counts.get("no-hold", 0) / max(1, responded + counts.get("no-hold", 0))
    fig["starts_responding"] = responding_starts
    fig["starts_refused"] = refused_starts
    fig["starts_upper95"] = upper95(refused_starts, responding_starts) if responding_starts else float("nan")
    fig["tracks_responding"] = len(tracks)
    fig["tracks_refused"] = len(refused_tracks)
    changes = [d["change"] for r in rows for d in r["draws"] if "change" in d]
    fig["least_change"] = min(changes) if changes else float("nan")
    return fig


def _mirror_correlation(sessions: list[dict[str, Any]]) -> dict[str, Any]:
    """How far the mirrored video is a new sample: the rigid-texture change of each
    pseudo-session as filmed against the same start mirrored (Pearson r, and how often the
    two verdicts agree)."""
    key = {(s["track"], s.get("start"), s["variant"]): s for s in sessions}
    pairs = [
        (s["rest_change"], m["rest_change"])
        for (track, start, variant), s in key.items()
        if variant == "as-filmed"
        and (m := key.get((track, start, "mirrored"))) is not None
        and s["rest_change"] is not None
        and m["rest_change"] is not None
    ]
    if len(pairs) < 3:
        return {"n": len(pairs)}
    a, b = np.array(pairs).T
    agree = np.mean((a >= POLICY.texture_change_min) == (b >= POLICY.texture_change_min))
    return {"n": len(pairs), "pearson": float(np.corrcoef(a, b)[0, 1]), "verdicts_agree": float(agree)}


def table(summary: dict[str, Any]) -> str:
    head = (
        "| family (test half) | n | challenge + timing | refused on timing | rigid texture "
        "| passive (where reached) |"
    )
    lines = [
        head + " **combined** | 95 % upper | combined w/o passive |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for family, halves in summary["apcer"].items():
        f = halves.get("test")
        if f is None:
            continue
        n = f.get("passive_n", 0)
        cells = [
            f"{100 * f['challenge']:.1f} %",
            f"{100 * f['timing_refused']:.1f} %",
            f"{100 * f['rigid-texture']:.1f} %",
            f"{100 * f['passive']:.1f} % of {n}" if n else "not reached",
        ]
        lines.append(
            f"| {family} | {f['n']} | "
            + " | ".join(cells)
            + f" | **{100 * f['combined']:.1f} %** | {100 * f['combined_upper95']:.1f} %"
            + f" | {100 * f['combined-no-passive']:.1f} % |"
        )
    lines += [
        "",
        "| bona fide (pseudo-sessions) | n | tracks | never held still (no pair: non-response) "
        "| with a verdict | rigid texture | same face | **face checks: BPCER** (95 % upper) "
        "| + early nod: every one (95 % upper) | **+ early nod over the draws** |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, b in summary["bpcer"].items():
        p, fc = b["paired"], b["face_checks"]
        lines.append(
            f"| {key} | {b['n']} | {b['tracks']} "
            f"| {b['no-pair']['refused']} ({100 * b['non_response']:.1f} %) "
            f"| {p['n']} | {b['rigid-texture']['refused'] - b['no-pair']['refused']} "
            f"| {b['same-face']['refused']} | **{100 * fc['rate']:.1f} %** ({100 * fc['upper95']:.1f} %) "
            f"| {100 * p['rate']:.1f} % ({100 * p['upper95']:.1f} %) | **{100 * p['expected']:.1f} %** |"
        )
    if summary.get("session"):
        lines += [
            "",
            "| natural motion through the whole pre-prompt protocol, over the session's draws "
            "(people not presenting: not BPCER) | starts | draws with a verdict "
            "| never held still | refused early | rigid texture | same face "
            "| refused | starts refused in any draw (95 % upper) | tracks refused |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for key, b in summary["session"].items():
            d = b["draws"]
            early = ", ".join(f"{k[6:]} {v}" for k, v in sorted(d.items()) if k.startswith("early "))
            lines.append(
                f"| {key} | {b['starts']} | {b['responded']} | {d.get('no-hold', 0)} "
                f"({100 * b['no_hold']:.1f} %) | {d.get('timing', 0)} ({early or '-'}) "
                f"| {d.get('rigid-texture', 0)} | {d.get('same-face', 0)} | {100 * b['bpcer']:.1f} % "
                f"| {b['starts_refused']} of {b['starts_responding']} ({100 * b['starts_upper95']:.1f} %) "
                f"| {b['tracks_refused']} of {b['tracks_responding']} |"
            )
    m = summary.get("mirror_correlation", {})
    if "pearson" in m:
        lines.append(
            f"\nmirrored vs as filmed: r = {m['pearson']:.3f} over {m['n']} starts, "
            f"verdicts agree {100 * m['verdicts_agree']:.1f} %"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
