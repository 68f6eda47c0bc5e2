"""The Verifier: enrol, verify, revoke, purge — one claimed subject at a time.

Separate ceremonies with keyword-only options and typed, frozen results, in the
manner of py_webauthn: the caller says which subject a capture claims to be,
and gets back a decision at a named operating point with its stated false
match rate, or a typed refusal. Everything it carries (pipeline, model pack,
profile, vault with its stores, clock and audit sink) is injected.

The Verifier never holds more than one subject's template: the comparison is
a closure handed to ``Vault.verify``, which opens the claimed subject's
template only.

**Multi-image templates.** A template keeps the 1–5 enrolment embeddings. A
claim against several is scored against their renormalised mean, at the
operating point the pack calibrated for means of that many images (the
scores of a mean have their own distribution, so it has its own threshold;
on LFW a mean of 3 cut FNMR at FMR 1e-5 roughly threefold, benchmarks/improve.py).
Where the pack states no such point (a custom threshold, a pack without
template points) the claim must reach the threshold against **every**
member instead (the score is the lowest member score): an impostor who passes
all members has passed member 1, an event of probability FMR, so the
single-image promise still holds. The maximum over members is never used: it
gives an impostor k chances.

**Live verification.** ``start_session(subject_id)`` gives a
:class:`LiveSession` (a :class:`ChallengeSession` bound to the claimed subject,
configured by the Verifier: its pipeline, its vault's clock, the profile's
quality minimums, the optional passive check); the caller feeds it frames and
``finish(session)`` decides. ``verify_live(subject_id, frames)`` does both
over an iterable of frames. A failed session is refused with
``ChallengeFailedError``, audited and counted toward lockout; a passed one is
compared, once, through the same ``Vault.verify`` path as ``verify``.

**Live enrolment.** ``start_session(subject_id, purpose="enroll")`` gives a
session for ``enroll_live(subject_id, session, consent=...)``, which enrols
from several distinct best frontal frames of a session that passed (a kiosk, a
web page). A session is started for one ceremony and decided once: an
enrolment session is refused by ``finish`` and a verification session by
``enroll_live``, so a capture made to enrol can never open a door, and the
reverse.

The probe of a live session is its **single best-quality frontal frame**, not
a mean of several: the operating points were calibrated with one capture per
probe, and on LFW with simulated frames the mean of the best 2 or 3 frames
(each at its own calibrated threshold) lowered FNMR at FMR 1e-5 by no more
than noise (3.79 % against 3.75 %; ``benchmarks/improve.py``, multi-frame
probes), so a second score distribution to calibrate buys nothing measured.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from random import Random
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ._clock import Clock
from ._compare import resolve_operating_point
from ._errors import (
    CaptureError,
    ChallengeFailedError,
    ConfigurationError,
    FaceError,
    InvalidInputError,
    LivenessError,
    LivenessRequiredError,
    LockedOutError,
    LowQualityError,
    UnknownSessionError,
)
from ._limits import Limits
from ._liveness._challenge import (
    Challenge,
    ChallengePolicy,
    ChallengeResult,
    ChallengeSession,
    CheckOutcome,
    FrameFeedback,
)
from ._liveness._check import LivenessCheck
from ._liveness._memory import Recollection
from ._liveness._screen_light import ScreenColour
from ._models._manifest import ModelPack, OperatingPoint
from ._pipeline._capture import CaptureSource, RGBImage, load_image
from ._pipeline._embed import Embedding
from ._pipeline._pipeline import FacePipeline, FaceSample, cosine
from ._pipeline._quality import Quality, QualityPolicy
from ._profiles import Profile, get_profile
from ._templates import mean_template
from ._vault import ConsentRecord, DeletionReceipt, MasterKey, OpenedTemplate, RetentionPolicy, Vault
from ._vault._consent import check_subject_id
from ._vault._template import MAX_EMBEDDINGS

#: Two enrolment images whose embeddings are closer than this add nothing (the
#: same photo twice, or a burst of frames): the second is refused.
NEAR_DUPLICATE_COSINE = 0.97


@dataclass(frozen=True, slots=True)
class EnrollmentResult:
    """A stored template: which one, from how many images, until when."""

    subject_id: str
    template_id: str
    model_pack_id: str
    images: int
    qualities: tuple[Quality, ...]
    expires_at: datetime
    replaced: bool


Rule = Literal["single", "mean", "every-member"]


@dataclass(frozen=True, slots=True)
class VerificationResult:
    """The decision on one claim.

    ``match`` is ``score >= threshold``; ``operating_point.fmr`` is the false
    match rate that threshold was calibrated to (NaN for a custom threshold).
    ``reasons`` says in words why the decision went the way it did;
    ``rule`` how the score was taken against a template of several images
    (``"mean"`` of them at its own operating point, or ``"every-member"``: the
    lowest member score at the single-image point; ``"single"`` for one image).
    """

    subject_id: str
    match: bool
    score: float
    threshold: float
    operating_point: OperatingPoint
    quality: Quality
    reasons: tuple[str, ...]
    rule: Rule = "single"
    liveness: tuple[CheckOutcome, ...] = ()
    """The live session's checks, each passed (empty for a still-image ``verify``)."""


