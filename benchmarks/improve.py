"""Better templates and probes, measured on LFW all-pairs (issue 4, item 3).

Same protocol as ``accuracy.py``: every pair of the 7,701 shared LFW images
(one image per side, captures without a face left out), genuine = same folder,
FNMR at the threshold whose measured FMR is at most 1e-3/1e-4/1e-5/1e-6,
pooled and averaged per identity. Candidates:

(a) z-score fusion of SFace with the 512-d faceplugin recognizer, with and
    without mirrored-crop averaging ("flip"; the default pack's revision 2
    embeds with mirror views, so "flip" is the product's configuration and the
    only one whose fusion can be stated in the pack);
(b) multi-image enrolment (reported separately: it is not one image per side):
    the first m images of a person are the template (mean of unit embeddings,
    renormalised, vs. the max of per-member scores), the person's other images
    are genuine probes, every non-enrolment image of everyone else an impostor
    probe; compared with m = 1 on the same probes; and the operating points of
    mean templates of 2-5 images, written into the default pack with
    ``--write-pack`` (the Verifier scores a multi-image template at them);
(c) multi-frame probes: frames simulated from one image (re-detected jitter,
    see ``_variants.py``), the best k by detector score averaged;
(d) quality-aware decisions: the default quality gate (refusals counted as
    non-matches) and a detector-score-dependent threshold, tuned on half the
    identities and measured on the other half.

A technique is kept if it lowers FNMR at FMR 1e-5 without raising the FMR.
Writes ``benchmarks/out/improve.json`` and ``improve.md``. Needs the caches of
``_lfw.py`` (SFace) and ``_variants.py`` (both recognizers, frames).
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _lfw import OUT, load_lfw
from _variants import load as load_variants

from faceverify._calibrate import Scores, fmr_upper_bound, operating_points, threshold_for
from faceverify.hazmat import builtin_manifest

F32 = npt.NDArray[np.float32]
TARGETS = (1e-3, 1e-4, 1e-5, 1e-6)


def unit(x: F32) -> F32:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def cross_pairs(
    a: F32, b: F32, ident: npt.NDArray[np.int64], keep: npt.NDArray[np.bool_], chunk: int = 1024
) -> Scores:
    """``a[i] · b[j]`` for every pair i < j of kept captures (a = reference side, b = probe side)."""
    idx = np.flatnonzero(keep)
    a, b, ids = a[idx], b[idx], ident[idx]
    n = len(idx)
    gen, grp, imp = [], [], []
    for r0 in range(0, n, chunk):
        r1 = min(n, r0 + chunk)
        s = a[r0:r1] @ b[r0:].T
        upper = np.arange(r0, n)[None, :] > np.arange(r0, r1)[:, None]
        same = ids[r0:r1, None] == ids[None, r0:]
        gen.append(s[upper & same])
        grp.append(np.broadcast_to(ids[r0:r1, None], s.shape)[upper & same])
        imp.append(s[upper & ~same])
    return Scores.of(np.concatenate(gen), np.concatenate(imp), np.concatenate(grp))


def summary(scores: Scores, offset: float = 0.0) -> dict[str, Any]:
    """FNMR pooled and per identity at each target FMR (``offset`` shifts thresholds into score units)."""
    out: dict[str, Any] = {"genuine": len(scores.genuine), "impostor": len(scores.impostor)}
    for fmr in TARGETS:
        t = threshold_for(scores, fmr)
        k, measured = scores.fmr(t)
        out[f"{fmr:g}"] = {
            "threshold": round(t - offset, 4),
            "fmr_measured": measured,
            "false_matches": k,
            "fmr_upper": fmr_upper_bound(k, len(scores.impostor)),
            "fnmr": scores.fnmr(t),
            "fnmr_per_identity": scores.fnmr_per_group(t),
        }
    return out


def impostor_norm(scores: Scores) -> tuple[float, float]:
    """Mean and standard deviation of the impostor cosines, rounded as the pack states them."""
    return round(float(scores.impostor.mean(dtype=np.float64)), 5), round(
        float(scores.impostor.std(dtype=np.float64)), 5
    )


def fused_matrix(e1: F32, e2: F32, n1: tuple[float, float], n2: tuple[float, float]) -> tuple[F32, float]:
    """Rows whose dot product is the fused z-score plus ``offset``: the fusion is linear in cosines."""
    (m1, s1), (m2, s2) = n1, n2
    rows = np.hstack([e1 / math.sqrt(2 * s1), e2 / math.sqrt(2 * s2)]).astype(np.float32)
    return rows, m1 / (2 * s1) + m2 / (2 * s2)


def shifted(scores: Scores, offset: float) -> Scores:
    return Scores(
        scores.genuine - np.float32(offset), scores.impostor - np.float32(offset), scores.genuine_group
    )


def best_frames(emb: F32, quality: F32, found: npt.NDArray[np.bool_], frames: list[int], k: int) -> F32:
    """Per capture, the mean of the k frames with the highest detector score, renormalised."""
    det = np.where(found[:, frames], quality[:, frames, 0], -np.inf)
    order = np.argsort(-det, axis=1)[:, :k]
    pick = np.take_along_axis(np.array(frames)[None, :].repeat(len(emb), 0), order, axis=1)
    ok = np.take_along_axis(np.isfinite(det), order, axis=1)
    sel = emb[np.arange(len(emb))[:, None], pick] * ok[..., None]
    total = sel.sum(axis=1)
    total[np.linalg.norm(total, axis=1) == 0] = emb[np.linalg.norm(total, axis=1) == 0, 0]
    return unit(total)


# --------------------------------------------------------------------------- candidates


def single_and_fused(
    v: dict[str, Any], ident: npt.NDArray[np.int64], keep: npt.NDArray[np.bool_]
) -> dict[str, Any]:
    res: dict[str, Any] = {}
    s0, f0 = v["sface"][:, 0], v["fr512"][:, 0]
    s_flip, f_flip = unit(v["sface"][:, 0] + v["sface"][:, 1]), unit(v["fr512"][:, 0] + v["fr512"][:, 1])
    norms: dict[str, Any] = {}
    for name, (es, ef) in {"plain": (s0, f0), "flip": (s_flip, f_flip)}.items():
        ss = cross_pairs(es, es, ident, keep)
        sf = cross_pairs(ef, ef, ident, keep)
        ns, nf = impostor_norm(ss), impostor_norm(sf)
        norms[name] = {"sface": ns, "fr512": nf}
        rows, off = fused_matrix(es, ef, ns, nf)
        fused = shifted(cross_pairs(rows, rows, ident, keep), off)
        res[f"sface-{name}"] = summary(ss)
        res[f"fr512-{name}"] = summary(sf)
        res[f"fusion-{name}"] = summary(fused)
        res[f"fusion-{name}"]["impostor_norm"] = {"sface": ns, "fr512": nf}
        res[f"_fused-{name}"] = fused
        print(
            f"  {name}: sface {res[f'sface-{name}']['1e-05']['fnmr']:.4f} fr512 "
            f"{res[f'fr512-{name}']['1e-05']['fnmr']:.4f} fused {res[f'fusion-{name}']['1e-05']['fnmr']:.4f}",
            file=sys.stderr,
            flush=True,
        )
    res["_norms"] = norms
    return res


PACK = (
    Path(__file__).resolve().parents[1] / "src" / "faceverify" / "_models" / "packs" / "faceplugin-fr512.json"
)
DATASET = "LFW all pairs (7,701 shared images, one per side; captures without a face left out)"


def write_pack(fusion: dict[str, Any], config: str) -> None:
    """State the chosen configuration's impostor statistics and operating points in the pack."""
    from dataclasses import asdict

    scores: Scores = fusion[f"_fused-{config}"]
    norms = fusion["_norms"][config]
    ops = []
    for op in operating_points(scores, DATASET):
        d = asdict(op)
        d.pop("calibrated")
        ops.append(d)
    if config != "flip":
        raise SystemExit("the default pack embeds with mirror views: only the 'flip' fusion can be stated")
    data = json.loads(PACK.read_text("utf-8"))
    data["recognizer"]["mirror"] = True
    data["fusion"] = {
        "partner": "yunet-sface",
        "partner_revision": builtin_manifest("yunet-sface").revision,
        "rule": "zscore-mean",
        "dataset": DATASET,
        "impostor": {
            "yunet-sface": {"mean": norms["sface"][0], "std": norms["sface"][1]},
            "faceplugin-fr512": {"mean": norms["fr512"][0], "std": norms["fr512"][1]},
        },
        "operating_points": ops,
    }
    PACK.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", "utf-8")
    print(f"wrote fusion ({config}) into {PACK}", file=sys.stderr)


