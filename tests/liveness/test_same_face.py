"""The same-face check's three answers: the tracked face, another face, or cannot tell.

Cosines between frames of one real person can fall as low as a stranger's
(the real speaker video: 0.296 across 28° of yaw with a microphone before the
mouth; two different people among the sample photos: 0.32). A frame in that
zone is neither refused nor used; only a clear stranger (below ``other_face``
with the baseline and with the last frame read: a face that was not there the
frame before) fails the session, so a real face the recognizer loses without a
cut (looking at the ground) is not refused as another. The thresholds are
calibrated for the pack's revision and recorded with it (``benchmarks/same_face.py``).
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from liveness_frames import Poser, small
from test_challenge import SYNTHETIC, L, R, answer, failed_check, feed

from faceverify import ConfigurationError, FrozenClock
from faceverify._liveness import ChallengePolicy, ChallengeSession, State, frames_from_video
from faceverify._liveness import _challenge as challenge_module
from faceverify._liveness._challenge import same_face
from faceverify._models._manifest import ModelPack, SessionIdentity
from faceverify._verifier import pack_session_policy
from faceverify.hazmat import FacePipeline, builtin_manifest, cosine

SHARED = Path(os.environ.get("FACEVERIFY_SHARED", Path(__file__).resolve().parents[3] / "shared"))
VIDEO = SHARED / "data" / "video"


@pytest.fixture(scope="module")
def speaker() -> list[np.ndarray]:
    if not (VIDEO / "speaker-stage.mp4").exists():
        pytest.skip(f"the real face videos are not at {VIDEO} (research data lives in ../shared)")
    return [f for f, _ in frames_from_video(VIDEO / "speaker-stage.mp4", max_frames=171)]


def test_a_real_person_whose_frames_match_only_weakly_is_not_refused(
    pipeline: FacePipeline, clock: FrozenClock, speaker: list[np.ndarray]
) -> None:
    """The real speaker, as the session locates him: the baseline at frame 142 (yaw -13°), then
    frame 170 (yaw +11°, the microphone before the mouth) scores 0.31 with it; the session
    refused him there at 0.40."""
    s = ChallengeSession(pipeline, clock=clock, policy=ChallengePolicy(), challenges=[L, R])
    clock.advance(timedelta(milliseconds=100))
    s.feed(speaker[142], at=clock.now())
    assert s.state is State.CHALLENGE  # the baseline
    clock.advance(timedelta(milliseconds=934))
    s.feed(speaker[170], at=clock.now())
    assert s.state is State.CHALLENGE, s.result().reasons
    assert not [c for c in s.result().checks if not c.passed]
    assert len(s.result().best_samples) == 1  # frame 170 counted for nothing: not a best frame


def test_a_stranger_who_cannot_be_told_apart_answers_nothing(
    pipeline: FacePipeline, clock: FrozenClock, obama: Poser, biden: Poser
) -> None:
    """With ``other_face`` at -1 nobody is "another face": every frame of the other person is
    in the zone that cannot be told, so his answers count for nothing and the session runs
    out of time; the same person's answers pass under the same policy."""
    policy = replace(SYNTHETIC, other_face=-1.0)
    stranger = [obama.frame(), *answer(biden, [L, R])]
    s = ChallengeSession(pipeline, clock=clock, policy=policy, challenges=[L, R])
    feed(s, clock, stranger)
    assert s.state is State.CHALLENGE and s.progress == (0, 2)
    clock.advance(timedelta(seconds=7))
    assert failed_check(s.result()) == "deadline"
    same = ChallengeSession(pipeline, clock=clock, policy=policy, challenges=[L, R])
    feed(same, clock, [obama.frame(), *answer(obama, [L, R])])
    assert same.result().passed


def test_a_clear_stranger_is_refused_as_before(
    pipeline: FacePipeline, clock: FrozenClock, obama: Poser, biden: Poser
) -> None:
    base = pipeline.sample(obama.frame(), policy=None).embedding
    assert cosine(base, pipeline.sample(biden.frame(), policy=None).embedding) < SYNTHETIC.other_face
    s = ChallengeSession(pipeline, clock=clock, policy=SYNTHETIC, challenges=[L, R])
    feed(s, clock, [obama.frame(), obama.frame(), biden.frame()])
    assert failed_check(s.result()) == "same-face"
    assert "< 0.24 with the first frame" in s.result().reasons[0]


@pytest.mark.parametrize(
    "to_base, to_prev, to_last, other, unsure",
    [
        (0.90, None, 0.90, False, False),  # the tracked face, frontal
        (0.30, None, 0.90, False, True),  # frontal, short of same_face: cannot tell
        (0.10, None, 0.60, False, True),  # lost by the recognizer without a cut: cannot tell
        (0.10, 0.60, 0.60, False, True),  # the same, turned
        (0.10, None, 0.20, True, False),  # matches neither the baseline nor the frame before
        (0.20, 0.20, 0.10, True, False),  # the same, turned
        (0.20, 0.90, 0.90, False, True),  # turned, below the floor with the baseline
        (0.35, 0.50, 0.50, False, False),  # turned, held to the previous frame and the floor
    ],
)
def test_another_face_needs_a_discontinuity(
    to_base: float, to_prev: float | None, to_last: float, other: bool, unsure: bool
) -> None:
    why_other, why_unsure = same_face(ChallengePolicy(), to_base, to_prev, to_last=to_last)
    assert (bool(why_other), bool(why_unsure)) == (other, unsure)


