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


class YuNetDetector:
    """YuNet on a fixed ``size × size`` input, image letterboxed at the top left.

    Images larger than the input are downscaled. Smaller ones are enlarged to
    fill it when ``upscale`` is set (bicubic): the input costs the same either
    way, and YuNet places its landmarks more precisely on a larger face (see
    :class:`~faceverify._models._manifest.DetectorSpec`). Without it they are
    placed at their own size, as OpenCV runs YuNet.
    """

    STRIDES = (8, 16, 32)

    def __init__(
        self,
        session: OnnxSession,
        *,
        score_threshold: float,
        nms_iou: float = 0.3,
        size: int = 640,
        upscale: bool = False,
    ) -> None:
        self._session = session
        self.score_threshold = score_threshold
        self._nms_iou = nms_iou
        self._size = size
        self._upscale = upscale
        self._priors = {s: _grid(size // s) for s in self.STRIDES}

    def detect(self, image: RGBImage) -> list[Face]:
        h, w = image.shape[:2]
        scale = self._size / max(h, w)
        if not self._upscale:
            scale = min(1.0, scale)
        resized = image if scale == 1.0 else _resize(image, scale)
        rh, rw = resized.shape[:2]
        # The letterboxed NCHW blob, written plane by plane (contiguous, no HWC float copy).
        blob = np.zeros((1, 3, self._size, self._size), dtype=np.float32)
        for plane, channel in enumerate((2, 1, 0)):  # RGB→BGR
            blob[0, plane, :rh, :rw] = resized[:, :, channel]
        out = dict(zip(self._session.output_names, self._session.run(blob), strict=True))

        boxes, points, scores = [], [], []
        for s in self.STRIDES:
            cls = np.clip(out[f"cls_{s}"][0, :, 0], 0.0, 1.0)
            obj = np.clip(out[f"obj_{s}"][0, :, 0], 0.0, 1.0)
            score = np.sqrt(cls * obj)
            keep = score >= self.score_threshold
            if not keep.any():
                continue
            prior = self._priors[s][keep]
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


def _grid(n: int) -> npt.NDArray[np.float32]:
    rows, cols = np.divmod(np.arange(n * n), n)
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
