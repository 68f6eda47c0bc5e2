"""``faceverify calibrate PAIRS.csv``: operating points from a deployer's own consented pairs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ._main import emit_json


def _target(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        fmr = float(value)
    except ValueError:
        fmr = -1.0
    if not sep or not name or not 0.0 < fmr < 1.0:
        raise argparse.ArgumentTypeError(
            f"expected NAME=FMR with 0 < FMR < 1, e.g. default=1e-5 (got {text!r})"
        )
    return name, fmr


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from .._calibrate import (
        DEFAULT_TARGETS,
        calibrate,
        plot_det,
        read_pairs,
        stderr_progress,
        write_pack_override,
    )
    from .._models._load import load_pipeline
    from .._models._manifest import builtin_manifest

    pairs = read_pairs(Path(args.pairs))
    pack = builtin_manifest(args.pack)
    pipeline = load_pipeline(pack, cache=args.cache, threads=args.threads)
    cache_root = args.embeddings_cache or pairs.csv.parent / ".faceverify-calibrate"
    cache = cache_root / f"{pairs.csv.stem}-{pack.id}.npz"
    result = calibrate(
        pairs,
        pipeline,
        pack,
        cache=cache,
        targets=args.target or DEFAULT_TARGETS,
        gated=args.gated,
        progress=None if args.quiet else stderr_progress("embedding", every=25),
    )
    for w in result.warnings:
        print(f"faceverify: warning: {w}", file=sys.stderr)
    if args.out:
        write_pack_override(
            args.out,
            pack,
            result.points,
            pairs_file=str(pairs.csv),
            images=result.images,
            images_without_face=result.images_without_face,
            pairs_unscored=result.pairs_unscored,
            gated=args.gated,
            fmr_upper="one-sided 95 %: rule of three with no false match, else exact Clopper-Pearson",
        )
    if args.plot:
        plot_det(args.plot, [(result.dataset, result.scores)], result.points, title=f"DET — {pack.id}")
    if args.json:
        summary: dict[str, Any] = result.summary()
        summary["out"] = str(args.out) if args.out else None
        summary["plot"] = str(args.plot) if args.plot else None
        emit_json(summary)
    else:
        print(
            f"{result.dataset}: {len(result.scores.genuine):,} genuine and {len(result.scores.impostor):,} "
            f"impostor pairs scored ({result.pairs_unscored} left out: no usable face on a side)"
        )
        for op in result.points:
            print(
                f"  {op.name:<12} FMR {op.fmr:.0e}  threshold {op.threshold:.4f}  measured FMR "
                f"{op.fmr_measured:.2e} (95 % upper {op.fmr_upper:.2e})  FNMR {op.fnmr:.2%}"
            )
        if args.out:
            print(f"operating points written to {args.out}")
        if args.plot:
            print(f"DET curve drawn to {args.plot}")
    return 0


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "calibrate",
        help="operating points from your own consented pairs (CSV: path1,path2,same)",
        description=(
            "Embed every image of a pairs CSV once (cached), score its same-person and "
            "different-person pairs, and pick the threshold for each target false match rate."
        ),
    )
    p.add_argument(
        "pairs", help="CSV with columns path1,path2,same (paths relative to the CSV; same is 1 or 0)"
    )
    p.add_argument(
        "--out", type=Path, default=None, help="write the operating points to this pack override JSON"
    )
    p.add_argument(
        "--plot", type=Path, default=None, help="draw the DET curve to this PNG (needs matplotlib)"
    )
    p.add_argument(
        "--target",
        type=_target,
        action="append",
        metavar="NAME=FMR",
        help="an operating point to calibrate (repeatable; "
        "default: convenience=1e-4 default=1e-5 strict=1e-6)",
    )
    p.add_argument(
        "--gated",
        action="store_true",
        help="calibrate only on captures the quality gate and single-face rule admit",
    )
    p.add_argument("--pack", default="yunet-sface")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: its choice)")
    p.add_argument(
        "--embeddings-cache",
        type=Path,
        default=None,
        help="directory for the embedding cache (default: .faceverify-calibrate beside the CSV)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--cache", type=Path, default=None, help="model cache (default: $FACEVERIFY_HOME or the user cache)"
    )
    p.set_defaults(handler=_cmd_calibrate)
