"""Fixtures for liveness tests: posers over real sample photos, a frozen clock."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from liveness_frames import Poser, small

from faceverify import FrozenClock
from faceverify.hazmat import FacePipeline


# One poser per test: its noise generator then starts from its seed in every test. Shared by the
# session, a test's frames depended on how many frames the tests before it drew (a number that
# varies where a session draws its challenges with the OS CSPRNG), and one in a few dozen runs of
# test_a_wrong_response_fails saw noise that left its turn unread.
@pytest.fixture
def obama(pipeline: FacePipeline, samples: dict[str, Path]) -> Poser:
    return Poser(pipeline, small(samples["obama"]))


@pytest.fixture
def biden(pipeline: FacePipeline, samples: dict[str, Path]) -> Poser:
    return Poser(pipeline, small(samples["biden"]), seed=1)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 11, 23, 12, 0, tzinfo=UTC))
