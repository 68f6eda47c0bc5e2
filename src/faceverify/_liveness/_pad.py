"""faceverify's own passive PAD check: logistic regression on hand-made features.

Trained by ``benchmarks/train_pad.py`` (split and data documented there); the
learned weights ship as ``pad_weights.json`` under faceverify's own licence.
Measured figures, and why this check is **not** a default, are in
docs/liveness.md and ``benchmarks/out/liveness.md``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import numpy.typing as npt

from .._errors import ModelError
from .._pipeline._capture import RGBImage
from .._pipeline._detect import Face
from ._check import grayscale_reason
from ._features import FEATURE_NAMES, face_features

WEIGHTS_FILE = "pad_weights.json"


@dataclass(frozen=True, slots=True)
class LogisticWeights:
    """Standardise, dot, sigmoid: ``P(live) = σ(((x - mean) / std) · coef + bias)``."""

    mean: npt.NDArray[np.float64]
    std: npt.NDArray[np.float64]
    coef: npt.NDArray[np.float64]
    bias: float
    threshold: float
    variant: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LogisticWeights:
        try:
            if tuple(data["features"]) != FEATURE_NAMES:
                raise ModelError("PAD weights were trained on other features than this version computes")
            mean, std, coef = (np.asarray(data[k], dtype=np.float64) for k in ("mean", "std", "coef"))
            if any(a.shape != (len(FEATURE_NAMES),) for a in (mean, std, coef)):
                raise ValueError("weight vectors of the wrong length")
            return cls(mean, std, coef, float(data["bias"]), float(data["threshold"]), str(data["variant"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"malformed PAD weights: {exc!r}") from None

    def probability(self, features: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """P(live) for one feature vector or a batch of rows."""
        z = (features - self.mean) / self.std @ self.coef + self.bias
        p: npt.NDArray[np.float64] = 1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0)))
        return p


def builtin_weights() -> LogisticWeights:
    text = resources.files(__package__).joinpath(WEIGHTS_FILE).read_text("utf-8")
    return LogisticWeights.from_json(json.loads(text))


class FeaturePADCheck:
    """A logistic model over texture (LBP), frequency (moiré, blur) and colour cues.

    The shipped weights use the colour cues only (the others learned the
    capture session, not the attack: see benchmarks/train_pad.py); weights
    trained on other families load the same way.
    """

    def __init__(self, weights: LogisticWeights | None = None, *, threshold: float | None = None) -> None:
        self.weights = weights or builtin_weights()
        self.threshold = self.weights.threshold if threshold is None else threshold
        self.name = f"feature-pad[{self.weights.variant}]"

    def score(self, image: RGBImage, face: Face) -> float:
        return float(self.weights.probability(face_features(image, face)))

    def cannot_assess(self, image: RGBImage, face: Face) -> str:
        """Colour cues cannot be read from a grayscale (IR, monochrome) capture: say so."""
        return grayscale_reason(image, face)
