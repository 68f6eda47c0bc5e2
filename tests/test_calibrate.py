"""`faceverify calibrate` on a small pairs CSV built from LFW, with the real models.

The CSV lives in a temporary directory and names LFW images by relative path;
no image is copied.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from faceverify._calibrate import (
    Scores,
    fmr_upper_bound,
    load_pack_override,
    read_pairs,
    threshold_for,
)
from faceverify._cli._main import main
from faceverify._errors import ConfigurationError
from faceverify._models._manifest import OperatingPoint, builtin_manifest

PEOPLE = 10
PER_PERSON = 4


def _small_pairs(lfw: Path, csv_dir: Path) -> Path:
    """All genuine and impostor pairs among 4 images each of the first 10 people with >= 4."""
    people = sorted(d for d in lfw.iterdir() if d.is_dir() and len(list(d.glob("*.jpg"))) >= PER_PERSON)
    images = [(p.name, img) for p in people[:PEOPLE] for img in sorted(p.glob("*.jpg"))[:PER_PERSON]]
    path = csv_dir / "pairs.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["path1", "path2", "same"])
        for (pa, a), (pb, b) in itertools.combinations(images, 2):
            w.writerow([os.path.relpath(a, csv_dir), os.path.relpath(b, csv_dir), int(pa == pb)])
    return path


@pytest.fixture(scope="module")
def calibrated(lfw: Path, model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("calibrate")
    pairs = _small_pairs(lfw, root)
    out, plot = root / "override.json", root / "det.png"
    rc = main(
        [
            "calibrate",
            str(pairs),
            "--out",
            str(out),
            "--plot",
            str(plot),
            "--cache",
            str(model_cache),
            "--quiet",
            "--target",
            "loose=1e-2",
            "--target",
            "convenience=1e-3",
            "--target",
            "tight=2e-3",
        ]
    )
    assert rc == 0
    return {"pairs": pairs, "out": out, "plot": plot, "root": root, "cache": model_cache}


def test_writes_operating_points_monotone_in_fmr(calibrated: dict[str, Path]) -> None:
    data = json.loads(calibrated["out"].read_text())
    assert data["id"] == "yunet-sface"
    points = [OperatingPoint(**op) for op in data["operating_points"]]
    assert [p.name for p in points] == ["loose", "convenience", "tight"]
    n_gen = PEOPLE * math.comb(PER_PERSON, 2)
    n_imp = math.comb(PEOPLE * PER_PERSON, 2) - n_gen
    for p in points:
        assert p.genuine_pairs == n_gen and p.impostor_pairs == n_imp  # every LFW image here has a face
        assert p.fmr_measured <= p.fmr
        assert p.fmr_measured <= p.fmr_upper <= 1
        assert 0 <= p.fnmr <= 1 and -1 <= p.threshold <= 1
    by_fmr = sorted(points, key=lambda p: -p.fmr)
    thresholds = [p.threshold for p in by_fmr]
    assert thresholds == sorted(thresholds)  # a lower FMR never has a lower threshold
    fnmrs = [p.fnmr for p in by_fmr]
    assert fnmrs == sorted(fnmrs)
    # Real recognizer, real faces: same-person pairs mostly pass even the tightest point.
    assert by_fmr[-1].fnmr < 0.5
    # The override loads onto the pack it names.
    default = builtin_manifest("yunet-sface")
    pack = load_pack_override(default, calibrated["out"])
    assert pack.operating_point("convenience").threshold == points[1].threshold
    # The pack's own mean-template points hold for its data, not the deployer's: dropped.
    assert default.template_point("default", images=2) is not None
    assert pack.template_point("default", images=2) is None
    # Points calibrated on another revision's embeddings are refused.
    with pytest.raises(ConfigurationError, match="recalibrate"):
        load_pack_override(dataclasses.replace(default, revision=default.revision + 1), calibrated["out"])


def test_det_plot_is_a_png(calibrated: dict[str, Path]) -> None:
    head = calibrated["plot"].read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    assert width > 300 and height > 200


def test_second_run_reuses_embeddings(
    calibrated: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    rc = main(["calibrate", str(calibrated["pairs"]), "--cache", str(calibrated["cache"]), "--json"])
    assert rc == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["embeddings_from_cache"] is True
    assert summary["impostor_pairs"] == math.comb(PEOPLE * PER_PERSON, 2) - PEOPLE * math.comb(PER_PERSON, 2)
    # 720 impostor pairs cannot show FMR 1e-5: the command says so.
    assert "cannot show FMR 1e-05" in captured.err
    assert [p["name"] for p in summary["operating_points"]] == ["convenience", "default", "strict"]


def _run_bad(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> str:
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    capsys.readouterr()
    assert main(["calibrate", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("faceverify: error: ") and err.count("\n") == 1
    return err


def test_bad_csv_exits_2_with_a_clear_error(
    tmp_path: Path, lfw: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = os.path.relpath(next(lfw.glob("*/*_0001.jpg")), tmp_path)
    b = os.path.relpath(sorted(lfw.glob("*/*_0001.jpg"))[1], tmp_path)
    assert "path1,path2,same" in _run_bad(tmp_path, "left,right,label\nx,y,1\n", capsys)
    assert "line 2" in _run_bad(tmp_path, f"path1,path2,same\n{a},{b},maybe\n", capsys)
    assert "no such image" in _run_bad(tmp_path, f"path1,path2,same\n{a},missing.jpg,0\n", capsys)
    assert "both same-person" in _run_bad(tmp_path, f"path1,path2,same\n{a},{b},0\n", capsys)
    assert "no pairs" in _run_bad(tmp_path, "path1,path2,same\n", capsys)
    capsys.readouterr()
    assert main(["calibrate", str(tmp_path / "absent.csv")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_bad_target_is_a_usage_error(tmp_path: Path) -> None:
    # A usage error is one line and exit 2 (bad_input), returned by main like every error (docs/cli.md).
    assert main(["calibrate", str(tmp_path / "x.csv"), "--target", "default=2"]) == 2


def test_read_pairs_resolves_paths_relative_to_the_csv(tmp_path: Path, lfw: Path) -> None:
    imgs = sorted(lfw.glob("*/*_0001.jpg"))[:3]
    sub = tmp_path / "deep" / "er"
    sub.mkdir(parents=True)
    rows = [
        f"{os.path.relpath(imgs[0], sub)},{os.path.relpath(imgs[1], sub)},0",
        f"{os.path.relpath(imgs[0], sub)},{os.path.relpath(imgs[2], sub)},1",
    ]
    pairs = read_pairs(_write(sub / "p.csv", "path1,path2,same\n" + "\n".join(rows) + "\n"))
    assert len(pairs.images) == 3 and pairs.same.tolist() == [False, True]
    assert pairs.first.tolist() == [0, 0] and pairs.second.tolist() == [1, 2]
    with pytest.raises(ConfigurationError, match="paired with itself"):
        same = rows[0].split(",")[0]
        read_pairs(_write(sub / "q.csv", f"path1,path2,same\n{same},{same},1\n"))


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_upper_bound_rule_of_three_and_clopper_pearson() -> None:
    assert fmr_upper_bound(0, 1_000_000) == pytest.approx(3e-6)
    # Exact one-sided 95 % Clopper-Pearson, k=1 of n=1000 (beta.ppf(0.95, 2, 999)).
    assert fmr_upper_bound(1, 1000) == pytest.approx(4.7349935755e-3, rel=1e-6)
    # k=296 of 29.6 M (beta.ppf(0.95, 297, 29_599_704)).
    assert fmr_upper_bound(296, 29_600_000) == pytest.approx(1.1010262076e-5, rel=1e-6)
    assert fmr_upper_bound(5, 100) > 5 / 100


def test_threshold_admits_at_most_the_target_share_of_impostors() -> None:
    rng = np.random.default_rng(0)
    s = Scores.of(rng.normal(0.7, 0.1, 500), rng.normal(0.0, 0.1, 200_000))
    last = -1.0
    for fmr in (1e-2, 1e-3, 1e-4, 1e-5):
        t = threshold_for(s, fmr)
        k, rate = s.fmr(t)
        assert rate <= fmr and k <= fmr * 200_000
        # one step (1e-4) lower would admit more than the target
        assert s.fmr(round(t - 1e-4, 4))[1] > fmr or t - 1e-4 < float(s.impostor[int(fmr * 200_000)])
        assert t >= last
        last = t


def test_gated_calibrates_on_what_the_deployed_path_admits(
    calibrated: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    args = ["calibrate", str(calibrated["pairs"]), "--cache", str(calibrated["cache"]), "--json", "--quiet"]
    assert main(args) == 0
    plain = json.loads(capsys.readouterr().out)
    assert main([*args, "--gated"]) == 0
    gated = json.loads(capsys.readouterr().out)
    assert gated["embeddings_from_cache"] is True
    assert gated["genuine_pairs"] + gated["impostor_pairs"] + gated["pairs_unscored"] == gated["pairs"]
    assert gated["impostor_pairs"] <= plain["impostor_pairs"]
    assert (gated["images_refused_by_deployed_path"] == 0) == (gated["pairs_unscored"] == 0)
