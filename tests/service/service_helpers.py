"""Helpers for the service tests (imported by name; fixtures live in conftest.py).

The service under test: the real app, real models, a real vault on SQLite and on PostgreSQL.

``service`` is an in-process app (starlette's TestClient transport) over a real
Verifier; ``tests/service/test_workers.py`` runs real ``faceverify serve``
processes. Each test gets a fresh vault and fresh service tables.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from PIL import Image
from starlette.testclient import TestClient

from faceverify._service import ClientStore, ServiceConfig, create_app
from faceverify._vault import MasterKey
from faceverify._verifier import Verifier
from faceverify.client import Client
from faceverify.hazmat import FacePipeline

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "liveness"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from liveness_frames import Poser
from test_verify_live import STEP, poser

from faceverify._clock import FrozenClock
from faceverify._liveness import Challenge

#: Test-only fixed challenges (docs/service.md): the frames below are prepared for them.
CHALLENGES = (Challenge.TURN_RIGHT, Challenge.TURN_LEFT)
#: A live person's answer to each turn (yaw in degrees), held for three frames, then back to rest:
#: well past the 15-degree threshold, so the decision never hangs on one frame's noise.
TURNS = {Challenge.TURN_LEFT: 28.0, Challenge.TURN_RIGHT: -28.0}
__all__ = [
    "CHALLENGES", "STEP", "Poser", "Service", "answer", "consent_body", "jpeg", "open_service", "poser",
]


def answer(poser: Poser, challenges: tuple[Challenge, ...]) -> list[np.ndarray]:
    yaws = [0.0, 0.0]
    for challenge in challenges:
        turn = TURNS[challenge]
        yaws += [turn / 2, turn, turn, turn, 0.0, 0.0]
    return [poser.frame(yaw=yaw) for yaw in yaws]


RELEASE = hashlib.sha256(b"I agree to face login").hexdigest()


@dataclass
class Service:
    """A running app and a way to make keys for it."""

    app: object
    verifier: Verifier
    clients: ClientStore
    database: str
    clock: FrozenClock

    def key(self, *scopes: str, prefixes: tuple[str, ...] = (), name: str | None = None) -> str:
        client_id = name or ("-".join(scopes) + "-" + str(len(self.clients.list())))
        return self.clients.create(client_id, scopes=scopes, prefixes=prefixes)[1]

    def client(self, key: str) -> Client:
        transport = TestClient(self.app, raise_server_exceptions=False)._transport  # type: ignore[arg-type]
        return Client("http://testserver", api_key=key, transport=transport)

    def frames(self, client: Client, session_id: str, frames: list[np.ndarray]) -> list[object]:
        """Send frames as a camera would, one every 200 ms (the vault's clock moves with them)."""
        updates = []
        for frame in frames:
            self.clock.advance(STEP)
            updates.append(client.send_frame(session_id, jpeg(frame)))
        return updates

    def http(self) -> TestClient:
        return TestClient(self.app, raise_server_exceptions=False)  # type: ignore[arg-type]


def open_service(
    database: tuple[str, str],
    master_key: MasterKey,
    pipeline: FacePipeline,
    *,
    profile: str = "app-login",
    **settings: object,
) -> Service:
    from faceverify._models._manifest import builtin_manifest
    from faceverify._vault import Vault

    url, keys = database
    clock = FrozenClock(datetime.now(UTC))
    vault = Vault.open(url, master_key, keys_database=keys, create=True, clock=clock)
    verifier = Verifier(pipeline=pipeline, pack=builtin_manifest("yunet-sface"), vault=vault, profile=profile)
    # Test-only (docs/service.md): a fixed sequence, and no animation checks for warped-photo frames.
    verifier.fixed_challenges = CHALLENGES
    verifier.challenge_policy = replace(verifier.challenge_policy, animation_checks=False)
    config = ServiceConfig(database=url, keys_database=keys, profile=profile, **settings)  # type: ignore[arg-type]
    app = create_app(config, verifier=verifier)
    state = app.state.faceverify
    return Service(app, verifier, state.clients, url, clock)


def consent_body(purpose: str = "app-login", days: int = 365) -> dict[str, object]:
    return {
        "purpose": purpose,
        "expires_at": (datetime.now(UTC) + timedelta(days=days)).isoformat(),
        "evidence": {"document_sha256": RELEASE, "method": "in-app-checkbox", "collected_by": "signup"},
    }


def jpeg(array: np.ndarray, quality: int = 92) -> bytes:
    import io

    out = io.BytesIO()
    Image.fromarray(array).save(out, format="JPEG", quality=quality)
    return out.getvalue()
