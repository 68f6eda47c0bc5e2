"""Score fusion with a second, independent recognizer (opt-in).

Two recognizers trained apart make different mistakes, so the mean of their
normalised scores separates people better than either score alone. Each
recognizer's cosine is z-normalised with the mean and standard deviation of
its *impostor* scores (stated in the pack, with the data they came from), and
the fused score is the mean of the two z-scores::

    fused = ((cos_1 - mean_1) / std_1 + (cos_2 - mean_2) / std_2) / 2

A fused score is in impostor standard deviations, not a cosine, so it has its
own operating points, calibrated like the single-recognizer ones and stated in
the second recognizer's pack. Both recognizers see the same detection and the
same ArcFace-aligned crop.

The only second recognizer available from a registry (``faceplugin-fr512``) is
under an unclear licence, so fusion is never on by default: it loads only with
``accept_licence=True``.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._compare import Comparison, still_image_profile
from ._errors import ConfigurationError, ModelError
from ._models._manifest import (
    ModelPack,
    OperatingPoint,
    Pack,
    RecognizerSpec,
    _builtin_json,
    _common,
    _operating_points,
    _recognizer,
    builtin_manifest,
    embedding_space,
    find_operating_point,
)
from ._pipeline._capture import CaptureSource, RGBImage
from ._pipeline._embed import Embedder, Embedding
from ._pipeline._pipeline import FacePipeline, FaceSelection
from ._pipeline._quality import Quality, QualityPolicy
from ._profiles import Profile

#: Second-recognizer packs built in (all opt-in).
BUILTIN_RECOGNIZER_PACKS = ("faceplugin-fr512",)

_lock = threading.Lock()
_loaded: dict[tuple[str, str, Path, int], FusedRecognizer] = {}


@dataclass(frozen=True, slots=True)
class ScoreNorm:
    """Impostor cosine statistics of one recognizer, for z-normalisation."""

    mean: float
    std: float

    def __post_init__(self) -> None:
        if not self.std > 0:
            raise ModelError("a score normalisation needs a positive standard deviation")

    def z(self, cosine: float) -> float:
        return (cosine - self.mean) / self.std


@dataclass(frozen=True, slots=True)
class FusionSpec:
    """How a second recognizer is fused with the recognizer of pack ``partner``.

    The statistics and operating points hold only for the partner's revision
    they were calibrated with (``partner_revision``); a newer revision changes
    its embeddings, so fusion with it is refused until recalibrated.
    """

    partner: str
    partner_revision: int
    rule: str
    dataset: str
    norms: dict[str, ScoreNorm]
    operating_points: tuple[OperatingPoint, ...]

    @property
    def partner_space(self) -> str:
        """The partner's embedding space (see ``ModelPack.embedding_space``)."""
        return embedding_space(self.partner, self.partner_revision)

    def operating_point(self, name: str) -> OperatingPoint:
        return find_operating_point(self.operating_points, name, f"fusion with {self.partner}")


@dataclass(frozen=True, slots=True)
class RecognizerPack(Pack):
    """A pack holding one recognizer used beside a recognition pack, and how to fuse it."""

    recognizer: RecognizerSpec
    fusion: FusionSpec


def parse_recognizer_manifest(data: dict[str, Any]) -> RecognizerPack:
    """Build a :class:`RecognizerPack` from its JSON form; a malformed manifest is a ModelError."""
    try:
        rec, fus = data["recognizer"], data["fusion"]
        norms = {k: ScoreNorm(float(v["mean"]), float(v["std"])) for k, v in fus["impostor"].items()}
        if fus["rule"] != "zscore-mean":
            raise ValueError(f"unknown fusion rule {fus['rule']!r}")
        if set(norms) != {fus["partner"], data["id"]}:
            raise ValueError("impostor statistics must name exactly the two fused packs")
        return RecognizerPack(
            **_common(data),
            recognizer=_recognizer(rec),
            fusion=FusionSpec(
                partner=fus["partner"],
                partner_revision=int(fus.get("partner_revision", 1)),
                rule=fus["rule"],
                dataset=fus["dataset"],
                norms=norms,
                operating_points=_operating_points(fus.get("operating_points", [])),
            ),
        )
    except (AttributeError, KeyError, TypeError, ValueError) as exc:  # a value of the wrong kind too
        raise ModelError(f"malformed recognizer pack manifest: {exc!r}") from None


def builtin_recognizer_pack(pack_id: str) -> RecognizerPack:
    if pack_id not in BUILTIN_RECOGNIZER_PACKS:
        raise ModelError(
            f"unknown recognizer pack {pack_id!r}; built in: {', '.join(BUILTIN_RECOGNIZER_PACKS)}"
        )
    return parse_recognizer_manifest(_builtin_json(pack_id))


