"""Compare two captures: the one-call recipe over the pipeline.

Both sides are held to the same quality minimums, and the decision is made at a
named operating point whose false match rate is stated in the result.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import LivenessRequiredError
from ._models._manifest import ModelPack, OperatingPoint
from ._pipeline._capture import CaptureSource
from ._pipeline._pipeline import FacePipeline
from ._pipeline._quality import Quality
from ._profiles import Profile, get_profile


@dataclass(frozen=True, slots=True)
class Comparison:
    """The outcome of comparing two captures.

    ``match`` is ``score >= threshold``. ``operating_point.fmr`` is the false
    match rate that threshold was calibrated to (NaN for a custom threshold).
    ``score`` is a cosine, or with a second recognizer fused in (``fuse_with``)
    the fused score in impostor standard deviations.
    """

    match: bool
    score: float
    threshold: float
    operating_point: OperatingPoint
    quality_a: Quality
    quality_b: Quality


def resolve_operating_point(pack: ModelPack, profile: Profile) -> OperatingPoint:
    if profile.custom_threshold is not None:
        return OperatingPoint.uncalibrated(profile.custom_threshold)
    return pack.operating_point(profile.operating_point)


def still_image_profile(profile: Profile | str) -> Profile:
    """The profile, if it allows deciding on two still images (no live capture)."""
    prof = get_profile(profile)
    if prof.liveness_required:
        raise LivenessRequiredError(
            f"profile {prof.name!r} requires a live capture session; two still images "
            "cannot show that a person was present"
        )
    return prof


def compare_with(
    pipeline: FacePipeline,
    pack: ModelPack,
    a: CaptureSource,
    b: CaptureSource,
    *,
    profile: Profile | str = "photo-check",
) -> Comparison:
    """Compare two captures with an explicit pipeline and pack (the injectable form)."""
    prof = still_image_profile(profile)
    op = resolve_operating_point(pack, prof)
    sa = pipeline.sample(a, policy=prof.quality)
    sb = pipeline.probe(b, policy=prof.quality)  # its mirror view only near the threshold
    score = sb.score(sa.embedding, op.threshold)
    return Comparison(
        match=score >= op.threshold,
        score=score,
        threshold=op.threshold,
        operating_point=op,
        quality_a=sa.quality,
        quality_b=sb.quality,
    )


def compare(
    a: CaptureSource,
    b: CaptureSource,
    *,
    profile: Profile | str = "photo-check",
    pack: str = "yunet-sface",
    fuse_with: str | None = None,
    accept_licence: bool = False,
) -> Comparison:
    """Is the face in ``a`` the same person as the face in ``b``?

    Loads the installed pack once per process. Raises a :class:`FaceError`
    subclass when either capture holds no single face of sufficient quality.
    ``fuse_with`` names a second-recognizer pack (``"faceplugin-fr512"``) whose
    score is fused with the pack's; it is opt-in, its licence unclear, and
    needs ``accept_licence=True``.
    """
    from ._models._load import load_pipeline
    from ._models._manifest import builtin_manifest

    if fuse_with is not None:
        from ._fusion import compare_fused_with, load_fused

        fused = load_fused(fuse_with, pack=pack, accept_licence=accept_licence)
        return compare_fused_with(fused, a, b, profile=profile)
    manifest = builtin_manifest(pack)
    return compare_with(load_pipeline(manifest), manifest, a, b, profile=profile)
