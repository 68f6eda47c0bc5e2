"""Bring-your-own insightface packs, on a pack the test assembles from files we can obtain.

insightface's own packs (buffalo_l: SCRFD det_10g + ArcFace w600k_r50) cannot be
obtained here (no registry ships them). The pack built here puts the default
pack's SFace file in the recognizer's place, routed through
``insightface.model_zoo`` (as ``ArcFaceONNX``) with its correct pre-processing
from the manifest, and YuNet (faceverify's own adapter) as the detector. The
SCRFD adapter runs on ``SCRFDLayoutYuNet`` (see ``test_scrfd_adapter_*``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from faceverify import LicenceNotAcceptedError, ModelError, ModelIntegrityError
from faceverify.hazmat import FacePipeline, ModelPack, compare_with, cosine, load_image

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
        "detector": {"kind": "yunet", "file": pack.detector.file, "input_size": 640, "score_threshold": 0.6},
        "recognizer": {
            "kind": "insightface",
            "file": pack.recognizer.file,
            "dim": 128,
            # SFace normalises inside its graph: raw 0..255 RGB. model_zoo would guess 127.5/127.5.
            "input": {"channels": "RGB", "mean": 0.0, "std": 1.0, "size": 112},
            "alignment": "arcface-5pt",
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
    assert type(byo_pipeline.embedder._model).__name__ == "ArcFaceONNX"  # type: ignore[attr-defined]
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


def test_model_zoo_guesses_would_be_wrong(
    byo: Path, pipeline: FacePipeline, samples: dict[str, Path]
) -> None:
    """Why pre-processing comes from the manifest: model_zoo's own guess for SFace is 127.5/127.5."""
    from insightface.model_zoo import model_zoo

    guessed = model_zoo.get_model(str(byo / "sface-2021dec.onnx"), providers=["CPUExecutionProvider"])
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
