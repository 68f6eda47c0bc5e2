"""Calibrate operating points on a deployer's own consented pairs.

The steps, each usable alone (the LFW benchmarks use them too):

1. :func:`embed_captures` runs every capture once through the real pipeline
   (``policy=None, select="dominant"``) and records, beside the embedding,
   what the deployed gate would have done with it: the quality measures,
   whether :class:`QualityPolicy` would refuse it, and how many comparable
   faces it holds (``select="only"`` refuses more than one).
2. :func:`pair_scores` turns pairs into genuine and impostor cosine scores.
3. :func:`operating_points` picks, for each target false match rate, the
   lowest threshold whose measured FMR does not exceed it, with a one-sided
   95 % upper confidence bound on the FMR (rule of three, ``3/n``, when no
   false match was seen; exact Clopper-Pearson otherwise).
4. :func:`write_pack_override` and :func:`plot_det` write the results.

A threshold is ``score >= threshold``. Thresholds are rounded *up* to four
decimals, so the rounded threshold never admits more impostors than the exact
one; the measured FMR and FNMR are those of the rounded threshold.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ._errors import CaptureError, ConfigurationError, FaceError
from ._models._manifest import ModelPack, OperatingPoint
from ._pipeline._capture import CaptureSource, RGBImage
from ._pipeline._detect import Detector, Face
from ._pipeline._pipeline import COMPARABLE_FACE_RATIO, FacePipeline
from ._pipeline._quality import GRAYSCALE_BELOW, Quality, QualityPolicy

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

#: The quality measures, in the column order of :attr:`Embedded.quality`.
QUALITY_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Quality))

#: The target false match rates of the named operating points.
DEFAULT_TARGETS: tuple[tuple[str, float], ...] = (
    ("convenience", 1e-4),
    ("default", 1e-5),
    ("strict", 1e-6),
)

#: How an :class:`Embedded` capture's status is coded.
STATUS_OK, STATUS_NO_FACE, STATUS_UNREADABLE = 0, 1, 2

Progress = Callable[[int, int], None]
FaceChoice = Literal["largest", "central"]


# --------------------------------------------------------------------------- embedding


class RecordingDetector:
    """A detector run at a low score floor that reports faces at ``score_threshold``.

    Every face above the inner detector's floor is kept in :attr:`last`, so one
    detection pass shows what any higher threshold would have found (greedy
    non-maximum suppression keeps a face regardless of the lower-scored faces
    around it, so filtering a low-floor run equals a run at the higher threshold).
    """

    def __init__(self, inner: Detector, score_threshold: float, choose: FaceChoice = "largest") -> None:
        self.inner = inner
        self.score_threshold = score_threshold
        self.choose = choose
        self.last: list[Face] = []

    def detect(self, image: RGBImage) -> list[Face]:
        self.last = self.inner.detect(image)
        faces = [f for f in self.last if f.score >= self.score_threshold]
        if self.choose == "central" and len(faces) > 1:
            return [central_face(faces, image.shape[1], image.shape[0])]
        return faces


def central_face(faces: Sequence[Face], width: int, height: int) -> Face:
    """Among the faces comparable in size to the largest, the one nearest the image centre.

    Datasets cropped around a labelled person (LFW) put that person in the
    centre; a bystander may be as large. Faces much smaller than the largest
    are never taken.
    """
    largest = max(f.interocular for f in faces)
    comparable = [f for f in faces if f.interocular >= COMPARABLE_FACE_RATIO * largest]

    def distance(f: Face) -> float:
        x, y, w, h = f.box
        return math.hypot(x + w / 2 - width / 2, y + h / 2 - height / 2)

    return min(comparable, key=distance)


def comparable_faces(faces: Sequence[Face], threshold: float) -> int:
    """How many faces at ``threshold`` are comparable in size to the largest (``"only"`` refuses > 1)."""
    kept = [f.interocular for f in faces if f.score >= threshold]
    if not kept:
        return 0
    largest = max(kept)
    return sum(1 for x in kept if x >= COMPARABLE_FACE_RATIO * largest)


@dataclass(frozen=True, slots=True)
class Embedded:
    """Per-capture results of one embedding pass, row ``i`` for ``keys[i]``.

    - ``embedding`` (N, D) float32: the dominant face's unit embedding; NaN rows
      where no face was acquired;
    - ``status`` (N,) int8: :data:`STATUS_OK`, :data:`STATUS_NO_FACE`, :data:`STATUS_UNREADABLE`;
    - ``quality`` (N, 9) float32: :class:`Quality` measures in :data:`QUALITY_FIELDS` order (NaN if none);
    - ``gate_refused`` (N,) bool: the default :class:`QualityPolicy` refuses the dominant face;
    - ``max_score`` (N,) float32: best detector score seen above the floor (0 if none);
    - ``sweep`` (T,) float32 detector thresholds and ``comparable`` (N, T) int16:
      comparable faces at each (0 = no face there, > 1 = ``select="only"`` refuses).
    """

    keys: tuple[str, ...]
    embedding: F32
    status: npt.NDArray[np.int8]
    quality: F32
    gate_refused: npt.NDArray[np.bool_]
    max_score: F32
    sweep: F32
    comparable: npt.NDArray[np.int16]

    @property
    def acquired(self) -> npt.NDArray[np.bool_]:
        ok: npt.NDArray[np.bool_] = self.status == STATUS_OK
        return ok

    def only_refused(self, threshold: float) -> npt.NDArray[np.bool_]:
        """Captures ``select="only"`` refuses at a swept detector threshold (several comparable faces)."""
        col = int(np.argmin(np.abs(self.sweep - threshold)))
        out: npt.NDArray[np.bool_] = self.comparable[:, col] > 1
        return out

    def refused(self, threshold: float) -> npt.NDArray[np.bool_]:
        """What the deployed path (quality gate, ``select="only"``) refuses, no face included."""
        out: npt.NDArray[np.bool_] = ~self.acquired | self.gate_refused | self.only_refused(threshold)
        return out

    def quality_column(self, name: str) -> F32:
        col: F32 = self.quality[:, QUALITY_FIELDS.index(name)]
        return col


def embed_captures(
    pipeline: FacePipeline,
    sources: Sequence[tuple[str, CaptureSource | RGBImage]],
    *,
    threshold: float | None = None,
    policy: QualityPolicy | None = None,
    sweep: Sequence[float] = (),
    choose: FaceChoice = "largest",
    progress: Progress | None = None,
) -> Embedded:
    """Embed each ``(key, source)`` once with ``pipeline.sample(policy=None, select="dominant")``.

    ``threshold`` is the detector score threshold to judge at (default: the
    pipeline detector's own); give the pipeline a detector with a lower floor to
    ``sweep`` higher thresholds from the same pass. ``choose="central"`` takes,
    among comparable faces, the one nearest the centre instead of the largest
    (for datasets labelled that way; see :func:`central_face`).
    """
    policy = policy or QualityPolicy()
    threshold = pipeline.detector.score_threshold if threshold is None else threshold
    recorder = RecordingDetector(pipeline.detector, threshold, choose)
    run = FacePipeline(
        detector=recorder, aligner=pipeline.aligner, embedder=pipeline.embedder, limits=pipeline.limits
    )
    levels = tuple(sorted({threshold, *sweep}))
    n, dim = len(sources), pipeline.embedder.dim
    emb = np.full((n, dim), np.nan, dtype=np.float32)
    status = np.zeros(n, dtype=np.int8)
    quality = np.full((n, len(QUALITY_FIELDS)), np.nan, dtype=np.float32)
    gate = np.zeros(n, dtype=bool)
    max_score = np.zeros(n, dtype=np.float32)
    comparable = np.zeros((n, len(levels)), dtype=np.int16)
    for i, (_key, source) in enumerate(sources):
        recorder.last = []
        try:
            s = run.sample(source, policy=None, select="dominant")
        except CaptureError:
            status[i] = STATUS_UNREADABLE
        except FaceError:
            status[i] = STATUS_NO_FACE
        else:
            emb[i] = s.embedding
            quality[i] = [getattr(s.quality, k) for k in QUALITY_FIELDS]
            gate[i] = bool(policy.reasons(s.quality))
        faces = recorder.last
        max_score[i] = max((f.score for f in faces), default=0.0)
        comparable[i] = [comparable_faces(faces, t) for t in levels]
        if progress is not None:
            progress(i + 1, n)
    return Embedded(
        keys=tuple(k for k, _ in sources),
        embedding=emb,
        status=status,
        quality=quality,
        gate_refused=gate,
        max_score=max_score,
        sweep=np.asarray(levels, dtype=np.float32),
        comparable=comparable,
    )


def save_embedded(path: Path, e: Embedded, **meta: str) -> None:
    """Write an :class:`Embedded` as a plain ``.npz`` (string ``meta`` stored as ``meta_<name>``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(
        tmp,
        keys=np.asarray(e.keys, dtype=str),
        embedding=e.embedding,
        status=e.status,
        quality=e.quality,
        quality_fields=np.asarray(QUALITY_FIELDS, dtype=str),
        gate_refused=e.gate_refused,
        max_score=e.max_score,
        sweep=e.sweep,
        comparable=e.comparable,
        **{f"meta_{k}": np.asarray(v) for k, v in meta.items()},  # type: ignore[arg-type]
    )
    tmp.replace(path)


def load_embedded(path: Path) -> tuple[Embedded, dict[str, str]]:
    """Read what :func:`save_embedded` wrote: the captures and their ``meta``."""
    with np.load(path, allow_pickle=False) as z:
        if tuple(str(x) for x in z["quality_fields"]) != QUALITY_FIELDS:
            raise ConfigurationError(f"{path} was written with other quality measures; delete it to re-embed")
        e = Embedded(
            keys=tuple(str(k) for k in z["keys"]),
            embedding=z["embedding"].astype(np.float32),
            status=z["status"].astype(np.int8),
            quality=z["quality"].astype(np.float32),
            gate_refused=z["gate_refused"].astype(bool),
            max_score=z["max_score"].astype(np.float32),
            sweep=z["sweep"].astype(np.float32),
            comparable=z["comparable"].astype(np.int16),
        )
        meta = {k[5:]: str(z[k]) for k in z.files if k.startswith("meta_")}
    return e, meta


def stderr_progress(label: str, every: int = 100) -> Progress:
    """A progress callback printing ``label: i/n`` on stderr every ``every`` captures."""

    def report(i: int, n: int) -> None:
        if i % every == 0 or i == n:
            sys.stderr.write(f"\r{label}: {i}/{n}" + ("\n" if i == n else ""))
            sys.stderr.flush()

    return report


# --------------------------------------------------------------------------- scores


@dataclass(frozen=True, slots=True)
class Scores:
    """Genuine and impostor cosine scores; ``impostor`` sorted descending."""

    genuine: F32
    impostor: F32
    genuine_group: npt.NDArray[np.int64]

    @classmethod
    def of(
        cls, genuine: npt.ArrayLike, impostor: npt.ArrayLike, genuine_group: npt.ArrayLike | None = None
    ) -> Scores:
        g = np.asarray(genuine, dtype=np.float32)
        imp = np.sort(np.asarray(impostor, dtype=np.float32))[::-1]
        grp = np.zeros(len(g), np.int64) if genuine_group is None else np.asarray(genuine_group, np.int64)
        return cls(g, np.ascontiguousarray(imp), grp)

    def fmr(self, threshold: float) -> tuple[int, float]:
        """False matches (impostor scores ``>= threshold``) and their rate."""
        k = int(np.searchsorted(-self.impostor, -np.float32(threshold), side="right"))
        return k, k / max(len(self.impostor), 1)

    def fnmr(self, threshold: float) -> float:
        return float(np.mean(self.genuine < threshold)) if len(self.genuine) else math.nan

    def fnmr_per_group(self, threshold: float) -> float:
        """FNMR averaged over groups (identities): each person counts once."""
        if not len(self.genuine):
            return math.nan
        miss = (self.genuine < threshold).astype(np.float64)
        groups, inverse = np.unique(self.genuine_group, return_inverse=True)
        per = np.bincount(inverse, weights=miss) / np.bincount(inverse)
        return float(per.mean()) if len(groups) else math.nan


def pair_scores(embedding: F32, i: npt.ArrayLike, j: npt.ArrayLike) -> F32:
    """Cosine of each pair ``(i[k], j[k])`` of unit embeddings (NaN where a side has none)."""
    a, b = embedding[np.asarray(i)], embedding[np.asarray(j)]
    out: F32 = np.einsum("ij,ij->i", a, b).astype(np.float32)
    return out


def all_pairs(
    embedding: F32, identity: npt.ArrayLike, valid: npt.ArrayLike | None = None, *, chunk: int = 1024
) -> Scores:
    """Every pair of distinct captures: same identity → genuine, else impostor.

    Computed as a chunked matrix product over the upper triangle; captures
    with ``valid`` False (e.g. no face) are left out.
    """
    ident = np.asarray(identity)
    keep = np.isfinite(embedding).all(axis=1) if valid is None else np.asarray(valid, bool)
    keep &= np.isfinite(embedding).all(axis=1)
    idx = np.flatnonzero(keep)
    emb, ids = embedding[idx], ident[idx]
    n = len(idx)
    gen: list[F32] = []
    grp: list[npt.NDArray[np.int64]] = []
    imp: list[F32] = []
    for r0 in range(0, n, chunk):
        r1 = min(n, r0 + chunk)
        s = emb[r0:r1] @ emb[r0:].T
        rows = np.arange(r0, r1)[:, None]
        cols = np.arange(r0, n)[None, :]
        upper = cols > rows
        same = ids[r0:r1, None] == ids[None, r0:]
        gen.append(s[upper & same])
        grp.append(np.broadcast_to(ids[r0:r1, None], s.shape)[upper & same].astype(np.int64))
        imp.append(s[upper & ~same])
    return Scores.of(
        np.concatenate(gen) if gen else [],
        np.concatenate(imp) if imp else [],
        np.concatenate(grp) if grp else [],
    )


# --------------------------------------------------------------------------- operating points


def fmr_upper_bound(false_matches: int, trials: int, confidence: float = 0.95) -> float:
    """One-sided upper confidence bound on a rate from ``false_matches`` in ``trials``.

    ``3/n`` (the rule of three) when none was seen; otherwise the exact
    Clopper-Pearson bound: the rate ``p`` at which seeing ``false_matches`` or
    fewer has probability ``1 - confidence``. The binomial tail is summed in
    log space, so no special-function library is needed. Comparisons that share
    captures are not independent, so the bound is a lower limit on the true
    uncertainty (see docs/accuracy.md).
    """
    k, n = false_matches, trials
    if n <= 0:
        return math.nan
    if k <= 0:
        return min(1.0, 3.0 / n)
    if k >= n:
        return 1.0
    alpha = 1.0 - confidence
    i = np.arange(1, k + 1, dtype=np.float64)
    log_binom = np.concatenate([[0.0], np.cumsum(np.log(n - i + 1) - np.log(i))])
    ks = np.arange(k + 1, dtype=np.float64)

    def cdf(p: float) -> float:
        terms = log_binom + ks * math.log(p) + (n - ks) * math.log1p(-p)
        top = float(terms.max())
        return math.exp(top) * float(np.exp(terms - top).sum())

    lo, hi = k / n, 1.0
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        if cdf(mid) > alpha:
            lo = mid
        else:
            hi = mid
        if hi / lo < 1 + 1e-9:
            break
    return hi


def round_up(score: float, decimals: int = 4) -> float:
    """The smallest ``decimals``-place number strictly above ``score``."""
    step = 10.0**decimals
    t = math.floor(score * step + 1.0) / step
    while t <= score:
        t += 1.0 / step
    return round(t, decimals)


def threshold_for(scores: Scores, fmr: float, decimals: int = 4) -> float:
    """The lowest (rounded) threshold whose FMR on ``scores`` is at most ``fmr``."""
    n = len(scores.impostor)
    if n == 0:
        raise ConfigurationError("no impostor pairs: cannot calibrate a false match rate")
    allowed = math.floor(fmr * n + 1e-9)
    if allowed >= n:
        return round(float(scores.impostor[-1]), decimals)
    return round_up(float(scores.impostor[allowed]), decimals)


def operating_point(name: str, scores: Scores, fmr: float, dataset: str, decimals: int = 4) -> OperatingPoint:
    t = threshold_for(scores, fmr, decimals)
    k, measured = scores.fmr(t)
    return OperatingPoint(
        name=name,
        threshold=t,
        fmr=fmr,
        fmr_measured=measured,
        fmr_upper=fmr_upper_bound(k, len(scores.impostor)),
        fnmr=scores.fnmr(t),
        dataset=dataset,
        genuine_pairs=len(scores.genuine),
        impostor_pairs=len(scores.impostor),
    )


def operating_points(
    scores: Scores, dataset: str, targets: Sequence[tuple[str, float]] = DEFAULT_TARGETS
) -> list[OperatingPoint]:
    return [operating_point(name, scores, fmr, dataset) for name, fmr in targets]


def det_curve(scores: Scores, points: int = 2000) -> tuple[F64, F64, F64]:
    """``(thresholds, fmr, fnmr)`` over the range where both rates move."""
    imp, gen = scores.impostor, np.sort(scores.genuine)
    lo = float(min(gen.min(initial=1.0), np.quantile(imp, 0.5) if len(imp) else 0.0))
    hi = float(max(imp.max(initial=-1.0), gen.max(initial=-1.0)))
    ts = np.linspace(lo, hi, points)
    fmr = np.searchsorted(-imp, -ts, side="right") / max(len(imp), 1)
    fnmr = np.searchsorted(gen, ts, side="left") / max(len(gen), 1)
    return ts, fmr.astype(np.float64), fnmr.astype(np.float64)


def plot_det(
    path: Path,
    curves: Sequence[tuple[str, Scores]],
    points: Sequence[OperatingPoint] = (),
    *,
    title: str = "DET",
) -> None:
    """Draw DET curves (FNMR against FMR, both log) to a PNG, operating points marked."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigurationError(
            "drawing a DET curve needs matplotlib: pip install 'faceverify[plots]'"
        ) from None
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=120)
    for label, s in curves:
        _, fmr, fnmr = det_curve(s)
        floor = 1.0 / max(len(s.impostor), 1)
        ok = fmr >= floor
        ax.plot(fmr[ok], np.maximum(fnmr[ok], 1e-4), label=label)
    for op in points:
        x, y = op.fmr_measured or 1.0 / max(op.impostor_pairs, 1), max(op.fnmr, 1e-4)
        ax.plot([x], [y], "o", color="black")
        ax.annotate(
            f"{op.name}\nt={op.threshold:.4f}",
            (x, y),
            textcoords="offset points",
            xytext=(6, 6),
            fontsize=8,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("false match rate (FMR)")
    ax.set_ylabel("false non-match rate (FNMR)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    if curves:
        ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    plt.close(fig)


# --------------------------------------------------------------------------- a deployer's pairs CSV


@dataclass(frozen=True, slots=True)
class Pairs:
    """A pairs CSV: distinct image paths and pairs of indices into them."""

    csv: Path
    images: tuple[Path, ...]
    first: npt.NDArray[np.int64]
    second: npt.NDArray[np.int64]
    same: npt.NDArray[np.bool_]


_TRUE, _FALSE = {"1", "true", "yes", "same"}, {"0", "false", "no", "different"}


def read_pairs(path: Path) -> Pairs:
    """Read ``path1,path2,same`` (header required; paths relative to the CSV; same is 1/0).

    Any problem is a :class:`ConfigurationError` naming the line, so the CLI exits 2.
    """
    try:
        text = path.read_text("utf-8-sig")
    except OSError as exc:
        raise ConfigurationError(f"cannot read pairs file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"{path} is not a UTF-8 CSV file") from None
    reader = csv.DictReader(text.splitlines())
    need = {"path1", "path2", "same"}
    if reader.fieldnames is None or not need <= {f.strip() for f in reader.fieldnames}:
        raise ConfigurationError(
            f"{path}: the header must name the columns path1,path2,same "
            f"(got {reader.fieldnames or 'nothing'})"
        )
    base = path.parent
    index: dict[Path, int] = {}
    a: list[int] = []
    b: list[int] = []
    same: list[bool] = []
    for line, raw in enumerate(reader, start=2):
        row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        flag = row.get("same", "").lower()
        if flag not in _TRUE | _FALSE:
            raise ConfigurationError(f"{path}, line {line}: 'same' must be 1 or 0, got {row.get('same')!r}")
        ids = []
        for col in ("path1", "path2"):
            if not row.get(col):
                raise ConfigurationError(f"{path}, line {line}: empty {col}")
            p = (base / row[col]).resolve()
            if not p.is_file():
                raise ConfigurationError(f"{path}, line {line}: no such image {row[col]!r}")
            ids.append(index.setdefault(p, len(index)))
        if ids[0] == ids[1]:
            raise ConfigurationError(f"{path}, line {line}: an image paired with itself")
        a.append(ids[0])
        b.append(ids[1])
        same.append(flag in _TRUE)
    if not a:
        raise ConfigurationError(f"{path}: no pairs")
    if not any(same) or all(same):
        raise ConfigurationError(f"{path}: need both same-person (1) and different-person (0) pairs")
    return Pairs(path, tuple(index), np.array(a), np.array(b), np.array(same, dtype=bool))


def _fingerprint(images: Sequence[Path], pack: ModelPack, threshold: float) -> str:
    h = hashlib.sha256(f"{pack.embedding_space}|{threshold}|{QUALITY_FIELDS}".encode())
    for p in images:
        st = p.stat()
        h.update(f"\n{p}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()


def embed_cached(
    pipeline: FacePipeline,
    pack: ModelPack,
    images: Sequence[Path],
    cache: Path,
    *,
    progress: Progress | None = None,
) -> tuple[Embedded, bool]:
    """Embed ``images`` once: reuse ``cache`` (.npz) while the images, pack and detector are unchanged.

    Returns the captures and whether the cache was used.
    """
    threshold = pipeline.detector.score_threshold
    fp = _fingerprint(images, pack, threshold)
    if cache.exists():
        try:
            e, meta = load_embedded(cache)
        except (OSError, ValueError, KeyError, ConfigurationError):
            pass
        else:
            if meta.get("fingerprint") == fp and len(e.keys) == len(images):
                return e, True
    e = embed_captures(pipeline, [(str(p), p) for p in images], progress=progress)
    save_embedded(cache, e, fingerprint=fp, pack=pack.id, detector_threshold=str(threshold))
    return e, False


@dataclass(frozen=True, slots=True)
class Calibration:
    """What :func:`calibrate` found: the operating points and the evidence behind them."""

    pack: str
    dataset: str
    points: tuple[OperatingPoint, ...]
    scores: Scores
    pairs: int
    pairs_unscored: int
    images: int
    images_without_face: int
    images_refused: int
    cached: bool
    warnings: tuple[str, ...]

    def summary(self) -> dict[str, Any]:
        return {
            "pack": self.pack,
            "dataset": self.dataset,
            "images": self.images,
            "images_without_face": self.images_without_face,
            "images_refused_by_deployed_path": self.images_refused,
            "pairs": self.pairs,
            "pairs_unscored": self.pairs_unscored,
            "genuine_pairs": len(self.scores.genuine),
            "impostor_pairs": len(self.scores.impostor),
            "embeddings_from_cache": self.cached,
            "operating_points": [asdict(p) for p in self.points],
            "warnings": list(self.warnings),
        }


def calibrate(
    pairs: Pairs,
    pipeline: FacePipeline,
    pack: ModelPack,
    *,
    cache: Path,
    targets: Sequence[tuple[str, float]] = DEFAULT_TARGETS,
    gated: bool = False,
    policy: QualityPolicy | None = None,
    progress: Progress | None = None,
) -> Calibration:
    """Operating points from a pairs file: embed once, score the pairs, pick thresholds.

    Pairs with a side where no face was found are left out (and counted). With
    ``gated``, so are pairs with a side the deployed path refuses (quality gate,
    several comparable faces): calibrate on what will actually be scored.
    """
    e, cached = embed_cached(pipeline, pack, pairs.images, cache, progress=progress)
    e = regate(e, policy or QualityPolicy())  # the gate as it is now, not as when cached
    threshold = pipeline.detector.score_threshold
    usable = e.acquired & ~e.refused(threshold) if gated else e.acquired
    scored = usable[pairs.first] & usable[pairs.second]
    s = pair_scores(e.embedding, pairs.first[scored], pairs.second[scored])
    same = pairs.same[scored]
    group = pairs.first[scored][same]
    scores = Scores.of(s[same], s[~same], group)
    warnings = []
    if not len(scores.genuine) or not len(scores.impostor):
        raise ConfigurationError(
            "after leaving out captures without a usable face, no "
            + ("same-person" if not len(scores.genuine) else "different-person")
            + " pair is left to calibrate on"
        )
    for name, fmr in targets:
        if len(scores.impostor) * fmr < 3.0:
            warnings.append(
                f"{name}: {len(scores.impostor):,} impostor pairs cannot show FMR {fmr:.0e} "
                f"(with no false match at all, the 95 % bound is {3 / len(scores.impostor):.1e}); "
                f"you need at least {math.ceil(3 / fmr):,}"
            )
    warnings += condition_warnings(e, pack)
    dataset = f"{pairs.csv.name}: {len(e.keys)} images" + (", quality-gated" if gated else "")
    points = tuple(operating_point(name, scores, fmr, dataset) for name, fmr in targets)
    return Calibration(
        pack=pack.id,
        dataset=dataset,
        points=points,
        scores=scores,
        pairs=len(pairs.same),
        pairs_unscored=int((~scored).sum()),
        images=len(e.keys),
        images_without_face=int((~e.acquired).sum()),
        images_refused=int(e.refused(threshold).sum()),
        cached=cached,
        warnings=tuple(warnings),
    )


def condition_warnings(e: Embedded, pack: ModelPack, *, at_least: float = 0.05) -> list[str]:
    """Where the deployer's captures fall outside what the pack's points were calibrated on.

    One warning per condition shared by at least ``at_least`` of the captures
    with a face: grayscale/infrared input (the pack's colour points never apply
    to it), and each quality bound of ``pack.calibrated_for`` (light from one
    side, deep shadow, a flat image, a face too close to the frame edge). The
    points calibrated here do hold for such captures, but the default gate
    refuses them: deploy with a policy that admits them (and these points).
    """
    cal = pack.calibrated_for
    ok = e.acquired
    n = int(ok.sum())
    if cal is None or n == 0:
        return []
    out = []
    grey = float(np.mean(e.quality_column("colourfulness")[ok] < GRAYSCALE_BELOW))
    if cal.colour and grey >= at_least:
        out.append(
            f"{grey:.0%} of your captures are grayscale or infrared; {pack.id}'s operating points were "
            "calibrated on colour captures only, and the default profiles refuse grayscale: use "
            "door-access-ir / Profile.for_grayscale() (the pack's grayscale points), or deploy the points "
            "calibrated here with QualityPolicy(grayscale=True)"
        )
    words = {
        "light_asymmetry": "light from one side",
        "shadow": "deep shadow on the face",
        "dynamic_range": "a flat (low-contrast) image",
        "padding": "the face too close to the frame edge",
    }
    for bound, limit in cal.bounds.items():
        side, _, measure = bound.partition("_")
        if measure not in QUALITY_FIELDS:
            continue
        col = e.quality_column(measure)[ok]
        share = float(np.mean(col > limit if side == "max" else col < limit))
        if share >= at_least:
            out.append(
                f"{share:.0%} of your captures show {words.get(measure, measure)} ({measure} "
                f"{'above' if side == 'max' else 'below'} {limit:g}), outside what {pack.id}'s points were "
                f"calibrated on ({cal.dataset}); the default quality gate refuses them"
            )
    return out


def regate(e: Embedded, policy: QualityPolicy) -> Embedded:
    """``e`` with ``gate_refused`` recomputed from its stored quality under ``policy``."""
    gate = np.zeros(len(e.keys), dtype=bool)
    for i in np.flatnonzero(e.acquired):
        q = Quality(**{k: float(v) for k, v in zip(QUALITY_FIELDS, e.quality[i], strict=True)})
        gate[i] = bool(policy.reasons(q))
    return Embedded(e.keys, e.embedding, e.status, e.quality, gate, e.max_score, e.sweep, e.comparable)


def write_pack_override(path: Path, pack: ModelPack, points: Iterable[OperatingPoint], **extra: Any) -> None:
    """A pack override: the pack and the operating points that replace the manifest's.

    ``{"id": ..., "embedding_space": ..., "operating_points": [...], "calibration": {...}}``
    -- the ``operating_points`` entries have exactly the manifest's fields; the
    embedding space (pack id and revision) says which embeddings they hold for.
    """
    ops = []
    for op in points:
        d = asdict(op)
        d.pop("calibrated")
        ops.append(d)
    data = {
        "id": pack.id,
        "embedding_space": pack.embedding_space,
        "operating_points": ops,
        "calibration": extra,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", "utf-8")


def load_pack_override(pack: ModelPack, path: Path) -> ModelPack:
    """``pack`` with its operating points replaced by those of an override file.

    The pack's mean-template points are dropped: they were calibrated on the
    pack's data, not the deployer's, so multi-image templates fall back to the
    every-member rule at the override's points. An override made for another
    revision of the pack (other embeddings) is refused.
    """
    from dataclasses import replace

    try:
        data = json.loads(path.read_text("utf-8"))
        space = data.get("embedding_space", data.get("id"))
        if space != pack.embedding_space:
            raise ConfigurationError(
                f"{path} calibrates {space!r}, not {pack.embedding_space!r}: recalibrate"
            )
        points = tuple(OperatingPoint(**op) for op in data["operating_points"])
    except OSError as exc:
        raise ConfigurationError(f"cannot read pack override {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigurationError(f"{path} is not a pack override: {exc!r}") from None
    return replace(pack, operating_points=points, template_points=())
