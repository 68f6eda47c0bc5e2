"""The audit log: every ceremony recorded, hash-chained, tampering located."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from vault_helpers import PACK, consent_for, cosine_compare, unit

from faceverify._clock import FrozenClock
from faceverify._vault import AuditLog, Vault


def _audit(vault: Vault) -> AuditLog:
    assert isinstance(vault.audit, AuditLog)
    return vault.audit


def _populated(vault: Vault) -> AuditLog:
    vault.enroll("alice", unit(1), consent=consent_for("alice"), model_pack_id=PACK)
    for seed in (1, 9):
        probe = unit(seed)
        vault.verify("alice", probe, cosine_compare(probe), model_pack_id=PACK)
    vault.consent("alice")
    vault.revoke("alice")
    vault.purge()
    return _audit(vault)


def test_ceremonies_are_recorded_without_biometrics(vault: Vault) -> None:
    log = _populated(vault)
    entries = log.entries()
    assert [(e.event, e.outcome) for e in entries] == [
        ("enroll", "ok"),
        ("verify", "match"),
        ("verify", "no-match"),
        ("consent-read", "ok"),
        ("revoke", "ok"),
    ]
    assert all(e.subject == "alice" for e in entries)
    report = log.verify_chain()
    assert report.ok and report.entries == 5 and report.first_broken is None
    assert log.head() == (5, entries[-1].hash)
    assert [e.seq for e in log.entries(subject="alice")] == [1, 2, 3, 4, 5]


def test_the_log_refuses_updates_and_deletes(vault: Vault) -> None:
    log = _populated(vault)
    with sqlite3.connect(log.path) as conn, pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE audit SET outcome='match' WHERE seq=3")
    with sqlite3.connect(log.path) as conn, pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM audit WHERE seq=2")


def _tamper(path: Path, sql: str) -> None:
    """What an administrator could do: drop the triggers, edit, leave."""
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TRIGGER audit_no_update")
        conn.execute("DROP TRIGGER audit_no_delete")
        conn.execute(sql)


@pytest.mark.parametrize(
    ("sql", "first_broken", "problem"),
    [
        ("UPDATE audit SET outcome='match' WHERE seq=3", 3, "hash"),
        ("UPDATE audit SET subject='bob' WHERE seq=1", 1, "hash"),
        ("DELETE FROM audit WHERE seq=2", 3, "missing"),
        ("UPDATE audit SET prev_hash=(SELECT hash FROM audit WHERE seq=1) WHERE seq=4", 4, "link"),
    ],
)
def test_tampering_is_located(vault: Vault, sql: str, first_broken: int, problem: str) -> None:
    log = _populated(vault)
    _tamper(log.path, sql)
    report = log.verify_chain()
    assert not report.ok
    assert report.first_broken == first_broken
    assert report.problem is not None and problem in report.problem


def test_rehashed_edit_breaks_the_next_link(vault: Vault) -> None:
    """Recomputing the edited entry's own hash is not enough: the next entry committed to the old one."""
    from faceverify._vault._audit import entry_hash

    log = _populated(vault)
    e = log.entries()[1]
    forged = entry_hash((e.seq, e.at, e.event, e.subject, "no-match", e.reason, e.prev_hash))
    _tamper(log.path, f"UPDATE audit SET outcome='no-match', hash='{forged}' WHERE seq=2")
    report = log.verify_chain()
    assert (report.ok, report.first_broken) == (False, 3)


def test_appends_from_two_logs_on_one_file_stay_chained(tmp_path: Path, clock: FrozenClock) -> None:
    a, b = AuditLog(tmp_path / "audit.db", clock=clock), AuditLog(tmp_path / "audit.db", clock=clock)
    for i in range(20):
        (a if i % 2 else b).record("purge", subject=None, outcome="ok", reason=str(i))
    assert a.verify_chain().ok and a.verify_chain().entries == 20


def test_unknown_events_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown audit event"):
        AuditLog(tmp_path / "a.db").record("search", subject=None, outcome="ok")
