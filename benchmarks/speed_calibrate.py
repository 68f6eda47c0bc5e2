"""Embed LFW with a pack revision and calibrate its operating points: one command.

    nice -n 10 python benchmarks/speed_calibrate.py [--parts 2] [--fusion] [--write-pack]

1. The ``_lfw.py`` pass (detector at the 0.5 floor, central face, every
   threshold of its sweep), split over ``--parts`` processes, written to
   ``_lfw.cache_path`` exactly as ``load_lfw`` would write it (``accuracy.py``,
   ``improve.py`` and the fmr benchmarks then read it). Beside it,
   ``lfw-<space>-views.npz`` keeps each capture's two views apart (the crop's
   embedding and its mirror image's), for the mirror band (``speed_band.py``).
2. With ``--fusion``: the second recognizer (faceplugin-fr512, opt-in) on the
   same crops (``lfw-<space>-crops.npy``, kept by the embedding pass), crop and
   mirror image, then its fusion with the default pack recalibrated as
   ``improve.py`` does (impostor statistics, operating points) and, with
   ``--write-pack``, written into ``faceplugin-fr512.json``.
3. The operating points over all pairs (``accuracy.py``'s protocol: central face,
   no quality gate, thresholds for FMR 1e-4 / 1e-5 / 1e-6) and the mean-template
   points of 2-5 images (``improve.py``'s), printed, and with ``--write-pack``
   written into ``src/faceverify/_models/packs/<pack>.json``.

Revision 3 was calibrated with this command (docs/performance.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _lfw import DETECTOR_FLOOR, LFW_ROOT, OUT, SWEEP, cache_path, floor_pipeline, image_keys, load_lfw

from faceverify._calibrate import (
    DEFAULT_TARGETS,
    Embedded,
    all_pairs,
    embed_captures,
    load_embedded,
    operating_point,
    save_embedded,
    stderr_progress,
)
from faceverify._pipeline._align import ArcFaceAligner
from faceverify._pipeline._capture import RGBImage
from faceverify._pipeline._embed import MirroredEmbedder, l2_normalise
from faceverify.hazmat import builtin_manifest

F32 = npt.NDArray[np.float32]


class ViewRecorder:
    """The pipeline's mirrored embedder, keeping the two views of the last capture."""

    def __init__(self, inner: MirroredEmbedder) -> None:
        self.inner = inner
        self.dim = inner.dim
        self.last: F32 | None = None
        self.crop: RGBImage | None = None

    def embed(self, crops: list[RGBImage]) -> F32:
        self.crop = crops[0]
        mirrors = [np.ascontiguousarray(c[:, ::-1]) for c in crops]
        views = self.inner.inner.embed([*crops, *mirrors])
        self.last = np.stack([views[: len(crops)], views[len(crops) :]], axis=1)
        return l2_normalise(views[: len(crops)] + views[len(crops) :])


def views_path(pack: str) -> Path:
    return cache_path(pack).with_name(cache_path(pack).stem + "-views.npz")


def crops_path(pack: str) -> Path:
    """The aligned crop of every image (zeros where none): the fusion pass embeds these, no re-detection."""
    return cache_path(pack).with_name(cache_path(pack).stem + "-crops.npy")


def embed_part(pack: str, part: int, parts: int) -> None:
    keys = image_keys()[part::parts]
    pipe, threshold = floor_pipeline(pack, threads=1)
    if not isinstance(pipe.embedder, MirroredEmbedder):
        raise SystemExit("the pack embeds one view; nothing to keep apart")
    recorder = ViewRecorder(pipe.embedder)
    pipe.embedder = recorder
    views = np.full((len(keys), 2, recorder.dim), np.nan, np.float32)
    size = pipe.aligner.size if isinstance(pipe.aligner, ArcFaceAligner) else 112
    crops = np.zeros((len(keys), size, size, 3), np.uint8)
    report = stderr_progress(f"part {part}", every=250)

    def progress(i: int, n: int) -> None:
        if recorder.last is not None:
            views[i - 1] = recorder.last[0]
        if recorder.crop is not None:
            crops[i - 1] = recorder.crop
        recorder.last = recorder.crop = None
        report(i, n)

    e = embed_captures(
        pipe,
        [(k, LFW_ROOT / k) for k in keys],
        threshold=threshold,
        sweep=SWEEP,
        choose="central",
        progress=progress,
    )
    save_embedded(_part_file(pack, part), e)
    np.save(_part_file(pack, part).with_suffix(".views.npy"), views)
    np.save(_part_file(pack, part).with_suffix(".crops.npy"), crops)


