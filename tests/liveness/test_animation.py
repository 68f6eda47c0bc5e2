"""Animation and replay checks: one photo animated, a still, a repeated frame, a replay.

The synthetic frames of ``liveness_frames.py`` are the issue's attack itself:
one photo animated by a depth warp. They answer the challenges (the session
with the animation checks off passes them); the default session must refuse
them, and a still image, a repeated frame and a replayed recording of a
passing session must never pass. Figures on many attack families and on real
videos are the benchmark's (``benchmarks/live_attacks.py``), not asserted here.
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from random import Random

import numpy as np
import pytest
from liveness_frames import Poser
from test_challenge import CLOSER, DOWN, STEP, SYNTHETIC, UP, Draws, L, R, answer, failed_check, feed, person

from faceverify import ConfigurationError, FrozenClock
from faceverify._liveness import Challenge, ChallengePolicy, ChallengeSession, FrameFeedback
from faceverify._liveness._animation import (
    TextureTrace,
    TraceRules,
    face_patch,
    texture_residual,
)
from faceverify._liveness._challenge import _draw
from faceverify.hazmat import FacePipeline

DEFAULT = ChallengePolicy()
ROOT = Path(__file__).resolve().parents[2]
VIDEO = Path(os.environ.get("FACEVERIFY_SHARED", ROOT.parent / "shared")) / "data" / "video"


def patch_of(pipeline: FacePipeline, frame: np.ndarray) -> np.ndarray:
    face = pipeline.locate(frame, select="dominant")
    return face_patch(pipeline.aligner.align(frame, face.landmarks))


def test_a_smooth_warp_of_one_texture_leaves_nothing_a_new_texture_does(
    pipeline: FacePipeline, obama: Poser, biden: Poser
) -> None:
    base = patch_of(pipeline, obama.frame())
    assert texture_residual(base, base) < 1e-3
    again = patch_of(pipeline, obama.frame())  # the same photo: new jitter, new noise
    assert texture_residual(base, again, blur=1.0) < DEFAULT.texture_change_min
    turned = patch_of(pipeline, obama.frame(yaw=20))  # the photo warped: explained by a smooth warp
    other = patch_of(pipeline, biden.frame())  # another texture altogether
    assert texture_residual(base, other) > 5 * texture_residual(base, turned)
    # A blink (the eyes' band darkened) is a change no warp of the open eyes makes.
    blink = again.copy()
    blink[22:30, 12:44] = (blink[22:30, 12:44] * 0.55).astype(np.uint8)
    assert texture_residual(base, blink, blur=1.0) > DEFAULT.texture_change_min


def test_the_trace_compares_frames_in_the_same_pose_far_enough_apart() -> None:
    rng = np.random.default_rng(0)
    patch = rng.integers(0, 255, (56, 56), dtype=np.uint8)
    trace = TextureTrace(TraceRules(gap=0.3, spacing=0.2, frames=4, pairs=2))
    trace.add(0.0, 0.0, 0.0, 60.0, patch)
    trace.add(0.1, 0.0, 0.0, 60.0, patch)  # too soon after the last: not kept
    trace.add(0.25, 25.0, 0.0, 60.0, patch)  # turned: pairs with nothing
    assert len(trace.frames) == 2 and trace.pairs() == [] and trace.change() is None
    trace.add(0.5, 2.0, 1.0, 62.0, patch)  # back at rest: pairs with the baseline
    trace.add(0.8, 24.0, 0.0, 61.0, patch)  # turned again: pairs with the first turn
    assert trace.pairs() == [(1, 3), (0, 2)]  # widest apart first
    trace.add(1.1, 0.0, 0.0, 60.0, patch)  # the oldest after the baseline goes
    assert len(trace.frames) == 4 and trace.frames[0].t == 0.0 and trace.frames[1].t == 0.5
    assert trace.change() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("challenges", [[L, CLOSER], [R, UP], [DOWN, L, R]])
def test_the_issue_s_animated_photo_answers_the_challenges_but_is_refused(
    pipeline: FacePipeline, clock: FrozenClock, obama: Poser, challenges: list[Challenge]
) -> None:
    alone = ChallengeSession(pipeline, clock=clock, policy=SYNTHETIC, challenges=challenges)
    feed(alone, clock, answer(obama, challenges))
    assert alone.result().passed, alone.result().reasons  # the challenge alone falls to it
    s = ChallengeSession(pipeline, clock=clock, policy=DEFAULT, challenges=challenges)
    feed(s, clock, person(obama, s))  # a script reading the prompts, as the issue's attacker
    assert s.progress == (len(challenges), len(challenges))  # every challenge answered, in time
    result = s.result()
    assert not result.passed and failed_check(result) == "rigid-texture", result.reasons
    assert "one picture warped or held" in result.reasons[0]


def test_an_animated_photo_with_heavy_noise_and_flicker_is_refused(
    pipeline: FacePipeline, clock: FrozenClock, samples: dict[str, Path]
) -> None:
    """Noise (σ 6) and exposure flicker on every frame do not make one photo a face."""
    from liveness_frames import small

    poser = Poser(pipeline, small(samples["obama3"]), seed=7)
    rng = np.random.default_rng(7)
    s = ChallengeSession(pipeline, clock=clock, policy=DEFAULT, challenges=[L, R])
    frames = (
        np.clip(f * rng.uniform(0.9, 1.1) + rng.normal(0, 6, f.shape), 0, 255).astype(np.uint8)
        for f in person(poser, s)
    )
    feed(s, clock, frames)
    assert failed_check(s.result()) == "rigid-texture", s.result().reasons


def test_a_still_image_and_a_repeated_frame_never_pass(
    pipeline: FacePipeline, clock: FrozenClock, obama: Poser
) -> None:
    still = obama.frame(noise=False)
    s = ChallengeSession(pipeline, clock=clock, policy=DEFAULT, challenges=[L, R])
    feed(s, clock, [still] * 8)
    assert failed_check(s.result()) == "motion"
    # The same frame with fresh sensor noise each time passes the motion check, answers nothing:
    # once its prompt is out (held still 0.4 s, then a hold of at most 3.5 s), 2 s without an
    # answer fail it: by 6.4 s after the baseline at the latest.
    noisy = ChallengeSession(pipeline, clock=clock, policy=DEFAULT, challenges=[L, R])
    feed(noisy, clock, (obama.frame() for _ in range(40)))  # 8 s
    assert failed_check(noisy.result()) == "timing" and "not met" in noisy.result().reasons[0]
    # A frame repeated between fresh ones: the fresh ones are one photo, and nothing is answered.
    mixed = ChallengeSession(pipeline, clock=clock, policy=DEFAULT, challenges=[L, R])
    feed(mixed, clock, [still, obama.frame()] * 5)
    clock.advance(DEFAULT.time_per_challenge)
    assert not mixed.result().passed


def test_a_session_whose_face_never_held_still_ends_saying_so(
    pipeline: FacePipeline, clock: FrozenClock, obama: Poser
) -> None:
    """The first hold begins once the rigid-texture check has two frames in the same pose 0.3 s
    apart (test_session_state: the feedback says hold still until then); without them the prompt
    never comes, and the session's reason says why rather than failing the check at the end."""
    s = ChallengeSession(pipeline, clock=clock, policy=DEFAULT, challenges=[L, R], rng=Draws(0.0, 0.0))
    feed(s, clock, [obama.frame(), obama.frame()])  # the baseline, and 0.2 s later the camera stops
    assert s.feedback == (FrameFeedback.HOLD_STILL,) and s.current is None
    clock.advance(timedelta(seconds=30))
    result = s.result()
    assert failed_check(result) == "deadline" and "did not hold still" in result.reasons[0], result.reasons
    # Each way a session can run out before its first prompt says which it was.
    turned = ChallengeSession(pipeline, clock=clock, policy=DEFAULT, challenges=[L, R], rng=Draws(0.0, 0.0))
    while turned.progress == (0, 2) and not turned.finished:  # answers turn-left, stays turned
        feed(turned, clock, [obama.frame(yaw=25 if turned.current is L else 0)])
    feed(turned, clock, [obama.frame(yaw=25)])
    assert turned.progress == (1, 2) and not turned.finished, turned.result().reasons
    held = ChallengeSession(pipeline, clock=clock, policy=DEFAULT, challenges=[L, R], rng=Draws(1.0, 0.0))
    for _ in range(8):  # held still: two frames in the same pose (0.4-0.6 s), then its 3.5 s hold runs
        feed(held, clock, [obama.frame()])
        if held._hold_from is not None:
            break
    assert held._hold_from is not None and held.current is None
    clock.advance(timedelta(seconds=30))
    assert "did not come back to rest" in turned.result().reasons[0], turned.result().reasons
    assert "the frames stopped during its hold" in held.result().reasons[0], held.result().reasons


