"""The fast paths of revisions 3 and 4, on the real models: each must compute what the slow one did.

- the PRelu rewrite and the dynamic detector input are exact (same outputs);
- SFace's int8 form (revision 4) is written by our own code from the manifest's ranges
  into the pinned file, runs in onnxruntime's int8 kernels, and stays within
  quantization error of the float graph; revision 5 writes its PRelus as convolutions
  (the same function to float rounding);
- a probe embeds its mirror view only near the threshold and then decides as
  both views would;
- a frame sample embeds only when read;
- the tracker follows a face between frames and still refuses a second face.
"""

from __future__ import annotations

import json
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from faceverify import MultipleFacesError, NoFaceError
from faceverify._models._install import sha256_file
from faceverify._models._repair import fold_constant_dequantize, insert_qdq, int8_activations, prepare_int8
from faceverify.hazmat import (
    FacePipeline,
    FaceTracker,
    ModelPack,
    OnnxSession,
    cosine,
    load_image,
    measure,
)


def _face(pipeline: FacePipeline, path: Path, side: int) -> np.ndarray:
    """The face of a photo with a margin around it, ``side`` px square (as test_detect_align's)."""
    from PIL import Image

    image = load_image(path)
    x, y, w, h = pipeline.locate(image).box
    cx, cy, half = x + w / 2, y + h / 2, max(w, h)
    box = (int(cx - half), int(cy - half), int(cx + half), int(cy + half))
    return np.asarray(Image.fromarray(image).crop(box).resize((side, side)))


def _from_wheel(
    model_cache: Path,
    pack: ModelPack,
    name: str,
    target: Path,
    rewrites: tuple[str, ...],
    int8: dict[str, tuple[float, int]] | None = None,
    keep_float: tuple[str, ...] = (),
    int8_rewrites: tuple[str, ...] = (),
) -> Path:
    source = pack.file(name).source
    assert source is not None
    raw = target.with_name("raw-" + target.name)
    raw.write_bytes(zipfile.ZipFile(model_cache / "downloads" / source.filename).read(source.member))
    fold_constant_dequantize(
        raw, target, rewrites=rewrites, int8=int8, keep_float=keep_float, int8_rewrites=int8_rewrites
    )
    return target


