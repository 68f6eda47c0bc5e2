"""faceverify: consent-based 1:1 face verification.

Two layers, as in pyca/cryptography. This module is the safe one: compare two
captures, or (with a consent-bound vault) enroll and verify a named subject.
:mod:`faceverify.hazmat` exposes the pipeline's stages and protocols for those
who need to assemble their own; it is documented, and easy to misuse.

There is no search: every comparison names one claimed subject.
"""

from typing import TYPE_CHECKING, Any

from ._clock import Clock, FrozenClock, SystemClock
from ._compare import Comparison, compare
from ._errors import (
    CaptureError,
    ChallengeFailedError,
    ConfigurationError,
    ConsentError,
    EnumerationRefusedError,
    FaceError,
    FaceVerifyError,
    ImageTooLargeError,
    InvalidInputError,
    InvalidSubjectIdError,
    InvalidTemplateError,
    KeyStoreError,
    LicenceNotAcceptedError,
    LivenessError,
    LivenessRequiredError,
    LockedOutError,
    LowQualityError,
    ModelDownloadError,
    ModelError,
    ModelIntegrityError,
    ModelNotInstalledError,
    MultipleFacesError,
    NoFaceError,
    PresentationAttackError,
    StoreCorruptError,
    StoreUnavailableError,
    SubjectError,
    SubjectRevokedError,
    TemplateExpiredError,
    UnknownSessionError,
    UnknownSubjectError,
    UnreadableImageError,
)
from ._models._manifest import OperatingPoint
from ._pipeline._quality import Quality, QualityPolicy
from ._profiles import PROFILES, Profile

if TYPE_CHECKING:
    from ._liveness import (
        Challenge,
        ChallengePolicy,
        ChallengeResult,
        ChallengeSession,
        CheckOutcome,
        FrameFeedback,
        LivenessCheck,
        LivenessResult,
        Recollection,
        ScreenColour,
        ScreenLightPolicy,
        ScreenLightResult,
        frames_from_video,
    )
    from ._vault import (
        AuditLog,
        ChainReport,
        ConsentEvidence,
        ConsentRecord,
        DeletionReceipt,
        EnumerationPolicy,
        LockoutPolicy,
        MasterKey,
        RetentionPolicy,
        Vault,
        init_master_key,
        load_master_key,
    )
    from ._verifier import EnrollmentResult, LiveSession, VerificationResult, Verifier

#: Imported on first use (PEP 562): the vault pulls in cryptography, sqlite3 and
#: logging, which a cold ``faceverify compare`` (a door's or a login server's
#: one-shot check) does not need: about 60 ms of every start-up.
_LAZY = {
    **dict.fromkeys(
        (
            "AuditLog",
            "ChainReport",
            "ConsentEvidence",
            "ConsentRecord",
            "DeletionReceipt",
            "EnumerationPolicy",
            "LockoutPolicy",
            "MasterKey",
            "RetentionPolicy",
            "Vault",
            "init_master_key",
            "load_master_key",
        ),
        "._vault",
    ),
    **dict.fromkeys(("EnrollmentResult", "LiveSession", "VerificationResult", "Verifier"), "._verifier"),
    **dict.fromkeys(
        (
            "Challenge",
            "ChallengePolicy",
            "ChallengeResult",
            "ChallengeSession",
            "CheckOutcome",
            "FrameFeedback",
            "LivenessCheck",
            "LivenessResult",
            "Recollection",
            "ScreenColour",
            "ScreenLightPolicy",
            "ScreenLightResult",
            "frames_from_video",
        ),
        "._liveness",
    ),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__version__ = "0.1.0"

__all__ = [
    "PROFILES",
    "AuditLog",
    "CaptureError",
    "ChainReport",
    "Challenge",
    "ChallengeFailedError",
    "ChallengePolicy",
    "ChallengeResult",
    "ChallengeSession",
    "CheckOutcome",
    "Clock",
    "Comparison",
    "ConfigurationError",
    "ConsentError",
    "ConsentEvidence",
    "ConsentRecord",
    "DeletionReceipt",
    "EnrollmentResult",
    "EnumerationPolicy",
    "EnumerationRefusedError",
    "FaceError",
    "FaceVerifyError",
    "FrameFeedback",
    "FrozenClock",
    "ImageTooLargeError",
    "InvalidInputError",
    "InvalidSubjectIdError",
    "InvalidTemplateError",
    "KeyStoreError",
    "LicenceNotAcceptedError",
    "LiveSession",
    "LivenessCheck",
    "LivenessError",
    "LivenessRequiredError",
    "LivenessResult",
    "LockedOutError",
    "LockoutPolicy",
    "LowQualityError",
    "MasterKey",
    "ModelDownloadError",
    "ModelError",
    "ModelIntegrityError",
    "ModelNotInstalledError",
    "MultipleFacesError",
    "NoFaceError",
    "OperatingPoint",
    "PresentationAttackError",
    "Profile",
    "Quality",
    "QualityPolicy",
    "Recollection",
    "RetentionPolicy",
    "ScreenColour",
    "ScreenLightPolicy",
    "ScreenLightResult",
    "StoreCorruptError",
    "StoreUnavailableError",
    "SubjectError",
    "SubjectRevokedError",
    "SystemClock",
    "TemplateExpiredError",
    "UnknownSessionError",
    "UnknownSubjectError",
    "UnreadableImageError",
    "Vault",
    "VerificationResult",
    "Verifier",
    "compare",
    "frames_from_video",
    "init_master_key",
    "load_master_key",
]
