"""Model packs: what a set of weights is, where it came from, and how to feed it.

A pack is a manifest (JSON) naming each file with its SHA-256, the registry
package it is extracted from (pinned version and digest), the repair applied,
the pre-processing the model expects, its licence, and the calibrated
operating points. Nothing about a model is guessed from its graph.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from .._errors import ConfigurationError, LicenceNotAcceptedError, ModelError
from .._pipeline._detect import Refinement
from .._pipeline._embed import InputSpec


@dataclass(frozen=True, slots=True)
class PackageSource:
    """A file inside a pinned registry package (a wheel is a zip, an npm tarball a tar)."""

    registry: Literal["pypi", "npm"]
    package: str
    version: str
    filename: str
    sha256: str
    member: str
    member_sha256: str


@dataclass(frozen=True, slots=True)
class Int8Execution:
    """How a float graph was turned into onnxruntime's int8 form (``_repair.insert_qdq``).

    ``activations`` maps each tensor an int8 op reads or writes to its uint8
    ``(scale, zero_point)``, calibrated once; ``keep_float`` names the ops (by output
    tensor) left in float32; ``calibration`` records how (method, captures, crops, the
    ``onnx`` version), so what is stored says how it was made; ``rewrites`` name the
    rewrites of the int8 form (``_repair.INT8_REWRITES``), applied in order.
    """

    activations: tuple[tuple[str, float, int], ...]
    calibration: tuple[tuple[str, str], ...]
    keep_float: tuple[str, ...] = ()
    rewrites: tuple[str, ...] = ()

    def ranges(self) -> dict[str, tuple[float, int]]:
        return {name: (scale, zero) for name, scale, zero in self.activations}


@dataclass(frozen=True, slots=True)
class ModelFile:
    """One file of a pack as it sits in the cache, after any repair."""

    name: str
    sha256: str
    size: int
    source: PackageSource | None
    repair: Literal["fold-dequantize"] | None = None
    #: Exact graph rewrites after the repair (``_repair.REWRITES``): the same function, run faster.
    rewrites: tuple[str, ...] = ()
    #: Executed in int8 (after the rewrites): the calibrated activation ranges, and how.
    int8: Int8Execution | None = None


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """A threshold and the false match rate it promises, with its evidence.

    ``fmr`` is the target; ``fmr_measured`` what the threshold gave on the
    calibration data; ``fmr_upper`` a 95 % upper confidence bound on it (rule
    of three when no false match was seen). ``fnmr`` is the false non-match
    rate there, on the same data. ``fmr`` is between unrelated people;
    ``relatives_fmr`` is what the threshold gave between blood relatives
    (``relatives_pairs`` image pairs of related people), stated apart because
    it is far higher (benchmarks/conditions.py; None where not measured).
    """

    name: str
    threshold: float
    fmr: float
    fmr_measured: float
    fmr_upper: float
    fnmr: float
    dataset: str
    genuine_pairs: int
    impostor_pairs: int
    calibrated: bool = True
    relatives_fmr: float | None = None
    relatives_pairs: int = 0

    @classmethod
    def uncalibrated(cls, threshold: float) -> OperatingPoint:
        """A caller's own threshold: allowed, but reported as promising nothing."""
        nan = float("nan")
        return cls("custom", threshold, nan, nan, nan, nan, "none", 0, 0, calibrated=False)

    @property
    def description(self) -> str:
        """The promise in words: FMR between unrelated people, and between relatives apart.

        For the household point (``relatives:household``) ``fmr`` is the bound between
        relatives and ``fmr_measured`` the rate between unrelated people."""
        if not self.calibrated:
            return f"uncalibrated threshold {self.threshold:.4f}: no false match rate is promised"
        n = self.relatives_pairs
        if self.name.endswith("household") and self.relatives_fmr is not None:
            return (
                f"operating point {self.name!r}: FMR at most {self.fmr:.0e} between blood relatives "
                f"(95 % bound; {self.relatives_fmr:.1%} of {n:,} LFW relative pairs matched), "
                f"{self.fmr_measured:.1e} between unrelated people"
            )
        text = f"operating point {self.name!r}: FMR {self.fmr:.0e} between unrelated people"
        if self.relatives_fmr is not None and n:
            text += (
                f"; between blood relatives far higher: {self.relatives_fmr:.1%} of {n:,} LFW "
                "relative pairs matched"
            )
        else:
            text += "; between blood relatives far higher (not measured at this threshold; docs/accuracy.md)"
        return text + " (use 'relatives:household', Profile.for_relatives(), where relatives are enrolled)"


