"""Frames from a video file: the optional OpenCV path, and a session fed from it."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from liveness_frames import Poser
from test_challenge import CLOSER, SYNTHETIC, L, answer

from faceverify import CaptureError, ConfigurationError, FrozenClock
from faceverify._liveness import ChallengeSession, frames_from_video
from faceverify.hazmat import FacePipeline


def write_video(path: Path, frames: list[np.ndarray], fps: float = 5.0) -> None:
    cv2 = pytest.importorskip("cv2")
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for f in frames:
        writer.write(np.ascontiguousarray(f[:, :, ::-1]))
    writer.release()


def test_frames_come_back_rgb_with_timestamps(tmp_path: Path, clock: FrozenClock) -> None:
    red = np.zeros((64, 96, 3), dtype=np.uint8)
    red[..., 0] = 200
    write_video(tmp_path / "red.avi", [red] * 6)
    got = list(frames_from_video(tmp_path / "red.avi", start=clock.now()))
    assert len(got) == 6
    frame, _ = got[0]
    assert frame.shape == (64, 96, 3) and frame.dtype == np.uint8
    assert frame[..., 0].mean() > 150 > frame[..., 2].mean()  # red stays red: BGR → RGB
    stamps = [at for _, at in got]
    assert stamps == sorted(stamps) and stamps[0] is not None and stamps[0] >= clock.now()
    assert len(list(frames_from_video(tmp_path / "red.avi", every=2, max_frames=2))) == 2


def test_a_missing_file_or_missing_opencv_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("cv2")
    with pytest.raises(CaptureError, match="cannot open"):
        list(frames_from_video(tmp_path / "none.avi"))
    monkeypatch.setitem(sys.modules, "cv2", None)  # as if the extra were not installed
    with pytest.raises(ConfigurationError, match="opencv-python-headless"):
        list(frames_from_video(tmp_path / "none.avi"))


def test_a_session_runs_on_a_video_of_the_right_responses(
    tmp_path: Path, pipeline: FacePipeline, clock: FrozenClock, obama: Poser
) -> None:
    """Plumbing, not liveness strength: the synthetic frames are a warped photo (SYNTHETIC policy)."""
    write_video(tmp_path / "live.avi", answer(obama, [L, CLOSER]))
    session = ChallengeSession(pipeline, clock=clock, challenges=[L, CLOSER], policy=SYNTHETIC)
    for frame, at in frames_from_video(tmp_path / "live.avi", start=clock.now()):
        session.feed(frame, at=at)
    result = session.result()
    assert result.passed, result.reasons
