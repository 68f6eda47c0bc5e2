"""Doors on the shared PostgreSQL vault: a network cut, the replica, and revocation reaching every door.

The shared vault is a real PostgreSQL server (``postgres_database``), reached
through a Unix-socket relay this test can cut: a network partition as a door
sees it (connections refused, pooled ones broken). Each door has its own
replica, a local SQLite vault. The PostgreSQL pool's wait for a connection is
shortened from 10 s to 1 s so that the test does not sit out each outage. The frames
are synthesized from photos: the sessions' animation checks are off (``synthetic_policy``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import numpy as np
import pytest
from door_frames import FPS, Poser, answer, synthetic_policy, write_video
from door_helpers import KEY, FakeRelay, consent

from faceverify._clock import FrozenClock
from faceverify._door import BadgeMap, Claim, Door, DoorConfig, ListSink, RecordedCamera, Replica, SyncReport
from faceverify._errors import StoreUnavailableError
from faceverify._liveness import Challenge
from faceverify._vault import MasterKey, Vault
from faceverify._verifier import Verifier
from faceverify.hazmat import FacePipeline, ModelPack

ASKED = (Challenge.TURN_LEFT, Challenge.TURN_RIGHT)
BADGES = BadgeMap({"1001": "alice", "2002": "bob"})


class Relay:
    """A Unix-socket relay in front of PostgreSQL's socket; ``cut()`` is the network going down."""

    def __init__(self, upstream: Path) -> None:
        self.upstream = upstream
        self.dir = Path(tempfile.mkdtemp(prefix="fvnet-"))
        self.path = self.dir / upstream.name
        self._links: list[socket.socket] = []
        self._lock = threading.Lock()
        self._server: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(self.path))
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(str(self.upstream))
            with self._lock:
                self._links += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        self.path.unlink()
        with self._lock:
            for s in self._links:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self._links.clear()

    def url(self, url: str) -> str:
        """``url`` (a database on the test server) reached through this relay."""
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        query["host"] = [str(self.dir)]
        return urlunsplit(parts._replace(query=urlencode(query, doseq=True)))


@pytest.fixture
def network(
    postgres_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Relay, str, str]]:
    import faceverify._vault._postgres as pg

    monkeypatch.setattr(pg, "CONNECT_TIMEOUT_S", 1.0)
    vault_url, keys_url = postgres_database(), postgres_database()
    host = Path(parse_qs(urlsplit(vault_url).query)["host"][0])
    relay = Relay(host / ".s.PGSQL.5432")
    yield relay, relay.url(vault_url), relay.url(keys_url)
    with contextlib.suppress(OSError, FileNotFoundError):
        relay.cut()


@pytest.fixture(scope="module")
def alice_video(tmp_path_factory: pytest.TempPathFactory, alice: Poser) -> Path:
    return write_video(tmp_path_factory.mktemp("replica") / "alice.avi", answer(alice, ASKED), fps=FPS)


