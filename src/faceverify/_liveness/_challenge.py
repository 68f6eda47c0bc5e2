"""The active challenge session: a random sequence of head movements, checked live.

A still photo, a printed face or a replayed video cannot follow instructions it
has never seen. The session draws two or three challenges at random (turn left
or right, look up or down, move closer), gives them a nonce and a deadline, and
is fed frames from anywhere (a camera, a browser upload, a video file)::

    session = ChallengeSession(pipeline, clock=SystemClock())
    show(session.prompt)                       # "look straight at the camera"
    for frame, at in frames:
        state = session.feed(frame, at=at)
        show(session.prompt)
        if session.finished:
            break
    result = session.result()                  # ChallengeResult, never raises
    # between requests (any worker): data = session.snapshot(); later
    # session = ChallengeSession.restore(data, pipeline, clock=..., policy=..., passive=...)
    result.raise_if_failed()                   # ChallengeFailedError(reasons)
    result.best_samples                        # embeddings for the 1:1 comparison

What is checked, frame by frame:

- **one face, the same face**: a frame's embedding is compared with the
  first (frontal) frame's; a different person appearing mid-session fails it,
  as do several comparable faces in a frame. Between whole-frame detections
  the face is tracked, and the embedding (most of a frame's cost) is read on
  the frames that need it (see :meth:`ChallengeSession._needs_check`);
- **motion**: a live camera never delivers two identical frames; a static
  image fed repeatedly (a photo injected in place of the camera) fails;
- **responses, from landmark geometry** (:func:`pose_from_landmarks`):
  yaw for a turn, the nose's height between eyes and mouth for up/down,
  interocular distance for "closer"; each must be held for ``hold_frames``
  frames before its own deadline, and a clear movement in another challenge's
  direction (once the face has been back at rest) fails as a wrong response;
- **time**: frames must arrive in order and before the session's deadline;
  with the animation checks, each prompt follows a random hold at rest and
  must be answered within ``max_response`` of reaching the person, never
  before it (a recording cannot know when its prompts come);
- **passive PAD**, when a :class:`LivenessCheck` is configured, on the best
  frontal frames (scored as they are kept, so no frame is held); a check
  that cannot judge the capture (a colour check on a grayscale or IR camera)
  is handled by ``ChallengePolicy.unassessable``, never silently.

After every frame, ``feedback`` says what the person should change
(:class:`FrameFeedback`) and ``progress`` how many challenges are done.

"Left" and "right" are the subject's own: in an unmirrored camera image, a
head turned to its left moves the nose toward the image's right.

The session ends with the best-quality frontal frames (their embeddings, not
the images) for the 1:1 comparison, which the ``Verifier`` makes.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from random import Random
from typing import Any, Literal, Self

import numpy as np

from .._clock import Clock, SystemClock
from .._errors import ChallengeFailedError, ConfigurationError, FaceError, MultipleFacesError
from .._pipeline._capture import RGBImage
from .._pipeline._pipeline import FacePipeline, FaceSample, FaceTracker, cosine
from .._pipeline._quality import Quality, QualityPolicy, measure, pose_from_landmarks
from . import _session_state as st
from ._animation import Patch, TextureTrace, TraceFrame, TraceRules, face_patch, parallax
from ._check import LivenessCheck, LivenessResult, cannot_assess, decide
from ._memory import Recollection
from ._screen_light import ScreenColour, ScreenLight, ScreenLightPolicy, ScreenLightResult


class Challenge(enum.Enum):
    """One instruction to the person in front of the camera."""

    TURN_LEFT = "turn-left"
    TURN_RIGHT = "turn-right"
    LOOK_UP = "look-up"
    LOOK_DOWN = "look-down"
    MOVE_CLOSER = "move-closer"

    @property
    def prompt(self) -> str:
        return _PROMPTS[self]


_PROMPTS = {
    Challenge.TURN_LEFT: "turn your head to your left",
    Challenge.TURN_RIGHT: "turn your head to your right",
    Challenge.LOOK_UP: "look up",
    Challenge.LOOK_DOWN: "look down",
    Challenge.MOVE_CLOSER: "move closer to the camera",
}


#: Which movements count as a wrong response to each challenge. Yaw from five
#: landmarks is steady (±3° frame to frame at rest); pitch is not (YuNet's
#: points swing it by up to 12 units between frames of a face at rest with a
#: 64 px eye distance), so only a turn, never a nod, counts as a wrong response.
#: Moving closer goes with anything.
_WRONG = {
    Challenge.TURN_LEFT: (Challenge.TURN_RIGHT,),
    Challenge.TURN_RIGHT: (Challenge.TURN_LEFT,),
    Challenge.LOOK_UP: (Challenge.TURN_LEFT, Challenge.TURN_RIGHT),
    Challenge.LOOK_DOWN: (Challenge.TURN_LEFT, Challenge.TURN_RIGHT),
    Challenge.MOVE_CLOSER: (Challenge.TURN_LEFT, Challenge.TURN_RIGHT),
}
_TURNS = (Challenge.TURN_LEFT, Challenge.TURN_RIGHT)
_NODS = (Challenge.LOOK_UP, Challenge.LOOK_DOWN)


class State(enum.Enum):
    BASELINE = "baseline"  # waiting for a frontal frame to track the face from
    CHALLENGE = "challenge"  # a challenge is pending
    PASSED = "passed"
    FAILED = "failed"


class FrameFeedback(enum.Enum):
    """What the person in front of the camera should change, about one frame.

    The value is a stable short key (for a UI to translate); ``message`` is
    plain English. An empty ``session.feedback`` means nothing to change.
    """

    NO_FACE = "no-face"
    SEVERAL_FACES = "several-faces"
    TOO_DARK = "too-dark"
    TOO_BRIGHT = "too-bright"
    BLURRED = "blurred"
    TOO_SMALL = "too-small"
    CUT_OFF = "cut-off"
    LOOK_STRAIGHT = "look-straight"
    TURN_FURTHER = "turn-further"
    COME_CLOSER = "come-closer"
    HOLD_STILL = "hold-still"
    WRONG_WAY = "wrong-way"
    FROZEN = "frozen"

    @property
    def message(self) -> str:
        return _FEEDBACK[self]


_FEEDBACK = {
    FrameFeedback.NO_FACE: "no face found: look at the camera",
    FrameFeedback.SEVERAL_FACES: "several faces in view: one person at a time",
    FrameFeedback.TOO_DARK: "too dark: turn toward a light",
    FrameFeedback.TOO_BRIGHT: "too bright: avoid direct light on the face or the lens",
    FrameFeedback.BLURRED: "blurred: hold the camera still",
    FrameFeedback.TOO_SMALL: "face too small: come nearer to the camera",
    FrameFeedback.CUT_OFF: "face cut off: centre your face in the picture",
    FrameFeedback.LOOK_STRAIGHT: "look straight at the camera",
    FrameFeedback.TURN_FURTHER: "a little further",
    FrameFeedback.COME_CLOSER: "a little closer",
    FrameFeedback.HOLD_STILL: "hold it there",
    FrameFeedback.WRONG_WAY: "the other way",
    FrameFeedback.FROZEN: "the picture is not changing: is the camera frozen?",
}


def quality_feedback(q: Quality, policy: QualityPolicy) -> list[FrameFeedback]:
    """The quality minimums a face misses, as feedback (pose is the session's business)."""
    out = []
    if q.interocular < policy.min_interocular:
        out.append(FrameFeedback.TOO_SMALL)
    if q.outside > policy.max_outside:
        out.append(FrameFeedback.CUT_OFF)
    if q.brightness < policy.min_brightness:
        out.append(FrameFeedback.TOO_DARK)
    if q.brightness > policy.max_brightness or q.clipped > policy.max_clipped:
        out.append(FrameFeedback.TOO_BRIGHT)
    if q.sharpness < policy.min_sharpness:
        out.append(FrameFeedback.BLURRED)
    return out


#: The most face patches a session keeps for the rigid-texture check.
MAX_TRACE_FRAMES = 32


@dataclass(frozen=True, slots=True)
class ChallengePolicy:
    """The session's parameters; defaults chosen for a phone or laptop camera.

    Thresholds are changes from the frontal baseline frame: ``turn_yaw``
    degrees of yaw, ``nod_pitch`` (pitch units of :func:`pose_from_landmarks`),
    ``closer_ratio`` growth of the eye distance.

    **Same face.** A checked frontal frame's embedding is compared with the
    baseline's, a checked posed frame's with the previous frame that counted
    and, at ``same_face_floor``, with the baseline's (see *Identity between
    frames*). At ``same_face`` (and the floor) the frame is the tracked face
    and counts. Below ``other_face`` with the baseline *and* with the last
    frame read (counted or not) it is another face, one that was not there the
    frame before, and the session fails. Otherwise it **cannot be told** and
    counts for nothing (no response, no best frame, no rigid-texture patch),
    and the next frame is checked: a real face the recognizer loses without a
    cut (looking at the ground, half hidden) is not taken for another
    (:func:`same_face` has the security argument). Cosines are the pack's, so
    the three are calibrated with its revision and recorded there
    (``ModelPack.session_identity``; the ``Verifier`` takes them from its
    pack). The defaults are the default pack's (``yunet-sface@5``, as ``@4``):
    ``same_face`` 0.38, the lowest with an LFW impostor FMR <= 1e-3 (7.1e-4 on
    27.8 M pairs of gated images: a swapped-in face counts on a frame at most
    that often); ``other_face`` 0.24, the highest with an LFW genuine FNMR <=
    0.1 % (0.08 %: photos years apart, wider than a session; 91 % of random
    LFW swaps score below it with a baseline and another photo of its person,
    94 % with the baseline alone). Different people can score between them (two sample
    photos: 0.32), and so can one real person across 28° of yaw with a
    microphone before the mouth (0.296 on the real speaker video): that zone
    is why a frame there is neither refused nor used.

    A movement in a wrong direction (see ``_WRONG``) fails the
    session once it reaches ``wrong_margin`` times its threshold. A turn is
    not read from a face whose eye distance, over its eyes-to-mouth height, has
    shrunk below ``min_turn_width`` of the baseline's: a flat print turned 60°
    about its vertical axis shrinks to 0.5–0.63 and its detected points then
    fake 15–19° of yaw; a head turned 25–35° stays at 0.69–1.0 (sample photos,
    synthetic poses). A frame is frontal (a baseline, a best frame) within
    ``frontal_yaw`` degrees and ``frontal_pitch`` units: 17 reads on
    :func:`pose_from_landmarks` (which no longer saturates) what 15 read on the
    sine estimate before it: 66 % of LFW faces and 51 % of the real speaker
    video's frames count as frontal under both (``docs/door.md``, "Why
    cooperative claims failed"). ``min_motion``
    is the mean absolute grey-level change between consecutive aligned crops
    below which a frame is "static"; ``max_static`` consecutive static frames
    fail the session.

    **Identity between frames.** The same-face check reads a frame's
    embedding, most of a frame's cost, so it runs on every frame the decision
    rests on (the baseline, a frame answering a challenge, a best-frame
    candidate, a frame the rigid-texture check keeps), on every frame where
    the tracker lost the face and found one again, on every frame whose
    aligned face changed by ``identity_jump`` or more from the previous frame
    (the motion check's mean grey-level change: 99 % of LFW crops of two
    different people differ by 33 or more, 95 % of consecutive frames of the
    real speaker video by less than 27), and at least on every
    ``identity_every``-th frame (1: every frame). A face swapped in between
    is refused at once, or at the latest at the next such frame, and before
    any frame of it counts.

    ``unassessable`` says what happens when the passive check cannot judge the
    capture (``LivenessResult.assessed`` False: a colour check on a grayscale
    or infrared camera): ``"refuse"`` fails the session (the default: an RGB
    browser or phone camera never delivers grayscale), ``"active-only"``
    records that it was not assessed and lets the active checks carry the
    decision (a door with an IR camera, knowingly).

    **Animation and replay checks** (``animation_checks``, on by default, as
    the ``app-login`` and ``door-access`` profiles use it; docs/liveness.md
    has the measured figures). *Rigid texture*: the session keeps the face
    patches of up to ``trace_frames`` frames (``trace_spacing`` apart) and
    compares, after the best smooth warp, the ``compared_pairs`` pairs in the
    same pose (within ``pair_yaw`` degrees, ``pair_pitch`` units and
    ``pair_scale`` of scale) at least ``pair_gap`` apart
    (:class:`~._animation.TextureTrace`); if none changed by at least
    ``texture_change_min``, or no two frames were in the same pose, the face is
    taken as one picture, warped or held, and the session fails. *Parallax*:
    the frames that answered a turn or a nod must leave at least
    ``parallax_min`` after the best warp (None: not checked).
    *Timing*: a response met sooner than ``min_response`` after its prompt
    is faster than a person reacts. *Prompt timing* (with ``animation_checks``):
    before each prompt the face must be back at rest, with two frames in the
    same pose at least ``pair_gap`` apart for the rigid-texture check (held
    still: before the first prompt, about 0.4 s; "hold still" until then), then wait a
    random hold drawn from ``prompt_hold`` (OS CSPRNG, at the session's start,
    kept with the challenges); the prompt reaches the person in the reply to
    the first frame after it, and the response must be met no later than
    ``max_response`` after that frame. A movement held (``hold_frames`` frames; a nod at
    ``wrong_margin`` times its threshold)
    before its prompt, or met too late after it, fails: a recording cannot
    know when its prompts will come. The session's deadline allows the longest
    hold before every prompt, so it tells the client nothing of the holds drawn.
    Switch ``animation_checks`` off only for synthetic frames (a warped
    photo, or frames made before the session, is exactly what it refuses),
    never in a deployment.

    ``replay_memory`` (on by default): the session keeps every frame's pose
    and a 14 × 14 thumbnail (:class:`~._memory.Recollection`); the ``Verifier``
    refuses a session whose frames an earlier passing session of the subject
    holds again (a digital replay), and remembers a passing one, sealed in the
    vault under the subject's key (``Vault(recollections=...)``). Switch it off
    only for synthetic frames made from one photo, which are replays of each
    other by construction.

    ``screen_light`` (None: off, as at a door with an IR camera and no screen)
    turns on the screen-light challenge for a browser page or a kiosk: the
    client shows :attr:`ChallengeSession.screen_colour` after every frame and
    the face's colour must follow the random sequence (:mod:`._screen_light`;
    its own policy holds its thresholds and its ``unassessable`` rule).
    """

    challenges: tuple[int, int] = (2, 3)
    time_per_challenge: timedelta = timedelta(seconds=6)
    baseline_time: timedelta = timedelta(seconds=6)
    turn_yaw: float = 15.0
    nod_pitch: float = 8.0
    closer_ratio: float = 1.25
    neutral_fraction: float = 0.5
    wrong_margin: float = 1.5
    min_turn_width: float = 0.66
    frontal_yaw: float = 17.0  # the sine estimate's 15 (before #15): same share frontal, LFW and real video
    frontal_pitch: float = 20.0
    hold_frames: int = 2
    same_face: float = 0.38  # these three: the default pack's, recorded with its revision (session_identity)
    same_face_floor: float = 0.3
    other_face: float = 0.24
    identity_every: int = 5
    identity_jump: float = 30.0
    min_motion: float = 0.4
    max_static: int = 3
    max_frames: int = 1035  # the longest session (34.5 s: _limits.LIMITS.session_seconds) at 30 fps
    best_samples: int = 3
    passive_frames: int = 3
    unassessable: Literal["refuse", "active-only"] = "refuse"
    animation_checks: bool = True
    texture_change_min: float = 0.006  # benchmark tuning half: attacks <= 0.0031, real faces >= 0.0101
    parallax_min: float | None = None
    pair_yaw: float = 4.0
    pair_pitch: float = 6.0
    pair_scale: float = 0.2
    pair_gap: timedelta = timedelta(milliseconds=300)
    trace_spacing: timedelta = timedelta(milliseconds=200)
    trace_frames: int = 16
    compared_pairs: int = 6
    min_response: timedelta = timedelta(milliseconds=200)
    prompt_hold: tuple[timedelta, timedelta] = (timedelta(milliseconds=500), timedelta(milliseconds=3500))
    max_response: timedelta = timedelta(seconds=2)
    replay_memory: bool = True
    quality: QualityPolicy = field(default_factory=QualityPolicy)
    screen_light: ScreenLightPolicy | None = None

    def __post_init__(self) -> None:
        lo, hi = self.challenges
        if not 1 <= lo <= hi <= len(Challenge):
            raise ConfigurationError(
                f"challenge count range {self.challenges} is not within 1..{len(Challenge)}"
            )
        if min(self.hold_frames, self.best_samples, self.max_static, self.identity_every) < 1:
            raise ConfigurationError(
                "hold_frames, best_samples, max_static and identity_every must be at least 1"
            )
        if not self.identity_jump > 0:
            raise ConfigurationError(f"identity_jump must be positive, not {self.identity_jump}")
        least, most = sorted((self.same_face, self.same_face_floor))
        if not -1.0 <= self.other_face <= least <= most <= 1.0:
            raise ConfigurationError(
                "the same-face cosines must satisfy -1 <= other_face <= same_face, same_face_floor <= 1, "
                f"not {self.other_face}, {self.same_face}, {self.same_face_floor}"
            )
        if not 2 <= self.trace_frames <= MAX_TRACE_FRAMES or self.compared_pairs < 1:
            # The bound keeps a snapshot under its 256 KiB (a patch is 3 KiB, 4 in base64).
            raise ConfigurationError(
                f"trace_frames must be 2..{MAX_TRACE_FRAMES} and compared_pairs at least 1"
            )
        shortest, longest = self.prompt_hold
        if not timedelta(0) <= shortest <= longest or self.max_response <= self.min_response:
            raise ConfigurationError("prompt_hold must be 0 <= low <= high, and max_response > min_response")
        if self.unassessable not in ("refuse", "active-only"):
            raise ConfigurationError(
                f"unassessable must be 'refuse' or 'active-only', not {self.unassessable!r}"
            )

    @property
    def trace_rules(self) -> TraceRules:
        """The rigid-texture check's frame and pair rules, from this policy."""
        return TraceRules(
            yaw=self.pair_yaw,
            pitch=self.pair_pitch,
            scale=self.pair_scale,
            gap=self.pair_gap.total_seconds(),
            spacing=self.trace_spacing.total_seconds(),
            frames=self.trace_frames,
            pairs=self.compared_pairs,
        )


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """One named check of the session: did it pass, and what was seen."""

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True, slots=True)
class ChallengeResult:
    """How a session ended.

    ``passed`` is true only when every check passed; ``reasons`` lists, in
    words, each that did not. ``best_samples`` are the best-quality frontal
    frames (embedding, quality, face box), best first, for the 1:1 comparison;
    they are returned whether or not the session passed, and must not be used
    for a decision unless it did. ``state`` is where the session stood: a
    result whose state is still ``BASELINE`` or ``CHALLENGE`` is an unfinished
    (abandoned) session, which a caller counts as a failed attempt.
    ``binding`` names the session (nonce and challenges) for audit entries.
    ``recollection`` holds the session's frames as the replay memory keeps them
    (:mod:`._memory`): the ``Verifier`` refuses a session an earlier passing
    one of the subject holds again, and remembers this one if it passes.
    """

    passed: bool
    reasons: tuple[str, ...]
    checks: tuple[CheckOutcome, ...]
    best_samples: tuple[FaceSample, ...]
    nonce: str
    challenges: tuple[Challenge, ...]
    passive: LivenessResult | None
    frames: int
    state: State = State.FAILED
    screen_light: ScreenLightResult | None = None
    colours: tuple[ScreenColour, ...] = ()  # the screen-light colours shown, in order
    recollection: Recollection | None = None  # the frames, as the replay memory keeps them

    @property
    def binding(self) -> str:
        """``"session <nonce>: <challenge>, <challenge>[; screen <colour>, ...]"``: what this
        decision was about."""
        out = f"session {self.nonce}: " + ", ".join(c.value for c in self.challenges)
        return out + ("; screen " + ", ".join(c.value for c in self.colours) if self.colours else "")

    @property
    def abandoned(self) -> bool:
        """The session ended without a verdict (no frames came, or not enough)."""
        return self.state in (State.BASELINE, State.CHALLENGE)

    def raise_if_failed(self) -> ChallengeResult:
        """Return self if the session passed, else raise :class:`ChallengeFailedError`."""
        if not self.passed:
            raise ChallengeFailedError(
                "liveness challenge failed: " + "; ".join(self.reasons), reasons=self.reasons
            )
        return self


