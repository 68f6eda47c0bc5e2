"""Detection, the one-face rule, the quality gate and alignment, on the real models.

Alignment is checked against insightface's ``norm_crop`` (the reference the
numpy aligner replaces) where insightface is installed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from faceverify import LowQualityError, MultipleFacesError, NoFaceError, QualityPolicy
from faceverify.hazmat import (
    ARCFACE_TEMPLATE,
    ArcFaceAligner,
    Face,
    FacePipeline,
    MirroredEmbedder,
    ModelPack,
    OnnxSession,
    YuNetDetector,
    cosine,
    load_image,
    similarity_transform,
    verified_paths,
)

PEOPLE = ("obama", "obama2", "obama3", "biden")


def face_crop(pipeline: FacePipeline, path: Path, side: int) -> np.ndarray:
    """The face of a photo with a margin around it, resized to ``side`` px square."""
    img = load_image(path)
    face = pipeline.locate(img)
    x, y, w, h = face.box
    cx, cy, half = x + w / 2, y + h / 2, max(w, h)
    box = (int(cx - half), int(cy - half), int(cx + half), int(cy + half))
    return np.asarray(Image.fromarray(img).crop(box).resize((side, side), Image.Resampling.BILINEAR))


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    h = max(left.shape[0], right.shape[0])
    canvas = np.full((h, left.shape[1] + right.shape[1], 3), 200, dtype=np.uint8)
    canvas[: left.shape[0], : left.shape[1]] = left
    canvas[: right.shape[0], left.shape[1] :] = right
    return canvas


# --- detection ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PEOPLE)
def test_detector_finds_one_face_with_ordered_landmarks(
    pipeline: FacePipeline, samples: dict[str, Path], name: str
) -> None:
    img = load_image(samples[name])
    faces = pipeline.detector.detect(img)
    assert len(faces) == 1
    face = faces[0]
    assert face.score >= pipeline.detector.score_threshold
    assert face.landmarks.shape == (5, 2) and face.landmarks.dtype == np.float32
    x, y, w, h = face.box
    assert x >= 0 and y >= 0 and x + w <= img.shape[1] and y + h <= img.shape[0]
    pts = face.landmarks
    inside = (pts[:, 0] >= x) & (pts[:, 0] <= x + w) & (pts[:, 1] >= y) & (pts[:, 1] <= y + h)
    assert inside.all()
    # ArcFace order: right eye, left eye (viewer's left first), nose, mouth right, mouth left.
    assert pts[0, 0] < pts[1, 0] and pts[3, 0] < pts[4, 0]
    assert pts[:2, 1].max() < pts[2, 1] < pts[3:, 1].min()
    assert face.interocular > 50


def _coarse_detector(pack: ModelPack, model_cache: Path) -> YuNetDetector:
    """The pack's detector on its small canvas only, without refining the landmarks."""
    session = OnnxSession(verified_paths(pack, model_cache)[pack.detector.file], threads=1)
    return YuNetDetector(
        session,
        score_threshold=pack.detector.score_threshold,
        size=pack.detector.input_size,
        canvas=pack.detector.canvas,
        min_scale=pack.detector.min_scale,
    )


def test_faces_are_refined_on_an_enlarged_crop_in_their_own_coordinates(
    pipeline: FacePipeline, pack: ModelPack, model_cache: Path, samples: dict[str, Path]
) -> None:
    assert pack.detector.canvas and pack.detector.refine is not None
    coarse = _coarse_detector(pack, model_cache)
    for name in PEOPLE:
        for img in (load_image(samples[name]), face_crop(pipeline, samples[name], 250)):
            (refined,), (found,) = pipeline.detector.detect(img), coarse.detect(img)
            # Refinement moves single points (the imprecision it is for), not the face.
            io = found.interocular
            assert np.linalg.norm(refined.landmarks.mean(axis=0) - found.landmarks.mean(axis=0)) < 0.15 * io
            assert abs(refined.interocular - io) < 0.15 * io
            assert refined.score == found.score  # the detector's threshold keeps its meaning
            x, y, w, h = refined.box
            assert min(x, y) >= -0.05 * w and x + w <= img.shape[1] * 1.05 and y + h <= img.shape[0] * 1.05


