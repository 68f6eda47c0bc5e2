"""Profiles: the few decisions a deployment makes, named and stated.

A profile picks an operating point of the model pack (so its false match rate
is a measured promise, not a bare threshold), the quality minimums, and
whether a live capture is required. A custom threshold is possible, and is
reported as uncalibrated wherever it is used.

Grayscale and infrared captures are refused by every profile except those
whose points were calibrated on them (``door-access-ir``, or
:meth:`Profile.for_grayscale`): colour thresholds are never applied to them.
Where relatives may both be enrolled (a household, a family business), use
:meth:`Profile.for_relatives`: the stated FMR of the ordinary points holds
between unrelated people only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ._errors import ConfigurationError
from ._pipeline._quality import QualityPolicy

#: The grayscale points' gate (as the pack records it under ``condition_operating_points``):
#: grayscale admitted, and faces the detector sees only in part refused.
GRAYSCALE_DETECTOR_SCORE = 0.90


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    operating_point: str
    liveness_required: bool
    quality: QualityPolicy = field(default_factory=QualityPolicy)
    #: Run faceverify's own passive PAD check (``FeaturePADCheck``) inside live
    #: sessions unless the Verifier is given another. Issue #5's bar picks it:
    #: the best check whose licence allows shipping and which rejects ≤ 5 % of
    #: real faces from other cameras (4.0 %); it stops about 69 % of the print
    #: and screen attacks measured, so the challenge remains the main defence.
    passive_check: bool = False
    custom_threshold: float | None = None

    def for_grayscale(self) -> Profile:
        """The same profile for a grayscale or infrared camera: the gate admits such
        captures and the pack's ``grayscale:`` points (calibrated on them) decide."""
        point = self.operating_point.rpartition(":")[2]
        return replace(
            self,
            name=f"{self.name}+grayscale",
            operating_point=f"grayscale:{point}",
            quality=replace(self.quality, grayscale=True, min_detector_score=GRAYSCALE_DETECTOR_SCORE),
        )

    def for_relatives(self) -> Profile:
        """The same profile where relatives may both be enrolled: the pack's stricter
        ``relatives:household`` point, whose false match rate is stated between relatives."""
        return replace(self, name=f"{self.name}+relatives", operating_point="relatives:household")

    def with_threshold(self, threshold: float) -> Profile:
        """The same profile with an uncalibrated threshold of the caller's choosing."""
        if not -1.0 <= threshold <= 1.0:
            raise ConfigurationError("a cosine threshold lies in [-1, 1]")
        return replace(self, custom_threshold=threshold)


PROFILES: dict[str, Profile] = {
    # Comparing two photos, e.g. an ID document against a selfie reviewed by a person.
    "photo-check": Profile("photo-check", operating_point="default", liveness_required=False),
    # Selfie login: a live capture is required; FMR 1e-5.
    "app-login": Profile("app-login", operating_point="default", liveness_required=True, passive_check=True),
    # A door: a live capture is required; FMR 1e-5 (use "strict" where a false
    # accept costs more than a retry).
    "door-access": Profile(
        "door-access", operating_point="default", liveness_required=True, passive_check=True
    ),
    # A door with an infrared (or any grayscale) camera: the grayscale points decide.
    # The passive PAD check was trained on colour crops, so it is off; the challenge stays.
    "door-access-ir": Profile(
        "door-access-ir",
        operating_point="grayscale:default",
        liveness_required=True,
        quality=QualityPolicy(grayscale=True, min_detector_score=GRAYSCALE_DETECTOR_SCORE),
    ),
}


def get_profile(profile: Profile | str) -> Profile:
    if isinstance(profile, Profile):
        return profile
    try:
        return PROFILES[profile]
    except KeyError:
        raise ConfigurationError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}") from None
