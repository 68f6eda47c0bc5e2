"""The door: a claim, a live check of the claimed subject, the relay — one process per door.

::

    door = Door(verifier, camera, badges, actuator, events=JsonLinesSink())
    door.run(LineClaims(sys.stdin))       # until the claims end or stop is set

The process keeps the models and the camera open; each claim runs one live
session (the door's profile: challenges and passive PAD, see the Verifier) on
fresh frames only, then one 1:1 comparison at the profile's operating point,
then the relay. Every claim ends in exactly one ``decision`` event
(:mod:`._events`), every failure shut: an unknown badge, a lost camera, an
unreachable vault, an actuator error, anything unforeseen.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from .._clock import Clock
from .._errors import CameraError, FaceVerifyError, StoreUnavailableError
from .._liveness._challenge import Challenge, ChallengeSession
from .._verifier import Verifier
from ._actuator import DoorActuator
from ._camera import CameraSource
from ._claims import BadgeMap, Claim, ClaimSource
from ._display import OUTCOME_TEXT, Display, NullDisplay
from ._events import DoorEvent, EventSink, reason_for
from ._replica import Replica

__all__ = ["Door", "DoorConfig", "FreshFrames", "Stages"]


@dataclass(frozen=True, slots=True)
class DoorConfig:
    """A door's settings.

    ``max_frame_age``: a frame older than this when the door gets it is never
    judged (skipped). ``camera_timeout``: seconds without a fresh frame
    before the camera counts as lost (the claim fails ``camera_lost``).
    ``challenges`` fixes the sequence — only for replaying a recording made
    for it (tests, benchmarks, demos): a live door draws them at random.
    """

    name: str = "door"
    open_seconds: float = 5.0
    max_frame_age: timedelta = timedelta(milliseconds=500)
    camera_timeout: float = 2.0
    challenges: tuple[Challenge, ...] | None = None
    claim_poll: float = 0.5


@dataclass(slots=True)
class Stages:
    """Milliseconds spent per stage of one claim."""

    marks: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, since: float) -> float:
        """Add the time since ``since`` (a ``perf_counter`` reading) to ``stage``; return now."""
        now = time.perf_counter()
        self.marks[stage] = self.marks.get(stage, 0.0) + (now - since) * 1000.0
        return now


class FreshFrames:
    """Feeds a live session from a camera, fresh frames only (the door's and the kiosk's).

    A frame older than ``max_frame_age`` when read, or taken before the session
    began, is skipped, never judged;
    no fresh frame for ``camera_timeout`` seconds is :class:`CameraError`.
    Remembers the last frame taken, so no frame is judged twice.
    """

    def __init__(
        self, camera: CameraSource, clock: Clock, *, max_frame_age: timedelta, camera_timeout: float
    ) -> None:
        self.camera = camera
        self.clock = clock
        self.max_frame_age = max_frame_age
        self.camera_timeout = camera_timeout
        self.last = 0
        self.stale = 0

    def feed(self, session: ChallengeSession, display: Display, stages: Stages | None = None) -> None:
        """Feed frames until ``session`` ends, showing each new prompt on ``display``."""
        stages = stages or Stages()
        shown = None
        last_fresh = self.clock.now()
        while not session.finished:
            if session.prompt != shown:
                shown = session.prompt
                display.show(shown)
            mark = time.perf_counter()
            frame = self.camera.read(after=self.last, timeout=self.camera_timeout)
            mark = stages.add("decode", mark)
            self.last = frame.index
            now = self.clock.now()
            # A frame taken before the session began (the camera runs on between claims)
            # is skipped like a stale one: the session refuses frames older than itself.
            if now - frame.at > self.max_frame_age or frame.at < session.started:
                self.stale += 1
                if (now - last_fresh).total_seconds() > self.camera_timeout:
                    raise CameraError(f"no fresh frame for {self.camera_timeout:g} s (frames are stale)")
                continue
            last_fresh = now
            session.feed(frame.image, at=frame.at)
            stages.add("live", mark)


class Door:
    """One door: badges that may claim, a camera, a Verifier, a relay, and where events go."""

    def __init__(
        self,
        verifier: Verifier,
        camera: CameraSource,
        badges: BadgeMap,
        actuator: DoorActuator,
        *,
        events: EventSink,
        display: Display | None = None,
        config: DoorConfig | None = None,
        clock: Clock | None = None,
        replica: Replica | None = None,
    ) -> None:
        self.verifier = verifier
        self.camera = camera
        self.badges = badges
        self.actuator = actuator
        self.events = events
        self.display = display or NullDisplay()
        self.config = config or DoorConfig()
        self.clock: Clock = clock or verifier.vault.clock
        self.replica = replica
        #: Who the door is in the vault's audit log.
        self.actor = f"door:{self.config.name}"
        self.frames = FreshFrames(
            camera,
            self.clock,
            max_frame_age=self.config.max_frame_age,
            camera_timeout=self.config.camera_timeout,
        )

    # -- one claim -------------------------------------------------------------

    def handle(self, claim: Claim) -> DoorEvent:
        """Decide one claim; emit, show and return its decision event. Never raises."""
        started = time.perf_counter()
        stages = Stages()
        subject = self.badges.subject(claim.badge)
        opened, detail = False, ""
        if subject is None:
            reason = "unknown_claim"
            detail = "the badge maps to no subject at this door"
        else:
            try:
                reason, detail = self._check(subject, stages)
                if reason == "match":
                    mark = time.perf_counter()
                    try:
                        self.actuator.open(self.config.open_seconds)
                        opened = True
                        detail = "; ".join(
                            filter(None, [f"opened for {self.config.open_seconds:g} s", detail])
                        )
                    except FaceVerifyError as exc:
                        detail = f"the relay failed, the door stayed shut: {exc}"
                    finally:
                        stages.add("actuator", mark)
            except CameraError as exc:
                reason, detail = "camera_lost", str(exc)
            except FaceVerifyError as exc:
                reason, detail = reason_for(exc), str(exc)
            except Exception as exc:  # fail closed on anything unforeseen, and keep the door running
                reason, detail = "error", f"{type(exc).__name__}: {exc}"
        event = DoorEvent(
            at=self.clock.now(),
            door=self.config.name,
            kind="decision",
            reason=reason,
            opened=opened,
            subject_id=subject,
            claim_source=claim.source,
            badge=claim.badge if subject is None else None,
            detail=detail,
            operating_point=self.verifier.operating_point.name if subject is not None else None,
            latency_ms=(time.perf_counter() - started) * 1000.0,
            stages_ms=dict(stages.marks),
            replica_age_s=self._replica_age(),
        )
        self.events.emit(event)
        self.display.show(OUTCOME_TEXT.get(reason, "not recognised"))
        if claim.reply is not None:
            claim.reply(event)
        return event

    def _check(self, subject: str, stages: Stages) -> tuple[str, str]:
        """Run the live session and the comparison: (reason, detail); raises the refusals.

        Decided in the shared vault when it answers; in the door's replica (if any, and
        fresh) when it does not.
        """
        verifier, offline = self._verifier_for(subject)
        session = verifier.start_session(subject, challenges=self.config.challenges, clock=self.clock)
        self.frames.feed(session, self.display, stages)
        outcome = session.result()
        timed_out = not outcome.passed and any(c.name == "deadline" and not c.passed for c in outcome.checks)
        mark = time.perf_counter()
        try:
            result = verifier.finish(session, actor=self.actor)
        except FaceVerifyError as exc:
            if offline and reason_for(exc) == "not_live" and self.replica is not None:
                self.replica.note_failure(subject)
            if timed_out and reason_for(exc) == "not_live":
                return "timeout", str(exc)
            raise
        finally:
            stages.add("verify", mark)
        where = " (decided offline, in the door's replica)" if offline else ""
        if not result.match:
            if offline and self.replica is not None:
                self.replica.note_failure(subject)
            return "no_match", "the live face is not the claimed subject's" + where
        return "match", "decided offline, in the door's replica" if offline else ""

    def _verifier_for(self, subject: str) -> tuple[Verifier, bool]:
        """The shared vault's Verifier if it answers, else the replica's; refuses before anyone
        is asked to move (unknown, revoked, expired, locked out, wrong purpose, no fresh replica)."""
        space = self.verifier.pack.embedding_space
        if self.replica is None or not self.replica.unreachable:
            try:
                self.verifier.vault.require_verifiable(
                    subject, actor=self.actor, live=True, model_pack_id=space
                )
                return self.verifier, False
            except StoreUnavailableError:
                if self.replica is None:
                    raise
                self.replica.unreachable = True
        local = self.replica.verifier_for(subject)
        local.vault.require_verifiable(subject, actor=self.actor, live=True, model_pack_id=space)
        return local, True

    # -- the process -------------------------------------------------------------

    def status(self, reason: str, detail: str = "") -> None:
        """Emit a status event (camera lost/back, replica stale/fresh, started, stopped)."""
        self.events.emit(
            DoorEvent(
                at=self.clock.now(),
                door=self.config.name,
                kind="status",
                reason=reason,
                detail=detail,
                replica_age_s=self._replica_age(),
            )
        )

    def _replica_age(self) -> float | None:
        return None if self.replica is None else self.replica.age_seconds()

    def run(
        self,
        claims: ClaimSource,
        *,
        stop: threading.Event | None = None,
        tick: Callable[[], None] | None = None,
    ) -> None:
        """Take claims until ``stop`` is set or the source is exhausted; ``tick`` runs between polls
        (the replica's refresh). The actuator is released on the way out."""
        stop = stop or threading.Event()
        point = self.verifier.operating_point.name
        self.status("started", f"{len(self.badges)} badge(s), operating point {point}")
        if self.replica is not None:
            self.replica.start(on_status=self.status)
        try:
            while not stop.is_set():
                if tick is not None:
                    tick()
                claim = claims.next(self.config.claim_poll)
                if claim is not None:
                    self.handle(claim)
                elif getattr(claims, "exhausted", False):
                    break
        finally:
            if self.replica is not None:
                self.replica.close()
            self.actuator.close()
            self.status("stopped")
