"""Claims: who the person at the door says they are, from a badge reader, a PIN pad or a controller.

A claim carries a badge (a card number, a PIN-pad code); the door's
:class:`BadgeMap` turns it into **one** subject id, so the door compares one
capture with one template and never searches. A badge the map does not hold
is an ``unknown_claim``: the camera is not even consulted.

Sources (each a :class:`ClaimSource`; a fake in tests is any object with
``next`` and ``close``):

- :class:`LineClaims` — one badge per line from a text stream: stdin, or a
  serial port (a USB/RS-232 Wiegand converter prints one card per line, e.g.
  ``W26:1234567`` or ``1234567``) opened with :meth:`LineClaims.serial`;
- :class:`HttpClaims` — ``POST /claim`` with ``{"badge": "..."}`` on a local
  address (127.0.0.1 by default); ``?wait=1`` answers with the decision event;
- :class:`UnixSocketClaims` — one badge per line on a Unix socket; each line
  is answered with its decision event as one JSON line.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import socketserver
import stat
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Protocol

from .._errors import ConfigurationError
from ._events import DoorEvent

__all__ = [
    "BadgeMap",
    "Claim",
    "ClaimSource",
    "HttpClaims",
    "LineClaims",
    "QueueClaims",
    "UnixSocketClaims",
    "parse_badge",
]

#: What a badge may look like once the reader's framing is stripped.
BADGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9:._-]{0,63}")
#: A Wiegand converter's frame tag (bit length), e.g. ``W26:`` or ``W34 ``.
_WIEGAND = re.compile(r"^W\d{2}[\s:]+")
#: How long an HTTP or socket client waits for the decision (the door's own deadline is shorter).
REPLY_TIMEOUT = 60.0
_MAX_BODY = 1024


def parse_badge(line: str) -> str | None:
    """The badge in one reader line (Wiegand tag and whitespace stripped), or None if malformed."""
    text = _WIEGAND.sub("", line.strip())
    return text if BADGE.fullmatch(text) else None


@dataclass(frozen=True, slots=True)
class Claim:
    """One claim: the badge as read (None when the line was malformed), where it came from,
    and, for sources that answer, where the decision goes."""

    badge: str | None
    source: str
    reply: Callable[[DoorEvent], None] | None = field(default=None, compare=False)


class ClaimSource(Protocol):
    """Claims, one at a time."""

    def next(self, timeout: float) -> Claim | None:
        """The next claim, or None when none arrived within ``timeout`` seconds."""
        ...

    def close(self) -> None: ...


class QueueClaims:
    """A claim source fed by threads (readers, servers) or directly with :meth:`put`."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Claim | None] = queue.Queue()
        self.closed = threading.Event()

    def put(self, line: str, *, source: str, reply: Callable[[DoorEvent], None] | None = None) -> None:
        self._queue.put(Claim(parse_badge(line), source, reply))

    def next(self, timeout: float) -> Claim | None:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    @property
    def exhausted(self) -> bool:
        """The source has ended (a stream at EOF) and every claim was taken."""
        return self.closed.is_set() and self._queue.empty()

    def close(self) -> None:
        self.closed.set()


class LineClaims(QueueClaims):
    """One badge per line from ``stream`` (stdin, a serial port), read on a thread."""

    def __init__(self, stream: IO[str], *, source: str = "stdin") -> None:
        super().__init__()
        self._stream = stream
        self._source = source
        self._thread = threading.Thread(target=self._read, name=f"claims-{source}", daemon=True)
        self._thread.start()

    @classmethod
    def serial(cls, device: str | Path, *, baud: int = 9600) -> LineClaims:
        """A serial line reader (a Wiegand-to-serial converter), 8N1 raw at ``baud``."""
        import termios  # POSIX only, as the devices are

        path = Path(device)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOCTTY)
        except OSError as exc:
            raise ConfigurationError(f"cannot open the badge reader {path}: {exc.strerror}") from None
        if os.isatty(fd):
            speed = getattr(termios, f"B{baud}", None)
            if speed is None:
                os.close(fd)
                raise ConfigurationError(f"unsupported serial speed {baud}")
            attrs = termios.tcgetattr(fd)
            attrs[0] = termios.IGNPAR | termios.ICRNL  # iflag: CR ends a line too
            attrs[1] = 0  # oflag
            attrs[2] = termios.CS8 | termios.CREAD | termios.CLOCAL  # 8N1
            attrs[3] = termios.ICANON  # lflag: line mode, no echo
            attrs[4] = attrs[5] = speed
            termios.tcsetattr(fd, termios.TCSANOW, attrs)
        elif not stat.S_ISFIFO(os.fstat(fd).st_mode):
            os.close(fd)
            raise ConfigurationError(f"{path} is neither a serial device nor a FIFO")
        return cls(os.fdopen(fd, "r", encoding="ascii", errors="replace"), source=f"serial:{path}")

    def _read(self) -> None:
        try:
            for line in self._stream:
                if self.closed.is_set():
                    break
                if line.strip():
                    self.put(line, source=self._source)
        except (OSError, ValueError):
            pass  # the stream went away: the source is exhausted
        finally:
            self.closed.set()