def _draw(rand: Random, lo: int, hi: int) -> list[Challenge]:
    """``lo``..``hi`` distinct challenges in random order, at least one a turn
    (yaw is the movement five landmarks measure best)."""
    first = rand.choice(_TURNS)
    rest = rand.sample([c for c in Challenge if c is not first], rand.randint(lo, hi) - 1)
    drawn = [first, *rest]
    rand.shuffle(drawn)
    return drawn


def _holds(rand: Random, policy: ChallengePolicy, count: int) -> tuple[float, ...]:
    """The random hold before each prompt, in seconds (none without the animation checks)."""
    if not policy.animation_checks:
        return (0.0,) * count
    lo, hi = (t.total_seconds() for t in policy.prompt_hold)
    return tuple(round(lo + (hi - lo) * rand.random(), 3) for _ in range(count))


def _progress(p: ChallengePolicy, base: _Pose, pose: _Pose) -> dict[Challenge, float]:
    """How far each challenge is met from ``base``, as a share of its threshold (1 = met)."""
    dyaw, dpitch = pose.yaw - base.yaw, pose.pitch - base.pitch
    scale = pose.interocular / max(base.interocular, 1e-6)
    if pose.width < p.min_turn_width * base.width:
        # Foreshortened like a flat print turned far about its vertical axis:
        # the detector's points then fake a yaw, so no turn is read at all.
        dyaw = 0.0
    return {
        Challenge.TURN_LEFT: dyaw / p.turn_yaw,
        Challenge.TURN_RIGHT: -dyaw / p.turn_yaw,
        Challenge.LOOK_UP: -dpitch / p.nod_pitch,
        Challenge.LOOK_DOWN: dpitch / p.nod_pitch,
        Challenge.MOVE_CLOSER: (scale - 1.0) / (p.closer_ratio - 1.0),
    }


