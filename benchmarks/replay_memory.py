"""Could a server tell a replayed session from a new one by remembering the last? A feasibility figure.

    nice python benchmarks/replay_memory.py
        → benchmarks/out/replay_memory.json and a markdown table (docs/liveness.md)

A recording of the real person's passing session, replayed, is bounded by the
challenge draw and the prompt timing (docs/liveness.md: at most 2.5-2.9 % an
attempt), not stopped. A *digital* replay sends the very frames the server has
seen once. If the server kept something of each subject's last passing session,
a frame of a new session that is *the same frame* again (re-encoded, rescaled,
with noise) could be refused. Nothing of the kind is built: this measures
whether it could separate at all, on the real videos (``../shared/data/video``,
tracks as ``benchmarks/live_attacks.py`` builds them):

- **another moment of the same person** (what a new session of the same person
  is, at best): frames of one track at least 2 s apart, in the same pose (the
  rigid-texture pair rules) — seconds apart, so closer than a session days later;
- **the same frame replayed**: every 5th frame of a track, JPEG-re-encoded
  (q 90, 70, 50, 30), downscaled to 75 % and back, with sensor noise (σ 4),
  shifted by 1 px — detected, aligned and embedded again.

For each, the cosine of the embeddings and the rigid-texture change
(``texture_residual`` with the session's 1 px blur). A memory could only work
where the replays' cosines sit above, and their changes below, every moment of a
real face. An attacker who alters the frames more than this (a warp, a synthetic
blink) is not measured.
Data: ``../shared/data`` (research use only, never copied into the repository).
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from live_attacks import CACHE, OUT, RGB, VIDEO, video_tracks

from faceverify._liveness import ChallengePolicy
from faceverify._liveness._animation import PAIR_BLUR, face_patch, texture_residual
from faceverify.hazmat import FacePipeline, builtin_manifest, load_pipeline

POLICY = ChallengePolicy()
APART = 2.0  # seconds: another moment, not the next frame


def _jpeg(img: RGB, quality: int) -> RGB:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def _variants(img: RGB, rng: np.random.Generator) -> dict[str, RGB]:
    h, w = img.shape[:2]
    small = Image.fromarray(img).resize((w * 3 // 4, h * 3 // 4), Image.Resampling.BILINEAR)
    noisy = np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
    return {
        **{f"jpeg q{q}": _jpeg(img, q) for q in (90, 70, 50, 30)},
        "rescaled 75 %": np.asarray(small.resize((w, h), Image.Resampling.BILINEAR)),
        "noise σ 4": noisy,
        "shifted 1 px": np.ascontiguousarray(np.roll(img, 1, axis=1)),
    }


def replays(pipeline: FacePipeline) -> Any:
    """The ``extra`` hook of ``video_tracks``: each 5th face seen, replayed in every variant."""
    rng = np.random.default_rng(0)
    seen = [0]

    def extra(image: RGB, face: Any) -> dict[str, Any]:
        seen[0] += 1
        if seen[0] % 5:
            return {"replays": {}}
        out = {}
        for name, img in _variants(image, rng).items():
            # The same face: others in a crowd frame are other tracks.
            found = pipeline.detector.detect(img)
            faces = [f for f in found if abs(f.box[0] - face.box[0]) < face.box[2] / 2]
            if not faces:
                continue
            crop = pipeline.aligner.align(img, faces[0].landmarks)
            out[name] = (pipeline.embedder.embed([crop])[0], face_patch(crop))
        return {"replays": out}

    return extra


def _same_pose(a: dict[str, Any], b: dict[str, Any]) -> bool:
    pa, pb = a["pose"], b["pose"]
    return (
        abs(pa.yaw - pb.yaw) <= POLICY.pair_yaw
        and abs(pa.pitch - pb.pitch) <= POLICY.pair_pitch
        and abs(pb.interocular / pa.interocular - 1) <= POLICY.pair_scale
    )


def _summary(values: list[float]) -> dict[str, float]:
    a = np.array(values)
    return {
        "n": len(a),
        "min": float(a.min()),
        "p01": float(np.quantile(a, 0.01)),
        "median": float(np.median(a)),
        "p99": float(np.quantile(a, 0.99)),
        "max": float(a.max()),
    }


def main() -> None:
    if not (VIDEO / "speaker-stage.mp4").exists():
        sys.exit(f"needs ../shared/data/video (looked in {VIDEO})")
    pipeline = load_pipeline(builtin_manifest("yunet-sface"), cache=CACHE if CACHE.exists() else None)
    tracks = video_tracks(pipeline, extra=replays(pipeline))
    moments: dict[str, list[float]] = {"cosine": [], "change": []}
    replayed: dict[str, dict[str, list[float]]] = {}
    for tr in tracks:
        frames = tr["frames"]
        for j, b in enumerate(frames):
            for a in frames[:j]:
                if b["t"] - a["t"] >= APART and _same_pose(a, b):
                    moments["cosine"].append(float(a["embedding"] @ b["embedding"]))
                    moments["change"].append(texture_residual(a["patch"], b["patch"], blur=PAIR_BLUR))
            for name, (emb, patch) in b["replays"].items():
                r = replayed.setdefault(name, {"cosine": [], "change": []})
                r["cosine"].append(float(b["embedding"] @ emb))
                r["change"].append(texture_residual(b["patch"], patch, blur=PAIR_BLUR))
    floor, ceiling = min(moments["change"]), max(moments["cosine"])
    for r in replayed.values():  # replays no moment of a real face reaches, by either figure
        r["beyond"] = [
            float(np.mean([x < floor for x in r["change"]])),
            float(np.mean([c > ceiling for c in r["cosine"]])),
        ]
    report = {
        "tracks": len(tracks),
        "apart_s": APART,
        "another_moment": {k: _summary(v) for k, v in moments.items()},
        "replayed": {
            name: {**{k: _summary(v) for k, v in r.items() if k != "beyond"}, "beyond": r["beyond"]}
            for name, r in replayed.items()
        },
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "replay_memory.json").write_text(json.dumps(report, indent=1))
    m = report["another_moment"]
    lines = [
        "| frames compared | n | cosine: min / median / max | rigid-texture change: min / median / max "
        "| beyond every moment: change / cosine |",
        "|---|---:|---|---|---|",
        f"| another moment of the same person (≥ {APART:.0f} s apart, same pose) | {m['cosine']['n']} "
        f"| {m['cosine']['min']:.3f} / {m['cosine']['median']:.3f} / **{m['cosine']['max']:.3f}** "
        f"| **{m['change']['min']:.4f}** / {m['change']['median']:.4f} / {m['change']['max']:.4f} | - |",
    ]
    for name, r in report["replayed"].items():
        c, x = r["cosine"], r["change"]
        lines.append(
            f"| the same frame, {name} | {c['n']} | **{c['min']:.3f}** / {c['median']:.3f} / {c['max']:.3f} "
            f"| {x['min']:.4f} / {x['median']:.4f} / **{x['max']:.4f}** "
            f"| {100 * r['beyond'][0]:.1f} % / {100 * r['beyond'][1]:.1f} % |"
        )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
