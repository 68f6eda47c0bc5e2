"""capture → detect → quality → align → embed, for one face per capture.

The pipeline knows nothing about subjects, consent or storage; it turns an
image into one embedding and its quality, or refuses with a typed error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np

from .._errors import MultipleFacesError, NoFaceError
from ._align import Aligner
from ._capture import DEFAULT_LIMITS, CaptureLimits, CaptureSource, RGBImage, load_image, load_oriented
from ._detect import Detector, Face
from ._embed import Embedder, Embedding, l2_normalise
from ._orientation import check_upright
from ._quality import Quality, QualityPolicy, measure

#: A second face counts as "comparable" (so the capture is ambiguous) when its
#: eye distance is at least this share of the largest face's. Bystanders far
#: behind the subject are smaller and do not make a capture ambiguous.
COMPARABLE_FACE_RATIO = 0.5

FaceSelection = Literal["only", "dominant"]


class FaceSample:
    """One face taken from one capture: its embedding and how good it was.

    The embedding may be computed on first use (``compute``): a live session
    locates, tracks and measures every frame but embeds only the frames its
    decisions read (:meth:`FacePipeline.frame_sample`).
    """

    __slots__ = ("_compute", "_embedding", "face", "quality")

    def __init__(
        self,
        embedding: Embedding | None = None,
        quality: Quality | None = None,
        face: Face | None = None,
        *,
        compute: Callable[[], Embedding] | None = None,
    ) -> None:
        if (embedding is None) == (compute is None):
            raise ValueError("give an embedding or a way to compute it, not both")
        if quality is None or face is None:
            raise ValueError("a sample needs its quality and face")
        self._embedding = embedding
        self._compute = compute
        self.quality = quality
        self.face = face

    @property
    def embedding(self) -> Embedding:
        if self._embedding is None:
            assert self._compute is not None  # the constructor requires one of the two
            self._embedding, self._compute = self._compute(), None
        return self._embedding

    @property
    def embedded(self) -> bool:
        """Whether the embedding has been computed (for benchmarks and tests)."""
        return self._embedding is not None


class FacePipeline:
    """The vision stream, each stage injected through its protocol."""

    def __init__(
        self,
        *,
        detector: Detector,
        aligner: Aligner,
        embedder: Embedder,
        limits: CaptureLimits = DEFAULT_LIMITS,
        mirror_band: float | None = None,
    ) -> None:
        self.detector = detector
        self.aligner = aligner
        self.embedder = embedder
        self.limits = limits
        self.mirror_band = mirror_band

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

    def probe(
        self,
        source: CaptureSource | RGBImage,
        *,
        policy: QualityPolicy | None,
        select: FaceSelection = "only",
    ) -> Probe:
        """Like :meth:`sample`, for the side of a comparison scored against a reference (:class:`Probe`)."""
        crop, quality, face = self.capture(source, policy=policy, select=select)
        return Probe(crop, quality, face, self.embedder, self.mirror_band)

    def frame_sample(self, face: Face, crop: RGBImage, quality: Quality) -> FaceSample:
        """A sample of one video frame whose embedding is computed only when first read.

        The same embedding as :meth:`sample` gives (views included): the frame a
        live verification scores is compared with templates at the pack's
        calibrated points.
        """
        embedder = self.embedder
        return FaceSample(quality=quality, face=face, compute=lambda: embedder.embed([crop])[0])

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


class Probe:
    """A capture about to be compared with a reference: the crop's embedding now,
    its mirror image's only where it could change the decision.

    With mirrored views (revision 2 on) the calibrated score is that of the
    crop + mirror embedding. Far from the threshold the crop alone decides the
    same way; :meth:`score` embeds the mirror image only when the crop alone
    scores within ``band`` of the threshold (``RecognizerSpec.mirror_band``,
    calibrated so that decisions agree with the full computation on LFW;
    docs/performance.md). ``band=None`` always computes both views.
    """

    def __init__(
        self, crop: RGBImage, quality: Quality, face: Face, embedder: Embedder, band: float | None
    ) -> None:
        self.quality = quality
        self.face = face
        self._crop = crop
        self._embedder = embedder
        self._band = band
        inner = getattr(embedder, "inner", None)
        self._view: Embedding | None = None
        if band is not None and inner is not None:
            self._view = inner.embed([crop])[0]
        self._full: Embedding | None = None

    @property
    def embedding(self) -> Embedding:
        """The full embedding (both views), as :meth:`FacePipeline.sample` gives."""
        if self._full is None:
            if self._view is not None:
                mirror = self._embedder_inner().embed([np.ascontiguousarray(self._crop[:, ::-1])])[0]
                self._full = l2_normalise(self._view + mirror)
            else:
                self._full = self._embedder.embed([self._crop])[0]
        return self._full

    def score(self, reference: Embedding, threshold: float) -> float:
        """The cosine with ``reference`` that decides at ``threshold`` as the full embedding's would."""
        if self._view is not None and self._band is not None and self._full is None:
            single = cosine(self._view, reference)
            if abs(single - threshold) > self._band:
                return single
        return cosine(self.embedding, reference)

    @property
    def views(self) -> int:
        """How many recognizer runs this probe has cost so far."""
        if self._view is None:
            return 0 if self._full is None else (2 if hasattr(self._embedder, "inner") else 1)
        return 1 if self._full is None else 2

    def _embedder_inner(self) -> Embedder:
        inner: Embedder = getattr(self._embedder, "inner", self._embedder)
        return inner


