"""Hand-made PAD features of a face crop: texture, frequency and colour.

Each family targets a trace that recapture leaves (docs/liveness.md):

- texture: uniform rotation-invariant LBP (P=8, R=1) histograms of the luma
  and both chroma channels; print and screen recapture flatten skin micro-
  texture and shift chroma texture (colour-texture LBP, Boulkenafet et al. 2016);
- frequency: shares of spectral energy in 8 radial bands of the windowed luma,
  and how peaked the high band is (moiré from a screen's pixel grid shows up
  as isolated peaks), plus the Laplacian's log-variance (recapture blur);
- colour: mean and spread of Y, Cr, Cb, saturation and value, a saturation
  histogram, and the clipped share (screens and prints compress the gamut).

Everything is numpy on a fixed-size crop, so features do not depend on the
capture's resolution more than the resize leaves.
"""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt

from .._pipeline._capture import RGBImage
from .._pipeline._detect import Face
from ._check import square_crop

FloatArray = npt.NDArray[np.float64]

#: The crop the features are computed on: the face box, resized.
CROP_SCALE = 1.0
CROP_SIZE = 128

_RING = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))


def lbp_histogram(channel: FloatArray) -> FloatArray:
    """Histogram (10 bins, sums to 1) of uniform rotation-invariant LBP codes."""
    h, w = channel.shape
    centre = channel[1:-1, 1:-1]
    bits = np.stack([channel[1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx] >= centre for dy, dx in _RING]).astype(
        np.int8
    )
    transitions = np.abs(bits - np.roll(bits, 1, axis=0)).sum(axis=0)
    code = np.where(transitions <= 2, bits.sum(axis=0), 9)
    hist: FloatArray = np.bincount(code.ravel(), minlength=10).astype(np.float64)
    share: FloatArray = hist / hist.sum()
    return share


def _ycrcb(rgb: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return y, (r - y) * 0.713 + 128.0, (b - y) * 0.564 + 128.0


def _downsample(x: FloatArray) -> FloatArray:
    h, w = x.shape
    out: FloatArray = x[: h // 2 * 2, : w // 2 * 2].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    return out


def spectrum_features(luma: FloatArray) -> FloatArray:
    """8 radial band energy shares (log), high-band peakiness, Laplacian log-variance."""
    n = luma.shape[0]
    win = np.outer(np.hanning(n), np.hanning(n))
    power = np.abs(np.fft.fftshift(np.fft.fft2((luma - luma.mean()) * win))) ** 2
    yy, xx = np.mgrid[:n, :n] - n // 2
    radius = np.sqrt(xx**2 + yy**2) / (n / 2)  # 0 at DC, 1 at Nyquist along the axes
    edges = np.linspace(0.0, 1.0, 9)
    total = power[(radius > 0) & (radius <= 1.0)].sum() + 1e-9
    bands = [power[(radius > lo) & (radius <= hi)].sum() / total for lo, hi in itertools.pairwise(edges)]
    high = power[(radius > 0.25) & (radius <= 1.0)]
    peaky = np.log((high.max() + 1e-9) / (np.median(high) + 1e-9))
    lap = -4 * luma[1:-1, 1:-1] + luma[:-2, 1:-1] + luma[2:, 1:-1] + luma[1:-1, :-2] + luma[1:-1, 2:]
    return np.array([*np.log(np.asarray(bands) + 1e-9), peaky, np.log(lap.var() + 1e-6)])


def colour_features(rgb: FloatArray) -> FloatArray:
    """Moments of Y, Cr, Cb, saturation, value; an 8-bin saturation histogram; clipping."""
    y, cr, cb = _ycrcb(rgb)
    mx, mn = rgb.max(axis=-1), rgb.min(axis=-1)
    sat = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1e-6), 0.0)
    val = mx / 255.0
    moments = [f(c) for c in (y / 255.0, cr / 255.0, cb / 255.0, sat, val) for f in (np.mean, np.std)]
    sat_hist = np.histogram(sat, bins=8, range=(0.0, 1.0))[0] / sat.size
    clipped = np.mean((mx >= 250) | (mx <= 5))
    return np.array([*moments, *sat_hist, clipped])


FEATURE_NAMES: tuple[str, ...] = (
    *(f"lbp_{ch}_{i}" for ch in ("y", "cr", "cb") for i in range(10)),
    *(f"fft_band_{i}" for i in range(8)),
    "fft_peaky",
    "lap_logvar",
    *(f"{c}_{m}" for c in ("y", "cr", "cb", "sat", "val") for m in ("mean", "std")),
    *(f"sat_hist_{i}" for i in range(8)),
    "clipped",
)


def crop_features(crop: RGBImage) -> FloatArray:
    """The feature vector (``len(FEATURE_NAMES)``) of a ``CROP_SIZE``² RGB face crop."""
    rgb = crop.astype(np.float64)
    y, cr, cb = _ycrcb(rgb)
    texture = [lbp_histogram(y), lbp_histogram(_downsample(cr)), lbp_histogram(_downsample(cb))]
    return np.concatenate([*texture, spectrum_features(y), colour_features(rgb)])


def face_features(image: RGBImage, face: Face) -> FloatArray:
    """Features of the detected face in a capture."""
    return crop_features(square_crop(image, face, scale=CROP_SCALE, size=CROP_SIZE))
