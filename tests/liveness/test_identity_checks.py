"""The same-face check between tracked frames: read where the decision needs it, never missed.

A session reads a frame's embedding (most of a frame's cost) only on the frames
its decision rests on, where the tracker found the face afresh or the aligned
face jumped, and on every ``identity_every``-th frame
(``ChallengePolicy``). These tests feed real photos of two people: a face
swapped in between checks is refused on the frame it appears, and the session
decides as one that checks every frame, on fewer embeddings.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from liveness_frames import Poser
from test_challenge import CLOSER, DOWN, STEP, SYNTHETIC, UP, Draws, L, R, answer, failed_check, feed, person

from faceverify import ConfigurationError, FrozenClock
from faceverify._liveness import Challenge, ChallengePolicy, ChallengeResult, ChallengeSession
from faceverify._liveness import _challenge as challenge_module
from faceverify._pipeline._capture import RGBImage
from faceverify.hazmat import FacePipeline


class CountingEmbedder:
    """The pipeline's own embedder, counting the crops it embeds."""

    def __init__(self, inner: FacePipeline) -> None:
        self._inner = inner.embedder
        self.dim = inner.embedder.dim
        self.crops = 0

    def embed(self, crops: list[RGBImage]) -> npt.NDArray[np.float32]:
        self.crops += len(crops)
        return self._inner.embed(crops)


def counted(pipeline: FacePipeline) -> tuple[FacePipeline, CountingEmbedder]:
    embedder = CountingEmbedder(pipeline)
    return FacePipeline(
        detector=pipeline.detector, aligner=pipeline.aligner, embedder=embedder, limits=pipeline.limits
    ), embedder


def rest(person: Poser, n: int) -> list[np.ndarray]:
    """``n`` frames of a person at rest (each with its own jitter and sensor noise)."""
    return [person.frame() for _ in range(n)]


@pytest.mark.parametrize("offset", [2, 3, 4, 5, 6])
@pytest.mark.parametrize("frames_swapped", [1, 4])
def test_a_face_swapped_in_between_checks_is_refused_on_the_frame_it_appears(
    pipeline: FacePipeline,
    clock: FrozenClock,
    obama: Poser,
    biden: Poser,
    offset: int,
    frames_swapped: int,
) -> None:
    # Another person for one frame (then back) or for several, at every place of the
    # identity_every cycle after the baseline (the session's first frame here).
    frames = rest(obama, offset) + rest(biden, frames_swapped) + rest(obama, 6)
    s = ChallengeSession(pipeline, clock=clock, policy=SYNTHETIC, challenges=[L, R])
    feed(s, clock, frames)
    result = s.result()
    assert failed_check(result) == "same-face"
    assert result.frames == offset + 1  # refused on the swapped frame itself


SEQUENCES: dict[str, tuple[list[Challenge], list[Challenge]]] = {
    "turns": ([L, R], [L, R]),
    "closer": ([L, CLOSER], [L, CLOSER]),
    "nods": ([DOWN, R, UP], [DOWN, R, UP]),
    "wrong-response": ([L, R], [R]),
    "unfinished": ([R, L], [R]),
}


def same_decision(a: ChallengeResult, b: ChallengeResult) -> None:
    assert (a.passed, a.reasons, a.state, a.frames) == (b.passed, b.reasons, b.state, b.frames)
    assert [(c.name, c.passed) for c in a.checks] == [(c.name, c.passed) for c in b.checks]
    assert len(a.best_samples) == len(b.best_samples)
    for x, y in zip(a.best_samples, b.best_samples, strict=True):
        np.testing.assert_array_equal(x.embedding, y.embedding)


@pytest.mark.parametrize("name", SEQUENCES)
def test_the_session_decides_as_one_checking_every_frame_on_fewer_embeddings(
    pipeline: FacePipeline, clock: FrozenClock, obama: Poser, name: str
) -> None:
    asked, answered = SEQUENCES[name]
    frames = answer(obama, answered)
    results, crops = [], []
    for policy in (replace(SYNTHETIC, identity_every=1), SYNTHETIC):
        counting, embedder = counted(pipeline)
        s = ChallengeSession(counting, clock=clock, policy=policy, challenges=asked)
        feed(s, clock, frames)
        results.append(s.result())
        crops.append(embedder.crops)
    same_decision(*results)
    assert crops[1] <= crops[0]  # these short answers are mostly frames the decision needs


def test_frames_the_decision_does_not_need_are_tracked_not_embedded(
    pipeline: FacePipeline, clock: FrozenClock, obama: Poser
) -> None:
    crops = []
    for policy in (replace(SYNTHETIC, identity_every=1), SYNTHETIC):
        counting, embedder = counted(pipeline)
        s = ChallengeSession(counting, clock=clock, policy=policy, challenges=[L, R])
        feed(s, clock, rest(obama, 30))  # a person waiting before answering
        assert s.prompt == L.prompt and not s.finished
        crops.append(embedder.crops)
    assert crops[1] <= crops[0] / 2


