"""Fuzz targets: each takes one input (bytes) and raises only on a *finding*.

A finding is an exception outside the documented ones (the input must end as
one typed ``FaceVerifyError`` or succeed) or a broken invariant (an
``AssertionError``): a template that opens after a byte changed, a consent
record that does not survive its own round trip, a CLI failure that is not one
line with a documented exit status. The same functions serve three drivers:

- ``fuzz/run.py``: atheris (libFuzzer, coverage-guided over faceverify's and
  Pillow's Python code), the benchmark run of >= 100,000 inputs per target;
- ``fuzz/run.py --smoke``: a few seconds each, in CI;
- ``tests/test_fuzz_properties.py``: Hypothesis, in the suite.

``SEEDS[name]()`` gives each target's starting corpus (valid inputs made here,
never data from outside the repository).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import random
import struct
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from PIL import Image

from faceverify import (
    CaptureError,
    ConfigurationError,
    ConsentError,
    ConsentRecord,
    InvalidSubjectIdError,
    InvalidTemplateError,
    ModelError,
)
from faceverify._cli import _main
from faceverify._fusion import parse_recognizer_manifest
from faceverify._limits import LIMITS
from faceverify._liveness._memory import MAX_FRAMES, Recollection
from faceverify._models._manifest import parse_liveness_manifest, parse_manifest
from faceverify._vault._consent import check_subject_id
from faceverify._vault._recollection import open_recollection, seal_recollection
from faceverify._vault._template import FORMAT_VERSION, TemplateHeader, open_template, read_header, seal
from faceverify.hazmat import load_image

PACKS = Path(__file__).resolve().parents[1] / "src" / "faceverify" / "_models" / "packs"

# -- image decoding ------------------------------------------------------------------------------


def _encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def image_seeds() -> list[bytes]:
    """Small images in every decoded format and odd mode: mutations stay cheap to decode."""
    rng = np.random.default_rng(16)
    noise = Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: the orientation path
    frames = [Image.new("RGB", (40, 40), c) for c in ((255, 0, 0), (0, 255, 0))]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:])
    return [
        _encode(noise, "JPEG", quality=70),
        _encode(noise, "JPEG", quality=70, exif=exif.tobytes(), progressive=True),
        _encode(noise, "PNG"),
        _encode(noise.convert("RGBA"), "PNG"),
        _encode(noise.convert("P"), "PNG", transparency=0),
        _encode(Image.new("I;16", (40, 40), 300), "PNG"),
        _encode(noise.convert("L"), "PNG"),
        _encode(noise, "WEBP", quality=60),
        _encode(noise, "TIFF"),
        _encode(noise, "BMP"),
        gif.getvalue(),
    ]


def image(data: bytes) -> None:
    """Bytes from outside (an upload, a file): an upright RGB uint8 array, or a CaptureError."""
    for limits in (LIMITS.capture, LIMITS.frame_capture()):
        try:
            rgb = load_image(data, limits=limits)
        except CaptureError:
            continue
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3, rgb.shape
        assert min(rgb.shape[:2]) >= limits.min_side and rgb.flags.c_contiguous
        assert rgb.shape[0] * rgb.shape[1] <= limits.max_pixels


# -- templates: the sealed blob and its header -----------------------------------------------------

_KEY = bytes(range(32))
_CONSENT = "c" * 64
_T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _header(count: int, dim: int) -> TemplateHeader:
    return TemplateHeader(
        format_version=FORMAT_VERSION,
        template_id="t" * 32,
        subject_id="alice",
        key_id="k" * 32,
        model_pack_id="yunet-sface@2",
        embedding_dim=dim,
        embedding_count=count,
        created_at=_T0,
        last_used_at=_T0,
        expires_at=_T0 + timedelta(days=365),
        consent_sha256=_CONSENT,
    )


def _sealed(count: int, dim: int) -> bytes:
    rows = np.random.default_rng(count).standard_normal((count, dim)).astype(np.float32)
    return seal(_header(count, dim), rows, _KEY)


TEMPLATE_SEEDS = [_sealed(1, 8), _sealed(5, 8), _sealed(2, 128)]
_VALID = frozenset(TEMPLATE_SEEDS)


def template_seeds() -> list[bytes]:
    return list(TEMPLATE_SEEDS)


def template(data: bytes) -> None:
    """A stored blob, as a tampering host would leave it: opens only untouched, else the one opaque error."""
    try:
        header = read_header(data)
    except InvalidTemplateError as exc:
        assert str(exc) == "template could not be opened"
    else:
        assert 0 < header.embedding_count <= 5 and 0 < header.embedding_dim <= 4096
    try:
        opened = open_template(data, _KEY, subject_id="alice", consent_sha256=_CONSENT)
    except InvalidTemplateError as exc:
        assert str(exc) == "template could not be opened"  # one message for every cause: no oracle
        return
    assert data in _VALID, "a template opened after its bytes were changed"
    assert opened.embeddings.shape == (opened.header.embedding_count, opened.header.embedding_dim)


def _remembered(frames: int) -> bytes:
    """A session's recollection of ``frames`` random faces (blocks of contrast: all kept)."""
    rng = np.random.default_rng(frames)
    memory = Recollection()
    for _ in range(frames):
        face = np.kron(rng.integers(0, 256, (14, 14)), np.ones((4, 4))).astype(np.uint8)
        memory.add(float(rng.normal(0, 5)), float(rng.normal(0, 5)), 40.0, face)
    return memory.to_bytes()


