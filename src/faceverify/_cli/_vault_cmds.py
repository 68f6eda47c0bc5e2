"""Vault subcommands: enroll, verify, revoke, purge, consent show, keys init|rotate, audit verify.

Exit codes as everywhere (docs/cli.md): 0 match / success, 1 no match (or a broken audit
chain), >= 2 an error by its code. Only ``enroll`` and ``verify`` load the models; the others
touch the vault files only.

Where things are, unless given:

- the vault: ``--database`` (a URL, ``sqlite:///path`` or ``postgresql://...``, or a
  vault folder; ``--vault`` is the same option), else ``$FACEVERIFY_DATABASE_URL``, else
  ``$FACEVERIFY_VAULT``, else the user data directory (``~/.local/share/faceverify/vault``);
- the key store: ``--keys-database``, else ``$FACEVERIFY_KEYS_DATABASE_URL``, else (SQLite
  vaults only) ``~/.local/state/faceverify/keys/<vault id>.db``, outside the vault folder,
  so a backup of the folder does not carry the keys (``keys init`` prints where it is);
- the master key: ``--key-file``, else ``$FACEVERIFY_MASTER_KEY`` (the key
  itself), else ``$FACEVERIFY_KEY_FILE``, else ``~/.config/faceverify/master.key``
  — a different directory from the vault, so copying one does not copy the other.

Only ``keys init`` and ``enroll`` create a vault: any other command given a path or URL
where there is none fails (a typo must not become a new, empty vault).
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import os
from dataclasses import asdict
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from ._main import EXIT_MATCH, EXIT_NO_MATCH, check_images, emit_json, model_options, models_from_args

DEFAULT_CONSENT_DAYS = 365


def _database(args: argparse.Namespace) -> str:
    if args.database is not None:
        return str(args.database)
    for name in ("FACEVERIFY_DATABASE_URL", "FACEVERIFY_VAULT"):
        if os.environ.get(name):
            return os.environ[name]
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return str(base / "faceverify" / "vault")


def _keys_database(args: argparse.Namespace) -> str | None:
    if args.keys_database is not None:
        return str(args.keys_database)
    return os.environ.get("FACEVERIFY_KEYS_DATABASE_URL") or None


def _key_file(args: argparse.Namespace) -> Path:
    if args.key_file is not None:
        return Path(args.key_file)
    if os.environ.get("FACEVERIFY_KEY_FILE"):
        return Path(os.environ["FACEVERIFY_KEY_FILE"])
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "faceverify" / "master.key"


def _master_key(args: argparse.Namespace) -> Any:
    from .._vault import ENV_VAR, load_master_key

    if args.key_file is None and os.environ.get(ENV_VAR):
        return load_master_key()
    return load_master_key(_key_file(args))


ACTOR = "cli"


def _vault(args: argparse.Namespace, *, create: bool = False) -> Any:
    from .._vault import Vault

    return Vault.open(
        _database(args),
        _master_key(args),
        keys_database=_keys_database(args),
        purpose=args.purpose,
        create=create,
    )


def _verifier(args: argparse.Namespace, *, create: bool = False) -> Any:
    from .._verifier import Verifier

    vault = _vault(args, create=create)  # before the models: a bad path or database fails at once
    pack, profile, pipeline = models_from_args(args)
    return Verifier(pipeline=pipeline, pack=pack, vault=vault, profile=profile)


def _expiry(text: str) -> datetime:
    """``2027-06-30`` (end of that day, UTC) or a full ISO time with a zone."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(23, 59, 59), tzinfo=UTC)
        at = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date (YYYY-MM-DD) or ISO time, got {text!r}") from None
    if at.tzinfo is None:
        raise argparse.ArgumentTypeError("give the expiry time with a time zone (e.g. +00:00)")
    return at


