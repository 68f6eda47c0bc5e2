"""Bring-your-own insightface packs, on a pack the test assembles from files we can obtain.

insightface's own packs (buffalo_l: SCRFD det_10g + ArcFace w600k_r50) cannot be
obtained here (no registry ships them). The pack built here puts the default
pack's SFace file in the recognizer's place, routed through
``insightface.model_zoo`` (as ``ArcFaceONNX``) with its correct pre-processing
from the manifest, and YuNet (faceverify's own adapter) as the detector. The
SCRFD adapter runs on model_zoo's own ``SCRFD`` class, fed a YuNet graph whose
outputs the test rewrites into SCRFD's layout (``scrfd_layout_yunet``): real
weights and model_zoo's real decoding, though not SCRFD's weights.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import faceverify
from faceverify import LicenceNotAcceptedError, ModelError, ModelIntegrityError, NoFaceError
from faceverify.hazmat import (
    FacePipeline,
    MirroredEmbedder,
    ModelPack,
    YuNetDetector,
    compare_with,
    cosine,
    load_image,
)

pytest.importorskip("insightface")

from faceverify._models._insightface import (
    InsightFaceDetector,
    load_insightface_pack,
)

NON_COMMERCIAL = {
    "spdx": "LicenseRef-insightface-noncommercial",
    "restricted": True,
    "notice": "insightface's pretrained models are for non-commercial research purposes only.",
}


_SPEC = json.loads((Path(faceverify.__file__).parent / "_models" / "packs" / "yunet-sface.json").read_text())
DEFAULT_DETECTOR = {k: v for k, v in _SPEC["detector"].items() if k != "kind"}


def assemble(directory: Path, model_cache: Path, pack: ModelPack, **overrides: Any) -> Path:
    """A directory in insightface's layout: model files beside a manifest."""
    directory.mkdir(parents=True, exist_ok=True)
    for f in pack.files:
        shutil.copyfile(model_cache / "packs" / pack.id / f.name, directory / f.name)
    manifest: dict[str, Any] = {
        "id": "byo-sface",
        "title": "SFace through insightface's model_zoo, YuNet detector",
        "licence": NON_COMMERCIAL,
        "files": [{"name": f.name, "sha256": f.sha256, "size": f.size} for f in pack.files],
        # The default pack's own detector settings (revision 3: small canvas + refinement).
        "detector": {"kind": "yunet", **DEFAULT_DETECTOR},
        "recognizer": {
            "kind": "insightface",
            "file": pack.recognizer.file,
            "dim": 128,
            # SFace normalises inside its graph: raw 0..255 RGB. model_zoo would guess 127.5/127.5.
            "input": {"channels": "RGB", "mean": 0.0, "std": 1.0, "size": 112},
            "alignment": "arcface-5pt",
            "mirror": True,
        },
        "operating_points": [
            {
                "name": "default",
                "threshold": 0.363,
                "fmr": 1e-3,
                "fmr_measured": 1e-3,
                "fmr_upper": 1e-3,
                "fnmr": 0.01,
                "dataset": "test fixture (not a calibration)",
                "genuine_pairs": 0,
                "impostor_pairs": 0,
            }
        ],
    }
    manifest.update(overrides)
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


@pytest.fixture(scope="module")
def byo(tmp_path_factory: pytest.TempPathFactory, model_cache: Path, pack: ModelPack) -> Path:
    return assemble(tmp_path_factory.mktemp("byo") / "pack", model_cache, pack)


