"""Find faces and their five landmarks.

The default detector is YuNet (2023mar). Its decoding is written out here from
the model's documented output layout, not guessed from tensor shapes: which
model a file is, and how to feed it, comes from the pack's manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from ._capture import RGBImage
from ._onnx import OnnxSession

Landmarks = npt.NDArray[np.float32]
"""5×2 points in ArcFace order: right eye, left eye, nose, right and left mouth
corner (the subject's right is the viewer's left)."""


@dataclass(frozen=True, slots=True)
class Face:
    """One detected face, in the capture's pixel coordinates."""

    box: tuple[float, float, float, float]  # x, y, width, height
    landmarks: Landmarks
    score: float

    @property
    def interocular(self) -> float:
        """Distance between the eye centres, in pixels: the usual face-size measure."""
        return float(np.linalg.norm(self.landmarks[1] - self.landmarks[0]))


class Detector(Protocol):
    """Finds every face above its own score threshold, best first."""

    score_threshold: float

    def detect(self, image: RGBImage) -> list[Face]: ...


@dataclass(frozen=True, slots=True)
class Refinement:
    """Landmarks placed again on an enlarged crop around each face found.

    The crop is a square of ``margin`` times the face box's longer side about
    its centre, resized to ``size`` px (bicubic) and detected again; the face
    found nearest the crop's centre gives the landmarks and box. YuNet places
    its landmarks from a stride-8 grid, so they are more precise on a larger
    face: revision 2 enlarged the whole capture to the 640 px input for this, at
    the price of a full 640 x 640 run; a crop buys the same for the face alone.
    """

    size: int = 320
    margin: float = 1.3
    #: Faces refined per capture, largest first (group photos stay bounded).
    limit: int = 4


