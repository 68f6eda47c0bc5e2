"""LFW accuracy: 10-fold on the official pairs, FNMR at FMR from all pairs, failure to acquire.

    python benchmarks/accuracy.py [--pack yunet-sface] [--write-pack]

Embeds LFW once (cached by ``_lfw.py``), then writes ``benchmarks/out/accuracy.json``,
``benchmarks/out/accuracy.md`` and the DET curve ``docs/img/det-lfw.png``.
``--write-pack`` writes the operating points into the built-in pack manifest.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from _lfw import LFW, OUT, load_lfw

from faceverify import QualityPolicy
from faceverify._calibrate import (
    DEFAULT_TARGETS,
    QUALITY_FIELDS,
    Scores,
    all_pairs,
    operating_point,
    pair_scores,
    plot_det,
)
from faceverify._models._manifest import OperatingPoint

ROOT = Path(__file__).resolve().parents[1]
PACKS = ROOT / "src" / "faceverify" / "_models" / "packs"
DET_PNG = ROOT / "docs" / "img" / "det-lfw.png"
REPORT_FMRS = (1e-3, 1e-4, 1e-5, 1e-6)
DATASET = "LFW all-pairs: 7,701 images of 4,281 people, central face, no quality gate"


def ten_fold(lfw: LFW) -> dict[str, Any]:
    """Official View 2: per fold, the threshold maximising accuracy on the other nine."""
    i, j, same, fold = lfw.official_pairs()
    s = pair_scores(lfw.embedded.embedding, i, j).astype(np.float64)
    unscored = ~np.isfinite(s)
    s[unscored] = -2.0  # no face on a side: a non-match
    accs, thresholds = [], []
    for f in sorted(set(fold.tolist())):
        train, test = fold != f, fold == f
        cand = np.unique(s[train])
        mids = np.concatenate([[cand[0] - 1e-6], (cand[:-1] + cand[1:]) / 2, [cand[-1] + 1e-6]])
        st, yt = s[train], same[train]
        order = np.argsort(st)
        st_sorted, y_sorted = st[order], yt[order]
        # accuracy(t) = genuine >= t + impostor < t, via cumulative counts
        pos = np.searchsorted(st_sorted, mids, side="left")
        gen_below = np.concatenate([[0], np.cumsum(y_sorted)])[pos]
        imp_below = np.concatenate([[0], np.cumsum(~y_sorted)])[pos]
        correct = (yt.sum() - gen_below) + imp_below
        best = np.flatnonzero(correct == correct.max())
        t = float(mids[best[len(best) // 2]])  # middle of the best candidates, not the lowest
        thresholds.append(t)
        accs.append(float(np.mean((s[test] >= t) == same[test])))
    return {
        "accuracy_mean": float(np.mean(accs)),
        "accuracy_std": float(np.std(accs)),
        "fold_accuracy": accs,
        "fold_threshold": thresholds,
        "pairs": len(s),
        "pairs_without_face": int(unscored.sum()),
    }


def genuine_total(identity: npt.NDArray[np.int64]) -> int:
    counts = np.bincount(identity)
    return int((counts * (counts - 1) // 2).sum())


def at_fmr(scores: Scores, fmr: float, dataset: str, genuine_all: int) -> dict[str, Any]:
    op = operating_point("", scores, fmr, dataset)
    misses = int(np.sum(scores.genuine < op.threshold))
    return {
        "fmr_target": fmr,
        "threshold": op.threshold,
        "fmr_measured": op.fmr_measured,
        "false_matches": round(op.fmr_measured * op.impostor_pairs),
        "fmr_upper95": op.fmr_upper,
        "fnmr": op.fnmr,
        "fnmr_per_identity": scores.fnmr_per_group(op.threshold),
        # pairs with a capture that could not be scored count as non-matches
        "fnmr_generalised": (misses + genuine_all - len(scores.genuine)) / genuine_all,
    }


def at_threshold(scores: Scores, op: OperatingPoint, genuine_all: int, impostor_all: int) -> dict[str, Any]:
    k, rate = scores.fmr(op.threshold)
    misses = int(np.sum(scores.genuine < op.threshold))
    return {
        "operating_point": op.name,
        "threshold": op.threshold,
        "fmr_target": op.fmr,
        "false_matches": k,
        "fmr_scored": rate,
        "fmr_refusals_as_non_matches": k / impostor_all,
        "fnmr_scored": scores.fnmr(op.threshold),
        "fnmr_per_identity": scores.fnmr_per_group(op.threshold),
        "fnmr_refusals_as_non_matches": (misses + genuine_all - len(scores.genuine)) / genuine_all,
        "genuine_pairs_scored": len(scores.genuine),
        "impostor_pairs_scored": len(scores.impostor),
    }


def failure_to_acquire(lfw: LFW) -> dict[str, Any]:
    e = lfw.embedded
    n = len(e.keys)
    t0 = lfw.detector_threshold
    policy = QualityPolicy()
    sweep = {}
    for t in (float(x) for x in e.sweep):
        no_face = e.max_score < t - 1e-6
        only = e.only_refused(t)
        sweep[f"{t:.1f}"] = {
            "no_face": int(no_face.sum()),
            "no_face_rate": float(no_face.mean()),
            "several_comparable_faces": int(only.sum()),
            "refused_select_only_rate": float((no_face | only).mean()),
        }
    ok = e.acquired
    gate = e.gate_refused & ok
    only = e.only_refused(t0) & ok
    refused = e.refused(t0)
    reasons: dict[str, int] = {}
    for row in np.flatnonzero(gate):
        from faceverify import Quality

        q = Quality(**{k: float(v) for k, v in zip(QUALITY_FIELDS, e.quality[row], strict=True)})
        for r in policy.reasons(q):
            key = r.split(":")[0].split("(")[0].strip()
            reasons[key] = reasons.get(key, 0) + 1
    return {
        "images": n,
        "detector_threshold": t0,
        "no_face": int((~ok).sum()),
        "no_face_rate": float((~ok).mean()),
        "quality_gate_refused": int(gate.sum()),
        "quality_gate_reasons": reasons,
        "several_comparable_faces": int(only.sum()),
        "refused_gate_and_only": int(refused.sum()),
        "refused_gate_and_only_rate": float(refused.mean()),
        "by_detector_threshold": sweep,
    }


def quality_check(lfw: LFW) -> dict[str, Any]:
    """Each QualityPolicy default against the LFW distribution: share of acquired captures it admits."""
    e = lfw.embedded
    ok = e.acquired
    p = QualityPolicy()
    col = {k: e.quality_column(k)[ok].astype(np.float64) for k in QUALITY_FIELDS}
    admits = {
        "min_interocular": col["interocular"] >= p.min_interocular,
        "min_sharpness": col["sharpness"] >= p.min_sharpness,
        "min_brightness": col["brightness"] >= p.min_brightness,
        "max_brightness": col["brightness"] <= p.max_brightness,
        "max_clipped": col["clipped"] <= p.max_clipped,
        "max_yaw": np.abs(col["yaw"]) <= p.max_yaw,
        "max_pitch": np.abs(col["pitch"]) <= p.max_pitch,
        "max_roll": np.abs(col["roll"]) <= p.max_roll,
        "max_outside": col["outside"] <= p.max_outside,
    }
    qs = (0.1, 0.5, 1, 5, 50, 95, 99, 99.5, 99.9)
    dist = {
        k: {f"p{q:g}": float(np.percentile(np.abs(v) if k in ("yaw", "pitch", "roll") else v, q)) for q in qs}
        for k, v in col.items()
    }
    return {
        "captures": int(ok.sum()),
        "defaults": {f.name: getattr(p, f.name) for f in fields(p)},
        "admitted": {k: float(v.mean()) for k, v in admits.items()},
        "admitted_all": float(np.logical_and.reduce(list(admits.values())).mean()),
        "distribution": dist,
        "note": "yaw/pitch/roll percentiles are of absolute values",
    }


def write_pack(pack: str, points: list[OperatingPoint]) -> Path:
    """Replace the ``operating_points`` list of the built-in manifest, leaving the rest as written."""
    path = PACKS / f"{pack}.json"
    text = path.read_text("utf-8")
    items = []
    for op in points:
        d = asdict(op)
        d.pop("calibrated")
        items.append("    " + json.dumps(d))
    block = '"operating_points": [\n' + ",\n".join(items) + "\n  ]"
    # The top-level list closes at two spaces of indent; keys after it (template and
    # condition points, calibrated_for) are left as they are.
    new, n = re.subn(r'"operating_points":\s*\[.*?\n  \]', block, text, count=1, flags=re.S)
    if n != 1:
        raise SystemExit(f"could not find operating_points in {path}")
    json.loads(new)  # still valid
    path.write_text(new, "utf-8")
    return path


def fmt_rate(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2e}"


def markdown(r: dict[str, Any]) -> str:
    tf, fta, ap = r["ten_fold"], r["failure_to_acquire"], r["all_pairs"]
    out = [
        f"## LFW accuracy — pack `{r['pack']}`",
        "",
        f"**10-fold accuracy (official View 2 pairs):** {tf['accuracy_mean'] * 100:.2f} % "
        f"± {tf['accuracy_std'] * 100:.2f} "
        f"({tf['pairs_without_face']} pairs without a face scored as non-matches)",
        "",
        f"**All pairs:** {ap['genuine_pairs']:,} genuine, {ap['impostor_pairs']:,} impostor pairs "
        f"({ap['images_scored']:,} of {fta['images']:,} images with a face at detector "
        f"{fta['detector_threshold']}).",
        "",
        "| FMR target | threshold | FMR measured | false matches | FMR 95 % upper | FNMR | FNMR per identity "
        "| FNMR incl. no-face |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in ap["at_fmr"]:
        out.append(
            f"| {row['fmr_target']:.0e} | {row['threshold']:.4f} | {fmt_rate(row['fmr_measured'])} "
            f"| {row['false_matches']} | {fmt_rate(row['fmr_upper95'])} | {row['fnmr'] * 100:.2f} % "
            f"| {row['fnmr_per_identity'] * 100:.2f} % | {row['fnmr_generalised'] * 100:.2f} % |"
        )
    g = r["gated"]
    out += [
        "",
        '**Deployed path** (default `QualityPolicy`, `select="only"`; '
        "refused captures count as non-matches): "
        f"{g['refused_images']} of {fta['images']} images refused.",
        "",
        "| operating point | threshold | FMR (refusals as non-matches) | FNMR scored | FNMR incl. refusals "
        "| FNMR per identity (scored) |",
        "|---|---|---|---|---|---|",
    ]
    for row in g["at_operating_points"]:
        out.append(
            f"| {row['operating_point']} | {row['threshold']:.4f} "
            f"| {fmt_rate(row['fmr_refusals_as_non_matches'])} "
            f"| {row['fnmr_scored'] * 100:.2f} % | {row['fnmr_refusals_as_non_matches'] * 100:.2f} % "
            f"| {row['fnmr_per_identity'] * 100:.2f} % |"
        )
    out += [
        "",
        '**Failure to acquire** (no face at the detector threshold; with `select="only"`, '
        "also several comparable faces):",
        "",
        "| detector threshold | no face | no face rate | several comparable faces | refused with `only` |",
        "|---|---|---|---|---|",
    ]
    for t, row in fta["by_detector_threshold"].items():
        out.append(
            f"| {t} | {row['no_face']} | {row['no_face_rate'] * 100:.2f} % "
            f"| {row['several_comparable_faces']} "
            f"| {row['refused_select_only_rate'] * 100:.2f} % |"
        )
    out += [
        "",
        f"Quality gate (defaults) refuses {fta['quality_gate_refused']} acquired captures "
        f"({', '.join(f'{k}: {v}' for k, v in fta['quality_gate_reasons'].items()) or 'none'}); "
        f"with `only` and no-face, {fta['refused_gate_and_only']} refused in all "
        f"({fta['refused_gate_and_only_rate'] * 100:.2f} %).",
        "",
        "| quality minimum | default | LFW captures admitted |",
        "|---|---|---|",
    ]
    q = r["quality"]
    for k, v in q["admitted"].items():
        out.append(f"| `{k}` | {q['defaults'][k]} | {v * 100:.2f} % |")
    out.append(f"| all together | | {q['admitted_all'] * 100:.2f} % |")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pack", default="yunet-sface")
    ap.add_argument(
        "--write-pack", action="store_true", help="write the operating points into the pack manifest"
    )
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()

    lfw = load_lfw(args.pack, threads=args.threads)
    e = lfw.embedded
    ok = e.acquired
    scores = all_pairs(e.embedding, lfw.identity, ok)
    n_gen_all = genuine_total(lfw.identity)
    n_imp_all = len(e.keys) * (len(e.keys) - 1) // 2 - n_gen_all
    points = [operating_point(name, scores, fmr, DATASET) for name, fmr in DEFAULT_TARGETS]

    refused = e.refused(lfw.detector_threshold)
    gated = all_pairs(e.embedding, lfw.identity, ~refused)
    result: dict[str, Any] = {
        "pack": args.pack,
        "ten_fold": ten_fold(lfw),
        "all_pairs": {
            "images_scored": int(ok.sum()),
            "genuine_pairs": len(scores.genuine),
            "impostor_pairs": len(scores.impostor),
            "genuine_pairs_all_images": n_gen_all,
            "impostor_pairs_all_images": n_imp_all,
            "at_fmr": [at_fmr(scores, f, DATASET, n_gen_all) for f in REPORT_FMRS],
        },
        "operating_points": [asdict(p) for p in points],
        "gated": {
            "refused_images": int(refused.sum()),
            "at_operating_points": [at_threshold(gated, p, n_gen_all, n_imp_all) for p in points],
        },
        "failure_to_acquire": failure_to_acquire(lfw),
        "quality": quality_check(lfw),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "accuracy.json").write_text(json.dumps(result, indent=2), "utf-8")
    md = markdown(result)
    (OUT / "accuracy.md").write_text(md, "utf-8")
    print(md)
    plot_det(
        DET_PNG,
        [
            ("all pairs, labelled (central) face", scores),
            ("deployed path (gate + only), scored pairs", gated),
        ],
        points,
        title=f"LFW all-pairs DET — {args.pack}",
    )
    print(f"wrote {OUT / 'accuracy.json'}, {OUT / 'accuracy.md'}, {DET_PNG}")
    if args.write_pack:
        print(f"wrote operating points into {write_pack(args.pack, points)}")


if __name__ == "__main__":
    main()
