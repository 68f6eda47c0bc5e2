"""Live-session state in the store, ``require_verifiable``, ``StoreUnavailableError``: both engines."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from vault_helpers import PACK, Where, consent_for, matches, raw_sql, unit

from faceverify._clock import FrozenClock
from faceverify._errors import (
    ConsentError,
    LivenessRequiredError,
    LockedOutError,
    StoreUnavailableError,
    SubjectRevokedError,
    TemplateExpiredError,
    UnknownSessionError,
    UnknownSubjectError,
)
from faceverify._vault import MasterKey, Vault


def sid() -> str:
    return secrets.token_urlsafe(24)


def test_a_session_is_created_held_saved_and_deleted(vault: Vault, clock: FrozenClock) -> None:
    session = sid()
    vault.sessions.create(
        session, "alice", b"state-1", expires_at=clock.now() + timedelta(minutes=2), actor="web"
    )
    with vault.sessions.hold(session) as slot:
        assert (slot.subject_id, slot.state) == ("alice", b"state-1")
        slot.save(b"state-2" * 1000)
    with vault.sessions.hold(session) as slot:
        assert slot.state == b"state-2" * 1000
        slot.delete()
    with pytest.raises(UnknownSessionError), vault.sessions.hold(session):
        pass
    assert ("session", "started", "web") in [(e.event, e.outcome, e.actor) for e in vault.audit.entries()]


def test_state_is_sealed_at_rest_and_tampering_is_one_opaque_error(
    vault: Vault, where: Where, clock: FrozenClock
) -> None:
    a, b = sid(), sid()
    for session in (a, b):
        vault.sessions.create(
            session, "alice", b"secret nonce 1234", expires_at=clock.now() + timedelta(minutes=2)
        )
    raw_sql(
        where, "UPDATE sessions SET subject_id='bob' WHERE session_id=?", (a,)
    )  # moved to another subject
    swap = "UPDATE sessions SET state=(SELECT state FROM sessions WHERE session_id=?) WHERE session_id=?"
    raw_sql(where, swap, (a, b))  # another session's state
    messages = set()
    for session in (a, b, sid(), "short"):
        with pytest.raises(UnknownSessionError) as info, vault.sessions.hold(session):
            pass
        messages.add(str(info.value))
    assert len(messages) == 1 and UnknownSessionError.code == "unknown_session"


def test_expired_sessions_are_refused_then_swept_for_counting(vault: Vault, clock: FrozenClock) -> None:
    old, young = sid(), sid()
    vault.sessions.create(old, "alice", b"x", expires_at=clock.now() + timedelta(seconds=30))
    vault.sessions.create(young, "bob", b"y", expires_at=clock.now() + timedelta(minutes=5))
    clock.advance(timedelta(seconds=31))
    with pytest.raises(UnknownSessionError), vault.sessions.hold(old):
        pass
    assert vault.sessions.sweep() == ["alice"]
    assert vault.sessions.sweep() == []
    with vault.sessions.hold(young) as slot:
        assert slot.subject_id == "bob"


def test_hold_serialises_the_frames_of_one_session(
    open_vault: Callable[..., Vault], clock: FrozenClock
) -> None:
    """Two workers (two vault handles, as two processes have) feeding one session never interleave."""
    first, second = open_vault(), open_vault(create=False)
    session = sid()
    first.sessions.create(session, "alice", b"0", expires_at=clock.now() + timedelta(minutes=5))

    def feed(vault: Vault) -> None:
        for _ in range(10):
            with vault.sessions.hold(session) as slot:
                n = int(slot.state)
                time.sleep(0.005)  # a frame's work, while the row is held
                slot.save(str(n + 1).encode())

    workers = [threading.Thread(target=feed, args=(v,)) for v in (first, second)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    with first.sessions.hold(session) as slot:
        assert slot.state == b"20"  # no lost update


def test_a_ceremony_inside_hold_is_part_of_its_transaction(vault: Vault, clock: FrozenClock) -> None:
    vault.enroll("alice", unit(1), consent=consent_for("alice"), model_pack_id=PACK)
    session = sid()
    vault.sessions.create(session, "alice", b"x", expires_at=clock.now() + timedelta(minutes=5))
    with pytest.raises(RuntimeError), vault.sessions.hold(session) as slot:
        slot.delete()
        assert matches(vault, "alice", 1)
        raise RuntimeError("the worker died before the decision was sent")
    with vault.sessions.hold(session) as slot:  # rolled back together: the session is still there,
        assert slot.subject_id == "alice"
    assert [e.event for e in vault.audit.entries()].count("verify") == 0  # and no verify was recorded
    with vault.sessions.hold(session) as slot:
        assert matches(vault, "alice", 1)
        slot.delete()
    assert [e.event for e in vault.audit.entries()].count("verify") == 1


def test_require_verifiable_refuses_as_verify_would_without_counting(
    vault: Vault, clock: FrozenClock
) -> None:
    with pytest.raises(UnknownSubjectError):
        vault.require_verifiable("nobody")
    vault.enroll("alice", unit(1), consent=consent_for("alice"), model_pack_id=PACK)
    vault.enroll("bob", unit(2), consent=consent_for("bob", days=10, purpose="id-check"), model_pack_id=PACK)
    vault.require_verifiable("alice")  # live: fine
    with pytest.raises(LivenessRequiredError):
        vault.require_verifiable("alice", live=False)
    vault.require_verifiable("bob", live=False)
    with pytest.raises(TemplateExpiredError):
        vault.require_verifiable("bob", model_pack_id="another-pack")
    for _ in range(3):
        with pytest.raises(LivenessRequiredError):
            vault.require_verifiable("alice", live=False)
    assert vault.lockout.retry_after(_lockout(vault, "alice"), clock.now()) is None  # nothing counted
    for seed in range(10, 15):
        assert not matches(vault, "alice", unit(seed))
    with pytest.raises(LockedOutError):
        vault.require_verifiable("alice")
    vault.revoke("bob")
    with pytest.raises(SubjectRevokedError):
        vault.require_verifiable("bob")
    clock.advance(timedelta(days=11))
    door = Vault(vault.engine, vault.keys, clock=clock, purpose="door-access")
    with pytest.raises(ConsentError, match="app-login"):
        door.require_verifiable("alice")


def _lockout(vault: Vault, subject: str):  # type: ignore[no-untyped-def]
    with vault._unit(subject) as records:
        return records.lockout(subject)


def test_an_unreachable_database_is_store_unavailable(tmp_path: Path, master: MasterKey) -> None:
    assert StoreUnavailableError.code == "store_unavailable"
    nowhere = f"postgresql://postgres@/faceverify?host={tmp_path}/no-server&connect_timeout=2"
    with pytest.raises(StoreUnavailableError, match="cannot connect"):
        Vault.open(nowhere, master, keys_database=nowhere + "&application_name=k", create=True)


def test_a_server_that_goes_away_is_store_unavailable_and_then_recovers(
    master: MasterKey, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PostgreSQL server restarting: the ceremony in between fails typed, the next works."""
    import tempfile

    from faceverify._vault import _postgres

    monkeypatch.setattr(_postgres, "CONNECT_TIMEOUT_S", 2.0)  # how long a ceremony waits for a link

    import pgserver
    import psycopg

    base = Path(tempfile.mkdtemp(prefix="fvpg-"))  # a directory the postgres user can reach
    url = pgserver.start(base)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE v")
            conn.execute("CREATE DATABASE k")
        vault = Vault.open(
            pgserver.with_database(url, "v"), master, keys_database=pgserver.with_database(url, "k"),
            clock=clock, create=True,
        )  # fmt: skip
        vault.enroll("alice", unit(1), consent=consent_for("alice"), model_pack_id=PACK)
        pgserver.stop_server(base)
        with pytest.raises(StoreUnavailableError):
            matches(vault, "alice", 1)
        pgserver.start(base)
        assert matches(vault, "alice", 1)
        vault.close()
    finally:
        pgserver.stop(base)
