"""What a door says: one structured event per outcome, with a stable reason code.

Every claim ends in exactly one ``decision`` event; the door also reports its
own state (``status`` events: started, camera lost or back, replica stale or
fresh, stopped). Events are JSON lines (``DoorEvent.to_json``), written by an
:class:`EventSink`: :class:`JsonLinesSink` (stdout, a file) or
:class:`SocketSink` (every subscriber of a Unix socket). They carry no biometric data:
no image, no embedding, no score; the subject id, the reason and timings only.

Reason codes (``DoorEvent.reason``) are the library's error codes (contract D),
so a door controller, ``faceverify verify --json`` and the HTTP service name a
refusal alike:

=================  =======================================================
``match``          the claimed subject, live: the door opened (``opened``)
``no_match``       a live face, not the claimed subject's
``not_live``       the liveness check failed (challenge, passive PAD)
``timeout``        nobody answered the challenges before their deadline
``locked_out``     too many failed attempts on this subject
``unknown_claim``  the badge maps to no subject at this door
``camera_lost``    no fresh frame from the camera (unplugged, stream down)
``store_unavailable``  the vault cannot be reached and no fresh replica holds the subject
=================  =======================================================

Refusals those eight do not cover keep their own library code:
``unknown_subject``, ``revoked``, ``expired`` and ``consent`` (the subject
cannot be verified at this door), ``enumeration_refused``,
``invalid_template``, ``key_store``, ``actuator`` (the relay failed: the door
stayed shut), ``configuration``, ``model``; anything unforeseen is ``error``.
Whatever the reason, ``opened`` is true only after the actuator confirmed.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol, TextIO

from .._errors import FaceVerifyError

__all__ = [
    "DOOR_REASONS",
    "DoorEvent",
    "EventSink",
    "JsonLinesSink",
    "ListSink",
    "SocketSink",
    "reason_for",
]

#: The eight reasons of issue #13; the others are the library's own codes (see the module doc).
DOOR_REASONS = (
    "match",
    "no_match",
    "not_live",
    "locked_out",
    "unknown_claim",
    "camera_lost",
    "store_unavailable",
    "timeout",
)

EventKind = Literal["decision", "status"]


def reason_for(exc: BaseException) -> str:
    """The stable reason code of an exception (contract D); ``error`` for one outside faceverify's tree."""
    return exc.code if isinstance(exc, FaceVerifyError) else "error"


@dataclass(frozen=True, slots=True)
class DoorEvent:
    """One outcome at one door.

    ``latency_ms`` is claim to decision (to the relay's confirmation when it
    opened); ``stages_ms`` splits it (``decode``: waiting for and reading
    frames, ``live``: the session over them, detection and embedding
    included, ``verify``: the 1:1 comparison through the vault,
    ``actuator``). ``detail`` says in words what happened, for the operator.
    """

    at: datetime
    door: str
    kind: EventKind
    reason: str
    opened: bool = False
    subject_id: str | None = None
    claim_source: str | None = None
    badge: str | None = None
    detail: str = ""
    operating_point: str | None = None
    latency_ms: float | None = None
    stages_ms: Mapping[str, float] = field(default_factory=dict)
    replica_age_s: float | None = None

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {
            "at": self.at.isoformat(),
            "door": self.door,
            "kind": self.kind,
            "reason": self.reason,
            "opened": self.opened,
        }
        optional = {
            "subject_id": self.subject_id,
            "claim_source": self.claim_source,
            "badge": self.badge,
            "detail": self.detail or None,
            "operating_point": self.operating_point,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 1),
            "stages_ms": {k: round(v, 1) for k, v in self.stages_ms.items()} or None,
            "replica_age_s": None if self.replica_age_s is None else round(self.replica_age_s, 1),
        }
        data.update({k: v for k, v in optional.items() if v is not None})
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))


class EventSink(Protocol):
    """Where a door's events go."""

    def emit(self, event: DoorEvent) -> None: ...


class JsonLinesSink:
    """One JSON object per line on ``stream`` (default stdout), flushed at once."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self._lock = threading.Lock()

    def emit(self, event: DoorEvent) -> None:
        with self._lock:
            self._stream.write(event.to_json() + "\n")
            self._stream.flush()

    def close(self) -> None:
        """Close the stream, unless it is stdout."""
        if self._stream is not sys.stdout:
            self._stream.close()


class SocketSink:
    """Broadcasts each event as a JSON line to every client of the Unix socket ``path`` (0660).

    For a door controller or a log shipper that subscribes rather than reads
    the process's stdout. A client that stops reading is dropped; events are
    never queued for a client that is not connected.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        with contextlib.suppress(FileNotFoundError):
            if self.path.is_socket():
                self.path.unlink()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(self.path))
        os.chmod(self.path, 0o660)
        self._server.listen(8)
        self._clients: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="door-events", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return  # closed
            client.settimeout(1.0)
            with self._lock:
                self._clients.append(client)

    def emit(self, event: DoorEvent) -> None:
        line = (event.to_json() + "\n").encode()
        with self._lock:
            for client in list(self._clients):
                try:
                    client.sendall(line)
                except OSError:
                    self._clients.remove(client)
                    client.close()

    def close(self) -> None:
        self._server.close()
        with self._lock:
            for client in self._clients:
                client.close()
            self._clients.clear()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class ListSink:
    """Keeps events in memory (tests, the kiosk's summary)."""

    def __init__(self) -> None:
        self.events: list[DoorEvent] = []

    def emit(self, event: DoorEvent) -> None:
        self.events.append(event)

    def decisions(self) -> list[DoorEvent]:
        return [ev for ev in self.events if ev.kind == "decision"]
