"""capture → detect → quality → align → embed, for one face per capture.

The pipeline knows nothing about subjects, consent or storage; it turns an
image into one embedding and its quality, or refuses with a typed error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from .._errors import MultipleFacesError, NoFaceError
from ._align import Aligner
from ._capture import DEFAULT_LIMITS, CaptureLimits, CaptureSource, RGBImage, load_image, load_oriented
from ._detect import Detector, Face
from ._embed import Embedder, Embedding
from ._orientation import check_upright
from ._quality import Quality, QualityPolicy, measure

#: A second face counts as "comparable" (so the capture is ambiguous) when its
#: eye distance is at least this share of the largest face's. Bystanders far
#: behind the subject are smaller and do not make a capture ambiguous.
COMPARABLE_FACE_RATIO = 0.5

FaceSelection = Literal["only", "dominant"]


@dataclass(frozen=True, slots=True)
class FaceSample:
    """One face taken from one capture: its embedding and how good it was."""

    embedding: Embedding
    quality: Quality
    face: Face


class FacePipeline:
    """The vision stream, each stage injected through its protocol."""

    def __init__(
        self,
        *,
        detector: Detector,
        aligner: Aligner,
        embedder: Embedder,
        limits: CaptureLimits = DEFAULT_LIMITS,
    ) -> None:
        self.detector = detector
        self.aligner = aligner
        self.embedder = embedder
        self.limits = limits

    def load(self, source: CaptureSource) -> RGBImage:
        return load_image(source, limits=self.limits)

    def locate(self, image: RGBImage, *, select: FaceSelection = "only") -> Face:
        """The one face in the capture.

        ``select="only"`` refuses a capture with several comparable faces;
        ``"dominant"`` (for enrolment helpers that show the user which face was
        taken) picks the largest explicitly.
        """
        faces = self.detector.detect(image)
        if not faces:
            raise NoFaceError(f"no face found (detector score threshold {self.detector.score_threshold:.2f})")
        faces.sort(key=lambda f: f.interocular, reverse=True)
        largest = faces[0]
        if select == "only":
            comparable = [f for f in faces if f.interocular >= COMPARABLE_FACE_RATIO * largest.interocular]
            if len(comparable) > 1:
                raise MultipleFacesError(
                    f"{len(comparable)} faces of comparable size in the capture; "
                    "capture one person at a time",
                    count=len(comparable),
                )
        return largest

    def sample(
        self,
        source: CaptureSource | RGBImage,
        *,
        policy: QualityPolicy | None,
        select: FaceSelection = "only",
    ) -> FaceSample:
        """Load, detect, gate on quality (unless ``policy`` is None), align and embed."""
        crop, quality, face = self.capture(source, policy=policy, select=select)
        embedding = self.embedder.embed([crop])[0]
        return FaceSample(embedding=embedding, quality=quality, face=face)

    def capture(
        self,
        source: CaptureSource | RGBImage,
        *,
        policy: QualityPolicy | None,
        select: FaceSelection = "only",
    ) -> tuple[RGBImage, Quality, Face]:
        """Every stage before the embedding: the aligned crop, its quality (gated) and the face.

        For embedders beside the pipeline's own (score fusion), which must see the same crop.
        """
        oriented = load_oriented(source, limits=self.limits)
        image = oriented.image
        face = self.locate(image, select=select)
        check_upright(self.detector, oriented, face)  # a wrong EXIF tag is refused, not scored
        crop = self.aligner.align(image, face.landmarks)
        quality = measure(image, face, crop)
        if policy is not None:
            policy.check(quality)
        return crop, quality, face


def cosine(a: Embedding, b: Embedding) -> float:
    """Similarity of two unit-length embeddings, in [-1, 1]."""
    return float(np.dot(a, b))
