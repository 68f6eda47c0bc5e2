"""The live session's same-face cosines for a pack revision, from data: ``same_face`` and ``other_face``.

    nice python benchmarks/same_face.py [--pack yunet-sface]
        → benchmarks/out/same_face.json, a markdown table, and the pack's ``session_identity`` entry

A session compares a checked frame's embedding with the baseline's (frontal
frames) or the previous checked frame's (turned ones). Cosines move with the
pack's revision, so the thresholds are calibrated per revision and recorded
with it (``session_identity`` in the pack's manifest). The rule:

- ``same_face``: the lowest 0.01 step whose **LFW impostor FMR** is at most
  1e-3 (all pairs of different people among the gated images): a face swapped
  in counts on a checked frame at most that often;
- ``other_face``: the highest 0.01 step whose **LFW genuine FNMR** is at most
  0.1 % (all same-person pairs: photos years apart, wider than one session);
  below it with the baseline and with the last frame read a frame is another
  face and the session fails. In between the
  frame cannot be told and counts for nothing.

Its cost is measured on real motion the thresholds were not chosen on: every
pair of frontal, gated frames at most 8 s apart in a face track of the two real
videos (``../shared/data/video``; tracks as ``benchmarks/live_attacks.py``
builds them), by the smaller face's eye distance: the share below
``other_face`` with the baseline and the share not used (in between). A frame is
refused as another face only below ``other_face`` with the baseline *and* with
the last frame read (issue #12); how often that still catches a face swapped in
at once is measured on LFW (``swap_refusals``).
The sample photos' pairs are shown too (the tests' people).
Data: ``../shared/data`` (research use only, never copied into the repository).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _lfw import OUT, load_lfw
from live_attacks import CACHE, video_tracks

from faceverify import QualityPolicy
from faceverify._calibrate import fmr_upper_bound
from faceverify._liveness import ChallengePolicy
from faceverify.hazmat import builtin_manifest, load_pipeline

GRID = np.round(np.arange(0.10, 0.56, 0.01), 2)
FMR_TARGET = 1e-3
FNMR_TARGET = 1e-3
IOD_BANDS = ((0, 25), (25, 30), (30, 40), (40, 1000))


def lfw_counts(pack: str) -> dict[str, Any]:
    """Impostor pairs at or above, genuine pairs below, each grid threshold (gated LFW images)."""
    lfw = load_lfw(pack)
    e = lfw.embedded
    ok = e.acquired & ~e.gate_refused
    emb, ids = e.embedding[ok].astype(np.float32), lfw.identity[ok]
    n = len(emb)
    imp = np.zeros(len(GRID), np.int64)
    gen = np.zeros(len(GRID), np.int64)
    n_imp = n_gen = 0
    for s in range(0, n, 500):
        block = emb[s : s + 500] @ emb.T
        rows = np.arange(s, min(s + 500, n))[:, None]
        upper = rows < np.arange(n)[None, :]
        same = ids[s : s + 500, None] == ids[None, :]
        iv, gv = np.sort(block[upper & ~same]), block[upper & same]
        n_imp, n_gen = n_imp + iv.size, n_gen + gv.size
        imp += iv.size - np.searchsorted(iv, GRID, side="left")
        gen += (gv[:, None] < GRID[None, :]).sum(axis=0)
    return {
        "images": n,
        "impostor_pairs": n_imp,
        "genuine_pairs": n_gen,
        "impostor_at_or_above": imp,
        "genuine_below": gen,
    }


def swap_refusals(pack: str, other: float) -> dict[str, Any]:
    """How often a face swapped in is refused at once: every LFW person with two gated images
    (the first the baseline, the second the last frame read: years apart, where a session's are
    seconds) against every gated image of someone else. Refused below ``other`` with the
    baseline alone (the rule before #12), and with both (the session's rule: a discontinuity)."""
    lfw = load_lfw(pack)
    e = lfw.embedded
    ok = e.acquired & ~e.gate_refused
    emb, ids = e.embedding[ok].astype(np.float32), lfw.identity[ok]
    _, first, counts = np.unique(ids, return_index=True, return_counts=True)
    base = first[counts >= 2]
    last = np.array([np.nonzero(ids == ids[i])[0][1] for i in base])
    pairs = alone = both = 0
    for s in range(0, len(base), 200):
        b, k = base[s : s + 200], last[s : s + 200]
        stranger = ids[b][:, None] != ids[None, :]
        low_base, low_last = (emb[b] @ emb.T) < other, (emb[k] @ emb.T) < other
        pairs += int(stranger.sum())
        alone += int((stranger & low_base).sum())
        both += int((stranger & low_base & low_last).sum())
    return {
        "people": len(base),
        "swaps": pairs,
        "refused_baseline_alone": alone / pairs,
        "refused_baseline_and_last_read": both / pairs,
    }


def video_pairs(pack: str) -> list[tuple[str, float, float]]:
    """(track, cosine, smaller eye distance) of frontal gated frame pairs at most 8 s apart."""
    pipeline = load_pipeline(builtin_manifest(pack), cache=CACHE if CACHE.exists() else None)
    policy, gate = ChallengePolicy(), QualityPolicy()
    out = []
    for track in video_tracks(pipeline, embed=True):
        frames = [
            f
            for f in track["frames"]
            if not gate.reasons(f["quality"])
            and abs(f["pose"].yaw) <= policy.frontal_yaw
            and abs(f["pose"].pitch) <= policy.frontal_pitch
        ]
        for i, a in enumerate(frames):
            for b in frames[i + 1 :]:
                if b["t"] - a["t"] <= 8.0:
                    iod = min(a["pose"].interocular, b["pose"].interocular)
                    out.append((track["id"], float(a["embedding"] @ b["embedding"]), iod))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--pack", default="yunet-sface")
    args = ap.parse_args()
    manifest = builtin_manifest(args.pack)
    c = lfw_counts(args.pack)
    fmr = c["impostor_at_or_above"] / c["impostor_pairs"]
    fnmr = c["genuine_below"] / c["genuine_pairs"]
    same_i = int(np.argmax(fmr <= FMR_TARGET))
    other_i = int(np.nonzero(fnmr <= FNMR_TARGET)[0].max())
    same, other = float(GRID[same_i]), float(GRID[other_i])
    entry = {
        "embedding_space": manifest.embedding_space,
        "same_face": same,
        "other_face": other,
        "same_face_floor": ChallengePolicy().same_face_floor,
        "same_face_fmr": float(fmr[same_i]),
        "same_face_fmr_upper": fmr_upper_bound(int(c["impostor_at_or_above"][same_i]), c["impostor_pairs"]),
        "other_face_fnmr": float(fnmr[other_i]),
        "other_face_fmr": float(fmr[other_i]),
        "dataset": f"LFW all pairs of the {c['images']:,} images the quality gate admits: "
        f"{c['impostor_pairs']:,} impostor and {c['genuine_pairs']:,} genuine pairs",
        "rule": f"same_face: lowest 0.01 step with impostor FMR <= {FMR_TARGET:g}; "
        f"other_face: highest 0.01 step with genuine FNMR <= {FNMR_TARGET:.1%}",
    }
    swaps = swap_refusals(args.pack, other)
    pairs = video_pairs(args.pack)
    bands = []
    for lo, hi in IOD_BANDS:
        v = np.array([cos for _, cos, iod in pairs if lo <= iod < hi])
        if v.size:
            bands.append(
                {
                    "iod": [lo, hi],
                    "pairs": int(v.size),
                    "min": float(v.min()),
                    "p1": float(np.percentile(v, 1)),
                    "below_other": float(np.mean(v < other)),
                    "between": float(np.mean((v >= other) & (v < same))),
                    "below_0.40": float(np.mean(v < 0.40)),
                }
            )
    tracks = {}
    for tid in sorted({t for t, _, _ in pairs}):
        v = np.array([cos for t, cos, _ in pairs if t == tid])
        tracks[tid] = {
            "pairs": int(v.size),
            "min": float(v.min()),
            "below_other": float(np.mean(v < other)),
            "between": float(np.mean((v >= other) & (v < same))),
        }
    report = {
        "pack": manifest.embedding_space,
        "grid": GRID.tolist(),
        "lfw_fmr": fmr.tolist(),
        "lfw_fnmr": fnmr.tolist(),
        "session_identity": entry,
        "swaps_refused_at_once": swaps,
        "real_video_bands": bands,
        "real_video_tracks": tracks,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "same_face.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    lines = [
        "| threshold | LFW impostor FMR | LFW genuine FNMR |",
        "|---:|---:|---:|",
        *[
            f"| {t:.2f}{' (other_face)' if i == other_i else ''}{' (same_face)' if i == same_i else ''} "
            f"| {fmr[i]:.2e} | {fnmr[i]:.3%} |"
            for i, t in enumerate(GRID)
            if 0.2 <= t <= 0.45
        ],
        "",
        "| real videos, frontal gated pairs <= 8 s apart, smaller eye distance | pairs | min | p1 "
        f"| < {other:.2f} (refused) | {other:.2f}-{same:.2f} (not used) | < 0.40 (before) |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *[
            f"| {b['iod'][0]}-{b['iod'][1]} px | {b['pairs']} | {b['min']:.3f} | {b['p1']:.3f} "
            f"| {b['below_other']:.2%} | {b['between']:.2%} | {b['below_0.40']:.2%} |"
            for b in bands
        ],
        "",
        "| track | pairs | min | refused | not used |",
        "|---|---:|---:|---:|---:|",
        *[
            f"| {k} | {t['pairs']} | {t['min']:.3f} | {t['below_other']:.2%} | {t['between']:.2%} |"
            for k, t in tracks.items()
        ],
        "",
        f"a face swapped in, refused at once ({swaps['swaps']:,} LFW swaps, {swaps['people']:,} people): "
        f"{swaps['refused_baseline_and_last_read']:.2%} below {other:.2f} with the baseline and the last "
        f"frame read (below it with the baseline alone: {swaps['refused_baseline_alone']:.2%})",
        "",
        "session_identity: " + json.dumps(entry),
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
