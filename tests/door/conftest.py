"""Door fixtures: a door-access vault and Verifier on the real default pack, recorded frames.

The Verifier runs at the pack's calibrated ``default`` operating point (FMR
1e-5), as a door does; genuine pairs of the sample photos score > 0.6 and the
impostor pair < 0.35, far from its threshold (0.475).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from door_frames import Poser, poser

from faceverify._clock import FrozenClock
from faceverify._vault import ConsentEvidence, ConsentRecord, MasterKey, Vault
from faceverify._verifier import Verifier
from faceverify.hazmat import FacePipeline, ModelPack

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
KEY = MasterKey(bytes(range(32)))


def consent(subject: str, *, purpose: str = "door-access", days: int = 365) -> ConsentRecord:
    return ConsentRecord(
        subject_id=subject,
        purpose=purpose,
        granted_at=T0,
        expires_at=T0 + timedelta(days=days),
        evidence=ConsentEvidence(hashlib.sha256(b"door release").hexdigest(), "kiosk-signature", "op-1"),
    )


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


@pytest.fixture
def vault(tmp_path: Path, clock: FrozenClock) -> Vault:
    return Vault.open(tmp_path / "vault", KEY, clock=clock, purpose="door-access", create=True)


@pytest.fixture
def verifier(vault: Vault, pipeline: FacePipeline, pack: ModelPack) -> Verifier:
    return Verifier(pipeline=pipeline, pack=pack, vault=vault, profile="door-access")


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