#: What a live session was started for: a verification (``finish``) or an
#: enrolment (``enroll_live``); never both.
SessionPurpose = Literal["verify", "enroll"]

#: How many frontal frames an enrolment session keeps as candidates; the
#: distinct best of them (at most ``MAX_EMBEDDINGS``) become the template.
ENROLMENT_CANDIDATES = 12

#: A template made from a live session holds at least this many distinct frames.
MIN_LIVE_ENROLMENT_IMAGES = 2

#: How long a stored session outlives its deadline (so a late ``finish`` still gets the
#: decision "not finished in time"); past it the session is swept as abandoned.
SESSION_GRACE = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class SessionTicket:
    """A store-backed live session, started: what the client needs to run it."""

    session_id: str
    subject_id: str
    purpose: SessionPurpose
    nonce: str
    prompt: str
    deadline: datetime
    challenges: int
    screen_colour: ScreenColour | None = None  # the screen-light colour to show first (None: off)


@dataclass(frozen=True, slots=True)
class FrameUpdate:
    """The session after one frame: its state, the current prompt, feedback about the frame."""

    state: str
    prompt: str
    feedback: tuple[FrameFeedback, ...]
    progress: tuple[int, int]
    finished: bool
    screen_colour: ScreenColour | None = None  # the screen-light colour to show now (None: off)


@dataclass(frozen=True, slots=True)
class _SessionEnvelope:
    """What ``vault.sessions`` holds for a session: the ceremony, who started it, the last
    frame's server time and the liveness snapshot (versioned JSON; sealed at rest by the store)."""

    purpose: SessionPurpose
    actor: str | None
    last_at: datetime | None
    snapshot: bytes

    def dump(self) -> bytes:
        return json.dumps(
            {
                "format": 1,
                "purpose": self.purpose,
                "actor": self.actor,
                "last_at": None if self.last_at is None else self.last_at.isoformat(),
                "snapshot": base64.b64encode(self.snapshot).decode(),
            }
        ).encode()

    @classmethod
    def load(cls, data: bytes, actor: str | None) -> _SessionEnvelope:
        """The envelope, if ``actor`` started the session; else the one opaque ``UnknownSessionError``."""
        try:
            body = json.loads(data)
            purpose = body["purpose"]
            if body["format"] != 1 or purpose not in ("verify", "enroll") or body["actor"] != actor:
                raise ValueError
            last = body["last_at"]
            envelope = cls(
                purpose,
                actor,
                None if last is None else datetime.fromisoformat(last),
                base64.b64decode(body["snapshot"], validate=True),
            )
        except (KeyError, TypeError, ValueError):
            raise UnknownSessionError("no such live session") from None
        return envelope


def pack_session_policy(pack: ModelPack, *, quality: QualityPolicy) -> ChallengePolicy:
    """The default ``ChallengePolicy`` under ``pack``: ``quality``, and the same-face cosines
    calibrated for the pack's revision (``ModelPack.session_identity``; a pack that records
    none keeps the policy's, which are the default pack's). Cosines recorded for another
    revision are refused, never applied to these embeddings."""
    policy = replace(ChallengePolicy(), quality=quality)
    ident = pack.session_identity
    if ident is None:
        return policy
    if ident.embedding_space != pack.embedding_space:
        raise ConfigurationError(
            f"pack {pack.id}'s same-face cosines were calibrated for {ident.embedding_space!r}, "
            f"not {pack.embedding_space!r}: recalibrate them (benchmarks/same_face.py)"
        )
    return replace(
        policy, same_face=ident.same_face, other_face=ident.other_face, same_face_floor=ident.same_face_floor
    )


