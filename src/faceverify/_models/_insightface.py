"""Bring-your-own insightface packs (e.g. buffalo_l: SCRFD ``det_10g.onnx`` + ArcFace ``w600k_r50.onnx``).

insightface's packs are for non-commercial research only and cannot ship with
faceverify: a user who holds them (or a commercial licence for them) points
:func:`load_insightface_pack` at the directory. Three rules:

- **The licence is acknowledged first.** A restricted pack raises
  :class:`LicenceNotAcceptedError` unless ``accept_licence=True``, before any file
  is read and before insightface is imported.
- **Pre-processing comes from the manifest**, never from ``insightface.model_zoo``'s
  guesses: model_zoo routes a file to a class by its graph's shapes and guesses
  mean/std (127.5 for SFace, which normalises inside its graph: embeddings then
  have cosine 0.09 with the right ones). The adapters overwrite ``input_mean`` /
  ``input_std`` and feed the manifest's channel order.
- **insightface is imported lazily**, only here: it costs about 0.6 s and 170 MB
  (scikit-image, scipy, OpenCV), which the default path never pays.

The directory holds the model files and a ``manifest.json`` in faceverify's pack
format, with files' SHA-256 digests (checked before loading) and::

    "detector": {"kind": "insightface", "file": "det_10g.onnx", "input_size": 640,
                 "score_threshold": 0.5, "nms_iou": 0.4,
                 "input": {"channels": "RGB", "mean": 127.5, "std": 128.0}},
    "recognizer": {"kind": "insightface", "file": "w600k_r50.onnx", "dim": 512,
                   "input": {"channels": "RGB", "mean": 127.5, "std": 127.5, "size": 112},
                   "alignment": "arcface-5pt"}

A ``"kind": "yunet"`` detector (faceverify's own adapter) or ``"kind": "onnx"``
recognizer (:class:`OnnxEmbedder`) may be mixed in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .._errors import ModelError, ModelIntegrityError, ModelNotInstalledError
from .._pipeline._align import ArcFaceAligner
from .._pipeline._capture import DEFAULT_LIMITS, CaptureLimits, RGBImage
from .._pipeline._detect import Detector, Face
from .._pipeline._embed import Embedder, InputSpec, OnnxEmbedder, l2_normalise, with_views
from .._pipeline._onnx import OnnxSession
from .._pipeline._pipeline import FacePipeline
from ._install import sha256_file
from ._manifest import Licence, ModelFile, ModelPack, OperatingPoint, RecognizerSpec, _flag, detector_spec

DETECTOR_KINDS = ("insightface", "yunet")
RECOGNIZER_KINDS = ("insightface", "onnx")


@dataclass(frozen=True, slots=True)
class InsightFacePack(ModelPack):
    """A user's pack in insightface's layout; ``detector_input`` is the detector's pre-processing."""

    directory: Path = Path()
    detector_input: InputSpec | None = None
    nms_iou: float = 0.4


class InsightFaceDetector:
    """A model_zoo SCRFD/RetinaFace detector behind faceverify's :class:`Detector` protocol."""

    def __init__(
        self, model: Any, *, spec: InputSpec, score_threshold: float, input_size: int, nms_iou: float
    ) -> None:
        if not hasattr(model, "detect"):
            kind = type(model).__name__
            raise ModelError(f"insightface routed the detector file to {kind}, not a detector")
        # Manifest values replace model_zoo's guesses.
        model.input_mean = spec.mean
        model.input_std = spec.std
        model.det_thresh = score_threshold
        model.nms_thresh = nms_iou
        self._model = model
        self._spec = spec
        self._input_size = input_size
        self.score_threshold = score_threshold

    def detect(self, image: RGBImage) -> list[Face]:
        # model_zoo's detectors take OpenCV's BGR and swap it (blobFromImage(swapRB=True)):
        # hand them the reverse of the order the manifest says the graph wants.
        src = image[:, :, ::-1] if self._spec.channels == "RGB" else image
        det, kpss = self._model.detect(
            np.ascontiguousarray(src), input_size=(self._input_size, self._input_size), max_num=0
        )
        if kpss is None:
            raise ModelError("the insightface detector gives no landmarks; a 5-point detector is needed")
        faces = [
            Face(
                box=(float(x1), float(y1), float(x2 - x1), float(y2 - y1)),
                landmarks=np.asarray(points, dtype=np.float32).reshape(5, 2),
                score=float(score),
            )
            for (x1, y1, x2, y2, score), points in zip(det, kpss, strict=True)
            if score >= self.score_threshold
        ]
        faces.sort(key=lambda f: f.score, reverse=True)
        return faces