@dataclass(frozen=True, slots=True)
class ConditionPoints:
    """Operating points for captures under one condition (``"grayscale"``: grayscale or
    infrared captures), named ``condition:point``, with the embedding space they were
    calibrated in (they are refused in any other: a new revision must recalibrate)."""

    condition: str
    embedding_space: str
    operating_points: tuple[OperatingPoint, ...]
    #: The quality-gate settings the points were calibrated under (``QualityPolicy`` fields).
    quality: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CalibratedFor:
    """The capture conditions the operating points were calibrated on, as quality bounds
    (each admits ``admitted`` of the calibration captures; ``colour``: grayscale captures
    were not among them). ``faceverify calibrate`` warns when a deployer's captures fall
    outside; the default quality gate refuses them."""

    bounds: dict[str, float]
    admitted: float
    colour: bool
    dataset: str


@dataclass(frozen=True, slots=True)
class SessionIdentity:
    """The live session's same-face cosines for one embedding space (``ChallengePolicy``'s
    ``same_face``, ``other_face`` and ``same_face_floor``), how they were chosen and what
    they give on the calibration data: a frame counts as the tracked face at ``same_face``
    (impostor pairs at or above: ``same_face_fmr``), and is another face below
    ``other_face`` with the baseline and the last frame read (genuine pairs below:
    ``other_face_fnmr``)."""

    embedding_space: str
    same_face: float
    other_face: float
    same_face_floor: float
    same_face_fmr: float
    other_face_fnmr: float
    dataset: str
    rule: str


def find_operating_point(points: Sequence[OperatingPoint], name: str, owner: str) -> OperatingPoint:
    """The operating point called ``name``; a ConfigurationError naming those ``owner`` has."""
    for op in points:
        if op.name == name:
            return op
    known = ", ".join(op.name for op in points) or "none"
    raise ConfigurationError(f"{owner} has no operating point {name!r} (has: {known})")


@dataclass(frozen=True, slots=True)
class DetectorSpec:
    """The detector and how it is run.

    ``upscale`` (revision 2): a capture smaller than the detector's fixed input
    is enlarged to fill it (bicubic) instead of being placed at its own size.
    YuNet places landmarks from a stride-8 grid, so on a small face they move by
    several pixels from one scale to another, and the aligned crop with them:
    enlarging LFW's 250 px captures cut FNMR at FMR 1e-5 from 4.60 % to 3.65 %
    (both with mirror views; docs/accuracy.md), at the price of a 640 x 640 run
    for every capture.

    ``canvas`` + ``refine`` (revision 3) buy that precision for the face alone:
    the capture is searched on a small canvas (its longer side ``canvas`` px,
    never scaled below ``min_scale`` so that a face of the quality gate's
    minimum size stays findable), then each face is detected again on a crop
    around it enlarged to ``refine.size`` px (docs/performance.md). Faces too
    small for the quality gate stay too small: it measures them in the
    capture's own pixels.
    """

    kind: Literal["yunet", "insightface"]
    file: str
    input_size: int
    score_threshold: float
    upscale: bool = False
    #: Revision 3: the capture scaled so its longer side is ``canvas`` px (never
    #: below ``min_scale``; at most ``input_size``) on a graph with a dynamic input,
    #: then each face's landmarks placed again on an enlarged crop (``refine``).
    canvas: int | None = None
    min_scale: float = 0.4
    refine: Refinement | None = None


