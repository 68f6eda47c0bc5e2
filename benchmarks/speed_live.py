"""Per live-session frame: what a challenge session spends on each camera frame, on a real video.

    python benchmarks/speed_live.py [--frames 120 --start 90]

Frames: ``../shared/data/video/speaker-stage.mp4`` (640x360, real head motion),
frames 90-210 where the speaker is the one face in view (before and after, the
audience is), decoded up front (a camera hands over decoded frames), timed
at 29.97 fps on a frozen clock. Configurations, interleaved frame by frame, one
onnxruntime thread:

- ``rev2, every frame``: revision 2's detector (the frame enlarged to 640 px) with
  both views embedded on every frame, as sessions ran before revision 3 (locate,
  align, quality, embed);
- ``rev3, every frame``: the same with revision 3's whole-frame detector;
- ``session, same face every frame``: a real :class:`ChallengeSession` (default
  policy, animation checks on) fed each frame, with ``identity_every=1``: the
  embedding read on every frame, as sessions did before;
- ``session as shipped``: the same session with the default policy
  (``identity_every=5``): the same face checked where the decision needs it,
  on a face that jumps or is found afresh, and on every 5th frame.

The speaker answers no challenge, so a session ends when his natural motion
reads as a wrong response (or his face as another's); a new session then
starts on the next frame, as a door or login page would. Both session
configurations must reach the same decisions on the same frames (the table
says whether they did) and count the crops they embedded.

Times are CPU time of the calling thread (with one engine thread the work runs
in it, so this is the work per frame on one core whatever else the machine runs)
and wall time (what the frame waited, load included). Writes
``benchmarks/out/speed_live.json`` and ``.md``: median and p90 ms per frame.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _lfw import OUT
from speed_peers import rev2_pipeline

from faceverify import FaceVerifyError
from faceverify._clock import FrozenClock
from faceverify._liveness import Challenge, ChallengePolicy, ChallengeSession
from faceverify._pipeline._capture import RGBImage
from faceverify.hazmat import FacePipeline, builtin_manifest, load_pipeline, measure

VIDEO = (
    Path(os.environ.get("FACEVERIFY_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    / "data"
    / "video"
)


def frames(count: int, start: int = 0) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(VIDEO / "speaker-stage.mp4"))
    out: list[np.ndarray] = []
    seen = 0
    while len(out) < count:
        ok, bgr = cap.read()
        if not ok:
            break
        seen += 1
        if seen > start:
            out.append(np.ascontiguousarray(bgr[:, :, ::-1]))
    cap.release()
    if not out:
        raise SystemExit(f"no frames read from {VIDEO / 'speaker-stage.mp4'}")
    return out


def every_frame(pipe: FacePipeline) -> Callable[[int, np.ndarray], Any]:
    def step(_i: int, frame: np.ndarray) -> Any:
        face = pipe.locate(frame, select="only")
        crop = pipe.aligner.align(frame, face.landmarks)
        measure(frame, face, crop)
        return pipe.embedder.embed([crop])[0]

    return step


class Counting:
    """An embedder counting the crops it embeds."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.dim, self.crops = inner, inner.dim, 0

    def embed(self, crops: list[RGBImage]) -> Any:
        self.crops += len(crops)
        return self.inner.embed(crops)


class Sessions:
    """Live sessions over the frames, one after another, under ``policy``."""

    FPS = 29.97
    ASKED = (Challenge.TURN_LEFT, Challenge.TURN_RIGHT)

    def __init__(self, pipe: FacePipeline, policy: ChallengePolicy) -> None:
        self.embedder = Counting(pipe.embedder)
        self.pipe = FacePipeline(
            detector=pipe.detector, aligner=pipe.aligner, embedder=self.embedder, limits=pipe.limits
        )
        self.policy = policy
        self.clock = FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))
        self.session = self._start()
        self.decisions: list[tuple[int, tuple[str, ...]]] = []

    def _start(self) -> ChallengeSession:
        return ChallengeSession(self.pipe, clock=self.clock, policy=self.policy, challenges=self.ASKED)

    def step(self, i: int, frame: np.ndarray) -> Any:
        self.clock.advance(timedelta(seconds=1 / self.FPS))
        self.session.feed(frame, at=self.clock.now())
        if self.session.finished:
            self.decisions.append((i, self.session.result().reasons))
            self.session = self._start()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--start", type=int, default=90, help="frames 90-210: the speaker alone in view")
    args = ap.parse_args()
    video = frames(args.frames, args.start)
    rev3 = load_pipeline(builtin_manifest("yunet-sface"), threads=1)
    configs: dict[str, Callable[[int, np.ndarray], Any]] = {}
    rev2 = rev2_pipeline()
    if rev2 is not None:
        configs["rev2, every frame"] = every_frame(rev2)
    configs["rev3, every frame"] = every_frame(rev3)
    every = Sessions(rev3, replace(ChallengePolicy(), identity_every=1))
    shipped = Sessions(rev3, ChallengePolicy())
    configs["session, same face every frame"] = every.step
    configs[f"**session as shipped** (identity_every={shipped.policy.identity_every})"] = shipped.step
    times: dict[str, list[float]] = {k: [] for k in configs}
    cpu: dict[str, list[float]] = {k: [] for k in configs}
    refused: dict[str, int] = dict.fromkeys(configs, 0)
    load_before = [round(x, 2) for x in os.getloadavg()]
    for i, frame in enumerate(video):
        for name, step in configs.items():
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                step(i, frame)
            except FaceVerifyError:
                refused[name] += 1
            times[name].append(1000 * (time.perf_counter() - t0))
            cpu[name].append(1000 * (time.thread_time() - c0))
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "frames": len(video),
        "frame_size": f"{video[0].shape[1]}x{video[0].shape[0]}",
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "median_ms": {k: float(np.median(v[5:])) for k, v in times.items()},
        "cpu_median_ms": {k: float(np.median(v[5:])) for k, v in cpu.items()},
        "cpu_p90_ms": {k: float(np.percentile(v[5:], 90)) for k, v in cpu.items()},
        "p90_ms": {k: float(np.percentile(v[5:], 90)) for k, v in times.items()},
        "frames_without_one_face": refused,
        "crops_embedded": {"every frame": every.embedder.crops, "as shipped": shipped.embedder.crops},
        "session_decisions": {"every frame": every.decisions, "as shipped": shipped.decisions},
        "same_decisions": every.decisions == shipped.decisions,
    }
    lines = [
        f"{result['date']}, {result['frames']} frames of speaker-stage.mp4 ({result['frame_size']}), "
        f"interleaved, one thread; load average {load_before} → {result['load_after']}",
        "",
        "| per frame | CPU median ms (one core) | CPU p90 | wall median ms | wall p90 "
        "| frames without one face |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in configs:
        lines.append(
            f"| {name} | {result['cpu_median_ms'][name]:.1f} | {result['cpu_p90_ms'][name]:.1f} "
            f"| {result['median_ms'][name]:.1f} | {result['p90_ms'][name]:.1f} | {refused[name]} |"
        )
    lines += [
        "",
        f"Crops embedded over {len(video)} frames: {every.embedder.crops} checking every frame, "
        f"{shipped.embedder.crops} as shipped; the sessions' decisions (frame, reasons) "
        f"{'are the same' if result['same_decisions'] else 'DIFFER'}: {shipped.decisions}.",
    ]
    md = "\n".join(lines) + "\n"
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "speed_live.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    (OUT / "speed_live.md").write_text(md, encoding="utf-8")
    with contextlib.suppress(Exception):
        print(md)


if __name__ == "__main__":
    main()