RECOLLECTION_SEEDS = [seal_recollection("alice", "t" * 32, _remembered(n), _KEY) for n in (1, 6)]
_VALID_RECOLLECTIONS = frozenset(RECOLLECTION_SEEDS)


def recollection_seeds() -> list[bytes]:
    return [*RECOLLECTION_SEEDS, _remembered(3)]


def recollection(data: bytes) -> None:
    """A remembered session as the vault keeps it (opens only untouched, else the one opaque
    error) and as the liveness layer reads it (a Recollection, or a ConfigurationError)."""
    try:
        plain = open_recollection("alice", "t" * 32, data, _KEY)
    except InvalidTemplateError as exc:
        assert str(exc) == "template could not be opened"
        plain = data  # the reader, on raw bytes too
    else:
        assert data in _VALID_RECOLLECTIONS, "a recollection opened after its bytes were changed"
    try:
        memory = Recollection.from_bytes(plain)
    except ConfigurationError:
        return
    assert len(memory) <= MAX_FRAMES and bool(np.isfinite(memory.poses).all())
    assert Recollection.from_bytes(memory.to_bytes()).to_bytes() == memory.to_bytes()


def header_seeds() -> list[bytes]:
    return [_header(1, 8).to_json(), _header(5, 512).to_json()]


def header(data: bytes) -> None:
    """The header region only (canonical JSON), wrapped in a well-formed prefix: read_header's parser."""
    blob = struct.pack(">4sBI", b"FVTP", FORMAT_VERSION, len(data)) + data + bytes(12) + bytes(8 * 4 + 16)
    try:
        parsed = read_header(blob)
    except InvalidTemplateError as exc:
        assert str(exc) == "template could not be opened"
        return
    assert isinstance(parsed.subject_id, str) or parsed.subject_id is not None
    with contextlib.suppress(InvalidTemplateError):  # a parsed header still never opens without the tag
        open_template(blob, _KEY, subject_id="alice", consent_sha256=_CONSENT)
        raise AssertionError("a forged header with a zero tag opened")


# -- consent records -----------------------------------------------------------------------------


def _consent(subject: str = "alice", scope: tuple[str, ...] = ()) -> ConsentRecord:
    from faceverify import ConsentEvidence

    return ConsentRecord(
        subject_id=subject,
        purpose="app-login",
        granted_at=_T0,
        expires_at=_T0 + timedelta(days=365),
        evidence=ConsentEvidence("a" * 64, "in-app-checkbox", "kiosk-7"),
        scope=scope,
    )


def consent_seeds() -> list[bytes]:
    return [
        _consent().to_json().encode(),
        _consent("user.42@example.org", ("site:hq", "door:front")).to_json().encode(),
    ]


def consent(data: bytes) -> None:
    """A consent record from outside (an API body, a stored row): a valid record or a ConsentError."""
    try:
        record = ConsentRecord.from_json(data)
    except ConsentError:
        return
    assert record.subject_id == check_subject_id(record.subject_id)  # stored in its canonical form
    again = ConsentRecord.from_json(record.to_json())
    assert again == record and again.digest() == record.digest()
    assert record.granted_at < record.expires_at


# -- model manifests -----------------------------------------------------------------------------


def manifest_seeds() -> list[bytes]:
    return [p.read_bytes() for p in sorted(PACKS.glob("*.json"))]


def manifest(data: bytes) -> None:
    """A manifest (a user's own pack): a pack or a ModelError, for each kind of pack."""
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return  # not JSON: load_manifest reports that itself
    for parse in (parse_manifest, parse_liveness_manifest, parse_recognizer_manifest):
        try:
            pack = parse(obj)
        except ModelError:
            continue
        assert pack.id and all(len(f.sha256) == 64 for f in pack.files), "a pack with unpinned files"


# -- the CLI's argument handling -----------------------------------------------------------------

_build_parser = _main.build_parser