class YuNetDetector:
    """YuNet, its input sized to the capture, with optional landmark refinement.

    Without ``canvas`` the graph's fixed ``size x size`` input is used, the image
    letterboxed at the top left: images larger are downscaled; smaller ones are
    enlarged to fill it when ``upscale`` is set (bicubic), else placed at their
    own size, as OpenCV runs YuNet (revisions 1 and 2).

    With ``canvas`` (a graph with a dynamic input, revision 3) the capture is
    scaled so its longer side is ``canvas`` px, but never below ``min_scale``
    (so a face of the quality gate's minimum size stays findable: at 0.4 a face
    20 px between the eyes is 8 px, above :attr:`MIN_FINDABLE`), nor above
    ``size`` px; the input is that, padded to a multiple of 32. When the largest
    face found is so small that a face half its size (which the one-face rule
    counts as comparable) would not be findable at that scale, the search runs
    again at a scale where it is. Each face found is then refined
    (:class:`Refinement`) when ``refine`` is given.
    """

    STRIDES = (8, 16, 32)
    #: Eye distance (px, at the detector's scale) above which YuNet finds faces reliably.
    MIN_FINDABLE = 6.0

    def __init__(
        self,
        session: OnnxSession,
        *,
        score_threshold: float,
        nms_iou: float = 0.3,
        size: int = 640,
        upscale: bool = False,
        canvas: int | None = None,
        min_scale: float = 0.4,
        refine: Refinement | None = None,
    ) -> None:
        self._session = session
        self.score_threshold = score_threshold
        self._nms_iou = nms_iou
        self._size = size
        self._upscale = upscale
        self._canvas = canvas
        self._min_scale = min_scale
        self.refinement = refine
        self._priors: dict[tuple[int, int, int], npt.NDArray[np.float32]] = {}

    def detect(self, image: RGBImage) -> list[Face]:
        h, w = image.shape[:2]
        if self._canvas is None:
            scale = self._size / max(h, w)
            if not self._upscale:
                scale = min(1.0, scale)
            faces = self._run(image, scale, (self._size, self._size), self.score_threshold)
        else:
            cap = self._size / max(h, w)
            scale = min(max(self._canvas / max(h, w), self._min_scale), cap)
            faces = self._run(image, scale, (_ceil32(h * scale), _ceil32(w * scale)), self.score_threshold)
            if faces:
                # A face half the size of the largest is "comparable" (the one-face rule):
                # it must be findable too, so a small largest face means a larger scale.
                need = min(2 * self.MIN_FINDABLE / max(f.interocular for f in faces), cap)
                if need > scale * 1.05:
                    scale = need
                    faces = self._run(
                        image, scale, (_ceil32(h * scale), _ceil32(w * scale)), self.score_threshold
                    )
        if self.refinement is None or not faces:
            return faces
        largest = max(f.interocular for f in faces)
        ranked = sorted(range(len(faces)), key=lambda i: -faces[i].interocular)
        for i in ranked[: self.refinement.limit]:
            if faces[i].interocular >= 0.5 * largest:  # a face the pipeline could select
                faces[i] = self.refine(image, faces[i]) or faces[i]
        return faces

    def refine(self, image: RGBImage, face: Face) -> Face | None:
        """``face`` detected again on an enlarged crop around it (None if the crop holds no face).

        Also the tracking step between video frames: given the previous frame's
        face, it finds the face near it in the next frame for the cost of one
        small run (:meth:`track`).
        """
        spec = self.refinement or Refinement()
        x, y, bw, bh = face.box
        side = spec.margin * max(bw, bh)
        if side < 1.0:
            return None
        x0, y0 = x + bw / 2 - side / 2, y + bh / 2 - side / 2
        crop = _crop_resized(image, x0, y0, side, spec.size)
        found = self._run(crop, 1.0, (spec.size, spec.size), min(self.score_threshold, 0.3))
        if not found:
            return None
        centre = spec.size / 2
        best = min(
            found, key=lambda f: abs(f.box[0] + f.box[2] / 2 - centre) + abs(f.box[1] + f.box[3] / 2 - centre)
        )
        return _from_crop(best, x0, y0, side / spec.size, score=face.score)

    def for_frames(self) -> YuNetDetector:
        """This detector as a live session runs it on camera frames.

        The whole frame fitted to the fixed input (as revision 2 detected every
        capture), no refinement: a session reads head pose from the landmarks, and
        its thresholds were set on these (a crop-refined point set reads a turned
        head's yaw differently). Between whole-frame detections, :meth:`track`
        looks only at a window around the last face, at the same scale.
        """
        return YuNetDetector(
            self._session,
            score_threshold=self.score_threshold,
            nms_iou=self._nms_iou,
            size=self._size,
            upscale=True,
        )

    def track(self, image: RGBImage, previous: Face) -> Face | None:
        """The face near ``previous`` (the last frame's) in ``image``, or None when it is lost.

        YuNet on a window of the frame around the last face, at the scale
        :meth:`detect` uses for the whole frame (for a frame at most the input's
        size, none), the window placed on the grid of the model's coarsest
        stride (32 px): the convolutions then see the face exactly as in the
        whole frame, and the points come out the same but for the window's
        border, at a fraction of the cost. The score is the one found now: a face
        that fades below the detector's threshold is lost.
        """
        h, w = image.shape[:2]
        scale = self._size / max(h, w)
        if not self._upscale:
            scale = min(1.0, scale)
        x, y, bw, bh = (v * scale for v in previous.box)
        reach = 1.5 * max(bw, bh)  # room for the face, its context and a frame's motion
        left = max(0, int((x + bw / 2 - reach) // 32) * 32)
        top = max(0, int((y + bh / 2 - reach) // 32) * 32)
        right = min(_ceil32(w * scale), _ceil32(x + bw / 2 + reach))
        bottom = min(_ceil32(h * scale), _ceil32(y + bh / 2 + reach))
        resized = image if scale == 1.0 else _resize(image, scale)
        window = resized[top:bottom, left:right]
        shape = (_ceil32(bottom - top), _ceil32(right - left))
        found = self._run(window, 1.0, shape, self.score_threshold)
        if not found:
            return None
        best = max(found, key=lambda f: f.interocular)
        bx, by, fw, fh = best.box
        offset = np.array([left, top], dtype=np.float32)
        return Face(
            box=((bx + left) / scale, (by + top) / scale, fw / scale, fh / scale),
            landmarks=((best.landmarks + offset) / scale).astype(np.float32),
            score=best.score,
        )

    def _run(self, image: RGBImage, scale: float, shape: tuple[int, int], threshold: float) -> list[Face]:
        """Faces at or above ``threshold`` in ``image`` scaled by ``scale`` into a ``shape`` input."""
        resized = image if scale == 1.0 else _resize(image, scale)
        rh, rw = resized.shape[:2]
        rh, rw = min(rh, shape[0]), min(rw, shape[1])
        # The letterboxed NCHW blob, written plane by plane (contiguous, no HWC float copy).
        blob = np.zeros((1, 3, *shape), dtype=np.float32)
        for plane, channel in enumerate((2, 1, 0)):  # RGB→BGR
            blob[0, plane, :rh, :rw] = resized[:rh, :rw, channel]
        out = dict(zip(self._session.output_names, self._session.run(blob), strict=True))

        boxes, points, scores = [], [], []
        for s in self.STRIDES:
            cls = np.clip(out[f"cls_{s}"][0, :, 0], 0.0, 1.0)
            obj = np.clip(out[f"obj_{s}"][0, :, 0], 0.0, 1.0)
            score = np.sqrt(cls * obj)
            keep = score >= threshold
            if not keep.any():
                continue
            prior = self._grid(s, shape)[keep]
            bb = out[f"bbox_{s}"][0][keep]
            kp = out[f"kps_{s}"][0][keep].reshape(-1, 5, 2)
            cx = (prior[:, 0] + bb[:, 0]) * s
            cy = (prior[:, 1] + bb[:, 1]) * s
            bw = np.exp(bb[:, 2]) * s
            bh = np.exp(bb[:, 3]) * s
            boxes.append(np.stack([cx - bw / 2, cy - bh / 2, bw, bh], axis=1))
            points.append((prior[:, None, :] + kp) * s)
            scores.append(score[keep])
        if not scores:
            return []
        all_boxes = np.concatenate(boxes) / scale
        all_points = np.concatenate(points) / scale
        all_scores = np.concatenate(scores)
        order = _nms(all_boxes, all_scores, self._nms_iou)
        return [
            Face(
                box=(
                    float(all_boxes[i, 0]),
                    float(all_boxes[i, 1]),
                    float(all_boxes[i, 2]),
                    float(all_boxes[i, 3]),
                ),
                landmarks=all_points[i].astype(np.float32),
                score=float(all_scores[i]),
            )
            for i in order
        ]

    def _grid(self, stride: int, shape: tuple[int, int]) -> npt.NDArray[np.float32]:
        key = (stride, *shape)
        grid = self._priors.get(key)
        if grid is None:
            grid = self._priors[key] = _grid(shape[0] // stride, shape[1] // stride)
        return grid


def _ceil32(x: float) -> int:
    return max(32, int(np.ceil(round(x, 6) / 32.0)) * 32)


def _from_crop(face: Face, x0: float, y0: float, step: float, *, score: float) -> Face:
    """A face found in a crop made by :func:`_crop_resized`, in the capture's coordinates.

    Pillow samples at pixel centres: crop pixel ``u`` reads capture coordinate
    ``step * (u + 0.5) + x0 - 0.5``.
    """
    shift = 0.5 * (step - 1.0)
    bx, by, bw, bh = face.box
    points = face.landmarks * step + np.array([x0 + shift, y0 + shift], dtype=np.float32)
    return Face(
        box=(bx * step + x0 + shift, by * step + y0 + shift, bw * step, bh * step),
        landmarks=points.astype(np.float32),
        score=score,
    )


def _crop_resized(image: RGBImage, x0: float, y0: float, side: float, size: int) -> RGBImage:
    """The square ``[x0, x0 + side) x [y0, y0 + side)`` of ``image`` resized to ``size`` (black outside).

    Only that window is copied (zero-padded where it leaves the image) and resized
    with Pillow's ``box``: ``Image.transform`` would take 14 ms for the same crop.
    """
    from PIL import Image

    h, w = image.shape[:2]
    left, top = int(np.floor(x0)), int(np.floor(y0))
    right, bottom = int(np.ceil(x0 + side)) + 1, int(np.ceil(y0 + side)) + 1
    window = np.zeros((bottom - top, right - left, 3), dtype=np.uint8)
    sx0, sy0, sx1, sy1 = max(left, 0), max(top, 0), min(right, w), min(bottom, h)
    if sx1 > sx0 and sy1 > sy0:
        window[sy0 - top : sy1 - top, sx0 - left : sx1 - left] = image[sy0:sy1, sx0:sx1]
    method = Image.Resampling.BICUBIC if side < size else Image.Resampling.BILINEAR
    box = (x0 - left, y0 - top, x0 - left + side, y0 - top + side)
    return np.asarray(Image.fromarray(window).resize((size, size), method, box=box))


def _grid(rows_n: int, cols_n: int) -> npt.NDArray[np.float32]:
    rows, cols = np.divmod(np.arange(rows_n * cols_n), cols_n)
    return np.stack([cols, rows], axis=1).astype(np.float32)


def _resize(image: RGBImage, scale: float) -> RGBImage:
    from PIL import Image

    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    # Bilinear shrinking in Pillow filters over the whole footprint (no aliasing); bicubic
    # enlarging keeps the edges the landmarks sit on sharper than bilinear.
    method = Image.Resampling.BILINEAR if scale < 1.0 else Image.Resampling.BICUBIC
    return np.asarray(Image.fromarray(image).resize(size, method))


def _nms(boxes: npt.NDArray[np.float64], scores: npt.NDArray[np.float32], iou: float) -> list[int]:
    x1, y1 = boxes[:, 0], boxes[:, 1]
    x2, y2 = x1 + boxes[:, 2], y1 + boxes[:, 3]
    area = boxes[:, 2] * boxes[:, 3]
    order = list(np.argsort(-scores))
    keep: list[int] = []
    while order:
        i = order.pop(0)
        keep.append(int(i))
        rest = np.array(order, dtype=np.int64)
        if rest.size == 0:
            break
        xx1 = np.maximum(x1[i], x1[rest])
        yy1 = np.maximum(y1[i], y1[rest])
        xx2 = np.minimum(x2[i], x2[rest])
        yy2 = np.minimum(y2[i], y2[rest])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        overlap = inter / (area[i] + area[rest] - inter + 1e-9)
        order = [int(j) for j, o in zip(rest, overlap, strict=True) if o <= iou]
    return keep
