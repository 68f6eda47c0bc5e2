"""Capture conditions the operating points were not calibrated for are refused, with
reasons a person can act on; grayscale gets its own points or is refused; pose is
estimated without saturating; relatives are stated apart. Real models, real photos."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceverify import LowQualityError, QualityPolicy
from faceverify._compare import compare_with
from faceverify._errors import ConfigurationError
from faceverify._models._manifest import ModelPack, _builtin_json, parse_manifest
from faceverify._pipeline._quality import pose_from_landmarks
from faceverify._profiles import get_profile
from faceverify.hazmat import FacePipeline

#: A 3-D five-point face in eye distances: eyes, nose tip (in front), mouth corners.
MODEL = np.array(
    [[-0.5, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, 0.57, 0.43], [-0.41, 1.15, 0.15], [0.41, 1.15, 0.15]]
)


def _project(yaw: float, roll: float = 0.0, scale: float = 40.0) -> np.ndarray:
    """Orthographic image of MODEL turned ``yaw`` degrees (+: nose toward the image's right)."""
    a, r = math.radians(yaw), math.radians(roll)
    turn = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    p = (MODEL @ turn.T)[:, :2]
    spin = np.array([[math.cos(r), -math.sin(r)], [math.sin(r), math.cos(r)]])
    return p @ spin.T * scale + 100.0


@pytest.mark.parametrize("yaw", [-75, -55, -30, -10, 0, 10, 30, 55, 75])
def test_yaw_follows_the_head_turn_without_saturating(yaw: float) -> None:
    est, _pitch, roll = pose_from_landmarks(_project(yaw, roll=12.0))
    assert est == pytest.approx(yaw, abs=2.0)
    assert roll == pytest.approx(12.0, abs=0.5)


def test_a_three_quarter_profile_does_not_read_as_a_full_profile(pipeline: FacePipeline, lfw: Path) -> None:
    """Colin_Powell_0071 is a 3/4 profile; the sine reading made it -90°."""
    path = lfw / "Colin_Powell" / "Colin_Powell_0071.jpg"
    if not path.exists():
        pytest.skip(f"{path} not in this LFW copy")
    q = pipeline.sample(path, policy=None, select="dominant").quality
    assert -75.0 < q.yaw < -35.0


def _refusal(pipeline: FacePipeline, image: np.ndarray, policy: QualityPolicy) -> list[str]:
    with pytest.raises(LowQualityError) as info:
        pipeline.sample(image, policy=policy)
    return info.value.reasons


def _photo(samples: dict[str, Path], name: str = "obama") -> np.ndarray:
    return np.asarray(Image.open(samples[name]).convert("RGB"))


def test_grayscale_is_refused_at_colour_points_and_says_why(
    pipeline: FacePipeline, samples: dict[str, Path]
) -> None:
    img = _photo(samples)
    grey = _grey(img)
    assert pipeline.sample(img, policy=QualityPolicy()).quality.grayscale is False
    reasons = _refusal(pipeline, grey, QualityPolicy())
    assert any(r.startswith("grayscale or infrared image") for r in reasons)
    assert pipeline.sample(grey, policy=QualityPolicy(grayscale=True)).quality.grayscale


def _grey(img: np.ndarray) -> np.ndarray:
    return np.repeat((img @ np.array([0.299, 0.587, 0.114]))[..., None], 3, axis=2).astype(np.uint8)


def _lit_from_one_side(pipeline: FacePipeline, img: np.ndarray) -> np.ndarray:
    """``img`` dark on the left half of its face, lit from the right."""
    face = pipeline.locate(img, select="dominant")
    x, _, w, _ = face.box
    cols = np.arange(img.shape[1], dtype=np.float64)
    ramp = np.clip((cols - x - w / 4) / (w / 2), 0.0, 1.0)
    return np.clip(img * (0.08 + 0.92 * ramp)[None, :, None], 0, 255).astype(np.uint8)


def test_light_from_one_side_is_refused_and_named(pipeline: FacePipeline, samples: dict[str, Path]) -> None:
    img = _photo(samples)
    policy = QualityPolicy()
    reasons = _refusal(pipeline, _lit_from_one_side(pipeline, img), policy)
    assert any(r.startswith("light from one side") for r in reasons), reasons
    assert pipeline.sample(img, policy=policy)  # the same photo lit evenly passes


@pytest.mark.parametrize("profile", ["door-access-ir", "photo-check"])
def test_conditions_combined_are_refused_naming_each(
    pipeline: FacePipeline, samples: dict[str, Path], profile: str
) -> None:
    """Grayscale, lit from one side and cropped tight at once (the hidden lab set's look):
    every profile refuses it, and the reasons name the light and the crop; a colour profile
    names the grayscale too, the grayscale profile does not (it admits grayscale)."""
    img = _grey(_lit_from_one_side(pipeline, _photo(samples)))
    x, y, w, h = (round(v) for v in pipeline.locate(img, select="dominant").box)
    combined = np.ascontiguousarray(img[y + h // 10 : y + h, x + w // 10 : x + w - w // 10])
    reasons = _refusal(pipeline, combined, get_profile(profile).quality)
    assert any(r.startswith("light from one side") for r in reasons), reasons
    assert any(r.startswith("face too close to the frame edge") for r in reasons), reasons
    assert any(r.startswith("grayscale or infrared") for r in reasons) == (profile == "photo-check")


def test_a_face_cropped_tight_is_refused_as_too_close_to_the_edge(
    pipeline: FacePipeline, samples: dict[str, Path]
) -> None:
    img = _photo(samples)
    face = pipeline.locate(img, select="dominant")
    x, y, w, h = (round(v) for v in face.box)
    tight = np.ascontiguousarray(img[y + h // 10 : y + h, x + w // 10 : x + w - w // 10])
    reasons = _refusal(pipeline, tight, QualityPolicy())
    assert any(r.startswith("face too close to the frame edge") for r in reasons), reasons


def test_a_flat_image_is_refused_and_named(pipeline: FacePipeline, samples: dict[str, Path]) -> None:
    img = _photo(samples).astype(np.float64)
    flat = np.clip(img.mean() + (img - img.mean()) * 0.15, 0, 255).astype(np.uint8)
    reasons = _refusal(pipeline, flat, QualityPolicy())
    assert any(r.startswith("image too flat") for r in reasons), reasons


def _grey_file(samples: dict[str, Path], name: str, tmp: Path) -> Path:
    out = tmp / f"{name}-grey.png"
    Image.open(samples[name]).convert("L").save(out)
    return out


def _with_condition_space(space: str | None) -> ModelPack:
    """The built-in pack with its condition points declared calibrated in ``space``
    (None: in the pack's own embedding space)."""
    data = copy.deepcopy(_builtin_json("yunet-sface"))
    own = parse_manifest(data).embedding_space
    for block in data["condition_operating_points"]:
        block["embedding_space"] = own if space is None else space
    return parse_manifest(data)


def test_grayscale_profile_scores_at_its_own_points(
    pipeline: FacePipeline, pack: ModelPack, samples: dict[str, Path], tmp_path: Path
) -> None:
    """On the built-in pack as shipped: its grayscale points were calibrated for its own
    embedding space (benchmarks/conditions.py --write-pack), so they apply."""
    a, b = _grey_file(samples, "obama", tmp_path), _grey_file(samples, "obama2", tmp_path)
    with pytest.raises(LowQualityError):
        compare_with(pipeline, pack, a, b, profile="photo-check")
    prof = get_profile("photo-check").for_grayscale()
    r = compare_with(pipeline, pack, a, b, profile=prof)
    assert r.operating_point.name == "grayscale:default"
    assert r.threshold == pack.operating_point("grayscale:default").threshold
    assert r.match
    impostor = compare_with(pipeline, pack, a, _grey_file(samples, "biden", tmp_path), profile=prof)
    assert not impostor.match


def test_condition_points_of_another_revision_are_refused_not_applied(
    pipeline: FacePipeline, samples: dict[str, Path], tmp_path: Path
) -> None:
    stale = _with_condition_space("yunet-sface@1")
    for name in ("grayscale:default", "relatives:household"):
        with pytest.raises(ConfigurationError, match="recalibrated"):
            stale.operating_point(name)
    a, b = _grey_file(samples, "obama", tmp_path), _grey_file(samples, "obama2", tmp_path)
    with pytest.raises(ConfigurationError, match="grayscale captures are refused"):
        compare_with(pipeline, stale, a, b, profile=get_profile("photo-check").for_grayscale())
    assert stale.operating_point("default") == _with_condition_space(None).operating_point("default")


def test_the_built_in_packs_condition_points_name_the_space_they_hold_for(pack: ModelPack) -> None:
    """Each block states its embedding space; used only there (refused elsewhere, as above)."""
    for block in pack.condition_points:
        assert block.embedding_space.startswith(pack.id)
        if block.embedding_space == pack.embedding_space:
            assert pack.operating_point(block.operating_points[0].name) == block.operating_points[0]
        else:
            with pytest.raises(ConfigurationError, match="recalibrated"):
                pack.operating_point(block.operating_points[0].name)


def test_relatives_are_stated_apart_and_household_is_stricter(pack: ModelPack) -> None:
    for op in pack.operating_points:
        assert "blood relatives" in op.description and "household" in op.description
    household = pack.operating_point(get_profile("app-login").for_relatives().operating_point)
    assert household.threshold >= pack.operating_point("strict").threshold - 0.01
    assert household.relatives_fmr == 0.0 and household.relatives_pairs > 500
    assert "between blood relatives" in household.description


def test_grayscale_points_are_recorded_like_the_others(pack: ModelPack) -> None:
    for name in ("convenience", "default", "strict"):
        colour, grey = pack.operating_point(name), pack.operating_point(f"grayscale:{name}")
        assert grey.fmr == colour.fmr
        assert grey.impostor_pairs * grey.fmr >= 3
        assert dataclasses.asdict(grey).keys() == dataclasses.asdict(colour).keys()
    assert pack.calibrated_for is not None and pack.calibrated_for.colour
    json.dumps(pack.calibrated_for.bounds)


def test_default_gate_refuses_beyond_the_calibrated_conditions(pack: ModelPack) -> None:
    """The default gate's new bounds are the ones the pack states it was calibrated for."""
    assert pack.calibrated_for is not None
    policy = QualityPolicy()
    for bound, value in pack.calibrated_for.bounds.items():
        assert getattr(policy, bound) == pytest.approx(value), bound
    assert policy.grayscale is False


def test_calibrate_warns_when_the_deployers_captures_are_grayscale(
    samples: dict[str, Path], model_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from faceverify._cli._main import main

    names = ["obama", "obama2", "obama3", "biden"]
    files = {n: _grey_file(samples, n, tmp_path) for n in names}
    pairs = tmp_path / "pairs.csv"
    rows = ["path1,path2,same"]
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            rows.append(
                f"{files[a].name},{files[b].name},{int(a.startswith('obama') and b.startswith('obama'))}"
            )
    pairs.write_text("\n".join(rows) + "\n", "utf-8")
    rc = main(
        ["calibrate", str(pairs), "--cache", str(model_cache), "--quiet", "--json", "--target", "x=1e-1"]
    )
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert any("grayscale or infrared" in w and "door-access-ir" in w for w in summary["warnings"])


def test_grayscale_profiles_gate_as_the_grayscale_points_were_calibrated(pack: ModelPack) -> None:
    grey = next(c for c in pack.condition_points if c.condition == "grayscale")
    for prof in (get_profile("door-access-ir"), get_profile("photo-check").for_grayscale()):
        for name, value in grey.quality.items():
            assert float(getattr(prof.quality, name)) == pytest.approx(value), (prof.name, name)
