"""Live verification end to end: a challenge session, then one 1:1 comparison through the vault.

Real models, real sample photos warped into frame sequences (``tests/liveness/
liveness_frames.py``): alice is enrolled from two photos of one person and the
session shows a third photo of that person, so a match is not the enrolment
image coming back. The threshold is explicit (uncalibrated), as in
``test_verifier.py``.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceverify._clock import FrozenClock
from faceverify._errors import ChallengeFailedError, ConfigurationError, LivenessRequiredError, LockedOutError
from faceverify._liveness import Challenge, ChallengePolicy, ChallengeSession
from faceverify._profiles import get_profile
from faceverify._vault import AuditLog
from faceverify._verifier import LiveSession, VerificationResult, Verifier
from faceverify.hazmat import FacePipeline, ModelPack, load_image

sys.path.insert(0, str(Path(__file__).resolve().parent / "liveness"))
from liveness_frames import Poser  # tests/liveness is not a package
from test_verifier import THRESHOLD, clock, consent, verifier

#: The vault's frozen clock and a verifier on it, from test_verifier.py (pytest finds fixtures by name).
_SHARED_FIXTURES = (clock, verifier)

STEP = timedelta(milliseconds=200)
L, R, CLOSER = Challenge.TURN_LEFT, Challenge.TURN_RIGHT, Challenge.MOVE_CLOSER

#: A live person's answer to each challenge, as poses (yaw°, pitch°, zoom), then back to rest.
RESPONSES = {
    L: [(12, 0, 1.0), (25, 0, 1.0), (25, 0, 1.0)],
    R: [(-12, 0, 1.0), (-25, 0, 1.0), (-25, 0, 1.0)],
    CLOSER: [(0, 0, 1.2), (0, 0, 1.4), (0, 0, 1.4)],
}
REST = [(0, 0, 1.0), (0, 0, 1.0)]


def answer(poser: Poser, challenges: Iterable[Challenge]) -> list[np.ndarray]:
    poses = list(REST)
    for c in challenges:
        poses += RESPONSES[c] + REST
    return [poser.frame(yaw=y, pitch=p, zoom=z) for y, p, z in poses]


def poser(pipeline: FacePipeline, path: Path) -> Poser:
    image = Image.fromarray(load_image(path))
    image.thumbnail((640, 640), Image.Resampling.LANCZOS)
    return Poser(pipeline, np.asarray(image))


def timed(clock: FrozenClock, frames: list[np.ndarray]) -> Iterable[tuple[np.ndarray, datetime]]:
    """Frames a camera delivers every 200 ms (the clock moves with them)."""
    for frame in frames:
        clock.advance(STEP)
        yield frame, clock.now()


#: The session's parameters for synthetic (warped-photo) frames: animation checks off.
SYNTHETIC = ChallengePolicy(animation_checks=False)


@pytest.fixture
def enrolled(verifier: Verifier, samples: dict[str, Path]) -> Verifier:
    """``alice`` enrolled from two photos, verified under ``app-login`` (liveness required)."""
    verifier.enroll("alice", [samples["obama"], samples["obama2"]], consent=consent("alice"))
    profile = get_profile("app-login").with_threshold(THRESHOLD)
    policy = replace(SYNTHETIC, quality=profile.quality)
    return Verifier(
        pipeline=verifier.pipeline,
        pack=verifier.pack,
        vault=verifier.vault,
        profile=profile,
        challenge_policy=policy,
    )


def audit_entries(verifier: Verifier) -> list[tuple[str, str, str]]:
    audit = verifier.vault.audit
    assert isinstance(audit, AuditLog)
    assert audit.verify_chain().ok
    return [(e.event, e.outcome, e.reason) for e in audit.entries(subject="alice")]


def test_profiles_state_whether_liveness_is_required() -> None:
    assert get_profile("app-login").liveness_required
    assert get_profile("door-access").liveness_required
    assert not get_profile("photo-check").liveness_required
    assert get_profile("app-login").passive_check and get_profile("door-access").passive_check


def test_the_enrolled_person_in_a_passed_session_matches(
    enrolled: Verifier, pipeline: FacePipeline, samples: dict[str, Path], clock: FrozenClock
) -> None:
    session = enrolled.start_session("alice", challenges=[L, CLOSER])
    assert isinstance(session, LiveSession) and isinstance(session, ChallengeSession)
    assert session.subject_id == "alice" and session.prompt == "look straight at the camera"
    for frame, at in timed(clock, answer(poser(pipeline, samples["obama3"]), [L, CLOSER])):
        session.feed(frame, at=at)
    result = enrolled.finish(session)
    assert isinstance(result, VerificationResult)
    assert result.match and result.score > 0.6 and result.threshold == THRESHOLD, result.reasons
    assert "best-quality frontal frame" in result.reasons[-2] and "turn-left" in result.reasons[-2]
    # The decision and its audit entry name the session: its nonce and its challenges.
    binding = f"live session {session.nonce}: turn-left, move-closer"
    assert result.reasons[-1] == binding
    assert {"baseline", "challenge:turn-left", "challenge:move-closer"} <= {c.name for c in result.liveness}
    assert all(c.passed for c in result.liveness)
    assert audit_entries(enrolled)[-1] == (
        "verify",
        "match",
        f"{binding}; custom threshold 0.4500 (uncalibrated)",
    )
    # A session is decided once: finishing it again is refused, not a second attempt.
    with pytest.raises(ChallengeFailedError, match="already decided"):
        enrolled.finish(session)


def test_a_passed_session_of_another_face_does_not_match(
    enrolled: Verifier, pipeline: FacePipeline, samples: dict[str, Path], clock: FrozenClock
) -> None:
    prompts: list[str] = []
    result = enrolled.verify_live(
        "alice",
        timed(clock, answer(poser(pipeline, samples["biden"]), [R, L])),
        challenges=[R, L],
        on_prompt=prompts.append,
    )
    assert not result.match and result.score < 0.35
    assert prompts == [
        "look straight at the camera",
        "turn your head to your right",
        "turn your head to your left",
        "done",
    ]
    assert audit_entries(enrolled)[-1][:2] == ("verify", "no-match")


def test_a_failed_session_is_refused_audited_and_counts_toward_lockout(
    enrolled: Verifier, pipeline: FacePipeline, samples: dict[str, Path], clock: FrozenClock
) -> None:
    still = poser(pipeline, samples["obama3"]).frame(noise=False)  # a photo injected as the camera
    with pytest.raises(ChallengeFailedError, match="static image") as info:
        enrolled.verify_live("alice", timed(clock, [still] * 10), challenges=[L, R])
    assert any("static image" in r for r in info.value.reasons)
    event, outcome, reason = audit_entries(enrolled)[-1]
    assert (event, outcome) == ("verify", "refused") and "static image" in reason
    assert "session " in reason and "turn-left, turn-right" in reason  # bound to the session
    # A recording cannot retry a random draw without bound: failures lock the subject out.
    for _ in range(4):
        with pytest.raises(ChallengeFailedError, match="session not finished"):
            enrolled.verify_live("alice", [])
    assert ("lockout", "locked", "level 1") in audit_entries(enrolled)
    frames = answer(poser(pipeline, samples["obama3"]), [L, R])
    with pytest.raises(LockedOutError):
        enrolled.verify_live("alice", timed(clock, frames), challenges=[L, R])


def _jpeg(frame: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def test_a_replay_of_a_passing_session_is_refused_and_counted_and_a_new_one_is_not(
    enrolled: Verifier, pipeline: FacePipeline, samples: dict[str, Path], clock: FrozenClock
) -> None:
    """The frames of a passing session, sent again (re-encoded, as a client would): the
    session's own checks pass them (the synthetic policy), the replay memory does not."""
    frames = answer(poser(pipeline, samples["obama3"]), [L, CLOSER])
    assert enrolled.verify_live("alice", timed(clock, frames), challenges=[L, CLOSER]).match
    replay = enrolled.start_session("alice", challenges=[L, CLOSER])
    for frame, at in timed(clock, [_jpeg(f, 80) for f in frames]):
        replay.feed(frame, at=at)
    assert replay.result().passed  # nothing in the session itself tells it from the first
    with pytest.raises(ChallengeFailedError, match="earlier passing session") as info:
        enrolled.finish(replay)
    assert "a replay of a recording" in info.value.reasons[0]
    event, outcome, reason = audit_entries(enrolled)[-1]
    assert (event, outcome) == ("verify", "refused") and "earlier passing session" in reason
    with enrolled.vault._unit("alice", read_only=True) as records:
        assert records.lockout("alice").failures == 1  # counted toward lockout
    # Another capture of the person (another photo animated: new frames) is not a replay.
    other = answer(poser(pipeline, samples["obama"]), [L, CLOSER])
    assert enrolled.verify_live("alice", timed(clock, other), challenges=[L, CLOSER]).match
    # Without the memory (policy off), the replay's frames are compared as any others.
    forgetful = Verifier(
        pipeline=enrolled.pipeline,
        pack=enrolled.pack,
        vault=enrolled.vault,
        profile=enrolled.profile,
        challenge_policy=replace(enrolled.challenge_policy, replay_memory=False),
    )
    assert forgetful.verify_live("alice", timed(clock, frames), challenges=[L, CLOSER]).match