def test_refined_landmarks_agree_with_a_full_size_detection(
    pipeline: FacePipeline, pack: ModelPack, model_cache: Path, lfw: Path
) -> None:
    """The reason for ``refine`` (revision 3): on the small canvas alone YuNet's stride-8 grid
    places the points coarsely; on the enlarged crop they come close to where a detection on the
    capture enlarged to 640 px puts them (revision 2's, at a fraction of the cost)."""
    session = OnnxSession(verified_paths(pack, model_cache)[pack.detector.file], threads=1)
    full = YuNetDetector(session, score_threshold=pack.detector.score_threshold, size=640, upscale=True)
    coarse = _coarse_detector(pack, model_cache)
    people = sorted(p for p in lfw.iterdir() if p.is_dir())[::150][:30]

    def deviation(a: Face, b: Face) -> float:  # mean point distance in the 112 px aligned crop
        m = similarity_transform(a.landmarks, ARCFACE_TEMPLATE)
        return float(np.linalg.norm((b.landmarks - a.landmarks) @ m[:, :2].T, axis=1).mean())

    refined, plain = [], []
    for person in people:
        img = load_image(sorted(person.glob("*.jpg"))[0])
        ref, ours, small = (
            max(d.detect(img), key=lambda f: f.interocular) for d in (full, pipeline.detector, coarse)
        )
        refined.append(deviation(ref, ours))
        plain.append(deviation(ref, small))
    assert np.median(refined) < 0.9 * np.median(plain)


def test_plain_image_has_no_face(pipeline: FacePipeline) -> None:
    plain = np.full((480, 640, 3), (180, 140, 120), dtype=np.uint8)
    with pytest.raises(NoFaceError, match="no face"):
        pipeline.sample(plain, policy=QualityPolicy())


def test_noise_image_has_no_face(pipeline: FacePipeline) -> None:
    noise = np.random.default_rng(1).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    with pytest.raises(NoFaceError):
        pipeline.sample(noise, policy=None)
    assert pipeline.detector.detect(noise) == []


def test_two_comparable_faces_are_refused(pipeline: FacePipeline, samples: dict[str, Path]) -> None:
    both = side_by_side(
        face_crop(pipeline, samples["obama"], 320), face_crop(pipeline, samples["biden"], 300)
    )
    assert len(pipeline.detector.detect(both)) == 2
    with pytest.raises(MultipleFacesError) as info:
        pipeline.sample(both, policy=QualityPolicy())
    assert info.value.count == 2


def test_dominant_selection_takes_the_largest_face(pipeline: FacePipeline, samples: dict[str, Path]) -> None:
    obama = pipeline.sample(samples["obama2"], policy=None).embedding
    biden = pipeline.sample(samples["biden"], policy=None).embedding
    for big, small, expect in (("obama", "biden", obama), ("biden", "obama", biden)):
        both = side_by_side(face_crop(pipeline, samples[big], 360), face_crop(pipeline, samples[small], 260))
        with pytest.raises(MultipleFacesError):
            pipeline.sample(both, policy=None)
        chosen = pipeline.sample(both, policy=None, select="dominant")
        other = biden if expect is obama else obama
        assert cosine(chosen.embedding, expect) > 0.5
        assert cosine(chosen.embedding, other) < 0.35
        # The chosen face is the one on the left (the larger one).
        assert chosen.face.box[0] < 360


def test_small_bystander_does_not_make_a_capture_ambiguous(
    pipeline: FacePipeline, samples: dict[str, Path]
) -> None:
    scene = side_by_side(
        face_crop(pipeline, samples["obama"], 400), face_crop(pipeline, samples["biden"], 120)
    )
    assert len(pipeline.detector.detect(scene)) == 2
    sample = pipeline.sample(scene, policy=None)  # no error: the second face is far smaller
    assert sample.face.box[0] < 400


def test_face_selection_with_a_fake_detector(pipeline: FacePipeline) -> None:
    """The one-face rule is the pipeline's, whatever detector is plugged in."""

    def face(iod: float, x: float) -> Face:
        pts = np.array(
            [[x, 50], [x + iod, 50], [x + iod / 2, 70], [x + 5, 90], [x + iod - 5, 90]], np.float32
        )
        return Face(box=(x - 10, 30, iod + 20, 80), landmarks=pts, score=0.9)

    class Fake:
        score_threshold = 0.5

        def __init__(self, faces: list[Face]) -> None:
            self.faces = faces

        def detect(self, image: np.ndarray) -> list[Face]:
            return list(self.faces)

    img = np.zeros((200, 400, 3), np.uint8)
    for faces, ok in (
        ([], False),
        ([face(40, 10)], True),
        ([face(40, 10), face(30, 200)], False),
        ([face(40, 10), face(19, 200)], True),
    ):
        fp = FacePipeline(detector=Fake(faces), aligner=pipeline.aligner, embedder=pipeline.embedder)
        if ok:
            assert fp.locate(img).interocular == pytest.approx(40)
        elif not faces:
            with pytest.raises(NoFaceError):
                fp.locate(img)
        else:
            with pytest.raises(MultipleFacesError):
                fp.locate(img)
            assert fp.locate(img, select="dominant").interocular == pytest.approx(40)