def _kernels(path: Path, blob: np.ndarray) -> Counter[str]:
    """The op types onnxruntime's profiler saw run for one input."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.enable_profiling = True
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    session.run(None, {session.get_inputs()[0].name: blob})
    trace = Path(session.end_profiling())
    events = json.loads(trace.read_text("utf-8"))
    trace.unlink()
    return Counter(
        e["args"]["op_name"] for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")
    )


def test_the_prelu_rewrites_give_the_same_embeddings(
    model_cache: Path, pack: ModelPack, pipeline: FacePipeline, samples: dict[str, Path], tmp_path: Path
) -> None:
    name = pack.recognizer.file
    plain, rewritten, maxed = (
        OnnxSession(_from_wheel(model_cache, pack, name, tmp_path / f"{i}.onnx", rewrites), threads=1)
        for i, rewrites in enumerate(((), ("prelu",), ("prelu-max",)))
    )
    for sample in ("obama", "biden"):
        image = load_image(samples[sample])
        crop = pipeline.aligner.align(image, pipeline.locate(image).landmarks)
        blob = np.ascontiguousarray(crop.astype(np.float32).transpose(2, 0, 1)[None])
        np.testing.assert_allclose(rewritten.run(blob)[0], plain.run(blob)[0], rtol=0, atol=1e-5)
        np.testing.assert_allclose(maxed.run(blob)[0], plain.run(blob)[0], rtol=0, atol=1e-5)


def test_the_max_form_of_prelu_is_the_same_int8_graph_bit_for_bit(
    model_cache: Path, pack: ModelPack, pipeline: FacePipeline, samples: dict[str, Path], tmp_path: Path
) -> None:
    """Revision 4's int8 SFace wrote PRelu as Max(x, slope x) where every slope is at most 1:
    the same embeddings, to the bit, as the four-op form the ranges were calibrated on."""
    name = pack.recognizer.file
    spec = pack.file(name).int8
    assert spec is not None
    built = {
        rewrite: _from_wheel(
            model_cache, pack, name, tmp_path / f"{rewrite}.onnx", (rewrite,), spec.ranges(), spec.keep_float
        )
        for rewrite in ("prelu", "prelu-max")
    }
    four, two = OnnxSession(built["prelu"], threads=1), OnnxSession(built["prelu-max"], threads=1)
    for sample in ("obama", "obama2", "biden"):
        image = load_image(samples[sample])
        crop = pipeline.aligner.align(image, pipeline.locate(image).landmarks)
        for view in (crop, crop[:, ::-1]):
            blob = np.ascontiguousarray(view.astype(np.float32).transpose(2, 0, 1)[None])
            np.testing.assert_array_equal(two.run(blob)[0], four.run(blob)[0])
    ran = _kernels(built["prelu-max"], blob)
    # 25 of SFace's 27 PRelus have every slope <= 1; the first two layers keep the four-op form.
    assert ran["Max"] == 25 and ran["Relu"] + ran["FusedConv"] >= 2 and ran["Min"] == 2


def test_prelu_as_convolutions_computes_prelu_after_a_convolution_and_elsewhere() -> None:
    """a·y + Relu((1-a)·y) for slopes <= 1, a·y + (1-a)·Relu(y) otherwise, on a float convolution
    (its weights scaled) or any other tensor (1x1 depthwise convolutions): PRelu, to float
    rounding; a slope computed in the graph is left a PRelu."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from faceverify._models._repair import prelu_as_convolutions

    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 4, 6, 6)).astype(np.float32)

    def model(
        slope: np.ndarray, group: int, *, constant: bool = True, outputs: tuple[str, ...] = ("out",)
    ) -> onnx.ModelProto:
        weight = rng.normal(size=(4, 4 // group, 3, 3)).astype(np.float32)
        inits = [
            numpy_helper.from_array(weight, "w"),
            numpy_helper.from_array(rng.normal(size=4).astype(np.float32), "b"),
        ]
        inits.append(numpy_helper.from_array(slope.reshape(4, 1, 1), "slope_raw"))
        nodes = [
            helper.make_node("Conv", ["x", "w", "b"], ["y"], group=group, pads=[1, 1, 1, 1]),
            helper.make_node("PRelu", ["y", "slope_raw" if constant else "slope"], ["z"]),
            helper.make_node("PRelu", ["x", "slope_raw"], ["x2"]),  # not a convolution's output
            helper.make_node("Add", ["z", "x2"], ["out"]),
        ]
        if not constant:
            nodes.insert(0, helper.make_node("Identity", ["slope_raw"], ["slope"]))
        io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4, 6, 6]) for n in ("x", *outputs)]
        m = helper.make_model(
            helper.make_graph(nodes, "g", io[:1], io[1:], inits), opset_imports=[helper.make_opsetid("", 13)]
        )
        m.ir_version = 8
        return m

    def run(m: onnx.ModelProto) -> np.ndarray:
        session = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        out: np.ndarray = np.stack(session.run(None, {"x": x}))
        return out

    for slope, group in (
        (np.array([0.25, -0.5, 1.0, 0.0], np.float32), 1),
        (np.array([0.25, -0.5, 1.0, 0.0], np.float32), 4),  # depthwise
        (np.array([0.25, 1.12, -0.5, 0.7], np.float32), 1),  # a slope above 1
        (np.array([0.25, 1.12, -0.5, 0.7], np.float32), 4),
    ):
        original = model(slope, group)
        want = run(original)
        prelu_as_convolutions(original)
        ops = Counter(n.op_type for n in original.graph.node)
        assert ops["PRelu"] == 0 and ops["Conv"] >= 4, ops
        np.testing.assert_allclose(run(original), want, rtol=1e-5, atol=1e-5)
    # A convolution whose output is also the graph's keeps computing it.
    exposed = model(np.array([0.25, -0.5, 1.0, 0.0], np.float32), 4, outputs=("out", "y"))
    want = run(exposed)
    prelu_as_convolutions(exposed)
    assert Counter(n.op_type for n in exposed.graph.node)["PRelu"] == 0
    np.testing.assert_allclose(run(exposed), want, rtol=1e-5, atol=1e-5)
    computed = model(np.array([0.25, -0.5, 1.0, 0.0], np.float32), 1, constant=False)
    want = run(computed)
    prelu_as_convolutions(computed)
    assert Counter(n.op_type for n in computed.graph.node)["PRelu"] == 1  # the computed slope's
    np.testing.assert_allclose(run(computed), want, rtol=1e-5, atol=1e-5)


