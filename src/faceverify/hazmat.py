"""The low-level layer: pipeline stages, protocols and model packs.

Hazardous materials: these pieces compare embeddings without consent, quality
gates or operating points unless you add them. Use them to plug in your own
detector or embedder (through the protocols), or for benchmarks; build
products on :mod:`faceverify`'s ``compare`` and ``Verifier``.
"""

from ._compare import compare_with, resolve_operating_point
from ._models._insightface import InsightFacePack, load_insightface_pack
from ._models._install import cache_dir, check_pack, install_pack, verified_paths
from ._models._load import load_pipeline
from ._models._manifest import (
    DEFAULT_PACK,
    ModelFile,
    ModelPack,
    PackageSource,
    builtin_manifest,
    load_manifest,
    parse_manifest,
)
from ._pipeline._align import ARCFACE_TEMPLATE, Aligner, ArcFaceAligner, similarity_transform
from ._pipeline._capture import CaptureLimits, CaptureSource, load_image
from ._pipeline._detect import Detector, Face, Refinement, YuNetDetector
from ._pipeline._embed import Embedder, InputSpec, MirroredEmbedder, OnnxEmbedder, l2_normalise, with_views
from ._pipeline._onnx import OnnxSession
from ._pipeline._pipeline import COMPARABLE_FACE_RATIO, FacePipeline, FaceSample, FaceTracker, Probe, cosine
from ._pipeline._quality import measure, pose_from_landmarks
from ._vault import (
    AuditSink,
    KeyStore,
    OpenedTemplate,
    SessionStore,
    TemplateHeader,
    TemplateStore,
    needs_reenroll,
    read_header,
)

__all__ = [
    "ARCFACE_TEMPLATE",
    "COMPARABLE_FACE_RATIO",
    "DEFAULT_PACK",
    "Aligner",
    "ArcFaceAligner",
    "AuditSink",
    "CaptureLimits",
    "CaptureSource",
    "Detector",
    "Embedder",
    "Face",
    "FacePipeline",
    "FaceSample",
    "FaceTracker",
    "InputSpec",
    "InsightFacePack",
    "KeyStore",
    "MirroredEmbedder",
    "ModelFile",
    "ModelPack",
    "OnnxEmbedder",
    "OnnxSession",
    "OpenedTemplate",
    "PackageSource",
    "Probe",
    "Refinement",
    "SessionStore",
    "TemplateHeader",
    "TemplateStore",
    "YuNetDetector",
    "builtin_manifest",
    "cache_dir",
    "check_pack",
    "compare_with",
    "cosine",
    "install_pack",
    "l2_normalise",
    "load_image",
    "load_insightface_pack",
    "load_manifest",
    "load_pipeline",
    "measure",
    "needs_reenroll",
    "parse_manifest",
    "pose_from_landmarks",
    "read_header",
    "resolve_operating_point",
    "similarity_transform",
    "verified_paths",
    "with_views",
]
