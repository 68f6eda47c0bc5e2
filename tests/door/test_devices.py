"""The door's devices through their protocols: badge readers, relays, cameras, events.

No models here: these are the parts around the decision, each exercised for
real (a pty as the serial port, real HTTP and Unix sockets, real
subprocesses, OpenCV on a real file) and each failing closed.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from faceverify._door import (
    BadgeMap,
    CommandActuator,
    DoorEvent,
    GpioActuator,
    HttpActuator,
    HttpClaims,
    JsonLinesSink,
    LineClaims,
    OpenCVCamera,
    SocketSink,
    UnixSocketClaims,
    actuator_from_spec,
    camera_target,
)
from faceverify._door._camera import _describe
from faceverify._door._claims import parse_badge
from faceverify._errors import ActuatorError, CameraError, ConfigurationError

AT = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def decided(reason: str = "unknown_claim") -> DoorEvent:
    return DoorEvent(at=AT, door="front", kind="decision", reason=reason)


# -- claims -------------------------------------------------------------------------


def test_reader_lines_become_badges_or_nothing() -> None:
    assert parse_badge("W26:1234567\r\n") == "1234567"
    assert parse_badge("  W34 00FF12  ") == "00FF12"
    assert parse_badge("123:45678") == "123:45678"
    for junk in ("", "   ", "W26:", "a b", "x" * 65, "1001; DROP TABLE", "\x00\x01"):
        assert parse_badge(junk) is None, junk


def test_the_badge_map_names_one_subject_per_badge(tmp_path: Path) -> None:
    path = tmp_path / "front.badges"
    path.write_text("# reception\n1001 alice\n2002,bob  # night shift\n\n")
    badges = BadgeMap.load(path)
    assert (badges.subject("1001"), badges.subject("2002"), badges.subject("3003")) == ("alice", "bob", None)
    assert badges.subjects() == {"alice", "bob"} and len(badges) == 2
    path.write_text("1001\n")
    with pytest.raises(ConfigurationError, match=r"front\.badges:1"):
        BadgeMap.load(path)
    with pytest.raises(ConfigurationError, match="cannot read"):
        BadgeMap.load(tmp_path / "missing")
    with pytest.raises(ConfigurationError, match="malformed badge"):
        BadgeMap({"10 01": "alice"})


def test_a_serial_wiegand_reader_on_a_pty() -> None:
    master, slave = os.openpty()
    try:
        claims = LineClaims.serial(os.ttyname(slave), baud=9600)
        os.write(master, b"W26:1001\r\nnoise!!\r\n")
        first, second = claims.next(5), claims.next(5)
        assert first is not None and (first.badge, first.source) == ("1001", f"serial:{os.ttyname(slave)}")
        assert second is not None and second.badge is None  # malformed: an unknown claim, never a guess
        claims.close()
    finally:
        os.close(master)
        os.close(slave)
    with pytest.raises(ConfigurationError, match="cannot open the badge reader"):
        LineClaims.serial("/nonexistent/ttyUSB9")


def test_stdin_lines_end_with_their_stream(tmp_path: Path) -> None:
    path = tmp_path / "claims.txt"
    path.write_text("1001\n\n2002\n")
    with path.open() as stream:
        claims = LineClaims(stream)
        got = [claims.next(5), claims.next(5)]
        assert [c.badge for c in got if c] == ["1001", "2002"]
        for _ in range(50):
            if claims.exhausted:
                break
            time.sleep(0.02)
        assert claims.exhausted and claims.next(0.01) is None


def answer_claims(claims: HttpClaims | UnixSocketClaims, stop: threading.Event) -> None:
    """A stand-in door: answers each claim with an unknown_claim decision."""
    while not stop.is_set():
        claim = claims.next(0.05)
        if claim is not None and claim.reply is not None:
            claim.reply(decided())


def test_http_claims_accept_and_answer() -> None:
    claims = HttpClaims("127.0.0.1", 0)
    stop = threading.Event()
    threading.Thread(target=answer_claims, args=(claims, stop), daemon=True).start()
    host, port = claims.address
    url = f"http://{host}:{port}/claim"
    try:

        def post(body: bytes, query: str = "") -> tuple[int, dict[str, object]]:
            request = urllib.request.Request(url + query, data=body, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return response.status, json.loads(response.read())
            except urllib.error.HTTPError as exc:
                return exc.code, json.loads(exc.read())

        status, body = post(json.dumps({"badge": "9999"}).encode(), "?wait=1")
        assert status == 200 and body["reason"] == "unknown_claim" and body["door"] == "front"
        assert post(b'{"badge": 7}')[0] == 400
        assert post(b"not json")[0] == 400
        assert post(b"x" * 5000)[0] == 400
    finally:
        stop.set()
        claims.close()


def test_unix_socket_claims_answer_each_line(tmp_path: Path) -> None:
    path = tmp_path / "door.sock"
    claims = UnixSocketClaims(path)
    stop = threading.Event()
    threading.Thread(target=answer_claims, args=(claims, stop), daemon=True).start()
    try:
        assert oct(path.stat().st_mode & 0o777) == "0o660"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(str(path))
            s.sendall(b"9999\n")
            s.settimeout(10)
            line = s.makefile().readline()
        assert json.loads(line)["reason"] == "unknown_claim"
    finally:
        stop.set()
        claims.close()
    assert not path.exists()


# -- relays -------------------------------------------------------------------------


def test_the_command_hook_succeeds_only_on_exit_zero(tmp_path: Path) -> None:
    log = tmp_path / "relay.log"
    script = "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + ' ' + sys.argv[3])"
    CommandActuator([sys.executable, "-c", script, str(log), "{door}", "{seconds}"], door="front").open(2.5)
    assert log.read_text() == "front 2.5"
    with pytest.raises(ActuatorError, match="exit status 3"):
        CommandActuator([sys.executable, "-c", "raise SystemExit(3)"]).open(1)
    with pytest.raises(ActuatorError, match="did not finish"):
        CommandActuator([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.3).open(1)
    with pytest.raises(ActuatorError, match="could not run"):
        CommandActuator(["/nonexistent/relay"]).open(1)


def test_the_http_callback_needs_a_2xx() -> None:
    seen: list[dict[str, object]] = []
    status = {"code": 200}

    class Controller(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(status["code"])
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Controller)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/open"
    try:
        HttpActuator(url, door="front").open(3)
        assert seen == [{"door": "front", "open_seconds": 3}]
        status["code"] = 503
        with pytest.raises(ActuatorError, match="503"):
            HttpActuator(url).open(3)
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(ActuatorError, match="could not be reached"):
        HttpActuator(url, timeout=0.5).open(3)


class FakePin:
    """gpiozero's OutputDevice surface: on, off, close."""

    def __init__(self, *, fail: bool = False) -> None:
        self.states: list[str] = []
        self.fail = fail

    def on(self) -> None:
        if self.fail:
            raise OSError("pin busy")
        self.states.append("on")

    def off(self) -> None:
        self.states.append("off")

    def close(self) -> None:
        self.states.append("closed")