class _Reply:
    """A one-shot slot for the decision of one claim."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self.event: DoorEvent | None = None

    def __call__(self, event: DoorEvent) -> None:
        self.event = event
        self._done.set()

    def wait(self, timeout: float) -> DoorEvent | None:
        self._done.wait(timeout)
        return self.event


class HttpClaims(QueueClaims):
    """``POST /claim`` ``{"badge": "..."}`` on ``host:port`` (port 0: any free one, see ``address``).

    Answers ``202 {"accepted": true}``, or with ``?wait=1`` ``200`` and the
    decision event once the door has decided. Binds to 127.0.0.1 unless told
    otherwise: the endpoint is for the door controller on the same host.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__()
        claims = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                path, _, query = self.path.partition("?")
                if path != "/claim":
                    return self._send(404, {"error": {"code": "bad_input", "message": "POST /claim"}})
                length = int(self.headers.get("Content-Length") or 0)
                if not 0 < length <= _MAX_BODY:
                    return self._send(400, {"error": {"code": "bad_input", "message": "a small JSON body"}})
                try:
                    badge = json.loads(self.rfile.read(length))["badge"]
                    if not isinstance(badge, str):
                        raise TypeError
                except (ValueError, KeyError, TypeError):
                    return self._send(400, {"error": {"code": "bad_input", "message": '{"badge": "..."}'}})
                if "wait=1" not in query.split("&"):
                    claims.put(badge, source="http")
                    return self._send(202, {"accepted": True})
                reply = _Reply()
                claims.put(badge, source="http", reply=reply)
                event = reply.wait(REPLY_TIMEOUT)
                if event is None:
                    return self._send(504, {"error": {"code": "timeout", "message": "no decision in time"}})
                return self._send(200, event.to_dict())

            def _send(self, status: int, body: Mapping[str, object]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass  # the door's events are its log

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.address = self._server.server_address[:2]
        threading.Thread(target=self._server.serve_forever, name="claims-http", daemon=True).start()

    def close(self) -> None:
        super().close()
        self._server.shutdown()
        self._server.server_close()


class UnixSocketClaims(QueueClaims):
    """One badge per line on the Unix socket ``path`` (mode 0660); each line gets its event back."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        with contextlib.suppress(FileNotFoundError):
            if self.path.is_socket():
                self.path.unlink()
        claims = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                for raw in self.rfile:
                    line = raw.decode("ascii", errors="replace")
                    if not line.strip():
                        continue
                    reply = _Reply()
                    claims.put(line, source="socket", reply=reply)
                    event = reply.wait(REPLY_TIMEOUT)
                    answer = event.to_json() if event is not None else '{"reason":"timeout"}'
                    self.wfile.write(answer.encode() + b"\n")

        self._server = socketserver.ThreadingUnixStreamServer(str(self.path), Handler)
        self._server.daemon_threads = True
        os.chmod(self.path, 0o660)
        threading.Thread(target=self._server.serve_forever, name="claims-socket", daemon=True).start()

    def close(self) -> None:
        super().close()
        self._server.shutdown()
        self._server.server_close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class BadgeMap:
    """Badge → subject id, for one door. Only the badges listed here can claim anyone.

    ``BadgeMap.load(path)`` reads lines ``BADGE SUBJECT`` (whitespace or a
    comma between; ``#`` starts a comment). Subject ids are checked as
    everywhere; a malformed line is a :class:`ConfigurationError` naming it.
    """

    def __init__(self, entries: Mapping[str, str] | Iterable[tuple[str, str]]) -> None:
        from .._vault._consent import check_subject_id

        pairs = entries.items() if isinstance(entries, Mapping) else entries
        self._map: dict[str, str] = {}
        for badge, subject in pairs:
            if parse_badge(badge) != badge:
                raise ConfigurationError(f"malformed badge {badge!r} in the badge map")
            self._map[badge] = check_subject_id(subject)

    @classmethod
    def load(cls, path: str | Path) -> BadgeMap:
        pairs: list[tuple[str, str]] = []
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(f"cannot read the badge map {path}: {exc.strerror}") from None
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.split("#", 1)[0].replace(",", " ").split()
            if not line:
                continue
            if len(line) != 2:
                raise ConfigurationError(f"{path}:{number}: expected 'BADGE SUBJECT'")
            pairs.append((line[0], line[1]))
        return cls(pairs)

    def subject(self, badge: str | None) -> str | None:
        """The one subject this badge claims, or None."""
        return None if badge is None else self._map.get(badge)

    def subjects(self) -> frozenset[str]:
        """The subjects allowed at this door (what its replica caches)."""
        return frozenset(self._map.values())

    def __len__(self) -> int:
        return len(self._map)