def test_after_the_prompt_a_resting_face_is_tracked_not_embedded(
    pipeline: FacePipeline, clock: FrozenClock, obama: Poser
) -> None:
    """The shipped policy (animation checks on): the rigid-texture trace takes frames only
    while the face waits for a prompt, so a person slow to answer is not embedded on every frame.
    Both sessions see the same frames (the shared poser's draws depend on the tests run before)."""
    crops, frames = [], []
    for policy in (ChallengePolicy(identity_every=1), ChallengePolicy()):
        counting, embedder = counted(pipeline)
        s = ChallengeSession(counting, clock=clock, policy=policy, challenges=[L, R], rng=Draws(0.0, 0.0))
        if not frames:  # 4 s at rest after the prompt, then the answer
            frames = list(recorded(person(obama, s, react=20, stop_after=1), s, clock))
        else:
            feed(s, clock, frames)
        assert s.progress[0] == 1 or s.finished
        crops.append(embedder.crops)
    assert crops[1] <= crops[0] * 0.6, crops


def recorded(frames: Iterator[np.ndarray], s: ChallengeSession, clock: FrozenClock) -> Iterator[np.ndarray]:
    """Feed ``frames`` to ``s`` as :func:`feed` does, yielding each."""
    for frame in frames:
        clock.advance(STEP)
        s.feed(frame, at=clock.now())
        yield frame
        if s.finished:
            return


@pytest.mark.parametrize(
    "bad", [{"identity_every": 0}, {"identity_jump": 0.0}, {"identity_jump": float("nan")}]
)
def test_identity_check_parameters_are_validated(bad: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        ChallengePolicy(**bad)  # type: ignore[arg-type]


def test_a_frame_is_placed_and_ranked_once(
    pipeline: FacePipeline, clock: FrozenClock, obama: Poser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the face stands against each challenge, and its rank among the best frames, are
    read once a frame (they were read twice: for the identity check, then for the decision)."""
    calls = {"progress": 0, "rank": 0}
    progress, rank = challenge_module._progress, ChallengeSession._rank

    def counted_progress(*args: Any) -> Any:
        calls["progress"] += 1
        return progress(*args)

    def counted_rank(self: ChallengeSession, *args: Any) -> Any:
        calls["rank"] += 1
        return rank(self, *args)

    monkeypatch.setattr(challenge_module, "_progress", counted_progress)
    monkeypatch.setattr(ChallengeSession, "_rank", counted_rank)
    s = ChallengeSession(pipeline, clock=clock, policy=SYNTHETIC, challenges=[L, R])
    feed(s, clock, answer(obama, [L, R]))
    assert s.result().passed
    after_baseline = s.result().frames - 1
    assert calls == {"progress": after_baseline, "rank": after_baseline + 1}


@pytest.mark.parametrize(
    "trigger, policy, refused_at",
    [
        # Only the jump of the aligned face (every 10**6th frame is never): on the swapped frame.
        ("identity_jump", replace(SYNTHETIC, identity_every=10**6), 4),
        # Only every 5th frame (no jump is ever large enough): frames 2 and 3 (the first person,
        # best-frame candidates) are read; the swapped face from frame 4 is not, until frame 8,
        # the 5th since the last read.
        ("identity_every", replace(SYNTHETIC, identity_jump=1e9), 8),
    ],
)
def test_each_identity_trigger_alone_refuses_a_swap(
    pipeline: FacePipeline,
    clock: FrozenClock,
    obama: Poser,
    biden: Poser,
    trigger: str,
    policy: ChallengePolicy,
    refused_at: int,
) -> None:
    s = ChallengeSession(pipeline, clock=clock, policy=policy, challenges=[L, R])
    feed(s, clock, rest(obama, 3) + rest(biden, 8))
    result = s.result()
    assert failed_check(result) == "same-face", (trigger, result.reasons)
    assert result.frames == refused_at, trigger


def test_with_no_trigger_a_swapped_face_that_counts_for_nothing_is_not_read(
    pipeline: FacePipeline, clock: FrozenClock, obama: Poser, biden: Poser
) -> None:
    """The control: with both triggers off, the swapped frames at rest are never read (they
    decide nothing: no response, and not among the best frames, which the first person's
    three hold), so the tests above show each trigger doing the refusing."""
    policy = replace(SYNTHETIC, identity_jump=1e9, identity_every=10**6)
    s = ChallengeSession(pipeline, clock=clock, policy=policy, challenges=[L, R])
    feed(s, clock, rest(obama, 3) + rest(biden, 8))
    assert not s.finished and s.result().frames == 11
