"""The door's prompts on a local web page (``WebDisplay``), over real HTTP on loopback.

The page itself is driven in Chromium by ``tests/browser/test_door_display.py``.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator

import pytest

from faceverify._door import Displays, TerminalDisplay, WebDisplay
from faceverify._errors import ConfigurationError


@pytest.fixture
def web() -> Iterator[WebDisplay]:
    with WebDisplay() as display:
        yield display


def connect(web: WebDisplay) -> http.client.HTTPConnection:
    host, port = web.url.removeprefix("http://").rstrip("/").split(":")
    return http.client.HTTPConnection(host, int(port), timeout=10)


def get(web: WebDisplay, path: str) -> http.client.HTTPResponse:
    conn = connect(web)
    conn.request("GET", path)
    return conn.getresponse()


def next_data(stream: http.client.HTTPResponse) -> str:
    """The next ``data:`` line of a server-sent event stream, decoded."""
    while True:
        line = stream.readline().decode()
        if line.startswith("data: "):
            value: str = json.loads(line.removeprefix("data: "))
            return value


def test_the_page_and_its_files_are_served_with_a_strict_policy(web: WebDisplay) -> None:
    assert web.url.startswith("http://127.0.0.1:")
    page = get(web, "/")
    assert page.status == 200 and page.getheader("Content-Type", "").startswith("text/html")
    body = page.read().decode()
    assert 'id="prompt"' in body and "/display.js" in body and "<script>" not in body  # no inline script
    policy = page.getheader("Content-Security-Policy", "")
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    for path, kind in (("/display.js", "text/javascript"), ("/display.css", "text/css")):
        response = get(web, path)
        assert response.status == 200 and response.getheader("Content-Type", "").startswith(kind)
        assert response.read()
    missing = get(web, "/../etc/passwd")
    assert missing.status == 404
    missing.read()


def test_each_line_shown_reaches_an_open_page_in_order(web: WebDisplay) -> None:
    web.show("look straight at the camera")
    stream = get(web, "/events")
    assert stream.getheader("Content-Type") == "text/event-stream"
    assert next_data(stream) == "look straight at the camera"  # the current line on connecting
    for text in ("turn your head to your left", "welcome - the door is open"):
        web.show(text)
        assert next_data(stream) == text


def test_closing_ends_the_open_streams(web: WebDisplay) -> None:
    web.show("present your badge")
    stream = get(web, "/events")
    assert next_data(stream) == "present your badge"
    web.close()
    assert stream.read().strip() == b""  # the server ended the stream (the rest: the event's blank line)


def test_several_displays_show_the_same_lines(web: WebDisplay, capsys: pytest.CaptureFixture[str]) -> None:
    both = Displays(TerminalDisplay(), web)
    both.show("look up")
    assert capsys.readouterr().err == ">> look up\n"
    assert next_data(get(web, "/events")) == "look up"


def test_a_bad_web_display_address_is_refused_before_the_door_starts() -> None:
    from faceverify._cli._door_cmd import _display

    class Args:
        no_display = True
        web_display = "no-port-here"

    with pytest.raises(ConfigurationError, match="HOST:PORT"):
        _display(Args())  # type: ignore[arg-type]
    with WebDisplay() as web:
        Args.web_display = web.url.removeprefix("http://").rstrip("/")  # the port is taken
        with pytest.raises(ConfigurationError, match="--web-display"):
            _display(Args())  # type: ignore[arg-type]