def multi_frame(
    v: dict[str, Any], ident: npt.NDArray[np.int64], keep: npt.NDArray[np.bool_]
) -> dict[str, Any]:
    """Reference side: one image as it is; probe side: the best k of 3 simulated frames.

    Compare with ``sface-plain`` and ``fusion-plain`` (k = 1: the single frame with the best detector score).
    """
    res: dict[str, Any] = {}
    q, found = v["quality"], v["found"]
    keep = keep & found[:, 2] & found[:, 3]
    if keep.sum() < 1000:
        return {"measured": False, "reason": "no simulated frames in the variant cache (FV_JITTER=0)"}
    res["images"] = int(keep.sum())
    ref_s, ref_f = v["sface"][:, 0], v["fr512"][:, 0]
    for k in (0, 1, 2, 3):  # k = 0: frame 0 alone, the baseline on the same images
        ps = ref_s if k == 0 else best_frames(v["sface"], q, found, [0, 2, 3], k)
        pf = ref_f if k == 0 else best_frames(v["fr512"], q, found, [0, 2, 3], k)
        ss = cross_pairs(ref_s, ps, ident, keep)
        sf = cross_pairs(ref_f, pf, ident, keep)
        res[f"sface-frames{k}"] = summary(ss)
        ns, nf = impostor_norm(ss), impostor_norm(sf)
        a, off = fused_matrix(ref_s, ref_f, ns, nf)
        b, _ = fused_matrix(ps, pf, ns, nf)
        res[f"fusion-frames{k}"] = summary(shifted(cross_pairs(a, b, ident, keep), off))
        print(
            f"  frames {k}: sface {res[f'sface-frames{k}']['1e-05']['fnmr']:.4f} "
            f"fused {res[f'fusion-frames{k}']['1e-05']['fnmr']:.4f}",
            file=sys.stderr,
            flush=True,
        )
    return res