class FaceTracker:
    """Follows the one face of a live session from frame to frame.

    Frames are searched as the detector runs on camera frames (its
    ``for_frames()``, when it has one: for YuNet the whole frame fitted to its
    input, no refinement, the landmarks a session's pose thresholds were set
    on). A whole-frame detection (every face, so a second person stepping in is
    refused as :meth:`FacePipeline.locate` refuses it) runs on the first frame,
    whenever the face is lost, and on every ``full_every``-th frame; in between
    the detector only looks again at a window around the face's last position
    (one small run instead of a whole frame).
    """

    def __init__(self, pipeline: FacePipeline, *, full_every: int = 5) -> None:
        if full_every < 1:
            raise ValueError("full_every must be at least 1")
        for_frames = getattr(pipeline.detector, "for_frames", None)
        detector: Detector = for_frames() if for_frames is not None else pipeline.detector
        self.pipeline = FacePipeline(
            detector=detector, aligner=pipeline.aligner, embedder=pipeline.embedder, limits=pipeline.limits
        )
        self.full_every = full_every
        self._last: Face | None = None
        self._since_full = 0

    def locate(self, image: RGBImage) -> Face:
        """The tracked face in this frame; NoFaceError / MultipleFacesError as ``locate(select="only")``."""
        track = getattr(self.pipeline.detector, "track", None)
        face = None
        if track is not None and self._last is not None and self._since_full < self.full_every:
            face = track(image, self._last)
            self._since_full += 1
        if face is None:
            self._last = None  # lost (or due): a whole-frame detection, and its refusals
            face = self.pipeline.locate(image, select="only")
            self._since_full = 1
        self._last = face
        return face

    def reset(self) -> None:
        self._last, self._since_full = None, 0

    @property
    def position(self) -> tuple[Face | None, int]:
        """Where the tracker is: the last face found and frames since a whole-frame detection
        (a live session's snapshot carries it, so a restored session tracks as the original)."""
        return self._last, self._since_full

    def resume(self, last: Face | None, since_full: int) -> None:
        """Continue from a :attr:`position`."""
        if not 0 <= since_full <= self.full_every:
            raise ValueError(f"since_full must lie in [0, {self.full_every}], got {since_full}")
        self._last, self._since_full = last, since_full


def cosine(a: Embedding, b: Embedding) -> float:
    """Similarity of two unit-length embeddings, in [-1, 1]."""
    return float(np.dot(a, b))