def _cmd_enroll(args: argparse.Namespace) -> int:
    from .._errors import ConfigurationError
    from .._io import read_regular_file
    from .._limits import LIMITS
    from .._vault import ConsentEvidence, ConsentRecord

    document = read_regular_file(
        args.consent_evidence, max_bytes=LIMITS.consent_evidence_bytes, what="the consent evidence"
    )
    if len(args.images) > LIMITS.enroll_images:  # before the models load (none: Verifier.enroll says so)
        from .._errors import InvalidInputError

        raise InvalidInputError(f"enrolment takes 1 to {LIMITS.enroll_images} images, got {len(args.images)}")
    live = args.camera is not None or args.video is not None
    if live and args.images:
        raise ConfigurationError("give enrolment images or --camera/--video, not both")
    if not live and not args.images:
        raise ConfigurationError("give 1-5 enrolment images, or --camera INDEX for a live enrolment")
    check_images(args.images)
    verifier = _verifier(args, create=True)
    now = verifier.vault.clock.now()
    consent = ConsentRecord(
        subject_id=args.subject,
        purpose=args.purpose,
        granted_at=now,
        expires_at=args.expires or now + timedelta(days=DEFAULT_CONSENT_DAYS),
        evidence=ConsentEvidence(hashlib.sha256(document).hexdigest(), args.method, args.collected_by),
        scope=tuple(args.scope or ()),
    )
    if live:
        session = _live_session(args, verifier, purpose="enroll")
        result = verifier.enroll_live(args.subject, session, consent=consent, actor=ACTOR)
    else:
        result = verifier.enroll(args.subject, args.images, consent=consent, actor=ACTOR)
    # The template lives until consent expires or a retention window after its last match, whichever
    # is first: an --expires beyond the window is capped, and the person running the command is told.
    limited_by = "retention" if result.expires_at < consent.expires_at else "consent"
    if args.json:
        emit_json({**asdict(result), "expiry_limited_by": limited_by, "consent": consent.to_dict()})
    else:
        print(
            f"enrolled {result.subject_id}: {result.images} image(s), template {result.template_id[:12]}, "
            f"pack {result.model_pack_id}, expires {result.expires_at:%Y-%m-%d}"
            + (" (replaced the previous template)" if result.replaced else "")
        )
        if limited_by == "retention":
            print(
                f"  note: consent runs to {consent.expires_at:%Y-%m-%d}, but the vault's retention "
                f"({verifier.vault.retention.window.days} days after the last successful verification) "
                f"expires the template first, on {result.expires_at:%Y-%m-%d} unless it is used"
            )
    return EXIT_MATCH


def _challenge_list(text: str) -> list[Any]:
    from .._liveness._challenge import Challenge

    names = [t.strip() for t in text.split(",") if t.strip()]
    known = {c.value: c for c in Challenge}
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown challenge(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(known)}"
        )
    return [known[n] for n in names]


def _live_session(args: argparse.Namespace, verifier: Any, *, purpose: str = "verify") -> Any:
    """A challenge session run on ``--video`` (timed on the video's own clock) or ``--camera``."""
    import sys

    from .._clock import FrozenClock, SystemClock
    from .._errors import ConfigurationError
    from .._liveness._video import frames_from_video

    if args.challenges is not None and args.video is None:
        raise ConfigurationError(
            "--challenges fixes the sequence a recording was prepared for: only with --video; "
            "a live camera always gets challenges drawn at random"
        )
    if args.video is not None:
        # A file is timed by its own frame positions, not by how fast this machine decodes it.
        clock = FrozenClock(SystemClock().now())
        session = verifier.start_session(
            args.subject, challenges=args.challenges, clock=clock, purpose=purpose
        )
        asked = ", ".join(c.value for c in session.challenges)
        how = "fixed by --challenges" if args.challenges is not None else "drawn at random"
        print(f"faceverify: challenges ({how}): {asked}", file=sys.stderr)
        for frame, at in frames_from_video(args.video, start=clock.now()):
            assert at is not None
            clock.set(max(at, clock.now()))
            session.feed(frame, at=at)
            if session.finished:
                break
        return session
    session = verifier.start_session(args.subject, purpose=purpose)  # live: system clock, random challenges
    from .._verifier import run_session

    run_session(
        session,
        frames_from_video(args.camera),
        on_prompt=lambda prompt: print(f">> {prompt}", file=sys.stderr, flush=True),
    )
    return session