def enrolment(
    blocks: list[tuple[F32, float]],
    offset: float,
    ident: npt.NDArray[np.int64],
    keep: npt.NDArray[np.bool_],
    min_images: int,
    sizes: tuple[int, ...],
) -> dict[str, Any]:
    """Templates of the first m kept images of each person with >= ``min_images`` kept images.

    ``blocks``: one (unit embeddings, scale) per recognizer; the score is the
    dot product of the scaled, concatenated rows minus ``offset`` (a cosine
    for one block with scale 1, the fused z-score for two). Template rules:
    ``mean`` = per recognizer, the renormalised mean of the members' unit
    embeddings; ``max`` = the best member's score.
    """
    kept = np.flatnonzero(keep)
    by_person: dict[int, list[int]] = {}
    for i in kept:
        by_person.setdefault(int(ident[i]), []).append(int(i))
    people = [p for p, ims in by_person.items() if len(ims) >= min_images]
    m_max = max(sizes)
    enrol_ids = {i for p in people for i in by_person[p][:m_max]}
    probes = np.array([i for i in kept if i not in enrol_ids])
    rows = np.hstack([e * sc for e, sc in blocks]).astype(np.float32)
    probe_rows, probe_id = rows[probes], ident[probes]
    out: dict[str, Any] = {"people": len(people), "probes": len(probes), "min_images": min_images}
    for m in sizes:
        for rule in ("single",) if m == 1 else ("mean", "max"):
            gen, grp, imp = [], [], []
            for p in people:
                members = by_person[p][:m]
                if rule == "mean":
                    t = np.hstack([unit(e[members].mean(axis=0)) * sc for e, sc in blocks])
                    s = t @ probe_rows.T
                else:
                    s = (rows[members] @ probe_rows.T).max(axis=0)
                same = probe_id == p
                gen.append(s[same])
                grp.append(np.full(int(same.sum()), p))
                imp.append(s[~same])
            scores = shifted(Scores.of(np.concatenate(gen), np.concatenate(imp), np.concatenate(grp)), offset)
            out[f"m{m}-{rule}"] = summary(scores)
            print(
                f"  enrol >= {min_images}: m={m} {rule}: {out[f'm{m}-{rule}']['1e-05']['fnmr']:.4f}",
                file=sys.stderr,
                flush=True,
            )
    return out


