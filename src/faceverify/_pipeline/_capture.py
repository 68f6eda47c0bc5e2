"""Decode what a caller hands us into one RGB ``uint8`` array, or refuse.

A capture arrives as a path, bytes or a numpy array from a camera. Photos from
phones carry their rotation in EXIF; a face lying on its side is not detected,
so orientation is applied before anything else. Sizes are bounded *before*
decoding, from the header, so a decompression bomb never reaches memory.

A JPEG far larger than the detector needs is decoded at a reduced DCT scale
(1/2, 1/4 or 1/8: ``Image.draft``) whose long side stays at least
``CaptureLimits.draft_side`` pixels; other formats are decoded at full size
(bounded by ``max_full_decode_pixels``) and box-reduced to the same range at
once. At the default 1280, twice the detector's 640-pixel input, every face
the detector can find still has more pixels than the quality gate's minimum.
Coordinates and measures (face box, landmarks, eye distance) then refer to the
decoded image.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TypeAlias

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps, UnidentifiedImageError

from .._errors import ImageTooLargeError, UnreadableImageError
from .._io import read_regular_file

#: What faceverify accepts as a capture.
CaptureSource: TypeAlias = str | os.PathLike[str] | bytes | bytearray | memoryview | npt.NDArray[np.uint8]

RGBImage = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class CaptureLimits:
    """Bounds on an input image, checked from the header before any pixel is decoded.

    The defaults admit any camera of today (a 50-megapixel phone photo is
    8,160 × 6,120) and refuse files whose header claims more, which is how
    decompression bombs look. Memory stays bounded by what is *decoded*: a
    JPEG is decoded at a reduced DCT scale (its cost is that of the reduced
    image, ~40 MB at 64 MP), while the formats that can only be decoded at full
    size (PNG, WebP, TIFF, GIF, BMP) are held to ``max_full_decode_pixels`` —
    a few bytes of PNG can claim 64 MP and cost a gigabyte otherwise. Only
    the decoders in ``formats`` ever see the bytes (no EPS, PSD, ICNS...).
    """

    max_pixels: int = 64_000_000
    max_side: int = 16_384
    max_bytes: int = 64 * 1024 * 1024
    min_side: int = 32
    #: Decode at a reduced scale while the long side stays >= this (None: full size). JPEGs
    #: are reduced while decoding (``Image.draft``), other formats right after (``Image.reduce``).
    draft_side: int | None = 1280
    #: Pixels a format without reduced-scale decoding may claim (about 4 bytes each while decoding).
    max_full_decode_pixels: int = 16_000_000
    #: Decoders allowed near untrusted bytes (PIL plugin ids; a multi-picture MPO opens as JPEG).
    formats: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "AVIF", "TIFF", "GIF", "BMP")


DEFAULT_LIMITS = CaptureLimits()


def load_image(source: CaptureSource, *, limits: CaptureLimits = DEFAULT_LIMITS) -> RGBImage:
    """Return the capture as an ``H×W×3`` RGB ``uint8`` array, upright."""
    return load_oriented(source, limits=limits).image


class Oriented(NamedTuple):
    """A decoded capture, upright, and the EXIF orientation (1 to 8) that made it so (1: none)."""

    image: RGBImage
    orientation: int


def load_oriented(source: CaptureSource, *, limits: CaptureLimits = DEFAULT_LIMITS) -> Oriented:
    """``load_image``, also saying which EXIF orientation was applied (an array has none: 1)."""
    if isinstance(source, np.ndarray):
        return Oriented(_from_array(source, limits), 1)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        name = "the image bytes"
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        name = f"'{path}'"
        data = read_regular_file(
            path,
            max_bytes=limits.max_bytes,
            what="",
            error=UnreadableImageError,
            too_large=ImageTooLargeError,
        )
    else:
        raise TypeError(f"a capture is a path, bytes or a numpy array, not {type(source).__name__}")
    return _decode(data, name, limits)


_UNDO: dict[int, Callable[[RGBImage], RGBImage]] = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],  # mirrored
    3: lambda a: a[::-1, ::-1],  # rotated 180°
    4: lambda a: a[::-1],  # mirrored top to bottom
    5: lambda a: a.transpose(1, 0, 2),  # transposed
    6: lambda a: np.rot90(a, 1),  # stored turned 90° one way: turn it back
    7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],  # transversed
    8: lambda a: np.rot90(a, -1),  # ... and the other
}


def as_stored(image: RGBImage, orientation: int) -> RGBImage:
    """Undo EXIF ``orientation`` on an upright ``image``: the pixels as the file stored them (a view)."""
    return _UNDO[orientation](image)


def _decode(data: bytes, name: str, limits: CaptureLimits) -> Oriented:
    if not data:
        raise UnreadableImageError(f"{name} is empty")
    if len(data) > limits.max_bytes:
        raise ImageTooLargeError(f"{name} is {len(data)} bytes; the limit is {limits.max_bytes}")
    try:
        with Image.open(io.BytesIO(data), formats=limits.formats) as img:
            _check_size(img.width, img.height, name, limits)
            reducible = img.format in ("JPEG", "MPO")
            if not reducible and img.width * img.height > limits.max_full_decode_pixels:
                raise ImageTooLargeError(
                    f"{name} is a {img.width}×{img.height} {img.format}; a {img.format} is decoded at full "
                    f"size, so the limit is {limits.max_full_decode_pixels} pixels (a JPEG may have more)"
                )
            # Reduce by the largest factor keeping the long side >= draft_side (so it lands in
            # [draft_side, 2 * draft_side)) and the short side >= min_side (a 9000×40 strip stays valid).
            factor = _reduction(img.size, limits)
            if reducible and factor >= 2:  # JPEG: reduced while decoding, by 2, 4 or 8 (never below this)
                img.draft(None, (img.width // factor, img.height // factor))
            img.load()
            frame: Image.Image = img
            if not reducible and factor >= 2:
                frame = _reduce(img, factor)
            orientation = _orientation(img)
            ImageOps.exif_transpose(frame, in_place=True)
            # Into numpy while the image is open: closing it frees its pixels.
            rgb = np.asarray(_to_rgb(frame), dtype=np.uint8)
        _check_size(rgb.shape[1], rgb.shape[0], name, limits)  # what was decoded, not only what was claimed
    except (ImageTooLargeError, UnreadableImageError):
        raise
    except Image.DecompressionBombError:
        raise ImageTooLargeError(f"{name} claims more pixels than allowed") from None
    except UnidentifiedImageError:
        raise UnreadableImageError(f"{name} is not an image in a format faceverify reads") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise UnreadableImageError(f"{name} is damaged or truncated ({exc})") from None
    return Oriented(np.ascontiguousarray(rgb), orientation)


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation ``exif_transpose`` applies: 1 to 8 (absent or invalid: 1, nothing done)."""
    value = img.getexif().get(0x0112, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _reduction(size: tuple[int, int], limits: CaptureLimits) -> int:
    """The integer scale-down factor for an image of ``size`` (1: decode as it is)."""
    if not limits.draft_side:
        return 1
    return max(1, min(max(size) // limits.draft_side, min(size) // limits.min_side))


def _reduce(img: Image.Image, factor: int) -> Image.Image:
    """Box-reduce by ``factor`` in the image's own mode (before any copy at full size)."""
    try:
        return img.reduce(factor)
    except ValueError:  # a mode reduce does not take: 16-bit greys widen to 32-bit, the rest to RGB
        return (img.convert("I") if img.mode.startswith("I;16") else _to_rgb(img)).reduce(factor)


def _to_rgb(img: Image.Image) -> Image.Image:
    """Flatten alpha onto white (a transparent background is not black skin)."""
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = float(arr.max()) or 1.0
        return Image.fromarray((arr * (255.0 / peak)).astype(np.uint8)).convert("RGB")
    return img if img.mode == "RGB" else img.convert("RGB")


def _check_size(width: int, height: int, name: str, limits: CaptureLimits) -> None:
    if width > limits.max_side or height > limits.max_side or width * height > limits.max_pixels:
        raise ImageTooLargeError(
            f"{name} is {width}×{height}; the limits are {limits.max_side} px a side "
            f"and {limits.max_pixels} pixels"
        )
    if width < limits.min_side or height < limits.min_side:
        raise UnreadableImageError(
            f"{name} is {width}×{height}; at least {limits.min_side} px a side is needed"
        )


def _from_array(arr: npt.NDArray[np.generic], limits: CaptureLimits) -> RGBImage:
    """Arrays are taken as RGB (PIL/imageio order); convert from BGR before passing."""
    if arr.dtype != np.uint8:
        raise UnreadableImageError(f"an image array must be uint8, not {arr.dtype}")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        alpha = arr[:, :, 3:4].astype(np.float32) / 255.0
        rgb = arr[:, :, :3].astype(np.float32)
        arr = (rgb * alpha + 255.0 * (1.0 - alpha)).round().astype(np.uint8)
    elif arr.ndim == 3 and arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif not (arr.ndim == 3 and arr.shape[2] == 3):
        raise UnreadableImageError(f"an image array must be H×W, H×W×3 or H×W×4, not {arr.shape}")
    _check_size(arr.shape[1], arr.shape[0], "the image array", limits)
    return np.ascontiguousarray(arr)