_WORDS = [
    "compare", "enroll", "verify", "revoke", "purge", "consent", "show", "keys", "init", "rotate",
    "audit", "models", "install", "list", "calibrate", "--json", "--debug", "--version", "--help",
    "--profile", "photo-check", "app-login", "door-access", "--pack", "yunet-sface", "--operating-point",
    "default", "strict", "convenience", "--threshold", "0.4", "nan", "-1", "2", "inf", "--threads", "0",
    "--expires", "2027-06-30", "2027-06-30T10:00:00+02:00", "2027-13-45", "--challenges",
    "turn-left,move-closer", "--video", "--camera", "--purpose", "--consent-evidence", "--scope",
    "--vault", "--key-file", "--keys-db", "--new-key-file", "--cache", "--fuse-with", "--accept-licence",
    "--", "-", "alice", "\uff41lice", " ", "a.jpg", "\u0430lice", "x" * 200,
    "serve", "clients", "create", "revoke", "--scopes", "enroll,verify", "--prefix", "--host", "--port",
    "--workers", "--database", "--keys-database", "--config", "8080", "0.0.0.0",
]  # fmt: skip


def _argv(data: bytes) -> list[str]:
    """Tokens from the vocabulary, chosen by the input's bytes, and a few of raw text."""
    argv: list[str] = []
    view = memoryview(data)
    while view and len(argv) < 24:
        b = view[0]
        if b < 0xE0:
            argv.append(_WORDS[b % len(_WORDS)])
            view = view[1:]
        else:  # a raw token: up to 16 following bytes as text
            n = min(len(view) - 1, (b & 0x0F) + 1)
            argv.append(bytes(view[1 : 1 + n]).decode("utf-8", "replace").replace("\x00", ""))
            view = view[1 + n :]
    return argv


def cli_seeds() -> list[bytes]:
    idx = {w: bytes([i]) for i, w in enumerate(_WORDS)}
    phrases = [
        ["verify", "alice", "a.jpg", "--json"],
        ["compare", "a.jpg", "a.jpg", "--operating-point", "strict", "--threshold", "0.4"],
        ["enroll", "alice", "a.jpg", "--purpose", "app-login", "--consent-evidence", "a.jpg"],
        ["verify", "alice", "--video", "a.jpg", "--challenges", "turn-left,move-closer", "--debug"],
        ["--version"],
    ]
    return [b"".join(idx[w] for w in p) for p in phrases]


@functools.cache
def _noop_parser(command: str | None = None) -> object:
    """The real parser (every command's: ``command`` is ignored), its handlers replaced by the
    validation the commands do before any work."""
    parser = _build_parser()

    def validate(args: object) -> int:
        if hasattr(args, "profile") and hasattr(args, "threshold"):
            _main.decision_from_args(args)  # type: ignore[arg-type]
        return 0

    for child in [parser, *_main._subparsers(parser)]:
        child.set_defaults(handler=validate)
    return parser


def cli(data: bytes) -> None:
    """Any argv: exit 0 (nothing run), or one error line / one JSON error object with a documented status."""
    argv = _argv(data)
    out, err = io.StringIO(), io.StringIO()
    _main.build_parser = _noop_parser  # type: ignore[assignment]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = _main.main(argv)
    except SystemExit as exc:  # --help / --version: argparse prints and exits 0
        assert exc.code == 0, (argv, exc.code)
        return
    finally:
        _main.build_parser = _build_parser
    documented = set(_main.EXIT_CODES.values())
    assert status in documented and status != _main.EXIT_INTERNAL, (argv, status, err.getvalue())
    if status == 0:
        return
    options = argv[: argv.index("--")] if "--" in argv else argv
    if "--json" in options:
        error = json.loads(out.getvalue())["error"]
        assert set(error) == {"code", "message", "reasons", "retry_after"}, error
        assert _main.exit_code(error["code"]) == status
    else:
        lines = err.getvalue().splitlines()
        if "--debug" in options:  # the traceback, then the line
            lines = lines[-1:]
        assert len(lines) == 1 and lines[0].startswith("faceverify: error: "), (argv, err.getvalue())


# -- what a request to the service carries ---------------------------------------------------------


def request_seeds() -> list[bytes]:
    body = consent_seeds()[0]
    frame = image_seeds()[0]
    return [b"alice\n" + struct.pack(">I", len(body)) + body + frame]


def request(data: bytes) -> None:
    """A request's parts as the service receives them: a path subject id, a JSON body, a frame.

    The service (branch ``service``) decodes them with these same functions and
    limits; this target fuzzes that shared path without HTTP (see the HTTP one
    in docs/threat-model.md when the service is present).
    """
    line, _, rest = data.partition(b"\n")
    with contextlib.suppress(InvalidSubjectIdError):
        check_subject_id(line.decode("utf-8", "surrogateescape"))
    if len(rest) < 4:
        return
    (n,) = struct.unpack(">I", rest[:4])
    cut = 4 + min(n, LIMITS.request_bytes)
    body, frame = rest[4:cut], rest[cut:]
    with contextlib.suppress(ConsentError):
        consent(body)
    with contextlib.suppress(CaptureError):
        load_image(frame, limits=LIMITS.frame_capture())