@dataclass(frozen=True, slots=True)
class RecognizerSpec:
    """The recognizer and how it is fed.

    ``mirror``: the embedding is the renormalised sum of the crop's and its
    mirror image's, which averages out left/right asymmetries of pose and light
    (one more inference per capture).
    """

    kind: Literal["onnx", "insightface"]
    file: str
    dim: int
    input: InputSpec
    alignment: Literal["arcface-5pt"]
    mirror: bool = False
    #: With ``mirror``: a probe's mirror image is embedded only when the crop alone
    #: scores within this distance of the threshold (:class:`~faceverify._pipeline._pipeline.Probe`);
    #: chosen on LFW so that decisions agree with both views' (``benchmarks/speed_band.py``).
    #: It changes no embedding and no operating point. None: always both views.
    mirror_band: float | None = None


@dataclass(frozen=True, slots=True)
class Licence:
    spdx: str
    restricted: bool
    notice: str


@dataclass(frozen=True, slots=True)
class Pack:
    """What every pack has: an id, a licence and verified files. The installer
    (:mod:`._install`) needs nothing more, so it takes any pack kind."""

    id: str
    title: str
    licence: Licence
    files: tuple[ModelFile, ...]

    def file(self, name: str) -> ModelFile:
        for f in self.files:
            if f.name == name:
                return f
        raise ModelError(f"pack {self.id} names no file {name!r}")

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def require_licence(self, accepted: bool) -> None:
        """Refuse a restricted pack unless its licence was explicitly acknowledged."""
        if self.licence.restricted and not accepted:
            raise LicenceNotAcceptedError(
                f"pack {self.id!r} is under a restricted licence ({self.licence.spdx}): "
                f"{self.licence.notice} Pass accept_licence=True (--accept-licence) to acknowledge it."
            )


def embedding_space(pack_id: str, revision: int) -> str:
    """``pack_id`` for revision 1 (what templates recorded before revisions), else ``id@revision``."""
    return pack_id if revision == 1 else f"{pack_id}@{revision}"


@dataclass(frozen=True, slots=True)
class TemplatePoints:
    """Operating points for templates of ``images`` enrolment images, scored by their mean.

    The renormalised mean of several captures is a better template than any one
    of them, but its scores have their own distribution: an impostor's score
    against a mean differs from one against a single image, so the threshold
    that keeps a false match rate is calibrated for each template size.
    """

    images: int
    rule: Literal["mean"]
    operating_points: tuple[OperatingPoint, ...]


@dataclass(frozen=True, slots=True)
class ModelPack(Pack):
    """A recognition pack's manifest, parsed (detector + recognizer).

    ``revision`` goes up whenever anything that changes the embeddings changes:
    the files, how detection, alignment or the recognizer is run. Templates
    record :attr:`embedding_space`, so a template made by an earlier revision is
    known to need re-enrolment instead of being scored against incomparable
    embeddings at thresholds calibrated for others.
    """

    detector: DetectorSpec
    recognizer: RecognizerSpec
    operating_points: tuple[OperatingPoint, ...] = field(default=())
    revision: int = 1
    template_points: tuple[TemplatePoints, ...] = field(default=())
    condition_points: tuple[ConditionPoints, ...] = field(default=())
    calibrated_for: CalibratedFor | None = None
    #: The live session's same-face cosines, calibrated for this revision (None: not calibrated).
    session_identity: SessionIdentity | None = None

    def template_point(self, name: str, *, images: int) -> OperatingPoint | None:
        """The point ``name`` for a mean template of ``images`` images, if the pack states one.

        Points are stated only where the calibration data could support them (see
        ``benchmarks/improve.py``); the caller falls back to a rule that keeps the
        single-image point's promise.
        """
        for tp in self.template_points:
            if tp.images == images:
                return next((op for op in tp.operating_points if op.name == name), None)
        return None

    @property
    def embedding_space(self) -> str:
        """What templates record: embeddings are comparable only within one space."""
        return embedding_space(self.id, self.revision)

    def operating_point(self, name: str) -> OperatingPoint:
        """The point ``name``; ``condition:name`` for a condition's own points (``grayscale:default``).

        A condition's points calibrated in another embedding space (another
        revision) are refused, never applied to these embeddings.
        """
        condition, sep, _ = name.rpartition(":")
        if not sep:
            return find_operating_point(self.operating_points, name, f"pack {self.id}")
        for cp in self.condition_points:
            if cp.condition == condition:
                if cp.embedding_space != self.embedding_space:
                    raise ConfigurationError(
                        f"pack {self.id}'s {condition} operating points were calibrated for "
                        f"{cp.embedding_space!r}, not {self.embedding_space!r}: {condition} captures "
                        "are refused until they are recalibrated (benchmarks/conditions.py --write-pack)"
                    )
                return find_operating_point(cp.operating_points, name, f"pack {self.id}")
        known = ", ".join(c.condition for c in self.condition_points) or "none"
        raise ConfigurationError(f"pack {self.id} has no {condition} operating points (has: {known})")


