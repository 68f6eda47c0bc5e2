"""Every bound on what faceverify accepts from outside, in one place.

An input without a bound is a denial of service waiting to be found: a device
file read to the end, a PNG of a few kilobytes that claims 64 megapixels, a
session fed frames forever, an upload of a gigabyte. Each input faceverify
takes has its limit here, with its default and the reason for it; the library,
the CLI, the HTTP service and the door read them from ``LIMITS`` (or from a
``Limits`` a deployment passes), and docs/threat-model.md lists them.

Capture bounds (bytes, pixels, sides, formats) are a ``CaptureLimits`` of their
own because the vision pipeline takes them without knowing anything else.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ._pipeline._capture import DEFAULT_LIMITS, CaptureLimits

KiB, MiB = 1024, 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds on every input; the defaults are what faceverify ships with."""

    #: A still image (file, bytes or array): bytes, pixels, sides, decoders.
    capture: CaptureLimits = field(default_factory=lambda: DEFAULT_LIMITS)
    #: One live frame (an HTTP/WebSocket upload, a camera frame): a 1080p JPEG is ~0.5 MB.
    frame_bytes: int = 4 * MiB
    frame_pixels: int = 4_194_304  # 2048 × 2048: a 1080p or 1440p camera frame fits
    #: Frames one live session takes before it fails (ChallengePolicy.max_frames): the longest
    #: session, 34.5 s, at 30 fps.
    session_frames: int = 1035
    #: Seconds a live session may last: the baseline (6 s) and at most 3 challenges of 6 s each,
    #: each after its random hold before the prompt (at most 3.5 s).
    session_seconds: float = 34.5
    #: A live session's serialised state (interface B's snapshot).
    session_state_bytes: int = 256 * KiB
    #: Images one enrolment takes (a template holds 1 to 5 embeddings).
    enroll_images: int = 5
    #: One HTTP request body (the service's --max-body-bytes default): a still, a frame, an
    #: enrolment of a few images; refused (413) from Content-Length or while streaming.
    request_bytes: int = 8 * MiB
    #: A subject id, after normalisation (check_subject_id).
    subject_id_chars: int = 128
    #: The consent document whose SHA-256 is kept (a signed PDF release).
    consent_evidence_bytes: int = 32 * MiB

    def frame_capture(self) -> CaptureLimits:
        """The capture bounds for one live frame: a still's, narrowed to a frame's bytes and pixels."""
        return replace(
            self.capture,
            max_bytes=min(self.capture.max_bytes, self.frame_bytes),
            max_pixels=min(self.capture.max_pixels, self.frame_pixels),
            max_full_decode_pixels=min(self.capture.max_full_decode_pixels, self.frame_pixels),
        )


#: The limits faceverify ships with.
LIMITS = Limits()
