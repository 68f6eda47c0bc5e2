"""Is the face a real head, or one picture warped? The rigid-texture test.

A photo animated into head turns (a depth warp, a thin-plate warp driven by
landmarks, a print held and tilted) produces every frame from **one
texture**: whatever it shows after the "turn" is the baseline frame's pixels,
moved smoothly. A real head does not: turning brings the nose's side and the
far cheek's contour in and out of view (self-occlusion), its shading changes
with its angle to the light, and its eyes and mouth move on their own.

So between the baseline frame and each frame that answered a turn or a nod,
:func:`texture_residual` fits the **best smooth warp** of the baseline's face
(a displacement field on an 8 × 8 grid of control points, bilinear between
them, with a smoothness penalty, plus a gain and an offset for exposure) to
the posed frame, coarse to fine, and returns the share of the posed face's
variance the warp leaves unexplained. A warped photo leaves little (sensor
noise and interpolation blur, which the 56 × 56 face patch and the blur of
the coarse steps mostly remove); a real head leaves structure. What a fixed
threshold separates, on which data, is measured by benchmarks/live_attacks.py
and stated in docs/liveness.md.

It runs only on the frames that completed a rotation challenge (two or three
per session), on a 56 × 56 grey patch, so it costs a few milliseconds per
session, not per frame; the baseline patch (3 KiB) is all the session keeps.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from .._pipeline._capture import RGBImage

Patch = npt.NDArray[np.uint8]
_F = npt.NDArray[np.float64]

#: The side of the grey face patch, from the 112 × 112 aligned crop (2 × 2 means).
PATCH = 56
#: Control points per side of the smooth warp, and its smoothness weight.
GRID = 8
SMOOTHNESS = 2.0
#: Coarse-to-fine: Gaussian blur (patch pixels) of each stage, Gauss-Newton steps per stage.
STAGES = (2.0, 1.0, 0.0)
STEPS = 3


def face_patch(crop: RGBImage) -> Patch:
    """The aligned 112 × 112 crop as a 56 × 56 grey patch (uint8)."""
    grey = crop.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    f = grey.shape[0] // PATCH
    small = grey[: f * PATCH, : f * PATCH].reshape(PATCH, f, PATCH, f).mean(axis=(1, 3))
    out: Patch = np.clip(np.rint(small), 0, 255).astype(np.uint8)
    return out


@functools.cache
def _blur_matrix(n: int, sigma: float) -> _F:
    i = np.arange(n, dtype=np.float64)
    k = np.exp(-((i[:, None] - i[None, :]) ** 2) / (2 * sigma * sigma))
    out: _F = k / k.sum(axis=1, keepdims=True)
    return out


def _blur(x: _F, sigma: float) -> _F:
    if sigma <= 0:
        return x
    k = _blur_matrix(x.shape[0], sigma)
    out: _F = k @ x @ k.T
    return out


@functools.cache
def _basis(n: int, grid: int) -> tuple[_F, _F, _F, _F, npt.NDArray[np.bool_]]:
    """Pixel coordinates, bilinear weights to the control grid, its Laplacian, the face mask."""
    yy, xx = np.mgrid[:n, :n].astype(np.float64)
    g = np.arange(grid)
    tx = np.maximum(0.0, 1.0 - np.abs(xx[..., None] / (n - 1) * (grid - 1) - g))
    ty = np.maximum(0.0, 1.0 - np.abs(yy[..., None] / (n - 1) * (grid - 1) - g))
    phi = (ty[:, :, :, None] * tx[:, :, None, :]).reshape(n * n, grid * grid)
    lap = np.zeros((grid * grid, grid * grid))
    for i in range(grid):
        for j in range(grid):
            for a, b in ((i, j + 1), (i + 1, j)):
                if a < grid and b < grid:
                    k, m = i * grid + j, a * grid + b
                    lap[k, k] += 1
                    lap[m, m] += 1
                    lap[k, m] -= 1
                    lap[m, k] -= 1
    # The inner face in the ArcFace template (eyes to chin, cheek to cheek): no background.
    yc, xc, ry, rx = n * 62 / 112, n * 56 / 112, n * 44 / 112, n * 34 / 112
    mask = ((((yy - yc) / ry) ** 2 + ((xx - xc) / rx) ** 2) <= 1.0).ravel()
    return xx.ravel(), yy.ravel(), phi, lap, mask


def _sample(img: _F, sx: _F, sy: _F) -> tuple[_F, _F, _F]:
    """Bilinear values and gradients of ``img`` at (sx, sy), edge-clamped."""
    h, w = img.shape
    sx = np.clip(sx, 0, w - 1.001)
    sy = np.clip(sy, 0, h - 1.001)
    x0, y0 = sx.astype(np.intp), sy.astype(np.intp)
    fx, fy = sx - x0, sy - y0
    a, b, c, d = img[y0, x0], img[y0, x0 + 1], img[y0 + 1, x0], img[y0 + 1, x0 + 1]
    value = a * (1 - fx) * (1 - fy) + b * fx * (1 - fy) + c * (1 - fx) * fy + d * fx * fy
    gx = (b - a) * (1 - fy) + (d - c) * fy
    gy = (c - a) * (1 - fx) + (d - b) * fx
    return value, gx, gy


def texture_residual(base: Patch, posed: Patch, *, blur: float = 0.0) -> float:
    """Share of ``posed``'s face variance left after the best smooth warp of ``base``.

    0 means ``posed`` is exactly ``base`` moved smoothly (with an exposure
    change); a real head's turn leaves structure the warp cannot make.
    ``blur`` (patch pixels) smooths both first: sensor or added noise is
    white and goes, a change of shape or shading stays.
    """
    if blur > 0:
        base = np.clip(np.rint(_blur(base.astype(np.float64), blur)), 0, 255).astype(np.uint8)
        posed = np.clip(np.rint(_blur(posed.astype(np.float64), blur)), 0, 255).astype(np.uint8)
    n = base.shape[0]
    xx, yy, phi, lap, mask = _basis(n, GRID)
    p = GRID * GRID
    pm = phi[mask]
    count = int(mask.sum())
    reg = SMOOTHNESS * count / 100.0
    d = np.zeros(2 * p)
    gain, offset = 1.0, 0.0
    b0, t0 = base.astype(np.float64), posed.astype(np.float64)
    for sigma in STAGES:
        b, t = _blur(b0, sigma), _blur(t0, sigma).ravel()[mask]
        for _ in range(STEPS):
            v, gx, gy = _sample(b, xx + phi @ d[:p], yy + phi @ d[p:])
            v, gx, gy = v[mask], gx[mask], gy[mask]
            r = t - (gain * v + offset)
            jac = np.hstack(
                [gain * gx[:, None] * pm, gain * gy[:, None] * pm, v[:, None], np.ones((count, 1))]
            )
            h = jac.T @ jac
            g = jac.T @ r
            for s in (slice(0, p), slice(p, 2 * p)):
                h[s, s] += reg * lap
                g[s] -= reg * lap @ d[s]
            h[np.diag_indices(2 * p + 2)] += 1e-6 * (np.trace(h) / (2 * p + 2) + 1.0)
            step = np.linalg.solve(h, g)
            d += step[: 2 * p]
            gain += float(step[2 * p])
            offset += float(step[2 * p + 1])
    v, _, _ = _sample(b0, xx + phi @ d[:p], yy + phi @ d[p:])
    t = t0.ravel()[mask]
    r = t - (gain * v[mask] + offset)
    return float(np.mean(r**2) / max(float(t.var()), 1e-6))


#: Blur before the comparison of pose-matched frames: white noise (a camera's, or an
#: attacker's) goes, a change of expression, gaze or light stays.
PAIR_BLUR = 1.0


@dataclass(slots=True)
class TraceFrame:
    t: float  # seconds since the baseline
    yaw: float
    pitch: float
    interocular: float
    patch: Patch


@dataclass(frozen=True, slots=True)
class TraceRules:
    """Which frames are kept and which pairs compared (see ``ChallengePolicy``)."""

    yaw: float = 6.0
    pitch: float = 10.0
    scale: float = 0.1
    gap: float = 0.3
    spacing: float = 0.2
    frames: int = 16
    pairs: int = 6


@dataclass(slots=True)
class TextureTrace:
    """The face patches of a session, a few KiB each, to find a live face's changes.

    The baseline and up to ``frames - 1`` later frames (``spacing`` seconds
    apart at least, the latest kept) are held. :meth:`change` compares the
    pairs of frames in the same pose (within ``yaw``, ``pitch`` and ``scale``)
    at least ``gap`` seconds apart, the ``pairs`` widest apart, after the best
    smooth warp, and returns the largest change: a live face, in the same pose
    a moment later, has blinked, moved its mouth or gaze, caught other light; a
    photo animated or held has the same texture every time it comes back.
    """

    rules: TraceRules
    frames: list[TraceFrame] = field(default_factory=list)

    def due(self, t: float) -> bool:
        """Would a frame at ``t`` be kept?"""
        return not self.frames or t - self.frames[-1].t >= self.rules.spacing

    def add(self, t: float, yaw: float, pitch: float, interocular: float, patch: Patch) -> None:
        if not self.due(t):
            return
        self.frames.append(TraceFrame(t, yaw, pitch, interocular, patch))
        if len(self.frames) > self.rules.frames:
            del self.frames[1]  # the baseline stays; the oldest of the others goes

    def pairs(self) -> list[tuple[int, int]]:
        """The pose-matched pairs (earlier, later) compared, widest apart first."""
        r, fs = self.rules, self.frames
        best: dict[int, tuple[float, int]] = {}
        for j, b in enumerate(fs):
            for i, a in enumerate(fs[:j]):
                gap = b.t - a.t
                same = (
                    gap >= r.gap
                    and abs(a.yaw - b.yaw) <= r.yaw
                    and abs(a.pitch - b.pitch) <= r.pitch
                    and abs(b.interocular / max(a.interocular, 1e-6) - 1.0) <= r.scale
                )
                if same and gap > best.get(j, (0.0, -1))[0]:
                    best[j] = (gap, i)
        ranked = sorted(best.items(), key=lambda kv: kv[1][0], reverse=True)
        return [(i, j) for j, (_gap, i) in ranked[: r.pairs]]

    def change(self) -> float | None:
        """The largest change over the compared pairs (None: no pair in the same pose)."""
        pairs = self.pairs()
        if not pairs:
            return None
        fs = self.frames
        return max(texture_residual(fs[i].patch, fs[j].patch, blur=PAIR_BLUR) for i, j in pairs)


def parallax(base: Patch, posed: list[Patch]) -> float | None:
    """The median texture residual of the frames that answered a turn or a nod
    (None: no such frame)."""
    if not posed:
        return None
    return float(np.median([texture_residual(base, p) for p in posed]))