@dataclass(frozen=True, slots=True)
class LivenessSpec:
    """A passive presentation-attack model: one face crop in, class scores out.

    The crop is the detector's face box scaled ``box_scale`` times about its
    centre (kept inside the image), resized to ``size``; pixels are fed raw or
    normalised per ``input``; the output is softmaxed and ``live_class`` is the
    probability that the face is live.
    """

    kind: Literal["onnx-softmax"]
    file: str
    input: InputSpec
    box_scale: float
    live_class: int


@dataclass(frozen=True, slots=True)
class LivenessPack(Pack):
    """A pack holding one passive liveness model, used beside a recognition pack."""

    liveness: LivenessSpec


_SHA256 = re.compile(r"[0-9a-f]{64}")
_FILE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")


def _pinned(value: Any, what: str) -> str:
    """A digest a manifest pins: 64 lowercase hex digits, or the manifest is malformed."""
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise ValueError(f"{what} must be a SHA-256 of 64 lowercase hex digits")
    return value


def _plain_name(value: Any, what: str) -> str:
    """A pack id or file name becomes a path in the cache: one plain component, never ``..`` or ``/``."""
    if not isinstance(value, str) or not _FILE_NAME.fullmatch(value):
        raise ValueError(f"{what} must be a plain file name (letters, digits, . _ -)")
    return value


def _source(src: dict[str, Any]) -> PackageSource:
    source = PackageSource(**src)
    _pinned(source.sha256, "a package's sha256")
    _pinned(source.member_sha256, "a package member's sha256")
    return source


def _common(data: dict[str, Any]) -> dict[str, Any]:
    """The fields every pack kind has (see :class:`Pack`)."""
    files = tuple(
        ModelFile(
            name=_plain_name(f["name"], "a file's name"),
            sha256=_pinned(f["sha256"], "a file's sha256"),
            size=int(f["size"]),
            source=_source(f["source"]) if f.get("source") else None,
            repair=f.get("repair"),
            rewrites=_rewrites(f),
            int8=_int8(f),
        )
        for f in data["files"]
    )
    return {
        "id": _plain_name(data["id"], "a pack id"),
        "title": data["title"],
        "licence": Licence(**data["licence"]),
        "files": files,
    }


def _recognizer(rec: dict[str, Any]) -> RecognizerSpec:
    return RecognizerSpec(
        kind=rec["kind"],
        file=rec["file"],
        dim=int(rec["dim"]),
        input=InputSpec(**rec["input"]),
        alignment=rec["alignment"],
        mirror=_flag(rec, "mirror"),
        mirror_band=_band(rec),
    )


def _band(rec: dict[str, Any]) -> float | None:
    value = rec.get("mirror_band")
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value < 1.0:
        raise ValueError(f"mirror_band must be a number in [0, 1), not {value!r}")
    if not rec.get("mirror"):
        raise ValueError("mirror_band needs mirror views")
    return float(value)


