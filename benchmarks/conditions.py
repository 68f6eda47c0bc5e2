"""Does the stated FMR hold under real capture conditions? Relit, grayscale, infrared-like,
tightly cropped and flat captures of held-out LFW identities, and relatives.

    python benchmarks/conditions.py embed        # embed every condition once (cached; slow)
    python benchmarks/conditions.py              # tables: benchmarks/out/conditions.{json,md}
    python benchmarks/conditions.py --write-pack # also state grayscale and relatives points in the pack

Works for any revision of a pack: caches are per embedding space
(``benchmarks/out/conditions-<space>-<condition>.npz``), so a new revision is
embedded afresh by the same command.

Protocol: LFW's people are split in two halves (seed 0, as ``transfer.py``).
For each condition (``_conditions_data.CONDITIONS``), ``PROBES`` images of each
half are transformed in memory and embedded through the real pipeline. The
conditional operating points and the gate's bounds are chosen on half A only;
every figure reported is measured on half B: condition probes against every
clean image of another person of half B, and condition probes against each
other (both sides under the condition, as with one infrared camera for
enrolment and verification). A refused capture is a non-match and stays in the
denominator; FTA is the share of condition captures refused.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from _conditions_data import CONDITIONS
from _lfw import LFW, LFW_ROOT, OUT, floor_pipeline, image_keys, load_lfw
from PIL import Image

from faceverify import QualityPolicy
from faceverify._calibrate import (
    DEFAULT_TARGETS,
    Embedded,
    Scores,
    all_pairs,
    embed_captures,
    fmr_upper_bound,
    load_embedded,
    operating_point,
    regate,
    round_up,
    save_embedded,
    stderr_progress,
    threshold_for,
)
from faceverify._models._manifest import OperatingPoint, builtin_manifest
from faceverify._pipeline._quality import GRAYSCALE_BELOW

ROOT = Path(__file__).resolve().parents[1]
PROBES = 1000  # per half and condition (with the pooled rows, enough to resolve `strict`, 1e-6)
SEED = 0
BAR = 3.0
#: The two pairings of a condition's captures: against clean images, and against each other
#: (one camera and one light for enrolment and verification).
PAIRINGS = {False: "vs clean", True: "both under condition"}
POOLED = "pooled"


def people(root: Path = LFW_ROOT) -> tuple[list[str], npt.NDArray[np.int64], int]:
    """LFW's image keys (sorted, as the cache), each image's person, and the number of people."""
    keys = image_keys(root)
    who = [k.split("/", 1)[0] for k in keys]
    names = sorted(set(who))
    pos = {n: i for i, n in enumerate(names)}
    return keys, np.array([pos[w] for w in who], dtype=np.int64), len(names)


def halves(identity: npt.NDArray[np.int64], n_people: int, seed: int = SEED) -> npt.NDArray[np.bool_]:
    """True for images whose person falls in half A (people split, not images)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_people)
    in_a = np.zeros(n_people, dtype=bool)
    in_a[order[: n_people // 2]] = True
    out: npt.NDArray[np.bool_] = in_a[identity]
    return out


def probe_indices(
    identity: npt.NDArray[np.int64], n_people: int, probes: int = PROBES
) -> npt.NDArray[np.int64]:
    """``probes`` images of each half, people with several images first (they give genuine pairs)."""
    a = halves(identity, n_people)
    rng = np.random.default_rng(SEED + 1)
    counts = np.bincount(identity)[identity]
    out = []
    for side in (a, ~a):
        idx = np.flatnonzero(side)
        multi, single = idx[counts[idx] > 1], idx[counts[idx] == 1]
        take = rng.permutation(multi)[:probes]
        if len(take) < probes:
            take = np.concatenate([take, rng.permutation(single)[: probes - len(take)]])
        out.append(np.sort(take))
    return np.concatenate(out)


def space(pack: str) -> str:
    return builtin_manifest(pack).embedding_space.replace("@", "-r")


def condition_cache(pack: str, name: str) -> Path:
    return OUT / f"conditions-{space(pack)}-{name}.npz"


def subset(e: Embedded, rows: list[int]) -> Embedded:
    r = np.asarray(rows, dtype=np.int64)
    return Embedded(
        tuple(e.keys[i] for i in r),
        e.embedding[r],
        e.status[r],
        e.quality[r],
        e.gate_refused[r],
        e.max_score[r],
        e.sweep,
        e.comparable[r],
    )


def embed_condition(name: str, pack: str, threads: int = 1, probes: int = PROBES) -> Embedded:
    """The condition's probes embedded once through the real pipeline (cached)."""
    path = condition_cache(pack, name)
    all_keys, identity, n_people = people()
    rows_of = probe_indices(identity, n_people, probes)
    keys = [all_keys[i] for i in rows_of]
    if path.exists():
        e, _ = load_embedded(path)
        rows = {k: i for i, k in enumerate(e.keys)}
        if all(k in rows for k in keys):  # a cache of more probes holds these (same draw, longer)
            return regate(subset(e, [rows[k] for k in keys]), QualityPolicy())
    pipe, threshold = floor_pipeline(pack, threads)
    transform = CONDITIONS[name]

    def sources() -> list[tuple[str, npt.NDArray[np.uint8]]]:
        out = []
        for i, k in zip(rows_of, keys, strict=True):
            with Image.open(LFW_ROOT / k) as im:
                rgb = np.asarray(im.convert("RGB"))
            out.append((k, transform(rgb, np.random.default_rng(int(i)))))
        return out

    e = embed_captures(
        pipe,
        sources(),
        threshold=threshold,
        sweep=(threshold,),
        choose="central",
        progress=stderr_progress(name, every=300),
    )
    save_embedded(path, e, condition=name, pack=pack)
    return e


def cmd_embed(args: argparse.Namespace) -> None:
    """Embed what is missing. Several processes may share the work: each condition is
    taken by one of them (a ``.lock`` file beside its cache while it is embedded)."""
    if not args.only or "clean" in args.only:
        load_lfw(args.pack, threads=args.threads)
    for name in args.only or CONDITIONS:
        if name == "clean":
            continue
        lock = condition_cache(args.pack, name).with_suffix(".lock")
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            lock.touch(exist_ok=False)
        except FileExistsError:
            print(f"{name}: being embedded by another process ({lock}); skipped", file=sys.stderr)
            continue
        try:
            embed_condition(name, args.pack, args.threads, args.probes)
        finally:
            lock.unlink()


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("command", nargs="?", default="report", choices=("embed", "report"))
    ap.add_argument("--pack", default="yunet-sface")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", action="append", help="embed only these conditions (repeatable; 'clean' = LFW)")
    ap.add_argument("--write-pack", action="store_true")
    ap.add_argument(
        "--probes",
        type=int,
        default=PROBES,
        help="images per half and condition (fewer: a prefix of one draw)",
    )
    args = ap.parse_args()
    if args.command == "embed":
        cmd_embed(args)
    else:
        cmd_report(args)


#: Blood relatives among LFW's people (public figures; relations as publicly documented).
#: Spouses are not relatives here: the question is how alike related faces are.
FAMILIES: dict[str, tuple[str, ...]] = {
    "Bush (George H. W.; sons George W. and Jeb; Jeb's daughter Noelle)": (
        "George_HW_Bush",
        "George_W_Bush",
        "Jeb_Bush",
        "Noelle_Bush",
    ),
    "Williams (sisters Serena and Venus; their mother Oracene)": (
        "Serena_Williams",
        "Venus_Williams",
        "Oracene_Williams",
    ),
    "Schumacher (brothers Michael and Ralf)": ("Michael_Schumacher", "Ralf_Schumacher"),
    "McEnroe (brothers John and Patrick)": ("John_McEnroe", "Patrick_McEnroe"),
    "Murdoch (Rupert; sons Lachlan and James)": ("Rupert_Murdoch", "Lachlan_Murdoch", "James_Murdoch"),
    "Hussein (Saddam; sons Uday and Qusai; daughter Raghad)": (
        "Saddam_Hussein",
        "Uday_Hussein",
        "Qusai_Hussein",
        "Raghad_Saddam_Hussein",
    ),
    "Windsor (Elizabeth II; son Charles; grandsons William and Harry)": (
        "Queen_Elizabeth_II",
        "Prince_Charles",
        "Prince_William",
        "Prince_Harry",
    ),
    "Kennedy (Edward; niece Caroline, nephews John F. Jr and Robert F. Jr)": (
        "Edward_Kennedy",
        "Caroline_Kennedy",
        "John_F_Kennedy_Jr",
        "Robert_F_Kennedy_Jr",
    ),
    "Sheen (Martin; son Charlie)": ("Martin_Sheen", "Charlie_Sheen"),
    "Douglas (Kirk; son Michael)": ("Kirk_Douglas", "Michael_Douglas"),
    "Coppola (Francis Ford; son Roman; nephew Nicolas Cage)": (
        "Francis_Ford_Coppola",
        "Roman_Coppola",
        "Nicolas_Cage",
    ),
    "Osbourne (Ozzy; children Jack and Kelly)": ("Ozzy_Osbourne", "Jack_Osbourne", "Kelly_Osbourne"),
    "Fonda (Jane; niece Bridget)": ("Jane_Fonda", "Bridget_Fonda"),
    "Hawn (Goldie; daughter Kate Hudson)": ("Goldie_Hawn", "Kate_Hudson"),
    "Paltrow (Bruce Paltrow and Blythe Danner; daughter Gwyneth)": (
        "Bruce_Paltrow",
        "Blythe_Danner",
        "Gwyneth_Paltrow",
    ),
    "Tyler (Steven; daughter Liv)": ("Steven_Tyler", "Liv_Tyler"),
    "Hedren (Tippi; daughter Melanie Griffith)": ("Tippi_Hedren", "Melanie_Griffith"),
    "Presley (Elvis; daughter Lisa Marie)": ("Elvis_Presley", "Lisa_Marie_Presley"),
    "Penn (brothers Sean and Chris)": ("Sean_Penn", "Chris_Penn"),
}
#: Pairs within a family that are not blood relatives (parents to each other).
NOT_RELATED = {frozenset(("Bruce_Paltrow", "Blythe_Danner"))}


def relative_pairs(lfw: LFW) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], list[dict[str, Any]]]:
    """Every image pair of two related people (indices into LFW), and the families found."""
    pos = {n: i for i, n in enumerate(lfw.names)}
    ii: list[int] = []
    jj: list[int] = []
    found = []
    for family, members in FAMILIES.items():
        present = [m for m in members if m in pos]
        n0 = len(ii)
        for a in range(len(present)):
            for b in range(a + 1, len(present)):
                if frozenset((present[a], present[b])) in NOT_RELATED:
                    continue
                ia = np.flatnonzero(lfw.identity == pos[present[a]])
                ib = np.flatnonzero(lfw.identity == pos[present[b]])
                for x in ia:
                    for y in ib:
                        ii.append(int(x))
                        jj.append(int(y))
        images = {m: int((lfw.identity == pos[m]).sum()) for m in present}
        found.append({"family": family, "images": images, "pairs": len(ii) - n0})
    return np.array(ii, dtype=np.int64), np.array(jj, dtype=np.int64), found