#: A person looking down to the ground and back, 3 degrees a frame, from the sample photo's
#: depth warp: from about 45 degrees down the recognizer no longer reads him as himself.
LOOK_DOWN = [*range(0, 51, 3), 36, 24, 12, 0, 0]
TEN_FPS = timedelta(milliseconds=100)


@pytest.fixture
def posers(pipeline: FacePipeline, samples: dict[str, Path]) -> tuple[Poser, Poser]:
    """Two people with their own draws (the shared posers' depend on the tests run before)."""
    return Poser(pipeline, small(samples["obama"])), Poser(pipeline, small(samples["biden"]), seed=1)


def test_a_face_the_recognizer_loses_without_a_cut_is_not_refused_as_another(
    pipeline: FacePipeline, clock: FrozenClock, posers: tuple[Poser, Poser], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every frame read (``identity_every`` 1): looking down, the face falls below
    ``other_face`` with its own baseline (where that cosine alone would refuse it as another)
    while each frame still matches the one before; it counts for nothing, and once back the
    person answers and passes."""
    obama, _ = posers
    read: list[tuple[float, float]] = []

    def spy(policy: ChallengePolicy, to_base: float, to_prev: float | None, *, to_last: float) -> Any:
        read.append((to_base, to_last))
        return same_face(policy, to_base, to_prev, to_last=to_last)

    monkeypatch.setattr(challenge_module, "same_face", spy)
    policy = replace(SYNTHETIC, identity_every=1)
    s = ChallengeSession(pipeline, clock=clock, policy=policy, challenges=[L, R])
    feed(s, clock, [obama.frame(pitch=-a) for a in LOOK_DOWN] + answer(obama, [L, R]), step=TEN_FPS)
    assert s.result().passed, s.result().reasons
    lost = [last for base, last in read if base < policy.other_face]
    assert lost and min(lost) >= policy.other_face  # lost by the recognizer, never by a cut


@pytest.mark.parametrize("swapped", [4, 6])  # looking down 12 and 18 degrees
def test_a_face_swapped_in_while_the_person_looks_down_is_refused_at_once(
    pipeline: FacePipeline, clock: FrozenClock, posers: tuple[Poser, Poser], swapped: int
) -> None:
    obama, biden = posers
    frames = [obama.frame(pitch=-a) for a in LOOK_DOWN]
    frames[swapped] = biden.frame(pitch=-LOOK_DOWN[swapped])
    s = ChallengeSession(pipeline, clock=clock, policy=SYNTHETIC, challenges=[L, R])
    feed(s, clock, frames, step=TEN_FPS)
    result = s.result()
    assert failed_check(result) == "same-face"
    assert result.frames == swapped + 1  # on the swapped frame itself


def test_the_defaults_are_the_default_packs_recorded_cosines(pack: ModelPack) -> None:
    ident = builtin_manifest("yunet-sface").session_identity
    assert ident is not None and ident.embedding_space == pack.embedding_space
    policy = ChallengePolicy()
    assert (policy.same_face, policy.other_face, policy.same_face_floor) == (
        ident.same_face,
        ident.other_face,
        ident.same_face_floor,
    )
    assert ident.same_face_fmr <= 1e-3 and ident.other_face_fnmr <= 1e-3  # the rule it was chosen by


def test_a_verifier_takes_its_packs_cosines_and_refuses_another_revisions(pack: ModelPack) -> None:
    assert pack.session_identity is not None
    mine = replace(pack.session_identity, same_face=0.5, other_face=0.1, same_face_floor=0.2)
    policy = pack_session_policy(replace(pack, session_identity=mine), quality=SYNTHETIC.quality)
    assert (policy.same_face, policy.other_face, policy.same_face_floor) == (0.5, 0.1, 0.2)
    stale = replace(mine, embedding_space="yunet-sface@2")
    with pytest.raises(ConfigurationError, match="yunet-sface@2"):
        pack_session_policy(replace(pack, session_identity=stale), quality=SYNTHETIC.quality)
    none = pack_session_policy(replace(pack, session_identity=None), quality=SYNTHETIC.quality)
    assert none.same_face == ChallengePolicy().same_face


@pytest.mark.parametrize(
    "bad",
    [
        {"other_face": 0.5},  # above same_face
        {"other_face": 0.35},  # above same_face_floor
        {"same_face": 1.2},
        {"other_face": float("nan")},
    ],
)
def test_same_face_cosines_are_validated(bad: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError, match="same-face"):
        ChallengePolicy(**bad)  # type: ignore[arg-type]


def test_session_identity_is_parsed_with_the_pack() -> None:
    assert isinstance(builtin_manifest("yunet-sface").session_identity, SessionIdentity)
