"""The Verifier end to end on the real default pack and real photos, and its CLI.

The Verifier here runs at an explicit threshold (reported as uncalibrated), so
these tests also cover the custom-threshold path; the decisions asserted hold
at any sensible SFace threshold (genuine pairs score > 0.6, impostors < 0.35),
the pack's calibrated `default` included. The calibrated path (mean
templates at their own operating points) has its own tests.
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
from contextlib import redirect_stdout
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceverify._clock import FrozenClock
from faceverify._errors import (
    ConfigurationError,
    ConsentError,
    EnumerationRefusedError,
    LivenessRequiredError,
    LockedOutError,
    LowQualityError,
    NoFaceError,
    SubjectRevokedError,
    TemplateExpiredError,
    UnknownSubjectError,
)
from faceverify._profiles import get_profile
from faceverify._vault import AuditLog, ConsentEvidence, ConsentRecord, MasterKey, Vault
from faceverify._verifier import EnrollmentResult, VerificationResult, Verifier
from faceverify.hazmat import FacePipeline, ModelPack

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
THRESHOLD = 0.45
PROFILE = get_profile("photo-check").with_threshold(THRESHOLD)


# Still images verify only subjects whose consent allows it: not app-login or door-access (those
# need a live session, whatever the profile; tests/vault/test_vault_verifier.py).
def consent(subject: str, *, days: int = 730, purpose: str = "id-check") -> ConsentRecord:
    return ConsentRecord(
        subject_id=subject,
        purpose=purpose,
        granted_at=T0,
        expires_at=T0 + timedelta(days=days),
        evidence=ConsentEvidence(hashlib.sha256(b"release").hexdigest(), "signed-paper", "desk-1"),
    )


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


@pytest.fixture
def verifier(tmp_path: Path, pipeline: FacePipeline, pack: ModelPack, clock: FrozenClock) -> Verifier:
    # A fixed key makes the keyed probe sketch, and so the enumeration test, deterministic.
    vault = Vault.open(tmp_path / "vault", MasterKey(bytes(range(32))), clock=clock, create=True)
    return Verifier(pipeline=pipeline, pack=pack, vault=vault, profile=PROFILE)


def reencoded(src: Path, dst: Path) -> Path:
    """The same capture, re-encoded (what a replayed stolen photo looks like)."""
    Image.open(src).convert("RGB").save(dst, quality=70)
    return dst


def test_enrol_then_verify_the_claimed_subject(verifier: Verifier, samples: dict[str, Path]) -> None:
    enrolled = verifier.enroll("alice", [samples["obama"], samples["obama2"]], consent=consent("alice"))
    assert isinstance(enrolled, EnrollmentResult)
    assert (enrolled.images, enrolled.replaced, enrolled.model_pack_id) == (2, False, "yunet-sface@5")
    assert enrolled.expires_at == T0 + timedelta(days=365)

    same = verifier.verify("alice", samples["obama3"])
    assert isinstance(same, VerificationResult)
    assert same.match and same.score > 0.6 and same.threshold == THRESHOLD
    assert not same.operating_point.calibrated
    assert "uncalibrated" in same.reasons[0] and "over 2 enrolment images" in same.reasons[1]
    assert same.rule == "every-member"  # a custom threshold has no point for means

    other = verifier.verify("alice", samples["biden"])
    assert not other.match and other.score < 0.35
    # No result carries an embedding.
    for result in (enrolled, same, other):
        assert not any(isinstance(getattr(result, f.name), np.ndarray) for f in fields(result))
    assert not verifier.needs_reenroll("alice")
    assert verifier.consent("alice") == consent("alice")


def test_enrolment_refusals(verifier: Verifier, samples: dict[str, Path], clock: FrozenClock) -> None:
    with pytest.raises(LowQualityError, match="near-duplicate"):
        verifier.enroll("alice", [samples["obama"], samples["obama"]], consent=consent("alice"))
    with pytest.raises(LowQualityError, match="same person"):
        verifier.enroll("alice", [samples["obama"], samples["biden"]], consent=consent("alice"))
    with pytest.raises(ConsentError, match="another subject"):
        verifier.enroll("alice", [samples["obama"]], consent=consent("bob"))
    clock.advance(timedelta(days=31))
    with pytest.raises(ConsentError, match="expired"):
        verifier.enroll("alice", [samples["obama"]], consent=consent("alice", days=30))
    with pytest.raises(ValueError, match="1 to 5"):
        verifier.enroll("alice", [], consent=consent("alice"))
    assert verifier.vault.store.get("alice") is None


def test_open_builds_pipeline_and_vault(tmp_path: Path, model_cache: Path, samples: dict[str, Path]) -> None:
    verifier = Verifier.open(
        tmp_path / "v",
        master_key=MasterKey.generate(),
        cache=model_cache,
        profile=PROFILE,
        purpose="id-check",
        create=True,
    )
    verifier.enroll("alice", [samples["obama"]], consent=consent("alice", days=100_000))
    assert verifier.verify("alice", samples["obama2"]).match
    with pytest.raises(ConsentError, match="door-access"):
        verifier.enroll(
            "bob", [samples["biden"]], consent=consent("bob", days=100_000, purpose="door-access")
        )


def test_a_bad_image_is_named(verifier: Verifier, samples: dict[str, Path], tmp_path: Path) -> None:
    blank = tmp_path / "blank.png"
    Image.new("RGB", (320, 240), (128, 128, 128)).save(blank)
    with pytest.raises(NoFaceError) as info:
        verifier.enroll("alice", [samples["obama"], blank], consent=consent("alice"))
    assert "enrolment image 2 of 2" in info.value.__notes__


def test_reenrol_replaces(verifier: Verifier, samples: dict[str, Path]) -> None:
    verifier.enroll("alice", [samples["obama"]], consent=consent("alice"))
    again = verifier.enroll("alice", [samples["biden"]], consent=consent("alice"))
    assert again.replaced
    assert not verifier.verify("alice", samples["obama3"]).match


def test_revoke_unknown_and_expired(verifier: Verifier, samples: dict[str, Path], clock: FrozenClock) -> None:
    with pytest.raises(UnknownSubjectError):
        verifier.verify("nobody", samples["obama"])
    verifier.enroll("alice", [samples["obama"]], consent=consent("alice"))
    verifier.enroll("bob", [samples["biden"]], consent=consent("bob", days=30))
    receipt = verifier.revoke("alice")
    assert receipt.template_erased and receipt.keys_destroyed == 1
    with pytest.raises(SubjectRevokedError):
        verifier.verify("alice", samples["obama2"])
    clock.advance(timedelta(days=30))
    with pytest.raises(TemplateExpiredError):
        verifier.verify("bob", samples["biden"])
    assert verifier.purge() == 1


def test_lockout_and_enumeration(verifier: Verifier, samples: dict[str, Path], tmp_path: Path) -> None:
    verifier.enroll("alice", [samples["obama"]], consent=consent("alice"))
    for _ in range(5):
        assert not verifier.verify("alice", samples["biden"]).match
    with pytest.raises(LockedOutError):
        verifier.verify("alice", samples["obama2"])

    for subject, image in (("bob", "biden"), ("carol", "obama3"), ("dave", "obama2")):
        verifier.enroll(subject, [samples[image]], consent=consent(subject))
    # A full-face photo: the partial-face sample is now refused by the gate (face too
    # close to the frame edge, issue 15) before any comparison could be counted.
    stolen = samples["obama"]
    assert not verifier.verify("bob", stolen).match
    assert verifier.verify("carol", reencoded(stolen, tmp_path / "copy.jpg")).match
    with pytest.raises(EnumerationRefusedError):
        verifier.verify("dave", stolen)
    audit = verifier.vault.audit
    assert isinstance(audit, AuditLog)
    assert [e.subject for e in audit.entries() if e.event == "enumeration-refused"] == ["dave"]
    assert audit.verify_chain().ok


def test_liveness_profile_refuses_a_still(verifier: Verifier, samples: dict[str, Path]) -> None:
    verifier.enroll("alice", [samples["obama"]], consent=consent("alice"))
    live = Verifier(
        pipeline=verifier.pipeline,
        pack=verifier.pack,
        vault=verifier.vault,
        profile=replace(PROFILE, liveness_required=True),
    )
    with pytest.raises(LivenessRequiredError):
        live.verify("alice", samples["obama2"])


def test_another_pack_needs_reenrolment(verifier: Verifier, samples: dict[str, Path]) -> None:
    verifier.enroll("alice", [samples["obama"]], consent=consent("alice"))
    newer = Verifier(
        pipeline=verifier.pipeline,
        pack=replace(verifier.pack, id="sface-v2"),
        vault=verifier.vault,
        profile=PROFILE,
    )
    assert newer.needs_reenroll("alice")
    with pytest.raises(TemplateExpiredError, match="re-enrol"):
        newer.verify("alice", samples["obama2"])


def test_a_multi_image_template_is_scored_by_its_mean_at_its_own_operating_point(
    tmp_path: Path, pipeline: FacePipeline, pack: ModelPack, clock: FrozenClock, samples: dict[str, Path]
) -> None:
    vault = Vault.open(tmp_path / "vault", MasterKey(bytes(range(32))), clock=clock, create=True)
    calibrated = Verifier(pipeline=pipeline, pack=pack, vault=vault, profile="photo-check")
    calibrated.enroll("alice", [samples["obama"], samples["obama3"]], consent=consent("alice"))
    point = pack.template_point("default", images=2)
    assert point is not None and point.fmr == 1e-5 and "mean templates of 2" in point.dataset
    assert point.threshold != pack.operating_point("default").threshold  # a mean has its own threshold

    same = calibrated.verify("alice", samples["obama2"])
    members = [pipeline.sample(samples[k], policy=None).embedding for k in ("obama", "obama3")]
    probe = pipeline.sample(samples["obama2"], policy=None).embedding
    mean = np.sum(members, axis=0) / np.linalg.norm(np.sum(members, axis=0))
    assert same.match and same.operating_point == point and same.threshold == point.threshold
    assert same.score == pytest.approx(float(mean @ probe), abs=1e-5)
    assert same.rule == "mean" and "mean of 2 enrolment images" in same.reasons
    other = calibrated.verify("alice", samples["biden"])
    assert not other.match and other.operating_point == point

    # `strict` (FMR 1e-6) is not stated for means: a few million impostor pairs cannot support it.
    assert (
        pack.template_point("strict", images=2) is None and pack.template_point("default", images=6) is None
    )
    # A pack without points for means falls back to the every-member rule at the single-image point.
    plain = Verifier(
        pipeline=pipeline, pack=replace(pack, template_points=()), vault=vault, profile="photo-check"
    )
    fallback = plain.verify("alice", samples["obama2"])
    assert fallback.operating_point == pack.operating_point("default")
    assert fallback.score == pytest.approx(min(float(m @ probe) for m in members), abs=1e-5)
    assert fallback.rule == "every-member" and "lowest score over 2 enrolment images" in fallback.reasons


def test_a_new_revision_of_the_same_pack_needs_reenrolment(
    verifier: Verifier, samples: dict[str, Path]
) -> None:
    """A revision changes how embeddings are made (e.g. detection upscaling, mirror views)."""
    verifier.enroll("alice", [samples["obama"]], consent=consent("alice"))
    bumped = replace(verifier.pack, revision=verifier.pack.revision + 1)
    newer = Verifier(pipeline=verifier.pipeline, pack=bumped, vault=verifier.vault, profile=PROFILE)
    assert not verifier.needs_reenroll("alice")
    assert newer.needs_reenroll("alice")
    with pytest.raises(TemplateExpiredError, match="re-enrol"):
        newer.verify("alice", samples["obama2"])
    # Its live sessions are refused: the same-face cosines were calibrated for the old revision.
    with pytest.raises(ConfigurationError, match="same-face cosines were calibrated for"):
        newer.start_session("alice")


# -- CLI ---------------------------------------------------------------------------


def run_cli(*argv: str) -> tuple[int, str]:
    from faceverify._cli import _vault_cmds  # noqa: F401  (registers the vault subcommands)
    from faceverify._cli._main import main

    out = io.StringIO()
    with redirect_stdout(out):
        code = main(list(argv))
    return code, out.getvalue()


def test_cli_ceremonies(tmp_path: Path, model_cache: Path, samples: dict[str, Path]) -> None:
    where = ["--vault", str(tmp_path / "vault"), "--key-file", str(tmp_path / "keys" / "master.key")]
    models = ["--cache", str(model_cache), "--threshold", str(THRESHOLD)]
    evidence = tmp_path / "release.pdf"
    evidence.write_bytes(b"I agree to face verification for app login.")

    code, out = run_cli("keys", "init", *where, "--json")
    assert code == 0 and len(json.loads(out)["fingerprint"]) == 32
    assert (tmp_path / "keys" / "master.key").stat().st_mode & 0o777 == 0o600
    code, _ = run_cli("keys", "init", "--vault", where[1], "--key-file", str(tmp_path / "other.key"))
    assert code == 10 and not (tmp_path / "other.key").exists()  # key_store

    code, out = run_cli(
        "enroll", "alice", str(samples["obama"]), str(samples["obama2"]), "--purpose", "id-check",
        "--consent-evidence", str(evidence), "--expires", "2099-12-31", *where, *models, "--json",
    )  # fmt: skip
    assert code == 0, out
    assert (
        json.loads(out)["consent"]["evidence"]["document_sha256"]
        == hashlib.sha256(evidence.read_bytes()).hexdigest()
    )

    code, out = run_cli("verify", "alice", str(samples["obama3"]), *where, *models, "--json")
    assert code == 0 and json.loads(out)["match"] is True
    code, out = run_cli("verify", "alice", str(samples["biden"]), *where, *models, "--json")
    assert code == 1 and json.loads(out)["match"] is False
    code, _ = run_cli("verify", "nobody", str(samples["biden"]), *where, *models)
    assert code == 5  # unknown_subject
    # At the calibrated point (no --threshold) a two-image template is scored by its mean.
    code, out = run_cli("verify", "alice", str(samples["obama3"]), *where, "--cache", str(model_cache))
    assert code == 0 and "MATCH" in out and "for the mean of the enrolment images" in out
    code, out = run_cli("verify", "alice", str(samples["obama3"]), *where, *models, "--json")
    assert json.loads(out)["rule"] == "every-member"  # a custom threshold has no point for means

    code, out = run_cli("consent", "show", "alice", *where, "--json")
    assert code == 0 and json.loads(out)["purpose"] == "id-check"

    code, out = run_cli(
        "keys", "rotate", "--new-key-file", str(tmp_path / "keys" / "new.key"), *where, "--json"
    )
    assert code == 0 and json.loads(out)["rewrapped"] == 1
    code, _ = run_cli("consent", "show", "alice", *where)
    assert code == 10  # key_store: the old key no longer opens the vault
    where[-1] = str(tmp_path / "keys" / "new.key")
    code, _ = run_cli("verify", "alice", str(samples["obama3"]), *where, *models)
    assert code == 0

    code, out = run_cli("revoke", "alice", *where, "--json")
    assert code == 0 and json.loads(out)["keys_destroyed"] == 1
    code, out = run_cli("purge", *where, "--json")
    assert code == 0 and json.loads(out) == {"purged": 0}
    code, out = run_cli("audit", "verify", *where, "--json")
    assert code == 0 and json.loads(out)["ok"] is True

    with sqlite3.connect(tmp_path / "vault" / "vault.db") as conn:
        conn.execute("DROP TRIGGER audit_no_update")
        conn.execute("UPDATE audit SET outcome='match' WHERE event='verify' AND outcome='no-match'")
    code, out = run_cli("audit", "verify", *where, "--json")
    report = json.loads(out)
    assert code == 1 and report["ok"] is False and report["first_broken"] is not None