def _operating_points(points: list[dict[str, Any]]) -> tuple[OperatingPoint, ...]:
    return tuple(OperatingPoint(**op) for op in points)


def _flag(spec: dict[str, Any], key: str) -> bool:
    """An optional true/false setting; anything else is malformed (``"no"`` would be truthy)."""
    value = spec.get(key, False)
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false, not {value!r}")
    return value


def _rewrites(f: dict[str, Any]) -> tuple[str, ...]:
    from ._repair import REWRITES

    names = f.get("rewrites", [])
    if not isinstance(names, list) or any(n not in REWRITES for n in names):
        raise ValueError(f"rewrites must be a list of {sorted(REWRITES)}, not {names!r}")
    if names and f.get("repair") != "fold-dequantize":
        raise ValueError("rewrites apply after the fold-dequantize repair")
    return tuple(names)


def _int8(f: dict[str, Any]) -> Int8Execution | None:
    spec = f.get("int8")
    if spec is None:
        return None
    if f.get("repair") != "fold-dequantize":
        raise ValueError("int8 execution applies after the fold-dequantize repair")
    activations = []
    for name, (scale, zero) in spec["activations"].items():
        if not (isinstance(scale, float) and scale > 0 and isinstance(zero, int) and 0 <= zero <= 255):
            raise ValueError(f"an int8 activation range needs a scale > 0 and a uint8 zero point: {name!r}")
        activations.append((str(name), scale, zero))
    if not activations:
        raise ValueError("int8 execution needs the calibrated activation ranges")
    calibration = tuple((str(k), str(v)) for k, v in spec["calibration"].items())
    keep_float = spec.get("keep_float", [])
    if not isinstance(keep_float, list) or not all(isinstance(k, str) for k in keep_float):
        raise ValueError(f"keep_float must be a list of tensor names, not {keep_float!r}")
    from ._repair import INT8_REWRITES

    rewrites = spec.get("rewrites", [])
    if not isinstance(rewrites, list) or any(n not in INT8_REWRITES for n in rewrites):
        raise ValueError(f"int8 rewrites must be a list of {sorted(INT8_REWRITES)}, not {rewrites!r}")
    return Int8Execution(tuple(activations), calibration, tuple(keep_float), tuple(rewrites))


def detector_spec(det: dict[str, Any], kind: Literal["yunet", "insightface"]) -> DetectorSpec:
    """A manifest's ``detector`` object (any pack layout); malformed settings raise ValueError/KeyError."""
    return DetectorSpec(
        kind=kind,
        file=det["file"],
        input_size=int(det["input_size"]),
        score_threshold=float(det["score_threshold"]),
        upscale=_flag(det, "upscale"),
        canvas=int(det["canvas"]) if det.get("canvas") is not None else None,
        min_scale=float(det.get("min_scale", 0.4)),
        refine=_refinement(det),
    )


def _refinement(det: dict[str, Any]) -> Refinement | None:
    spec = det.get("refine")
    if spec is None:
        return None
    size, margin = int(spec["size"]), float(spec["margin"])
    if size % 32 or size <= 0 or margin < 1.0:
        raise ValueError(f"refine needs a size that is a multiple of 32 and a margin >= 1, not {spec!r}")
    return Refinement(size=size, margin=margin)


def _revision(data: dict[str, Any]) -> int:
    value = data.get("revision", 1)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"revision must be a positive integer, not {value!r}")
    return value


def _template_points(t: dict[str, Any]) -> TemplatePoints:
    if t["rule"] != "mean":
        raise ValueError(f"unknown template rule {t['rule']!r}")
    return TemplatePoints(int(t["images"]), "mean", _operating_points(t["operating_points"]))


def _condition_points(c: dict[str, Any]) -> ConditionPoints:
    points = _operating_points(c["operating_points"])
    quality = {str(k): float(v) for k, v in c.get("quality", {}).items()}
    return ConditionPoints(str(c["condition"]), str(c["embedding_space"]), points, quality)


