"""Peer comparison in one run (issue 4, item 4): faceverify, verifyface, face_recognition.

Each tool embeds LFW through its own public API with its own pre-processing:

- faceverify: the default pack through the pipeline (cache of ``_lfw.py``);
- verifyface 1.1.1: ``FaceEngine().embed(path)`` (the same YuNet + SFace int8
  weights, run by OpenCV's DNN with its own alignment), cosine;
- face_recognition 1.3.0 (dlib): ``face_locations`` (HOG) + ``face_encodings``,
  compared by Euclidean distance (score = minus the distance).

Figures, all on the same pairs: 10-fold accuracy on the official View 2 pairs
(threshold chosen on 9 folds, a pair with a side a tool found no face in
counts as "different"), and FNMR at FMR 1e-3/1e-4/1e-5 over all pairs of the
images *every* tool acquired. The peers are too slow here for 7,701 images
on a shared 2-core machine (dlib about 0.3 s an image), so every figure is on
a documented subset: every person whose sorted index is divisible by
``SUBSET_EVERY``, all their images (faceverify's full-set figures are in
``accuracy.md``). Speed: milliseconds
per verification (two captures from disk to decision), median over the first
``SPEED_PAIRS`` official pairs, one process, after a warm-up, with the ratio to
faceverify. Peers are benchmark extras (``pip install -e '.[peers]'``), never
runtime dependencies. Writes ``benchmarks/out/peers.json`` and ``peers.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _lfw import LFW_ROOT, OUT, image_keys, load_lfw

from faceverify._calibrate import Scores, threshold_for

F32 = npt.NDArray[np.float32]
TARGETS = (1e-3, 1e-4, 1e-5)
SPEED_PAIRS = 40
SUBSET_EVERY = 8


# --------------------------------------------------------------------------- embedding per tool


def _verifyface() -> tuple[Callable[[Path], F32], Callable[[Path, Path], float], int]:
    import verifyface as vf

    engine = vf.FaceEngine()
    engine.warmup()

    def embed(p: Path) -> F32:
        return np.asarray(engine.embed(str(p)).vector, np.float32)

    def verify(a: Path, b: Path) -> float:
        return float(engine.compare(str(a), str(b)).score)

    return embed, verify, 128


def _face_recognition() -> tuple[Callable[[Path], F32], Callable[[Path, Path], float], int]:
    import face_recognition as fr

    def embed(p: Path) -> F32:
        image = fr.load_image_file(str(p))
        locations = fr.face_locations(image)
        if not locations:
            raise LookupError("no face")
        # the largest face, as the other tools do
        top, right, bottom, left = max(locations, key=lambda b: (b[2] - b[0]) * (b[1] - b[3]))
        enc = fr.face_encodings(image, [(top, right, bottom, left)])
        return np.asarray(enc[0], np.float32)

    def verify(a: Path, b: Path) -> float:
        return -float(np.linalg.norm(embed(a) - embed(b)))

    return embed, verify, 128


def _faceverify() -> tuple[Callable[[Path], F32], Callable[[Path, Path], float], int]:
    from faceverify.hazmat import cosine, load_pipeline

    pipe = load_pipeline()

    def embed(p: Path) -> F32:
        return pipe.sample(p, policy=None, select="dominant").embedding

    def verify(a: Path, b: Path) -> float:
        # every stage runs (quality is measured; policy=None so no capture is cut short by a refusal)
        sa = pipe.sample(a, policy=None, select="dominant")
        return cosine(sa.embedding, pipe.sample(b, policy=None, select="dominant").embedding)

    return embed, verify, 128


TOOLS = {"faceverify": _faceverify, "verifyface": _verifyface, "face_recognition": _face_recognition}


def subset_mask(keys: list[str]) -> npt.NDArray[np.bool_]:
    names = sorted({k.split("/", 1)[0] for k in keys})
    chosen = {n for i, n in enumerate(names) if i % SUBSET_EVERY == 0}
    return np.array([k.split("/", 1)[0] in chosen for k in keys])


def embed_tool(tool: str, keys: list[str], only: npt.NDArray[np.bool_]) -> dict[str, Any]:
    path = OUT / f"lfw-peer-{tool}.npz"
    if path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    embed, _, dim = TOOLS[tool]()
    emb = np.full((len(keys), dim), np.nan, np.float32)
    t0 = time.perf_counter()
    done = 0
    for i, k in enumerate(keys):
        if not only[i]:
            continue
        with contextlib.suppress(Exception):  # any refusal of a peer = no face acquired
            emb[i] = embed(LFW_ROOT / k)
        done += 1
        if done % 250 == 0:
            el = time.perf_counter() - t0
            print(f"  {tool}: {done}/{int(only.sum())} {el:.0f}s", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - t0
    out = {
        "keys": np.array(keys),
        "embedding": emb,
        "embedded": only,
        "ms_per_image": 1000 * seconds / max(done, 1),
    }
    np.savez_compressed(path, **out)
    return out


# --------------------------------------------------------------------------- scoring


def score_rows(tool: str, emb: F32) -> tuple[F32, F32]:
    """Rows a, b with a[i]·b[j] a score that grows with similarity (cosine, or minus squared distance)."""
    if tool != "face_recognition":
        return emb, emb
    sq = np.sum(emb * emb, axis=1, keepdims=True)
    one = np.ones_like(sq)
    return np.hstack([2 * emb, -sq, one]).astype(np.float32), np.hstack([emb, one, -sq]).astype(np.float32)


def all_pairs(a: F32, b: F32, ident: npt.NDArray[np.int64], keep: npt.NDArray[np.bool_]) -> Scores:
    from improve import cross_pairs

    return cross_pairs(a, b, ident, keep)


def to_native(tool: str, t: float) -> float:
    """A threshold in the tool's own units (a distance for face_recognition)."""
    return math.sqrt(max(-t, 0.0)) if tool == "face_recognition" else t


