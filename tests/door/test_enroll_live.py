"""``Verifier.enroll_live`` (contract C2): enrolment from a passed live session, real models.

A kiosk session of one photo's face warped into head movements
(``door_frames``) enrols several distinct frontal frames; the door then
verifies another photo of the same person against that template at the
calibrated default point. A failed session enrols nothing, and a session made
for one ceremony is refused by the other.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pytest
from door_frames import Poser, answer
from door_helpers import consent

from faceverify._clock import FrozenClock
from faceverify._errors import ChallengeFailedError, ConfigurationError, ConsentError, UnknownSubjectError
from faceverify._liveness import Challenge
from faceverify._vault import AuditLog, OpenedTemplate
from faceverify._verifier import (
    MIN_LIVE_ENROLMENT_IMAGES,
    NEAR_DUPLICATE_COSINE,
    LiveSession,
    SessionPurpose,
    Verifier,
)
from faceverify.hazmat import cosine

L, R, CLOSER = Challenge.TURN_LEFT, Challenge.TURN_RIGHT, Challenge.MOVE_CLOSER


def timed(clock: FrozenClock, frames: list[np.ndarray]) -> Iterable[tuple[np.ndarray, datetime]]:
    for frame in frames:
        clock.advance(timedelta(milliseconds=100))
        yield frame, clock.now()


def run(
    verifier: Verifier,
    clock: FrozenClock,
    person: Poser,
    challenges: list[Challenge],
    purpose: SessionPurpose = "verify",
) -> LiveSession:
    """A session for alice fed ``person`` answering ``challenges``, 10 frames a second."""
    session = verifier.start_session("alice", challenges=challenges, purpose=purpose)
    for frame, at in timed(clock, answer(person, challenges)):
        session.feed(frame, at=at)
        if session.finished:
            break
    return session


@dataclass
class _Declined:
    match: bool = False


def stored_embeddings(verifier: Verifier, subject: str) -> np.ndarray:
    seen: list[np.ndarray] = []

    def look(opened: OpenedTemplate) -> _Declined:
        seen.append(opened.embeddings)
        return _Declined()

    probe = np.full(verifier.pipeline.embedder.dim, verifier.pipeline.embedder.dim**-0.5, np.float32)
    verifier.vault.verify(subject, probe, look, model_pack_id=verifier.pack.embedding_space, live=True)
    return seen[0]


def entries(verifier: Verifier) -> list[tuple[str, str, str]]:
    audit = verifier.vault.audit
    assert isinstance(audit, AuditLog)
    return [(e.event, e.outcome, e.reason) for e in audit.entries(subject="alice")]


def test_a_passed_session_enrols_several_distinct_frames_that_then_verify(
    verifier: Verifier, clock: FrozenClock, alice_at_kiosk: Poser, alice: Poser
) -> None:
    session = run(verifier, clock, alice_at_kiosk, [L, CLOSER], purpose="enroll")
    assert session.purpose == "enroll" and session.finished
    enrolled = verifier.enroll_live("alice", session, consent=consent("alice"), actor="kiosk:op-1")
    assert MIN_LIVE_ENROLMENT_IMAGES <= enrolled.images <= 5 and not enrolled.replaced
    members = verifier.vault.store.get("alice")
    assert members is not None and members.state == "active"
    assert entries(verifier)[-1][:2] == ("enroll", "ok")
    # The frames are distinct (no near-duplicates), and all of one person: read through the
    # vault's one-subject path (a comparison that declines to match, so it counts as one failure).
    emb = stored_embeddings(verifier, "alice")
    assert len(emb) == enrolled.images
    pairs = [cosine(emb[i], emb[j]) for i in range(len(emb)) for j in range(i)]
    assert all(0.6 < p <= NEAR_DUPLICATE_COSINE for p in pairs), pairs
    # The door verifies another photo of alice at the calibrated default point.
    door = run(verifier, clock, alice, [R, L])
    result = verifier.finish(door)
    assert result.match and result.operating_point.name == "default" and result.operating_point.calibrated


def test_a_failed_session_enrols_nothing(
    verifier: Verifier, clock: FrozenClock, alice_at_kiosk: Poser
) -> None:
    session = verifier.start_session("alice", challenges=[L, R], purpose="enroll")
    still = alice_at_kiosk.frame(noise=False)  # a photo held up in place of the person
    for frame, at in timed(clock, [still] * 6):
        session.feed(frame, at=at)
    with pytest.raises(ChallengeFailedError, match="static image"):
        verifier.enroll_live("alice", session, consent=consent("alice"))
    assert verifier.vault.store.get("alice") is None
    assert entries(verifier)[-1][:2] == ("enroll", "refused")
    # An unfinished session (the person walked away) enrols nothing either.
    walked_away = verifier.start_session("alice", purpose="enroll")
    with pytest.raises(ChallengeFailedError, match="session not finished"):
        verifier.enroll_live("alice", walked_away, consent=consent("alice"))
    with pytest.raises(UnknownSubjectError):
        verifier.vault.consent("alice")


def test_a_session_serves_one_ceremony_once(
    verifier: Verifier, clock: FrozenClock, alice_at_kiosk: Poser, alice: Poser
) -> None:
    # A verification session, even a passed one, cannot enrol ...
    check = run(verifier, clock, alice_at_kiosk, [L, CLOSER])
    with pytest.raises(ChallengeFailedError, match="for a verification, not an enrolment"):
        verifier.enroll_live("alice", check, consent=consent("alice"))
    assert verifier.vault.store.get("alice") is None
    # ... and an enrolment session cannot open a door, and is then used up.
    kiosk = run(verifier, clock, alice_at_kiosk, [L, CLOSER], purpose="enroll")
    verifier.enroll_live("alice", kiosk, consent=consent("alice"))
    door = run(verifier, clock, alice, [R, L], purpose="enroll")
    with pytest.raises(ChallengeFailedError, match="for an enrolment, not a verification"):
        verifier.finish(door)
    with pytest.raises(ChallengeFailedError, match="already decided"):
        verifier.enroll_live("alice", kiosk, consent=consent("alice"))
    # A session for another subject, or consent for another purpose, enrols nothing.
    bob = verifier.start_session("bob", purpose="enroll")
    with pytest.raises(ChallengeFailedError, match="another subject"):
        verifier.enroll_live("alice", bob, consent=consent("alice"))
    other = verifier.start_session("alice", purpose="enroll")
    with pytest.raises(ConsentError):
        verifier.enroll_live("alice", other, consent=consent("alice", purpose="app-login"))
    assert ("enroll", "refused") in [e[:2] for e in entries(verifier)]


def test_a_snapshot_keeps_the_purpose(verifier: Verifier, clock: FrozenClock, alice_at_kiosk: Poser) -> None:
    session = verifier.start_session("alice", challenges=[L, CLOSER], purpose="enroll")
    for frame, at in list(timed(clock, answer(alice_at_kiosk, [L, CLOSER])))[:4]:
        session.feed(frame, at=at)
    kw = {"clock": clock, "passive": verifier.passive}
    restored = LiveSession.restore(
        session.snapshot(), verifier.pipeline, policy=verifier.session_policy("enroll"), **kw
    )
    assert (restored.purpose, restored.subject_id, restored.nonce) == ("enroll", "alice", session.nonce)
    # Another ceremony's policy does not restore it: the policy is part of what was decided on.
    with pytest.raises(ConfigurationError, match="another ChallengePolicy"):
        LiveSession.restore(
            session.snapshot(), verifier.pipeline, policy=verifier.session_policy("verify"), **kw
        )