# --- the quality gate ---------------------------------------------------------------------------


def _gate(pipeline: FacePipeline, image: np.ndarray) -> tuple[str, ...]:
    with pytest.raises(LowQualityError) as info:
        pipeline.sample(image, policy=QualityPolicy())
    assert info.value.reasons
    assert str(info.value).startswith("capture below quality minimums: ")
    return info.value.reasons


@pytest.mark.parametrize("name", PEOPLE)
def test_good_photos_pass_the_gate(pipeline: FacePipeline, samples: dict[str, Path], name: str) -> None:
    q = pipeline.sample(samples[name], policy=QualityPolicy()).quality
    assert QualityPolicy().reasons(q) == []


def test_blurred_face_is_refused_with_reason(pipeline: FacePipeline, samples: dict[str, Path]) -> None:
    img = Image.open(samples["obama"]).convert("RGB").filter(ImageFilter.GaussianBlur(12))
    reasons = _gate(pipeline, np.asarray(img))
    assert any(r.startswith("face blurred") for r in reasons)


def test_dark_face_is_refused_with_reason(pipeline: FacePipeline, samples: dict[str, Path]) -> None:
    dark = (load_image(samples["obama"]).astype(np.float32) * 0.12).astype(np.uint8)
    reasons = _gate(pipeline, dark)
    assert any(r.startswith("face too dark") for r in reasons)


def test_overexposed_face_is_refused_with_reason(pipeline: FacePipeline, samples: dict[str, Path]) -> None:
    img = load_image(samples["obama"]).astype(np.float32)
    bright = np.clip(img * 2.2 + 60, 0, 255).astype(np.uint8)
    try:
        reasons = _gate(pipeline, bright)
    except NoFaceError:  # pragma: no cover - a washed-out face may not even be found
        return
    assert any("overexposed" in r or "clipped" in r for r in reasons)