@dataclass(frozen=True, slots=True)
class FusedSample:
    """One face from one capture, embedded by both recognizers."""

    primary: Embedding
    secondary: Embedding
    quality: Quality


class FusedRecognizer:
    """A recognition pipeline and a second embedder, scored by z-score fusion.

    Both recognizers embed the same aligned crop; ``score`` returns the fused
    score, to be compared with :attr:`FusionSpec.operating_points`.
    """

    def __init__(
        self, pipeline: FacePipeline, primary_space: str, secondary: Embedder, pack: RecognizerPack
    ) -> None:
        spec = pack.fusion
        if primary_space != spec.partner_space:
            raise ConfigurationError(
                f"recognizer pack {pack.id!r} is calibrated for fusion with {spec.partner_space!r}, "
                f"not {primary_space!r}"
            )
        self.pipeline = pipeline
        self.secondary = secondary
        self.pack = pack
        self._norm_primary = spec.norms[spec.partner]
        self._norm_secondary = spec.norms[pack.id]

    @property
    def id(self) -> str:
        """What a template made by this recognizer records: both packs."""
        return f"{self.pack.fusion.partner_space}+{self.pack.id}"

    def sample(
        self,
        source: CaptureSource | RGBImage,
        *,
        policy: QualityPolicy | None,
        select: FaceSelection = "only",
    ) -> FusedSample:
        """Load, detect, gate on quality, align, and embed with both recognizers."""
        crop, quality, _ = self.pipeline.capture(source, policy=policy, select=select)
        return FusedSample(self.pipeline.embedder.embed([crop])[0], self.secondary.embed([crop])[0], quality)

    def fuse(self, cos_primary: float, cos_secondary: float) -> float:
        return (self._norm_primary.z(cos_primary) + self._norm_secondary.z(cos_secondary)) / 2

    def score(self, a: FusedSample, b: FusedSample) -> float:
        return self.fuse(float(np.dot(a.primary, b.primary)), float(np.dot(a.secondary, b.secondary)))


@functools.cache
def _builtin_cached(pack_id: str) -> RecognizerPack:
    return builtin_recognizer_pack(pack_id)


def load_fused(
    second: RecognizerPack | str = "faceplugin-fr512",
    *,
    pack: ModelPack | str | None = None,
    cache: Path | str | None = None,
    threads: int = 0,
    accept_licence: bool = False,
) -> FusedRecognizer:
    """The default pipeline with a second recognizer fused in; verifies every file.

    The second recognizer's licence must be acknowledged with ``accept_licence=True``.
    Loaded once per process, packs and cache (sessions are reused across calls).
    """
    from ._models._install import cache_dir, verified_paths
    from ._models._load import load_pipeline
    from ._pipeline._embed import OnnxEmbedder, with_views
    from ._pipeline._onnx import OnnxSession

    rpack = _builtin_cached(second) if isinstance(second, str) else second
    rpack.require_licence(accept_licence)
    manifest = builtin_manifest(pack or rpack.fusion.partner) if not isinstance(pack, ModelPack) else pack
    root = cache_dir(cache)
    key = (rpack.id, manifest.id, root, threads)
    with _lock:
        if key not in _loaded or _loaded[key].pack is not rpack:
            pipeline = load_pipeline(manifest, cache=root, threads=threads)
            paths = verified_paths(rpack, root)
            rec = rpack.recognizer
            session = OnnxSession(paths[rec.file], threads=threads)
            embedder = with_views(OnnxEmbedder(session, rec.input, dim=rec.dim), mirror=rec.mirror)
            _loaded[key] = FusedRecognizer(pipeline, manifest.embedding_space, embedder, rpack)
        return _loaded[key]


def compare_fused_with(
    fused: FusedRecognizer,
    a: CaptureSource,
    b: CaptureSource,
    *,
    profile: Profile | str = "photo-check",
) -> Comparison:
    """Compare two captures with fused scores, at the profile's operating point."""
    prof = still_image_profile(profile)
    if prof.custom_threshold is not None:
        raise ConfigurationError(
            "a custom cosine threshold does not apply to a fused score; use a named operating point"
        )
    op = fused.pack.fusion.operating_point(prof.operating_point)
    sa = fused.sample(a, policy=prof.quality)
    sb = fused.sample(b, policy=prof.quality)
    score = fused.score(sa, sb)
    return Comparison(score >= op.threshold, score, op.threshold, op, sa.quality, sb.quality)


__all__ = [
    "BUILTIN_RECOGNIZER_PACKS",
    "FusedRecognizer",
    "FusedSample",
    "FusionSpec",
    "RecognizerPack",
    "ScoreNorm",
    "builtin_recognizer_pack",
    "compare_fused_with",
    "load_fused",
    "parse_recognizer_manifest",
]