def test_sface_with_prelu_as_convolutions_embeds_as_the_elementwise_int8_graph(
    model_cache: Path, pack: ModelPack, pipeline: FacePipeline, samples: dict[str, Path], tmp_path: Path
) -> None:
    """Revision 5's rewrite moves SFace's embeddings by float rounding through the int8
    quantization steps (LFW: cosine >= 0.9995 with revision 4's, docs/performance.md)."""
    name = pack.recognizer.file
    spec = pack.file(name).int8
    assert spec is not None
    ranges, keep = spec.ranges(), spec.keep_float
    convs = OnnxSession(
        _from_wheel(model_cache, pack, name, tmp_path / "c.onnx", (), ranges, keep, spec.rewrites), threads=1
    )
    plain = OnnxSession(
        _from_wheel(model_cache, pack, name, tmp_path / "p.onnx", (), ranges, keep), threads=1
    )
    differ = []
    for sample in ("obama", "obama2", "biden"):
        image = load_image(samples[sample])
        crop = pipeline.aligner.align(image, pipeline.locate(image).landmarks)
        for view in (crop, crop[:, ::-1]):
            blob = np.ascontiguousarray(view.astype(np.float32).transpose(2, 0, 1)[None])
            a, b = convs.run(blob)[0][0], plain.run(blob)[0][0]
            assert cosine(a / np.linalg.norm(a), b / np.linalg.norm(b)) > 0.999
            differ.append(not np.array_equal(a, b))
    assert any(differ)  # the rounding does differ: why revision 5 was calibrated afresh