def _verify_live(args: argparse.Namespace) -> Any:
    verifier = _verifier(args)
    return verifier.finish(_live_session(args, verifier), actor=ACTOR)


def _cmd_verify(args: argparse.Namespace) -> int:
    from .._errors import ConfigurationError

    given = [x for x in (args.image, args.video, args.camera) if x is not None]
    if len(given) != 1:
        raise ConfigurationError("give exactly one of IMG, --video FILE or --camera INDEX")
    if args.image is not None:
        if args.challenges is not None:
            raise ConfigurationError("--challenges applies to --video only")
        check_images([args.image])
        result = _verifier(args).verify(args.subject, args.image, actor=ACTOR)
    else:
        result = _verify_live(args)
    op = result.operating_point
    if args.json:
        emit_json(
            {
                "code": "match" if result.match else "no_match",
                "subject_id": result.subject_id,
                "match": result.match,
                "score": round(result.score, 6),
                "threshold": result.threshold,
                "operating_point": asdict(op),
                "quality": asdict(result.quality),
                "rule": result.rule,
                "reasons": list(result.reasons),
                "liveness": [asdict(c) for c in result.liveness],
            }
        )
    else:
        promise = (
            f"operating point {op.name!r}, FMR {op.fmr:.0e}"
            if op.calibrated
            else "custom threshold: uncalibrated, no false match rate is promised"
        )
        promise += {
            "single": "",
            "mean": " for the mean of the enrolment images",
            "every-member": "; every enrolment image must match",
        }[result.rule]
        verdict = "MATCH" if result.match else "NO MATCH"
        print(f"{verdict}  {result.subject_id}  score {result.score:.4f}  threshold {result.threshold:.4f}")
        print(f"  {promise}")
        if result.liveness:
            print(f"  live session passed: {', '.join(c.name for c in result.liveness)}")
    return EXIT_MATCH if result.match else EXIT_NO_MATCH


def _cmd_revoke(args: argparse.Namespace) -> int:
    receipt = _vault(args).revoke(args.subject, actor=ACTOR)
    if args.json:
        emit_json(asdict(receipt))
    else:
        print(
            f"revoked {receipt.subject_id} at {receipt.erased_at.isoformat()}: "
            f"template {'erased' if receipt.template_erased else 'not held'}, "
            f"{receipt.keys_destroyed} key(s) destroyed"
        )
    return EXIT_MATCH


def _cmd_purge(args: argparse.Namespace) -> int:
    count = _vault(args).purge(actor=ACTOR)
    if args.json:
        emit_json({"purged": count})
    else:
        print(f"purged {count} expired template(s)")
    return EXIT_MATCH


def _cmd_consent_show(args: argparse.Namespace) -> int:
    record = _vault(args).consent(args.subject, actor=ACTOR)
    if args.json:
        emit_json(record.to_dict())
    else:
        print(f"subject      {record.subject_id}")
        print(f"purpose      {record.purpose}")
        print(f"granted      {record.granted_at.isoformat()}")
        print(f"expires      {record.expires_at.isoformat()}")
        print(f"evidence     sha256 {record.evidence.document_sha256}")
        print(f"             {record.evidence.method}, collected by {record.evidence.collected_by}")
        if record.scope:
            print(f"scope        {', '.join(record.scope)}")
    return EXIT_MATCH


