"""A small YUV4MPEG2 writer: RGB frames to the 4:2:0 y4m that Chromium's fake camera plays.

Chromium's ``--use-file-for-fake-video-capture=FILE.y4m`` reads planar 4:2:0
(``C420jpeg``), loops the file, and delivers it at the header's frame rate.
The conversion is BT.601 with studio swing (Y 16-235, Cb/Cr 16-240), which is
what Chromium's capture pipeline assumes for this format; chroma is averaged
over each 2x2 block (JPEG/MPEG-1 siting, as ``C420jpeg`` says).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import numpy.typing as npt

RGB = npt.NDArray[np.uint8]


def rgb_to_i420(frame: RGB) -> bytes:
    """One RGB frame (even width and height) as Y, then Cb, then Cr planes."""
    h, w = frame.shape[:2]
    if frame.ndim != 3 or frame.shape[2] != 3 or h % 2 or w % 2:
        raise ValueError(f"expected an RGB frame with even sides, got shape {frame.shape}")
    r, g, b = (frame[..., i].astype(np.float32) for i in range(3))
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    cb = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    cr = 128 + 0.439 * r - 0.368 * g - 0.071 * b

    def sub(plane: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        return plane.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))

    planes = (y, sub(cb), sub(cr))
    return b"".join(np.clip(np.rint(p), 0, 255).astype(np.uint8).tobytes() for p in planes)


def write_y4m(path: Path, frames: Iterable[RGB], *, fps: int) -> int:
    """Write ``frames`` (all the same size) to ``path``; returns how many were written."""
    count = 0
    size: tuple[int, int] | None = None
    with path.open("wb") as out:
        for frame in frames:
            h, w = frame.shape[:2]
            if size is None:
                size = (w, h)
                out.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode("ascii"))
            elif size != (w, h):
                raise ValueError(f"frame {count} is {w}x{h}, the video is {size[0]}x{size[1]}")
            out.write(b"FRAME\n")
            out.write(rgb_to_i420(frame))
            count += 1
    if count == 0:
        raise ValueError("a video needs at least one frame")
    return count


def read_y4m(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and the raw I420 frames of a y4m written by :func:`write_y4m` (for tests)."""
    data = path.read_bytes()
    header, _, rest = data.partition(b"\n")
    fields = {f[:1]: f[1:] for f in header.split()[1:]}
    w, h = int(fields[b"W"]), int(fields[b"H"])
    size = w * h * 3 // 2
    frames = []
    while rest:
        marker, _, rest = rest.partition(b"\n")
        if marker != b"FRAME":
            raise ValueError("not a y4m frame marker")
        frames.append(rest[:size])
        rest = rest[size:]
    return w, h, frames
