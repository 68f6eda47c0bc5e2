"""The browser tests' fixtures: a real service on loopback, videos of real faces, Chromium.

The service is the ASGI app under uvicorn in a thread, on a free loopback port,
with a real Verifier (real models, a real vault in a temp dir, profile
``app-login``: liveness required, passive check on). The challenge sequence is
fixed through the test-only configuration so the recorded videos can answer it.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import chromium

CHALLENGES = ("turn-left", "move-closer")
SCREENSHOTS = Path(
    os.environ.get("FACEVERIFY_SCREENSHOTS", Path(__file__).resolve().parents[2] / "build" / "browser")
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Outside CI, skip with the reason when Chromium truly cannot be had; in CI, never."""
    ours = [item for item in items if Path(str(item.fspath)).is_relative_to(Path(__file__).parent)]
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
    from videos import write_camera_video

    folder = tmp_path_factory.mktemp("videos")
    return {
        "enrol": write_camera_video(folder / "alice-enrol.y4m", pipeline, samples["obama"], CHALLENGES),  # type: ignore[arg-type]
        "alice": write_camera_video(folder / "alice.y4m", pipeline, samples["obama3"], CHALLENGES, seed=1),  # type: ignore[arg-type]
        "mallory": write_camera_video(folder / "mallory.y4m", pipeline, samples["biden"], CHALLENGES, seed=2),  # type: ignore[arg-type]
    }


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class Uvicorn:
    """An ASGI app served by uvicorn in a thread on a free loopback port (stopped by ``close``)."""

    def __init__(self, app: object) -> None:
        import uvicorn

        self._sock = free_socket()
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", ws="websockets", lifespan="off")  # type: ignore[arg-type]
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


@dataclass
class Service:
    """The running service and an app backend's view of it (its API key)."""

    url: str
    api_key: str

    def mint(self, ceremony: str, subject_id: str, **extra: str) -> str:
        """What an app's backend does: a ceremony token for one subject, with its API key."""
        import httpx

        body = {"ceremony": ceremony, "subject_id": subject_id, "purpose": "app-login", **extra}
        r = httpx.post(
            f"{self.url}/v1/ceremonies", json=body, headers={"Authorization": f"Bearer {self.api_key}"}
        )
        assert r.status_code == 201, r.text
        token: str = r.json()["token"]
        return token

    def redeem(self, receipt: str) -> dict[str, str]:
        import httpx

        r = httpx.post(
            f"{self.url}/v1/ceremonies/receipts",
            json={"receipt": receipt},
            headers={"Authorization": f"Bearer {self.api_key}"},
        )
        assert r.status_code == 200, r.text
        out: dict[str, str] = r.json()
        return out


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, pipeline: object, pack: object) -> Iterator[Service]:
    from server import build_app

    app, api_key = build_app(tmp_path_factory.mktemp("vault"), pipeline, pack, challenges=CHALLENGES)
    server = Uvicorn(app)
    try:
        yield Service(server.url, api_key)
    finally:
        server.close()