def _cmd_keys_init(args: argparse.Namespace) -> int:
    from .._errors import KeyStoreError
    from .._vault import Vault, init_master_key, open_engine

    database = _database(args)
    engine = open_engine(database, folder_file="vault.db")
    try:
        if engine.exists():
            # A second master key would not open it: refuse before writing a useless key file.
            raise KeyStoreError(
                f"{database} already holds a vault with a master key;"
                " use `faceverify keys rotate` to replace it"
            )
    finally:
        engine.close()
    path = _key_file(args)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = init_master_key(path)
    vault = Vault.open(database, key, keys_database=_keys_database(args), create=True)
    keys_at = vault.keys.url
    vault.close()
    if args.json:
        emit_json(
            {
                "key_file": str(path),
                "fingerprint": key.fingerprint,
                "vault": vault.engine.url,
                "keys": keys_at,
            }
        )
    else:
        print(f"master key written to {path} (mode 0600), fingerprint {key.fingerprint}")
        print(f"vault:     {vault.engine.url}")
        print(f"key store: {keys_at}")
        print(
            "keep the master key and the key store apart from the vault and its backups: a copy of the vault"
            " is useless without them, and revoked subjects' keys exist nowhere else"
        )
    return EXIT_MATCH


def _cmd_keys_rotate(args: argparse.Namespace) -> int:
    from .._vault import init_master_key

    vault = _vault(args)
    new_path = Path(args.new_key_file)
    new = init_master_key(new_path)
    count = vault.rotate_master_key(new, actor=ACTOR)
    if args.json:
        emit_json({"rewrapped": count, "new_key_file": str(new_path), "fingerprint": new.fingerprint})
    else:
        print(f"re-wrapped {count} subject key(s) under the new master key in {new_path}")
        print("the old key no longer opens this vault: replace it with the new one, then destroy it")
    return EXIT_MATCH


def _cmd_audit_verify(args: argparse.Namespace) -> int:
    vault = _vault(args)
    report = vault.audit.verify_chain()
    seq, head = vault.audit.head()
    if args.json:
        emit_json({**asdict(report), "head": {"seq": seq, "mac": head}})
    elif report.ok:
        print(
            f"audit chain intact: {report.entries} entries, head {seq} {head}; "
            f"the key store's anchor vouches for the first {report.anchored}"
        )
    else:
        print(f"audit chain BROKEN at entry {report.first_broken}: {report.problem}")
    return EXIT_MATCH if report.ok else EXIT_NO_MATCH


def vault_options(p: argparse.ArgumentParser) -> None:
    """--database, --key-file, --keys-database: where the vault and its keys are (every vault command,
    the door and the kiosk)."""
    p.add_argument(
        "--database",
        "--vault",
        dest="database",
        default=None,
        metavar="URL",
        help="the vault: sqlite:///path, postgresql://..., or a vault folder"
        " (default: $FACEVERIFY_DATABASE_URL, $FACEVERIFY_VAULT, ~/.local/share/faceverify/vault)",
    )
    p.add_argument("--key-file", type=Path, default=None, help="master key file (see `keys init`)")
    p.add_argument(
        "--keys-database",
        "--keys-db",
        dest="keys_database",
        default=None,
        metavar="URL",
        help="the key store, another database (default: $FACEVERIFY_KEYS_DATABASE_URL; for a SQLite"
        " vault ~/.local/state/faceverify/keys/<vault id>.db, outside the vault folder)",
    )


