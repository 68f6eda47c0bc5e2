"""Fixtures for liveness tests: posers over real sample photos, a frozen clock."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from liveness_frames import Poser
from PIL import Image

from faceverify import FrozenClock
from faceverify.hazmat import FacePipeline, load_image


def small(path: Path, side: int = 640) -> np.ndarray:
    """A sample photo scaled to at most ``side`` pixels (the detector's input anyway)."""
    image = Image.fromarray(load_image(path))
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    return np.asarray(image)


@pytest.fixture(scope="session")
def obama(pipeline: FacePipeline, samples: dict[str, Path]) -> Poser:
    return Poser(pipeline, small(samples["obama"]))


@pytest.fixture(scope="session")
def biden(pipeline: FacePipeline, samples: dict[str, Path]) -> Poser:
    return Poser(pipeline, small(samples["biden"]), seed=1)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 11, 23, 12, 0, tzinfo=UTC))
