"""The active challenge session, fed synthetic frame sequences made from real photos.

The frames are one photo animated by a depth warp (``liveness_frames.py``):
exactly what the session's animation checks refuse (``test_animation.py``).
These tests are about the challenge protocol (responses, deadlines, faces,
frame order, nonce, passive plumbing), not about liveness strength, so their
sessions switch the animation checks off explicitly (``SYNTHETIC``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import timedelta
from random import Random

import numpy as np
import pytest
from liveness_frames import Poser, small

from faceverify import ChallengeFailedError, FrozenClock
from faceverify._liveness import (
    Challenge,
    ChallengePolicy,
    ChallengeResult,
    ChallengeSession,
    State,
)
from faceverify.hazmat import Face, FacePipeline, cosine

STEP = timedelta(milliseconds=200)
L, R, UP, DOWN, CLOSER = (
    Challenge.TURN_LEFT,
    Challenge.TURN_RIGHT,
    Challenge.LOOK_UP,
    Challenge.LOOK_DOWN,
    Challenge.MOVE_CLOSER,
)

#: How a live person answers each challenge: poses (yaw°, pitch°, zoom), then back to rest.
RESPONSES = {
    L: [(12, 0, 1.0), (25, 0, 1.0), (25, 0, 1.0)],
    R: [(-12, 0, 1.0), (-25, 0, 1.0), (-25, 0, 1.0)],
    DOWN: [(0, -15, 1.0), (0, -30, 1.0), (0, -30, 1.0)],
    UP: [(0, 25, 1.0), (0, 38, 1.0), (0, 38, 1.0)],
    CLOSER: [(0, 0, 1.2), (0, 0, 1.4), (0, 0, 1.4)],
}
REST = [(0, 0, 1.0), (0, 0, 1.0)]


def feed(
    session: ChallengeSession, clock: FrozenClock, frames: Iterable[np.ndarray], *, step: timedelta = STEP
) -> State:
    state = session.state
    for frame in frames:
        clock.advance(step)
        state = session.feed(frame, at=clock.now())
        if session.finished:
            break
    return state


def answer(poser: Poser, challenges: Iterable[Challenge]) -> list[np.ndarray]:
    """Frames of a person at rest, then answering each challenge and returning to rest."""
    poses = list(REST)
    for c in challenges:
        poses += RESPONSES[c] + REST
    return [poser.frame(yaw=y, pitch=p, zoom=z) for y, p, z in poses]


def person(
    poser: Poser,
    session: ChallengeSession,
    *,
    react: int = 2,
    answers: dict[Challenge, Challenge] | None = None,
    stop_after: int | None = None,
) -> Iterator[np.ndarray]:
    """Frames of someone reading the session's prompts: at rest until a challenge is shown,
    ``react`` frames later its answer (or ``answers``' movement instead), then back to rest.
    With ``stop_after``, no more frames once that many challenges are answered."""
    answered = 0
    while not session.finished and answered != stop_after:
        asked = session.current
        if asked is None:
            yield poser.frame()
            continue
        yield from (poser.frame() for _ in range(react))
        done = (answers or {}).get(asked, asked)
        yield from (poser.frame(yaw=y, pitch=p, zoom=z) for y, p, z in RESPONSES[done] + REST)
        answered += 1


class Draws(Random):
    """Chosen numbers where a session draws at random (the holds before its prompts)."""

    def __init__(self, *values: float) -> None:
        super().__init__(0)
        self.values = list(values)

    def random(self) -> float:
        return self.values.pop(0)


#: The session's parameters for synthetic (warped-photo) frames: animation checks off.
SYNTHETIC = ChallengePolicy(animation_checks=False)


def session(
    pipeline: FacePipeline, clock: FrozenClock, challenges: list[Challenge], **kw: object
) -> ChallengeSession:
    kw.setdefault("policy", SYNTHETIC)
    return ChallengeSession(pipeline, clock=clock, challenges=challenges, **kw)  # type: ignore[arg-type]


def failed_check(result: ChallengeResult) -> str:
    return next(c.name for c in result.checks if not c.passed)


def test_correct_responses_pass_and_yield_the_best_frontal_samples(
    pipeline: FacePipeline, clock: FrozenClock, obama: Poser, samples: dict
) -> None:
    s = session(pipeline, clock, [L, CLOSER, R])
    assert s.prompt == "look straight at the camera"
    feed(s, clock, answer(obama, [L, CLOSER, R]))
    result = s.result()
    assert result.passed, result.reasons
    assert result.raise_if_failed() is result
    names = [c.name for c in result.checks]
    assert names[:1] == ["baseline"]
    assert {
        "challenge:turn-left",
        "challenge:move-closer",
        "challenge:turn-right",
        "same-face",
        "motion",
    } <= set(names)
    assert 1 <= len(result.best_samples) <= 3
    # The samples are the person's: they match another photo of obama, not biden.
    other = pipeline.sample(samples["obama2"], policy=None)
    assert cosine(result.best_samples[0].embedding, other.embedding) > 0.5
    biden = pipeline.sample(samples["biden"], policy=None)
    assert cosine(result.best_samples[0].embedding, biden.embedding) < 0.3


@pytest.mark.parametrize(
    "who, challenges",
    [("obama", [DOWN, UP]), ("obama", [R, UP, CLOSER]), ("obama3", [L, R]), ("obama3", [DOWN, CLOSER])],
)
def test_other_responses_and_another_photo_pass(
    pipeline: FacePipeline, clock: FrozenClock, samples: dict, who: str, challenges: list[Challenge]
) -> None:
    poser = Poser(pipeline, small(samples[who]))
    s = session(pipeline, clock, challenges)
    feed(s, clock, answer(poser, challenges))
    assert s.result().passed, s.result().reasons


def test_a_static_image_repeated_fails_for_lack_of_motion(
    pipeline: FacePipeline, clock: FrozenClock, obama: Poser
) -> None:
    s = session(pipeline, clock, [L, R])
    still = obama.frame(noise=False)
    feed(s, clock, [still] * 10)
    result = s.result()
    assert not result.passed
    assert failed_check(result) == "motion"
    assert "static image" in result.reasons[0]
    with pytest.raises(ChallengeFailedError) as err:
        result.raise_if_failed()
    assert err.value.reasons == result.reasons


@pytest.mark.parametrize("who", ["obama", "biden"])
def test_a_flat_print_turned_or_tilted_does_not_answer_a_turn(
    pipeline: FacePipeline, clock: FrozenClock, samples: dict, who: str
) -> None:
    """Turning a print foreshortens it but leaves the nose between the eyes: no yaw.
    (Past ~50° the detector's points fake a yaw; the foreshortening gate ignores it.)"""
    s = session(pipeline, clock, [L, R])
    moves = [
        (0, 0),
        (0, 0),
        (30, 0),
        (45, 0),
        (60, 0),
        (60, 0),
        (45, 10),
        (-45, -10),
        (-60, 0),
        (-60, 0),
        (0, 20),
    ]
    poser = Poser(pipeline, small(samples[who]))
    feed(s, clock, [poser.print_held(turn=t, roll=r, zoom=1.1) for t, r in moves])
    assert s.current is L  # the baseline was found, the turn never seen
    clock.advance(s.policy.time_per_challenge)
    result = s.result()
    assert not result.passed and failed_check(result) == "deadline"


def test_a_wrong_response_fails(pipeline: FacePipeline, clock: FrozenClock, obama: Poser) -> None:
    s = session(pipeline, clock, [L, CLOSER])
    # Asked to turn left, turns right, clearly (1.5x the threshold: a 25° synthetic turn can
    # read as little as 18°, so this one goes to 35°).
    feed(s, clock, [obama.frame(yaw=y) for y in (0, 0, -15, -35, -35)])
    result = s.result()
    assert not result.passed
    assert failed_check(result) == "challenge:turn-left"
    assert "wrong response: turn-right" in result.reasons[0]


def test_a_late_response_fails(pipeline: FacePipeline, clock: FrozenClock, obama: Poser) -> None:
    s = session(pipeline, clock, [L, R])
    frames = answer(obama, [L, R])
    feed(s, clock, frames[:2])  # baseline seen: "turn left" is pending
    assert s.current is L
    clock.advance(s.policy.time_per_challenge)  # the person waits too long
    feed(s, clock, frames[2:])
    result = s.result()
    assert not result.passed
    assert failed_check(result) == "deadline"
    assert "turn-left" in result.reasons[0]


def test_a_session_left_unanswered_fails_at_its_deadline(
    pipeline: FacePipeline, clock: FrozenClock, obama: Poser
) -> None:
    s = session(pipeline, clock, [L, R])
    feed(s, clock, answer(obama, []))
    unfinished = s.result()
    assert not unfinished.passed and "session not finished" in unfinished.reasons[-1]
    clock.advance(timedelta(minutes=1))
    assert failed_check(s.result()) == "deadline"


def test_a_different_face_mid_session_fails(
    pipeline: FacePipeline, clock: FrozenClock, obama: Poser, biden: Poser
) -> None:
    s = session(pipeline, clock, [L, R])
    frames = answer(obama, [L])[:4] + answer(biden, [L, R])
    feed(s, clock, frames)
    result = s.result()
    assert not result.passed
    assert failed_check(result) == "same-face"
    assert "different face" in result.reasons[0]


def test_frames_out_of_order_or_from_another_session_fail(
    pipeline: FacePipeline, clock: FrozenClock, obama: Poser
) -> None:
    s = session(pipeline, clock, [L, R])
    first = clock.now() + STEP
    s.feed(obama.frame(), at=first)
    s.feed(obama.frame(), at=first)
    assert failed_check(s.result()) == "frame-order"

    s2 = session(pipeline, clock, [L, R])
    s2.feed(obama.frame(), nonce=s.nonce)
    assert failed_check(s2.result()) == "nonce"


def test_challenges_are_drawn_at_random_with_a_nonce_and_deadline(
    pipeline: FacePipeline, clock: FrozenClock
) -> None:
    policy = ChallengePolicy()
    drawn = [ChallengeSession(pipeline, clock=clock, rng=Random(i)) for i in range(30)]
    assert all(2 <= len(d.challenges) <= 3 and len(set(d.challenges)) == len(d.challenges) for d in drawn)
    assert all({L, R} & set(d.challenges) for d in drawn)  # at least one turn: yaw is measured best
    assert len({d.challenges for d in drawn}) > 10
    assert len({d.nonce for d in drawn}) == 30
    d = drawn[0]
    # The deadline allows the longest hold before each prompt: the client it is handed to learns
    # nothing of the holds drawn (the same for every draw of as many challenges).
    waits = (policy.time_per_challenge + policy.prompt_hold[1]) * len(d.challenges)
    assert d.deadline == d.started + policy.baseline_time + waits
    assert len({x.deadline - x.started for x in drawn if len(x.challenges) == len(d.challenges)}) == 1
    lo, hi = (t.total_seconds() for t in policy.prompt_hold)
    every = [h for x in drawn for h in x.holds]
    assert all(lo <= h <= hi for h in every) and len(set(every)) > len(every) // 2
    assert hi - lo >= 2.5 and min(every) < lo + 0.5 and max(every) > hi - 0.5
    synthetic = ChallengeSession(pipeline, clock=clock, policy=SYNTHETIC, rng=Random(0))
    assert set(synthetic.holds) == {0.0}  # frames made before the session: prompts at once
    default = ChallengeSession(pipeline, clock=clock)  # the OS's CSPRNG
    assert 2 <= len(default.challenges) <= 3


class FixedCheck:
    """A passive check whose verdict is beside the point of these tests."""

    def __init__(self, score: float) -> None:
        self.name, self.threshold, self._score, self.seen = "fixed", 0.5, score, 0

    def score(self, image: np.ndarray, face: Face) -> float:
        self.seen += 1
        return self._score


@pytest.mark.parametrize("score, passed", [(0.9, True), (0.1, False)])
def test_a_configured_passive_check_runs_on_the_best_frames(
    pipeline: FacePipeline, clock: FrozenClock, obama: Poser, score: float, passed: bool
) -> None:
    check = FixedCheck(score)
    s = session(pipeline, clock, [CLOSER, L], passive=check)
    feed(s, clock, answer(obama, [CLOSER, L]))
    result = s.result()
    assert result.passed is passed, result.reasons
    # Scored as the best frames are kept (no frame is held to the end), decided on the best few.
    assert result.passive is not None and check.seen >= result.passive.frames >= 1
    if not passed:
        assert failed_check(result) == "passive-pad"
