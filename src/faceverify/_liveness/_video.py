"""Frames from a video file or a camera, for a challenge session.

OpenCV is an optional extra (``pip install opencv-python-headless``), imported
only here and only when called: faceverify itself never needs it.

A recorded file cannot answer challenges drawn after it was recorded, so a
session fed from a file passes only if the file is a live recording of this
session (e.g. a browser uploading its capture as it goes); that is the point.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from .._errors import CaptureError, ConfigurationError
from .._pipeline._capture import RGBImage


def _cv2() -> Any:
    try:
        import cv2
    except ImportError:
        raise ConfigurationError(
            "reading video needs OpenCV, an optional extra: pip install opencv-python-headless"
        ) from None
    return cv2


def frames_from_video(
    source: str | os.PathLike[str] | int,
    *,
    start: datetime | None = None,
    max_frames: int | None = None,
    every: int = 1,
) -> Iterator[tuple[RGBImage, datetime | None]]:
    """Yield ``(rgb_frame, timestamp)`` from a video file (path) or a camera (index).

    For a file, ``timestamp`` is ``start`` plus the frame's position in the
    video (``None`` when ``start`` is not given); for a camera it is ``None``,
    and the session stamps frames with its clock. ``every`` keeps one frame in
    ``every``; ``max_frames`` stops early. Raises :class:`CaptureError` when
    the source cannot be opened.
    """
    if every < 1:
        raise ConfigurationError("every must be at least 1")
    cv2 = _cv2()
    is_camera = isinstance(source, int)
    target: str | int = source if isinstance(source, int) else os.fspath(source)
    capture = cv2.VideoCapture(target)
    if not capture.isOpened():
        what = f"camera {target}" if is_camera else f"'{target}'"
        raise CaptureError(f"cannot open {what} as a video source")
    try:
        index = kept = 0
        while max_frames is None or kept < max_frames:
            ok, bgr = capture.read()
            if not ok:
                break
            index += 1
            if (index - 1) % every:
                continue
            at = None
            if start is not None and not is_camera:
                at = start + timedelta(milliseconds=float(capture.get(cv2.CAP_PROP_POS_MSEC)))
            kept += 1
            yield np.ascontiguousarray(bgr[:, :, ::-1]).astype(np.uint8), at
    finally:
        capture.release()