def test_a_replayed_recording_of_a_passing_session_never_passes(
    pipeline: FacePipeline, clock: FrozenClock, obama: Poser
) -> None:
    """A recording of a session that passed (with the animation checks off: the only passing
    sessions a test can record), replayed with its own timing against new draws."""
    recorded = [L, CLOSER]
    frames = answer(obama, recorded)
    original = ChallengeSession(pipeline, clock=clock, policy=SYNTHETIC, challenges=recorded)
    feed(original, clock, frames)
    assert original.result().passed
    draws = {tuple(_draw(Random(seed), 2, 3)) for seed in range(40)}
    draws = {d for d in draws if d != tuple(recorded)}
    for draw in sorted(draws, key=str)[:6]:  # another draw: the recording answers the wrong thing
        s = ChallengeSession(pipeline, clock=clock, policy=SYNTHETIC, challenges=draw)
        feed(s, clock, frames)
        clock.advance(timedelta(seconds=30))
        assert not s.result().passed, draw
    # The same draw by chance: the challenge alone cannot tell; the default session's prompts come
    # after random holds (here the longest, 3.5 s), which the recording did not wait for.
    s = ChallengeSession(pipeline, clock=clock, policy=DEFAULT, challenges=recorded, rng=Draws(1.0, 1.0))
    feed(s, clock, frames)
    assert failed_check(s.result()) == "timing" and "before its prompt" in s.result().reasons[0]