def _calibrated_for(c: dict[str, Any] | None) -> CalibratedFor | None:
    if c is None:
        return None
    bounds = {str(k): float(v) for k, v in c["bounds"].items()}
    return CalibratedFor(bounds, float(c["admitted"]), _flag(c, "colour"), str(c["dataset"]))


def _session_identity(c: dict[str, Any] | None) -> SessionIdentity | None:
    if c is None:
        return None
    return SessionIdentity(
        embedding_space=str(c["embedding_space"]),
        same_face=float(c["same_face"]),
        other_face=float(c["other_face"]),
        same_face_floor=float(c["same_face_floor"]),
        same_face_fmr=float(c["same_face_fmr"]),
        other_face_fnmr=float(c["other_face_fnmr"]),
        dataset=str(c["dataset"]),
        rule=str(c["rule"]),
    )


def parse_manifest(data: dict[str, Any]) -> ModelPack:
    """Build a :class:`ModelPack` from its JSON form; a malformed manifest is a ModelError."""
    try:
        det, rec = data["detector"], data["recognizer"]
        return ModelPack(
            **_common(data),
            detector=detector_spec(det, det["kind"]),
            recognizer=_recognizer(rec),
            operating_points=_operating_points(data.get("operating_points", [])),
            revision=_revision(data),
            template_points=tuple(_template_points(t) for t in data.get("template_operating_points", [])),
            condition_points=tuple(_condition_points(c) for c in data.get("condition_operating_points", [])),
            calibrated_for=_calibrated_for(data.get("calibrated_for")),
            session_identity=_session_identity(data.get("session_identity")),
        )
    except (AttributeError, KeyError, TypeError, ValueError) as exc:  # a value of the wrong kind too
        raise ModelError(f"malformed model pack manifest: {exc!r}") from None


def parse_liveness_manifest(data: dict[str, Any]) -> LivenessPack:
    """Build a :class:`LivenessPack` from its JSON form; a malformed manifest is a ModelError."""
    try:
        spec = data["liveness"]
        return LivenessPack(
            **_common(data),
            liveness=LivenessSpec(
                kind=spec["kind"],
                file=spec["file"],
                input=InputSpec(**spec["input"]),
                box_scale=float(spec["box_scale"]),
                live_class=int(spec["live_class"]),
            ),
        )
    except (AttributeError, KeyError, TypeError, ValueError) as exc:  # a value of the wrong kind too
        raise ModelError(f"malformed liveness pack manifest: {exc!r}") from None


BUILTIN_PACKS = ("yunet-sface",)
DEFAULT_PACK = "yunet-sface"
#: Packs of a single passive liveness model, opt-in (none is a default).
BUILTIN_LIVENESS_PACKS = ("faceplugin-liveness",)


def _builtin_json(pack_id: str) -> dict[str, Any]:
    text = resources.files(__package__).joinpath("packs", f"{pack_id}.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def builtin_manifest(pack_id: str) -> ModelPack:
    if pack_id not in BUILTIN_PACKS:
        raise ModelError(f"unknown model pack {pack_id!r}; built in: {', '.join(BUILTIN_PACKS)}")
    return parse_manifest(_builtin_json(pack_id))


def builtin_liveness_manifest(pack_id: str) -> LivenessPack:
    if pack_id not in BUILTIN_LIVENESS_PACKS:
        raise ModelError(f"unknown liveness pack {pack_id!r}; built in: {', '.join(BUILTIN_LIVENESS_PACKS)}")
    return parse_liveness_manifest(_builtin_json(pack_id))


def load_manifest(path: Path) -> ModelPack:
    """A user's own pack: a directory holding ``manifest.json`` and the files it names."""
    try:
        return parse_manifest(json.loads((path / "manifest.json").read_text("utf-8")))
    except OSError as exc:
        raise ModelError(f"cannot read {path / 'manifest.json'}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path / 'manifest.json'} is not valid JSON: {exc}") from None