class InsightFaceEmbedder:
    """A model_zoo ``ArcFaceONNX`` recognizer fed the manifest's pre-processing."""

    def __init__(self, model: Any, spec: InputSpec, *, dim: int) -> None:
        if not hasattr(model, "forward") or not hasattr(model, "input_mean"):
            raise ModelError(f"insightface routed the recognizer file to {type(model).__name__}, not ArcFace")
        model.input_mean = spec.mean  # model_zoo guessed these from the graph; the manifest knows
        model.input_std = spec.std
        self._model = model
        self._spec = spec
        self.dim = dim

    def embed(self, crops: list[RGBImage]) -> npt.NDArray[np.float32]:
        if not crops:
            return np.zeros((0, self.dim), dtype=np.float32)
        rows = []
        for crop in crops:  # one at a time: some graphs (SFace) have a fixed batch of 1
            pixels = crop[:, :, ::-1] if self._spec.channels == "BGR" else crop
            blob = np.ascontiguousarray(pixels.astype(np.float32).transpose(2, 0, 1)[None])
            rows.append(np.asarray(self._model.forward(blob), dtype=np.float32).reshape(-1))
        out = np.stack(rows)
        if out.shape[1] != self.dim:
            got = out.shape[1]
            raise ModelError(f"the recognizer gives {got}-d embeddings; the manifest says {self.dim}")
        return l2_normalise(out)