TEMPLATE_SIZES = (2, 3, 4, 5)
#: A template point is stated only if its calibration allowed at least this many false
#: matches (floor(FMR x impostor pairs)): with 1-4 (strict, 1e-6, on 1-5 M pairs) the
#: threshold is set by a handful of scores and promises little. Without a point, the
#: Verifier scores such templates by the every-member rule at the single-image point.
MIN_FALSE_MATCHES = 10
DEFAULT_PACK_FILE = PACK.parent / "yunet-sface.json"


def template_points(
    emb: F32,
    ident: npt.NDArray[np.int64],
    keep: npt.NDArray[np.bool_],
    sizes: tuple[int, ...] = TEMPLATE_SIZES,
) -> dict[int, dict[str, Any]]:
    """Operating points of mean templates of m images (the Verifier's rule), for each m.

    People with at least m + 1 kept images; the template is the renormalised mean
    of their first m, genuine probes their other images, impostor probes every
    kept image of everyone else that is not part of any template of this size.
    """
    from dataclasses import asdict

    kept = np.flatnonzero(keep)
    by_person: dict[int, list[int]] = {}
    for i in kept:
        by_person.setdefault(int(ident[i]), []).append(int(i))
    out: dict[int, dict[str, Any]] = {}
    for m in sizes:
        people = [p for p, ims in by_person.items() if len(ims) >= m + 1]
        enrol = {i for p in people for i in by_person[p][:m]}
        probes = np.array([i for i in kept if i not in enrol])
        gen, grp, imp = [], [], []
        for p in people:
            s = unit(emb[by_person[p][:m]].mean(axis=0)) @ emb[probes].T
            same = ident[probes] == p
            gen.append(s[same])
            grp.append(np.full(int(same.sum()), p))
            imp.append(s[~same])
        scores = Scores.of(np.concatenate(gen), np.concatenate(imp), np.concatenate(grp))
        dataset = (
            f"LFW: mean templates of {m} images of the {len(people)} people with at least {m + 1}, "
            "against every other image (one probe image), central face, no quality gate"
        )
        ops = []
        for op in operating_points(scores, dataset):
            if math.floor(op.fmr * op.impostor_pairs) < MIN_FALSE_MATCHES:
                continue
            d = asdict(op)
            d.pop("calibrated")
            ops.append(d)
        out[m] = {"people": len(people), "operating_points": ops, "summary": summary(scores)}
        print(
            f"  mean of {m}: {len(people)} people, {len(scores.impostor):,} impostor; FNMR@1e-5 "
            f"{out[m]['summary']['1e-05']['fnmr']:.4f} at {out[m]['summary']['1e-05']['threshold']}",
            file=sys.stderr,
            flush=True,
        )
    return out


def write_template_points(points: dict[int, dict[str, Any]]) -> None:
    data = json.loads(DEFAULT_PACK_FILE.read_text("utf-8"))
    data["template_operating_points"] = [
        {"images": m, "rule": "mean", "operating_points": p["operating_points"]}
        for m, p in sorted(points.items())
    ]
    text = json.dumps(data, indent=2, ensure_ascii=False)
    DEFAULT_PACK_FILE.write_text(text + "\n", "utf-8")
    print(f"wrote mean-template operating points into {DEFAULT_PACK_FILE}", file=sys.stderr)