def _at_rest(progress: dict[Challenge, float], policy: ChallengePolicy) -> bool:
    """Near the baseline pose: turns and the distance within ``neutral_fraction`` of their
    thresholds; nods only short of theirs (five points' pitch swings at rest)."""
    return all(v < (1.0 if c in _NODS else policy.neutral_fraction) for c, v in progress.items())


def same_face(
    policy: ChallengePolicy, to_base: float, to_prev: float | None, *, to_last: float
) -> tuple[str, str]:
    """(why a frame's face is another's, why it cannot be told); both '' when it is the tracked face.

    ``to_base``: its cosine with the baseline; ``to_prev``, for a turned or nodded face
    (None for a frontal one), with the previous frame that counted: a posed face matches
    its own frontal view less well, so it is held to that frame at ``same_face`` and to the
    baseline only at ``same_face_floor``; a frontal face to the baseline at ``same_face``.
    Only then is it the tracked face, and the frame counts.

    ``to_last``: its cosine with the last frame read and not refused (the baseline at first),
    whether it counted or not. The face is **another** only where it matches neither the
    baseline nor that frame (below ``other_face`` with both): a discontinuity, a face that
    was not there the frame before. A face that still matches the frame read before it but
    no longer the baseline is the same face the recognizer cannot read (a walker looking
    at the ground: 0.10 with his own baseline, 0.55 or more with the frame before; a face
    half hidden by a passer-by): it cannot be told, like any frame short of counting.

    Why this is safe: a frame that does not match the baseline never counts, so nothing an
    attacker shows that is not the baseline's face answers a prompt, becomes a best frame
    or enters the rigid-texture trace; what the refusal adds is that a face swapped in
    (a cut: every swap is unlike the frame before it) fails the session at once. A face
    morphed into another a little a frame is real-time rendering, the stated limit of
    an RGB check (docs/liveness.md), and still counts for nothing; the session runs out.
    """
    if to_base < policy.other_face and to_last < policy.other_face:
        return (
            f"similarity {to_base:.2f} < {policy.other_face:.2f} with the first frame "
            f"and {to_last:.2f} with the last frame read"
        ), ""
    checks = [("the first frame", to_base, policy.same_face)]
    if to_prev is not None:
        checks = [
            ("the previous frame", to_prev, policy.same_face),
            ("the first frame", to_base, policy.same_face_floor),
        ]
    for what, score, least in checks:
        if score < least:
            return "", f"similarity {score:.2f} < {least:.2f} with {what}"
    return "", ""


