"""The replay memory: a session's frames as remembered, and a replay of them seen again.

Real frames: the speaker of the real video (frames 82-210, one shot, one person,
natural motion). A replay is those frames re-encoded as a client would send them
again; the same person a second and more later is not a replay. The Verifier's use
of it (refused, audited, counted; remembered in the vault) is tested in
tests/test_verify_live.py; the figures over every track are the benchmark's
(benchmarks/replay_memory.py).
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceverify import ConfigurationError
from faceverify._liveness import ChallengePolicy
from faceverify._liveness._animation import face_patch
from faceverify._liveness._challenge import _Pose
from faceverify._liveness._memory import MAX_FRAMES, MIN_CONTRAST, REPLAY_SHARE, Recollection, thumbnail
from faceverify.hazmat import FacePipeline

RULES = ChallengePolicy().trace_rules
SHARED = Path(os.environ.get("FACEVERIFY_SHARED", Path(__file__).resolve().parents[3] / "shared"))
VIDEO = SHARED / "data" / "video"
FPS = 29.97


def _jpeg(frame: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def remember(pipeline: FacePipeline, frames: list[np.ndarray]) -> Recollection:
    """What a session over ``frames`` keeps (the dominant face of each)."""
    memory = Recollection()
    for frame in frames:
        face = pipeline.locate(frame, select="dominant")
        pose = _Pose.of(face.landmarks)
        memory.add(
            pose.yaw, pose.pitch, pose.interocular, face_patch(pipeline.aligner.align(frame, face.landmarks))
        )
    return memory


@pytest.fixture(scope="module")
def speaker() -> list[np.ndarray]:
    """Frames 82-210 of the real speaker video (one shot: it cuts at 82 and 211)."""
    pytest.importorskip("cv2", reason="OpenCV (the video extra) is not installed")
    if not (VIDEO / "speaker-stage.mp4").exists():
        pytest.skip(f"the real face videos are not at {VIDEO} (research data lives in ../shared)")
    from faceverify._liveness import frames_from_video

    return [
        f
        for k, (f, _) in enumerate(frames_from_video(VIDEO / "speaker-stage.mp4", max_frames=211))
        if k >= 82
    ]


def test_a_replayed_recording_is_seen_again_and_the_same_person_later_is_not(
    pipeline: FacePipeline, speaker: list[np.ndarray]
) -> None:
    passed = remember(pipeline, speaker[:60])  # 2 s remembered as a passing session
    for quality in (90, 50):  # re-encoded, as a client sending the frames again would
        replay = remember(pipeline, [_jpeg(f, quality) for f in speaker[:60]])
        reason = replay.replays([passed], RULES)
        assert reason is not None and "earlier passing session" in reason
        assert replay.seen([passed], RULES) >= 0.5 * len(replay)
    # Every second frame, or only the last second of it: still the same frames.
    assert remember(pipeline, [_jpeg(f, 70) for f in speaker[:60:2]]).replays([passed], RULES)
    assert remember(pipeline, [_jpeg(f, 70) for f in speaker[30:60]]).replays([passed], RULES)
    # The same person, 1 s and more after the remembered frames: another moment, not a replay.
    later = remember(pipeline, speaker[90:])
    assert later.replays([passed], RULES) is None
    assert later.seen([passed], RULES) < REPLAY_SHARE * len(later)
    # Nothing remembered: nothing to replay.
    assert later.replays([], RULES) is None and later.replays([Recollection()], RULES) is None


def test_a_recollection_round_trips_and_refuses_what_it_did_not_write(
    pipeline: FacePipeline, speaker: list[np.ndarray]
) -> None:
    memory = remember(pipeline, speaker[:12])
    data = memory.to_bytes()
    assert len(data) == 8 + 12 * (12 + 77)  # 89 bytes a frame: a small thing to seal
    back = Recollection.from_bytes(data)
    assert back.stride == 1 and len(back) == 12
    assert np.array_equal(back.faces, memory.faces) and np.array_equal(back.poses, memory.poses)
    assert back.replays([memory], RULES) is not None  # the very frames
    nan = bytearray(data)
    nan[8:12] = struct.pack("<f", float("nan"))
    other = bytearray(data)
    other[:4] = b"FVR9"
    for bad in (b"", data[:-1], data + b"\x00", bytes(other), bytes(nan), b"FVR1\x01\x00"):
        with pytest.raises(ConfigurationError, match="recollection"):
            Recollection.from_bytes(bad)
    too_many = struct.pack("<4sHH", b"FVR1", 1, MAX_FRAMES + 1) + bytes((MAX_FRAMES + 1) * 89)
    with pytest.raises(ConfigurationError, match="recollection"):
        Recollection.from_bytes(too_many)


def test_a_long_session_keeps_every_second_frame_and_never_more_than_its_bound() -> None:
    rng = np.random.default_rng(7)
    memory = Recollection()
    # Random faces of 14 x 14 blocks (as much contrast as a thumbnail can show), all kept.
    patches = [
        np.kron(rng.integers(0, 256, (14, 14)), np.ones((4, 4))).astype(np.uint8)
        for _ in range(MAX_FRAMES + 40)
    ]
    for patch in patches:
        memory.add(0.0, 0.0, 40.0, patch)
        assert len(memory) < MAX_FRAMES
    assert memory.stride == 2 and len(memory) == (MAX_FRAMES + 40 + 1) // 2
    # What it kept are the even frames, in order.
    assert np.array_equal(memory.faces[1], thumbnail(patches[2]))
    back = Recollection.from_bytes(memory.to_bytes())
    assert back.stride == 2 and len(back) == len(memory)


def test_a_face_too_flat_to_compare_is_not_kept() -> None:
    """A face in the dark shows the camera's noise, not a pattern a replay repeats."""
    rng = np.random.default_rng(3)
    memory = Recollection()
    dark = np.clip(12 + rng.normal(0, 3, (56, 56)), 0, 255).astype(np.uint8)
    memory.add(0.0, 0.0, 40.0, dark)
    assert len(memory) == 0 and memory.offered == 0
    lit = np.kron(rng.integers(40, 200, (14, 14)), np.ones((4, 4))).astype(np.uint8)
    memory.add(0.0, 0.0, 40.0, lit)
    assert len(memory) == 1 and float(thumbnail(lit).std()) >= MIN_CONTRAST
