"""``faceverify door`` (one long-running process per door) and ``faceverify kiosk`` (live enrolment).

The door::

    faceverify door --camera 0 --badges /etc/faceverify/front.badges \\
        --relay 'cmd:/usr/local/bin/pulse-relay {seconds}' --claims serial:/dev/ttyUSB0 \\
        --name front --operating-point default

prints one JSON line per event on stdout (``--events FILE`` appends there
instead), prompts on stderr, and runs until its claims end or SIGTERM. It
decides under the ``door-access`` profile (a live session: challenges and
passive PAD) at a calibrated operating point only; exit statuses are the
usual ones (docs/cli.md) for what stops it (a camera that cannot be opened:
6, a vault that cannot be reached at start: 7, a bad setting: 2).

``--camera`` takes a device index, an ``rtsp://``/``http(s)://`` stream or a
video file (played at its frame rate, looping). ``--recorded`` reads a file
as fast as it decodes, timed by its own frame positions, for replaying a
recording (tests, benchmarks, incidents) — the only case where
``--challenges`` may fix the sequence, and ``--synthetic-frames`` switch off
the animation checks for frames warped from photos.

The kiosk::

    faceverify kiosk e-1042 --camera 0 --consent-text consent.txt --operator op-7 \\
        --evidence-dir /var/lib/faceverify/consent

shows the consent text and the retention, reads the person's "I agree" on
stdin, writes the receipt, and enrols from a passed live session.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from ._main import EXIT_MATCH, emit_json, model_options, models_from_args

DOOR_PURPOSE = "door-access"


def _verifier(args: argparse.Namespace) -> Any:
    """The Verifier under a liveness profile at a calibrated point; refuses anything else."""
    from .._errors import ConfigurationError
    from .._verifier import Verifier
    from ._vault_cmds import _vault

    pack, profile, pipeline = models_from_args(args)
    if not profile.liveness_required:
        raise ConfigurationError(f"profile {profile.name!r} does not require a live capture: not at a door")
    if args.synthetic_frames and not args.recorded:
        raise ConfigurationError("--synthetic-frames describes a recording: only with --recorded")
    if profile.custom_threshold is not None:
        raise ConfigurationError(
            "a door decides at a calibrated operating point (--operating-point), not --threshold"
        )
    policy = None
    if args.synthetic_frames:
        from dataclasses import replace

        from .._liveness import ChallengePolicy

        policy = replace(ChallengePolicy(), quality=profile.quality, animation_checks=False)
    return Verifier(
        pipeline=pipeline, pack=pack, vault=_vault(args), profile=profile, challenge_policy=policy
    )


def _camera(args: argparse.Namespace, clock: Any, on_status: Any = None) -> Any:
    from .._door import OpenCVCamera, RecordedCamera, camera_target
    from .._errors import ConfigurationError

    if args.challenges is not None and not args.recorded:
        raise ConfigurationError(
            "--challenges fixes the sequence a recording was made for: only with --recorded; "
            "a live camera always gets challenges drawn at random"
        )
    target = camera_target(args.camera)
    if args.recorded:
        if not isinstance(target, str) or "://" in target:
            raise ConfigurationError("--recorded reads a video file")
        return RecordedCamera(target, clock=clock)
    return OpenCVCamera(target, clock=clock, on_status=on_status)


def _clock(args: argparse.Namespace) -> Any:
    """A recording runs on its own time (a frozen clock it moves); a live camera on the system's."""
    from .._clock import FrozenClock, SystemClock

    return FrozenClock(SystemClock().now()) if args.recorded else SystemClock()


def _claims(spec: str) -> Any:
    from .._door import HttpClaims, LineClaims, UnixSocketClaims
    from .._errors import ConfigurationError

    if spec == "stdin":
        return LineClaims(sys.stdin)
    if spec.startswith("http://"):
        host, _, port = spec.removeprefix("http://").rstrip("/").rpartition(":")
        if not port.isdigit() or not host:
            raise ConfigurationError("--claims http://HOST:PORT")
        return HttpClaims(host, int(port))
    if spec.startswith("unix:"):
        return UnixSocketClaims(spec.removeprefix("unix:"))
    if spec.startswith("serial:"):
        device, _, baud = spec.removeprefix("serial:").partition("@")
        return LineClaims.serial(device, baud=int(baud) if baud.isdigit() else 9600)
    raise ConfigurationError(
        f"--claims {spec!r}: expected stdin, http://HOST:PORT, unix:PATH or serial:DEVICE[@BAUD]"
    )


def _display(args: argparse.Namespace) -> tuple[Any, Any]:
    """The prompts' display (stderr unless ``--no-display``, and a local web page with
    ``--web-display``) and what closes it."""
    from .._door import Displays, NullDisplay, TerminalDisplay, WebDisplay
    from .._errors import ConfigurationError

    shown: list[Any] = [] if args.no_display else [TerminalDisplay()]
    if args.web_display is None:
        return (shown[0] if shown else NullDisplay()), lambda: None
    host, _, port = args.web_display.rpartition(":")
    if not port.isdigit() or not host:
        raise ConfigurationError(f"--web-display {args.web_display!r}: expected HOST:PORT")
    try:
        web = WebDisplay(host, int(port))
    except OSError as exc:
        raise ConfigurationError(f"--web-display {args.web_display}: {exc.strerror or exc}") from None
    return Displays(*shown, web), web.close