class LiveSession(ChallengeSession):
    """A challenge session bound to one claimed subject, made by ``Verifier.start_session``.

    Feed it frames as any :class:`ChallengeSession` (``feed``, ``prompt``,
    ``current``, ``finished``), then hand it, once, to ``Verifier.finish``
    (``purpose="verify"``) or ``Verifier.enroll_live`` (``purpose="enroll"``).
    ``snapshot()`` / ``LiveSession.restore(...)`` carry the claimed subject and
    the purpose too (restore with ``Verifier.session_policy(purpose)``).
    """

    SNAPSHOT_KIND = "live"

    def __init__(
        self,
        subject_id: str,
        pipeline: FacePipeline,
        *,
        clock: Clock,
        policy: ChallengePolicy,
        passive: LivenessCheck | None,
        rng: Random | None,
        challenges: Sequence[Challenge] | None,
        purpose: SessionPurpose = "verify",
    ) -> None:
        super().__init__(
            pipeline, clock=clock, policy=policy, passive=passive, rng=rng, challenges=challenges
        )
        self._subject_id = subject_id
        self._purpose: SessionPurpose = purpose

    @property
    def subject_id(self) -> str:
        """The claimed subject, fixed when the session started."""
        return self._subject_id

    @property
    def purpose(self) -> SessionPurpose:
        """The ceremony the session was started for (not the consent's purpose)."""
        return self._purpose

    def _extra_state(self) -> dict[str, Any]:
        return {"subject_id": self._subject_id, "purpose": self._purpose}

    def _load_extra(self, extra: dict[str, Any]) -> None:
        self._subject_id = str(extra["subject_id"])
        purpose = extra.get("purpose", "verify")
        if purpose not in ("verify", "enroll"):
            raise ValueError(f"unknown session purpose {purpose!r}")
        self._purpose = purpose


#: A frame for ``verify_live``: an RGB array, or ``(rgb, timestamp or None)``
#: as :func:`~faceverify._liveness.frames_from_video` yields.
Frame = RGBImage | tuple[RGBImage, datetime | None]


