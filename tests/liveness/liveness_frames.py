"""Synthetic frame sequences from real photos: head turns, nods and approach as warps.

The face is given a depth map (an ellipsoid head with a protruding nose) and
rotated: under yaw the nose moves sideways relative to the eyes, under pitch
toward the eyes or the mouth, as a real head's do; "closer" is a zoom. Each frame gets a one-pixel jitter and
sensor-like noise, as a live camera's frames do; a static attack is the same
array fed again.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from faceverify.hazmat import FacePipeline, FaceTracker, load_image

RGB = npt.NDArray[np.uint8]


def _sample(image: RGB, sx: npt.NDArray[np.float64], sy: npt.NDArray[np.float64]) -> RGB:
    """Bilinear lookup of ``image`` at source coordinates (edge-clamped)."""
    h, w = image.shape[:2]
    sx = np.clip(sx, 0, w - 1.001)
    sy = np.clip(sy, 0, h - 1.001)
    x0, y0 = np.floor(sx).astype(int), np.floor(sy).astype(int)
    fx, fy = (sx - x0)[..., None], (sy - y0)[..., None]
    img = image.astype(np.float64)
    top = img[y0, x0] * (1 - fx) + img[y0, x0 + 1] * fx
    bottom = img[y0 + 1, x0] * (1 - fx) + img[y0 + 1, x0 + 1] * fx
    return np.clip(top * (1 - fy) + bottom * fy, 0, 255).astype(np.uint8)


class Poser:
    """Makes frames of one photo's face in a given pose."""

    def __init__(self, pipeline: FacePipeline, image: RGB, seed: int = 0) -> None:
        # Located as a session locates faces on camera frames (FaceTracker: the detector's
        # frame mode), so the synthetic poses are measured from the same landmarks.
        face = FaceTracker(pipeline).pipeline.locate(image, select="dominant")
        self.image = image
        self.points = face.landmarks.astype(np.float64)
        self.iod = face.interocular
        self.centre = (float(face.box[0] + face.box[2] / 2), float(face.box[1] + face.box[3] / 2))
        self.rng = np.random.default_rng(seed)

    def _depth(self, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Depth toward the camera, in pixels: an ellipsoid head and a nose in front of it."""
        cx, cy = self.centre
        u, v = (x - cx) / (1.1 * self.iod), (y - cy) / (1.6 * self.iod)
        head = 0.9 * self.iod * np.sqrt(np.clip(1 - u**2 - v**2, 0, None))
        nose = self.points[2]
        bump = (
            0.45 * self.iod * np.exp(-((x - nose[0]) ** 2 + (y - nose[1]) ** 2) / (2 * (0.3 * self.iod) ** 2))
        )
        out: npt.NDArray[np.float64] = head + bump
        return out

    def frame(self, *, yaw: float = 0.0, pitch: float = 0.0, zoom: float = 1.0, noise: bool = True) -> RGB:
        """A frame of the face rotated ``yaw`` degrees (+: toward the subject's left, the
        image's right), ``pitch`` degrees (+: looking up) and scaled by ``zoom``.

        The face is a depth map (ellipsoid head, protruding nose) rotated and
        projected orthographically; the inverse map is solved by fixed-point
        iteration, which is exact enough for the angles used here.
        """
        h, w = self.image.shape[:2]
        yy, xx = np.mgrid[:h, :w].astype(np.float64)
        cx, cy = self.centre
        jx, jy = self.rng.uniform(-1, 1, 2) if noise else (0.0, 0.0)
        xo = cx + (xx - cx) / zoom + jx
        yo = cy + (yy - cy) / zoom + jy
        a, b = np.radians(yaw), np.radians(pitch)
        x, y = xo.copy(), yo.copy()
        for _ in range(4):
            z = self._depth(x, y)
            x = cx + (xo - cx - z * np.sin(a)) / np.cos(a)
            y = cy + (yo - cy + z * np.sin(b)) / np.cos(b)
        out = _sample(self.image, x, y)
        if noise:
            out = np.clip(out + self.rng.normal(0, 2.0, out.shape), 0, 255).astype(np.uint8)
        return out

    def print_held(self, *, turn: float = 0.0, roll: float = 0.0, zoom: float = 1.0) -> RGB:
        """The photo as a flat print: turned ``turn`` degrees about its vertical axis
        (foreshortened, no depth), rolled ``roll`` degrees in plane, scaled ``zoom``."""
        h, w = self.image.shape[:2]
        yy, xx = np.mgrid[:h, :w].astype(np.float64)
        cx, cy = self.centre
        jx, jy = self.rng.uniform(-1, 1, 2)
        u, v = (xx - cx) / zoom + jx, (yy - cy) / zoom + jy
        c, s = np.cos(np.radians(roll)), np.sin(np.radians(roll))
        u, v = c * u + s * v, -s * u + c * v
        u = u / np.cos(np.radians(turn))
        out = _sample(self.image, cx + u, cy + v)
        return np.clip(out + self.rng.normal(0, 2.0, out.shape), 0, 255).astype(np.uint8)


def small(path: Path, side: int = 640) -> np.ndarray:
    """A sample photo scaled to at most ``side`` pixels (the detector's input anyway)."""
    image = Image.fromarray(load_image(path))
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    return np.asarray(image)