def test_tiny_face_is_refused_with_reason(pipeline: FacePipeline, samples: dict[str, Path]) -> None:
    img = Image.open(samples["obama"]).convert("RGB")
    tiny = img.resize((img.width // 8, img.height // 8), Image.Resampling.BILINEAR)
    reasons = _gate(pipeline, np.asarray(tiny))
    assert any(r.startswith("face too small") for r in reasons)


def test_rolled_face_is_refused_with_reason(pipeline: FacePipeline, samples: dict[str, Path]) -> None:
    # YuNet's landmarks under-report roll on strongly rotated faces (a face turned
    # by 45° reads about 24°, by 60° about 31°), so the gate is checked with a
    # tighter roll limit than the default 40°.
    img = Image.open(samples["obama"]).convert("RGB").rotate(45, expand=True, fillcolor=(128, 128, 128))
    with pytest.raises(LowQualityError) as info:
        pipeline.sample(np.asarray(img), policy=QualityPolicy(max_roll=15))
    assert any(r.startswith("head tilted") for r in info.value.reasons)
    upright = pipeline.sample(samples["obama"], policy=QualityPolicy(max_roll=15))
    assert abs(upright.quality.roll) < 5


def test_policy_none_measures_but_does_not_gate(pipeline: FacePipeline, samples: dict[str, Path]) -> None:
    dark = (load_image(samples["obama"]).astype(np.float32) * 0.12).astype(np.uint8)
    sample = pipeline.sample(dark, policy=None)
    assert sample.quality.brightness < QualityPolicy().min_brightness


# --- alignment ----------------------------------------------------------------------------------


def test_alignment_puts_landmarks_on_the_template(pipeline: FacePipeline, samples: dict[str, Path]) -> None:
    img = load_image(samples["obama"])
    face = pipeline.locate(img)
    m = similarity_transform(face.landmarks, ARCFACE_TEMPLATE)
    mapped = face.landmarks.astype(np.float64) @ m[:, :2].T + m[:, 2]
    assert np.abs(mapped - ARCFACE_TEMPLATE).max() < 6  # five points, four degrees of freedom
    # The transform is a similarity: equal scale on both axes, no shear.
    a, b = m[0, 0], m[0, 1]
    assert m[1, 0] == pytest.approx(-b) and m[1, 1] == pytest.approx(a)


def test_alignment_rejects_degenerate_landmarks() -> None:
    with pytest.raises(ValueError, match="collinear"):
        similarity_transform(np.zeros((5, 2)), ARCFACE_TEMPLATE)
    with pytest.raises(ValueError):
        ArcFaceAligner(100)


def test_aligner_output_geometry(pipeline: FacePipeline, samples: dict[str, Path]) -> None:
    img = load_image(samples["obama"])
    face = pipeline.locate(img)
    crop = ArcFaceAligner().align(img, face.landmarks)
    assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
    big = ArcFaceAligner(224).align(img, face.landmarks)
    assert big.shape == (224, 224, 3)


@pytest.mark.parametrize("name", PEOPLE)
def test_numpy_aligner_matches_insightface_norm_crop(
    pipeline: FacePipeline, samples: dict[str, Path], name: str
) -> None:
    face_align = pytest.importorskip("insightface.utils.face_align")
    img = load_image(samples[name])
    face = pipeline.locate(img)
    ours = pipeline.aligner.align(img, face.landmarks)
    # norm_crop works on any channel order; cv2 interpolates in fixed point, hence small diffs.
    ref = face_align.norm_crop(img, landmark=face.landmarks, image_size=112)
    assert ref.shape == ours.shape
    diff = np.abs(ours.astype(np.int16) - ref.astype(np.int16))
    assert diff.mean() < 0.5
    assert np.percentile(diff, 99) <= 3
    e_ours, e_ref = pipeline.embedder.embed([ours, ref])
    assert cosine(e_ours, e_ref) > 0.999


def test_embeddings_are_unit_length_and_deterministic(
    pipeline: FacePipeline, samples: dict[str, Path]
) -> None:
    a = pipeline.sample(samples["obama"], policy=None).embedding
    b = pipeline.sample(samples["obama"], policy=None).embedding
    assert a.shape == (pipeline.embedder.dim,)
    assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-5)
    assert np.array_equal(a, b)
    assert pipeline.embedder.embed([]).shape == (0, pipeline.embedder.dim)


def test_mirror_views_average_the_crop_and_its_mirror_image(
    pipeline: FacePipeline, pack: ModelPack, samples: dict[str, Path]
) -> None:
    assert pack.recognizer.mirror and isinstance(pipeline.embedder, MirroredEmbedder)
    single = pipeline.embedder.inner
    crops = [pipeline.capture(samples[k], policy=None)[0] for k in ("obama", "biden")]
    mirrored = [np.ascontiguousarray(c[:, ::-1]) for c in crops]
    both = pipeline.embedder.embed(crops)
    for crop, mirror, row in zip(crops, mirrored, both, strict=True):
        views = single.embed([crop, mirror])
        expected = views.sum(axis=0) / np.linalg.norm(views.sum(axis=0))
        assert np.allclose(row, expected, atol=1e-6)
        assert cosine(views[0], views[1]) < 0.99  # the two views do differ
    # A mirrored capture of a face gets (up to rounding) the same embedding.
    assert np.allclose(pipeline.embedder.embed(mirrored), both, atol=1e-5)


def test_warp_reads_only_its_window_but_matches_a_whole_image_warp(samples: dict[str, Path]) -> None:
    """Padding the image (so every read is inside it) must not change any crop, in or out of frame."""
    from faceverify._pipeline._align import warp_affine

    img = load_image(samples["obama"])
    pad = 300
    padded = np.zeros((img.shape[0] + 2 * pad, img.shape[1] + 2 * pad, 3), np.uint8)
    padded[pad:-pad, pad:-pad] = img
    rng = np.random.default_rng(3)
    h, w = img.shape[:2]
    for _ in range(40):
        centre = rng.uniform([-80, -80], [w + 80, h + 80])
        scale, angle = rng.uniform(20, 300), rng.uniform(-np.pi, np.pi)
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        pts = (ARCFACE_TEMPLATE - ARCFACE_TEMPLATE.mean(0)) / 112 * scale @ rot.T + centre
        m = similarity_transform(pts, ARCFACE_TEMPLATE)
        shifted = m.copy()
        shifted[:, 2] -= m[:, :2] @ np.array([pad, pad])
        assert np.array_equal(warp_affine(img, m, 112), warp_affine(padded, shifted, 112))


def test_quality_percentiles_are_numpys_without_importing_numpy_ma() -> None:
    """The quality gate's percentiles interpolate as ``np.percentile`` does (its default
    method), from one partial sort: ``np.percentile`` imports ``numpy.ma`` on a cold start."""
    from faceverify._pipeline._quality import _percentiles

    rng = np.random.default_rng(0)
    qs = (0.0, 2.0, 50.0, 95.0, 98.0, 100.0)
    for values in (
        rng.uniform(0, 255, (72, 64)).astype(np.float32),
        rng.integers(0, 3, (5, 7)).astype(np.float32),  # ties
        np.array([[7.0]], dtype=np.float32),
        np.array([[1.0, 2.0]], dtype=np.float32),
    ):
        np.testing.assert_allclose(_percentiles(values, qs), np.percentile(values, qs), rtol=1e-12, atol=1e-9)
