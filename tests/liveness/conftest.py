"""Fixtures for liveness tests: posers over real sample photos, a frozen clock."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from liveness_frames import Poser, small

from faceverify import FrozenClock
from faceverify.hazmat import FacePipeline


@pytest.fixture(scope="session")
def obama(pipeline: FacePipeline, samples: dict[str, Path]) -> Poser:
    return Poser(pipeline, small(samples["obama"]))


@pytest.fixture(scope="session")
def biden(pipeline: FacePipeline, samples: dict[str, Path]) -> Poser:
    return Poser(pipeline, small(samples["biden"]), seed=1)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 11, 23, 12, 0, tzinfo=UTC))