def _cmd_door(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from .._door import BadgeMap, Door, DoorConfig, JsonLinesSink, SocketSink, actuator_from_spec

    badges = BadgeMap.load(args.badges)
    actuator = actuator_from_spec(args.relay, door=args.name, timeout=args.relay_timeout)
    verifier = _verifier(args)
    clock = _clock(args)
    # Whatever was opened is closed, however setup or the run ends (last opened, first closed).
    with contextlib.ExitStack() as cleanup:
        display, close_display = _display(args)  # a bad --web-display fails before the camera opens
        cleanup.callback(close_display)
        replica, replica_root = _replica(args, verifier, badges)
        if replica_root is not None:  # the replica's vault closes, then its tmpfs folder goes
            cleanup.callback(shutil.rmtree, replica_root, ignore_errors=True)
            cleanup.callback(replica.local.vault.close)
        doors: list[Door] = []  # the camera's thread reports to the door once it exists

        def on_status(state: str, detail: str) -> None:
            for d in doors:
                d.status(state, detail)

        camera = _camera(args, clock, on_status=on_status)
        cleanup.callback(camera.close)
        sink: Any
        if args.events is None:
            sink = JsonLinesSink(sys.stdout)
        elif args.events.startswith("unix:"):
            sink = SocketSink(args.events.removeprefix("unix:"))
        else:
            sink = JsonLinesSink(open(args.events, "a", encoding="utf-8"))  # noqa: SIM115 (closed by cleanup)
        cleanup.callback(sink.close)
        config = DoorConfig(
            name=args.name,
            open_seconds=args.open_seconds,
            max_frame_age=timedelta(milliseconds=args.max_frame_age),
            camera_timeout=args.camera_timeout,
            challenges=tuple(args.challenges) if args.challenges else None,
        )
        door = Door(
            verifier,
            camera,
            badges,
            actuator,
            events=sink,
            display=display,
            config=config,
            clock=clock,
            replica=replica,
        )
        doors.append(door)
        claims = _claims(args.claims)
        cleanup.callback(claims.close)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        door.run(claims, stop=stop)
    return EXIT_MATCH


def _replica(args: argparse.Namespace, shared: Any, badges: Any) -> tuple[Any, Path | None]:
    """The door's replica, if asked for: a local vault and key store in a fresh directory under
    ``--replica-dir`` (memory-backed: ``$RUNTIME_DIRECTORY``), under a master key made for this
    process and held only in its memory. Nothing of it outlives the process (docs/door.md)."""
    if not args.replica:
        return None, None
    from datetime import timedelta

    from .._door import Replica
    from .._vault import MasterKey, Vault
    from .._verifier import Verifier

    base = Path(args.replica_dir or os.environ.get("RUNTIME_DIRECTORY") or tempfile.gettempdir())
    root = Path(tempfile.mkdtemp(prefix=f"faceverify-{args.name}-replica-", dir=base))
    local_vault = Vault.open(
        root / "vault",
        MasterKey.generate(),
        keys_database=root / "keys" / "keys.db",
        purpose=args.purpose,
        create=True,
    )
    local = Verifier(pipeline=shared.pipeline, pack=shared.pack, vault=local_vault, profile=shared.profile)
    replica = Replica(
        shared,
        local,
        badges.subjects(),
        door=args.name,
        max_staleness=timedelta(seconds=args.max_staleness),
        interval=timedelta(seconds=args.sync_interval),
    )
    return replica, root


def _read_agreement(prompt: str) -> str:
    print(prompt, end="", file=sys.stderr, flush=True)
    return sys.stdin.readline()


def _cmd_kiosk(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from .._door import Kiosk, KioskTerms
    from .._errors import ConfigurationError

    try:
        text = Path(args.consent_text).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read the consent text {args.consent_text}: {exc.strerror}"
        ) from None
    terms = KioskTerms(
        text=text, purpose=args.purpose, consent_days=args.consent_days, scope=tuple(args.scope or ())
    )
    verifier = _verifier(args)
    clock = _clock(args)
    with contextlib.ExitStack() as cleanup:  # closes what was opened, however it ends
        display, close_display = _display(args)
        cleanup.callback(close_display)
        camera = _camera(args, clock)
        cleanup.callback(camera.close)
        kiosk = Kiosk(
            verifier,
            camera,
            operator=args.operator,
            kiosk=args.kiosk,
            ask=_read_agreement,
            display=display,
            evidence_dir=args.evidence_dir,
            clock=clock,
            challenges=tuple(args.challenges) if args.challenges else None,
        )
        done = kiosk.enrol(args.subject, terms)
    r = done.enrollment
    if args.json:
        emit_json(
            {
                **asdict(r),
                "consent": done.consent.to_dict(),
                "receipt_sha256": done.receipt_sha256,
                "receipt": str(done.receipt_path) if done.receipt_path else None,
            }
        )
    else:
        print(
            f"enrolled {r.subject_id} from a live session: {r.images} frames, template {r.template_id[:12]}, "
            f"expires {r.expires_at:%Y-%m-%d}; consent receipt sha256 {done.receipt_sha256[:16]}"
            + (f" in {done.receipt_path}" if done.receipt_path else "")
        )
    return EXIT_MATCH


def register(sub: Any) -> None:
    """Add ``door`` and ``kiosk`` to ``faceverify``'s parser."""
    from ._vault_cmds import _challenge_list, vault_options

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--camera", required=True, help="device index, rtsp:// or http(s):// stream, or video file"
        )
        p.add_argument(
            "--recorded",
            action="store_true",
            help="read the --camera file as fast as it decodes, timed by its frame positions (replays)",
        )
        p.add_argument(
            "--challenges",
            type=_challenge_list,
            default=None,
            metavar="LIST",
            help="with --recorded only: the sequence the recording answers (WEAKER: tests and demos)",
        )
        p.add_argument(
            "--synthetic-frames",
            action="store_true",
            help="with --recorded only: the recording was synthesized from photos (tests): the animation "
            "checks, which refuse exactly that, are off (WEAKER: never for a camera)",
        )
        p.add_argument("--no-display", action="store_true", help="no prompts on stderr")
        p.add_argument(
            "--web-display",
            metavar="HOST:PORT",
            default=None,
            help="also show the prompts on a local web page at http://HOST:PORT/ (e.g. 127.0.0.1:8090)",
        )
        vault_options(p)
        p.add_argument(
            "--purpose", default=DOOR_PURPOSE, help=f"the consent purpose served (default: {DOOR_PURPOSE})"
        )
        p.add_argument("--cache", type=Path, default=None, help="model cache (default: $FACEVERIFY_HOME)")
        model_options(p, profile="door-access")

    door = sub.add_parser(
        "door",
        help="run a door: badge claims, a live check of the claimed subject, the relay (JSON events)",
    )
    common(door)
    door.add_argument("--badges", type=Path, required=True, help="badge map: lines 'BADGE SUBJECT'")
    door.add_argument(
        "--relay",
        required=True,
        help="cmd:COMMAND ({seconds}, {door} substituted), http(s)://URL or gpio:PIN[:low]",
    )
    door.add_argument("--relay-timeout", type=float, default=2.0, help="seconds the relay has to confirm")
    door.add_argument(
        "--claims",
        default="stdin",
        help="stdin (default), http://HOST:PORT, unix:PATH or serial:DEVICE[@BAUD]",
    )
    door.add_argument(
        "--replica",
        action="store_true",
        help="keep a replica of the badge map's subjects to decide when the vault cannot be reached",
    )
    door.add_argument(
        "--replica-dir",
        type=Path,
        default=None,
        help="memory-backed directory for the replica (default: $RUNTIME_DIRECTORY, else the temp dir)",
    )
    door.add_argument(
        "--max-staleness",
        type=float,
        default=300.0,
        metavar="S",
        help="the replica decides nothing older (300)",
    )
    door.add_argument(
        "--sync-interval", type=float, default=30.0, metavar="S", help="replica sync period (30)"
    )
    door.add_argument("--name", default="door", help="this door's name in events and the audit")
    door.add_argument("--open-seconds", type=float, default=5.0, help="how long the relay opens (default 5)")
    door.add_argument(
        "--max-frame-age", type=float, default=500.0, metavar="MS", help="older frames are never judged (500)"
    )
    door.add_argument(
        "--camera-timeout",
        type=float,
        default=2.0,
        metavar="S",
        help="no fresh frame this long: camera_lost (2)",
    )
    door.add_argument(
        "--events",
        default=None,
        metavar="FILE|unix:PATH",
        help="append events to FILE, or serve them on a socket",
    )
    door.set_defaults(handler=_cmd_door)

    kiosk = sub.add_parser("kiosk", help="enrol a consenting person from a live session at a kiosk")
    kiosk.add_argument("subject")
    common(kiosk)
    kiosk.add_argument("--consent-text", type=Path, required=True, help="the text shown and agreed to")
    kiosk.add_argument("--operator", required=True, help="who operates the kiosk (recorded as evidence)")
    kiosk.add_argument("--kiosk", default="kiosk", help="this kiosk's name")
    kiosk.add_argument(
        "--evidence-dir", type=Path, default=None, help="keep the consent receipts here (0600)"
    )
    kiosk.add_argument(
        "--consent-days", type=int, default=365, help="how long the consent lasts (default 365)"
    )
    kiosk.add_argument("--scope", action="append", help="narrower scope, e.g. site:hq (repeatable)")
    kiosk.add_argument("--json", action="store_true", help="machine-readable output")
    kiosk.set_defaults(handler=_cmd_kiosk)
