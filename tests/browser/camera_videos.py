"""Camera videos made at test time from real photos: a person answering a known challenge sequence.

A photo is cropped to a 640x480 frame around its face and posed with
``tests/liveness/liveness_frames.py`` (a depth-mapped head turned, nodded and
zoomed). Each answer is held for three seconds, with a few slightly different
frontal rests (so an enrolment gets several distinct frontal frames), and every
frame gets its own sensor noise and a one-pixel shake, as a webcam's do.
Chromium's fake camera loops the file, so the answer comes round again.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from faceverify.hazmat import FacePipeline, load_image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "liveness"))
from liveness_frames import Poser  # tests/liveness is not a package
from y4m import RGB, write_y4m

FPS = 8
WIDTH, HEIGHT = 640, 480

#: Held poses as (yaw°, pitch°, zoom, seconds); yaw + is toward the subject's left.
REST = [(0, 0, 1.0, 0.6), (-5, 0, 1.0, 0.3), (5, 2, 1.04, 0.3)]
#: The first two seconds are at rest, so the session's baseline (its first frontal frame) is a
#: face at rest, whenever the session starts after the camera did.
LEAD = [(0, 0, 1.0, 1.2), (-5, 0, 1.0, 0.4), (5, 2, 1.04, 0.4)]
#: Each answer is held 3 s: a loaded CI machine may take only a frame a second, and the session
#: needs two in a row in the pose.
ANSWERS = {
    "turn-left": [(12, 0, 1.0, 0.2), (26, 0, 1.0, 3.0), (12, 0, 1.0, 0.2)],
    "turn-right": [(-12, 0, 1.0, 0.2), (-26, 0, 1.0, 3.0), (-12, 0, 1.0, 0.2)],
    # Closer frames are the sharpest frontal ones, so they lead an enrolment's candidates: hold the
    # pose with the head a little to each side, as a person does, not frozen in one position.
    "move-closer": [
        (0, 0, 1.2, 0.2),
        (-6, 0, 1.45, 1.0),
        (0, 3, 1.5, 1.0),
        (6, 0, 1.45, 1.0),
        (0, 0, 1.2, 0.2),
    ],
}


def camera_frame(pipeline: FacePipeline, photo: Path) -> RGB:
    """The photo cropped to 4:3 around its face (the face about a third of the width), 640x480."""
    image = load_image(photo)
    face = pipeline.locate(image, select="dominant")
    x, y, w, h = (float(v) for v in face.box)
    side = 3.0 * w
    cx, cy = x + w / 2, y + h / 2
    box = (cx - side / 2, cy - side * 3 / 8, cx + side / 2, cy + side * 3 / 8)
    crop = Image.fromarray(image).crop(tuple(round(v) for v in box))  # pads with black outside
    return np.asarray(crop.resize((WIDTH, HEIGHT), Image.Resampling.LANCZOS))


def posed_frames(
    pipeline: FacePipeline, photo: Path, challenges: Sequence[str], *, seed: int = 0
) -> Iterator[RGB]:
    """The frames of one loop: rest, then each challenge's answer followed by a rest."""
    poser = Poser(pipeline, camera_frame(pipeline, photo), seed=seed)
    rng = np.random.default_rng(seed)
    timeline = list(LEAD)
    for name in challenges:
        timeline += ANSWERS[name] + REST
    rendered: dict[tuple[float, float, float], RGB] = {}
    for yaw, pitch, zoom, seconds in timeline:
        key = (yaw, pitch, zoom)
        if key not in rendered:
            rendered[key] = poser.frame(yaw=yaw, pitch=pitch, zoom=zoom, noise=False)
        still = rendered[key]
        for _ in range(max(1, round(seconds * FPS))):
            shaken = np.roll(still, tuple(rng.integers(-1, 2, 2)), axis=(0, 1))
            noisy = shaken.astype(np.int16) + rng.normal(0, 2.0, shaken.shape).astype(np.int16)
            yield np.clip(noisy, 0, 255).astype(np.uint8)


def write_camera_video(
    path: Path, pipeline: FacePipeline, photo: Path, challenges: Sequence[str], *, seed: int = 0
) -> Path:
    """A y4m for ``--use-file-for-fake-video-capture``: ``photo``'s face answering ``challenges``."""
    write_y4m(path, posed_frames(pipeline, photo, challenges, seed=seed), fps=FPS)
    return path
