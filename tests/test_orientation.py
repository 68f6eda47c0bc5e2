"""EXIF orientation: applied when right, and a wrong tag is refused instead of scoring a false face.

Issue #16: an upright photo carrying a wrong orientation tag was turned upside
down, and the detector still "found" a face in it (score 0.88, quality passing)
whose embedding matched nobody: a false face counted against the subject.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceverify import FaceError, LowQualityError
from faceverify._pipeline._capture import as_stored, load_oriented
from faceverify.hazmat import FacePipeline, cosine


def tagged(pixels: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    pixels.save(buf, "JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_as_stored_undoes_the_orientation(orientation: int) -> None:
    base = np.random.default_rng(orientation).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(base).save(buf, "PNG", exif=exif.tobytes())
    upright, applied = load_oriented(buf.getvalue())
    assert applied == orientation
    assert np.array_equal(as_stored(upright, applied), base)


@pytest.mark.parametrize("orientation", [3, 4, 5, 6, 7, 8])
def test_a_wrong_tag_is_refused(pipeline: FacePipeline, samples: dict[str, Path], orientation: int) -> None:
    """An upright photo whose tag says to turn it: never a sample, and upside down the reason says why."""
    data = tagged(Image.open(samples["obama"]).convert("RGB"), orientation)
    with pytest.raises(FaceError) as refused:
        pipeline.sample(data, policy=None)
    if orientation in (3, 4):  # upside down: the detector would find a (false) face there
        assert isinstance(refused.value, LowQualityError)
        assert refused.value.reasons == ("orientation",)
        assert "EXIF orientation" in str(refused.value)


@pytest.mark.parametrize("orientation", [2, 3, 4, 5, 6, 7, 8])
def test_a_right_tag_is_applied(pipeline: FacePipeline, samples: dict[str, Path], orientation: int) -> None:
    """A photo stored turned, with the tag that says so (what phones write): the same person as upright."""
    upright = np.asarray(Image.open(samples["obama"]).convert("RGB"))
    stored = Image.fromarray(np.ascontiguousarray(as_stored(upright, orientation)))
    sample = pipeline.sample(tagged(stored, orientation), policy=None)
    reference = pipeline.sample(samples["obama"], policy=None)
    assert cosine(sample.embedding, reference.embedding) > 0.9
