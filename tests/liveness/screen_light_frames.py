"""SIMULATED screen light on real frames: what a face in front of a coloured screen reflects.

The physical model (stated, not measured on a real screen): the screen adds
light to the face, and what the face reflects of it is proportional to the
skin's albedo, the screen colour's channel, and a strength. In linear light
(sRGB decoded), with the ambient light white, a pixel that reads ``a`` lit by
the ambient alone reads ``a * (1 + strength * screen)`` under the screen
(``screen`` in 0..1 per channel): ``strength`` is the screen's light at full
channel over the ambient's, on the face. The whole frame is lit alike (the
background is not read). Then the camera: Gaussian sensor noise (8-bit
levels) and JPEG. No camera white balance or exposure adapts to the light
(a real webcam's slowly would, in part): a limit of the simulation.

:func:`grey_levels` gives a strength's effect in 8-bit levels on mid skin
(level 150): ``0.03`` is about 2 levels, ``0.5`` about 28.
"""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
from PIL import Image

from faceverify._liveness import ScreenColour

RGB = npt.NDArray[np.uint8]
F = npt.NDArray[np.float64]


def _decode(v: F) -> F:
    s = v / 255.0
    out: F = np.where(s <= 0.04045, s / 12.92, ((s + 0.055) / 1.055) ** 2.4)
    return out


def _encode(lin: F) -> F:
    lin = np.clip(lin, 0.0, 1.0)
    out: F = 255.0 * np.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin ** (1 / 2.4) - 0.055)
    return out


def lit(
    frame: RGB,
    colour: ScreenColour | None,
    strength: float,
    *,
    rng: np.random.Generator,
    noise: float = 2.0,
    quality: int | None = 85,
) -> RGB:
    """``frame`` (as the ambient light alone gives it) lit by a screen showing ``colour``
    (None: a dark screen), through a camera's noise and JPEG (``quality`` None: none)."""
    lin = _decode(frame.astype(np.float64))
    if colour is not None and strength > 0:
        lin = lin * (1.0 + strength * np.asarray(colour.rgb, dtype=np.float64) / 255.0)
    out = _encode(lin) + rng.normal(0.0, noise, frame.shape)
    img = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    if quality is None:
        return img
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def grey_levels(strength: float, level: float = 150.0) -> float:
    """What ``strength`` adds, in 8-bit levels, to a skin channel at ``level`` (full channel)."""
    lin = _decode(np.array([level]))
    return float(_encode(lin * (1.0 + strength))[0] - level)


def greyscale(frame: RGB) -> RGB:
    """The frame as a monochrome (IR-like) camera delivers it: one grey level in all three channels."""
    grey = np.rint(frame.astype(np.float64) @ np.array([0.299, 0.587, 0.114]))
    return np.repeat(grey[..., None], 3, axis=2).astype(np.uint8)
