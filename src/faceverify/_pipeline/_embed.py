"""Turn an aligned face crop into a unit-length embedding.

Pre-processing (channel order, mean, scale) is part of a model's contract and
comes from the pack's manifest. Guessing it from the graph, as
``insightface.model_zoo`` does, feeds SFace normalised pixels to a graph that
normalises again, and its embeddings then have cosine 0.09 with the right ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from ._capture import RGBImage
from ._onnx import OnnxSession

Embedding = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class InputSpec:
    """How a recognizer wants its pixels: ``(pixel - mean) / std`` in ``channels`` order."""

    channels: Literal["RGB", "BGR"]
    mean: float
    std: float
    size: int = 112


class Embedder(Protocol):
    """Maps aligned crops to L2-normalised embeddings, one row per crop."""

    dim: int

    def embed(self, crops: list[RGBImage]) -> npt.NDArray[np.float32]: ...


class OnnxEmbedder:
    """A recognizer in ONNX with manifest-given pre-processing."""

    def __init__(self, session: OnnxSession, spec: InputSpec, *, dim: int) -> None:
        self._session = session
        self._spec = spec
        self.dim = dim

    def embed(self, crops: list[RGBImage]) -> npt.NDArray[np.float32]:
        if not crops:
            return np.zeros((0, self.dim), dtype=np.float32)
        batch = np.stack(crops).astype(np.float32)
        if self._spec.channels == "BGR":
            batch = batch[..., ::-1]
        if self._spec.mean != 0.0 or self._spec.std != 1.0:  # SFace takes raw pixels
            batch = (batch - self._spec.mean) / self._spec.std
        # Fixed batch-1 graphs (SFace) are run crop by crop.
        rows = [self._session.run(np.ascontiguousarray(b.transpose(2, 0, 1)[None]))[0][0] for b in batch]
        return l2_normalise(np.stack(rows).astype(np.float32))


class MirroredEmbedder:
    """Embeds each crop and its mirror image and returns their renormalised sum.

    A face and its mirror image are the same person, but a recognizer does not
    score them identically: averaging the two views cancels left/right
    asymmetries of pose and light (one more inference per capture; see
    ``RecognizerSpec.mirror``). A mirrored crop gets the same embedding.
    """

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.dim = inner.dim

    def embed(self, crops: list[RGBImage]) -> npt.NDArray[np.float32]:
        if not crops:
            return np.zeros((0, self.dim), dtype=np.float32)
        mirrors = [np.ascontiguousarray(crop[:, ::-1]) for crop in crops]
        views = self.inner.embed([*crops, *mirrors])
        return l2_normalise(views[: len(crops)] + views[len(crops) :])


def with_views(embedder: Embedder, *, mirror: bool) -> Embedder:
    """The embedder a recognizer spec asks for: mirrored views or the crop alone."""
    return MirroredEmbedder(embedder) if mirror else embedder


def l2_normalise(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    if np.any(norm == 0):
        raise ValueError("a zero embedding cannot be normalised")
    return np.asarray(x / norm, dtype=np.float32)