def test_the_frames_of_a_live_enrolment_cannot_be_replayed_to_log_in(
    enrolled: Verifier, pipeline: FacePipeline, samples: dict[str, Path], clock: FrozenClock
) -> None:
    frames = answer(poser(pipeline, samples["obama3"]), [L, R, CLOSER])
    signup = enrolled.start_session("bob", challenges=[L, R, CLOSER], purpose="enroll")
    for frame, at in timed(clock, frames):
        signup.feed(frame, at=at)
    assert enrolled.enroll_live("bob", signup, consent=consent("bob")).images >= 2
    with pytest.raises(ChallengeFailedError, match="earlier passing session"):
        enrolled.verify_live("bob", timed(clock, [_jpeg(f, 90) for f in frames]), challenges=[L, R, CLOSER])
    other = answer(poser(pipeline, samples["obama"]), [L, CLOSER])
    assert enrolled.verify_live("bob", timed(clock, other), challenges=[L, CLOSER]).match


def test_a_remembered_session_this_version_cannot_read_stops_the_attempt_undecided(
    enrolled: Verifier, pipeline: FacePipeline, samples: dict[str, Path], clock: FrozenClock
) -> None:
    """A recollection that opens (sealed by faceverify) but that this version cannot read —
    another version wrote it — is a ConfigurationError: nothing decided, counted or remembered."""
    embedding = enrolled.pipeline.sample(samples["obama"], policy=enrolled.profile.quality).embedding
    enrolled.vault.enroll(
        "carol",
        np.stack([embedding]),
        consent=consent("carol"),
        model_pack_id=enrolled.pack.embedding_space,
        remember=b"FVR9: a recollection of a later version",
    )
    frames = answer(poser(pipeline, samples["obama3"]), [L, CLOSER])
    with pytest.raises(ConfigurationError, match="recollection"):
        enrolled.verify_live("carol", timed(clock, frames), challenges=[L, CLOSER])
    audit = enrolled.vault.audit
    assert isinstance(audit, AuditLog)
    assert [(e.event, e.outcome) for e in audit.entries(subject="carol")] == [("enroll", "ok")]
    with enrolled.vault._unit("carol", read_only=True) as records:
        assert records.lockout("carol").failures == 0
        assert len(records.recollections("carol", records.get("carol").template_id)) == 1  # type: ignore[union-attr]