# --------------------------------------------------------------------------- measuring


def _rates(
    s: npt.NDArray[np.float32],
    impostor: npt.NDArray[np.bool_],
    genuine: npt.NDArray[np.bool_],
    usable: npt.NDArray[np.bool_],
    t: float,
) -> dict[str, Any]:
    """FMR and FNMR at ``t`` over every attempt; refused (not usable) attempts are non-matches."""
    hit = usable & (s >= t)
    return _rate_row(
        t,
        impostor_attempts=int(impostor.sum()),
        false_matches=int((hit & impostor).sum()),
        scored=int((usable & impostor).sum()),
        genuine_attempts=int(genuine.sum()),
        true_matches=int((hit & genuine).sum()),
    )


def _rate_row(
    t: float,
    *,
    impostor_attempts: int,
    false_matches: int,
    scored: int,
    genuine_attempts: int,
    true_matches: int,
) -> dict[str, Any]:
    n, k = impostor_attempts, false_matches
    return {
        "threshold": t,
        "impostor_attempts": n,
        "false_matches": k,
        "fmr": k / max(n, 1),
        "fmr_upper95": fmr_upper_bound(k, n),
        "fmr_scored": k / max(scored, 1),
        "genuine_attempts": genuine_attempts,
        "fnmr": 1 - true_matches / max(genuine_attempts, 1),
    }


