"""What the person at the door (or the kiosk) is told: prompts on a display.

A :class:`Display` shows one line at a time; the door calls it with each
challenge prompt ("turn your head to your left") and with the outcome in
plain words ("welcome", "not recognised"), never with a score or a reason an
attacker could tune against. :class:`TerminalDisplay` writes to a terminal
(the door's console, a serial LCD behind a tty); :class:`WebDisplay` serves
a local web page that follows each line as it is shown (a screen beside the
door, a browser in kiosk mode); :class:`Displays` shows on several;
:class:`NullDisplay` shows nothing (a door without a screen).
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol, TextIO

__all__ = ["OUTCOME_TEXT", "Display", "Displays", "NullDisplay", "TerminalDisplay", "WebDisplay"]

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


class Displays:
    """Shows each line on every display given (a terminal and a web page, say)."""

    def __init__(self, *displays: Display) -> None:
        self._displays = displays

    def show(self, text: str) -> None:
        for d in self._displays:
            d.show(text)


_PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>faceverify door</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/display.css"></head>
<body><main><p id="prompt" aria-live="assertive"></p></main>
<script src="/display.js"></script></body></html>
"""
_CSS = b"""html,body{margin:0;height:100%;background:#111;color:#fff;font-family:sans-serif}
main{display:flex;height:100%;align-items:center;justify-content:center;text-align:center}
#prompt{font-size:8vw;margin:0 4vw}
"""
_JS = b"""const prompt = document.getElementById("prompt");
const events = new EventSource("/events");
events.onmessage = (e) => { prompt.textContent = JSON.parse(e.data); };
events.onerror = () => { prompt.textContent = ""; };
"""
#: Served with every response: the page runs its own script and talks to its own origin only.
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}


class WebDisplay:
    """The door's prompts on a local web page: ``http://HOST:PORT/``.

    The page holds one line in large type and follows the door as it shows
    each (server-sent events on ``/events``: a JSON string per line, the
    current one first on connecting). It carries what :class:`TerminalDisplay`
    does — prompts and coarse outcomes, never a score, an image or a subject.
    Bound to loopback by default; ``port`` 0 picks a free one (see :attr:`url`).
    :meth:`close` stops the server and ends every open page's stream.
    """

    #: Seconds between keep-alive comments on an idle stream.
    KEEPALIVE = 15.0

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._cond = threading.Condition()
        self._text, self._version, self._closed = "", 0, False
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="door-web-display", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def show(self, text: str) -> None:
        with self._cond:
            self._text, self._version = text, self._version + 1
            self._cond.notify_all()

    def next_line(self, after: int, timeout: float) -> tuple[int, str] | None:
        """The line shown after version ``after`` (at once if one is), None on a timeout or
        once closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or self._version > after, timeout=timeout)
            if self._closed or self._version <= after:
                return None
            return self._version, self._text

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed

    def __enter__(self) -> WebDisplay:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        display = self
        files = {
            "/": ("text/html", _PAGE),
            "/display.css": ("text/css", _CSS),
            "/display.js": ("text/javascript", _JS),
        }

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/events":
                    self._stream()
                    return
                found = files.get(self.path)
                if found is None:
                    self.send_error(404)
                    return
                kind, body = found
                self._head(200, f"{kind}; charset=utf-8", len(body))
                self.wfile.write(body)

            def _head(self, status: int, kind: str, length: int | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                if length is not None:
                    self.send_header("Content-Length", str(length))
                for name, value in _HEADERS.items():
                    self.send_header(name, value)
                self.end_headers()

            def _stream(self) -> None:
                self._head(200, "text/event-stream")
                seen = 0
                try:
                    while not display.closed:
                        line = display.next_line(seen, display.KEEPALIVE)
                        if line is None and display.closed:
                            return
                        if line is None:
                            self.wfile.write(b": keep-alive\n\n")
                        else:
                            seen, text = line
                            self.wfile.write(f"data: {json.dumps(text)}\n\n".encode())
                        self.wfile.flush()
                except OSError:  # the page went away
                    return

            def log_message(self, format: str, *args: object) -> None:
                pass  # no request log: stderr carries the prompts, stdout the events

        return Handler