def test_a_still_image_is_refused_under_a_liveness_profile(
    enrolled: Verifier, samples: dict[str, Path]
) -> None:
    with pytest.raises(LivenessRequiredError, match="verify_live"):
        enrolled.verify("alice", samples["obama3"])
    assert audit_entries(enrolled)[-1] == ("verify", "refused", "LivenessRequiredError")


def test_a_session_from_another_verifier_is_refused(
    enrolled: Verifier, pipeline: FacePipeline, pack: ModelPack
) -> None:
    other = Verifier(pipeline=pipeline, pack=pack, vault=enrolled.vault, profile=enrolled.profile)
    with pytest.raises(ChallengeFailedError, match="not started by this verifier"):
        enrolled.finish(other.start_session("alice"))


class FixedCheck:
    """A passive check with a fixed verdict (the real ones are measured in tests/liveness)."""

    def __init__(self, score: float) -> None:
        self.name, self.threshold, self._score = "fixed", 0.5, score

    def score(self, image: np.ndarray, face: object) -> float:
        return self._score


def test_a_configured_passive_check_runs_inside_the_session(
    enrolled: Verifier, pipeline: FacePipeline, samples: dict[str, Path], clock: FrozenClock
) -> None:
    # The liveness profiles run faceverify's own check by default (docs/liveness.md).
    assert enrolled.passive is not None and enrolled.passive.name.startswith("feature-pad")
    strict = Verifier(
        pipeline=pipeline,
        pack=enrolled.pack,
        vault=enrolled.vault,
        profile=enrolled.profile,
        passive=FixedCheck(0.1),
        challenge_policy=enrolled.challenge_policy,
    )
    frames = answer(poser(pipeline, samples["obama3"]), [CLOSER, L])
    with pytest.raises(ChallengeFailedError, match="passive check"):
        strict.verify_live("alice", timed(clock, frames), challenges=[CLOSER, L])


