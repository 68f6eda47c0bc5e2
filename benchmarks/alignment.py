"""Where the landmarks come from: detection scale and its effect on FNMR (why revision 2 upscales).

YuNet places its five landmarks from a stride-8 grid. On LFW's 250 px captures
the face is about 45 px between the eyes, and the landmarks move by several
pixels from one detection scale to another; the aligned crop moves with them.
For every LFW image this runs the default pack's detector on

- ``native``: the capture at its own size (revision 1, as OpenCV runs YuNet);
- ``2x``: the capture enlarged 2× (bicubic);
- ``fill``: enlarged to fill the 640 px input (2.56× here; revision 2);
- ``fill+mirror-det``: ``fill``, with the landmarks averaged with those found on
  the mirrored capture (one more detector run),

takes the central face (as ``_lfw.py``), aligns it, and embeds the crop and its
mirror image with SFace. Reported: FNMR at FMR 1e-4 and 1e-5 over all pairs,
pooled and per identity, for the crop alone and for crop + mirror.

    nice python benchmarks/alignment.py          # ~25 min on one core; --parts 2 to use two

Writes ``benchmarks/out/alignment.json`` and ``alignment.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _lfw import LFW_ROOT, OUT, image_keys
from improve import cross_pairs, summary, unit
from PIL import Image

from faceverify._calibrate import central_face
from faceverify.hazmat import (
    ArcFaceAligner,
    Face,
    OnnxEmbedder,
    OnnxSession,
    YuNetDetector,
    builtin_manifest,
    cache_dir,
    load_image,
    verified_paths,
)

VARIANTS = ("native", "2x", "fill", "fill+mirror-det")
#: Landmark order under a horizontal flip: the eyes swap, and the mouth corners.
MIRROR_ORDER = [1, 0, 2, 4, 3]
F32 = npt.NDArray[np.float32]


def _enlarged(image: npt.NDArray[np.uint8], scale: float) -> npt.NDArray[np.uint8]:
    h, w = image.shape[:2]
    size = (round(w * scale), round(h * scale))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BICUBIC))


def _landmarks(det: YuNetDetector, image: npt.NDArray[np.uint8], scale: float) -> F32 | None:
    """The central face's landmarks found on the capture enlarged ``scale`` times, in capture pixels."""
    big = image if scale == 1.0 else _enlarged(image, scale)
    faces = det.detect(big)
    if not faces:
        return None
    face: Face = central_face(faces, big.shape[1], big.shape[0])
    return (face.landmarks / scale).astype(np.float32)


def _mirror_landmarks(
    det: YuNetDetector, image: npt.NDArray[np.uint8], scale: float, near: F32
) -> F32 | None:
    """Landmarks found on the mirrored capture, mapped back; the face nearest ``near``."""
    w = image.shape[1]
    mirrored = np.ascontiguousarray(image[:, ::-1])
    big = mirrored if scale == 1.0 else _enlarged(mirrored, scale)
    faces = det.detect(big)
    if not faces:
        return None
    back = []
    for f in faces:
        pts = f.landmarks / scale
        pts = np.stack([w - 1 - pts[:, 0], pts[:, 1]], axis=1)[MIRROR_ORDER]
        back.append(pts.astype(np.float32))
    return min(back, key=lambda p: float(np.linalg.norm(p.mean(0) - near.mean(0))))


def embed_part(part: int, parts: int, out: Path) -> None:
    pack = builtin_manifest("yunet-sface")
    paths = verified_paths(pack, cache_dir())
    det = YuNetDetector(
        OnnxSession(paths[pack.detector.file], threads=1),
        score_threshold=pack.detector.score_threshold,
        size=pack.detector.input_size,
        upscale=False,  # scales are applied here, explicitly
    )
    sface = OnnxEmbedder(OnnxSession(paths[pack.recognizer.file], threads=1), pack.recognizer.input, dim=128)
    aligner = ArcFaceAligner(112)
    keys = image_keys()
    idx = list(range(part, len(keys), parts))
    emb = np.full((len(idx), len(VARIANTS), 2, 128), np.nan, np.float32)
    t0 = time.time()
    for k, i in enumerate(idx):
        image = load_image(LFW_ROOT / keys[i])
        fill = pack.detector.input_size / max(image.shape[:2])
        found = {
            "native": _landmarks(det, image, 1.0),
            "2x": _landmarks(det, image, 2.0),
            "fill": _landmarks(det, image, fill),
        }
        if found["fill"] is not None:
            back = _mirror_landmarks(det, image, fill, found["fill"])
            found["fill+mirror-det"] = None if back is None else (found["fill"] + back) / 2
        for v, name in enumerate(VARIANTS):
            lm = found.get(name)
            if lm is None:
                continue
            crop = aligner.align(image, lm)
            emb[k, v] = sface.embed([crop, np.ascontiguousarray(crop[:, ::-1])])
        if k % 500 == 0:
            print(f"part {part}: {k}/{len(idx)} {time.time() - t0:.0f}s", file=sys.stderr, flush=True)
    np.savez(out, idx=np.array(idx), embedding=emb)


def evaluate(emb: F32, identity: npt.NDArray[np.int64]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for v, name in enumerate(VARIANTS):
        keep = np.isfinite(emb[:, v]).all(axis=(1, 2))
        for views, e in (("crop", emb[:, v, 0]), ("crop+mirror", unit(emb[:, v, 0] + emb[:, v, 1]))):
            s = summary(cross_pairs(np.nan_to_num(e), np.nan_to_num(e), identity, keep))
            result[f"{name} | {views}"] = {"images": int(keep.sum()), **s}
            print(f"  {name} {views}: {s['1e-05']['fnmr']:.4f}", file=sys.stderr, flush=True)
    return result


def markdown(r: dict[str, Any]) -> str:
    lines = [
        "## Detection scale and views (LFW all pairs, one image per side, SFace)",
        "",
        "| landmarks from | views | images | FNMR @ FMR 1e-4 (pooled / per id) | @ 1e-5 | threshold @ 1e-5 |",
        "|---|---|---|---|---|---|",
    ]
    for key, s in r.items():
        name, views = key.split(" | ")
        a, b = (
            f"{p['fnmr'] * 100:.2f} / {p['fnmr_per_identity'] * 100:.2f} %" for p in (s["0.0001"], s["1e-05"])
        )
        lines.append(f"| {name} | {views} | {s['images']:,} | {a} | {b} | {s['1e-05']['threshold']:.4f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", type=int, default=1, help="processes to split the embedding pass over")
    ap.add_argument("--part", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    part_file = OUT / "alignment-part{}.npz"
    if args.part is not None:
        embed_part(args.part, args.parts, Path(str(part_file).format(args.part)))
        return
    me = [sys.executable, __file__, "--parts", str(args.parts), "--part"]
    workers = [subprocess.Popen([*me, str(p)]) for p in range(args.parts)]
    if any(w.wait() != 0 for w in workers):
        raise SystemExit("an embedding part failed")
    keys = image_keys()
    emb = np.full((len(keys), len(VARIANTS), 2, 128), np.nan, np.float32)
    for p in range(args.parts):
        with np.load(str(part_file).format(p)) as z:
            emb[z["idx"]] = z["embedding"]
    people = [k.split("/", 1)[0] for k in keys]
    pos = {n: i for i, n in enumerate(sorted(set(people)))}
    identity = np.array([pos[p] for p in people], dtype=np.int64)
    result = evaluate(emb, identity)
    (OUT / "alignment.json").write_text(json.dumps(result, indent=1, default=float) + "\n", encoding="utf-8")
    (OUT / "alignment.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))


if __name__ == "__main__":
    main()
