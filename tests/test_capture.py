"""Capture: every way an input can be bad gets a typed error; odd but valid inputs work.

Real photos throughout (the ``samples`` fixture); the malformed inputs are built
here from them or from first principles (a PNG header written byte by byte).
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceverify import (
    CaptureError,
    ImageTooLargeError,
    UnreadableImageError,
)
from faceverify.hazmat import CaptureLimits, FacePipeline, cosine, load_image


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_claiming(width: int, height: int) -> bytes:
    """A tiny, well-formed PNG whose header claims ``width × height`` RGB pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)  # a few rows' worth; the rest would be "decompressed later"
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


# --- not images -------------------------------------------------------------------------------


def test_text_file_is_unreadable(tmp_path: Path) -> None:
    p = tmp_path / "notes.jpg"
    p.write_text("this is not a photo\n")
    with pytest.raises(UnreadableImageError, match="not an image"):
        load_image(p)


def test_zero_byte_file_is_unreadable(tmp_path: Path) -> None:
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    with pytest.raises(UnreadableImageError, match="empty"):
        load_image(p)
    with pytest.raises(UnreadableImageError, match="empty"):
        load_image(b"")


def test_random_bytes_are_unreadable() -> None:
    noise = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    with pytest.raises(UnreadableImageError):
        load_image(noise)


def test_missing_path_and_directory_are_unreadable(tmp_path: Path) -> None:
    with pytest.raises(UnreadableImageError, match="does not exist"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(UnreadableImageError, match="is a directory"):
        load_image(tmp_path)


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.02])
def test_truncated_jpeg_is_unreadable(samples: dict[str, Path], keep: float) -> None:
    data = samples["obama"].read_bytes()
    with pytest.raises(UnreadableImageError):
        load_image(data[: int(len(data) * keep)])


def test_truncated_png_is_unreadable(samples: dict[str, Path]) -> None:
    data = samples["32bit"].read_bytes()
    with pytest.raises(UnreadableImageError):
        load_image(data[: len(data) // 2])


def test_errors_are_capture_errors_and_carry_no_traceback_noise(tmp_path: Path) -> None:
    p = tmp_path / "x.png"
    p.write_bytes(b"GIF89a" + b"\x00" * 10)
    with pytest.raises(CaptureError) as info:
        load_image(p)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert "\n" not in str(info.value)


def test_unsupported_source_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="path, bytes or a numpy array"):
        load_image(12345)  # type: ignore[arg-type]


# --- too large ----------------------------------------------------------------------------------


def test_decompression_bomb_header_is_refused_before_decoding(tmp_path: Path) -> None:
    bomb = png_claiming(100_000, 100_000)
    assert len(bomb) < 200  # the file is tiny; only its header is absurd
    with pytest.raises(ImageTooLargeError, match="pixels"):
        load_image(bomb)
    p = tmp_path / "bomb.png"
    p.write_bytes(bomb)
    with pytest.raises(ImageTooLargeError):
        load_image(p)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_pixel_count_limit_applies_below_the_side_limit() -> None:
    # 12,000 × 12,000 is within 16,384 a side but 144 megapixels.
    with pytest.raises(ImageTooLargeError, match="pixels"):
        load_image(png_claiming(12_000, 12_000))


def test_byte_limit(samples: dict[str, Path]) -> None:
    limits = CaptureLimits(max_bytes=1000)
    with pytest.raises(ImageTooLargeError, match="bytes"):
        load_image(samples["obama"], limits=limits)
    with pytest.raises(ImageTooLargeError, match="bytes"):
        load_image(samples["obama"].read_bytes(), limits=limits)


def test_too_small_image_is_refused() -> None:
    tiny = _encode(Image.new("RGB", (8, 8), (128, 100, 90)), "PNG")
    with pytest.raises(UnreadableImageError, match="at least"):
        load_image(tiny)


# --- arrays -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("array", "error", "match"),
    [
        (np.zeros((100, 100, 3), dtype=np.float32), UnreadableImageError, "uint8"),
        (np.zeros((100, 100, 3), dtype=np.int64), UnreadableImageError, "uint8"),
        (np.zeros((100, 100, 3), dtype=bool), UnreadableImageError, "uint8"),
        (np.zeros((100, 100, 2), dtype=np.uint8), UnreadableImageError, "H×W"),
        (np.zeros((100, 100, 5), dtype=np.uint8), UnreadableImageError, "H×W"),
        (np.zeros((2, 100, 100, 3), dtype=np.uint8), UnreadableImageError, "H×W"),
        (np.zeros((100,), dtype=np.uint8), UnreadableImageError, "H×W"),
        (np.zeros((), dtype=np.uint8), UnreadableImageError, "H×W"),
        (np.zeros((0, 0, 3), dtype=np.uint8), UnreadableImageError, "at least"),
        (np.zeros((4, 4000, 3), dtype=np.uint8), UnreadableImageError, "at least"),
        (np.zeros((20_000, 40, 3), dtype=np.uint8), ImageTooLargeError, "limits"),
    ],
    ids=["float32", "int64", "bool", "2ch", "5ch", "4d", "1d", "0d", "empty", "sliver", "tall"],
)
def test_absurd_arrays_are_refused(array: np.ndarray, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        load_image(array)


def test_array_pixel_limit() -> None:
    arr = np.zeros((3000, 3000, 3), dtype=np.uint8)
    with pytest.raises(ImageTooLargeError):
        load_image(arr, limits=CaptureLimits(max_pixels=1_000_000))


def test_arrays_are_normalised_to_contiguous_rgb(samples: dict[str, Path]) -> None:
    rgb = load_image(samples["obama"])
    grey = rgb[:, :, 0]
    out = load_image(grey)
    assert out.shape == (*grey.shape, 3) and out.dtype == np.uint8
    assert (out[:, :, 0] == grey).all() and (out[:, :, 2] == grey).all()
    assert load_image(grey[:, :, None]).shape == out.shape
    # A non-contiguous view (e.g. a BGR→RGB flip) comes back contiguous.
    flipped = load_image(rgb[:, :, ::-1])
    assert flipped.flags["C_CONTIGUOUS"]
    # RGBA: fully transparent pixels become white, opaque ones keep their colour.
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, dtype=np.uint8)])
    rgba[:10, :10, 3] = 0
    flat = load_image(rgba)
    assert (flat[:10, :10] == 255).all()
    assert (flat[20:, 20:] == rgb[20:, 20:]).all()