# -- CLI ---------------------------------------------------------------------------


def run_cli(*argv: str) -> tuple[int, str, str]:
    from faceverify._cli._main import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def write_video(path: Path, frames: list[np.ndarray], fps: float = 5.0) -> Path:
    cv2 = pytest.importorskip("cv2", reason="OpenCV (the video extra) is not installed")
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for f in frames:
        writer.write(np.ascontiguousarray(f[:, :, ::-1]))
    writer.release()
    return path


def test_cli_verify_from_a_video(
    tmp_path: Path, model_cache: Path, pipeline: FacePipeline, samples: dict[str, Path]
) -> None:
    # obama3's face rests turned 15-17 degrees to its left, at the edge of frontal: the recording
    # turns right (away from that edge), so that it clearly answers its challenges. At 10 frames a
    # second its first turn is held 0.4 s after its first frame, before the shortest hold (0.5 s) can
    # end: at 5 a second a hold drawn near 0.5 s put the prompt inside the turn, which then read as a
    # response too fast to count (refused as "not finished", not as a recording; 1 run in ~10).
    frames = answer(poser(pipeline, samples["obama3"]), [R, CLOSER])
    live = write_video(tmp_path / "live.avi", frames, fps=10.0)
    where = ["--vault", str(tmp_path / "vault"), "--key-file", str(tmp_path / "master.key")]
    models = ["--cache", str(model_cache), "--threshold", str(THRESHOLD)]
    evidence = tmp_path / "release.pdf"
    evidence.write_bytes(b"I agree to face verification for app login.")
    assert run_cli("keys", "init", *where)[0] == 0
    code, out, _ = run_cli(
        "enroll", "alice", str(samples["obama"]), str(samples["obama2"]), "--purpose", "app-login",
        "--consent-evidence", str(evidence), "--expires", "2099-12-31", *where, *models,
    )  # fmt: skip
    assert code == 0, out
    login = [*where, *models, "--profile", "app-login"]

    # The video answers its challenges, but it was made before the session: its answers come before
    # their prompts (each follows a random hold), so the default session refuses it as a recording.
    code, out, err = run_cli("verify", "alice", "--video", str(live),
                             "--challenges", "turn-right,move-closer", *login, "--json")  # fmt: skip
    assert code != 0 and "held before its prompt" in (out + err), (out, err)
    assert "challenges (fixed by --challenges): turn-right, move-closer" in err

    # The recording does not answer another sequence: not_live (exit 3), the reason on stderr.
    code, out, err = run_cli("verify", "alice", "--video", str(live), "--challenges", "turn-left,turn-right",
                             *login)  # fmt: skip
    assert code == 3 and out == ""
    assert "liveness challenge failed" in err and "turn-right" in err

    # A still image under app-login, --challenges without a video, and no capture at all: errors.
    code, _, err = run_cli("verify", "alice", str(samples["obama3"]), *login)
    assert code == 3 and "requires a live capture" in err
    code, _, err = run_cli("verify", "alice", "--camera", "0", "--challenges", "turn-left", *login)
    assert code == 2 and "only with --video" in err
    code, _, err = run_cli("verify", "alice", *login)
    assert code == 2 and "exactly one of" in err
    # Alice consented to app-login: a still image is refused whatever the profile (issue #10, item 3).
    code, out, err = run_cli("verify", "alice", str(samples["obama3"]), *where, *models, "--json")
    error = json.loads(out)["error"]  # --json: the error as a JSON object on stdout (docs/cli.md)
    assert code == 3 and error["code"] == "not_live" and "live capture" in error["message"] and err == ""
