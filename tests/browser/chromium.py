"""Headless Debian Chromium through Selenium and Debian's chromedriver (never a downloaded browser).

``Service(executable_path=...)`` keeps Selenium Manager from fetching a driver;
each browser gets a fresh profile directory, and the fake camera plays a y4m
(``--use-file-for-fake-video-capture``) with the permission prompt answered
"allow" (``--use-fake-ui-for-media-stream``) unless ``camera="deny"``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

CHROMIUM = Path(os.environ.get("FACEVERIFY_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("FACEVERIFY_CHROMEDRIVER", "/usr/bin/chromedriver"))


def missing() -> str | None:
    """Why Chromium cannot be driven here, or None when it can."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} is not installed (scripts/test installs Debian's chromium and chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


@contextmanager
def chromium(
    *, video: Path | None, camera: Literal["allow", "deny", "none"] = "allow", width: int = 900
) -> Iterator[object]:
    """A headless Chromium whose camera plays ``video`` (or is denied, or absent)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="fv-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--mute-audio",
        f"--user-data-dir={profile}",
        f"--window-size={max(width, 500)},1000",
    ):
        options.add_argument(flag)
    if camera != "none":
        options.add_argument("--use-fake-device-for-media-stream")
    if camera == "allow":
        options.add_argument("--use-fake-ui-for-media-stream")
    else:
        # The permission prompt answered "block": getUserMedia rejects with NotAllowedError.
        block = {"profile.default_content_setting_values.media_stream_camera": 2}
        options.add_experimental_option("prefs", block)
    if video is not None:
        options.add_argument(f"--use-file-for-fake-video-capture={video}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    if width < 500:  # below a desktop window's minimum: emulate a phone's viewport instead
        metrics = {"width": width, "height": 720, "deviceScaleFactor": 1, "mobile": True}
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