# --- valid but unusual inputs: these work -------------------------------------------------------


def test_path_bytes_and_array_give_the_same_image(samples: dict[str, Path]) -> None:
    a = load_image(samples["obama"])
    b = load_image(samples["obama"].read_bytes())
    c = load_image(str(samples["obama"]))
    d = load_image(bytearray(samples["obama"].read_bytes()))
    e = load_image(memoryview(samples["obama"].read_bytes()))
    assert a.shape == (1137, 910, 3) and a.dtype == np.uint8
    for other in (b, c, d, e):
        assert np.array_equal(a, other)
    assert np.array_equal(load_image(a), a)


def test_grayscale_photo_works(pipeline: FacePipeline, samples: dict[str, Path]) -> None:
    grey_png = _encode(Image.open(samples["obama"]).convert("L"), "PNG")
    img = load_image(grey_png)
    assert img.shape[2] == 3
    colour = pipeline.sample(samples["obama"], policy=None)
    grey = pipeline.sample(grey_png, policy=None)
    assert cosine(colour.embedding, grey.embedding) > 0.8
    other = pipeline.sample(samples["obama2"], policy=None)
    assert cosine(grey.embedding, other.embedding) > 0.5


def test_sixteen_bit_greyscale_png_works(samples: dict[str, Path]) -> None:
    grey = np.asarray(Image.open(samples["obama"]).convert("L"), dtype=np.uint16) * 257
    data = _encode(Image.fromarray(grey), "PNG")
    img = load_image(data)
    assert img.dtype == np.uint8 and img.shape == (*grey.shape, 3)
    assert abs(int(img.max()) - 255) <= 1


def test_rgba_png_works(pipeline: FacePipeline, samples: dict[str, Path]) -> None:
    with Image.open(samples["32bit"]) as im:
        assert im.mode == "RGBA"
    img = load_image(samples["32bit"])
    assert img.shape[2] == 3
    sample = pipeline.sample(samples["32bit"], policy=None)
    ref = pipeline.sample(samples["obama2"], policy=None)  # the same photo, as a JPEG
    assert cosine(sample.embedding, ref.embedding) > 0.95


def test_palette_with_transparency_flattens_onto_white() -> None:
    pal = Image.new("P", (64, 64), 0)
    pal.putpalette([0, 0, 0, 200, 50, 50] + [0] * (254 * 3))
    pal.paste(1, (32, 0, 64, 64))
    data = _encode(pal, "PNG", transparency=0)
    img = load_image(data)
    assert (img[:, :32] == 255).all()
    assert tuple(img[0, 40]) == (200, 50, 50)


def test_exif_rotated_photo_is_turned_upright(pipeline: FacePipeline, samples: dict[str, Path]) -> None:
    upright = Image.open(samples["obama"]).convert("RGB")
    # Store the pixels turned 90° counter-clockwise and say so in EXIF: Orientation 6
    # means "rotate 90° clockwise to display", as a phone held sideways writes it.
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = _encode(stored, "JPEG", quality=95, exif=exif.tobytes())
    with Image.open(io.BytesIO(rotated)) as check:
        assert check.size == (upright.height, upright.width)
        assert check.getexif()[0x0112] == 6

    img = load_image(rotated)
    assert img.shape == (upright.height, upright.width, 3)
    diff = np.abs(img.astype(np.int16) - np.asarray(upright, dtype=np.int16))
    assert diff.mean() < 3  # only JPEG re-encoding noise

    a = pipeline.sample(rotated, policy=None)
    b = pipeline.sample(samples["obama"], policy=None)
    assert cosine(a.embedding, b.embedding) > 0.97
    assert abs(a.quality.roll) < 10  # upright: the eye line is level

    # Without the EXIF tag the face lies on its side: the pipeline must not see it upright.
    bare = _encode(stored, "JPEG", quality=95)
    side = load_image(bare)
    assert side.shape == (upright.width, upright.height, 3)


def test_large_jpeg_is_decoded_at_reduced_scale(pipeline: FacePipeline, samples: dict[str, Path]) -> None:
    """A phone-sized JPEG is decoded at a DCT scale that keeps >= draft_side px: same face, same person."""
    base = Image.open(samples["obama"]).convert("RGB")
    big = base.resize((base.width * 3, base.height * 3), Image.Resampling.BICUBIC)  # 2730×3411
    data = _encode(big, "JPEG", quality=92)
    reduced = load_image(data)
    assert max(reduced.shape[:2]) >= CaptureLimits().draft_side  # type: ignore[operator]
    assert max(reduced.shape[:2]) < max(big.size)
    full = load_image(data, limits=CaptureLimits(draft_side=None))
    assert full.shape == (big.height, big.width, 3)
    # Small JPEGs are never reduced (a JPEG is reduced from twice draft_side, as every format is).
    assert load_image(samples["obama3"]).shape == (2333, 1434, 3)
    a = pipeline.sample(data, policy=None)
    b = pipeline.sample(samples["obama"], policy=None)
    assert cosine(a.embedding, b.embedding) > 0.95
