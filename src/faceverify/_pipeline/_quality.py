"""Is a detected face good enough to be judged? Measure, then gate.

Stated false match rates are measured on captures like the calibration data;
they break first on captures unlike it (tiny, blurred, dark, turned away, cut
off by the frame). So a capture outside the profile's minimums is refused with
its reasons (:class:`LowQualityError`), never scored.

The measures are cheap and interpretable, from the landmarks and the aligned
crop the recognizer sees anyway:

- ``interocular``: eye distance in the capture, pixels (face size/resolution);
- ``sharpness``: variance of the Laplacian of the aligned grey crop (blur);
- ``brightness``/``clipped``: mean grey level and share of pixels at 0 or 255
  (exposure) on the face's central region;
- ``yaw``/``roll``/``pitch``: pose from the 5 landmarks (degrees, approximate);
- ``outside``: share of the face box beyond the image edge (cut-off faces).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._errors import LowQualityError
from ._capture import RGBImage
from ._detect import Face


@dataclass(frozen=True, slots=True)
class Quality:
    """Measurements of one face capture (no biometric data: nothing identifies)."""

    detector_score: float
    interocular: float
    sharpness: float
    brightness: float
    clipped: float
    yaw: float
    pitch: float
    roll: float
    outside: float


@dataclass(frozen=True, slots=True)
class QualityPolicy:
    """Minimums a capture must meet. See docs/accuracy.md for how each
    default was chosen: every one admits at least 99 % of the LFW captures the
    operating points were calibrated on, and refuses what lies outside them."""

    min_interocular: float = 20.0
    min_sharpness: float = 15.0
    min_brightness: float = 40.0
    max_brightness: float = 225.0
    max_clipped: float = 0.25
    max_yaw: float = 65.0  # 45 admitted only 97.6 % of LFW (landmark yaw reads high); 65 admits 99 %
    max_pitch: float = 40.0
    max_roll: float = 40.0
    max_outside: float = 0.15

    def reasons(self, q: Quality) -> list[str]:
        """Every minimum the capture misses, in words a user can act on."""
        out = []
        if q.interocular < self.min_interocular:
            out.append(f"face too small: eyes {q.interocular:.0f} px apart, need {self.min_interocular:.0f}")
        if q.sharpness < self.min_sharpness:
            out.append(f"face blurred: sharpness {q.sharpness:.0f}, need {self.min_sharpness:.0f}")
        if q.brightness < self.min_brightness:
            out.append(f"face too dark: brightness {q.brightness:.0f}, need {self.min_brightness:.0f}")
        if q.brightness > self.max_brightness:
            out.append(f"face overexposed: brightness {q.brightness:.0f}, at most {self.max_brightness:.0f}")
        if q.clipped > self.max_clipped:
            out.append(f"face exposure clipped: {q.clipped:.0%} of pixels at black or white")
        if abs(q.yaw) > self.max_yaw:
            out.append(f"face turned sideways: yaw {q.yaw:.0f}°, at most {self.max_yaw:.0f}°")
        if abs(q.pitch) > self.max_pitch:
            out.append(f"face tilted up or down: pitch {q.pitch:.0f}°, at most {self.max_pitch:.0f}°")
        if abs(q.roll) > self.max_roll:
            out.append(f"head tilted: roll {q.roll:.0f}°, at most {self.max_roll:.0f}°")
        if q.outside > self.max_outside:
            out.append(f"face cut off by the image edge ({q.outside:.0%} of it outside)")
        return out

    def check(self, q: Quality) -> None:
        reasons = self.reasons(q)
        if reasons:
            raise LowQualityError("capture below quality minimums: " + "; ".join(reasons), reasons=reasons)


def measure(image: RGBImage, face: Face, crop: RGBImage) -> Quality:
    """Measure a face from its capture and its aligned 112×112 crop."""
    grey = crop.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    centre = grey[28:100, 24:88]  # eyes to chin in the ArcFace template
    lap = (
        -4 * centre[1:-1, 1:-1] + centre[:-2, 1:-1] + centre[2:, 1:-1] + centre[1:-1, :-2] + centre[1:-1, 2:]
    )
    yaw, pitch, roll = pose_from_landmarks(face.landmarks)
    h, w = image.shape[:2]
    x, y, bw, bh = face.box
    inside_w = max(0.0, min(x + bw, w) - max(x, 0.0))
    inside_h = max(0.0, min(y + bh, h) - max(y, 0.0))
    outside = 1.0 - (inside_w * inside_h) / max(bw * bh, 1e-6)
    return Quality(
        detector_score=face.score,
        interocular=face.interocular,
        sharpness=float(lap.var()),
        brightness=float(centre.mean()),
        clipped=float(np.mean((centre <= 2) | (centre >= 253))),
        yaw=yaw,
        pitch=pitch,
        roll=roll,
        outside=float(outside),
    )


def pose_from_landmarks(points: np.ndarray) -> tuple[float, float, float]:
    """Approximate yaw, pitch and roll (degrees) from the five points.

    Roll is the angle of the eye line. Yaw: the nose moves toward the eye on
    the side the head turns to; its offset from the eyes' midpoint, over half
    the eye distance, is read as a sine. Pitch: the nose's height between the
    eye line and the mouth line, against the ArcFace template's 0.49 ratio.
    These are coarse (±10°) but monotone, which is all a gate needs.
    """
    re, le, nose, rm, lm = (np.asarray(p, dtype=np.float64) for p in points)
    eye_vec = le - re
    roll = math.degrees(math.atan2(eye_vec[1], eye_vec[0]))
    iod = float(np.linalg.norm(eye_vec)) or 1e-6
    # Rotate into the eye-line frame so roll does not leak into yaw/pitch.
    c, s = eye_vec / iod
    rot = np.array([[c, s], [-s, c]])
    eyes_mid = (re + le) / 2
    mouth_mid = (rm + lm) / 2
    n = rot @ (nose - eyes_mid)
    m = rot @ (mouth_mid - eyes_mid)
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, n[0] / (iod / 2)))))
    ratio = n[1] / m[1] if abs(m[1]) > 1e-6 else 0.5
    pitch = (ratio - 0.49) * 150.0  # ~ degrees per unit of ratio, fitted on the template
    return yaw, float(pitch), roll