# --------------------------------------------------------------------------- the protocol

#: Measures the gate bounds, each set where it admits ``ADMIT`` of the clean calibration captures.
GATE_MEASURES: dict[str, tuple[str, str]] = {
    "light_asymmetry": ("max", "max_light_asymmetry"),
    "shadow": ("max", "max_shadow"),
    "dynamic_range": ("min", "min_dynamic_range"),
    "padding": ("max", "max_padding"),
}
ADMIT = 0.99
#: Bounds never tighter than these. LFW holds no face near its frame edge (``padding`` is 0
#: in all 7,701 captures), so the quantile rule alone would refuse any padded crop; the
#: tight-crop condition shows no impostor-score inflation (docs/accuracy.md), so faces
#: whose crop is up to 10 % outside the capture are admitted.
LOOSEST = {"max_padding": 0.10}
#: Candidate predictors of impostor-score inflation, reported beside the gate's own.
PREDICTORS = (
    "light_asymmetry",
    "shadow",
    "dynamic_range",
    "padding",
    "colourfulness",
    "brightness",
    "sharpness",
    "detector_score",
    "interocular",
    "typicality",
)


def gate_bounds(lfw: LFW, cal: npt.NDArray[np.bool_]) -> dict[str, float]:
    """Each new bound at the ``ADMIT`` quantile of the clean captures of the calibration half,
    rounded outward (so it admits at least that share): the gate refuses what the points
    were not calibrated on, whatever caused it."""
    e = lfw.embedded
    ok = cal & e.acquired
    out = {}
    for measure, (side, field) in GATE_MEASURES.items():
        col = e.quality_column(measure)[ok].astype(np.float64)
        if side == "max":
            out[field] = max(math.ceil(float(np.quantile(col, ADMIT)) * 100) / 100, LOOSEST.get(field, 0.0))
        else:
            out[field] = math.floor(float(np.quantile(col, 1 - ADMIT)) * 100) / 100
    return out


