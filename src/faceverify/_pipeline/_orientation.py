"""A face is judged only the right way up: a wrong EXIF orientation is refused, not scored.

Phones record how the camera was held in the EXIF orientation tag, and the
capture is turned upright by it (``load_oriented``). A tag that is wrong — an
editor that rotated the pixels and kept the tag, a scanner, a re-encoder — turns
an upright face on its side or upside down. Sideways, the detector finds
nothing (a clear ``no_face``); upside down it can still "find" a face, with a
plausible score and quality (an inverted LFW portrait: detector 0.88, roll 3°,
passing the gate), whose embedding is nobody's: a false face that would count
as a failed attempt against the claimed subject.

So for a capture the tag turned (orientations 3 to 8; 2 only mirrors), the
detector also looks at the pixels as stored. If the face is clearly better
there, the tag is wrong and the capture is refused with that reason. It costs
one detection, only for captures with a turning tag; arrays from cameras and
captures without a tag are not affected. A photo whose *pixels* are upside
down with no tag is not caught here (docs/threat-model.md).
"""

from __future__ import annotations

import numpy as np

from .._errors import LowQualityError
from ._capture import Oriented, as_stored
from ._detect import Detector, Face

#: How much better (detector score) the face must be as stored to call the tag wrong.
ORIENTATION_MARGIN = 0.02


def check_upright(detector: Detector, capture: Oriented, face: Face) -> None:
    """Refuse ``face`` when the capture's EXIF orientation turned it away from upright."""
    if capture.orientation <= 2:  # no tag, or a mirror: the face keeps its way up
        return
    stored = np.ascontiguousarray(as_stored(capture.image, capture.orientation))
    best = max((f.score for f in detector.detect(stored)), default=0.0)
    if best > face.score + ORIENTATION_MARGIN:
        reason = (
            f"the face is upright only without the photo's EXIF orientation tag ({capture.orientation}): "
            "the tag is wrong; save the photo upright without it"
        )
        raise LowQualityError(f"capture refused: {reason}", reasons=["orientation"])
