"""The door end to end: recorded video from real photos, the real models, a fake relay and claims.

The camera is a real video file (``RecordedCamera``, OpenCV) recorded at test
time from the sample photos (``door_frames``): alice's door photo (not one she
enrolled with) answering the door's challenges, or mallory's. The relay and the
badge reader are fakes through their protocols, as they are beside the point;
the vault, the models and the decision are real, at the calibrated default
operating point of the ``door-access`` profile (challenges + passive PAD).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from door_frames import FPS, Poser, answer, write_video
from door_helpers import FakeRelay, consent

from faceverify._clock import FrozenClock
from faceverify._door import (
    BadgeMap,
    Claim,
    Door,
    DoorConfig,
    Frame,
    ListSink,
    QueueClaims,
    RecordedCamera,
)
from faceverify._errors import CameraError
from faceverify._liveness import Challenge
from faceverify._verifier import Verifier

L, R = Challenge.TURN_LEFT, Challenge.TURN_RIGHT
ASKED = (L, R)
BADGES = BadgeMap({"1001": "alice", "2002": "bob"})


@pytest.fixture
def enrolled(verifier: Verifier, samples: dict[str, Path]) -> Verifier:
    """alice enrolled from two photos with door-access consent (bob has a badge, no template)."""
    verifier.enroll("alice", [samples["obama"], samples["obama2"]], consent=consent("alice"))
    return verifier


@pytest.fixture(scope="module")
def shots(alice: Poser, mallory: Poser) -> dict[str, list[np.ndarray]]:
    """Frames made once per module (warping photos is the slow part): each person answering."""
    return {"alice": answer(alice, ASKED), "mallory": answer(mallory, ASKED)}


@pytest.fixture(scope="module")
def videos(
    tmp_path_factory: pytest.TempPathFactory, shots: dict[str, list[np.ndarray]], alice: Poser
) -> dict[str, Path]:
    """The recordings: alice and mallory answering; alice cut off after her first turn; a photo held up."""
    root = tmp_path_factory.mktemp("videos")
    clips = {
        "alice": shots["alice"],
        "mallory": shots["mallory"],
        "cut": shots["alice"][:5],
        "photo": [alice.frame(noise=False)] * 12,
    }
    return {name: write_video(root / f"{name}.avi", frames, fps=FPS) for name, frames in clips.items()}


def door_on(verifier: Verifier, video: Path, clock: FrozenClock, relay: FakeRelay | None = None) -> Door:
    camera = RecordedCamera(video, clock=clock)
    return Door(
        verifier,
        camera,
        BADGES,
        relay or FakeRelay(),
        events=ListSink(),
        config=DoorConfig(name="front", challenges=ASKED, open_seconds=4),
    )


def claim(badge: str) -> Claim:
    return Claim(badge, "test")


def test_the_enrolled_person_opens_the_door_and_another_does_not(
    enrolled: Verifier, clock: FrozenClock, videos: dict[str, Path]
) -> None:
    relay = FakeRelay()
    door = door_on(enrolled, videos["alice"], clock, relay)
    event = door.handle(claim("1001"))
    assert (event.reason, event.opened, event.subject_id) == ("match", True, "alice"), event.detail
    assert relay.opened == [4] and event.operating_point == "default"
    assert {"decode", "live", "verify", "actuator"} <= set(event.stages_ms)
    assert event.latency_ms is not None and event.latency_ms >= sum(event.stages_ms.values()) - 1

    impostor = door_on(enrolled, videos["mallory"], clock, relay)
    event = impostor.handle(claim("1001"))
    assert (event.reason, event.opened) == ("no_match", False), event.detail
    assert relay.opened == [4]
    # What the door says carries no biometric data: no score, no image, no embedding.
    text = event.to_json()
    assert "score" not in text and '"reason":"no_match"' in text


def test_an_unknown_badge_is_refused_without_looking(
    enrolled: Verifier, clock: FrozenClock, videos: dict[str, Path]
) -> None:
    door = door_on(enrolled, videos["alice"], clock)
    event = door.handle(claim("9999"))
    assert (event.reason, event.opened, event.subject_id) == ("unknown_claim", False, None)
    assert event.badge == "9999"
    assert isinstance(door.camera, RecordedCamera) and door.camera.decoded == 0  # the camera was not read
    malformed = door.handle(Claim(None, "test"))
    assert malformed.reason == "unknown_claim" and malformed.badge is None


def test_a_locked_out_subject_stays_shut_even_with_a_good_session(
    enrolled: Verifier, clock: FrozenClock, videos: dict[str, Path]
) -> None:
    for _ in range(5):  # earlier failed attempts on alice, at any door
        enrolled.vault.record_failed_attempt("alice", reason="test: failed elsewhere")
    relay = FakeRelay()
    door = door_on(enrolled, videos["alice"], clock, relay)
    event = door.handle(claim("1001"))
    assert (event.reason, event.opened) == ("locked_out", False), event.detail
    assert relay.opened == []
    # Refused before alice is asked to move: the camera was not read.
    assert isinstance(door.camera, RecordedCamera) and door.camera.decoded == 0


def test_a_subject_without_a_template_is_refused(
    enrolled: Verifier, clock: FrozenClock, videos: dict[str, Path]
) -> None:
    event = door_on(enrolled, videos["mallory"], clock).handle(claim("2002"))
    assert (event.reason, event.opened) == ("unknown_subject", False), event.detail


def test_the_camera_unplugged_mid_session_keeps_the_door_shut(
    enrolled: Verifier, clock: FrozenClock, videos: dict[str, Path]
) -> None:
    # The recording stops after alice's first turn: the camera went away mid-session.
    relay = FakeRelay()
    door = door_on(enrolled, videos["cut"], clock, relay)
    event = door.handle(claim("1001"))
    assert (event.reason, event.opened) == ("camera_lost", False), event.detail
    assert relay.opened == []
    # Losing the camera is not the person's failure: no attempt was counted against alice.
    assert [e.event for e in enrolled.vault.audit.entries(subject="alice")] == ["enroll"]


class StaleCamera:
    """A camera whose every frame is older than the door accepts (a frozen stream's buffer)."""

    def __init__(self, frames: list[np.ndarray], clock: FrozenClock) -> None:
        self._frames = frames
        self._clock = clock
        self.read_count = 0

    def read(self, *, after: int, timeout: float) -> Frame:
        if self.read_count == len(self._frames):
            raise CameraError("no frame")
        image = self._frames[self.read_count]
        self.read_count += 1
        self._clock.advance(timedelta(milliseconds=100))
        return Frame(image, self._clock.now() - timedelta(seconds=2), self.read_count)

    def close(self) -> None:
        pass


def test_stale_frames_are_never_judged(
    enrolled: Verifier, clock: FrozenClock, shots: dict[str, list[np.ndarray]]
) -> None:
    camera = StaleCamera(shots["alice"] * 3, clock)
    relay = FakeRelay()
    door = Door(enrolled, camera, BADGES, relay, events=ListSink(), config=DoorConfig(challenges=ASKED))
    event = door.handle(claim("1001"))
    # alice's own frames, which would have opened the door, were skipped as stale until the watchdog fired.
    assert (event.reason, event.opened) == ("camera_lost", False) and "stale" in event.detail
    assert relay.opened == [] and camera.read_count < len(shots["alice"]) * 3


class RunningCamera(StaleCamera):
    """A camera that ran before the claim: its newest frame then was taken just before it."""

    def read(self, *, after: int, timeout: float) -> Frame:
        if self.read_count == 0:
            self.read_count = 1
            return Frame(self._frames[0], self._clock.now() - timedelta(milliseconds=50), 1)
        frame = super().read(after=after, timeout=timeout)
        return Frame(frame.image, self._clock.now(), frame.index)


def test_a_frame_taken_before_the_claim_is_skipped_not_judged(
    enrolled: Verifier, clock: FrozenClock, shots: dict[str, list[np.ndarray]]
) -> None:
    # Fresh by the watchdog, but older than the session, which refuses such frames (frame
    # order): the door skips it and judges the person from the next frame on.
    camera = RunningCamera([shots["alice"][0], *shots["alice"]], clock)
    relay = FakeRelay()
    door = Door(enrolled, camera, BADGES, relay, events=ListSink(), config=DoorConfig(challenges=ASKED))
    event = door.handle(claim("1001"))
    assert (event.reason, event.opened) == ("match", True), event.detail
    assert door.frames.stale == 1


def test_a_relay_that_fails_leaves_the_door_shut_and_says_so(
    enrolled: Verifier, clock: FrozenClock, videos: dict[str, Path]
) -> None:
    relay = FakeRelay(fail=True)
    event = door_on(enrolled, videos["alice"], clock, relay).handle(claim("1001"))
    assert (event.reason, event.opened) == ("match", False) and "stayed shut" in event.detail


def test_a_photo_held_up_is_not_live(enrolled: Verifier, clock: FrozenClock, videos: dict[str, Path]) -> None:
    event = door_on(enrolled, videos["photo"], clock).handle(claim("1001"))
    assert (event.reason, event.opened) == ("not_live", False), event.detail


def test_the_door_runs_claims_from_a_source_until_it_ends(
    enrolled: Verifier, clock: FrozenClock, videos: dict[str, Path]
) -> None:
    relay = FakeRelay()
    door = door_on(enrolled, videos["alice"], clock, relay)
    claims = QueueClaims()
    replies: list[str] = []
    claims.put("W26:1001\r\n", source="serial:test", reply=lambda ev: replies.append(ev.reason))
    claims.put("7777", source="serial:test")
    claims.close()
    door.run(claims)
    sink = door.events
    assert isinstance(sink, ListSink)
    assert [(e.kind, e.reason) for e in sink.events] == [
        ("status", "started"),
        ("decision", "match"),
        ("decision", "unknown_claim"),
        ("status", "stopped"),
    ]
    assert replies == ["match"] and relay.opened == [4] and relay.closed == 1


def test_a_timeout_when_nobody_answers(
    enrolled: Verifier, clock: FrozenClock, shots: dict[str, list[np.ndarray]], tmp_path: Path
) -> None:
    # alice looks at the camera, then stands still (small natural sway) and never turns.
    rest = shots["alice"][:3] * 8
    video = write_video(tmp_path / "idle.avi", rest, fps=FPS)
    hurried = Verifier(
        pipeline=enrolled.pipeline,
        pack=enrolled.pack,
        vault=enrolled.vault,
        profile=enrolled.profile,
        challenge_policy=replace(enrolled.challenge_policy, time_per_challenge=timedelta(seconds=1.5)),
    )
    event = door_on(hurried, video, clock).handle(claim("1001"))
    assert (event.reason, event.opened) == ("timeout", False), event.detail


def test_the_doors_own_checks_refuse_a_recording_warped_from_a_photo(
    enrolled: Verifier, clock: FrozenClock, videos: dict[str, Path]
) -> None:
    """The same recording that opens the door in the flow tests, under the door-access profile's
    own session policy (animation checks on): a photo warped into head turns is not live."""
    guarded = Verifier(
        pipeline=enrolled.pipeline, pack=enrolled.pack, vault=enrolled.vault, profile="door-access"
    )
    assert guarded.challenge_policy.animation_checks
    relay = FakeRelay()
    event = door_on(guarded, videos["alice"], clock, relay).handle(claim("1001"))
    assert (event.reason, event.opened) == ("not_live", False), event.detail
    assert relay.opened == []
