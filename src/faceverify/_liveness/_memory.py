"""Has the server seen these frames before? The replay memory.

A *digital* replay of a recorded passing session sends the very frames the
server saw once (re-encoded, rescaled, with some noise). The prompt timing and
the random draw only bound it (docs/liveness.md: at most 2.5-2.9 % an attempt
for a recording of the real person), and a bot that splices the recording's
movements to the prompts is not bounded at all. So a session keeps a
:class:`Recollection` of its frames — each face's pose and a 14 × 14 grey
thumbnail of the inner face (77 pixels inside the face ellipse, 89 bytes a
frame) — and a session that passes is remembered, sealed under the subject's own
key in the vault (``Vault(recollections=3)``: the newest three, deleted and
shredded with the template). A later session for the same subject whose frames
are, in a large share, the remembered frames again is a replay and is refused
(:meth:`Recollection.replays`).

**The comparison.** Each thumbnail, normalised to zero mean and unit
variance, is compared with the remembered ones in the same pose (the
rigid-texture pair rules: ``pair_yaw``, ``pair_pitch``, ``pair_scale``); a frame
is *seen* when its distance (one minus the correlation) to one of them is
under :data:`SEEN_DISTANCE`. A session is a replay when at least
:data:`REPLAY_SHARE` of its frames, and at least :data:`REPLAY_FRAMES`, were
seen. On the real videos (``benchmarks/replay_memory.py``; the thresholds read
off its per-frame figures): frames of the same person in the same pose 2 s or
more apart were never under 0.02 (372 pairs, least 0.065), 1-2 s apart 11 % were;
a frame sent again is seen 99 % of the time as sent, 70-95 % re-encoded as JPEG
q30-q90, rescaled, noisy or shifted by a pixel; and every replayed session of a
track a session could pass on was refused (56 whole, 56 at half the frame rate,
56 of their second half only). A session starting a second after the remembered
one could see some of its frames: the share keeps it from being taken for a
replay.

**What it does not stop**: a recording that never reached this server (filmed
from another camera, or captured on the device and withheld), frames altered
beyond re-encoding (warped, interpolated), and a session of a subject whose
memory is off or empty. Those are bounded by the other checks, as before.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from .._errors import ConfigurationError
from ._animation import PATCH, Patch, TraceRules, _blur

#: The thumbnail's side (4 × 4 means of the 56 × 56 face patch), and its blur (thumbnail pixels):
#: what a re-encoding or a re-detection moves by a pixel or two still lines up.
SIDE = 14
BLUR = 0.7
#: A face flatter than this (the thumbnail's standard deviation, grey levels) is not kept:
#: its pattern is the camera's noise, which a replay does not repeat (a face this flat — in
#: the dark, 10-15 grey levels bright — fails the session's quality gate anyway).
MIN_CONTRAST = 6.0
#: A frame is *seen* under this distance (1 - correlation) to a remembered frame in its pose.
SEEN_DISTANCE = 0.02
#: A session is a replay when this share of its frames, and this many, were seen.
REPLAY_SHARE = 0.2
REPLAY_FRAMES = 3
#: Frames a recollection keeps; a longer session keeps every second (then fourth...) frame.
MAX_FRAMES = 384  # 12.8 s at 30 frames a second; 34 KiB (45 in a snapshot)

_MAGIC = b"FVR1"
_HEAD = struct.Struct("<4sHH")  # magic, stride, frame count
_POSE = np.dtype("<f4")


@functools.cache
def _mask() -> npt.NDArray[np.bool_]:
    """The inner face in the ArcFace template (as the rigid-texture check's), at ``SIDE``."""
    yy, xx = np.mgrid[:SIDE, :SIDE].astype(np.float64)
    yc, xc, ry, rx = SIDE * 62 / 112, SIDE * 56 / 112, SIDE * 44 / 112, SIDE * 34 / 112
    mask: npt.NDArray[np.bool_] = (((yy - yc) / ry) ** 2 + ((xx - xc) / rx) ** 2) <= 1.0
    return mask


def thumbnail(patch: Patch) -> npt.NDArray[np.uint8]:
    """The inner face of a 56 × 56 grey patch as 77 grey levels (14 × 14 means, blurred, masked)."""
    f = PATCH // SIDE
    small = patch.astype(np.float64).reshape(SIDE, f, SIDE, f).mean(axis=(1, 3))
    out: npt.NDArray[np.uint8] = np.clip(np.rint(_blur(small, BLUR)[_mask()]), 0, 255).astype(np.uint8)
    return out


def _normalised(faces: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
    x = faces.astype(np.float64)
    x -= x.mean(axis=1, keepdims=True)
    out: npt.NDArray[np.float64] = x / np.maximum(x.std(axis=1, keepdims=True), 1e-6)
    return out


@dataclass(slots=True)
class Recollection:
    """A session's frames as the replay memory keeps them: pose and thumbnail, 89 bytes each.

    ``poses`` holds yaw, pitch and eye distance (float32), ``faces`` the
    thumbnails (uint8, :func:`thumbnail`); ``stride`` says every how many
    frames one is kept (1 until ``MAX_FRAMES`` are held, then doubled).
    """

    poses: npt.NDArray[np.float32] = field(default_factory=lambda: np.zeros((0, 3), np.float32))
    faces: npt.NDArray[np.uint8] = field(default_factory=lambda: np.zeros((0, int(_mask().sum())), np.uint8))
    stride: int = 1
    offered: int = 0

    def __len__(self) -> int:
        return int(self.faces.shape[0])

    def add(self, yaw: float, pitch: float, interocular: float, patch: Patch) -> None:
        """Keep this frame's face (past ``MAX_FRAMES``, every ``stride``-th; never one
        flatter than ``MIN_CONTRAST``)."""
        face = thumbnail(patch)
        if float(face.std()) < MIN_CONTRAST:
            return
        self.offered += 1
        if (self.offered - 1) % self.stride:
            return
        self.poses = np.vstack([self.poses, np.array([[yaw, pitch, interocular]], np.float32)])
        self.faces = np.vstack([self.faces, face[None]])
        if len(self) >= MAX_FRAMES:
            self.poses, self.faces, self.stride = self.poses[::2], self.faces[::2], self.stride * 2

    def seen(self, earlier: Sequence[Recollection], rules: TraceRules) -> int:
        """How many of this session's frames ``earlier`` sessions hold again: a remembered
        frame in the same pose within ``SEEN_DISTANCE``."""
        if not len(self) or not earlier:
            return 0
        poses = np.vstack([e.poses for e in earlier]).astype(np.float64)
        faces = np.vstack([e.faces for e in earlier])
        if not len(faces):
            return 0
        mine, theirs = _normalised(self.faces), _normalised(faces)
        distance = 1.0 - (mine @ theirs.T) / mine.shape[1]
        p = self.poses.astype(np.float64)
        same = (
            (np.abs(p[:, None, 0] - poses[None, :, 0]) <= rules.yaw)
            & (np.abs(p[:, None, 1] - poses[None, :, 1]) <= rules.pitch)
            & (np.abs(poses[None, :, 2] / np.maximum(p[:, None, 2], 1e-6) - 1.0) <= rules.scale)
        )
        return int(np.any(same & (distance < SEEN_DISTANCE), axis=1).sum())

    def replays(self, earlier: Sequence[Recollection], rules: TraceRules) -> str | None:
        """Why this session is a replay of an ``earlier`` one (None: it is not)."""
        seen = self.seen(earlier, rules)
        if seen >= REPLAY_FRAMES and seen >= REPLAY_SHARE * len(self):
            return (
                f"{seen} of its {len(self)} frames are frames of an earlier passing session "
                "(a replay of a recording)"
            )
        return None

    def to_bytes(self) -> bytes:
        """The versioned binary form the vault seals."""
        head = _HEAD.pack(_MAGIC, self.stride, len(self))
        return head + self.poses.astype(_POSE).tobytes() + self.faces.tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Recollection:
        """Read :meth:`to_bytes` back; anything else is ``ConfigurationError``."""
        width = int(_mask().sum())
        try:
            magic, stride, count = _HEAD.unpack_from(data)
        except struct.error:
            raise ConfigurationError("not a faceverify session recollection") from None
        size = _HEAD.size + count * (3 * _POSE.itemsize + width)
        if magic != _MAGIC or len(data) != size or stride < 1 or count > MAX_FRAMES:
            raise ConfigurationError("not a faceverify session recollection (or another version)")
        poses = np.frombuffer(data, _POSE, count * 3, _HEAD.size).reshape(count, 3).astype(np.float32)
        if not np.isfinite(poses).all():
            raise ConfigurationError("not a faceverify session recollection (a pose is not finite)")
        faces = np.frombuffer(data, np.uint8, offset=_HEAD.size + poses.nbytes).reshape(count, width).copy()
        return cls(poses=poses, faces=faces, stride=stride, offered=count * stride)


__all__ = ["MAX_FRAMES", "REPLAY_FRAMES", "REPLAY_SHARE", "SEEN_DISTANCE", "Recollection", "thumbnail"]
