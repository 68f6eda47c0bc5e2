"""LFW, embedded once with the real pipeline, cached for every benchmark.

Data: ``../shared/data/lfw`` (or ``$FACEVERIFY_LFW``), research use only; no
image is ever copied into the repository. The cache is
``benchmarks/out/lfw-<pack>.npz`` (gitignored), written by
:func:`faceverify._calibrate.save_embedded`; read it with :func:`load_lfw`::

    from _lfw import load_lfw
    lfw = load_lfw()                 # embeds on first use (about 8 min on 2 cores)
    lfw.embedded.embedding           # (7701, 128) float32, NaN row = no face
    lfw.identity                     # (7701,) int, index into lfw.names

The ``.npz`` holds plain arrays (``np.load`` is enough without this module):

================  ===========  ==========================================================
``keys``          (N,) str     image path relative to the LFW root, sorted
``embedding``     (N, 128) f4  the labelled face: of faces comparable in size, the one nearest
                               the centre (LFW's convention), via ``sample(policy=None,
                               select="dominant")``; the largest face is a bystander in ~40
                               images
``status``        (N,) i1      0 ok, 1 no face at the pack's detector threshold, 2 unreadable
``quality``       (N, 9) f4    :class:`faceverify.Quality` measures, columns ``quality_fields``
``gate_refused``  (N,) bool    ``QualityPolicy()`` refuses it (recomputed on load from ``quality``)
``max_score``     (N,) f4      best detector score above the 0.5 floor (0 = none)
``sweep``         (T,) f4      detector thresholds 0.5, 0.6, 0.7, 0.9
``comparable``    (N, T) i2    comparable faces at each threshold (0 = none, >1: ``select="only"`` refuses)
``meta_*``        str          pack id, detector threshold, face choice, embedding date
================  ===========  ==========================================================
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from faceverify import QualityPolicy
from faceverify._calibrate import (
    Embedded,
    embed_captures,
    load_embedded,
    regate,
    save_embedded,
    stderr_progress,
)
from faceverify._models._load import yunet_detector
from faceverify.hazmat import (
    FacePipeline,
    OnnxSession,
    builtin_manifest,
    cache_dir,
    load_pipeline,
    verified_paths,
)

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
LFW_ROOT = Path(os.environ.get("FACEVERIFY_LFW", HERE.parent.parent / "shared" / "data" / "lfw"))
SWEEP = (0.5, 0.6, 0.7, 0.9)
DETECTOR_FLOOR = 0.5
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class LFW:
    root: Path
    pack: str
    embedded: Embedded
    names: tuple[str, ...]
    identity: npt.NDArray[np.int64]
    detector_threshold: float

    def index(self) -> dict[str, int]:
        return {k: i for i, k in enumerate(self.embedded.keys)}

    def official_pairs(self) -> tuple[Ints, Ints, npt.NDArray[np.bool_], Ints]:
        """The View 2 pairs as image indices ``(i, j, same, fold)``."""
        idx = self.index()
        rows = list(csv.DictReader((self.root / "pairs.csv").open(encoding="utf-8")))
        i = np.array([idx[r["path1"]] for r in rows])
        j = np.array([idx[r["path2"]] for r in rows])
        same = np.array([r["same"] == "1" for r in rows])
        fold = np.array([int(r["fold"]) for r in rows])
        return i, j, same, fold


def image_keys(root: Path = LFW_ROOT) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.glob("*/*.jpg"))


def floor_pipeline(pack: str, threads: int = 0) -> tuple[FacePipeline, float]:
    """The pack's pipeline with its detector run at the 0.5 floor (threshold sweep from one pass)."""
    manifest = builtin_manifest(pack)
    base = load_pipeline(manifest, threads=threads)
    paths = verified_paths(manifest, cache_dir())
    det = yunet_detector(
        manifest.detector,
        OnnxSession(paths[manifest.detector.file], threads=threads),
        score_threshold=DETECTOR_FLOOR,
    )
    pipe = FacePipeline(detector=det, aligner=base.aligner, embedder=base.embedder, limits=base.limits)
    return pipe, manifest.detector.score_threshold


def cache_path(pack: str) -> Path:
    """One cache per embedding space: a new pack revision is embedded afresh."""
    return OUT / f"lfw-{builtin_manifest(pack).embedding_space.replace('@', '-r')}.npz"


def load_lfw(pack: str = "yunet-sface", root: Path = LFW_ROOT, *, threads: int = 0) -> LFW:
    """The cached LFW embedding pass for ``pack``, embedding it first if absent."""
    if not (root / "pairs.csv").exists():
        raise SystemExit(f"LFW not found at {root} (set FACEVERIFY_LFW)")
    path = cache_path(pack)
    if not path.exists():
        keys = image_keys(root)
        pipe, threshold = floor_pipeline(pack, threads)
        e = embed_captures(
            pipe,
            [(k, root / k) for k in keys],
            threshold=threshold,
            sweep=SWEEP,
            choose="central",
            progress=stderr_progress(f"embedding LFW ({pack})", every=250),
        )
        save_embedded(
            path,
            e,
            pack=pack,
            detector_threshold=str(threshold),
            detector_floor=str(DETECTOR_FLOOR),
            face_choice="central",
            embedded_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
    e, meta = load_embedded(path)
    e = regate(e, QualityPolicy())  # the gate as it is now, not as it was when embedded
    people = [k.split("/", 1)[0] for k in e.keys]
    names = tuple(sorted(set(people)))
    pos = {n: i for i, n in enumerate(names)}
    identity = np.array([pos[p] for p in people], dtype=np.int64)
    return LFW(root, pack, e, names, identity, float(meta["detector_threshold"]))


if __name__ == "__main__":
    lfw = load_lfw()
    e = lfw.embedded
    print(f"{len(e.keys)} images, {len(lfw.names)} people, {int((~e.acquired).sum())} without a face")