def quality_aware(
    rows: F32,
    offset: float,
    lfw_gate: npt.NDArray[np.bool_],
    det: F32,
    ident: npt.NDArray[np.int64],
    keep: npt.NDArray[np.bool_],
    grid: tuple[float, ...],
) -> dict[str, Any]:
    """(d) the default gate, and a threshold raised for low detector confidence (tuned on half the people)."""
    res: dict[str, Any] = {}
    # Gate: refused captures cannot match; genuine pairs with a refused side count as misses.
    base = shifted(cross_pairs(rows, rows, ident, keep), offset)
    gated_rows = rows.copy()
    gated = shifted(cross_pairs(gated_rows, gated_rows, ident, keep & ~lfw_gate), offset)
    n_refused_gen = len(base.genuine) - len(gated.genuine)
    g = np.concatenate([gated.genuine, np.full(n_refused_gen, -np.inf, np.float32)])
    grp = np.concatenate([gated.genuine_group, np.full(n_refused_gen, -1)])
    res["gate-default"] = summary(Scores.of(g, gated.impostor, grp))
    res["gate-default"]["refused_captures"] = int((keep & lfw_gate).sum())
    # Penalty: score - beta * (2 - det_i - det_j) / 2 ... tuned on even identities, tested on odd.
    half = ident % 2 == 0
    aug = np.hstack([rows, np.zeros((len(rows), 2), np.float32)])
    out: dict[str, Any] = {}
    for beta in grid:
        # score' = s - beta * ((1 - d_i) + (1 - d_j)): linear, as a dot product with two extra columns
        a = aug.copy()
        b = aug.copy()
        a[:, -2] = -beta * (1 - det)
        b[:, -2] = 1.0
        a[:, -1] = 1.0
        b[:, -1] = -beta * (1 - det)
        tune = summary(shifted(cross_pairs(a, b, ident, keep & half), offset))["1e-05"]["fnmr"]
        test = summary(shifted(cross_pairs(a, b, ident, keep & ~half), offset))
        out[f"beta{beta:g}"] = {"tune_fnmr": tune, "test": test}
        print(
            f"  quality beta {beta}: tune {tune:.4f} test {test['1e-05']['fnmr']:.4f}",
            file=sys.stderr,
            flush=True,
        )
    best = min(out, key=lambda k: out[k]["tune_fnmr"])
    res["det-penalty"] = {"chosen": best, "grid": out}
    return res


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--write-pack", action="store_true", help="state the better fusion in the pack manifest")
    args = ap.parse_args()
    t0 = time.time()
    lfw = load_lfw()
    v = load_variants()
    assert list(v["paths"]) == list(lfw.embedded.keys), "variant cache and LFW cache list different images"
    ident = lfw.identity
    keep = lfw.embedded.acquired & v["found"][:, 0]
    ref = lfw.embedded.embedding  # the product's embedding: crop and mirror views (frames 0 and 1)
    agree = np.einsum("ij,ij->i", ref[keep], unit(v["sface"][keep, 0] + v["sface"][keep, 1]))
    report: dict[str, Any] = {
        "protocol": "LFW all pairs, one image per side, captures without a face left out",
        "images": len(keep),
        "kept": int(keep.sum()),
        "frame0_vs_lfw_cache_min_cosine": float(agree.min()),
    }
    print("(a) fusion", file=sys.stderr)
    report["a_fusion"] = single_and_fused(v, ident, keep)
    print("(c) multi-frame probes", file=sys.stderr)
    report["c_frames"] = multi_frame(v, ident, keep)
    print("(b) multi-image enrolment", file=sys.stderr)
    s_flip = unit(v["sface"][:, 0] + v["sface"][:, 1])
    ns, nf = report["a_fusion"]["_norms"]["flip"]["sface"], report["a_fusion"]["_norms"]["flip"]["fr512"]
    f_flip = unit(v["fr512"][:, 0] + v["fr512"][:, 1])
    rows, off = fused_matrix(s_flip, f_flip, ns, nf)
    fused_blocks = [(s_flip, 1 / math.sqrt(2 * ns[1])), (f_flip, 1 / math.sqrt(2 * nf[1]))]
    report["b_enrolment"] = {
        "sface-4": enrolment([(s_flip, 1.0)], 0.0, ident, keep, 4, (1, 3)),
        "sface-6": enrolment([(s_flip, 1.0)], 0.0, ident, keep, 6, (1, 3, 5)),
        "fusion-flip-4": enrolment(fused_blocks, off, ident, keep, 4, (1, 3)),
        "fusion-flip-6": enrolment(fused_blocks, off, ident, keep, 6, (1, 3, 5)),
    }
    print("(d) quality-aware", file=sys.stderr)
    det = lfw.embedded.quality_column("detector_score").astype(np.float32)
    report["d_quality"] = {
        "sface": quality_aware(
            s_flip, 0.0, lfw.embedded.gate_refused, det, ident, keep, (0.0, 0.05, 0.1, 0.2, 0.4)
        ),
        "fusion-flip": quality_aware(
            rows, off, lfw.embedded.gate_refused, det, ident, keep, (0.0, 0.5, 1.0, 2.0, 4.0)
        ),
    }
    fusion = report["a_fusion"]
    better = min(("plain", "flip"), key=lambda c: fusion[f"fusion-{c}"]["1e-05"]["fnmr"])
    report["fusion_chosen"] = better
    print("(e) mean-template operating points (default pack)", file=sys.stderr)
    points = template_points(ref, ident, keep)
    report["e_templates"] = {m: {"people": p["people"], "summary": p["summary"]} for m, p in points.items()}
    if args.write_pack:
        write_pack(fusion, "flip")
        write_template_points(points)
    for k in [k for k in fusion if k.startswith("_fused")]:
        del fusion[k]
    report["seconds"] = round(time.time() - t0, 1)
    OUT.mkdir(exist_ok=True)
    (OUT / "improve.json").write_text(json.dumps(report, indent=1, default=float) + "\n", encoding="utf-8")
    (OUT / "improve.md").write_text(markdown(report), encoding="utf-8")
    print(markdown(report))


