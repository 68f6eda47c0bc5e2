"""The live session's frame thresholds, read on real faces: ``frontal_yaw`` and ``identity_jump``.

    python benchmarks/session_thresholds.py [--step 4 --pairs 20]

Faces located as a session locates them (:class:`FaceTracker`'s detector: YuNet
in its camera-frame mode), no synthetic frame:

- **frontal_yaw**: yaw of LFW faces (every ``--step``-th image) and of every
  frame of the real speaker video, read by :func:`pose_from_landmarks` and by
  the sine estimate it replaced in issue #15 (``asin`` of the nose's offset over
  half the eye distance). The share of faces within 15° on the sine estimate is
  what the session's "frontal" meant when its thresholds were set; the table
  gives the yaw on today's estimate that keeps that share.
- **identity_jump**: the mean grey-level change of the aligned face (the
  session's motion measure) between consecutive frames of the face tracks of
  the two real videos (at their frame rate, and every 3rd frame: a 10 fps
  door camera), against the change between LFW crops of two different people
  (``--pairs`` partners each of 400 people): a face swapped in place of another.

Writes ``benchmarks/out/session_thresholds.json`` and prints a markdown table.
Data: ``../shared/data`` (research use only, never copied into the repository).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _lfw import LFW_ROOT, OUT

from faceverify import FaceVerifyError
from faceverify.hazmat import (
    FaceTracker,
    builtin_manifest,
    load_image,
    load_pipeline,
    pose_from_landmarks,
)

VIDEO = LFW_ROOT.parent / "video"


def sine_yaw(points: np.ndarray) -> float:
    """The yaw estimate before issue #15: the nose's offset over half the eye distance, as a sine."""
    re, le, nose = (np.asarray(p, dtype=np.float64) for p in points[:3])
    eye = le - re
    iod = float(np.linalg.norm(eye)) or 1e-6
    c, s = eye / iod
    offset = float(np.array([c, s]) @ (nose - (re + le) / 2))
    return math.degrees(math.asin(max(-1.0, min(1.0, offset / (iod / 2)))))


def grey_total(crop: np.ndarray) -> np.ndarray:
    return crop.astype(np.float32).sum(axis=-1)


def change(a: np.ndarray, b: np.ndarray) -> float:
    """The session's motion measure: mean absolute change of the channel sum, over 3."""
    return float(np.abs(a - b).mean()) / 3.0


def video_frames(name: str) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(VIDEO / name))
    out = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        out.append(np.ascontiguousarray(bgr[:, :, ::-1]))
    cap.release()
    return out


def q(values: list[float], ps: tuple[float, ...]) -> list[float]:
    return [round(float(v), 2) for v in np.percentile(values, ps)]


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--step", type=int, default=4, help="every n-th LFW image")
    ap.add_argument("--pairs", type=int, default=20, help="different-person partners per LFW face")
    args = ap.parse_args()
    cache = os.environ.get("FACEVERIFY_TEST_CACHE")  # the tests' models, if fetched there
    models = Path(cache) / "models" if cache else None
    pipe = load_pipeline(builtin_manifest("yunet-sface"), cache=models, threads=1)
    frames_pipe = FaceTracker(pipe).pipeline
    detector = frames_pipe.detector
    track = getattr(detector, "track")  # noqa: B009  (YuNet's; the session's tracker uses it)

    # frontal_yaw
    yaws: dict[str, tuple[list[float], list[float]]] = {"lfw": ([], []), "speaker-stage.mp4": ([], [])}
    images = sorted(LFW_ROOT.glob("*/*.jpg"))[:: args.step]
    for source, pictures in (("lfw", (load_image(p) for p in images)), ("speaker-stage.mp4", None)):
        for image in pictures if pictures is not None else video_frames(source):
            try:
                face = frames_pipe.locate(image, select="dominant")
            except FaceVerifyError:
                continue
            yaws[source][0].append(sine_yaw(face.landmarks))
            yaws[source][1].append(pose_from_landmarks(face.landmarks)[0])
    frontal = {}
    for source, (old, new) in yaws.items():
        share = float(np.mean(np.abs(old) <= 15.0))
        frontal[source] = {
            "faces": len(old),
            "share_within_15_sine": share,
            "share_within_15_now": float(np.mean(np.abs(new) <= 15.0)),
            "share_within_17_now": float(np.mean(np.abs(new) <= 17.0)),
            "yaw_now_keeping_the_share": float(np.quantile(np.abs(new), share)),
        }

    # identity_jump
    jumps: dict[str, list[float]] = {}
    for name in ("speaker-stage.mp4", "walking-crowd.mp4"):
        frames = video_frames(name)
        for step in (1, 3):
            out: list[float] = []
            last, prev = None, None
            for frame in frames[::step]:
                face = track(frame, last) if last is not None else None
                if face is None:  # lost or first: the largest face, a new track
                    found = detector.detect(frame)
                    if not found:
                        last = prev = None
                        continue
                    face, prev = max(found, key=lambda f: f.interocular), None
                total = grey_total(pipe.aligner.align(frame, face.landmarks))
                if prev is not None and face.interocular >= 20:
                    out.append(change(prev, total))
                prev, last = total, face
            jumps[f"{name}, every {step}"] = out
    people = sorted(p for p in LFW_ROOT.iterdir() if p.is_dir())
    crops = []
    for person in random.Random(0).sample(people, 400):
        image = load_image(sorted(person.glob("*.jpg"))[0])
        try:
            face = frames_pipe.locate(image, select="dominant")
        except FaceVerifyError:
            continue
        crops.append(grey_total(pipe.aligner.align(image, face.landmarks)))
    jumps["LFW, two different people"] = [
        change(crops[i], crops[j])
        for i in range(len(crops))
        for j in range(i + 1, min(len(crops), i + 1 + args.pairs))
    ]
    ps = (1, 5, 50, 95, 99)
    result = {
        "frontal_yaw": frontal,
        "identity_jump": {
            k: {"n": len(v), "percentiles": dict(zip(map(str, ps), q(v, ps), strict=True))}
            for k, v in jumps.items()
        },
        "identity_jump_setting": 30.0,
        "share_at_or_above_30": {k: float(np.mean(np.asarray(v) >= 30.0)) for k, v in jumps.items()},
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "session_thresholds.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    lines = [
        "| faces | n | within 15° (sine, before #15) | within 15° now | within 17° now | now, same share |",
        "|---|---:|---:|---:|---:|---:|",
        *[
            f"| {k} | {v['faces']} | {v['share_within_15_sine']:.1%} | {v['share_within_15_now']:.1%} "
            f"| {v['share_within_17_now']:.1%} | {v['yaw_now_keeping_the_share']:.1f}° |"
            for k, v in frontal.items()
        ],
        "",
        "| aligned-face change between | n | p1 | p5 | median | p95 | p99 | share >= 30 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *[
            f"| {k} | {len(v)} | "
            + " | ".join(f"{x:.1f}" for x in q(v, ps))
            + f" | {result['share_at_or_above_30'][k]:.1%} |"
            for k, v in jumps.items()
        ],
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