def sync_when_back(replica: Replica) -> SyncReport:
    """Sync as the door's background thread does, until the pool has reconnected (it backs off)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return replica.sync()
        except StoreUnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def door(name: str, shared: Verifier, replica: Replica | None, video: Path, clock: FrozenClock) -> Door:
    return Door(
        shared,
        RecordedCamera(video, clock=clock),
        BADGES,
        FakeRelay(),
        events=ListSink(),
        config=DoorConfig(name=name, challenges=ASKED),
        clock=clock,
        replica=replica,
    )


def shared_verifier(
    vault_url: str, keys_url: str, pipeline: FacePipeline, pack: ModelPack, clock: FrozenClock
) -> Verifier:
    """The kiosk's view of the shared PostgreSQL vault (door-access, synthetic frames' policy)."""
    vault = Vault.open(
        vault_url, KEY, keys_database=keys_url, clock=clock, purpose="door-access", create=True
    )
    return Verifier(
        pipeline=pipeline, pack=pack, vault=vault, profile="door-access", challenge_policy=synthetic_policy()
    )


def test_a_revoked_subject_is_refused_at_every_door_within_the_stated_time(
    network: tuple[Relay, str, str],
    tmp_path: Path,
    pipeline: FacePipeline,
    pack: ModelPack,
    clock: FrozenClock,
    samples: dict[str, Path],
    alice_video: Path,
) -> None:
    relay, vault_url, keys_url = network
    shared = shared_verifier(vault_url, keys_url, pipeline, pack, clock)
    shared.enroll(
        "alice", [samples["obama"], samples["obama2"]], consent=consent("alice"), actor="kiosk:op-1"
    )
    shared.enroll("bob", [samples["biden"]], consent=consent("bob"), actor="kiosk:op-1")

    def replica_for(name: str) -> Replica:
        local_vault = Vault.open(
            tmp_path / name / "replica",
            MasterKey(os.urandom(32)),
            keys_database=tmp_path / name / "run" / "keys.db",  # memory-backed storage in production
            clock=clock,
            purpose="door-access",
            create=True,
        )
        local = Verifier(
            pipeline=pipeline,
            pack=pack,
            vault=local_vault,
            profile="door-access",
            challenge_policy=synthetic_policy(),
        )
        return Replica(
            shared, local, BADGES.subjects(), door=name, max_staleness=timedelta(minutes=5), clock=clock
        )

    front_replica, back_replica = replica_for("front"), replica_for("back")
    for r in (front_replica, back_replica):
        report = r.sync()
        assert set(report.copied) == {"alice", "bob"} and not r.stale
    # A second sync copies nothing: the templates did not change (nothing opened, nothing audited).
    assert back_replica.sync().copied == ()
    front = door("front", shared, front_replica, alice_video, clock)
    assert front.handle(Claim("1001", "test")).reason == "match"  # decided in the shared vault

    # alice withdraws consent at the kiosk: a connected door refuses her at once, before she moves.
    shared.revoke("alice", actor="kiosk:op-1")
    event = front.handle(Claim("1001", "test"))
    assert (event.reason, event.opened) == ("revoked", False)

    # The network goes down. The back door has not synced since the revocation: within the stated
    # bound (max_staleness, 5 min) its replica still holds alice's copy and decides with it.
    relay.cut()
    back = door("back", shared, back_replica, alice_video, clock)
    event = back.handle(Claim("1001", "test"))
    assert (event.reason, event.opened) == ("match", True), event.detail
    assert "offline" in event.detail and event.replica_age_s is not None
    with pytest.raises(StoreUnavailableError):
        back_replica.sync()
    # Past the bound, the stale replica decides nothing: the door stays shut for everyone.
    clock.advance(timedelta(minutes=5, seconds=1))
    assert back_replica.stale
    event = back.handle(Claim("2002", "test"))
    assert (event.reason, event.opened) == ("store_unavailable", False) and "stale" in event.detail

    # The network comes back: the back door's sync revokes alice in its replica (its local key
    # destroyed); offline again, alice is refused, bob still decided from the fresh replica.
    relay.restore()
    report = sync_when_back(back_replica)
    assert report.dropped == ("alice",) and "alice" in report.refused
    relay.cut()
    event = back.handle(Claim("1001", "test"))
    assert (event.reason, event.opened) == ("revoked", False)
    assert [e.event for e in back_replica.local.vault.audit.entries(subject="alice")][-1] == "revoke"


def test_without_the_vault_or_a_replica_the_door_stays_shut(
    network: tuple[Relay, str, str],
    tmp_path: Path,
    pipeline: FacePipeline,
    pack: ModelPack,
    clock: FrozenClock,
    samples: dict[str, Path],
    alice_video: Path,
) -> None:
    relay, vault_url, keys_url = network
    shared = shared_verifier(vault_url, keys_url, pipeline, pack, clock)
    shared.enroll("alice", [samples["obama"], samples["obama2"]], consent=consent("alice"))
    relay.cut()
    gate = door("gate", shared, None, alice_video, clock)
    event = gate.handle(Claim("1001", "test"))
    assert (event.reason, event.opened) == ("store_unavailable", False), event.detail
    assert isinstance(gate.camera, RecordedCamera) and gate.camera.decoded == 0  # refused before anyone moved
    assert np.isfinite(event.latency_ms or 0.0)