def register(sub: Any) -> None:
    """Add the vault subcommands to ``faceverify``'s parser."""

    def common(p: argparse.ArgumentParser, *, models: bool = False, purpose_required: bool = False) -> None:
        p.add_argument("--json", action="store_true", help="machine-readable output")
        vault_options(p)
        p.add_argument(
            "--purpose",
            default=None,
            required=purpose_required,
            help="what the consent is for, e.g. app-login"
            if purpose_required
            else "refuse subjects whose consent names another purpose",
        )
        if models:
            p.add_argument("--cache", type=Path, default=None, help="model cache (default: $FACEVERIFY_HOME)")
            model_options(p)

    enroll = sub.add_parser(
        "enroll",
        help="enrol a consenting subject from 1-5 images, or live from a camera (--camera)",
        description="With --camera (or --video) the subject answers a liveness challenge session and "
        "the template is made from several distinct best frontal frames of it: sign-up is live too.",
    )
    enroll.add_argument("subject")
    enroll.add_argument("images", nargs="*", metavar="IMG")
    enroll.add_argument(
        "--camera", type=int, default=None, metavar="INDEX", help="enrol live from this camera"
    )
    enroll.add_argument(
        "--video", type=Path, default=None, metavar="FILE", help="enrol live from a recorded video"
    )
    enroll.add_argument(
        "--challenges",
        type=_challenge_list,
        default=None,
        metavar="LIST",
        help="with --video only: a fixed sequence (tests and demos; WEAKER). Default: drawn at random",
    )
    common(enroll, models=True, purpose_required=True)
    enroll.add_argument(
        "--consent-evidence",
        required=True,
        metavar="FILE",
        help="the signed release (only its SHA-256 is kept)",
    )
    enroll.add_argument("--expires", type=_expiry, default=None, help="consent expiry (default: in 365 days)")
    enroll.add_argument("--method", default="signed-document", help="how consent was collected")
    enroll.add_argument("--collected-by", default=getpass.getuser(), help="who collected it (default: you)")
    enroll.add_argument("--scope", action="append", help="narrower scope, e.g. site:hq (repeatable)")
    enroll.set_defaults(handler=_cmd_enroll)

    verify = sub.add_parser(
        "verify",
        help="is IMG (or a live session from --video/--camera) the enrolled SUBJECT? (1:1 only)",
        description="Profiles app-login and door-access refuse a still IMG: use --camera "
        "(or --video) to run a liveness challenge session. A failed session exits 3 (not_live) "
        "with its reasons.",
    )
    verify.add_argument("subject")
    verify.add_argument("image", metavar="IMG", nargs="?", default=None, help="a still image")
    verify.add_argument(
        "--video", type=Path, default=None, metavar="FILE", help="run a challenge session on a recorded video"
    )
    verify.add_argument(
        "--camera", type=int, default=None, metavar="INDEX", help="run a challenge session on a camera"
    )
    verify.add_argument(
        "--challenges",
        type=_challenge_list,
        default=None,
        metavar="LIST",
        help="with --video only: a fixed sequence, e.g. turn-left,move-closer (tests and demos; WEAKER: "
        "a recording can be prepared for a known sequence). Default: drawn at random",
    )
    common(verify, models=True)
    verify.set_defaults(handler=_cmd_verify)

    revoke = sub.add_parser("revoke", help="erase a subject's template and destroy its key")
    revoke.add_argument("subject")
    common(revoke)
    revoke.set_defaults(handler=_cmd_revoke)

    purge = sub.add_parser("purge", help="erase every template past consent or retention")
    common(purge)
    purge.set_defaults(handler=_cmd_purge)

    consent = sub.add_parser("consent", help="consent records")
    csub = consent.add_subparsers(dest="consent_command", required=True)
    show = csub.add_parser("show", help="a subject's consent record")
    show.add_argument("subject")
    common(show)
    show.set_defaults(handler=_cmd_consent_show)

    keys = sub.add_parser("keys", help="the master key")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    init = ksub.add_parser("init", help="create a master key file (0600) and the key store")
    common(init)
    init.set_defaults(handler=_cmd_keys_init)
    rotate = ksub.add_parser("rotate", help="re-wrap every subject key under a new master key")
    rotate.add_argument("--new-key-file", type=Path, required=True, help="where to create the new key")
    common(rotate)
    rotate.set_defaults(handler=_cmd_keys_rotate)

    audit = sub.add_parser("audit", help="the audit log")
    asub = audit.add_subparsers(dest="audit_command", required=True)
    check = asub.add_parser("verify", help="check the hash chain; report the first broken link")
    common(check)
    check.set_defaults(handler=_cmd_audit_verify)
