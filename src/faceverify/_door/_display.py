"""What the person at the door (or the kiosk) is told: prompts on a display.

A :class:`Display` shows one line at a time; the door calls it with each
challenge prompt ("turn your head to your left") and with the outcome in
plain words ("welcome", "not recognised"), never with a score or a reason an
attacker could tune against. :class:`TerminalDisplay` writes to a terminal
(the door's console, a serial LCD behind a tty); :class:`NullDisplay` shows
nothing (a door without a screen).
"""

from __future__ import annotations

import sys
import threading
from typing import Protocol, TextIO

__all__ = ["OUTCOME_TEXT", "Display", "NullDisplay", "TerminalDisplay"]

#: What the person is told for each reason: deliberately coarse.
OUTCOME_TEXT = {
    "match": "welcome - the door is open",
    "no_match": "not recognised",
    "not_live": "not recognised",
    "timeout": "too slow - present your badge again",
    "locked_out": "too many attempts - ask at the desk",
    "unknown_claim": "badge not valid at this door",
    "camera_lost": "out of order - ask at the desk",
    "store_unavailable": "out of order - ask at the desk",
}


class Display(Protocol):
    def show(self, text: str) -> None: ...


class NullDisplay:
    def show(self, text: str) -> None:
        pass


class TerminalDisplay:
    """One line at a time on ``stream`` (default stderr, as stdout carries the events)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._lock = threading.Lock()

    def show(self, text: str) -> None:
        with self._lock:
            self._stream.write(f">> {text}\n")
            self._stream.flush()
