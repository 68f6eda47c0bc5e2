"""Recorded door video, made at test time from real photos (``tests/liveness/liveness_frames.py``).

A cooperative person walks up, looks at the camera and answers the door's
challenges: each photo's face is warped into the poses a head goes through,
frame by frame, and written to a video file the door then reads like a camera.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "liveness"))
from liveness_frames import Poser  # tests/ and tests/liveness are not packages
from test_verify_live import write_video  # MJPG AVI of RGB frames (skips without OpenCV)

from faceverify._liveness import Challenge, ChallengePolicy
from faceverify._profiles import get_profile
from faceverify.hazmat import FacePipeline, load_image

__all__ = ["FPS", "Poser", "answer", "poser", "synthetic_policy", "write_video"]

#: Frames per second of the recordings (a door camera delivers 10-30; the door judges what it can).
FPS = 10.0

#: A live person's answer to each challenge, as poses (yaw°, pitch°, zoom), then back to rest.
RESPONSES = {
    Challenge.TURN_LEFT: [(10, 0, 1.0), (25, 0, 1.0), (27, 0, 1.0), (25, 0, 1.0)],
    Challenge.TURN_RIGHT: [(-10, 0, 1.0), (-25, 0, 1.0), (-27, 0, 1.0), (-25, 0, 1.0)],
    Challenge.MOVE_CLOSER: [(0, 0, 1.15), (0, 0, 1.35), (0, 0, 1.4), (0, 0, 1.4)],
    Challenge.LOOK_UP: [(0, 12, 1.0), (0, 25, 1.0), (0, 27, 1.0), (0, 25, 1.0)],
    Challenge.LOOK_DOWN: [(0, -12, 1.0), (0, -25, 1.0), (0, -27, 1.0), (0, -25, 1.0)],
}
REST = [(0, 0, 1.0), (2, 1, 1.03), (-2, 0, 1.06)]


def answer(person: Poser, challenges: Iterable[Challenge], *, rest: int = 1) -> list[np.ndarray]:
    """Frames of ``person`` at rest, then answering each challenge and coming back to rest.

    Made once per person and sequence in a test run (warping is the slow part); each
    call gets the same frames, as a recording replayed would be.
    """
    made = _MADE.setdefault(person, {})
    key = (tuple(challenges), rest)
    if key not in made:
        poses = list(REST) * rest
        for c in key[0]:
            poses += RESPONSES[c] + REST
        made[key] = [person.frame(yaw=y, pitch=p, zoom=z) for y, p, z in poses]
    return list(made[key])


_MADE: weakref.WeakKeyDictionary[Poser, dict[tuple[tuple[Challenge, ...], int], list[np.ndarray]]] = (
    weakref.WeakKeyDictionary()
)


def synthetic_policy(profile: str = "door-access") -> ChallengePolicy:
    """The profile's session policy with the animation checks off, for synthesized frames only.

    Frames warped from one photo are exactly what the session's animation checks refuse
    (rigid texture: "one picture warped or held"). The tests of the door's flow switch them
    off through ``ChallengePolicy.animation_checks``, as its documentation allows for
    synthetic frames only; ``test_door.py`` keeps them on once and shows the door refusing
    such a recording. The replay memory is off too: one photo's frames are replays of each
    other, and the door benchmark plays one recording to many claims.
    """
    return replace(
        ChallengePolicy(), quality=get_profile(profile).quality, animation_checks=False, replay_memory=False
    )


def poser(pipeline: FacePipeline, path: Path, seed: int = 0) -> Poser:
    image = Image.fromarray(load_image(path))
    image.thumbnail((640, 640), Image.Resampling.LANCZOS)
    return Poser(pipeline, np.asarray(image), seed=seed)