# -- the HTTP service's request bodies (branch `service`, merged) ------------------------------------

_BODIES = ("consent", "session", "live-enrollment")


def service_body_seeds() -> list[bytes]:
    consent_body = {
        "purpose": "app-login",
        "expires_at": "2027-06-30T00:00:00+00:00",
        "evidence": {"document_sha256": "a" * 64, "method": "in-app-checkbox", "collected_by": "webapp"},
        "scope": ["site:hq"],
    }
    return [
        b"\x00alice\n" + json.dumps(consent_body).encode(),
        b"\x01alice\n" + json.dumps({"subject_id": "alice", "purpose": "enroll"}).encode(),
        b"\x02alice\n" + json.dumps({"session_id": "s" * 32}).encode(),
    ]


def service_body(data: bytes) -> None:
    """A request's path id and JSON body through the service's own models and the route's translation.

    The models (pydantic, ``_service/_schemas.py``) refuse what does not fit
    (422 problem); what they accept must become a ConsentRecord or a typed
    refusal, exactly as the consent route builds it: never a 500.
    """
    from pydantic import ValidationError

    from faceverify import ConsentEvidence
    from faceverify._service._schemas import ConsentIn, LiveEnrollmentIn, SessionIn

    if not data:
        return
    kind = _BODIES[data[0] % len(_BODIES)]
    path_id, _, body = data[1:].partition(b"\n")
    try:
        sid = check_subject_id(path_id.decode("utf-8", "surrogateescape"))
    except InvalidSubjectIdError:
        sid = "alice"  # the route answers 400 here; go on to the body with a valid id
    model = {"consent": ConsentIn, "session": SessionIn, "live-enrollment": LiveEnrollmentIn}[kind]
    try:
        parsed = model.model_validate_json(body)
    except ValidationError:
        return
    if isinstance(parsed, SessionIn):
        with contextlib.suppress(InvalidSubjectIdError):
            check_subject_id(parsed.subject_id)
    elif isinstance(parsed, ConsentIn):
        with contextlib.suppress(ConsentError):
            ConsentRecord(
                subject_id=sid,
                purpose=parsed.purpose,
                granted_at=parsed.granted_at or _T0,
                expires_at=parsed.expires_at,
                evidence=ConsentEvidence(**parsed.evidence.model_dump()),
                scope=tuple(parsed.scope),
            )


def subject_id_seeds() -> list[bytes]:
    return [s.encode() for s in ("alice", "\uff41\uff4c\uff49\uff43\uff45", "user.42@example.org", "a" * 128)]


def subject_id(data: bytes) -> None:
    text = data.decode("utf-8", "surrogateescape")
    try:
        canonical = check_subject_id(text)
    except InvalidSubjectIdError as exc:
        assert len(str(exc)) < 500  # 24 characters shown, escaped (an astral one is 10)
        return
    assert check_subject_id(canonical) == canonical
    assert canonical.isascii() and 0 < len(canonical) <= LIMITS.subject_id_chars


TARGETS: dict[str, Callable[[bytes], None]] = {
    "image": image,
    "template": template,
    "recollection": recollection,
    "header": header,
    "consent": consent,
    "manifest": manifest,
    "cli": cli,
    "request": request,
    "service_body": service_body,
    "subject_id": subject_id,
}

SEEDS: dict[str, Callable[[], list[bytes]]] = {
    "image": image_seeds,
    "template": template_seeds,
    "recollection": recollection_seeds,
    "header": header_seeds,
    "consent": consent_seeds,
    "manifest": manifest_seeds,
    "cli": cli_seeds,
    "request": request_seeds,
    "service_body": service_body_seeds,
    "subject_id": subject_id_seeds,
}


def mutate(data: bytes, rng: random.Random) -> bytes:
    """A few byte-level edits (flip, overwrite, insert, delete, splice a run): for non-atheris drivers."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(5)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[pos % len(buf)] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            buf[pos % len(buf)] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
        elif op == 2:
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 3 and buf:
            del buf[pos : pos + rng.randint(1, 16)]
        else:
            start = rng.randrange(len(buf) + 1)
            buf[pos:pos] = buf[start : start + rng.randint(1, 32)]
    return bytes(buf)


def quiet() -> None:
    """Pillow's decompression-bomb warnings and the like are expected here."""
    import warnings

    warnings.simplefilter("ignore")
    os.environ.setdefault("FACEVERIFY_HOME", tempfile.mkdtemp(prefix="fv-fuzz-"))
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 3000))
