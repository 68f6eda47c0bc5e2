"""Cameras: frames with the time they were taken, from a device, a stream or a recording.

The door judges only fresh frames. Every frame carries ``at``, the time it
was captured on the door's clock; the door skips a frame older than its
``max_frame_age`` (a stream that buffered, a door that was busy) and calls
the camera lost when no fresh frame arrives within ``camera_timeout``.

- :class:`OpenCVCamera` — a device index (``0``), an ``rtsp://`` or
  ``http(s)://`` stream, or a file played at its own frame rate, read on a
  thread that keeps only the newest frame (so a slow decision never judges a
  backlog) and reopens the source after a failure (reconnect), every
  ``reconnect_delay`` seconds, for as long as the door runs;
- :class:`RecordedCamera` — a video file read frame by frame as fast as the
  door asks, timed by the file's own frame positions on a
  :class:`~faceverify.FrozenClock` it moves (tests, benchmarks, replaying an
  incident): the door then sees exactly what a camera at that frame rate showed.

OpenCV is the optional extra ``faceverify[door]``, imported only when a camera opens.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .._clock import Clock, FrozenClock, SystemClock
from .._errors import CameraError, ConfigurationError
from .._liveness._video import _cv2
from .._pipeline._capture import RGBImage

__all__ = ["CameraSource", "Frame", "OpenCVCamera", "RecordedCamera", "camera_target"]


@dataclass(frozen=True, slots=True)
class Frame:
    """One RGB frame, when it was captured (the door's clock), and its number in the source."""

    image: RGBImage
    at: datetime
    index: int


class CameraSource(Protocol):
    """Frames, newest first."""

    def read(self, *, after: int, timeout: float) -> Frame:
        """The newest frame numbered above ``after``; :class:`CameraError` if none within ``timeout`` s."""
        ...

    def close(self) -> None: ...


def camera_target(spec: str) -> int | str:
    """``"0"`` → device 0; a URL (rtsp, rtsps, http, https) as is; else an existing file's path."""
    if spec.isdigit():
        return int(spec)
    if spec.split("://", 1)[0].lower() in ("rtsp", "rtsps", "http", "https") and "://" in spec:
        return spec
    path = Path(spec)
    if not path.is_file():
        raise ConfigurationError(f"camera {spec!r} is not a device index, a stream URL or a video file")
    return os.fspath(path)


def _rgb(bgr: Any) -> RGBImage:
    return np.ascontiguousarray(bgr[:, :, ::-1]).astype(np.uint8)


def _describe(target: int | str) -> str:
    """The source without credentials (an rtsp URL may carry user:password@)."""
    if isinstance(target, int):
        return f"camera {target}"
    if "://" in target:
        scheme, rest = target.split("://", 1)
        return f"{scheme}://{rest.rsplit('@', 1)[-1].split('/', 1)[0]}/…"
    return f"video {Path(target).name}"


class OpenCVCamera:
    """A live source read on its own thread, newest frame kept, reopened after failures.

    ``on_status(state, detail)`` is told ``"camera_lost"`` when reading fails
    and ``"camera_ok"`` when frames flow again (the door turns them into
    status events). A file is played at its frame rate and loops (a demo
    stream); ``pace=False`` reads it as fast as it decodes.
    """

    def __init__(
        self,
        target: int | str,
        *,
        clock: Clock | None = None,
        reconnect_delay: float = 1.0,
        on_status: Callable[[str, str], None] | None = None,
        pace: bool = True,
    ) -> None:
        self._cv2 = _cv2()
        self._target = target
        self.description = _describe(target)
        self._clock = clock or SystemClock()
        self._reconnect_delay = reconnect_delay
        self._on_status = on_status
        self._pace = pace and isinstance(target, str) and "://" not in target
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._count = 0
        self._stop = threading.Event()
        self._capture = self._open()
        if self._capture is None:
            raise CameraError(f"cannot open {self.description}")
        self._thread = threading.Thread(target=self._run, name="door-camera", daemon=True)
        self._thread.start()

    def _open(self) -> Any:
        capture = self._cv2.VideoCapture(self._target)
        if not capture.isOpened():
            capture.release()
            return None
        with contextlib.suppress(Exception):
            capture.set(self._cv2.CAP_PROP_BUFFERSIZE, 1)  # a stream's backlog is stale by definition
        return capture

    def _status(self, state: str, detail: str) -> None:
        if self._on_status is not None:
            self._on_status(state, detail)

    def _run(self) -> None:
        capture, lost = self._capture, False
        period = 0.0
        if self._pace:
            fps = float(capture.get(self._cv2.CAP_PROP_FPS) or 0.0)
            period = 1.0 / fps if fps > 0 else 0.04
        next_at = time.monotonic()
        while not self._stop.is_set():
            ok, bgr = capture.read() if capture is not None else (False, None)
            if not ok:
                if capture is not None:
                    capture.release()
                if not lost:
                    lost = True
                    self._status("camera_lost", f"{self.description}: no frame; reconnecting")
                if self._stop.wait(self._reconnect_delay):
                    break
                capture = self._open()
                continue
            if lost:
                lost = False
                self._status("camera_ok", f"{self.description}: frames again")
            frame_image = _rgb(bgr)
            with self._cond:
                self._count += 1
                self._latest = Frame(frame_image, self._clock.now(), self._count)
                self._cond.notify_all()
            if period:
                next_at += period
                self._stop.wait(max(0.0, next_at - time.monotonic()))
        if capture is not None:
            capture.release()

    def read(self, *, after: int, timeout: float) -> Frame:
        with self._cond:
            if not self._cond.wait_for(
                lambda: self._latest is not None and self._latest.index > after, timeout=timeout
            ):
                raise CameraError(f"{self.description}: no new frame within {timeout:.1f} s")
            assert self._latest is not None
            return self._latest

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class RecordedCamera:
    """A video file as the door's camera, timed by its frame positions on ``clock``.

    Each ``read`` decodes the next frame (``every``: keep one in ``every``, as
    a door that judges 10 of a camera's 30 frames a second) and moves
    ``clock`` to the session start plus the frame's position, so sessions,
    deadlines and the door's frame-age watchdog run on the video's time. The
    end of the file is the camera going away: :class:`CameraError`.
    """

    def __init__(self, path: str | Path, *, clock: FrozenClock, every: int = 1) -> None:
        if every < 1:
            raise ConfigurationError("every must be at least 1")
        self._cv2 = _cv2()
        self.description = _describe(os.fspath(path))
        self._capture = self._cv2.VideoCapture(os.fspath(path))
        if not self._capture.isOpened():
            raise CameraError(f"cannot open {self.description}")
        self._clock = clock
        self._start = clock.now()
        self._every = every
        self._index = 0
        self.decoded = 0

    def read(self, *, after: int, timeout: float) -> Frame:
        while True:
            ok, bgr = self._capture.read()
            if not ok:
                raise CameraError(f"{self.description}: the video ended")
            self._index += 1
            self.decoded += 1
            if (self._index - 1) % self._every == 0 and self._index > after:
                break
        at = self._start + timedelta(milliseconds=float(self._capture.get(self._cv2.CAP_PROP_POS_MSEC)))
        self._clock.set(max(at, self._clock.now()))
        return Frame(_rgb(bgr), self._clock.now(), self._index)

    def close(self) -> None:
        self._capture.release()
