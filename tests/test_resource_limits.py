"""Resource limits: stated once (``faceverify._limits.LIMITS``), enforced where the input enters."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_capture import png_claiming

from faceverify import ImageTooLargeError, InvalidInputError, UnreadableImageError
from faceverify._io import read_regular_file
from faceverify._limits import LIMITS, Limits
from faceverify._liveness._challenge import ChallengePolicy
from faceverify._vault._consent import MAX_SUBJECT_ID
from faceverify._vault._template import MAX_EMBEDDINGS
from faceverify.hazmat import CaptureLimits, FacePipeline, cosine, load_image


def encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_the_limits_are_the_ones_enforced() -> None:
    """The figures Limits states are the ones the enforcing modules use: no second source of truth drifts."""
    policy = ChallengePolicy()
    assert LIMITS.enroll_images == MAX_EMBEDDINGS
    assert LIMITS.subject_id_chars == MAX_SUBJECT_ID
    assert LIMITS.session_frames == policy.max_frames
    each = policy.time_per_challenge + policy.prompt_hold[1]  # a challenge after its longest hold
    longest = policy.baseline_time + max(policy.challenges) * each
    assert LIMITS.session_seconds == longest.total_seconds()
    assert LIMITS.capture == CaptureLimits()


def test_frame_limits_narrow_the_capture_limits() -> None:
    frame = Limits(frame_bytes=1000, frame_pixels=50_000).frame_capture()
    assert frame.max_bytes == 1000 and frame.max_pixels == 50_000 and frame.max_full_decode_pixels == 50_000
    with pytest.raises(ImageTooLargeError, match="50000 pixels"):
        load_image(encode(Image.new("RGB", (300, 200)), "PNG"), limits=frame)


def test_a_png_claiming_64_megapixels_is_refused_from_its_header() -> None:
    """A few bytes of PNG may claim 64 MP; decoded at full size that was ~0.8 GB. Refused before decoding."""
    data = png_claiming(8000, 7990)
    assert len(data) < 200
    with pytest.raises(ImageTooLargeError, match="decoded at full size"):
        load_image(data)
    # A JPEG may be that large: it is decoded at a reduced DCT scale.
    assert CaptureLimits().max_pixels >= 8000 * 7990


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P", "I;16"])
def test_large_lossless_images_are_reduced_at_once(mode: str) -> None:
    img = Image.new(mode, (3000, 2000))
    out = load_image(encode(img, "PNG"))
    assert out.shape == (1000, 1500, 3)  # box-reduced by 2: the long side stays >= draft_side
    assert out.dtype == np.uint8


def test_a_reduced_png_is_the_same_person(pipeline: FacePipeline, samples: dict[str, Path]) -> None:
    base = Image.open(samples["obama"]).convert("RGB")
    big = base.resize((base.width * 3, base.height * 3), Image.Resampling.BICUBIC)
    reduced = load_image(encode(big, "PNG", compress_level=1))
    assert CaptureLimits().draft_side <= max(reduced.shape[:2]) < 2 * CaptureLimits().draft_side  # type: ignore[operator]
    a = pipeline.sample(reduced, policy=None)
    b = pipeline.sample(samples["obama"], policy=None)
    assert cosine(a.embedding, b.embedding) > 0.95


@pytest.mark.parametrize("fmt", ["ICO", "PPM", "TGA", "PCX", "SGI", "DDS"])
def test_only_capture_formats_are_decoded(fmt: str) -> None:
    """EPS (Ghostscript), PSD, ICO... never see outside bytes: a smaller attack surface."""
    data = encode(Image.new("RGB", (64, 64), (120, 90, 80)), fmt)
    assert Image.open(io.BytesIO(data)).format == fmt  # PIL itself would read it
    with pytest.raises(UnreadableImageError, match="not an image in a format faceverify reads"):
        load_image(data)


def test_reader_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for path, reason in [
        ("/dev/zero", "not a regular file"),
        (fifo, "not a regular file"),
        (tmp_path, "is a directory"),
        (tmp_path / "absent", "does not exist"),
        ("a\x00b", "NUL"),
    ]:
        with pytest.raises(InvalidInputError, match=reason):
            read_regular_file(path, max_bytes=100)


def test_reader_stops_at_the_limit(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"x" * 101)
    with pytest.raises(InvalidInputError, match="limit is 100"):
        read_regular_file(f, max_bytes=100)
    f.write_bytes(b"x" * 100)
    assert read_regular_file(f, max_bytes=100) == b"x" * 100


def test_the_service_and_sessions_use_these_limits() -> None:
    from faceverify._liveness._session_state import MAX_SNAPSHOT_BYTES
    from faceverify._service._config import ServiceConfig

    assert ServiceConfig().max_body_bytes == LIMITS.request_bytes
    assert LIMITS.session_state_bytes == MAX_SNAPSHOT_BYTES


def test_a_live_frame_over_the_frame_limits_is_refused(model_cache: Path, tmp_path: Path) -> None:
    """A stored session's frame (HTTP, WebSocket) is decoded within the frame limits, before any lock."""
    from faceverify import MasterKey, Verifier

    verifier = Verifier.open(
        tmp_path / "vault", master_key=MasterKey.generate(), keys_database=tmp_path / "keys.db",
        cache=model_cache, create=True,
    )  # fmt: skip
    ticket = verifier.begin_session("alice", purpose="enroll")
    big = encode(Image.new("RGB", (2600, 1700), (120, 90, 80)), "PNG")  # 4.4 MP: a still, not a frame
    with pytest.raises(ImageTooLargeError, match="4194304 pixels"):
        verifier.feed_session(ticket.session_id, big)
    frame = encode(Image.new("RGB", (640, 480), (120, 90, 80)), "JPEG")
    assert verifier.feed_session(ticket.session_id, frame).state  # a camera-sized frame is taken