#: A recording of the real person would pass the rigid-texture check; the animated photo
#: stands in for it with that check's threshold at 0 (everything else as shipped).
AS_IF_REAL = replace(DEFAULT, texture_change_min=0.0)


@pytest.mark.parametrize(
    "holds, refused",
    [
        ((0.5, 0.5), ""),  # the draw repeats the recording's timing: only this passes
        ((0.0, 0.5), "not met"),  # the first prompt came 1.5 s sooner: the recording answers too late
        ((1.0, 0.5), "before its prompt"),  # 1.5 s later: the recording answers before being asked
        ((0.5, 0.0), "not met"),  # the second prompt sooner
        ((0.5, 1.0), "before its prompt"),  # the second prompt later
    ],
)
def test_a_recording_of_a_passing_session_passes_only_where_the_draw_repeats_its_timing(
    pipeline: FacePipeline, clock: FrozenClock, obama: Poser, holds: tuple[float, float], refused: str
) -> None:
    """A recorded session that passed, replayed frame for frame with its timing against the same
    challenges: the holds before the prompts (0.5-3.5 s, CSPRNG) must land within the person's
    response window (0.2-2 s) of the recording's, step by step (docs/liveness.md: the bound)."""
    original = ChallengeSession(
        pipeline, clock=clock, policy=AS_IF_REAL, challenges=[L, R], rng=Draws(0.5, 0.5)
    )
    assert original.holds == (2.0, 2.0)
    recording = []
    for frame in person(obama, original):
        recording.append(frame)
        clock.advance(STEP)
        original.feed(frame, at=clock.now())
    assert original.result().passed, original.result().reasons
    replay = ChallengeSession(pipeline, clock=clock, policy=AS_IF_REAL, challenges=[L, R], rng=Draws(*holds))
    feed(replay, clock, recording)
    clock.advance(timedelta(seconds=30))
    result = replay.result()
    if not refused:
        assert result.passed, result.reasons
    else:
        assert failed_check(result) == "timing" and refused in result.reasons[0], result.reasons


