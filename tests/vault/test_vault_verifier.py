"""The Verifier over both engines: the consent purpose decides the policy, every ceremony names its actor."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest
from vault_helpers import T0

from faceverify._errors import ConfigurationError, LivenessRequiredError
from faceverify._profiles import get_profile
from faceverify._vault import ConsentEvidence, ConsentRecord, Vault
from faceverify._verifier import Verifier
from faceverify.hazmat import FacePipeline, ModelPack


def consent(subject: str, purpose: str) -> ConsentRecord:
    return ConsentRecord(
        subject_id=subject,
        purpose=purpose,
        granted_at=T0,
        expires_at=T0 + timedelta(days=365),
        evidence=ConsentEvidence(hashlib.sha256(b"release").hexdigest(), "signed-paper", "desk-1"),
    )


@pytest.fixture
def verifier(vault: Vault, pipeline: FacePipeline, pack: ModelPack) -> Verifier:
    return Verifier(pipeline=pipeline, pack=pack, vault=vault, profile="photo-check")


@pytest.mark.parametrize("purpose", ["app-login", "door-access"])
def test_a_live_purpose_subject_is_never_verified_from_a_still(
    verifier: Verifier, samples: dict[str, Path], purpose: str
) -> None:
    verifier.enroll("alice", [samples["obama"]], consent=consent("alice", purpose), actor="kiosk:1")
    for profile in ("photo-check", "app-login", "door-access"):
        v = Verifier(pipeline=verifier.pipeline, pack=verifier.pack, vault=verifier.vault, profile=profile)
        with pytest.raises(LivenessRequiredError, match="live capture"):
            v.verify("alice", samples["obama2"], actor="client:web")
    entries = verifier.vault.audit.entries(subject="alice")
    assert [(e.event, e.outcome, e.actor) for e in entries] == [
        ("enroll", "ok", "kiosk:1"),
        *[("verify", "refused", "client:web")] * 3,
    ]
    # Nothing was compared, so nothing was counted toward the lockout.
    assert not [e for e in entries if e.outcome in {"match", "no-match"}]


def test_a_still_image_purpose_verifies_and_every_ceremony_names_its_actor(
    verifier: Verifier, samples: dict[str, Path]
) -> None:
    verifier.enroll("alice", [samples["obama"]], consent=consent("alice", "id-check"), actor="kiosk:1")
    assert verifier.verify("alice", samples["obama2"], actor="client:web").match
    assert not verifier.verify("alice", samples["biden"], actor="client:web").match
    verifier.record_failed_attempt("alice", reason="liveness: timed out", actor="door:front")
    verifier.revoke("alice", actor="cli")
    verifier.purge(actor="cron")
    actors = [(e.event, e.outcome, e.actor) for e in verifier.vault.audit.entries(subject="alice")]
    assert actors == [
        ("enroll", "ok", "kiosk:1"),
        ("verify", "match", "client:web"),
        ("verify", "no-match", "client:web"),
        ("verify", "refused", "door:front"),
        ("revoke", "ok", "cli"),
    ]


@pytest.mark.parametrize("threshold", [-1.0, 0.0, 0.42])
def test_a_custom_threshold_below_the_loosest_calibrated_point_is_refused(
    vault: Vault, pipeline: FacePipeline, pack: ModelPack, threshold: float
) -> None:
    with pytest.raises(ConfigurationError, match="custom threshold"):
        Verifier(
            pipeline=pipeline,
            pack=pack,
            vault=vault,
            profile=get_profile("photo-check").with_threshold(threshold),
        )