def parse_insightface_manifest(data: dict[str, Any], directory: Path) -> InsightFacePack:
    """An insightface-layout pack's manifest; anything missing or unknown is a ModelError."""
    try:
        det, rec = data["detector"], data["recognizer"]
        if det["kind"] not in DETECTOR_KINDS:
            raise ValueError(f"detector kind {det['kind']!r} is not one of {DETECTOR_KINDS}")
        if rec["kind"] not in RECOGNIZER_KINDS:
            raise ValueError(f"recognizer kind {rec['kind']!r} is not one of {RECOGNIZER_KINDS}")
        if rec.get("alignment") != "arcface-5pt":
            raise ValueError("only arcface-5pt alignment is supported")
        if det["kind"] == "insightface" and "input" not in det:
            raise KeyError("detector.input (channels, mean, std): pre-processing is never guessed")
        return InsightFacePack(
            id=data["id"],
            title=data["title"],
            licence=Licence(**data["licence"]),
            files=tuple(
                ModelFile(name=f["name"], sha256=f["sha256"], size=int(f["size"]), source=None)
                for f in data["files"]
            ),
            detector=detector_spec(det, "insightface" if det["kind"] == "insightface" else "yunet"),
            recognizer=RecognizerSpec(
                kind="insightface" if rec["kind"] == "insightface" else "onnx",
                file=rec["file"],
                dim=int(rec["dim"]),
                input=InputSpec(**rec["input"]),
                alignment="arcface-5pt",
                mirror=_flag(rec, "mirror"),
            ),
            operating_points=tuple(OperatingPoint(**op) for op in data.get("operating_points", [])),
            directory=directory,
            detector_input=InputSpec(**det["input"]) if "input" in det else None,
            nms_iou=float(det.get("nms_iou", 0.4)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"malformed insightface pack manifest in {directory}: {exc!r}") from None


def _verified(pack: InsightFacePack) -> dict[str, Path]:
    paths = {}
    for f in pack.files:
        path = pack.directory / f.name
        if not path.is_file():
            raise ModelNotInstalledError(f"{path} is missing from pack {pack.id!r}")
        if sha256_file(path) != f.sha256:
            raise ModelIntegrityError(f"{path} does not match the SHA-256 its manifest pins; refused")
        paths[f.name] = path
    for name in (pack.detector.file, pack.recognizer.file):
        if name not in paths:
            raise ModelError(f"pack {pack.id!r} uses {name!r} but its manifest lists no digest for it")
    return paths


def load_insightface_pack(
    directory: Path | str,
    *,
    accept_licence: bool = False,
    threads: int = 0,
    providers: tuple[str, ...] = ("CPUExecutionProvider",),
    limits: CaptureLimits = DEFAULT_LIMITS,
) -> tuple[FacePipeline, InsightFacePack]:
    """A pipeline over a pack in insightface's layout, and the pack (for its operating points).

    Order: manifest, licence (``LicenceNotAcceptedError`` unless acknowledged),
    digests, then insightface's model_zoo, only if a model needs it.
    """
    root = Path(directory)
    try:
        data = json.loads((root / "manifest.json").read_text("utf-8"))
    except OSError as exc:
        raise ModelError(
            f"cannot read {root / 'manifest.json'} ({exc.strerror}): an insightface pack needs a manifest "
            "giving each file's SHA-256 and pre-processing (faceverify never guesses them)"
        ) from None
    except json.JSONDecodeError as exc:
        raise ModelError(f"{root / 'manifest.json'} is not valid JSON: {exc}") from None
    pack = parse_insightface_manifest(data, root)
    pack.require_licence(accept_licence)
    paths = _verified(pack)

    det, rec = pack.detector, pack.recognizer
    detector: Detector
    if det.kind == "yunet":
        from ._load import yunet_detector

        detector = yunet_detector(det, OnnxSession(paths[det.file], threads=threads, providers=providers))
    else:
        assert pack.detector_input is not None  # parse_insightface_manifest requires it
        detector = InsightFaceDetector(
            _model_zoo(paths[det.file], threads, providers),
            spec=pack.detector_input,
            score_threshold=det.score_threshold,
            input_size=det.input_size,
            nms_iou=pack.nms_iou,
        )
    embedder: Embedder
    if rec.kind == "onnx":
        session = OnnxSession(paths[rec.file], threads=threads, providers=providers)
        embedder = OnnxEmbedder(session, rec.input, dim=rec.dim)
    else:
        zoo_model = _model_zoo(paths[rec.file], threads, providers)
        embedder = InsightFaceEmbedder(zoo_model, rec.input, dim=rec.dim)
    pipeline = FacePipeline(
        detector=detector,
        aligner=ArcFaceAligner(rec.input.size),
        embedder=with_views(embedder, mirror=rec.mirror),
        limits=limits,
    )
    return pipeline, pack


def _model_zoo(path: Path, threads: int, providers: tuple[str, ...]) -> Any:
    """Route a verified file through insightface's model_zoo (imported here, never at faceverify import)."""
    try:
        import onnxruntime as ort
        from insightface.model_zoo import model_zoo
    except ImportError:
        raise ModelError(
            "insightface packs need the insightface package: pip install 'faceverify[insightface]'"
        ) from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    model = model_zoo.get_model(str(path), providers=list(providers), sess_options=options)
    if model is None:
        raise ModelError(f"insightface's model_zoo does not recognise {path.name}")
    return model


__all__ = [
    "InsightFaceDetector",
    "InsightFaceEmbedder",
    "InsightFacePack",
    "load_insightface_pack",
    "parse_insightface_manifest",
]