def test_the_dynamic_detector_input_runs_any_multiple_of_32_and_640_as_before(
    model_cache: Path, pack: ModelPack, tmp_path: Path
) -> None:
    fixed = OnnxSession(
        _from_wheel(model_cache, pack, pack.detector.file, tmp_path / "fixed.onnx", ()), threads=1
    )
    dynamic = OnnxSession(
        _from_wheel(model_cache, pack, pack.detector.file, tmp_path / "dyn.onnx", ("dynamic-input",)),
        threads=1,
    )
    blob = np.random.default_rng(0).uniform(0, 255, (1, 3, 640, 640)).astype(np.float32)
    for a, b in zip(fixed.run(blob), dynamic.run(blob), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(Exception):  # noqa: B017 - onnxruntime's own error type: the fixed graph refuses
        fixed.run(blob[:, :, :320, :256])
    small = dynamic.run(np.ascontiguousarray(blob[:, :, :320, :256]))
    assert small[0].shape == (1, (320 // 8) * (256 // 8), 1)


def test_a_probe_embeds_the_mirror_only_near_the_threshold_and_decides_as_both_views(
    pipeline: FacePipeline, pack: ModelPack, samples: dict[str, Path]
) -> None:
    band = pack.recognizer.mirror_band
    assert band is not None and pipeline.mirror_band == band
    reference = pipeline.sample(samples["obama"], policy=None).embedding
    for name in ("obama2", "obama3", "biden"):
        full = cosine(pipeline.sample(samples[name], policy=None).embedding, reference)
        for threshold in (full - 2 * band, full - band / 2, full + band / 2, full + 2 * band, 0.475):
            probe = pipeline.probe(samples[name], policy=None)
            assert probe.views == 1
            score = probe.score(reference, threshold)
            if abs(score - threshold) <= band or probe.views == 2:
                assert probe.views == 2 and score == pytest.approx(full, abs=1e-6)
            assert (score >= threshold) == (full >= threshold)
            np.testing.assert_allclose(
                probe.embedding, pipeline.sample(samples[name], policy=None).embedding, atol=1e-6
            )


def test_a_frame_sample_embeds_only_when_read(pipeline: FacePipeline, samples: dict[str, Path]) -> None:
    image = load_image(samples["obama"])
    face = pipeline.locate(image)
    crop = pipeline.aligner.align(image, face.landmarks)
    sample = pipeline.frame_sample(face, crop, measure(image, face, crop))
    assert not sample.embedded
    embedding = sample.embedding
    assert sample.embedded and sample.embedding is embedding
    np.testing.assert_allclose(embedding, pipeline.sample(image, policy=None).embedding, atol=1e-6)


def _shifted(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    out = np.zeros_like(image)
    h, w = image.shape[:2]
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
        max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)
    ]
    return out


def test_the_tracker_follows_a_moving_face_and_still_refuses_a_second_one(
    pipeline: FacePipeline, samples: dict[str, Path]
) -> None:
    face = _face(pipeline, samples["obama"], 320)
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[80:400, 40:360] = face
    tracker = FaceTracker(pipeline, full_every=3)
    for step in range(6):
        moved = _shifted(frame, 6 * step, 3 * step)
        tracked = tracker.locate(moved)
        full = pipeline.locate(moved)
        assert np.linalg.norm(tracked.landmarks - full.landmarks, axis=1).max() < 0.15 * full.interocular
    # A second face of comparable size steps in: refused by the next whole-frame detection.
    both = frame.copy()
    both[100:400, 340:640] = _face(pipeline, samples["biden"], 300)
    tracker.reset()
    tracker.locate(frame)
    with pytest.raises(MultipleFacesError):
        for _ in range(3):
            tracker.locate(both)
    tracker.reset()
    tracker.locate(frame)
    # A face that leaves is lost, then no face at all is an error as in locate().
    with pytest.raises(NoFaceError):
        tracker.locate(np.full_like(frame, 128))


def test_sface_is_written_in_int8_from_the_manifest_and_runs_in_int8_kernels(
    model_cache: Path, pack: ModelPack, pipeline: FacePipeline, samples: dict[str, Path], tmp_path: Path
) -> None:
    spec = pack.file(pack.recognizer.file).int8
    assert spec is not None and dict(spec.calibration)["method"].startswith("percentiles")
    name = pack.recognizer.file
    ranges, rewrites = spec.ranges(), pack.file(name).rewrites
    built = _from_wheel(
        model_cache, pack, name, tmp_path / "int8.onnx", rewrites, ranges, spec.keep_float, spec.rewrites
    )
    assert sha256_file(built) == pack.file(name).sha256  # deterministic: the pinned file, byte for byte
    plain = _from_wheel(model_cache, pack, name, tmp_path / "float.onnx", ("prelu",))
    image = load_image(samples["obama"])
    crop = pipeline.aligner.align(image, pipeline.locate(image).landmarks)
    blob = np.ascontiguousarray(crop.astype(np.float32).transpose(2, 0, 1)[None])
    ran, ran_float = _kernels(built, blob), _kernels(plain, blob)
    # Every convolution and the fully connected layer run as int8 kernels but those the
    # manifest keeps in float32 (the first convolution and the depthwise ones).
    floats = len(spec.keep_float)
    assert spec.keep_float[0] == "conv_1_batchnorm" and floats < 27 and ran_float["Conv"] == 27
    assert ran["QLinearConv"] == 27 - floats and ran["QGemm"] == 1 and ran["Gemm"] == 0
    # Revision 5: each of the 27 PRelus runs as two or three convolutions (prelu-convolutions),
    # none as an elementwise op.
    assert spec.rewrites == ("prelu-convolutions",)
    assert ran["PRelu"] == ran["Max"] == ran["Min"] == 0
    assert 2 * 27 <= ran["Conv"] + ran["FusedConv"] <= 3 * 27
    int8, fp32 = OnnxSession(built, threads=1), OnnxSession(plain, threads=1)
    for sample in ("obama", "obama2", "biden"):
        image = load_image(samples[sample])
        crop = pipeline.aligner.align(image, pipeline.locate(image).landmarks)
        blob = np.ascontiguousarray(crop.astype(np.float32).transpose(2, 0, 1)[None])
        a, b = int8.run(blob)[0][0], fp32.run(blob)[0][0]
        # quantization moves the embedding a little, and only a little
        assert 0.97 < cosine(a / np.linalg.norm(a), b / np.linalg.norm(b)) < 1.0


def test_int8_ranges_made_for_another_graph_are_refused(
    model_cache: Path, pack: ModelPack, tmp_path: Path
) -> None:
    import onnx

    spec = pack.file(pack.recognizer.file).int8
    assert spec is not None
    plain = _from_wheel(model_cache, pack, pack.recognizer.file, tmp_path / "f.onnx", ("prelu",))
    model = onnx.load(str(plain))
    prepare_int8(model)
    ranges = spec.ranges()
    assert sorted(int8_activations(model, spec.keep_float)) == sorted(ranges)
    missing = dict(list(ranges.items())[1:])
    extra = {**ranges, "not-a-tensor": (0.1, 0)}
    for bad, keep in ((missing, spec.keep_float), (extra, spec.keep_float), (ranges, ())):
        with pytest.raises(ValueError, match="do not name this graph's int8 tensors"):
            insert_qdq(model, bad, keep_float=keep)
    with pytest.raises(ValueError, match="do not name this graph's int8 tensors"):
        insert_qdq(model, ranges, keep_float=(*spec.keep_float, "not-an-op"))


def test_prelu_max_keeps_the_four_op_form_where_max_would_not_be_prelu() -> None:
    """Max(x, slope·x) is PRelu only for slopes <= 1 given as constants: a slope above 1, or one
    computed in the graph, is written as Relu(x) + slope·Min(x, 0); every form computes PRelu."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from faceverify._models._repair import rewrite_prelu_max

    def graph(slope: np.ndarray, *, constant: bool) -> onnx.ModelProto:
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 2, 2])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 2, 2])
        init = numpy_helper.from_array(slope, "slope_raw")
        nodes = [helper.make_node("Identity", ["slope_raw"], ["slope"])] if not constant else []
        nodes.append(helper.make_node("PRelu", ["x", "slope" if not constant else "slope_raw"], ["y"]))
        model = helper.make_model(
            helper.make_graph(nodes, "g", [x], [y], [init]), opset_imports=[helper.make_opsetid("", 13)]
        )
        model.ir_version = 8
        return model

    x = np.random.default_rng(0).normal(size=(1, 3, 2, 2)).astype(np.float32)
    for slope, constant, expected in (
        (np.array([[[0.25]], [[-0.5]], [[1.0]]], np.float32), True, "Max"),
        (np.array([[[0.25]], [[1.12]], [[0.5]]], np.float32), True, "Min"),
        (np.array([[[0.25]], [[-0.5]], [[1.0]]], np.float32), False, "Min"),
    ):
        model = graph(slope, constant=constant)
        rewrite_prelu_max(model)
        ops = [n.op_type for n in model.graph.node]
        assert "PRelu" not in ops and expected in ops, ops
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        want = np.where(x >= 0, x, slope[None] * x)
        np.testing.assert_array_equal(session.run(None, {"x": x})[0], want)