class Verifier:
    """1:1 verification against consent-bound templates."""

    #: TEST-ONLY: every store-backed session asks this sequence instead of a random draw
    #: (a prepared recording passes a known sequence; docs/service.md).
    fixed_challenges: tuple[Challenge, ...] | None = None

    def __init__(
        self,
        *,
        pipeline: FacePipeline,
        pack: ModelPack,
        vault: Vault,
        profile: Profile | str = "photo-check",
        passive: LivenessCheck | None = None,
        challenge_policy: ChallengePolicy | None = None,
    ) -> None:
        """``passive``: a passive PAD check run inside every live session on its best
        frames; when None, the profile decides (``passive_check``: faceverify's own
        ``FeaturePADCheck`` for app-login and door-access, see docs/liveness.md).
        ``challenge_policy``: the sessions' parameters (default ``ChallengePolicy()``
        with the profile's quality minimums and the pack's same-face cosines:
        :func:`pack_session_policy`)."""
        self.pipeline = pipeline
        self.pack = pack
        self.vault = vault
        self.profile = get_profile(profile)
        self.operating_point = resolve_operating_point(pack, self.profile)
        _check_custom_threshold(pack, self.profile)
        if passive is None and self.profile.passive_check:
            from ._liveness import FeaturePADCheck

            passive = FeaturePADCheck()
        self.passive = passive
        self._challenge_policy = challenge_policy
        # Sessions this Verifier started and has not yet decided: each is decided once.
        self._open_sessions: weakref.WeakSet[LiveSession] = weakref.WeakSet()
        self._sessions_lock = threading.Lock()

    @classmethod
    def open(
        cls,
        database: str | Path,
        *,
        master_key: MasterKey,
        keys_database: str | Path | None = None,
        pack: str = "yunet-sface",
        cache: str | Path | None = None,
        profile: Profile | str = "photo-check",
        clock: Clock | None = None,
        retention: RetentionPolicy | None = None,
        purpose: str | None = None,
        passive: LivenessCheck | None = None,
        create: bool = False,
    ) -> Verifier:
        """The installed pack's pipeline and the vault ``database`` names (see ``Vault.open``)."""
        from ._models._load import load_pipeline
        from ._models._manifest import builtin_manifest

        manifest = builtin_manifest(pack)
        vault = Vault.open(
            database,
            master_key,
            keys_database=keys_database,
            clock=clock,
            retention=retention,
            purpose=purpose,
            create=create,
        )
        return cls(
            pipeline=load_pipeline(manifest, cache=cache),
            pack=manifest,
            vault=vault,
            profile=profile,
            passive=passive,
        )

    # -- ceremonies ----------------------------------------------------------------

    def enroll(
        self,
        subject_id: str,
        images: Sequence[CaptureSource],
        *,
        consent: ConsentRecord,
        actor: str | None = None,
    ) -> EnrollmentResult:
        """Enrol 1–5 images of ``subject_id`` under ``consent``; replaces any previous template.

        Each image passes the profile's quality gate (its error carries a note
        naming the image). Images must show one person (every pair scores at
        least the operating threshold) and differ (cosine <= 0.97). Consent is
        checked before any image is processed.
        """
        subject_id = check_subject_id(subject_id)
        if not 1 <= len(images) <= MAX_EMBEDDINGS:
            raise InvalidInputError(f"enrolment takes 1 to {MAX_EMBEDDINGS} images, got {len(images)}")
        self.vault.require_consent(subject_id, consent, actor=actor)
        embeddings: list[Embedding] = []
        qualities: list[Quality] = []
        for index, image in enumerate(images, start=1):
            try:
                sample = self.pipeline.sample(image, policy=self.profile.quality)
            except (CaptureError, FaceError) as exc:
                exc.add_note(f"enrolment image {index} of {len(images)}")
                self.vault.audit.record(
                    "enroll",
                    subject=subject_id,
                    outcome="refused",
                    reason=f"image {index}: {type(exc).__name__}",
                    actor=actor,
                )
                raise
            embeddings.append(sample.embedding)
            qualities.append(sample.quality)
        return self._seal(subject_id, embeddings, qualities, consent=consent, actor=actor)

    def _seal(
        self,
        subject_id: str,
        embeddings: list[Embedding],
        qualities: Sequence[Quality],
        *,
        consent: ConsentRecord,
        actor: str | None = None,
        remember: Recollection | None = None,
    ) -> EnrollmentResult:
        """Check the set is one person in distinct images, then store it as the template
        (with the live session's ``remember``-ed frames: see :mod:`._liveness._memory`)."""
        self._check_set(subject_id, embeddings, actor)
        previous = self.vault.store.get(subject_id)
        header = self.vault.enroll(
            subject_id,
            np.stack(embeddings),
            consent=consent,
            model_pack_id=self.pack.embedding_space,
            actor=actor,
            remember=None if remember is None else remember.to_bytes(),
        )
        return EnrollmentResult(
            subject_id=subject_id,
            template_id=header.template_id,
            model_pack_id=header.model_pack_id,
            images=len(embeddings),
            qualities=tuple(qualities),
            expires_at=header.expires_at,
            replaced=previous is not None and previous.state == "active",
        )

    def _check_set(self, subject_id: str, embeddings: list[Embedding], actor: str | None) -> None:
        threshold = self.operating_point.threshold
        for i in range(len(embeddings)):
            for j in range(i):
                score = cosine(embeddings[i], embeddings[j])
                reason = None
                if score > NEAR_DUPLICATE_COSINE:
                    reason = f"image {i + 1} is a near-duplicate of image {j + 1} (cosine {score:.3f})"
                elif score < threshold:
                    reason = f"images {j + 1} and {i + 1} do not show the same person (score {score:.3f})"
                if reason is not None:
                    self.vault.audit.record(
                        "enroll", subject=subject_id, outcome="refused", reason=reason, actor=actor
                    )
                    raise LowQualityError(f"enrolment refused: {reason}", reasons=[reason])

    def verify(
        self, subject_id: str, capture: CaptureSource, *, actor: str | None = None
    ) -> VerificationResult:
        """Is ``capture`` the enrolled ``subject_id``? Compared with that subject only.

        Refusals are typed: ``UnknownSubjectError``, ``SubjectRevokedError``,
        ``TemplateExpiredError`` (retention, consent, or another model pack),
        ``LockedOutError``, ``EnumerationRefusedError``, ``ConsentError``
        (another purpose), ``InvalidTemplateError``, and the capture's own
        ``CaptureError`` / ``FaceError`` / ``LivenessRequiredError`` — the last also
        for a subject whose consent purpose is ``app-login`` or ``door-access``
        (``LIVE_PURPOSES``), whatever the profile: such a subject is verified only
        through a live session. The subject is checked before the image is processed.
        """
        subject_id = check_subject_id(subject_id)
        try:
            if self.profile.liveness_required:
                raise LivenessRequiredError(
                    f"profile {self.profile.name!r} requires a live capture session; "
                    "a still image cannot show that the person was present "
                    "(use start_session()/finish() or verify_live(); on the command line "
                    "`faceverify verify SUBJECT --camera INDEX`)"
                )
        except LivenessError as exc:
            self.vault.audit.record(
                "verify", subject=subject_id, outcome="refused", reason=type(exc).__name__, actor=actor
            )
            raise
        space = self.pack.embedding_space
        self.vault.require_verifiable(subject_id, actor=actor, live=False, model_pack_id=space)
        try:
            sample = self.pipeline.sample(capture, policy=self.profile.quality)
        except (CaptureError, FaceError) as exc:
            self.vault.audit.record(
                "verify", subject=subject_id, outcome="refused", reason=type(exc).__name__, actor=actor
            )
            raise
        return self._compare(subject_id, sample.embedding, sample.quality, actor=actor, live=False)

    def _compare(
        self,
        subject_id: str,
        probe: Embedding,
        quality: Quality,
        *,
        extra: tuple[str, ...] = (),
        liveness: tuple[CheckOutcome, ...] = (),
        note: str = "",
        actor: str | None = None,
        live: bool,
        recollection: Recollection | None = None,
    ) -> VerificationResult:
        """The one 1:1 comparison, through the vault (lockout, enumeration, retention, audit).

        A live session's ``recollection`` is checked against the subject's
        remembered sessions first (a replay of one is ``ChallengeFailedError``,
        counted as a failed attempt) and remembered if it matches, in the
        comparison's unit of work.
        """

        def decide(opened: OpenedTemplate) -> VerificationResult:
            op, score, rule, how = self._score(opened.embeddings, probe)
            match = score >= op.threshold
            promise = (
                f"operating point {op.name!r} (FMR {op.fmr:.0e})"
                if op.calibrated
                else "uncalibrated threshold"
            )
            reason = f"score {score:.4f} {'>=' if match else '<'} threshold {op.threshold:.4f} at {promise}"
            return VerificationResult(
                subject_id=subject_id,
                match=match,
                score=score,
                threshold=op.threshold,
                operating_point=op,
                quality=quality,
                reasons=(reason, how, *extra),
                rule=rule,
                liveness=liveness,
            )

        space = self.pack.embedding_space
        if not self.operating_point.calibrated:  # recorded as such: it promises no false match rate
            custom = f"custom threshold {self.operating_point.threshold:.4f} (uncalibrated)"
            note = f"{note}; {custom}" if note else custom
        return self.vault.verify(
            subject_id,
            probe,
            decide,
            model_pack_id=space,
            note=note,
            actor=actor,
            live=live,
            recall=None if recollection is None else _replay_check(recollection, self.challenge_policy),
            remember=None if recollection is None else recollection.to_bytes(),
        )

    # -- live verification ---------------------------------------------------------

    def start_session(
        self,
        subject_id: str,
        *,
        challenges: Sequence[Challenge] | None = None,
        clock: Clock | None = None,
        rng: Random | None = None,
        purpose: SessionPurpose = "verify",
    ) -> LiveSession:
        """A challenge session for a live capture claiming to be ``subject_id``.

        Challenges are drawn from the OS's CSPRNG unless ``challenges`` fixes
        them — only for tests and recorded demos: a recording can be prepared
        for a known sequence, so a fixed one proves much less. ``clock``
        (default: the vault's) times the session; ``rng`` is for tests.
        ``purpose`` is the ceremony the session is for: ``"verify"`` (decided
        by ``finish``) or ``"enroll"`` (decided by ``enroll_live``; it keeps
        more frontal frames as candidates). Nothing about the subject is
        looked up until then.
        """
        subject_id = check_subject_id(subject_id)
        session = LiveSession(
            subject_id,
            self.pipeline,
            clock=clock or self.vault.clock,
            policy=self.session_policy(purpose),
            passive=self.passive,
            rng=rng,
            challenges=challenges,
            purpose=purpose,
        )
        with self._sessions_lock:
            self._open_sessions.add(session)
        return session

    @property
    def challenge_policy(self) -> ChallengePolicy:
        """The live sessions' parameters, resolved on first use: a pack whose same-face
        cosines were calibrated for another revision refuses its live sessions
        (``ConfigurationError``), not the ceremonies that take no live capture."""
        if self._challenge_policy is None:
            self._challenge_policy = pack_session_policy(self.pack, quality=self.profile.quality)
        return self._challenge_policy

    @challenge_policy.setter
    def challenge_policy(self, policy: ChallengePolicy) -> None:
        self._challenge_policy = policy

    def session_policy(self, purpose: SessionPurpose = "verify") -> ChallengePolicy:
        """The ChallengePolicy of this Verifier's sessions for ``purpose`` (an enrolment
        session keeps more frontal frames as candidates); restore snapshots with it."""
        if purpose not in ("verify", "enroll"):
            raise ConfigurationError(f"a live session is for 'verify' or 'enroll', not {purpose!r}")
        policy = self.challenge_policy
        if purpose == "enroll":
            policy = replace(policy, best_samples=max(policy.best_samples, ENROLMENT_CANDIDATES))
        return policy

    def _claim(self, session: LiveSession, purpose: SessionPurpose, actor: str | None) -> None:
        """Take ``session`` out of the open ones (decided once, even with two threads
        racing); refuse one this Verifier did not start, already decided, or
        started for the other ceremony."""
        with self._sessions_lock:
            ours = session in self._open_sessions
            self._open_sessions.discard(session)
        reason = ""
        if not ours:
            reason = "the session was not started by this verifier, or was already decided"
        elif session.purpose != purpose:
            what = {"verify": "a verification", "enroll": "an enrolment"}
            reason = f"the session was started for {what[session.purpose]}, not {what[purpose]}"
        if reason:
            self.vault.audit.record(
                purpose, subject=session.subject_id, outcome="refused", reason=reason, actor=actor
            )
            raise ChallengeFailedError(f"liveness challenge refused: {reason}", reasons=[reason])

    def finish(self, session: LiveSession, *, actor: str | None = None) -> VerificationResult:
        """Decide a session from ``start_session``: refuse unless it passed, then compare once.

        Raises ``ChallengeFailedError`` (with ``reasons``) for a failed or
        unfinished session — audited, and counted toward the subject's lockout
        like a no-match — and for a session this Verifier did not start, has
        already decided, or started for enrolment. Otherwise the best-quality
        frontal frame is compared with the claimed subject's template, with
        every refusal of ``verify``.
        """
        subject_id = session.subject_id
        self._claim(session, "verify", actor)
        result = session.result()
        if result.passed and not result.best_samples:  # cannot happen: the baseline frame is one
            result = replace(result, passed=False, reasons=("no frontal frame to compare",))
        if not result.passed:
            reason = f"liveness, {result.binding}: " + "; ".join(result.reasons)
            self.vault.record_failed_attempt(subject_id, reason=reason, actor=actor)
            result.raise_if_failed()
        return self._decide_live(subject_id, result, actor=actor)

    def _decide_live(
        self, subject_id: str, result: ChallengeResult, *, actor: str | None = None
    ) -> VerificationResult:
        best = result.best_samples[0]
        asked = ", ".join(c.value for c in result.challenges)
        return self._compare(
            subject_id,
            best.embedding,
            best.quality,
            extra=(
                f"probe: the best-quality frontal frame of a live session that passed ({asked})",
                f"live {result.binding}",
            ),
            liveness=result.checks,
            note=f"live {result.binding}",
            actor=actor,
            live=True,
            recollection=result.recollection if self.challenge_policy.replay_memory else None,
        )

    def enroll_live(
        self,
        subject_id: str,
        session: LiveSession,
        *,
        consent: ConsentRecord,
        actor: str | None = None,
    ) -> EnrollmentResult:
        """Enrol ``subject_id`` from a live session started with ``purpose="enroll"``.

        The template is made from the session's best-quality frontal frames
        that differ from each other (cosine <= ``NEAR_DUPLICATE_COSINE``), at
        most ``MAX_EMBEDDINGS`` of them and at least
        ``MIN_LIVE_ENROLMENT_IMAGES``, with the same checks as ``enroll``
        (consent first, one person throughout). Raises
        ``ChallengeFailedError`` — audited, nothing enrolled — for a failed
        or unfinished session, one started for verification or for another
        subject, or one already decided; ``LowQualityError`` when the passed
        session held too few distinct good frames (enrol again, moving a
        little). ``actor`` names who ran the ceremony (e.g.
        ``"kiosk:operator-7"``) for the audit.
        """
        subject_id = check_subject_id(subject_id)
        self.vault.require_consent(subject_id, consent, actor=actor)
        self._claim(session, "enroll", actor)
        if session.subject_id != subject_id:
            reason = "the session was started for another subject"
            self.vault.audit.record(
                "enroll", subject=subject_id, outcome="refused", reason=reason, actor=actor
            )
            raise ChallengeFailedError(f"liveness challenge refused: {reason}", reasons=[reason])
        return self._enroll_result(subject_id, session.result(), consent=consent, actor=actor)

    def _enroll_result(
        self,
        subject_id: str,
        result: ChallengeResult,
        *,
        consent: ConsentRecord,
        actor: str | None = None,
    ) -> EnrollmentResult:
        """Enrol from a decided enrolment session's result (also for store-backed sessions)."""
        if not result.passed:
            self.vault.audit.record(
                "enroll",
                subject=subject_id,
                outcome="refused",
                reason=f"liveness, {result.binding}: " + "; ".join(result.reasons),
                actor=actor,
            )
            result.raise_if_failed()
        chosen = distinct_samples(result.best_samples, limit=MAX_EMBEDDINGS)
        if len(chosen) < MIN_LIVE_ENROLMENT_IMAGES:
            reason = (
                f"the live session held {len(chosen)} distinct good frontal frame(s); "
                f"enrolment takes at least {MIN_LIVE_ENROLMENT_IMAGES}"
            )
            self.vault.audit.record(
                "enroll", subject=subject_id, outcome="refused", reason=reason, actor=actor
            )
            raise LowQualityError(f"enrolment refused: {reason}", reasons=[reason])
        return self._seal(
            subject_id,
            [s.embedding for s in chosen],
            [s.quality for s in chosen],
            consent=consent,
            actor=actor,
            remember=result.recollection if self.challenge_policy.replay_memory else None,
        )

    def verify_live(
        self,
        subject_id: str,
        frames: Iterable[Frame],
        *,
        challenges: Sequence[Challenge] | None = None,
        clock: Clock | None = None,
        on_prompt: Callable[[str], None] | None = None,
        actor: str | None = None,
    ) -> VerificationResult:
        """Run a session for ``subject_id`` over ``frames`` until it ends, then ``finish`` it.

        ``frames`` yields RGB arrays or ``(rgb, timestamp)`` pairs (a timestamp
        of ``None`` means "now" on the session's clock), e.g. from
        ``frames_from_video``. ``on_prompt`` is called with each new
        instruction ("look straight at the camera", "turn your head to your
        left", ...) as it is issued. See ``start_session`` for ``challenges``
        and ``clock``.
        """
        session = self.start_session(subject_id, challenges=challenges, clock=clock)
        run_session(session, frames, on_prompt=on_prompt)
        return self.finish(session, actor=actor)

    def revoke(self, subject_id: str, *, actor: str | None = None) -> DeletionReceipt:
        """Erase the subject's template and destroy its key (crypto-shredding)."""
        return self.vault.revoke(subject_id, actor=actor)

    def purge(self, *, actor: str | None = None) -> int:
        """Erase every template past consent or retention; returns how many."""
        return self.vault.purge(actor=actor)

    def rotate(self, new_master: MasterKey, *, actor: str | None = None) -> int:
        """Re-wrap every key under a new master key (templates untouched); how many subject keys."""
        return self.vault.rotate_master_key(new_master, actor=actor)

    def record_failed_attempt(self, subject_id: str, *, reason: str, actor: str | None = None) -> None:
        """Audit an attempt refused before any comparison and count it toward lockout."""
        self.vault.record_failed_attempt(subject_id, reason=reason, actor=actor)

    def _score(
        self, members: npt.NDArray[np.float32], probe: Embedding
    ) -> tuple[OperatingPoint, float, Rule, str]:
        """The operating point, score, rule and its wording for a probe against a template's members."""
        m = len(members)
        if m == 1:
            return self.operating_point, cosine(members[0], probe), "single", "one enrolment image"
        if self.profile.custom_threshold is None:
            point = self.pack.template_point(self.profile.operating_point, images=m)
            if point is not None:
                mean = mean_template(list(members))
                return point, cosine(mean, probe), "mean", f"mean of {m} enrolment images"
        score = min(cosine(member, probe) for member in members)
        return self.operating_point, score, "every-member", f"lowest score over {m} enrolment images"

    def needs_reenroll(self, subject_id: str) -> bool:
        """Whether the template was made with another model pack or template format."""
        return self.vault.needs_reenroll(subject_id, self.pack.embedding_space)

    # -- store-backed live sessions (contract C: any worker takes the next frame) ------

    def begin_session(
        self, subject_id: str, *, purpose: SessionPurpose = "verify", actor: str | None = None
    ) -> SessionTicket:
        """Start a live session held in the vault's session store, not in this process.

        A verification session is refused at once, before any frame, for a
        subject ``verify`` would refuse (``vault.require_verifiable``: unknown,
        revoked, expired, locked out, another consent purpose); starting one
        for a locked-out subject also counts as a failed attempt. Sessions
        abandoned past their deadline are swept here and count toward their
        subject's lockout. Challenges are drawn at random (``fixed_challenges``
        is for tests only).
        """
        from ._vault._consent import check_subject_id

        subject_id = check_subject_id(subject_id)
        self._sweep_sessions(actor)
        if purpose == "verify":
            try:
                self.vault.require_verifiable(
                    subject_id, actor=actor, live=True, model_pack_id=self.pack.embedding_space
                )
            except LockedOutError:
                self.vault.record_failed_attempt(
                    subject_id, reason="live session started while locked out", actor=actor
                )
                raise
        session = self.start_session(subject_id, challenges=self.fixed_challenges, purpose=purpose)
        with self._sessions_lock:  # the store holds it from now on, not this process
            self._open_sessions.discard(session)
        session_id = secrets.token_urlsafe(24)
        self.vault.sessions.create(
            session_id,
            subject_id,
            _SessionEnvelope(purpose, actor, None, session.snapshot()).dump(),
            expires_at=session.deadline + SESSION_GRACE,
            actor=actor,
        )
        return SessionTicket(
            session_id=session_id,
            subject_id=subject_id,
            purpose=purpose,
            nonce=session.nonce,
            prompt=session.prompt,
            deadline=session.deadline,
            challenges=len(session.challenges),
            screen_colour=session.screen_colour,
        )

    def feed_session(self, session_id: str, frame: CaptureSource, *, actor: str | None = None) -> FrameUpdate:
        """Feed one frame to a stored session, timestamped now by this server; save the new state.

        The session's row stays locked while the frame is processed, so frames
        of one session are taken in turn whichever worker receives them. A frame
        that cannot be decoded changes nothing. ``UnknownSessionError`` for a
        session that is absent, expired, decided, or started by another actor.
        """
        # Decoded before the row is locked, within a live frame's limits (bytes, pixels: _limits.py).
        image = load_image(frame, limits=Limits(capture=self.pipeline.limits).frame_capture())
        with self.vault.sessions.hold(session_id) as slot:
            envelope = _SessionEnvelope.load(slot.state, actor)
            session = self._restore(envelope)
            now = self.vault.clock.now()
            # Hosts' clocks differ a little: never let a frame precede the one before it.
            at = now if envelope.last_at is None else max(now, envelope.last_at + timedelta(microseconds=1))
            state = session.feed(image, at=at)
            slot.save(_SessionEnvelope(envelope.purpose, actor, at, session.snapshot()).dump())
        return FrameUpdate(
            state=state.value,
            prompt=session.prompt,
            feedback=session.feedback,
            progress=session.progress,
            finished=session.finished,
            screen_colour=session.screen_colour,
        )

    def finish_session(self, session_id: str, *, actor: str | None = None) -> VerificationResult:
        """Decide a stored verification session, once (it is deleted as it is taken); as ``finish``."""
        return self.finish(self._take_session(session_id, actor), actor=actor)

    def enroll_session(
        self, subject_id: str, session_id: str, *, consent: ConsentRecord, actor: str | None = None
    ) -> EnrollmentResult:
        """Enrol from a stored enrolment session that passed, once; as ``enroll_live``."""
        session = self._take_session(session_id, actor)
        return self.enroll_live(subject_id, session, consent=consent, actor=actor)

    def _take_session(self, session_id: str, actor: str | None) -> LiveSession:
        with self.vault.sessions.hold(session_id) as slot:
            session = self._restore(_SessionEnvelope.load(slot.state, actor))
            slot.delete()  # decided once: a second finish finds no session
        with self._sessions_lock:
            self._open_sessions.add(session)
        return session

    def _restore(self, envelope: _SessionEnvelope) -> LiveSession:
        return LiveSession.restore(
            envelope.snapshot,
            self.pipeline,
            clock=self.vault.clock,
            policy=self.session_policy(envelope.purpose),
            passive=self.passive,
        )

    def _sweep_sessions(self, actor: str | None) -> None:
        for subject_id in self.vault.sessions.sweep():
            self.vault.record_failed_attempt(
                subject_id, reason="live session abandoned or expired", actor=actor
            )

    def consent(self, subject_id: str) -> ConsentRecord:
        """The subject's consent record (their own access request)."""
        return self.vault.consent(subject_id)


