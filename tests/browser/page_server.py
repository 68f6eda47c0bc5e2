"""The service the browser tests drive: the real app (``create_app``) under uvicorn, on loopback.

``build_app`` assembles what ``faceverify serve`` runs — the service with its
pages, a vault on SQLite, real models, profile ``app-login`` (liveness
required, passive check on) — with the test-only fixed challenge sequence so a
recorded video can answer it, and a real API client (its key held by the test,
standing in for the embedding app's backend).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from faceverify._liveness._challenge import Challenge, ChallengePolicy
from faceverify._profiles import get_profile
from faceverify._service import ServiceConfig, create_app
from faceverify._vault import MasterKey, Vault
from faceverify._verifier import Verifier

CONTROLLER = "Example Corp"
#: Logins: the turn first. Moving closer while "turn left" is pending is no wrong response, but a
#: turn while "move closer" is pending is; the camera video loops and a session may take its
#: baseline anywhere in the loop, and in this order "move closer" is pending only right after the
#: turn was answered, when the video moves closer next, so every starting phase passes.
CHALLENGES = ("turn-left", "move-closer")
#: Enrolments: closer first, so the session goes on after the closest (sharpest) frontal frames and
#: collects several distinct ones (the video starts with the session there: see ``enrolling``).
ENROL_CHALLENGES = ("move-closer", "turn-left")
SCREENSHOTS = Path(
    os.environ.get("FACEVERIFY_SCREENSHOTS", Path(__file__).resolve().parents[2] / "build" / "browser")
)


@contextmanager
def environment(**values: str) -> Iterator[None]:
    """Settings the pages read from the environment, for the life of one app."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def enrol_photos(app: Any, subject_id: str, photos: Sequence[Path]) -> None:
    """Enrol ``subject_id`` from still photos, as the service's API would (for tests that need one)."""
    import hashlib
    from datetime import timedelta

    from faceverify._vault import ConsentEvidence, ConsentRecord

    verifier = app.state.faceverify.verifier
    now = verifier.vault.clock.now()
    evidence = ConsentEvidence(hashlib.sha256(b"test release").hexdigest(), "signed-document", "test")
    consent = ConsentRecord(subject_id, "app-login", now, now + timedelta(days=30), evidence)
    verifier.enroll(subject_id, list(photos), consent=consent)


def build_app(
    folder: Path, pipeline: Any, pack: Any, *, challenges: Sequence[str], origins: Sequence[str] = ()
) -> tuple[Any, str, Vault]:
    """The service app, an API key with the enroll and verify scopes, and its vault."""
    (folder / "vault").mkdir(parents=True, exist_ok=True)
    url, keys = f"sqlite:///{folder / 'vault' / 'vault.db'}", f"sqlite:///{folder / 'keys.db'}"  # keys apart
    vault = Vault.open(url, MasterKey.generate(), keys_database=keys, create=True)
    # For the browser tests only: the challenges' time limits are widened (a loaded CI machine may
    # take one frame a second), and the animation checks are off, because the test videos are
    # warped photos, which is exactly what those checks refuse. The other checks stay on (one face
    # throughout, motion, responses, the passive check); liveness strength is tested in tests/liveness.
    # The sample photos' faces are turned a little: at rest they read 15-20 degrees of yaw on the
    # non-saturating estimate, so "frontal" is widened to 25 for these videos (a person in front of a
    # real camera reads near 0); every turn is still measured from the session's own baseline.
    profile = get_profile("app-login")
    policy = replace(
        ChallengePolicy(),
        quality=profile.quality,
        baseline_time=timedelta(seconds=15),
        time_per_challenge=timedelta(seconds=15),
        animation_checks=False,
        replay_memory=False,  # one video plays to two logins: a replay by construction
        frontal_yaw=25.0,
    )
    verifier = Verifier(pipeline=pipeline, pack=pack, vault=vault, profile=profile, challenge_policy=policy)
    verifier.fixed_challenges = tuple(Challenge(c) for c in challenges)  # test-only (docs/service.md)
    config = ServiceConfig(database=url, keys_database=keys, profile="app-login")
    with environment(FACEVERIFY_PAGES_CONTROLLER=CONTROLLER, FACEVERIFY_PAGES_ORIGINS=",".join(origins)):
        app = create_app(config, verifier=verifier)
    _, api_key = app.state.faceverify.clients.create("demo-app", scopes=["enroll", "verify"])
    return app, api_key, vault


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class Uvicorn:
    """An ASGI app served by uvicorn in a thread on a free loopback port (stopped by ``close``)."""

    def __init__(self, app: object, *, sock: socket.socket | None = None) -> None:
        import uvicorn

        self._sock = sock or free_socket()
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
    demo: str = ""
    vault: Any = None
    app: Any = None

    @contextmanager
    def enrolling(self) -> Iterator[None]:
        """Sessions started inside ask ``ENROL_CHALLENGES`` (test-only fixed sequence), then back."""
        verifier = self.app.state.faceverify.verifier
        before = verifier.fixed_challenges
        verifier.fixed_challenges = tuple(Challenge(c) for c in ENROL_CHALLENGES)
        try:
            yield
        finally:
            verifier.fixed_challenges = before

    def audit(self, subject_id: str) -> list[tuple[str, str, str]]:
        """The subject's audit trail (event, outcome, reason): what a failing assertion shows."""
        return [(e.event, e.outcome, e.reason) for e in self.vault.audit.entries(subject=subject_id)]

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


def demo_app(service_url: str, api_key: str) -> Any:
    """examples/app_login/app.py, the documented integration, configured for this service."""
    import importlib.util
    import os

    os.environ["FACEVERIFY_URL"], os.environ["FACEVERIFY_API_KEY"] = service_url, api_key
    path = Path(__file__).resolve().parents[2] / "examples" / "app_login" / "app.py"
    spec = importlib.util.spec_from_file_location("demo_app_login", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app