def _row(name: str, s: dict[str, Any]) -> str:
    cells = [
        f"{s[f'{t:g}']['fnmr'] * 100:.2f} / {s[f'{t:g}']['fnmr_per_identity'] * 100:.2f}" for t in TARGETS
    ]
    p = s["1e-05"]
    return (
        f"| {name} | " + " | ".join(cells) + f" | {p['threshold']:.4f} | {p['fmr_measured']:.1e} | "
        f"{s['genuine']:,} / {s['impostor']:,} |"
    )


def markdown(r: dict[str, Any]) -> str:
    head = (
        "| candidate | FNMR % @1e-3 (pooled / per id) | @1e-4 | @1e-5 | @1e-6 | threshold @1e-5 | "
        "FMR measured @1e-5 | genuine / impostor pairs |\n|---|---|---|---|---|---|---|---|"
    )
    lines = ["## One image per side (LFW all pairs)", "", head]
    for k, s in r["a_fusion"].items():
        if not k.startswith("_"):
            lines.append(_row(k, s))
    if r["c_frames"].get("measured", True):
        lines += [
            "",
            f"## Multi-frame probes ({r['c_frames']['images']} images with simulated frames)",
            "",
            head,
        ]
        for k, s in r["c_frames"].items():
            if isinstance(s, dict):
                lines.append(_row(k, s))
    lines += ["", "## Multi-image enrolment (template vs one probe image; reported separately)", "", head]
    for group, res in r["b_enrolment"].items():
        for k, s in res.items():
            if isinstance(s, dict):
                lines.append(_row(f"{group} ({res['people']} people) {k}", s))
    lines += ["", "## Mean templates of m images: the default pack's template operating points", "", head]
    for m, res in r["e_templates"].items():
        lines.append(_row(f"mean of {m} ({res['people']} people)", res["summary"]))
    lines += ["", "## Quality-aware decisions", "", head]
    for group, res in r["d_quality"].items():
        lines.append(_row(f"{group} gate-default", res["gate-default"]))
        grid = res["det-penalty"]["grid"]
        for k, s in grid.items():
            lines.append(
                _row(
                    f"{group} test half, {k}" + (" (chosen)" if k == res["det-penalty"]["chosen"] else ""),
                    s["test"],
                )
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