#: What the grayscale profile adds to the colour bounds, by the same rule.
GREY_GATE_MEASURES: dict[str, tuple[str, str]] = {"detector_score": ("min", "min_detector_score")}


def grey_bounds(lfw: LFW, cal: npt.NDArray[np.bool_]) -> dict[str, float]:
    e = lfw.embedded
    ok = cal & e.acquired
    out = {}
    for measure, (_side, field) in GREY_GATE_MEASURES.items():
        col = e.quality_column(measure)[ok].astype(np.float64)
        out[field] = math.floor(float(np.quantile(col, 1 - ADMIT)) * 100) / 100
    return out


def usable(e: Embedded, policy: QualityPolicy, threshold: float) -> npt.NDArray[np.bool_]:
    """Captures the deployed path scores under ``policy`` (gate, one face, a face at all)."""
    out: npt.NDArray[np.bool_] = ~regate(e, policy).refused(threshold)
    return out


class Setup:
    """Everything measured once: clean LFW, the conditions, the halves and the probes."""

    def __init__(self, pack: str, probes: int = PROBES) -> None:
        self.pack = builtin_manifest(pack)
        self.lfw = load_lfw(pack)
        self.a = halves(self.lfw.identity, len(self.lfw.names))
        self.probes = probe_indices(self.lfw.identity, len(self.lfw.names), probes)
        self.conditions = {name: embed_condition(name, pack, probes=probes) for name in CONDITIONS}
        self.t_det = self.lfw.detector_threshold

    def side(self, half_a: bool) -> npt.NDArray[np.bool_]:
        return self.a if half_a else ~self.a

    def pairs(
        self, name: str, half_a: bool, policy: QualityPolicy, both: bool
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        """Scores, impostor, genuine and usable masks of one condition on one half.

        ``both``: condition captures against each other; else against every clean
        image of the half (the same source image never pairs with itself).
        """
        e, lfw = self.conditions[name], self.lfw
        in_half = self.side(half_a)[self.probes]
        p = self.probes[in_half]
        pe = np.nan_to_num(e.embedding[in_half])
        p_ok = usable(e, policy, self.t_det)[in_half]
        if both:
            g, ge, g_ok = p, pe, p_ok
        else:
            g = np.flatnonzero(self.side(half_a))
            ge = np.nan_to_num(lfw.embedded.embedding[g])
            g_ok = usable(lfw.embedded, policy, self.t_det)[g]
        s = (pe @ ge.T).astype(np.float32)
        pid, gid = lfw.identity[p], lfw.identity[g]
        distinct = p[:, None] != g[None, :]
        if both:
            distinct &= np.arange(len(p))[:, None] < np.arange(len(g))[None, :]
        impostor = (pid[:, None] != gid[None, :]) & distinct
        genuine = (pid[:, None] == gid[None, :]) & distinct
        ok = p_ok[:, None] & g_ok[None, :]
        return s, impostor, genuine, ok

    def clean_pairs(self, half_a: bool, policy: QualityPolicy | None) -> Scores:
        e = self.lfw.embedded
        valid = e.acquired & self.side(half_a)
        if policy is not None:
            valid &= usable(e, policy, self.t_det)
        return all_pairs(e.embedding, self.lfw.identity, valid)


def is_grey(e: Embedded) -> bool:
    """A grayscale condition: most of its captures carry no colour."""
    return float(np.mean(e.quality_column("colourfulness") < GRAYSCALE_BELOW)) > 0.5


def grey_groups(st: Setup, sides: tuple[bool, ...], grey: QualityPolicy) -> dict[str, Scores]:
    """Pairs with a grayscale side that ``grey`` admits, per grayscale condition and pairing:
    against clean images, and against each other."""
    out: dict[str, Scores] = {}
    for name, e in st.conditions.items():
        if not is_grey(e):
            continue
        for both in (False, True):
            gen: list[npt.NDArray[np.float32]] = []
            imp: list[npt.NDArray[np.float32]] = []
            for half_a in sides:
                s, impostor, genuine, ok = st.pairs(name, half_a, grey, both)
                gen.append(s[genuine & ok])
                imp.append(s[impostor & ok])
            out[f"{name} ({PAIRINGS[both]})"] = Scores.of(np.concatenate(gen), np.concatenate(imp))
    return out


def pooled(groups: dict[str, Scores]) -> Scores:
    return Scores.of(
        np.concatenate([g.genuine for g in groups.values()]),
        np.concatenate([g.impostor for g in groups.values()]),
    )


def grey_points(
    groups: dict[str, Scores], colour_points: list[OperatingPoint], dataset: str
) -> list[OperatingPoint]:
    """Grayscale points at the colour points' targets: the highest of the thresholds that each
    grayscale condition and pairing needs on its own (each calibrated with its own bound, so no
    condition is averaged away by the others), never below the colour threshold of the same
    name (the grayscale profile scores colour pairs too). Stated figures: all pairs pooled."""
    pool = pooled(groups)
    out = []
    for (n, f), c in zip(DEFAULT_TARGETS, colour_points, strict=True):
        t = max([c.threshold] + [threshold_for(g, f) for g in groups.values() if len(g.impostor)])
        k, m = pool.fmr(t)
        out.append(
            OperatingPoint(
                name=f"grayscale:{n}",
                threshold=t,
                fmr=f,
                fmr_measured=m,
                fmr_upper=fmr_upper_bound(k, len(pool.impostor)),
                fnmr=pool.fnmr(t),
                dataset=dataset,
                genuine_pairs=len(pool.genuine),
                impostor_pairs=len(pool.impostor),
            )
        )
    return out


def evaluate(
    st: Setup,
    policy: QualityPolicy,
    points: list[OperatingPoint],
    half_a: bool = False,
    grey_only: bool | None = None,
) -> dict[str, Any]:
    """Every condition of one half (B by default) through ``policy`` at ``points``, and the
    conditions pooled (``grey_only``: only the grayscale ones, or only the colour ones)."""
    rows: dict[str, Any] = {}
    clean = st.clean_pairs(half_a, None)
    e = st.lfw.embedded
    side = st.side(half_a)
    ok = usable(e, policy, st.t_det)
    clean_ok = st.clean_pairs(half_a, policy)
    n_imp = len(clean.impostor)
    n_gen = len(clean.genuine)
    rows["clean"] = {
        "fta": float(1 - ok[side & e.acquired].mean()),
        PAIRINGS[False]: {
            op.name: _rate_row(
                op.threshold,
                impostor_attempts=n_imp,
                false_matches=clean_ok.fmr(op.threshold)[0],
                scored=len(clean_ok.impostor),
                genuine_attempts=n_gen,
                true_matches=int((clean_ok.genuine >= op.threshold).sum()),
            )
            for op in points
        },
    }
    for name, ce in st.conditions.items():
        in_half = side[st.probes]
        c_ok = usable(ce, policy, st.t_det)[in_half]
        row: dict[str, Any] = {"probes": int(in_half.sum()), "fta": float(1 - c_ok.mean())}
        for both in (False, True):
            s, impostor, genuine, okp = st.pairs(name, half_a, policy, both)
            row[PAIRINGS[both]] = {op.name: _rates(s, impostor, genuine, okp, op.threshold) for op in points}
        rows[name] = row
    names = [n for n, c in st.conditions.items() if grey_only is None or is_grey(c) == grey_only]
    rows[POOLED] = pooled_row(st, policy, points, names, half_a)
    return rows


def pooled_row(
    st: Setup, policy: QualityPolicy, points: list[OperatingPoint], names: list[str], half_a: bool
) -> dict[str, Any]:
    """The captures of the conditions ``names`` of one half against each other, across
    conditions too (two people under two conditions): millions of impostor attempts, enough
    to resolve ``strict``. A capture never pairs with another variant of its own source image."""
    in_half = st.side(half_a)[st.probes]
    emb = np.concatenate([np.nan_to_num(st.conditions[n].embedding[in_half]) for n in names])
    ok = np.concatenate([usable(st.conditions[n], policy, st.t_det)[in_half] for n in names])
    src = np.tile(st.probes[in_half], len(names))
    pid = st.lfw.identity[src]
    ts = np.array([op.threshold for op in points], dtype=np.float32)
    n = len(emb)
    imp_n = gen_n = scored = 0
    false_m = np.zeros(len(ts), np.int64)
    true_m = np.zeros(len(ts), np.int64)
    for r0 in range(0, n, 1024):
        r1 = min(n, r0 + 1024)
        s = emb[r0:r1] @ emb[r0:].T
        upper = np.arange(r0, r1)[:, None] < np.arange(r0, n)[None, :]
        same = pid[r0:r1, None] == pid[None, r0:]
        imp = upper & ~same
        gen = upper & same & (src[r0:r1, None] != src[None, r0:])
        both_ok = ok[r0:r1, None] & ok[None, r0:]
        imp_n += int(imp.sum())
        gen_n += int(gen.sum())
        scored += int((imp & both_ok).sum())
        for j, t in enumerate(ts):
            hit = both_ok & (s >= t)
            false_m[j] += int((hit & imp).sum())
            true_m[j] += int((hit & gen).sum())
    return {
        "probes": int(in_half.sum()) * len(names),
        "conditions": names,
        "fta": float(1 - ok.mean()),
        PAIRINGS[True]: {
            op.name: _rate_row(
                op.threshold,
                impostor_attempts=imp_n,
                false_matches=int(false_m[j]),
                scored=scored,
                genuine_attempts=gen_n,
                true_matches=int(true_m[j]),
            )
            for j, op in enumerate(points)
        },
    }


def bar_check(rows: dict[str, Any], points: list[OperatingPoint]) -> dict[str, Any]:
    worst: dict[str, Any] = {}
    for op in points:
        ratios = [
            (v[pairing][op.name]["fmr"] / op.fmr, f"{name} ({pairing})")
            for name, v in rows.items()
            for pairing in PAIRINGS.values()
            if pairing in v
        ]
        r, where = max(ratios)
        worst[op.name] = {"worst_ratio": r, "where": where, "within_bar": r <= BAR}
    return worst


def predictors(st: Setup, t: float) -> dict[str, Any]:
    """Which measure predicts false matches? Half A only, ungated: the impostor pairs of each
    condition's captures against each other (the pairing that inflates), each pair scored by
    the mean of its two captures' measure; per measure, the FMR at ``t`` of each fifth of the
    pairs ranked by it. ``typicality`` is the embedding's cosine to the mean clean half-A
    embedding (how much a capture looks like the average face)."""
    e = st.lfw.embedded
    mean = e.embedding[st.a & e.acquired].mean(axis=0)
    mean /= np.linalg.norm(mean)
    in_a = st.a[st.probes]
    values: dict[str, list[npt.NDArray[np.float32]]] = {m: [] for m in PREDICTORS}
    hits: list[npt.NDArray[np.bool_]] = []
    for ce in st.conditions.values():
        keep = in_a & ce.acquired
        emb = ce.embedding[keep]
        pid = st.lfw.identity[st.probes[keep]]
        i, j = np.triu_indices(len(emb), k=1)
        imp = pid[i] != pid[j]
        i, j = i[imp], j[imp]
        hits.append((emb @ emb.T)[i, j] >= t)
        for m in PREDICTORS:
            col = emb @ mean if m == "typicality" else ce.quality_column(m)[keep]
            values[m].append(((col[i] + col[j]) / 2).astype(np.float32))
    hit = np.concatenate(hits)
    out: dict[str, Any] = {"pairs": len(hit), "threshold": t, "overall_fmr": float(hit.mean())}
    for m in PREDICTORS:
        col = np.concatenate(values[m])
        order = np.argsort(col, kind="stable")
        fifths = np.array_split(order, 5)
        out[m] = {
            "fmr_by_fifth": [float(hit[f].mean()) for f in fifths],
            "fifth_edges": [float(col[f[0]]) for f in fifths] + [float(col[order[-1]])],
        }
    return out


def relatives(st: Setup, points: list[OperatingPoint]) -> dict[str, Any]:
    """FMR between relatives (clean images, no gate) at each point, per family and pooled."""
    i, j, families = relative_pairs(st.lfw)
    e = st.lfw.embedded
    ok = e.acquired[i] & e.acquired[j]
    s = np.einsum("ij,ij->i", np.nan_to_num(e.embedding[i]), np.nan_to_num(e.embedding[j]))
    s = np.where(ok, s, -2.0)
    out: dict[str, Any] = {"pairs": len(i), "families": [], "at": {}}
    start = 0
    for f in families:
        part = s[start : start + f["pairs"]]
        start += f["pairs"]
        row = dict(f)
        row["false_matches"] = {op.name: int((part >= op.threshold).sum()) for op in points}
        row["max_score"] = float(part.max()) if len(part) else None
        out["families"].append(row)
    for op in points:
        k = int((s >= op.threshold).sum())
        out["at"][op.name] = {
            "threshold": op.threshold,
            "false_matches": k,
            "fmr": k / max(len(s), 1),
            "fmr_upper95": fmr_upper_bound(k, len(s)),
        }
    out["scores_sorted"] = sorted((float(x) for x in s), reverse=True)[:20]
    return out


# --------------------------------------------------------------------------- report


def before_policy() -> QualityPolicy:
    """The gate as it was before issue 15: none of the new bounds, grayscale admitted."""
    return replace(
        QualityPolicy(),
        max_light_asymmetry=1.0,
        min_dynamic_range=0.0,
        max_shadow=1.0,
        max_padding=1.0,
        grayscale=True,
        max_yaw=90.0,
    )


def cmd_report(args: argparse.Namespace) -> None:
    st = Setup(args.pack, args.probes)
    bounds_a = gate_bounds(st.lfw, st.a)
    bounds_all = gate_bounds(st.lfw, np.ones(len(st.a), bool))
    colour = replace(QualityPolicy(), **bounds_a)
    grey = replace(colour, grayscale=True, **grey_bounds(st.lfw, st.a))
    clean_a = st.clean_pairs(True, None)
    dataset = "LFW half A (held-out protocol)"
    colour_points = [operating_point(n, clean_a, f, dataset) for n, f in DEFAULT_TARGETS]
    g_points = grey_points(
        grey_groups(st, (True,), grey), colour_points, dataset + ", grayscale captures, gated"
    )
    deployments = {  # policy, points, which conditions are pooled (None: all; else grayscale or not)
        "before (old gate, colour points for every capture)": (before_policy(), colour_points, None),
        "colour profile (new gate refuses grayscale)": (colour, colour_points, False),
        "grayscale profile (new gate, grayscale points)": (grey, g_points, True),
    }
    result: dict[str, Any] = {
        "pack": st.pack.embedding_space,
        "probes_per_half": args.probes,
        "bar": f"FMR obtained <= {BAR:g} x stated at every point, per condition",
        "gate_bounds_half_a": bounds_a,
        "gate_bounds_all_lfw": bounds_all,
        "grayscale_gate_half_a": grey_bounds(st.lfw, st.a),
        "points_half_a": {
            "colour": [asdict(p) for p in colour_points],
            "grayscale": [asdict(p) for p in g_points],
        },
        "predictors": predictors(st, colour_points[0].threshold),
        "deployments": {},
        "relatives": relatives(st, list(st.pack.operating_points)),
    }
    for label, (policy, points, grey_only) in deployments.items():
        rows = evaluate(st, policy, points, grey_only=grey_only)
        result["deployments"][label] = {"rows": rows, "bar": bar_check(rows, points)}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "conditions.json").write_text(json.dumps(result, indent=2), "utf-8")
    md = markdown(result)
    (OUT / "conditions.md").write_text(md, "utf-8")
    print(md)
    if args.write_pack:
        write_pack(st, bounds_all, grey_bounds(st.lfw, np.ones(len(st.a), bool)))