@dataclass(frozen=True, slots=True)
class _Pose:
    yaw: float
    pitch: float
    interocular: float
    width: float  # eye distance over eyes-to-mouth height: shrinks when the face is foreshortened

    @classmethod
    def of(cls, landmarks: np.ndarray) -> _Pose:
        yaw, pitch, _roll = pose_from_landmarks(landmarks)
        re, le, _nose, rm, lm = (np.asarray(p, dtype=np.float64) for p in landmarks)
        iod = float(np.linalg.norm(le - re))
        height = float(np.linalg.norm((rm + lm) / 2 - (re + le) / 2))
        return cls(yaw, pitch, iod, iod / max(height, 1e-6))


@dataclass(slots=True)
class _Candidate:
    sample: FaceSample
    rank: float
    passive: float | None  # the passive check's score; None: none configured
    passive_note: str  # non-empty: the passive check cannot judge this frame (why)


class ChallengeSession:
    """A state machine over frames: baseline, then each challenge, then the verdict.

    ``clock`` gives the session's start and deadline (inject a
    :class:`~faceverify.FrozenClock` in tests); frame timestamps (``at``)
    default to the clock's time. ``rng`` draws the challenges and the holds
    before their prompts (default: the operating system's CSPRNG; pass a
    seeded :class:`random.Random` only in tests). ``passive`` is an optional passive
    check run on the best frames.

    ``snapshot()`` writes the session as bytes and ``restore(...)`` continues
    it, in another process if need be (see :mod:`._session_state`).
    """

    #: The snapshot's ``kind``: a subclass binding more state sets its own.
    SNAPSHOT_KIND = "challenge"

    def __init__(
        self,
        pipeline: FacePipeline,
        *,
        clock: Clock | None = None,
        policy: ChallengePolicy | None = None,
        passive: LivenessCheck | None = None,
        rng: Random | None = None,
        challenges: Sequence[Challenge] | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._tracker = FaceTracker(pipeline)  # frames: tracked between whole-frame detections
        self._clock = clock or SystemClock()
        self.policy = policy or ChallengePolicy()
        self._passive = passive
        rand = rng or secrets.SystemRandom()
        if challenges is None:
            challenges = _draw(rand, *self.policy.challenges)
        if not challenges:
            raise ConfigurationError("a challenge session needs at least one challenge")
        self.challenges: tuple[Challenge, ...] = tuple(challenges)
        self.holds = _holds(rand, self.policy, len(self.challenges))
        self.nonce = secrets.token_hex(16)
        self.started = self._clock.now()
        p = self.policy
        # The session's deadline allows the longest hold before every prompt, whatever was drawn:
        # it is handed to the client, and must not tell it the secret holds.
        longest = p.prompt_hold[1] if p.animation_checks else timedelta(0)
        per_challenge = p.time_per_challenge + longest
        self.deadline = self.started + p.baseline_time + per_challenge * len(self.challenges)
        self.state = State.BASELINE
        self._index = 0
        self._challenge_deadline = self.started + p.baseline_time
        self._armed = False
        self._held = 0
        self._frames = 0
        self._static = 0
        self._unchecked = 0  # frames since the face was last checked against the baseline
        self._last_at: datetime | None = None
        self._last_crop: np.ndarray | None = None  # uint16: the sum of the aligned crop's channels
        self._reference: FaceSample | None = None
        self._previous: FaceSample | None = None  # the last frame that counted (checked, the same face)
        self._last_read: FaceSample | None = None  # the last frame read and not refused, counted or not
        self._base: _Pose | None = None
        self._candidates: list[_Candidate] = []
        self._checks: list[CheckOutcome] = []
        self._reasons: list[str] = []
        self._passive_result: LivenessResult | None = None
        self._feedback: tuple[FrameFeedback, ...] = ()
        # The animation checks' evidence: 56x56 grey face patches, a few KiB each.
        self._base_patch: Patch | None = None
        self._trace = TextureTrace(self.policy.trace_rules)
        self._posed: list[Patch] = []
        self._memory = Recollection()  # every frame's pose and thumbnail, for the replay memory
        self._prompt_at: datetime | None = None  # the frame time a challenge's prompt was issued
        self._rest_at: datetime | None = None  # when the face came back to rest before a prompt
        self._hold_from: datetime | None = None  # when its hold began: at rest, two frames to compare
        self._early = 0  # frames in a row answering a prompt not yet given
        self._baseline_at: datetime | None = None
        self._at = self.started  # the frame being processed: its time and patch
        self._patch: Patch | None = None
        light = p.screen_light
        self._light = None if light is None else ScreenLight.draw(light, rand, self.started, self.deadline)

    # -- what to show the user ------------------------------------------------

    @property
    def current(self) -> Challenge | None:
        """The pending challenge once its prompt is given; None before (the baseline, the hold
        before each prompt) and after the session."""
        shown = self.state is State.CHALLENGE and self._prompt_at is not None and not self._lighting
        return self.challenges[self._index] if shown else None

    @property
    def _lighting(self) -> bool:
        """The challenges are met; the screen light still needs colour steps."""
        return self._index == len(self.challenges)

    @property
    def screen_colour(self) -> ScreenColour | None:
        """The colour the client's screen must show now (None: no screen-light challenge,
        or the session is over)."""
        return None if self._light is None or self.finished else self._light.colour

    @property
    def finished(self) -> bool:
        return self.state in (State.PASSED, State.FAILED)

    @property
    def prompt(self) -> str:
        waiting = self._prompt_at is None or self._lighting
        if self.state is State.BASELINE or (self.state is State.CHALLENGE and waiting):
            return "look straight at the camera"
        if self.state is State.CHALLENGE:
            return self.challenges[self._index].prompt
        return "done" if self.state is State.PASSED else "liveness check failed"

    @property
    def feedback(self) -> tuple[FrameFeedback, ...]:
        """What to change, about the last frame fed (empty: nothing)."""
        return self._feedback

    @property
    def progress(self) -> tuple[int, int]:
        """(challenges done, challenges asked)."""
        return self._index, len(self.challenges)

    # -- feeding frames ------------------------------------------------------

    def feed(self, frame: RGBImage, *, at: datetime | None = None, nonce: str | None = None) -> State:
        """Process one RGB frame taken at ``at``; return the state after it.

        Frames without a usable face are skipped (a camera drops some); frames
        after the session has finished are ignored. ``nonce``, when the frames
        come from a remote client, must be this session's.
        """
        if self.finished:
            return self.state
        self._feedback = ()
        now = self._clock.now()
        at = at or now
        self._frames += 1
        if nonce is not None and not secrets.compare_digest(nonce, self.nonce):
            return self._fail("nonce", "the frames are bound to another session (nonce mismatch)")
        if max(now, at) > self._challenge_deadline:  # never later than the session's deadline
            return self._fail("deadline", self._late_reason())
        if at < self.started or (self._last_at is not None and at <= self._last_at):
            return self._fail("frame-order", "frame timestamps are out of order or precede the session")
        self._last_at = self._at = at
        if self._frames > self.policy.max_frames:
            return self._fail("frames", f"more than {self.policy.max_frames} frames")

        image = self._pipeline.load(frame)
        followed, since_full = self._tracker.position
        try:
            face = self._tracker.locate(image)
        except MultipleFacesError:
            self._feedback = (FrameFeedback.SEVERAL_FACES,)
            return self._fail("one-face", "several faces in a frame: one person at a time")
        except FaceError:
            self._feedback = (FrameFeedback.NO_FACE,)
            return self.state  # no face in this frame: skip it
        # Found afresh by a whole-frame detection (the first frame, or the face was lost),
        # not the one the tracker makes every ``full_every`` frames on a face it follows.
        due = followed is not None and since_full >= self._tracker.full_every
        refound = self._tracker.position[1] == 1 and not due
        crop = self._pipeline.aligner.align(image, face.landmarks)
        change = self._crop_change(crop)
        if change is not None and change < self.policy.min_motion:
            self._static += 1
            self._feedback = (FrameFeedback.FROZEN,)
            if self._static >= self.policy.max_static:
                return self._fail(
                    "motion", f"{self._static} identical frames in a row: a static image, not a live camera"
                )
            return self.state
        self._static = 0
        self._patch = face_patch(crop)
        quality = measure(image, face, crop)
        self._feedback = tuple(quality_feedback(quality, self.policy.quality))
        sample = self._pipeline.frame_sample(face, crop, quality)  # embedded when first read
        pose = _Pose.of(face.landmarks)
        self._memory.add(pose.yaw, pose.pitch, pose.interocular, self._patch)
        if self._light is not None:  # its colour is read on a face at rest (cheeks in view, as before)
            self._light.frame(
                at, crop, steady=self._base is None or _at_rest(self._deltas(pose), self.policy)
            )

        if self._reference is None:
            return self._baseline(sample, pose, image, now)
        jumped = change is not None and change >= self.policy.identity_jump
        # Read once a frame: where the face stands against each challenge, and its rank
        # among the best frames (None: not kept), for the identity check and the decision.
        progress, rank = self._deltas(pose), self._rank(sample, pose)
        if self._needs_check(progress, rank, refound or jumped):
            other, unsure = self._identity(sample, pose)
            if other:
                return self._fail("same-face", f"a different face appeared mid-session ({other})")
            self._last_read = sample
            if unsure:  # cannot tell: the frame counts for nothing, and the next one is checked
                self._unchecked = self.policy.identity_every
                return self.state
            self._previous, self._unchecked = sample, 0
        else:
            self._unchecked += 1
        self._consider(sample, rank, image)
        if self._waiting(progress):
            self._trace_frame(pose)  # at rest, waiting for a prompt: what the rigid-texture check compares
        return self._respond(progress, now)

    def _waiting(self, progress: dict[Challenge, float]) -> bool:
        """Is the face waiting for a prompt, back at rest since the last (or coming back now)?"""
        if self.state is not State.CHALLENGE or self._prompt_at is not None or self._lighting:
            return False
        return self._rest_at is not None or _at_rest(progress, self.policy)

    def _trace_frame(self, pose: _Pose) -> None:
        assert self._patch is not None and self._baseline_at is not None
        t = (self._at - self._baseline_at).total_seconds()
        self._trace.add(t, pose.yaw, pose.pitch, pose.interocular, self._patch)

    def _needs_check(self, progress: dict[Challenge, float], rank: float | None, changed: bool) -> bool:
        """Must this frame's face be checked against the baseline (its embedding read)?

        Yes when the tracker ``changed`` faces (found one afresh, or the aligned face
        jumped), when the frame counts in the decision (it answers the pending
        challenge, is a best-frame candidate, or may enter the rigid-texture trace,
        i.e. it waits for a prompt and the trace is due), and on every
        ``identity_every``-th frame; the others are only tracked.
        """
        p = self.policy
        if changed or self._unchecked + 1 >= p.identity_every or rank is not None:
            return True
        if self.state is State.CHALLENGE and self._lighting:
            return False
        if self.state is State.CHALLENGE and progress[self.challenges[self._index]] >= 1.0:
            return True
        if not (p.animation_checks and self.state is State.CHALLENGE and self._prompt_at is None):
            return False  # the trace takes frames only while the face waits for a prompt
        assert self._baseline_at is not None
        return self._trace.due((self._at - self._baseline_at).total_seconds())

    def _identity(self, sample: FaceSample, pose: _Pose) -> tuple[str, str]:
        """:func:`same_face` of this frame's face with the baseline's, the last frame read's
        and, for a turned or nodded face, the previous frame that counted."""
        assert self._reference is not None and self._previous is not None and self._last_read is not None
        to_base = cosine(self._reference.embedding, sample.embedding)
        to_prev = None if self._frontal(pose) else cosine(self._previous.embedding, sample.embedding)
        to_last = cosine(self._last_read.embedding, sample.embedding)
        return same_face(self.policy, to_base, to_prev, to_last=to_last)

    def _late_reason(self) -> str:
        if self.state is State.BASELINE:
            return "no frontal face within the time allowed"
        if self._lighting:
            return "the screen light did not get enough colour steps seen in time"
        wanted = self.challenges[self._index].value
        if self._rest_at is None:
            return f"the face did not come back to rest for {wanted!r} in time"
        if self._hold_from is None:
            return f"the face did not hold still before {wanted!r} (no two frames in the same pose) in time"
        if self._prompt_at is None:
            return f"no frame came in time for {wanted!r} to be asked (the frames stopped during its hold)"
        return f"no response to {wanted!r} before its deadline"

    def _crop_change(self, crop: RGBImage) -> float | None:
        """The mean absolute grey-level change of the aligned face since the last frame
        (None on the first): below ``min_motion`` a static image, from ``identity_jump``
        another face."""
        # The channel sum is exact in uint16 (and so is its snapshot); /3 gives the grey level.
        total = crop.astype(np.uint16).sum(axis=-1, dtype=np.uint16)
        last, self._last_crop = self._last_crop, total
        if last is None:
            return None
        return float(np.abs(total.astype(np.float32) - last.astype(np.float32)).mean()) / 3.0

    def _frontal(self, pose: _Pose) -> bool:
        return abs(pose.yaw) <= self.policy.frontal_yaw and abs(pose.pitch) <= self.policy.frontal_pitch

    def _baseline(self, sample: FaceSample, pose: _Pose, image: RGBImage, now: datetime) -> State:
        if not self._frontal(pose):
            self._feedback = (*self._feedback, FrameFeedback.LOOK_STRAIGHT)
            return self.state
        if self.policy.quality.reasons(sample.quality):
            return self.state  # wait for a frontal frame good enough to track from
        self._reference, self._previous, self._last_read, self._base = sample, sample, sample, pose
        self._base_patch, self._baseline_at = self._patch, self._at
        self._trace_frame(pose)
        self._checks.append(CheckOutcome("baseline", True, "frontal face found"))
        self._consider(sample, self._rank(sample, pose), image)
        self._start_challenge(now)
        if self._prompt_at is None:
            self._rest_at = self._at  # the baseline is the rest pose: a response from here is early
        return self.state

    def _start_challenge(self, now: datetime) -> None:
        self.state = State.CHALLENGE
        self._armed, self._held, self._early, self._rest_at, self._hold_from = False, 0, 0, None, None
        hold = timedelta(seconds=self.holds[self._index])
        self._prompt_at = None if self.policy.animation_checks else self._at
        self._challenge_deadline = min(self.deadline, now + self.policy.time_per_challenge + hold)

    def _await_prompt(self, wanted: Challenge, progress: dict[Challenge, float]) -> State:
        """Before a prompt: back at rest; two frames in the same pose in the rigid-texture
        check's trace (the face held still: before the first prompt, about 0.4 s); then the
        drawn hold, and the prompt goes out with the reply to the first frame after it. A
        response held from the face's return to rest until then answers something the session
        has not asked yet: a recording, not a person. A nod counts as held early only at
        ``wrong_margin`` times its threshold: five points' pitch swings by up to 12 units (1.5
        nods) in a face held still."""
        p = self.policy
        if self._rest_at is None:
            if not _at_rest(progress, p):
                self._feedback = (*self._feedback, FrameFeedback.LOOK_STRAIGHT)
                return self.state
            self._rest_at = self._at
        early = [
            c for c in (wanted, *_WRONG[wanted]) if progress[c] >= (p.wrong_margin if c in _NODS else 1.0)
        ]
        self._early = self._early + 1 if early else 0
        if self._early >= p.hold_frames:
            return self._fail(
                "timing", f"{early[0].value} held before its prompt was given: a recording, not a response"
            )
        if self._hold_from is None:
            if self._trace.pairs():
                self._hold_from = self._at
            else:
                self._feedback = (*self._feedback, FrameFeedback.HOLD_STILL)
            return self.state
        if self._at - self._hold_from >= timedelta(seconds=self.holds[self._index]):
            self._prompt_at, self._armed = self._at, True
        elif early:
            self._feedback = (*self._feedback, FrameFeedback.LOOK_STRAIGHT)
        return self.state

    def _deltas(self, pose: _Pose) -> dict[Challenge, float]:
        assert self._base is not None
        return _progress(self.policy, self._base, pose)

    def _respond(self, progress: dict[Challenge, float], now: datetime) -> State:
        if self.state is not State.CHALLENGE:
            return self.state
        if self._lighting:
            return self._await_light()
        wanted = self.challenges[self._index]
        if self._prompt_at is None:
            return self._await_prompt(wanted, progress)
        latency = self._at - self._prompt_at
        if self._held == 0 and self.policy.animation_checks and latency > self.policy.max_response:
            return self._fail(
                "timing",
                f"{wanted.value} not met {latency.total_seconds():.3f} s after its prompt "
                f"(a person answers within {self.policy.max_response.total_seconds():.1f} s)",
            )
        if progress[wanted] >= 1.0:
            if self._held == 0 and latency < self.policy.min_response:
                return self._fail(
                    "timing",
                    f"{wanted.value} met {latency.total_seconds():.3f} s after its prompt: "
                    "faster than a person reacts",
                )
            self._held += 1
            if self._held >= self.policy.hold_frames:
                self._checks.append(CheckOutcome(f"challenge:{wanted.value}", True, "response seen"))
                if wanted is not Challenge.MOVE_CLOSER and self._patch is not None:
                    self._posed.append(self._patch)
                self._index += 1
                if self._lighting:
                    return self._await_light()
                self._start_challenge(now)
            else:
                self._feedback = (*self._feedback, FrameFeedback.HOLD_STILL)
            return self.state
        self._held = 0
        if progress[wanted] >= self.policy.neutral_fraction:
            further = (
                FrameFeedback.COME_CLOSER if wanted is Challenge.MOVE_CLOSER else FrameFeedback.TURN_FURTHER
            )
            self._feedback = (*self._feedback, further)
        elif any(progress[c] >= 1.0 for c in _WRONG[wanted]):
            self._feedback = (*self._feedback, FrameFeedback.WRONG_WAY)
        if not self._armed:
            # Another challenge's pose may linger from the previous one: wrong
            # responses count only once the face has been back near rest.
            self._armed = all(v < self.policy.neutral_fraction for v in progress.values())
            return self.state
        others = [c for c in _WRONG[wanted] if progress[c] >= self.policy.wrong_margin]
        if others:
            return self._fail(
                f"challenge:{wanted.value}",
                f"wrong response: {others[0].value} when asked to {wanted.value}",
            )
        return self.state

    def _await_light(self) -> State:
        """Finish once the screen light has seen its colour steps; until then (quick answers),
        the person looks at the camera, within the session's deadline."""
        if self._light is None or self._light.ready:
            return self._finish()
        self._challenge_deadline = self.deadline
        self._feedback = (*self._feedback, FrameFeedback.LOOK_STRAIGHT)
        return self.state

    def _consider(self, sample: FaceSample, rank: float | None, image: RGBImage) -> None:
        """Keep the best frontal frames that meet the quality minimums (``rank``: the
        frame's, from :meth:`_rank`; None: not kept); score the passive check on each kept
        frame now, so that no frame is held."""
        if rank is None:
            return
        score, note = None, ""
        if self._passive is not None:
            note = cannot_assess(self._passive, image, sample.face)
            score = None if note else float(self._passive.score(image, sample.face))
        self._candidates.append(_Candidate(sample, rank, score, note))
        self._candidates.sort(key=lambda c: c.rank, reverse=True)
        del self._candidates[max(self.policy.best_samples, self.policy.passive_frames) :]

    def _rank(self, sample: FaceSample, pose: _Pose) -> float | None:
        """The frame's rank among the best frontal frames, None if it would not be kept."""
        if not self._frontal(pose) or self.policy.quality.reasons(sample.quality):
            return None
        q = sample.quality
        rank = float(np.log1p(q.sharpness) - abs(q.yaw) / 30.0 - abs(q.pitch) / 30.0 + np.log(q.interocular))
        keep = max(self.policy.best_samples, self.policy.passive_frames)
        if len(self._candidates) >= keep and rank <= self._candidates[-1].rank:
            return None  # would be dropped at once: not worth a passive score
        return rank

    # -- the verdict ---------------------------------------------------------

    def _finish(self) -> State:
        self.state = State.PASSED
        self._checks.append(CheckOutcome("same-face", True, "one face throughout"))
        self._checks.append(CheckOutcome("motion", True, "frames change like a live camera's"))
        if self.policy.animation_checks:
            self._animation_verdict()
            if self.state is State.FAILED:
                return self.state
        if self._light is not None and self.policy.screen_light is not None:
            self._light_verdict(self._light, self.policy.screen_light)
            if self.state is State.FAILED:
                return self.state
        if self._passive is not None:
            return self._passive_verdict(self._passive)
        return self.state

    def _animation_verdict(self) -> None:
        """One picture, warped or held, or a live face? (see :mod:`._animation`)"""
        assert self._base_patch is not None
        p = self.policy
        change = self._trace.change()
        if change is None:
            self._fail("rigid-texture", "no two frames in the same pose to compare: cannot tell a live face")
            return
        if change < p.texture_change_min:
            self._fail(
                "rigid-texture",
                f"the face never changed between frames in the same pose (largest change {change:.4f} < "
                f"{p.texture_change_min:.4f}): one picture warped or held, not a live face",
            )
            return
        detail = (
            f"the face changed between frames in the same pose ({change:.4f} >= {p.texture_change_min:.4f})"
        )
        self._checks.append(CheckOutcome("rigid-texture", True, detail))
        if p.parallax_min is None:
            return
        shown = parallax(self._base_patch, self._posed)
        if shown is None or shown < p.parallax_min:
            got = "no posed frame" if shown is None else f"{shown:.4f}"
            self._fail(
                "parallax",
                f"the turns were explained by one smooth warp of the first frame "
                f"({got} < {p.parallax_min:.4f})",
            )
            return
        self._checks.append(CheckOutcome("parallax", True, f"{shown:.4f} >= {p.parallax_min:.4f}"))

    def _light_verdict(self, light: ScreenLight, policy: ScreenLightPolicy) -> None:
        """Did the face's colour follow the screen's random sequence? (see :mod:`._screen_light`)"""
        r = light.verdict()
        if r.assessed:
            if r.passed:
                self._checks.append(CheckOutcome("screen-light", True, r.detail))
            else:
                self._fail("screen-light", f"screen-light: {r.note}")
        elif policy.unassessable == "refuse":
            self._fail("screen-light", f"screen-light: {r.note}; refused by policy (unassessable='refuse')")
        else:
            self._checks.append(
                CheckOutcome(
                    "screen-light-not-assessed",
                    True,
                    f"{r.note}; the other checks carried the decision (unassessable='active-only')",
                )
            )

    def _passive_verdict(self, check: LivenessCheck) -> State:
        chosen = self._candidates[: self.policy.passive_frames]
        note = next((c.passive_note for c in chosen if c.passive_note), "")
        r = decide(check, [c.passive for c in chosen if c.passive is not None], note=note)
        self._passive_result = r
        if not r.assessed:
            if self.policy.unassessable == "refuse":
                return self._fail(
                    "passive-pad",
                    f"{r.check}: {r.note}; refused by policy (ChallengePolicy.unassessable='refuse')",
                )
            self._checks.append(
                CheckOutcome(
                    "passive-pad-not-assessed",
                    True,
                    f"{r.check}: {r.note}; the active checks carried the decision "
                    "(ChallengePolicy.unassessable='active-only')",
                )
            )
            return self.state
        detail = f"{r.check}: live probability {r.score:.2f}, threshold {r.threshold:.2f}"
        if not r.live:
            return self._fail("passive-pad", f"passive check scored the face as an attack ({detail})")
        self._checks.append(CheckOutcome("passive-pad", True, detail))
        return self.state

    def _fail(self, check: str, reason: str) -> State:
        self.state = State.FAILED
        self._checks.append(CheckOutcome(check, False, reason))
        self._reasons.append(reason)
        return self.state

    def result(self) -> ChallengeResult:
        """The outcome so far; an unfinished session past its deadline has failed."""
        if not self.finished and self._clock.now() > min(self.deadline, self._challenge_deadline):
            self._fail("deadline", self._late_reason())
        reasons = list(self._reasons)
        if not self.finished:
            reasons.append(f"session not finished: {self.prompt}")
        return ChallengeResult(
            passed=self.state is State.PASSED,
            reasons=tuple(reasons),
            checks=tuple(self._checks),
            best_samples=tuple(c.sample for c in self._candidates[: self.policy.best_samples]),
            nonce=self.nonce,
            challenges=self.challenges,
            passive=self._passive_result,
            frames=self._frames,
            state=self.state,
            screen_light=self._light_result(),
            colours=() if self._light is None else self._light.shown,
            recollection=replace(self._memory),  # a copy: the session may take more frames
        )

    def _light_result(self) -> ScreenLightResult | None:
        """The screen-light verdict, once the session has reached it."""
        decided = any(c.name.startswith("screen-light") for c in self._checks)
        return self._light.verdict() if self._light is not None and decided else None

    # -- the session as data -------------------------------------------------

    def snapshot(self) -> bytes:
        """The session's whole state as bytes (versioned JSON, at most 256 KiB, no pickle).

        Holds no frame: the face's embeddings, pose and quality figures of the
        baseline, previous, last read and best frames, one aligned crop's grey levels
        (the motion check's last frame), the rigid-texture patches and the replay
        memory's thumbnails. Seal it at rest (the vault's session
        store does). :meth:`restore` continues exactly here.
        """
        return st.dump(self.SNAPSHOT_KIND, {**self._state(), "extra": self._extra_state()})

    def _extra_state(self) -> dict[str, Any]:
        """What a subclass binds to the session (e.g. the claimed subject), as JSON values."""
        return {}

    def _load_extra(self, extra: dict[str, Any]) -> None:
        """Take back what :meth:`_extra_state` wrote."""

    def _state(self) -> dict[str, Any]:
        pose = self._base
        last, since_full = self._tracker.position
        return {
            "policy": st.fingerprint(self.policy),
            "passive": None if self._passive is None else self._passive.name,
            "nonce": self.nonce,
            "challenges": [c.value for c in self.challenges],
            "holds": list(self.holds),
            "started": st.pack_time(self.started),
            "deadline": st.pack_time(self.deadline),
            "state": self.state.value,
            "index": self._index,
            "challenge_deadline": st.pack_time(self._challenge_deadline),
            "armed": self._armed,
            "held": self._held,
            "frames": self._frames,
            "static": self._static,
            "unchecked": self._unchecked,
            "last_at": st.pack_time(self._last_at),
            "last_crop": None if self._last_crop is None else st.pack_array(self._last_crop),
            "reference": None if self._reference is None else st.pack_sample(self._reference),
            "previous": None if self._previous is None else st.pack_sample(self._previous),
            "last_read": None if self._last_read is None else st.pack_sample(self._last_read),
            "base": None if pose is None else [pose.yaw, pose.pitch, pose.interocular, pose.width],
            "candidates": [
                {
                    "sample": st.pack_sample(c.sample),
                    "rank": c.rank,
                    "passive": c.passive,
                    "note": c.passive_note,
                }
                for c in self._candidates
            ],
            "checks": [[c.name, c.passed, c.detail] for c in self._checks],
            "reasons": list(self._reasons),
            "passive_result": _pack_liveness(self._passive_result),
            "feedback": [f.value for f in self._feedback],
            "tracker": None if last is None else {"face": st.pack_face(last), "since_full": since_full},
            "base_patch": None if self._base_patch is None else st.pack_array(self._base_patch),
            "trace": [
                [f.t, f.yaw, f.pitch, f.interocular, st.pack_array(f.patch)] for f in self._trace.frames
            ],
            "posed": [st.pack_array(r) for r in self._posed],
            "memory": [self._memory.offered, st.pack_array(np.frombuffer(self._memory.to_bytes(), np.uint8))],
            "baseline_at": st.pack_time(self._baseline_at),
            "prompt_at": st.pack_time(self._prompt_at),
            "rest_at": st.pack_time(self._rest_at),
            "hold_from": st.pack_time(self._hold_from),
            "early": self._early,
            "light": None if self._light is None else self._light.state(),
        }

    @classmethod
    def restore(
        cls,
        data: bytes,
        pipeline: FacePipeline,
        *,
        clock: Clock,
        policy: ChallengePolicy,
        passive: LivenessCheck | None,
    ) -> Self:
        """Continue a session from :meth:`snapshot`: same nonce, challenges, deadlines,
        counters and baseline. ``policy`` and ``passive`` must be the ones the
        session was started with (a decision follows one policy); ``clock`` is
        the server's. Raises :class:`ConfigurationError` for a snapshot this
        version cannot read, or one made under another policy or passive check.
        """
        body = st.load(data, cls.SNAPSHOT_KIND)
        session = cls.__new__(cls)
        try:
            session._load(body, pipeline, clock=clock, policy=policy, passive=passive)
            session._load_extra(body["extra"])
        except st.StateError:
            raise
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise st.StateError(f"malformed session snapshot: {exc!r}") from None
        return session

    def _load(
        self,
        body: dict[str, Any],
        pipeline: FacePipeline,
        *,
        clock: Clock,
        policy: ChallengePolicy,
        passive: LivenessCheck | None,
    ) -> None:
        if body["policy"] != st.fingerprint(policy):
            raise st.StateError("the session was started under another ChallengePolicy")
        if body["passive"] != (None if passive is None else passive.name):
            raise st.StateError("the session was started with another passive check")
        self._pipeline, self._clock, self.policy, self._passive = pipeline, clock, policy, passive
        self._tracker = FaceTracker(pipeline)
        tracked = body.get("tracker")
        if tracked is not None:  # track on from where the original was (same detections, same poses)
            self._tracker.resume(st.unpack_face(tracked["face"]), int(tracked["since_full"]))
        self.nonce = str(body["nonce"])
        self.challenges = tuple(Challenge(v) for v in body["challenges"])
        if not self.challenges:
            raise st.StateError("a session snapshot without challenges")
        self.holds = tuple(float(h) for h in body["holds"])
        if len(self.holds) != len(self.challenges):
            raise st.StateError("a session snapshot with holds that do not match its challenges")
        self.started = _required_time(body["started"])
        self.deadline = _required_time(body["deadline"])
        self.state = State(body["state"])
        self._index = int(body["index"])
        if not 0 <= self._index <= len(self.challenges):
            raise st.StateError("challenge index out of range")
        self._challenge_deadline = _required_time(body["challenge_deadline"])
        self._armed = bool(body["armed"])
        self._held = int(body["held"])
        self._frames = int(body["frames"])
        self._static = int(body["static"])
        self._unchecked = int(body["unchecked"])
        self._last_at = st.unpack_time(body["last_at"])
        crop = body["last_crop"]
        self._last_crop = None if crop is None else st.unpack_array(crop, "uint16", ndim=2)
        self._reference = None if body["reference"] is None else st.unpack_sample(body["reference"])
        self._previous = None if body["previous"] is None else st.unpack_sample(body["previous"])
        last_read = body.get("last_read", body["previous"])  # absent before: the last frame that counted
        self._last_read = None if last_read is None else st.unpack_sample(last_read)
        base = body["base"]
        self._base = None if base is None else _Pose(*(float(v) for v in base))
        self._candidates = [
            _Candidate(
                st.unpack_sample(c["sample"]),
                float(c["rank"]),
                None if c["passive"] is None else float(c["passive"]),
                str(c["note"]),
            )
            for c in body["candidates"]
        ]
        self._checks = [CheckOutcome(str(n), bool(p), str(d)) for n, p, d in body["checks"]]
        self._reasons = [str(r) for r in body["reasons"]]
        self._passive_result = _unpack_liveness(body["passive_result"])
        self._feedback = tuple(FrameFeedback(v) for v in body["feedback"])
        patch = body["base_patch"]
        self._base_patch = None if patch is None else _patch(patch)
        frames = [
            TraceFrame(float(t), float(y), float(p), float(i), _patch(a)) for t, y, p, i, a in body["trace"]
        ]
        self._trace = TextureTrace(policy.trace_rules, frames[: policy.trace_frames])
        self._posed = [_patch(r) for r in body["posed"]][: len(self.challenges)]
        offered, memory = body["memory"]
        self._memory = Recollection.from_bytes(st.unpack_array(memory, "uint8", ndim=1).tobytes())
        self._memory.offered = int(offered)
        self._baseline_at = st.unpack_time(body["baseline_at"])
        self._prompt_at = st.unpack_time(body["prompt_at"])
        self._rest_at = st.unpack_time(body["rest_at"])
        self._hold_from = st.unpack_time(body["hold_from"])
        self._early = int(body["early"])
        self._at = self._last_at or self.started
        self._patch = None
        light = body.get("light")  # absent in a snapshot made before the screen light
        if (light is None) != (policy.screen_light is None):
            raise st.StateError("a session snapshot whose screen light does not match its policy")
        self._light = (
            None
            if light is None or policy.screen_light is None
            else ScreenLight.load(policy.screen_light, light)
        )


def _patch(d: Any) -> Patch:
    a = st.unpack_array(d, "uint8", ndim=2)
    if a.shape != (56, 56):
        raise st.StateError("a face patch of the wrong shape")
    return a


def _required_time(s: Any) -> datetime:
    at = st.unpack_time(s)
    if at is None:
        raise st.StateError("a session snapshot lacks a time stamp")
    return at


def _pack_liveness(r: LivenessResult | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return {
        "check": r.check,
        "score": r.score,
        "threshold": r.threshold,
        "live": r.live,
        "frame_scores": list(r.frame_scores),
        "assessed": r.assessed,
        "note": r.note,
    }


def _unpack_liveness(d: Any) -> LivenessResult | None:
    if d is None:
        return None
    return LivenessResult(
        check=str(d["check"]),
        score=float(d["score"]),
        threshold=float(d["threshold"]),
        live=bool(d["live"]),
        frame_scores=tuple(float(v) for v in d["frame_scores"]),
        assessed=bool(d["assessed"]),
        note=str(d["note"]),
    )
