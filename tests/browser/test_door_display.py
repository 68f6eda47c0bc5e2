"""The door's prompts page (``WebDisplay``) in Chromium: it follows what the door shows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from chromium import chromium

from faceverify._door import WebDisplay


@pytest.fixture
def web() -> Iterator[WebDisplay]:
    with WebDisplay() as display:
        yield display


def shown(driver: object, text: str, timeout: float = 15) -> bool:
    from selenium.webdriver.support.ui import WebDriverWait

    def on_page(d: object) -> bool:
        return bool(d.find_element("id", "prompt").text == text)  # type: ignore[attr-defined]

    return bool(WebDriverWait(driver, timeout).until(on_page))


def test_the_page_shows_each_prompt_and_the_outcome(web: WebDisplay, screenshots: Path) -> None:
    web.show("look straight at the camera")
    with chromium(video=None, camera="none") as driver:
        driver.get(web.url)  # type: ignore[attr-defined]
        assert shown(driver, "look straight at the camera")
        for text in (
            "turn your head to your left",
            "move closer to the camera",
            "welcome - the door is open",
        ):
            web.show(text)
            assert shown(driver, text)
        driver.save_screenshot(str(screenshots / "door-display.png"))  # type: ignore[attr-defined]
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]  # type: ignore[attr-defined]
        assert errors == []  # the page's policy allowed its own script and stream, and nothing broke