def markdown(r: dict[str, Any]) -> str:
    out = [f"## Capture conditions — pack `{r['pack']}` (held-out half B; points and gate from half A)", ""]
    out += [
        "Gate bounds (admit 99 % of clean half-A captures): "
        + ", ".join(f"`{k}` {v:g}" for k, v in r["gate_bounds_half_a"].items()),
        "",
    ]
    pr = r["predictors"]
    out += [
        f"**What predicts false matches** ({pr['pairs']:,} impostor pairs of half-A captures under "
        f"one condition, ungated; FMR at the half-A `convenience` threshold {pr['threshold']:.4f}, "
        f"overall {pr['overall_fmr']:.1e}), by fifths of the pair's mean measure (lowest first):",
        "",
        "| measure | FMR per fifth (low → high) | fifth edges | max / min |",
        "|---|---|---|---|",
    ]
    for m in PREDICTORS:
        v = pr[m]
        f = v["fmr_by_fifth"]
        ratio = max(f) / max(min(f), 1e-9)
        out.append(
            f"| `{m}` | {' / '.join(f'{x:.1e}' for x in f)} | "
            f"{' · '.join(f'{x:.3g}' for x in v['fifth_edges'])} | {ratio:.1f} |"
        )
    for label, d in r["deployments"].items():
        names = [p["name"] for p in r["points_half_a"]["colour"]]
        out += [
            "",
            f"**{label}**",
            "",
            "| condition | pairing | FTA | "
            + " | ".join(f"`{n}` FMR (× stated)" for n in names)
            + f" | `{names[-1]}`: false matches / attempts (95 % upper) | FNMR @ `{names[1]}` |",
            "|---|---|---|" + "---|" * (len(names) + 2),
        ]
        for name, row in d["rows"].items():
            for pairing in PAIRINGS.values():
                if pairing not in row:
                    continue
                cells = list(row[pairing].values())
                targets = [p["fmr"] for p in r["points_half_a"]["colour"]]
                rates = " | ".join(
                    f"{a['fmr']:.1e} ({a['fmr'] / f:.2f}×{' **over**' if a['fmr'] / f > BAR else ''})"
                    for a, f in zip(cells, targets, strict=True)
                )
                k, n, up = (cells[-1][x] for x in ("false_matches", "impostor_attempts", "fmr_upper95"))
                out.append(
                    f"| {name} | {pairing} | {row['fta']:.1%} | {rates} | {k:,} / {n:,} ({up:.1e}) "
                    f"| {cells[1]['fnmr']:.1%} |"
                )
        worst = ", ".join(
            f"`{k}` {v['worst_ratio']:.2f}× ({v['where']}){'' if v['within_bar'] else ' — OVER'}"
            for k, v in d["bar"].items()
        )
        out += ["", f"Worst: {worst}"]
    rel = r["relatives"]
    out += [
        "",
        f"**Relatives** ({rel['pairs']} image pairs of blood relatives, clean, no gate):",
        "",
        "| family | images | pairs | false matches per point | highest score |",
        "|---|---|---|---|---|",
    ]
    for f in rel["families"]:
        imgs = ", ".join(f"{k} {v}" for k, v in f["images"].items())
        fm = " / ".join(f"{k} {v}" for k, v in f["false_matches"].items())
        hs = f"{f['max_score']:.3f}" if f["max_score"] is not None else "—"
        out.append(f"| {f['family']} | {imgs} | {f['pairs']} | {fm} | {hs} |")
    out += [""]
    for name, a in rel["at"].items():
        out.append(
            f"- `{name}` ({a['threshold']:.4f}): {a['false_matches']} of {rel['pairs']} relative pairs "
            "match, "
            f"FMR {a['fmr']:.1e} (95 % upper {a['fmr_upper95']:.1e})"
        )
    return "\n".join(out) + "\n"


