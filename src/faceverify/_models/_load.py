"""Turn an installed, verified pack into a ready :class:`FacePipeline`."""

from __future__ import annotations

import threading
from functools import partial
from pathlib import Path

from .._errors import ModelError
from .._pipeline._align import ArcFaceAligner
from .._pipeline._capture import DEFAULT_LIMITS, CaptureLimits
from .._pipeline._detect import YuNetDetector
from .._pipeline._embed import OnnxEmbedder, with_views
from .._pipeline._onnx import OnnxSession
from .._pipeline._pipeline import FacePipeline
from ._install import cache_dir, verified_paths, verify_file
from ._manifest import DEFAULT_PACK, DetectorSpec, ModelPack, builtin_manifest

_lock = threading.Lock()
_loaded: dict[tuple[str, Path, int], FacePipeline] = {}


def yunet_detector(
    spec: DetectorSpec, session: OnnxSession, *, score_threshold: float | None = None
) -> YuNetDetector:
    """The YuNet detector a pack's spec describes (``score_threshold`` overrides the spec's)."""
    return YuNetDetector(
        session,
        score_threshold=spec.score_threshold if score_threshold is None else score_threshold,
        size=spec.input_size,
        upscale=spec.upscale,
        canvas=spec.canvas,
        min_scale=spec.min_scale,
        refine=spec.refine,
    )


def load_pipeline(
    pack: ModelPack | str = DEFAULT_PACK,
    *,
    cache: Path | str | None = None,
    threads: int = 0,
    accept_licence: bool = False,
    limits: CaptureLimits = DEFAULT_LIMITS,
    background: bool = False,
) -> FacePipeline:
    """Build the pipeline for a pack, verifying every file's digest first.

    Loaded once per process and pack: sessions are reused across calls. A pack
    whose licence is restricted (e.g. insightface's non-commercial packs) loads
    only with ``accept_licence=True``.

    ``background=True`` (for one-shot processes such as the CLI) checks the
    recognizer's digest and creates its session in a background thread, so that
    decoding and detection overlap with them; the file is still verified before
    it is read, but a digest that does not match (``ModelIntegrityError``) or an
    onnxruntime error in creating the session is raised on first use.
    """
    manifest = builtin_manifest(pack) if isinstance(pack, str) else pack
    manifest.require_licence(accept_licence)
    root = cache_dir(cache)
    key = (manifest.id, root, threads)
    with _lock:
        if key in _loaded and limits is DEFAULT_LIMITS:
            return _loaded[key]
        det = manifest.detector
        rec = manifest.recognizer
        if det.kind != "yunet" or rec.kind != "onnx":
            raise ModelError(
                f"pack {manifest.id!r} uses a {det.kind} detector / {rec.kind} recognizer: "
                "load it with faceverify.hazmat.load_insightface_pack"
            )
        # In the background the recognizer's digest is checked by the thread that loads it.
        paths = verified_paths(manifest, root, later=(rec.file,) if background else ())
        check = partial(verify_file, manifest, rec.file, paths[rec.file]) if background else None
        # The recognizer first: in the background it loads while the detector's session is made.
        recognizer = OnnxSession(
            paths[rec.file],
            threads=threads,
            background=background,
            prepack=manifest.file(rec.file).int8 is not None,
            before=check,
        )
        pipeline = FacePipeline(
            detector=yunet_detector(det, OnnxSession(paths[det.file], threads=threads)),
            aligner=ArcFaceAligner(rec.input.size),
            embedder=with_views(OnnxEmbedder(recognizer, rec.input, dim=rec.dim), mirror=rec.mirror),
            limits=limits,
            mirror_band=rec.mirror_band,
        )
        if limits is DEFAULT_LIMITS and not background:  # (one whose loading may yet fail is not kept)
            _loaded[key] = pipeline
        return pipeline
