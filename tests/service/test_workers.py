"""Two ``faceverify serve`` processes on one PostgreSQL: a live session's frames alternate between
them (two hosts' worth of processes) and the session completes and decides correctly.

Real processes, real models, real PostgreSQL, the real clock: each frame is
timestamped by whichever server receives it. Keys are made with the
``faceverify clients`` command.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import servers
from liveness_frames import Poser
from service_helpers import CHALLENGES, STEP, answer, consent_body, jpeg

from faceverify._vault import MasterKey, Vault
from faceverify.client import Client, ServiceError


@pytest.fixture
def two_servers(
    postgres_database: Callable[[], str], tmp_path: Path, model_cache: Path
) -> Iterator[tuple[list[servers.Server], dict[str, str]]]:
    url, keys = postgres_database(), postgres_database()
    key = MasterKey.generate()
    Vault.open(url, key, keys_database=keys, create=True)
    env = {
        "FACEVERIFY_MASTER_KEY": key.encoded(),
        "FACEVERIFY_TEST_FIXED_CHALLENGES": ",".join(c.value for c in CHALLENGES),
        "FACEVERIFY_TEST_SYNTHETIC_FRAMES": "1",
    }
    made = {}
    for name, scopes in (("enroller", "enroll,revoke"), ("login", "verify")):
        done = servers.faceverify(
            "clients", "create", name, "--scopes", scopes, "--database", url, "--json", env=env
        )
        assert done.returncode == 0, done.stderr
        made[name] = json.loads(done.stdout)["api_key"]
    listed = servers.faceverify("clients", "list", "--database", url, env=env)
    assert "enroller" in listed.stdout and "fv_" not in listed.stdout  # keys are never shown again
    extra = ("--cache", str(model_cache))
    started = []
    try:
        for _ in range(2):
            started.append(servers.start(url, keys_database=keys, env=env, log_dir=tmp_path, extra=extra))
        yield started, made
    finally:
        for server in started:
            server.stop()


def test_frames_alternating_between_two_servers_complete_and_decide(
    two_servers: tuple[list[servers.Server], dict[str, str]],
    samples: dict[str, Path],
    obama3: Poser,
    biden: Poser,
) -> None:
    (a, b), keys = two_servers
    with Client(a.url, api_key=keys["enroller"]) as enroller:
        enroller._http.post("/v1/subjects/acct-1/consent", json=consent_body()).raise_for_status()
        enroller.enroll("acct-1", [samples["obama"].read_bytes(), samples["obama2"].read_bytes()])
    login_a, login_b = Client(a.url, api_key=keys["login"]), Client(b.url, api_key=keys["login"])

    def session(poser: Poser) -> object:
        ticket = login_a.start_session("acct-1")
        for i, frame in enumerate(answer(poser, CHALLENGES)):
            time.sleep(STEP.total_seconds())  # a camera's pace: the server times frames on arrival
            update = (login_b if i % 2 == 0 else login_a).send_frame(ticket.session_id, jpeg(frame))
        assert update.finished and update.state == "passed", update
        return login_b.finish_session(ticket.session_id)

    genuine = session(obama3)
    assert genuine.match and genuine.live  # type: ignore[attr-defined]
    impostor = session(biden)
    assert not impostor.match  # type: ignore[attr-defined]
    # A still photo of this app-login subject is refused by either server.
    for login in (login_a, login_b):
        with pytest.raises(ServiceError) as refused:
            login.verify_still("acct-1", samples["obama3"].read_bytes())
        assert refused.value.code in ("not_live", "not_verifiable")
    login_a.close()
    login_b.close()