PACKS = ROOT / "src" / "faceverify" / "_models" / "packs"


def household_point(st: Setup, rel: Scores, unrelated: Scores) -> OperatingPoint:
    """The point for deployments where relatives may both be enrolled: the lowest threshold
    at which no LFW relative pair matched (rounded up), never below ``strict``. Its ``fmr``
    is the 95 % upper bound between relatives (rule of three); between unrelated people
    and for FNMR it is measured on LFW all pairs."""
    strict = st.pack.operating_point("strict")
    t = max(strict.threshold, round_up(float(rel.impostor[0])))
    k, rate = rel.fmr(t)
    ku, rate_u = unrelated.fmr(t)
    return OperatingPoint(
        name="relatives:household",
        threshold=t,
        fmr=fmr_upper_bound(k, len(rel.impostor)),
        fmr_measured=rate_u,
        fmr_upper=fmr_upper_bound(ku, len(unrelated.impostor)),
        fnmr=unrelated.fnmr(t),
        dataset=(
            f"LFW: no match among {len(rel.impostor):,} image pairs of blood relatives "
            f"({len(FAMILIES)} families, benchmarks/conditions.py); fmr is the 95 % bound between "
            "relatives, fmr_measured / fmr_upper between unrelated people on LFW all pairs"
        ),
        genuine_pairs=len(unrelated.genuine),
        impostor_pairs=len(unrelated.impostor),
        relatives_fmr=rate,
        relatives_pairs=len(rel.impostor),
    )


