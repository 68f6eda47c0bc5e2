"""The JSON shapes of the API (pydantic models: validated in, documented in the OpenAPI schema).

None of them carries a template, an embedding, an image or a similarity score:
a client learns the decision and the operating point it was taken at, never how
close a capture came (a score is a hill-climbing oracle for an attacker).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from .._liveness._screen_light import ScreenColour


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class ProblemOut(_Out):
    """RFC 9457 problem details, with faceverify's stable ``code``."""

    type: str = Field(examples=["urn:faceverify:problem:not_verifiable"])
    title: str
    status: int
    code: str
    detail: str | None = None
    instance: str | None = None
    retry_after: int | None = Field(default=None, description="seconds; also in the Retry-After header")
    reasons: list[str] | None = None


class EvidenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    document_sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the release text agreed to"
    )
    method: str = Field(min_length=1, max_length=200, examples=["in-app-checkbox"])
    collected_by: str = Field(min_length=1, max_length=200, examples=["webapp-signup"])


class ConsentIn(BaseModel):
    """The subject's consent to one purpose, given before enrolment."""

    model_config = ConfigDict(extra="forbid")

    purpose: str = Field(min_length=1, max_length=200, examples=["app-login"])
    expires_at: AwareDatetime
    granted_at: AwareDatetime | None = Field(default=None, description="default: now (server time)")
    evidence: EvidenceIn
    scope: list[str] = Field(default_factory=list, max_length=16)


class EvidenceOut(_Out):
    document_sha256: str
    method: str
    collected_by: str


class ConsentOut(_Out):
    subject_id: str
    purpose: str
    granted_at: datetime
    expires_at: datetime
    evidence: EvidenceOut
    scope: list[str]
    digest: str = Field(description="SHA-256 of the canonical record, sealed into the template")
    state: Literal["pending", "active"] = Field(
        description="pending: recorded, no template yet; active: bound to the enrolled template"
    )


class EnrollmentOut(_Out):
    subject_id: str
    template_id: str
    model_pack_id: str
    images: int
    expires_at: datetime
    replaced: bool


class LiveEnrollmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: str = Field(min_length=1, max_length=64)


class OperatingPointOut(_Out):
    name: str
    fmr: float | None = Field(
        description="the false match rate the threshold was calibrated to; null if custom"
    )
    calibrated: bool


class CheckOut(_Out):
    name: str
    passed: bool


class VerificationOut(_Out):
    subject_id: str
    match: bool
    operating_point: OperatingPointOut
    rule: Literal["single", "mean", "every-member"]
    live: bool
    liveness: list[CheckOut]


class ReceiptOut(_Out):
    """Proof of erasure: the template and its keys are destroyed (backups are undecryptable)."""

    subject_id: str
    erased_at: datetime
    template_erased: bool
    keys_destroyed: int


class SessionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject_id: str = Field(min_length=1, max_length=128)
    purpose: Literal["verify", "enroll"] = "verify"


class ScreenOut(_Out):
    """The screen-light challenge: the colour the screen must show, from now until the next answer."""

    colour: Literal["red", "yellow", "green", "cyan", "blue", "magenta"]
    hex: str = Field(description="the same colour for CSS, e.g. #ff0000", pattern="^#[0-9a-f]{6}$")


def screen_out(colour: ScreenColour | None) -> ScreenOut | None:
    """The screen-light colour to show, as the API and the page carry it (None: not asked)."""
    return None if colour is None else ScreenOut(colour=colour.value, hex=colour.hex)


class SessionOut(_Out):
    session_id: str
    nonce: str
    prompt: str
    deadline: datetime
    challenges: int
    screen: ScreenOut | None = Field(
        default=None, description="the colour to light the face with (fill the screen); null: not asked"
    )


class ProgressOut(_Out):
    done: int
    asked: int


class FrameOut(_Out):
    state: Literal["baseline", "challenge", "passed", "failed"]
    prompt: str
    feedback: list[str] = Field(description="about the last frame: no-face, too-dark, hold-still, ...")
    progress: ProgressOut
    finished: bool
    screen: ScreenOut | None = Field(
        default=None,
        description="the colour to show from now until the next answer (fill the screen or a wide border "
        "around the preview); null: no screen-light challenge, or the session is over",
    )


class HealthOut(_Out):
    status: Literal["ok"]


class ReadyOut(_Out):
    status: Literal["ready", "not-ready"]
    models: bool
    database: bool
    test_fixed_challenges: bool = Field(default=False, description="TEST-ONLY fixed challenges are on")
    test_synthetic_frames: bool = Field(default=False, description="TEST-ONLY animation checks are off")
