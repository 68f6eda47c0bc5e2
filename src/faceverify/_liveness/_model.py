"""Passive PAD with an ONNX model from a liveness pack (opt-in, licence acknowledged).

The only such pack built in is ``faceplugin-liveness``: a MiniFASNet-like
three-class model from an npm package whose licence is unclear. It loads only
with ``accept_licence=True``, and is never a default.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from .._models._install import cache_dir, verified_paths
from .._models._manifest import LivenessPack, LivenessSpec, builtin_liveness_manifest
from .._pipeline._capture import RGBImage
from .._pipeline._detect import Face
from .._pipeline._onnx import OnnxSession
from ._check import grayscale_reason, square_crop


class OnnxLivenessCheck:
    """A softmax classifier on the enlarged face crop; ``score`` is P(live)."""

    def __init__(self, session: OnnxSession, spec: LivenessSpec, *, name: str, threshold: float) -> None:
        self._session = session
        self._spec = spec
        self.name = name
        self.threshold = threshold

    def score(self, image: RGBImage, face: Face) -> float:
        spec = self._spec
        crop = square_crop(image, face, scale=spec.box_scale, size=spec.input.size).astype(np.float32)
        if spec.input.channels == "BGR":
            crop = crop[..., ::-1]
        blob = np.ascontiguousarray(((crop - spec.input.mean) / spec.input.std).transpose(2, 0, 1)[None])
        logits = self._session.run(blob)[0][0].astype(np.float64)
        e = np.exp(logits - logits.max())
        return float(e[spec.live_class] / e.sum())

    def cannot_assess(self, image: RGBImage, face: Face) -> str:
        """Trained on colour captures: a grayscale (IR, monochrome) one is outside what it judges."""
        return grayscale_reason(image, face)


#: Threshold on P(live) for the faceplugin model, chosen on *other-camera* real faces
#: (LFW people A–M, the training side) at 2 % BPCER: see benchmarks/train_pad.py and
#: docs/liveness.md. The model's own argmax (0.5) rejected 12 % of held-out LFW faces.
FACEPLUGIN_THRESHOLD = 0.027

_lock = threading.Lock()
_loaded: dict[tuple[str, Path, int], OnnxSession] = {}


def load_liveness_check(
    pack: LivenessPack | str = "faceplugin-liveness",
    *,
    accept_licence: bool = False,
    cache: Path | str | None = None,
    threads: int = 0,
    threshold: float = FACEPLUGIN_THRESHOLD,
) -> OnnxLivenessCheck:
    """Load an installed liveness pack, verifying its files; restricted packs need
    ``accept_licence=True`` (else :class:`LicenceNotAcceptedError`)."""
    manifest = builtin_liveness_manifest(pack) if isinstance(pack, str) else pack
    manifest.require_licence(accept_licence)
    root = cache_dir(cache)
    key = (manifest.id, root, threads)
    with _lock:
        if key not in _loaded:
            paths = verified_paths(manifest, root)
            _loaded[key] = OnnxSession(paths[manifest.liveness.file], threads=threads)
        session = _loaded[key]
    return OnnxLivenessCheck(session, manifest.liveness, name=manifest.id, threshold=threshold)