def test_a_gpio_relay_opens_for_n_seconds_and_releases_on_every_path() -> None:
    pin = FakePin()
    relay = GpioActuator(17, device=pin)
    relay.open(0.1)
    assert pin.states == ["on"]
    time.sleep(0.4)
    assert pin.states == ["on", "off"]
    relay.open(30)
    relay.close()  # the process stops: released at once, not after 30 s
    assert pin.states[-2:] == ["off", "closed"]
    jammed = FakePin(fail=True)
    with pytest.raises(ActuatorError, match="did not switch"):
        GpioActuator(17, device=jammed).open(1)
    assert jammed.states == ["off"]


def test_relay_specs() -> None:
    assert isinstance(actuator_from_spec("cmd:/usr/bin/true {seconds}", door="d"), CommandActuator)
    assert isinstance(actuator_from_spec("https://ctl.local/open", door="d"), HttpActuator)
    for bad in ("cmd:", "gpio:x", "gpio:4:sideways", "ftp://x", "relay"):
        with pytest.raises(ConfigurationError):
            actuator_from_spec(bad, door="d")


# -- camera and events --------------------------------------------------------------


def test_camera_specs(tmp_path: Path) -> None:
    assert camera_target("0") == 0
    assert camera_target("rtsp://user:pw@cam.local/stream") == "rtsp://user:pw@cam.local/stream"
    clip = tmp_path / "clip.avi"
    clip.write_bytes(b"")
    assert camera_target(str(clip)) == str(clip)
    with pytest.raises(ConfigurationError):
        camera_target(str(tmp_path / "nothing.avi"))
    # A stream's credentials never reach an event or an error message.
    assert _describe("rtsp://user:pw@cam.local:554/stream") == "rtsp://cam.local:554/…"


def test_an_opencv_source_reconnects_and_reports_it(tmp_path: Path) -> None:
    from door_frames import write_video

    rng = np.random.default_rng(0)
    clip = write_video(
        tmp_path / "loop.avi", [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(3)]
    )
    states: list[str] = []
    camera = OpenCVCamera(
        str(clip), on_status=lambda s, d: states.append(s), reconnect_delay=0.05, pace=False
    )
    try:
        last = 0
        for _ in range(8):  # past the end of the file: lost, reopened, frames again
            frame = camera.read(after=last, timeout=5)
            assert frame.index > last and frame.image.shape == (48, 64, 3)
            last = frame.index
        deadline = time.monotonic() + 5
        while "camera_ok" not in states and time.monotonic() < deadline:
            time.sleep(0.02)
        assert states[:2] == ["camera_lost", "camera_ok"]
        clip.unlink()  # unplugged for good: no new frame, a CameraError, never an old frame
        time.sleep(0.3)
        with pytest.raises(CameraError, match="no new frame"):
            for _ in range(10):
                last = camera.read(after=last, timeout=0.5).index
    finally:
        camera.close()


def test_events_are_one_json_line_each(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    with out.open("w") as stream:
        sink = JsonLinesSink(stream)
        sink.emit(decided("match"))
        sink.emit(DoorEvent(at=AT, door="front", kind="status", reason="camera_lost", detail="camera 0"))
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0] == {
        "at": AT.isoformat(),
        "door": "front",
        "kind": "decision",
        "reason": "match",
        "opened": False,
    }
    assert lines[1]["detail"] == "camera 0" and "subject_id" not in lines[1]


def test_events_on_a_socket_reach_every_subscriber(tmp_path: Path) -> None:
    sink = SocketSink(tmp_path / "events.sock")
    try:
        clients = []
        for _ in range(2):
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(str(tmp_path / "events.sock"))
            c.settimeout(5)
            clients.append(c)
        deadline = time.monotonic() + 5
        while len(sink._clients) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        sink.emit(decided("no_match"))
        for c in clients:
            assert json.loads(c.makefile().readline())["reason"] == "no_match"
            c.close()
        sink.emit(decided("match"))  # the subscribers left: dropped, the door carries on
        sink.emit(decided("match"))
    finally:
        sink.close()
    assert not (tmp_path / "events.sock").exists()