def _replay_check(
    session: Recollection, policy: ChallengePolicy
) -> Callable[[Sequence[bytes]], ChallengeFailedError | None]:
    """The vault's ``recall``: refuse a session whose frames a remembered one holds again."""

    def recall(remembered: Sequence[bytes]) -> ChallengeFailedError | None:
        reason = session.replays([Recollection.from_bytes(b) for b in remembered], policy.trace_rules)
        if reason is None:
            return None
        return ChallengeFailedError(f"liveness challenge refused: {reason}", reasons=[reason])

    return recall


def distinct_samples(samples: Sequence[FaceSample], *, limit: int) -> list[FaceSample]:
    """The first ``limit`` of ``samples`` (best first) that are no near-duplicate of one kept."""
    kept: list[FaceSample] = []
    for sample in samples:
        if len(kept) == limit:
            break
        if all(cosine(sample.embedding, k.embedding) <= NEAR_DUPLICATE_COSINE for k in kept):
            kept.append(sample)
    return kept


def _check_custom_threshold(pack: ModelPack, profile: Profile) -> None:
    """A custom threshold may be stricter than the pack's loosest calibrated point, never looser.

    Below it a threshold promises less than any false match rate the pack states (at
    ``-1`` every face matches, and each false match would reset the lockout).
    """
    threshold = profile.custom_threshold
    if threshold is None:
        return
    points = [p for p in pack.operating_points if p.calibrated]
    if not points:
        return
    loosest = min(points, key=lambda p: p.threshold)
    if not loosest.threshold <= threshold <= 1.0:
        raise ConfigurationError(
            f"a custom threshold must lie in [{loosest.threshold:.4f}, 1]: below the pack's loosest"
            f" calibrated operating point ({loosest.name!r}, FMR {loosest.fmr:.0e}) it promises no"
            " false match rate at all"
        )


def run_session(
    session: ChallengeSession,
    frames: Iterable[Frame],
    *,
    on_prompt: Callable[[str], None] | None = None,
) -> ChallengeSession:
    """Feed ``frames`` to ``session`` until it finishes or the frames run out."""
    shown = None
    for item in frames:
        if on_prompt is not None and session.prompt != shown:
            shown = session.prompt
            on_prompt(shown)
        frame, at = item if isinstance(item, tuple) else (item, None)
        session.feed(frame, at=at)
        if session.finished:
            break
    if on_prompt is not None and session.prompt != shown:
        on_prompt(session.prompt)
    return session
