"""The screen-light challenge: the face's colour must follow the session's random colour sequence.

The frames are a real sample photo (the test cache's) moved by the depth warp
of ``liveness_frames.py``, lit by the screen with the SIMULATED light model of
``screen_light_frames.py`` (reflected light ∝ skin albedo × screen colour ×
strength; sensor noise, JPEG). Each frame reflects the colour the session told
after the frame before it (a client showing each answer's colour before its
next capture). The animation checks are off (``animation_checks=False``): the
frames are one photo warped, which they refuse (``test_animation.py``); what
is tested here is the screen light, so that what decides is the screen light.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from random import Random

import numpy as np
import pytest
from liveness_frames import Poser, small
from screen_light_frames import greyscale, lit

from faceverify import ChallengeFailedError, ConfigurationError, FrozenClock, QualityPolicy
from faceverify._liveness import (
    Challenge,
    ChallengePolicy,
    ChallengeSession,
    ScreenColour,
    ScreenLightPolicy,
    State,
)
from faceverify._liveness._screen_light import PALETTE, chance_bound, draw_sequence
from faceverify.hazmat import FacePipeline

STEP = timedelta(milliseconds=100)
LIGHT = ScreenLightPolicy()  # the shipped defaults
POLICY = ChallengePolicy(animation_checks=False, screen_light=LIGHT)
STRENGTH = 0.25  # about 16 grey levels on mid skin: a screen close to the face, a dim room
TURN = [(12, 0, 1.0), (25, 0, 1.0), (25, 0, 1.0), (0, 0, 1.0), (0, 0, 1.0)]

Lighting = Callable[[ChallengeSession], ScreenColour | None]


def follows(session: ChallengeSession) -> ScreenColour | None:
    """The screen shows what the session asked for."""
    return session.screen_colour


def run(
    session: ChallengeSession,
    clock: FrozenClock,
    poser: Poser,
    lighting: Lighting,
    *,
    strength: float = STRENGTH,
    mono: bool = False,
    restore: Callable[[ChallengeSession], ChallengeSession] | None = None,
) -> ChallengeSession:
    """A person answering the turns as they are asked, lit by ``lighting``'s colour (chosen
    after each frame, reflected by the next), until the session ends or its deadline."""
    noise = np.random.default_rng(7)
    shown = lighting(session)
    now = [session]  # the session as it stands (a restored one after each frame)
    for yaw, pitch, zoom in poses(lambda: now[0], further=mono):
        clock.advance(STEP)
        frame = lit(poser.frame(yaw=yaw, pitch=pitch, zoom=zoom), shown, strength, rng=noise)
        now[0].feed(greyscale(frame) if mono else frame, at=clock.now())
        if restore is not None:
            now[0] = restore(now[0])
        shown = lighting(now[0])
        if now[0].finished or clock.now() > now[0].deadline:
            break
    return now[0]


def poses(current: Callable[[], ChallengeSession], *, further: bool) -> Iterator[tuple[float, float, float]]:
    """At rest until a turn is asked; then (a frame to react) the turn, and back to rest.
    YuNet reads a little less yaw on grey frames: those turns go ``further``."""
    while True:
        asked = current().current
        if asked is None:
            yield 0, 0, 1.0
            continue
        sign = (1 if asked is Challenge.TURN_LEFT else -1) * (1.3 if further else 1.0)
        yield from ((sign * y, p, z) for y, p, z in [(0, 0, 1.0), *TURN])


def new(
    pipeline: FacePipeline, clock: FrozenClock, policy: ChallengePolicy = POLICY, *, rng: Random | None = None
) -> ChallengeSession:
    return ChallengeSession(
        pipeline, clock=clock, policy=policy, challenges=[Challenge.TURN_LEFT, Challenge.TURN_RIGHT], rng=rng
    )


def test_a_face_lit_by_the_sequence_passes_and_the_decision_names_its_colours(
    pipeline: FacePipeline, clock: FrozenClock, obama: Poser
) -> None:
    s = new(pipeline, clock)
    first = s.screen_colour
    assert first in PALETTE
    s = run(s, clock, obama, follows)
    result = s.result()
    assert result.passed, result.reasons
    light = result.screen_light
    assert light is not None and light.assessed and light.passed
    assert light.steps >= LIGHT.steps and light.steps - light.matched <= LIGHT.max_missed
    assert light.correlation >= LIGHT.min_correlation
    assert "screen-light" in [c.name for c in result.checks if c.passed]
    # The colours shown are bound into the decision: each differs from the one before.
    assert result.colours[0] is first and len(result.colours) >= LIGHT.steps + 1
    assert all(a is not b for a, b in zip(result.colours, result.colours[1:], strict=False))
    assert result.binding.endswith("; screen " + ", ".join(c.value for c in result.colours))
    assert s.screen_colour is None  # the session is over: nothing more to show


def test_a_face_lit_by_another_sequence_is_refused_with_the_screen_light_reason(
    pipeline: FacePipeline, clock: FrozenClock, samples: dict[str, Path]
) -> None:
    """A recording of a lit session, or an animation tinted by a guess: its colours follow
    a sequence drawn without this session's. The session's draws are seeded: with the
    CSPRNG, about 1 run in 30 let the prompt holds leave too few colour steps before the
    deadline, a refusal for another reason ("deadline") than the one asserted here. So are
    the person's (its own poser: the shared one's draws depend on the sessions before, whose
    holds come from the CSPRNG)."""
    obama = Poser(pipeline, small(samples["obama"]))
    guess = draw_sequence(Random(3), 200)
    s = new(pipeline, clock, rng=Random(0))
    started = s.started

    def guessing(session: ChallengeSession) -> ScreenColour:
        return guess[int((clock.now() - started) / LIGHT.step_time)]

    result = run(s, clock, obama, guessing).result()
    assert not result.passed
    assert result.state is State.FAILED
    assert [c.name for c in result.checks if not c.passed] == ["screen-light"]
    assert result.reasons[0].startswith("screen-light: the face's colour did not follow")
    assert result.screen_light is not None and result.screen_light.assessed
    with pytest.raises(ChallengeFailedError) as err:
        result.raise_if_failed()
    assert any(r.startswith("screen-light:") for r in err.value.reasons)


def test_a_face_with_no_light_response_is_refused(
    pipeline: FacePipeline, clock: FrozenClock, obama: Poser
) -> None:
    """The capture does not see the screen at all (a replay, an animation, a camera elsewhere)."""
    result = run(new(pipeline, clock), clock, obama, lambda s: None).result()
    assert not result.passed
    assert [c.name for c in result.checks if not c.passed] == ["screen-light"]
    assert result.reasons[0].startswith("screen-light:")


def test_a_grayscale_capture_cannot_be_assessed_and_the_policy_decides(
    pipeline: FacePipeline, clock: FrozenClock, obama: Poser
) -> None:
    """An IR or monochrome camera (the quality gate admits grayscale where asked: issue 15)."""
    ir = replace(POLICY, quality=QualityPolicy(grayscale=True))
    refused = run(new(pipeline, clock, ir), clock, obama, follows, mono=True).result()
    assert not refused.passed
    assert refused.screen_light is not None and not refused.screen_light.assessed
    assert "cannot assess the screen light: the capture is grayscale" in refused.reasons[0]
    assert "refused by policy" in refused.reasons[0]

    knowingly = replace(ir, screen_light=replace(LIGHT, unassessable="active-only"))
    allowed = run(new(pipeline, clock, knowingly), clock, obama, follows, mono=True).result()
    assert allowed.passed, allowed.reasons
    note = next(c for c in allowed.checks if c.name == "screen-light-not-assessed")
    assert "grayscale" in note.detail and "active-only" in note.detail


def test_quick_answers_wait_for_the_colour_steps_and_a_restored_session_decides_the_same(
    pipeline: FacePipeline, clock: FrozenClock, obama: Poser
) -> None:
    """Two turns take about 2 s here; the light needs (steps + 1) steps of 0.8 s: the session
    asks the person to look at the camera meanwhile. Restored from its snapshot after every
    frame (another worker each time), it decides as one kept in memory."""
    prompts: list[str] = []

    def restore(session: ChallengeSession) -> ChallengeSession:
        prompts.append(session.prompt)
        data = session.snapshot()
        return ChallengeSession.restore(data, pipeline, clock=clock, policy=POLICY, passive=None)

    s = new(pipeline, clock)
    nonce = s.nonce
    s = run(s, clock, obama, follows, restore=restore)
    result = s.result()
    assert result.passed, result.reasons
    assert result.nonce == nonce
    waiting = [i for i, p in enumerate(prompts) if p == "look straight at the camera"]
    asked = [i for i, p in enumerate(prompts) if p.startswith("turn")]
    assert waiting[-1] > asked[-1]  # waited for the light after the last turn was met
    assert s.finished and s.result().screen_light == result.screen_light


def test_a_snapshot_under_another_screen_light_policy_is_refused(
    pipeline: FacePipeline, clock: FrozenClock
) -> None:
    s = new(pipeline, clock)
    data = s.snapshot()
    for other in (
        ChallengePolicy(animation_checks=False),
        replace(POLICY, screen_light=replace(LIGHT, steps=4)),
    ):
        with pytest.raises(ConfigurationError, match="another ChallengePolicy"):
            ChallengeSession.restore(data, pipeline, clock=clock, policy=other, passive=None)


@pytest.mark.parametrize(
    "bad",
    [
        {"settle": timedelta(milliseconds=900)},
        {"steps": 1},
        {"max_missed": 10},
        {"min_frames": 0},
        {"min_correlation": 1.5},
        {"unassessable": "ignore"},
    ],
)
def test_a_screen_light_policy_out_of_range_is_a_configuration_error(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError, match="screen light"):
        ScreenLightPolicy(**bad)  # type: ignore[arg-type]


def test_the_chance_bound_is_the_binomial_tail_and_a_blind_guess_meets_it() -> None:
    """Each switch goes to one of the five other colours: a guess meets it one time in five."""
    assert chance_bound(10, 1) == pytest.approx(10 * 0.2**9 * 0.8 + 0.2**10)
    assert LIGHT.chance == chance_bound(LIGHT.steps, LIGHT.max_missed) < 1e-5
    rand = Random(11)
    hits = [a is b for a, b in zip(draw_sequence(rand, 5000)[1:], draw_sequence(rand, 5000)[1:], strict=True)]
    assert 0.14 < float(np.mean(hits)) < 0.2  # 1/6 here (two independent draws); at most 1/5