def relative_scores(st: Setup) -> Scores:
    i, j, _ = relative_pairs(st.lfw)
    e = st.lfw.embedded
    s = np.einsum("ij,ij->i", np.nan_to_num(e.embedding[i]), np.nan_to_num(e.embedding[j]))
    return Scores.of([], np.where(e.acquired[i] & e.acquired[j], s, -2.0))


def _point_json(op: OperatingPoint) -> dict[str, Any]:
    d = asdict(op)
    d.pop("calibrated")
    return d


def write_pack(st: Setup, bounds: dict[str, float], grey_gate: dict[str, float]) -> Path:
    """State, in the built-in manifest: the capture conditions the points hold for
    (``calibrated_for``), grayscale points and the household point (``condition_operating_points``,
    each with the embedding space they were calibrated in), and each point's FMR between
    relatives. Calibrated on all of LFW (both halves), as the pack's own points are."""
    path = PACKS / f"{st.pack.id}.json"
    data = json.loads(path.read_text("utf-8"))
    colour = replace(QualityPolicy(), **bounds)
    grey_policy = replace(colour, grayscale=True, **grey_gate)
    unrelated = all_pairs(st.lfw.embedded.embedding, st.lfw.identity, st.lfw.embedded.acquired)
    rel = relative_scores(st)
    own = list(st.pack.operating_points)
    for d in data["operating_points"]:
        _, rate = rel.fmr(float(d["threshold"]))
        d["relatives_fmr"] = rate
        d["relatives_pairs"] = len(rel.impostor)
    n_grey = sum(
        int((c.quality_column("colourfulness") < GRAYSCALE_BELOW).sum()) for c in st.conditions.values()
    )
    grey_names = ", ".join(n for n, c in st.conditions.items() if is_grey(c))
    g_points = grey_points(
        grey_groups(st, (True, False), grey_policy),
        own,
        f"LFW, {n_grey:,} grayscale captures ({grey_names} of benchmarks/conditions.py) against "
        "every colour image and each other, gated; each threshold the highest any of those "
        "conditions and pairings needs on its own",
    )
    space = st.pack.embedding_space
    data["condition_operating_points"] = [
        {
            "condition": "grayscale",
            "embedding_space": space,
            "quality": {"grayscale": True, **grey_gate},
            "operating_points": [_point_json(p) for p in g_points],
        },
        {
            "condition": "relatives",
            "embedding_space": space,
            "operating_points": [_point_json(household_point(st, rel, unrelated))],
        },
    ]
    data["calibrated_for"] = {
        "bounds": bounds,
        "admitted": ADMIT,
        "colour": True,
        "dataset": f"LFW colour captures (each bound admits {ADMIT:.0%} of them)",
    }
    path.write_text(json.dumps(data, indent=2) + "\n", "utf-8")
    return path


if __name__ == "__main__":
    main()