def ten_fold(score: F32, same: npt.NDArray[np.bool_], fold: npt.NDArray[np.int64]) -> tuple[float, float]:
    s = np.where(np.isfinite(score), score, -np.inf)
    accs = []
    for f in np.unique(fold):
        train, test = fold != f, fold == f
        cands = np.unique(s[train & np.isfinite(s)])
        best = max(cands, key=lambda t: float(np.mean((s[train] >= t) == same[train])))
        accs.append(float(np.mean((s[test] >= best) == same[test])))
    return float(np.mean(accs)), float(np.std(accs))


def fnmr_table(tool: str, scores: Scores) -> dict[str, Any]:
    out: dict[str, Any] = {"genuine": len(scores.genuine), "impostor": len(scores.impostor)}
    for fmr in TARGETS:
        t = threshold_for(scores, fmr, decimals=6)
        out[f"{fmr:g}"] = {
            "threshold": round(to_native(tool, t), 4),
            "fmr_measured": scores.fmr(t)[1],
            "fnmr": scores.fnmr(t),
            "fnmr_per_identity": scores.fnmr_per_group(t),
        }
    return out


def speed(tool: str, pairs: list[tuple[Path, Path]]) -> float:
    _, verify, _ = TOOLS[tool]()
    verify(*pairs[0])  # warm-up
    times = []
    for a, b in pairs:
        t0 = time.perf_counter()
        with contextlib.suppress(Exception):  # a refusal is still a timed verification
            verify(a, b)
        times.append(1000 * (time.perf_counter() - t0))
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--embed-only", action="store_true")
    ap.add_argument("--tools", default="faceverify,verifyface,face_recognition")
    args = ap.parse_args()
    tools = args.tools.split(",")
    lfw = load_lfw()
    keys = list(lfw.embedded.keys)
    assert keys == image_keys()
    sub = subset_mask(keys)
    ident = lfw.identity
    emb: dict[str, F32] = {"faceverify": lfw.embedded.embedding}
    ms_image: dict[str, float] = {}
    for tool in tools:
        if tool == "faceverify":
            continue
        d = embed_tool(tool, keys, sub)
        emb[tool] = d["embedding"]
        ms_image[tool] = float(d["ms_per_image"])
    if args.embed_only:
        return
    acquired = {t: np.isfinite(e).all(axis=1) for t, e in emb.items()}
    report: dict[str, Any] = {
        "acquired": {t: int(a.sum()) for t, a in acquired.items()},
        "subset_images": int(sub.sum()),
        "subset_people": len(set(ident[sub].tolist())),
    }
    # 10-fold accuracy on the official pairs
    i, j, same, fold = lfw.official_pairs()
    report["ten_fold"] = {}
    for t, e in emb.items():
        a, b = score_rows(t, e)
        s = np.einsum("ij,ij->i", a[i], b[j])
        mask = sub[i] & sub[j]
        report["ten_fold"][t] = {
            "pairs": int(mask.sum()),
            "accuracy": ten_fold(s[mask], same[mask], fold[mask]),
            "no_face_pairs": int((~np.isfinite(s[mask])).sum()),
        }
    mask = np.ones(len(i), bool)
    a, b = score_rows("faceverify", emb["faceverify"])
    s_full = np.einsum("ij,ij->i", a[i], b[j])
    report["ten_fold_faceverify_all_pairs"] = ten_fold(s_full, same, fold)
    # all pairs, on the subset, over the images every tool acquired
    sub_keep = sub.copy()
    for acq in acquired.values():
        sub_keep &= acq
    report["all_pairs_subset"] = {
        t: fnmr_table(t, all_pairs(*score_rows(t, e), ident, sub_keep)) for t, e in emb.items()
    }
    # speed
    rows = [(LFW_ROOT / p, LFW_ROOT / q) for p, q in zip(np.array(keys)[i], np.array(keys)[j], strict=True)]
    report["ms_per_verification"] = {t: speed(t, rows[:SPEED_PAIRS]) for t in emb}
    report["ms_per_image_embedding_pass"] = ms_image
    base = report["ms_per_verification"]["faceverify"]
    report["speed_ratio_to_faceverify"] = {t: v / base for t, v in report["ms_per_verification"].items()}
    OUT.mkdir(exist_ok=True)
    (OUT / "peers.json").write_text(json.dumps(report, indent=1, default=float) + "\n", encoding="utf-8")
    (OUT / "peers.md").write_text(markdown(report), encoding="utf-8")
    print(markdown(report))