def test_licence_must_be_acknowledged_before_anything_loads(byo: Path) -> None:
    with pytest.raises(LicenceNotAcceptedError, match="accept_licence=True"):
        load_insightface_pack(byo)
    # In a fresh process: refused before insightface is even imported.
    code = (
        "import sys\n"
        "from faceverify._models._insightface import load_insightface_pack\n"
        "from faceverify import LicenceNotAcceptedError\n"
        "try:\n"
        f"    load_insightface_pack({str(byo)!r})\n"
        "except LicenceNotAcceptedError:\n"
        "    print('refused', 'insightface' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "refused False"


def test_default_path_never_imports_insightface(model_cache: Path, samples: dict[str, Path]) -> None:
    code = (
        "import sys\n"
        "from faceverify.hazmat import load_pipeline\n"
        f"p = load_pipeline(cache={str(model_cache)!r})\n"
        f"p.sample({str(samples['obama'])!r}, policy=None)\n"
        "print(sorted(m for m in ('insightface', 'cv2', 'skimage', 'scipy', 'onnx') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_recognizer_through_model_zoo_matches_the_default_pipeline(
    byo: Path, pipeline: FacePipeline, samples: dict[str, Path]
) -> None:
    byo_pipeline, byo_pack = load_insightface_pack(byo, accept_licence=True)
    assert isinstance(byo_pipeline.embedder, MirroredEmbedder)  # the manifest asks for mirror views
    assert type(byo_pipeline.embedder.inner._model).__name__ == "ArcFaceONNX"  # type: ignore[attr-defined]
    assert byo_pack.licence.restricted and byo_pack.id == "byo-sface"
    for name in ("obama", "obama2", "biden"):
        ours = pipeline.sample(samples[name], policy=None).embedding
        theirs = byo_pipeline.sample(samples[name], policy=None).embedding
        assert theirs.shape == (128,)
        assert cosine(ours, theirs) > 0.9999
    same = compare_with(byo_pipeline, byo_pack, samples["obama"], samples["obama2"])
    other = compare_with(byo_pipeline, byo_pack, samples["obama"], samples["biden"])
    assert same.match and not other.match
    assert same.operating_point.name == "default"


def pipeline_pack_file() -> str:
    return str(_SPEC["recognizer"]["file"])


def test_model_zoo_guesses_would_be_wrong(
    model_cache: Path, pack: ModelPack, pipeline: FacePipeline, samples: dict[str, Path], tmp_path: Path
) -> None:
    """Why pre-processing comes from the manifest: model_zoo's own guess for SFace is 127.5/127.5.

    model_zoo guesses from the first nodes of the graph; SFace as shipped (folded to float32,
    its weight reshapes first) reads as a 127.5/127.5 model. (Revision 4's int8 file computes
    the reshapes ahead, so its first nodes happen to lead model_zoo to the right guess.)
    """
    import zipfile

    from insightface.model_zoo import model_zoo

    from faceverify._models._repair import fold_constant_dequantize

    source = pack.file(pipeline_pack_file()).source
    assert source is not None
    raw, shipped = tmp_path / "raw.onnx", tmp_path / "sface.onnx"
    raw.write_bytes(zipfile.ZipFile(model_cache / "downloads" / source.filename).read(source.member))
    fold_constant_dequantize(raw, shipped, rewrites=("prelu",))
    guessed = model_zoo.get_model(str(shipped), providers=["CPUExecutionProvider"])
    assert (guessed.input_mean, guessed.input_std) == (127.5, 127.5)
    img = load_image(samples["obama"])
    crop = pipeline.aligner.align(img, pipeline.locate(img).landmarks)
    wrong = guessed.get_feat([np.ascontiguousarray(crop[:, :, ::-1])]).reshape(-1)  # get_feat takes BGR
    wrong = wrong / np.linalg.norm(wrong)
    right = pipeline.embedder.embed([crop])[0]
    assert cosine(right, wrong.astype(np.float32)) < 0.5


def test_tampered_file_is_refused(tmp_path: Path, model_cache: Path, pack: ModelPack) -> None:
    directory = assemble(tmp_path / "pack", model_cache, pack)
    target = directory / pack.recognizer.file
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 1
    target.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="SHA-256"):
        load_insightface_pack(directory, accept_licence=True)


def test_manifest_is_required_and_preprocessing_never_guessed(
    tmp_path: Path, model_cache: Path, pack: ModelPack
) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    with pytest.raises(ModelError, match="needs a manifest"):
        load_insightface_pack(bare, accept_licence=True)
    no_pre = assemble(
        tmp_path / "nopre",
        model_cache,
        pack,
        detector={
            "kind": "insightface",
            "file": pack.detector.file,
            "input_size": 640,
            "score_threshold": 0.5,
        },
    )
    with pytest.raises(ModelError, match="never guessed"):
        load_insightface_pack(no_pre, accept_licence=True)
    unknown = assemble(
        tmp_path / "unknown",
        model_cache,
        pack,
        detector={"kind": "mtcnn", "file": pack.detector.file, "input_size": 640, "score_threshold": 0.5},
    )
    with pytest.raises(ModelError, match="mtcnn"):
        load_insightface_pack(unknown, accept_licence=True)


def test_load_pipeline_refuses_an_insightface_pack(byo: Path) -> None:
    from faceverify._models._insightface import parse_insightface_manifest
    from faceverify.hazmat import load_pipeline

    pack = parse_insightface_manifest(json.loads((byo / "manifest.json").read_text()), byo)
    with pytest.raises(ModelError, match="load_insightface_pack"):
        load_pipeline(pack, accept_licence=True)


