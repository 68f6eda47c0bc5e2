"""Warp a face onto the ArcFace 5-point template (112×112).

This is insightface's ``face_align.norm_crop`` (a least-squares similarity
transform, Umeyama 1991, then a bilinear warp with a black border), written in
numpy. Importing insightface for it pulls in scikit-image, scipy and OpenCV:
about 0.9 s and 170 MB on every cold start of a login server. The test suite
checks that the two produce the same crop (and the same embedding).
"""

from __future__ import annotations

import functools
from typing import Protocol

import numpy as np
import numpy.typing as npt

from ._capture import RGBImage
from ._detect import Landmarks

#: insightface's ``arcface_dst``: where the five points land in a 112×112 crop.
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)


class Aligner(Protocol):
    """Crops a face to the recognizer's input geometry."""

    size: int

    def align(self, image: RGBImage, landmarks: Landmarks) -> RGBImage: ...


class ArcFaceAligner:
    """The 5-point ArcFace alignment every insightface-family recognizer expects."""

    def __init__(self, size: int = 112) -> None:
        if size % 112:
            raise ValueError("ArcFace alignment is defined for multiples of 112 px")
        self.size = size

    def align(self, image: RGBImage, landmarks: Landmarks) -> RGBImage:
        return warp_affine(image, template_transform(landmarks, self.size), self.size)


def template_transform(landmarks: Landmarks, size: int = 112) -> npt.NDArray[np.float64]:
    """The similarity matrix taking ``landmarks`` onto the ArcFace template of a ``size``-pixel crop.

    The last few are kept (read-only): the aligner and the quality gate's padding share
    (``crop_padding``) both ask for the same face's.
    """
    points = np.ascontiguousarray(landmarks, dtype=np.float64)
    return _template_transform(points.tobytes(), points.shape, size)


@functools.lru_cache(maxsize=8)
def _template_transform(points: bytes, shape: tuple[int, ...], size: int) -> npt.NDArray[np.float64]:
    src = np.frombuffer(points, dtype=np.float64).reshape(shape)
    matrix = similarity_transform(src, ARCFACE_TEMPLATE * (size / 112.0))
    matrix.flags.writeable = False
    return matrix


def similarity_transform(
    src: npt.NDArray[np.floating], dst: npt.NDArray[np.floating]
) -> npt.NDArray[np.float64]:
    """The 2×3 similarity matrix mapping ``src`` onto ``dst`` in least squares."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    n = src.shape[0]
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / n
    d = np.ones(2)
    if np.linalg.det(cov) < 0:
        d[1] = -1
    u, s, vt = np.linalg.svd(cov)
    if not s[1] > s[0] * 2 * np.finfo(np.float64).eps:  # rank < 2, at numpy's matrix_rank tolerance
        raise ValueError("degenerate landmarks: the points are collinear")
    rotation = u @ np.diag(d) @ vt
    scale = (s * d).sum() / src_c.var(axis=0).sum()
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]])


def warp_affine(image: RGBImage, matrix: npt.NDArray[np.float64], size: int) -> RGBImage:
    """``cv2.warpAffine(image, matrix, (size, size))``: bilinear, zero border.

    Only the window of the image the crop reads from (the inverse image of the
    output square, plus one pixel) is converted to float: a 12-megapixel photo
    is never copied whole for a 112-pixel crop. It is held as three planes, and
    the four neighbours of every output pixel are read with flat indices into
    them (``take``): what a 2-D fancy index computes, at half the cost, and the
    interpolation then runs on contiguous rows instead of broadcasting over a
    length-3 axis (0.50 -> 0.31 ms a crop, the same bytes).
    """
    inverse = np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]
    xs, ys = pixel_grid(size)
    sx = inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]
    sy = inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]
    floor_x, floor_y = np.floor(sx), np.floor(sy)
    x0, y0 = floor_x.astype(np.int64).ravel(), floor_y.astype(np.int64).ravel()
    fx, fy = (sx - floor_x).ravel(), (sy - floor_y).ravel()
    h, w = image.shape[:2]
    # The source window, clipped to the image; reads outside it hit the zero border.
    left, top_ = max(int(x0.min()), 0), max(int(y0.min()), 0)
    right, bottom_ = min(int(x0.max()) + 2, w), min(int(y0.max()) + 2, h)
    if right <= left or bottom_ <= top_:
        return np.zeros((size, size, 3), dtype=np.uint8)
    win_h, win_w = bottom_ - top_, right - left
    planes = np.zeros((3, win_h + 2, win_w + 2), dtype=np.float64)
    planes[:, 1:-1, 1:-1] = image[top_:bottom_, left:right].transpose(2, 0, 1)
    pixels = planes.reshape(3, -1)
    # Shift into the window, one more for the zero border; clip so out-of-range reads hit it.
    x0 -= left
    y0 -= top_
    cx0, cx1 = np.clip(x0 + 1, 0, win_w + 1), np.clip(x0 + 2, 0, win_w + 1)
    row0 = np.clip(y0 + 1, 0, win_h + 1) * (win_w + 2)
    row1 = np.clip(y0 + 2, 0, win_h + 1) * (win_w + 2)
    gx = 1 - fx
    top = pixels.take(row0 + cx0, axis=1) * gx + pixels.take(row0 + cx1, axis=1) * fx
    bottom = pixels.take(row1 + cx0, axis=1) * gx + pixels.take(row1 + cx1, axis=1) * fx
    out = top * (1 - fy) + bottom * fy
    crop: RGBImage = np.clip(np.rint(out), 0, 255).astype(np.uint8).T.reshape(size, size, 3)
    return crop


@functools.lru_cache(maxsize=8)
def pixel_grid(size: int, step: int = 1) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """x and y of every ``step``-th pixel of a ``size``-pixel square (read-only: shared by every call)."""
    ys, xs = np.mgrid[0:size:step, 0:size:step].astype(np.float64)
    xs.flags.writeable = ys.flags.writeable = False
    return xs, ys
