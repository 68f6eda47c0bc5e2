"""Door fixtures: a door-access vault and Verifier on the real default pack, recorded frames.

The Verifier runs at the pack's calibrated ``default`` operating point (FMR
1e-5), as a door does; genuine pairs of the sample photos score > 0.6 and the
impostor pair < 0.35, far from its threshold (0.475).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from door_frames import Poser, poser, synthetic_policy
from door_helpers import KEY, T0

from faceverify._clock import FrozenClock
from faceverify._vault import Vault
from faceverify._verifier import Verifier
from faceverify.hazmat import FacePipeline, ModelPack


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


@pytest.fixture
def vault(tmp_path: Path, clock: FrozenClock) -> Vault:
    return Vault.open(
        tmp_path / "vault",
        KEY,
        keys_database=tmp_path / "keys.db",
        clock=clock,
        purpose="door-access",
        create=True,
    )


@pytest.fixture
def verifier(vault: Vault, pipeline: FacePipeline, pack: ModelPack) -> Verifier:
    """The door-access Verifier, animation checks off: the frames are synthesized (``synthetic_policy``)."""
    return Verifier(
        pipeline=pipeline, pack=pack, vault=vault, profile="door-access", challenge_policy=synthetic_policy()
    )


@pytest.fixture(scope="session")
def alice(pipeline: FacePipeline, samples: dict[str, Path]) -> Poser:
    """The enrolled person, as seen at the door (a photo not used to enrol)."""
    return poser(pipeline, samples["obama3"])


@pytest.fixture(scope="session")
def alice_at_kiosk(pipeline: FacePipeline, samples: dict[str, Path]) -> Poser:
    """The same person at the enrolment kiosk (another photo)."""
    return poser(pipeline, samples["obama"], seed=2)


@pytest.fixture(scope="session")
def mallory(pipeline: FacePipeline, samples: dict[str, Path]) -> Poser:
    """Another person, who is not alice."""
    return poser(pipeline, samples["biden"], seed=1)