# --- the SCRFD/RetinaFace detector adapter ------------------------------------------------------


def scrfd_layout_yunet(source: Path, target: Path) -> None:
    """YuNet's graph with its outputs re-expressed in SCRFD's layout, so that insightface's
    model_zoo routes it to its own ``SCRFD`` class and decodes it with its own code.

    SCRFD with 9 outputs: scores, box distances and keypoint offsets for strides 8, 16, 32,
    two anchors per cell, all in units of the stride. YuNet: ``cx = (col + b0) * s``,
    ``w = exp(b2) * s``, so the distances to the cell's corner are ``exp(b2)/2 - b0`` (left)
    and ``exp(b2)/2 + b0`` (right), likewise for y; its keypoint offsets are already in
    SCRFD's form. Each cell is written twice (SCRFD's second anchor); NMS drops the copy.
    The input is YuNet's own: BGR, 0..255 (the manifest says so: mean 0, std 1, BGR).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(source))
    g = model.graph
    nodes, inits = [], []

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value), name=name))
        return name

    def node(op, inputs, name, **attrs):
        nodes.append(helper.make_node(op, inputs, [name], **attrs))
        return name

    const("c_zero", np.float32(0))
    const("c_one", np.float32(1))
    const("c_half", np.float32(0.5))
    const("ax_last", np.array([-1], np.int64))
    const("i0", np.array([0], np.int64))
    const("i2", np.array([2], np.int64))
    const("i4", np.array([4], np.int64))
    outs = {}
    for s in (8, 16, 32):

        def twice(x, k, tag):
            # (1, N, k) -> (N, 1, k) -> concat to (N, 2, k) -> (2N, k): anchor 2i and 2i+1 both cell i
            t = node("Transpose", [x], f"{tag}_t", perm=[1, 0, 2])
            c = node("Concat", [t, t], f"{tag}_c", axis=1)
            const(f"{tag}_shape", np.array([-1, k], np.int64))
            return node("Reshape", [c, f"{tag}_shape"], f"{tag}_r")

        cls = node("Clip", [f"cls_{s}", "c_zero", "c_one"], f"cls{s}_c")
        obj = node("Clip", [f"obj_{s}", "c_zero", "c_one"], f"obj{s}_c")
        score = node("Sqrt", [node("Mul", [cls, obj], f"m{s}")], f"score{s}")
        outs[f"score_{s}"] = node("Identity", [twice(score, 1, f"sc{s}")], f"score_{s}")
        b = f"bbox_{s}"
        c = node("Slice", [b, "i0", "i2", "ax_last"], f"b{s}_c")
        e = node(
            "Mul",
            [node("Exp", [node("Slice", [b, "i2", "i4", "ax_last"], f"b{s}_wh")], f"b{s}_e"), "c_half"],
            f"b{s}_h",
        )
        dist = node(
            "Concat", [node("Sub", [e, c], f"b{s}_lt"), node("Add", [e, c], f"b{s}_rb")], f"b{s}_d", axis=-1
        )
        outs[f"bbox_{s}"] = node("Identity", [twice(dist, 4, f"bb{s}")], f"bboxes_{s}")
        outs[f"kps_{s}"] = node("Identity", [twice(f"kps_{s}", 10, f"kp{s}")], f"kpss_{s}")
    g.node.extend(nodes)
    g.initializer.extend(inits)
    del g.output[:]
    for kind, k in (("score", 1), ("bbox", 4), ("kps", 10)):
        for s in (8, 16, 32):
            g.output.append(
                helper.make_tensor_value_info(outs[f"{kind}_{s}"], TensorProto.FLOAT, [f"n{s}", k])
            )
    onnx.checker.check_model(model)
    onnx.save(model, str(target))


@pytest.fixture(scope="module")
def scrfd_pack(tmp_path_factory: pytest.TempPathFactory, model_cache: Path, pack: ModelPack) -> Path:
    """Both models through model_zoo: the SCRFD-layout YuNet as the detector, SFace as ArcFace."""
    directory = tmp_path_factory.mktemp("scrfd") / "pack"
    assemble(directory, model_cache, pack)
    det = directory / "det_yunet_scrfd.onnx"
    scrfd_layout_yunet(directory / pack.detector.file, det)
    files = json.loads((directory / "manifest.json").read_text())["files"]
    files.append(
        {"name": det.name, "sha256": hashlib.sha256(det.read_bytes()).hexdigest(), "size": det.stat().st_size}
    )
    return assemble(
        directory,
        model_cache,
        pack,
        id="byo-scrfd",
        files=files,
        detector={
            "kind": "insightface",
            "file": det.name,
            "input_size": 640,
            "score_threshold": 0.6,
            "nms_iou": 0.3,
            "input": {"channels": "BGR", "mean": 0.0, "std": 1.0},
        },
    )


def test_scrfd_adapter_on_model_zoos_own_scrfd(
    scrfd_pack: Path, pipeline: FacePipeline, samples: dict[str, Path]
) -> None:
    byo_pipeline, byo_pack = load_insightface_pack(scrfd_pack, accept_licence=True)
    zoo_detector = byo_pipeline.detector._model  # type: ignore[attr-defined]
    assert type(zoo_detector).__name__ == "SCRFD" and zoo_detector.use_kps
    # model_zoo's SCRFD runs on the photo fitted to its 640 px input, as YuNet did up to revision 2
    # (revision 3 refines the landmarks on a crop, which moves them by a few pixels more).
    session = pipeline.detector._session  # type: ignore[attr-defined]
    plain = YuNetDetector(session, score_threshold=0.6, size=640, upscale=True)
    for name in ("obama", "obama2", "biden"):
        img = load_image(samples[name])
        (theirs,) = byo_pipeline.detector.detect(img)
        (ours,) = plain.detect(img)
        # model_zoo resizes with OpenCV, faceverify with Pillow: a few pixels apart, same face.
        assert abs(theirs.score - ours.score) < 0.01
        assert np.abs(theirs.landmarks - ours.landmarks).max() < 5
        assert np.abs(np.subtract(theirs.box, ours.box)).max() < 6
        e_theirs = byo_pipeline.sample(img, policy=None).embedding
        e_ours = pipeline.sample(img, policy=None).embedding
        assert cosine(e_theirs, e_ours) > 0.95  # same photo: genuine pairs score ~0.75, impostors < 0.35
    assert compare_with(byo_pipeline, byo_pack, samples["obama"], samples["obama3"]).match
    assert not compare_with(byo_pipeline, byo_pack, samples["obama2"], samples["biden"]).match
    with pytest.raises(NoFaceError):
        byo_pipeline.sample(np.full((300, 300, 3), 128, np.uint8), policy=None)


class RecordingDetector:
    """Stands in for model_zoo's SCRFD where only the adapter's conversions are under test."""

    def __init__(self, det: np.ndarray, kps: np.ndarray | None) -> None:
        self.det, self.kps = det, kps
        self.input_mean = self.input_std = 0.0
        self.seen: np.ndarray | None = None

    def detect(self, img: np.ndarray, input_size: Any = None, max_num: int = 0) -> tuple[Any, Any]:
        self.seen = img
        return self.det, self.kps


def test_scrfd_adapter_converts_boxes_channels_and_threshold() -> None:
    from faceverify.hazmat import InputSpec

    det = np.array([[10, 20, 110, 140, 0.9], [200, 20, 260, 90, 0.3]], np.float32)
    kps = np.arange(20, dtype=np.float32).reshape(2, 5, 2)
    fake = RecordingDetector(det, kps)
    adapter = InsightFaceDetector(
        fake, spec=InputSpec("RGB", 127.5, 128.0), score_threshold=0.5, input_size=640, nms_iou=0.4
    )
    assert (fake.input_mean, fake.input_std) == (127.5, 128.0)  # from the manifest
    image = np.zeros((50, 60, 3), np.uint8)
    image[..., 0] = 255  # red in RGB
    faces = adapter.detect(image)
    assert fake.seen is not None and fake.seen[0, 0, 2] == 255  # handed over as BGR: swapRB makes it RGB
    assert len(faces) == 1  # the 0.3 face is under the manifest's threshold
    assert faces[0].box == (10.0, 20.0, 100.0, 120.0)
    assert faces[0].landmarks.shape == (5, 2) and faces[0].landmarks.dtype == np.float32
    with pytest.raises(ModelError, match="landmarks"):
        InsightFaceDetector(
            RecordingDetector(det, None),
            spec=InputSpec("RGB", 127.5, 128.0),
            score_threshold=0.5,
            input_size=640,
            nms_iou=0.4,
        ).detect(image)
    with pytest.raises(ModelError, match="not a detector"):
        InsightFaceDetector(
            object(), spec=InputSpec("RGB", 0, 1), score_threshold=0.5, input_size=640, nms_iou=0.4
        )
