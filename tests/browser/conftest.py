"""The browser tests' fixtures: a real service on loopback, videos of real faces, Chromium.

The service is the ASGI app under uvicorn in a thread, on a free loopback port,
with a real Verifier (real models, a real vault in a temp dir, profile
``app-login``: liveness required, passive check on). The challenge sequence is
fixed through the test-only configuration so the recorded videos can answer it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import chromium
from page_server import CHALLENGES, ENROL_CHALLENGES, SCREENSHOTS


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Outside CI, skip with the reason when Chromium truly cannot be had; in CI, never."""
    here = Path(__file__).parent
    ours = [item for item in items if Path(str(item.fspath)) == here / "test_pages.py"]
    reason = chromium.missing()
    if reason is None or not ours:
        return
    if os.environ.get("CI"):
        raise pytest.UsageError(f"browser tests cannot run in CI: {reason}")
    for item in ours:
        item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture(scope="session")
def videos(
    tmp_path_factory: pytest.TempPathFactory, pipeline: object, samples: dict[str, Path]
) -> dict[str, Path]:
    """y4m camera videos answering ``CHALLENGES``: alice enrols from one photo, logs in from
    another photo of the same person; mallory is someone else."""
    from camera_videos import write_camera_video

    folder = tmp_path_factory.mktemp("videos")
    return {
        "enrol": write_camera_video(folder / "alice-enrol.y4m", pipeline, samples["obama"], ENROL_CHALLENGES),  # type: ignore[arg-type]
        "alice": write_camera_video(folder / "alice.y4m", pipeline, samples["obama3"], CHALLENGES, seed=1),  # type: ignore[arg-type]
        "mallory": write_camera_video(folder / "mallory.y4m", pipeline, samples["biden"], CHALLENGES, seed=2),  # type: ignore[arg-type]
    }


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, pipeline: object, pack: object) -> Iterator[Any]:
    """The service, and beside it on another port (another origin) the demo app that embeds it."""
    from page_server import Service, Uvicorn, build_app, demo_app, free_socket

    demo_socket = free_socket()
    demo_origin = f"http://127.0.0.1:{demo_socket.getsockname()[1]}"
    app, api_key, vault = build_app(
        tmp_path_factory.mktemp("vault"), pipeline, pack, challenges=CHALLENGES, origins=[demo_origin]
    )
    server = Uvicorn(app)
    demo = Uvicorn(demo_app(server.url, api_key), sock=demo_socket)
    try:
        yield Service(server.url, api_key, demo=demo.url, vault=vault, app=app)
    finally:
        demo.close()
        server.close()