def _part_file(pack: str, part: int) -> Path:
    return OUT / f"calibrate-{pack}-part{part}.npz"


def merge(pack: str, parts: int) -> None:
    keys = image_keys()
    n = len(keys)
    pieces = [load_embedded(_part_file(pack, p))[0] for p in range(parts)]
    views = [np.load(_part_file(pack, p).with_suffix(".views.npy")) for p in range(parts)]
    order = [k for p in range(parts) for k in keys[p::parts]]
    where = np.argsort(np.array([keys.index(k) for k in order]))  # position of key i in the concatenation

    def cat(name: str) -> Any:
        return np.concatenate([getattr(x, name) for x in pieces])[where]

    e = Embedded(
        keys=tuple(keys),
        embedding=cat("embedding"),
        status=cat("status"),
        quality=cat("quality"),
        gate_refused=cat("gate_refused"),
        max_score=cat("max_score"),
        sweep=pieces[0].sweep,
        comparable=cat("comparable"),
    )
    assert len(e.keys) == n
    threshold = builtin_manifest(pack).detector.score_threshold
    save_embedded(
        cache_path(pack),
        e,
        pack=pack,
        detector_threshold=str(threshold),
        detector_floor=str(DETECTOR_FLOOR),
        face_choice="central",
        embedded_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    np.savez_compressed(views_path(pack), keys=np.array(keys), views=np.concatenate(views)[where])
    crops = [np.load(_part_file(pack, p).with_suffix(".crops.npy")) for p in range(parts)]
    np.save(crops_path(pack), np.concatenate(crops)[where])
    for p in range(parts):
        for suffix in (".npz", ".views.npy", ".crops.npy"):
            _part_file(pack, p).with_suffix(suffix).unlink()


def reembed(pack: str) -> None:
    """Embed the saved crops again with the pack's recognizer as it is now, rewriting the caches.

    Only for a revision that changes the recognizer's execution alone (revision 4: SFace in
    int8) after a pass with the same detector and alignment: the crops are what the
    pipeline would align again, so this is the pass, minus decoding and detection.
    """
    from faceverify.hazmat import load_pipeline

    e, meta = load_embedded(cache_path(pack))
    crops = np.load(crops_path(pack), mmap_mode="r")
    embedder = load_pipeline(pack, threads=1).embedder
    if not isinstance(embedder, MirroredEmbedder):
        raise SystemExit("the pack embeds one view; nothing to keep apart")
    views = np.full((len(e.keys), 2, embedder.dim), np.nan, np.float32)
    embedding = np.full_like(e.embedding, np.nan)
    report = stderr_progress("re-embedding the crops", every=500)
    for i in np.flatnonzero(np.isfinite(e.embedding).all(axis=1)):
        crop = np.array(crops[i])
        views[i] = embedder.inner.embed([crop, np.ascontiguousarray(crop[:, ::-1])])
        embedding[i] = l2_normalise(views[i].sum(axis=0))
        report(int(i) + 1, len(e.keys))
    e = dataclasses.replace(e, embedding=embedding)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    save_embedded(cache_path(pack), e, **{**meta, "embedded_at": now})
    np.savez_compressed(views_path(pack), keys=np.array(e.keys), views=views)


def fusion_part(pack: str, part: int, parts: int) -> None:
    """faceplugin-fr512 views of the crops the cache's embeddings came from (saved by the embedding pass)."""
    from faceverify._fusion import builtin_recognizer_pack
    from faceverify.hazmat import OnnxEmbedder, OnnxSession, cache_dir, install_pack, verified_paths

    keys = image_keys()
    crops = np.load(crops_path(pack), mmap_mode="r")
    with np.load(views_path(pack)) as z:
        found = np.isfinite(z["views"]).all(axis=(1, 2))
    mine = range(len(keys))[part::parts]
    fr = builtin_recognizer_pack("faceplugin-fr512")
    install_pack(fr, cache_dir())
    path = verified_paths(fr, cache_dir())[fr.recognizer.file]
    embed = OnnxEmbedder(OnnxSession(path, threads=1), fr.recognizer.input, dim=fr.recognizer.dim)
    out = np.full((len(mine), 2, fr.recognizer.dim), np.nan, np.float32)
    report = stderr_progress(f"fusion part {part}", every=250)
    for j, i in enumerate(mine):
        if found[i]:
            crop = np.array(crops[i])
            out[j] = embed.embed([crop, np.ascontiguousarray(crop[:, ::-1])])
        report(j + 1, len(mine))
    np.save(OUT / f"fusion-{cache_path(pack).stem}-part{part}.npy", out)


def calibrate_fusion(pack: str, parts: int, write: bool) -> dict[str, Any]:
    from improve import single_and_fused
    from improve import write_pack as write_fusion

    keys = image_keys()
    todo = [p for p in range(parts) if not (OUT / f"fusion-{cache_path(pack).stem}-part{p}.npy").exists()]
    me = [sys.executable, __file__, "--pack", pack, "--parts", str(parts), "--fusion-part"]
    workers = [subprocess.Popen([*me, str(p)]) for p in todo]
    if any(w.wait() != 0 for w in workers):
        raise SystemExit("a fusion part failed")
    fr = np.full((len(keys), 2, 512), np.nan, np.float32)
    for p in range(parts):
        fr[p::parts] = np.load(OUT / f"fusion-{cache_path(pack).stem}-part{p}.npy")
    lfw = load_lfw(pack)
    with np.load(views_path(pack)) as z:
        sface = z["views"]
    keep = lfw.embedded.acquired & np.isfinite(fr).all(axis=(1, 2)) & np.isfinite(sface).all(axis=(1, 2))
    fusion = single_and_fused({"sface": np.nan_to_num(sface), "fr512": np.nan_to_num(fr)}, lfw.identity, keep)
    if write:
        write_fusion(fusion, "flip")
    return {k: v for k, v in fusion.items() if not k.startswith("_")}


def calibrate(pack: str, write: bool) -> dict[str, Any]:
    from accuracy import DATASET, write_pack
    from improve import template_points, write_template_points

    lfw = load_lfw(pack)
    e = lfw.embedded
    scores = all_pairs(e.embedding, lfw.identity, e.acquired)
    points = [operating_point(name, scores, fmr, DATASET) for name, fmr in DEFAULT_TARGETS]
    templates = template_points(np.nan_to_num(e.embedding), lfw.identity, e.acquired)
    result = {
        "pack": pack,
        "embedding_space": builtin_manifest(pack).embedding_space,
        "images_acquired": int(e.acquired.sum()),
        "operating_points": [asdict(p) for p in points],
        "template_points": {m: t["operating_points"] for m, t in templates.items()},
    }
    for p in points:
        print(f"{p.name}: threshold {p.threshold:.4f}, FMR {p.fmr_measured:.2e}, FNMR {p.fnmr * 100:.2f} %")
    if write:
        if pack != "yunet-sface":
            raise SystemExit("--write-pack writes the default pack's manifest only")
        write_pack(pack, points)  # replaces everything from "operating_points" on: templates after it
        write_template_points(templates)
        print(f"wrote the operating points into the {pack} manifest")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pack", default="yunet-sface")
    ap.add_argument("--parts", type=int, default=2)
    ap.add_argument("--part", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--write-pack", action="store_true")
    ap.add_argument("--fusion", action="store_true", help="also recalibrate the fusion with faceplugin-fr512")
    ap.add_argument("--fusion-part", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument(
        "--reembed", action="store_true", help="embed the saved crops again (the recognizer alone changed)"
    )
    args = ap.parse_args()
    if args.part is not None:
        embed_part(args.pack, args.part, args.parts)
        return
    if args.fusion_part is not None:
        fusion_part(args.pack, args.fusion_part, args.parts)
        return
    if args.reembed:
        reembed(args.pack)
    if not all(p.exists() for p in (cache_path(args.pack), views_path(args.pack), crops_path(args.pack))):
        me = [sys.executable, __file__, "--pack", args.pack, "--parts", str(args.parts), "--part"]
        todo = [
            p for p in range(args.parts) if not _part_file(args.pack, p).with_suffix(".views.npy").exists()
        ]
        workers = [subprocess.Popen([*me, str(p)]) for p in todo]
        if any(w.wait() != 0 for w in workers):
            raise SystemExit("an embedding part failed")
        merge(args.pack, args.parts)
    result = calibrate(args.pack, args.write_pack)
    if args.fusion:
        result["fusion"] = calibrate_fusion(args.pack, args.parts, args.write_pack)
    OUT.mkdir(parents=True, exist_ok=True)
    name = f"calibrate-{result['embedding_space'].replace('@', '-r')}.json"
    (OUT / name).write_text(json.dumps(result, indent=1, default=float) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
