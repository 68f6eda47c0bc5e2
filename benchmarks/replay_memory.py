"""Does the replay memory tell a replayed session from a new one? Per frame, then per session.

    nice python benchmarks/replay_memory.py
        → benchmarks/out/replay_memory.json and two markdown tables (docs/liveness.md)

A recording of the real person's passing session, replayed, is bounded by the
challenge draw and the prompt timing (docs/liveness.md: at most 2.5-2.9 % an
attempt), not stopped. A *digital* replay sends the very frames the server has
seen once. If the server kept something of each subject's last passing session,
a frame of a new session that is *the same frame* again (re-encoded, rescaled,
with noise) could be refused. The first part measures whether it could separate
at all, frame by frame, on the real videos (``../shared/data/video``, tracks as
``benchmarks/live_attacks.py`` builds them):

- **another moment of the same person** (what a new session of the same person
  is, at best): frames of one track at least 2 s apart, in the same pose (the
  rigid-texture pair rules) — seconds apart, so closer than a session days later;
- **the same frame replayed**: every 5th frame of a track, JPEG-re-encoded
  (q 90, 70, 50, 30), downscaled to 75 % and back, with sensor noise (σ 4),
  shifted by 1 px — detected, aligned and embedded again.

For each, the cosine of the embeddings and the rigid-texture change
(``texture_residual`` with the session's 1 px blur). A memory could only work
where the replays' cosines sit above, and their changes below, every moment of a
real face.

The second part runs what is built (``faceverify._liveness._memory``: a
``Recollection`` of every frame's pose and 14 x 14 thumbnail, ``replays()``)
session by session, per half of the tracks (its thresholds were read off the
first part's per-frame figures, not tuned on these sessions):

- **replays**: a track remembered as a passing session (every frame, as a
  session at the video's frame rate keeps them), then replayed whole in each
  variant above; replayed at half the frame rate (every second frame); only its
  second half replayed; and a remembered session thinned to every second frame
  (a long one) against a replay of the frames it skipped;
- **the same person again** (what a new session of the person looks like, at
  the closest): a track split at a moment, the part before remembered, the part
  from ``gap`` seconds later as the new session (1 s and 2 s).

Only tracks a session could pass on count in the session table (one frame at
least through the default quality gate, as a baseline needs): the others are
faces in the dark (brightness 10-15, flat) no session accepts, so no recording
of them passed.

An attacker who alters the frames more than this (a warp, interpolated frames,
a synthetic blink) is not measured, and is not what the memory claims to stop.
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
from live_attacks import CACHE, OUT, RGB, VIDEO, _Pose, video_tracks

from faceverify._liveness import ChallengePolicy
from faceverify._liveness._animation import PAIR_BLUR, face_patch, texture_residual
from faceverify._liveness._memory import MIN_CONTRAST, SEEN_DISTANCE, Recollection, _normalised, thumbnail
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
        "as sent": img,
        **{f"jpeg q{q}": _jpeg(img, q) for q in (90, 70, 50, 30)},
        "rescaled 75 %": np.asarray(small.resize((w, h), Image.Resampling.BILINEAR)),
        "noise σ 4": noisy,
        "shifted 1 px": np.ascontiguousarray(np.roll(img, 1, axis=1)),
    }


def replays(pipeline: FacePipeline) -> Any:
    """The ``extra`` hook of ``video_tracks``: every face seen, replayed in every variant."""
    rng = np.random.default_rng(0)

    def extra(image: RGB, face: Any) -> dict[str, Any]:
        out = {}
        for name, img in _variants(image, rng).items():
            # The same face: others in a crowd frame are other tracks.
            found = pipeline.detector.detect(img)
            faces = [f for f in found if abs(f.box[0] - face.box[0]) < face.box[2] / 2]
            if not faces:
                continue
            crop = pipeline.aligner.align(img, faces[0].landmarks)
            out[name] = (pipeline.embedder.embed([crop])[0], face_patch(crop), _Pose.of(faces[0].landmarks))
        return {"replays": out}

    return extra


def _same_pose(a: dict[str, Any], b: dict[str, Any]) -> bool:
    pa, pb = a["pose"], b["pose"]
    return (
        abs(pa.yaw - pb.yaw) <= POLICY.pair_yaw
        and abs(pa.pitch - pb.pitch) <= POLICY.pair_pitch
        and abs(pb.interocular / pa.interocular - 1) <= POLICY.pair_scale
    )


def _recollection(frames: list[tuple[Any, Any]]) -> Recollection:
    """What a session over these (pose, patch) frames remembers."""
    memory = Recollection()
    for pose, patch in frames:
        memory.add(pose.yaw, pose.pitch, pose.interocular, patch)
    return memory


def _verdict(new: Recollection, earlier: Recollection) -> dict[str, Any]:
    seen = new.seen([earlier], POLICY.trace_rules)
    return {
        "frames": len(new),
        "seen": seen,
        "refused": new.replays([earlier], POLICY.trace_rules) is not None,
    }


def sessions(tracks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every session-level case: replays of a remembered track, and the same person again."""
    out: list[dict[str, Any]] = []
    for tr in tracks:
        frames = tr["frames"]
        own = [(f["pose"], f["patch"]) for f in frames]
        whole = _recollection(own)
        # Could a session on this track pass at all? Its baseline needs a frame through the quality gate.
        passable = any(not POLICY.quality.reasons(f["quality"]) for f in frames)
        case = {"track": tr["id"], "half": tr["half"], "passable": passable}
        for name in frames[0]["replays"]:
            played = [(f["replays"][name][2], f["replays"][name][1]) for f in frames if name in f["replays"]]
            out.append({**case, "kind": "replay", "variant": name, **_verdict(_recollection(played), whole)})
            out.append(
                {
                    **case,
                    "kind": "replay",
                    "variant": f"{name}, every 2nd frame",
                    **_verdict(_recollection(played[::2]), whole),
                }
            )
            out.append(
                {
                    **case,
                    "kind": "replay",
                    "variant": f"{name}, second half only",
                    **_verdict(_recollection(played[len(played) // 2 :]), whole),
                }
            )
            out.append(
                {
                    **case,
                    "kind": "replay",
                    "variant": f"{name}, the frames a thinned memory skipped",
                    **_verdict(_recollection(played[1::2]), _recollection(own[::2])),
                }
            )
        for gap in (1.0, 2.0):
            t0, t1 = frames[0]["t"], frames[-1]["t"]
            if t1 - t0 < gap + 1.0:
                continue  # needs 0.5 s before the split and 0.5 s after the gap
            split = t0 + (t1 - t0 - gap) / 2
            before = [(f["pose"], f["patch"]) for f in frames if f["t"] <= split]
            after = [(f["pose"], f["patch"]) for f in frames if f["t"] >= split + gap]
            out.append(
                {
                    **case,
                    "kind": "same person",
                    "variant": f"{gap:.0f} s later",
                    **_verdict(_recollection(after), _recollection(before)),
                }
            )
    return out


def _distance(a: Any, b: Any) -> float | None:
    """The replay memory's distance of two face patches (None: one is too flat to keep)."""
    ta, tb = thumbnail(a), thumbnail(b)
    if min(float(ta.std()), float(tb.std())) < MIN_CONTRAST:
        return None
    na, nb = _normalised(ta[None]), _normalised(tb[None])
    return float(1.0 - (na @ nb.T)[0, 0] / na.shape[1])


def thumbnail_figures(tracks: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per frame, the memory's distance: another moment (1-2 s, >= 2 s apart, same pose)
    and each 5th frame replayed; with the share under ``SEEN_DISTANCE``."""
    groups: dict[str, list[float]] = {
        "another moment, 1-2 s apart": [],
        f"another moment, >= {APART:.0f} s apart": [],
    }
    for tr in tracks:
        frames = tr["frames"]
        for j, b in enumerate(frames):
            for a in frames[:j]:
                gap = b["t"] - a["t"]
                if gap >= 1.0 and _same_pose(a, b):
                    d = _distance(a["patch"], b["patch"])
                    key = (
                        f"another moment, >= {APART:.0f} s apart"
                        if gap >= APART
                        else "another moment, 1-2 s apart"
                    )
                    if d is not None:
                        groups[key].append(d)
            if j % 5 == 0:
                for name, (_emb, patch, _pose) in b["replays"].items():
                    d = _distance(b["patch"], patch)
                    if d is not None:
                        groups.setdefault(f"the same frame, {name}", []).append(d)
    return {
        k: {**_summary(v), "seen": float(np.mean(np.array(v) < SEEN_DISTANCE))}
        for k, v in groups.items()
        if v
    }


def session_table(cases: list[dict[str, Any]]) -> list[str]:
    """Refused sessions per kind, variant group and half (tracks a session could pass on)."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for c in cases:
        if not c["passable"]:
            continue
        variant = c["variant"].split(", ", 1)[1] if ", " in c["variant"] else "whole, every frame"
        if c["kind"] == "same person":
            variant = c["variant"]
        groups.setdefault((c["kind"], variant, c["half"]), []).append(c)
    lines = [
        "| sessions | half | n | refused as a replay | share of frames seen: min / median |",
        "|---|---|---:|---:|---|",
    ]
    for (kind, variant, half), cs in sorted(groups.items()):
        shares = [c["seen"] / max(c["frames"], 1) for c in cs]
        refused = sum(c["refused"] for c in cs)
        lines.append(
            f"| {kind}: {variant} | {half} | {len(cs)} | {refused} ({100 * refused / len(cs):.0f} %) "
            f"| {min(shares):.2f} / {float(np.median(shares)):.2f} |"
        )
    return lines


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
            if j % 5:
                continue  # the per-frame figures: each 5th frame, as before
            for name, (emb, patch, _pose) in b["replays"].items():
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
        "memory": {"frames": thumbnail_figures(tracks), "sessions": sessions(tracks)},
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
    print()
    print(f"| frames compared (thumbnails) | n | distance: min / median | seen (< {SEEN_DISTANCE}) |")
    print("|---|---:|---|---:|")
    for name, f in report["memory"]["frames"].items():
        print(f"| {name} | {f['n']} | {f['min']:.4f} / {f['median']:.4f} | {100 * f['seen']:.1f} % |")
    print()
    print("\n".join(session_table(report["memory"]["sessions"])))


if __name__ == "__main__":
    main()