def _nodding_before_the_prompt(
    pipeline: FacePipeline, clock: FrozenClock, obama: Poser, policy: ChallengePolicy
) -> ChallengeSession:
    """At rest, then two frames looking down (the Poser's -30°: 22-26 pitch units from rest)
    in the random hold before a look-down prompt (the longest, 3.5 s), then at rest again."""
    s = ChallengeSession(pipeline, clock=clock, policy=policy, challenges=[DOWN, L], rng=Draws(1.0, 0.0))
    frames = [obama.frame() for _ in range(4)] + [obama.frame(pitch=-30) for _ in range(2)]
    feed(s, clock, frames + [obama.frame() for _ in range(20)])  # the prompt at 4.2 s, held still from 0.6
    return s


def test_a_nod_read_in_a_face_at_rest_is_not_an_answer_held_before_its_prompt(
    pipeline: FacePipeline, clock: FrozenClock, obama: Poser
) -> None:
    """Five points' pitch swings by up to 12 units (1.5 nods) in a face held still, so a nod
    counts as held early only at ``wrong_margin`` (1.5) times its threshold. With the
    threshold at 20 units, the frames read 1.1-1.3 nods: a wobble, not a recording's answer
    (this session used to fail them as "look-down held before its prompt")."""
    s = _nodding_before_the_prompt(pipeline, clock, obama, replace(DEFAULT, nod_pitch=20.0))
    assert not s.finished, s.result().reasons
    assert s.current is DOWN  # the prompt came after its hold, as for anyone holding still


def test_a_clear_nod_before_its_prompt_still_fails_as_held_early(
    pipeline: FacePipeline, clock: FrozenClock, obama: Poser
) -> None:
    """The same frames at the shipped threshold (8 units) read 2.7-3.3 nods: a recording's
    answer, refused (the replay defence)."""
    s = _nodding_before_the_prompt(pipeline, clock, obama, DEFAULT)
    result = s.result()
    assert failed_check(result) == "timing" and "look-down held before its prompt" in result.reasons[0]


def test_a_response_faster_than_a_person_fails_on_timing(
    pipeline: FacePipeline, clock: FrozenClock, obama: Poser
) -> None:
    s = ChallengeSession(pipeline, clock=clock, policy=SYNTHETIC, challenges=[L, R])
    clock.advance(STEP)
    s.feed(obama.frame(), at=clock.now())
    assert s.current is L
    clock.advance(timedelta(milliseconds=40))  # a script answering the very next frame
    s.feed(obama.frame(yaw=25), at=clock.now())
    assert failed_check(s.result()) == "timing" and "faster than a person" in s.result().reasons[0]


def test_the_animation_checks_are_a_documented_switch() -> None:
    assert DEFAULT.animation_checks and not SYNTHETIC.animation_checks
    for frames in (1, 33):
        with pytest.raises(ConfigurationError, match="trace_frames"):
            ChallengePolicy(trace_frames=frames)
    second = timedelta(seconds=1)
    for bad in (
        {"prompt_hold": (2 * second, second)},
        {"prompt_hold": (-second, second)},
        {"max_response": timedelta(milliseconds=200)},
    ):
        with pytest.raises(ConfigurationError, match="prompt_hold"):
            ChallengePolicy(**bad)  # type: ignore[arg-type]


@pytest.mark.skipif(not (VIDEO / "speaker-stage.mp4").exists(), reason=f"real videos not found at {VIDEO}")
def test_a_real_face_in_a_real_video_changes_between_frames_in_the_same_pose(pipeline: FacePipeline) -> None:
    """The speaker of the real video (natural motion, not a cooperative session): the
    rigid-texture check must see a live face's changes."""
    pytest.importorskip("cv2", reason="OpenCV (the video extra) is not installed")
    from faceverify._liveness import frames_from_video
    from faceverify._liveness._challenge import _Pose

    trace = TextureTrace(DEFAULT.trace_rules)
    for k, (frame, _) in enumerate(frames_from_video(VIDEO / "speaker-stage.mp4", max_frames=200)):
        if k < 100:
            continue
        face = pipeline.locate(frame, select="dominant")
        pose = _Pose.of(face.landmarks)
        patch = face_patch(pipeline.aligner.align(frame, face.landmarks))
        trace.add((k - 100) / 29.97, pose.yaw, pose.pitch, pose.interocular, patch)
    change = trace.change()
    assert change is not None and change >= DEFAULT.texture_change_min
