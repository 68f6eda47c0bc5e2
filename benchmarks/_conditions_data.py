"""Capture conditions made from LFW: relit, grayscale, infrared-like, tightly cropped, flat.

Each condition is a function of an RGB image and a seeded generator, so a
capture's variant is the same on every run. Nothing is written but the
embedding caches (``benchmarks/out/conditions-<space>-<condition>.npz``).

The face geometry is LFW's: the images were cut around a detected face, which
sits at the centre of the 250×250 frame with about 45 px between the eyes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

RGB = npt.NDArray[np.uint8]
F64 = npt.NDArray[np.float64]
Condition = Callable[[RGB, np.random.Generator], RGB]

#: LFW's face geometry as a share of the frame: head centre, eye distance, nose tip.
CENTRE = (0.5, 0.5)
IOD = 0.18
NOSE = (0.5, 0.56)


def _grey(img: RGB) -> F64:
    out: F64 = img.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return out


def _as_rgb(grey: F64) -> RGB:
    g = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=2)


def depth_map(h: int, w: int) -> F64:
    """Depth toward the camera, in pixels: an ellipsoid head and a nose in front of it
    (the model of ``tests/liveness/liveness_frames.py``, placed by LFW's geometry)."""
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    iod = IOD * w
    cx, cy = CENTRE[0] * w, CENTRE[1] * h
    u, v = (xx - cx) / (1.3 * iod), (yy - cy) / (1.8 * iod)
    head = 1.3 * iod * np.exp(-0.5 * (u**2 + v**2) / 0.35)  # smooth: no rim where the head ends
    nx, ny = NOSE[0] * w, NOSE[1] * h
    nose = 0.5 * iod * np.exp(-((xx - nx) ** 2 + ((yy - ny) / 1.4) ** 2) / (2 * (0.28 * iod) ** 2))
    out: F64 = head + nose
    return out


def relight(img: RGB, rng: np.random.Generator) -> RGB:
    """Directional light from one side: Lambertian shading of the depth model and the
    shadow it casts (nose, cheek), ambient 5-20 %, light 50-80° off the camera axis."""
    return _relight(img, rng, off_axis=(50.0, 80.0), ambient=(0.05, 0.20))


def any_light(img: RGB, rng: np.random.Generator) -> RGB:
    """Light from anywhere between nearly frontal and grazing: 10-80° off the camera axis,
    ambient 5-40 %. Many such captures lie near the gate's bounds, on either side: the
    captures a gate lets through are the ones whose scores must hold."""
    return _relight(img, rng, off_axis=(10.0, 80.0), ambient=(0.05, 0.40))


def _relight(
    img: RGB, rng: np.random.Generator, *, off_axis: tuple[float, float], ambient: tuple[float, float]
) -> RGB:
    h, w = img.shape[:2]
    z = depth_map(h, w)
    az = np.radians(rng.uniform(*off_axis)) * rng.choice([-1.0, 1.0])
    el = np.radians(rng.uniform(0, 30))
    amb = rng.uniform(*ambient)
    light = np.array([np.sin(az) * np.cos(el), -np.sin(el), np.cos(az) * np.cos(el)])
    gy, gx = np.gradient(z)
    n = np.stack([-gx, -gy, np.ones_like(z)], axis=-1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    shade = np.clip(n @ light, 0, None)
    # Cast shadow: march toward the light over the height field.
    d = light[:2] / max(float(np.hypot(*light[:2])), 1e-9)
    rise = light[2] / max(float(np.hypot(*light[:2])), 1e-9)
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    lit = np.ones((h, w), bool)
    for t in np.arange(2.0, 0.6 * w, 2.0):
        qx = np.clip(np.rint(xx + t * d[0]), 0, w - 1).astype(int)
        qy = np.clip(np.rint(yy + t * d[1]), 0, h - 1).astype(int)
        lit &= z[qy, qx] <= z + t * rise
    vis = lit.astype(np.float64)
    k = np.array([1, 4, 6, 4, 1], float) / 16  # soften the shadow edge
    vis = np.apply_along_axis(lambda r: np.convolve(r, k, "same"), 1, vis)
    vis = np.apply_along_axis(lambda c: np.convolve(c, k, "same"), 0, vis)
    new = amb + (1 - amb) * shade * vis
    frontal = amb + (1 - amb) * n[..., 2]
    ratio = np.clip(new / frontal, 0.0, 1.6)
    gain = 1.0 / max(float(np.percentile(ratio, 95)), 0.5)
    out = img.astype(np.float64) * (ratio * gain)[..., None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def grayscale(img: RGB, rng: np.random.Generator) -> RGB:
    return _as_rgb(_grey(img))


def infrared(img: RGB, rng: np.random.Generator) -> RGB:
    """Like a near-infrared camera with its own illuminator: one channel, skin bright
    and smooth (NIR is mostly red-weighted and penetrates skin), light falling off
    from the centre, contrast stretched."""
    h, w = img.shape[:2]
    f = img.astype(np.float64)
    g = 0.65 * f[..., 0] + 0.30 * f[..., 1] + 0.05 * f[..., 2]
    k = np.array([1, 4, 6, 4, 1], float) / 16
    g = np.apply_along_axis(lambda r: np.convolve(r, k, "same"), 1, g)
    g = np.apply_along_axis(lambda c: np.convolve(c, k, "same"), 0, g)
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    r2 = ((xx - w / 2) ** 2 + (yy - h / 2) ** 2) / (rng.uniform(0.35, 0.6) * w) ** 2
    g = g * (1.0 / (1.0 + r2))
    g = 255.0 * (g / 255.0) ** rng.uniform(0.6, 0.8)
    g = g * (235.0 / max(float(np.percentile(g, 99)), 1.0))
    return _as_rgb(g + rng.normal(0, 2.0, g.shape))


def tight(img: RGB, rng: np.random.Generator) -> RGB:
    """Cropped close around the face: 42-55 % of LFW's frame (about 2.3-3 eye distances)."""
    h, w = img.shape[:2]
    f = rng.uniform(0.42, 0.55)
    cw, ch = round(f * w), round(f * h * rng.uniform(1.0, 1.15))
    x0 = round(CENTRE[0] * w - cw / 2 + rng.uniform(-0.03, 0.03) * w)
    y0 = round(CENTRE[1] * h - ch / 2 + rng.uniform(-0.02, 0.04) * h)
    x0, y0 = max(0, min(w - cw, x0)), max(0, min(h - ch, y0))
    return np.ascontiguousarray(img[y0 : y0 + ch, x0 : x0 + cw])


def flat(img: RGB, rng: np.random.Generator) -> RGB:
    """Lower dynamic range: contrast squeezed to 25-40 % about the mean, sensor noise."""
    f = img.astype(np.float64)
    c = rng.uniform(0.25, 0.40)
    mid = f.mean()
    out = mid + (f - mid) * c + rng.normal(0, 1.5, f.shape)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def lab(img: RGB, rng: np.random.Generator) -> RGB:
    """The hardest hidden set's look: grayscale, light from one side, cropped tight."""
    return tight(grayscale(relight(img, rng), rng), rng)


# Conditions combined, with light of every strength: the gate and the grayscale points
# must hold on the captures that pass the gate, not only refuse the extreme ones.


def lab_any(img: RGB, rng: np.random.Generator) -> RGB:
    """Grayscale, light of any strength from one side, cropped tight: the hidden lab set's
    look, across the gate's bounds."""
    return tight(grayscale(any_light(img, rng), rng), rng)


def infrared_side(img: RGB, rng: np.random.Generator) -> RGB:
    """Infrared-like contrast with light of any strength from one side (an IR camera whose
    illuminator, or the sun through a window, lights one side)."""
    return infrared(any_light(img, rng), rng)


CONDITIONS: dict[str, Condition] = {
    "relit": relight,
    "grayscale": grayscale,
    "infrared": infrared,
    "tight": tight,
    "flat": flat,
    "lab": lab,
    "lit-any": any_light,
    "lab-any": lab_any,
    "infrared-side": infrared_side,
}