def _fnmr_rows(table: dict[str, Any], base: str = "faceverify") -> list[str]:
    lines = [
        "| tool | FNMR % @FMR 1e-3 | @1e-4 | @1e-5 | per identity @1e-5 | ratio to faceverify @1e-4 / @1e-5 "
        "| threshold @1e-5 |",
        "|---|---|---|---|---|---|---|",
    ]
    ref = table[base]
    for t, s in table.items():
        cells = [f"{s[f'{x:g}']['fnmr'] * 100:.2f}" for x in TARGETS]
        ratio = " / ".join(
            f"{s[f'{x:g}']['fnmr'] / ref[f'{x:g}']['fnmr']:.2f}" if ref[f"{x:g}"]["fnmr"] else "-"
            for x in (1e-4, 1e-5)
        )
        lines.append(
            f"| {t} | " + " | ".join(cells) + f" | {s['1e-05']['fnmr_per_identity'] * 100:.2f} | {ratio} | "
            f"{s['1e-05']['threshold']:.4f} |"
        )
    return lines


def markdown(r: dict[str, Any]) -> str:
    lines = [
        "## 10-fold accuracy, official LFW View 2 pairs with both images in the subset",
        "",
        "| tool | pairs | accuracy % | no-face pairs |",
        "|---|---|---|---|",
    ]
    for t, s in r["ten_fold"].items():
        acc, sd = s["accuracy"]
        lines.append(f"| {t} | {s['pairs']} | {acc * 100:.2f} ± {sd * 100:.2f} | {s['no_face_pairs']} |")
    lines += [
        "",
        f"## All pairs, subset ({r['subset_people']} people, {r['subset_images']} images; "
        "images every tool acquired)",
        "",
        *_fnmr_rows(r["all_pairs_subset"]),
    ]
    lines += [
        "",
        "## Speed",
        "",
        "| tool | ms per verification (median) | ratio to faceverify |",
        "|---|---|---|",
    ]
    for t, v in r["ms_per_verification"].items():
        lines.append(f"| {t} | {v:.0f} | {r['speed_ratio_to_faceverify'][t]:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
