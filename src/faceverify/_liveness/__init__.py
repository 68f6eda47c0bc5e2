"""Liveness: passive presentation-attack checks and the active challenge session.

Public names (re-exported by :mod:`faceverify` and :mod:`faceverify.hazmat`):
see ``__all__``. The default live capture is :class:`ChallengeSession` with
faceverify's own colour-cue :class:`FeaturePADCheck` on its best frames (the
liveness profiles turn it on): see docs/liveness.md for what it does and doesn't stop.
"""

from ._challenge import (
    Challenge,
    ChallengePolicy,
    ChallengeResult,
    ChallengeSession,
    CheckOutcome,
    FrameFeedback,
    State,
)
from ._check import FusedCheck, LivenessCheck, LivenessResult, assess, fuse, require_live, square_crop
from ._memory import Recollection
from ._model import FACEPLUGIN_THRESHOLD, OnnxLivenessCheck, load_liveness_check
from ._pad import FeaturePADCheck, LogisticWeights, builtin_weights
from ._screen_light import ScreenColour, ScreenLightPolicy, ScreenLightResult
from ._video import frames_from_video

__all__ = [
    "FACEPLUGIN_THRESHOLD",
    "Challenge",
    "ChallengePolicy",
    "ChallengeResult",
    "ChallengeSession",
    "CheckOutcome",
    "FeaturePADCheck",
    "FrameFeedback",
    "FusedCheck",
    "LivenessCheck",
    "LivenessResult",
    "LogisticWeights",
    "OnnxLivenessCheck",
    "Recollection",
    "ScreenColour",
    "ScreenLightPolicy",
    "ScreenLightResult",
    "State",
    "assess",
    "builtin_weights",
    "frames_from_video",
    "fuse",
    "load_liveness_check",
    "require_live",
    "square_crop",
]
