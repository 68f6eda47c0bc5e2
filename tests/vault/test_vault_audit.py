"""The audit log: every ceremony recorded with its actor, keyed-chained, tampering and truncation found."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import pytest
from vault_helpers import PACK, Where, consent_for, cosine_compare, raw_sql, unit

from faceverify._vault import AuditLog, MasterKey, Vault
from faceverify._vault._audit import entry_mac


def _populated(vault: Vault) -> AuditLog:
    vault.enroll("alice", unit(1), consent=consent_for("alice"), model_pack_id=PACK, actor="kiosk:7")
    for seed in (1, 9):
        probe = unit(seed)
        vault.verify("alice", probe, cosine_compare(probe), model_pack_id=PACK, actor="client:webapp")
    vault.consent("alice", actor="cli")
    vault.revoke("alice", actor="cli")
    vault.purge()
    return vault.audit


def test_ceremonies_are_recorded_with_their_actor_without_biometrics(vault: Vault) -> None:
    log = _populated(vault)
    entries = log.entries()
    assert [(e.event, e.outcome, e.actor) for e in entries] == [
        ("key-init", "ok", None),
        ("enroll", "ok", "kiosk:7"),
        ("verify", "match", "client:webapp"),
        ("verify", "no-match", "client:webapp"),
        ("consent-read", "ok", "cli"),
        ("revoke", "ok", "cli"),
    ]
    assert all(e.subject == "alice" for e in entries[1:])
    report = log.verify_chain()
    assert report.ok and report.entries == 6 and report.first_broken is None and report.anchored == 6
    assert log.head() == (6, entries[-1].mac)
    assert [e.seq for e in log.entries(subject="alice")] == [2, 3, 4, 5, 6]


def test_the_log_refuses_updates_and_deletes(vault: Vault, where: Where) -> None:
    _populated(vault)
    for sql in ("UPDATE audit SET outcome='match' WHERE seq=3", "DELETE FROM audit WHERE seq=2"):
        with pytest.raises(Exception, match="append-only"):
            raw_sql(where, sql)
    assert vault.audit.verify_chain().ok


def _tamper(where: Where, *statements: str) -> None:
    """What an administrator could do: drop the triggers, edit, leave."""
    if where.backend == "sqlite":
        drop = ["DROP TRIGGER audit_no_update", "DROP TRIGGER audit_no_delete"]
    else:
        drop = ["DROP TRIGGER audit_append_only ON audit"]
    for sql in (*drop, *statements):
        raw_sql(where, sql)


@pytest.mark.parametrize(
    ("sql", "first_broken", "problem"),
    [
        ("UPDATE audit SET outcome='match' WHERE seq=4", 4, "MAC"),
        ("UPDATE audit SET subject='bob' WHERE seq=2", 2, "MAC"),
        ("UPDATE audit SET actor='door:front' WHERE seq=3", 3, "MAC"),
        ("DELETE FROM audit WHERE seq=3", 4, "missing"),
        ("UPDATE audit SET prev_mac=(SELECT mac FROM audit WHERE seq=1) WHERE seq=4", 4, "link"),
    ],
)
def test_tampering_is_located(vault: Vault, where: Where, sql: str, first_broken: int, problem: str) -> None:
    _populated(vault)
    _tamper(where, sql)
    report = vault.audit.verify_chain()
    assert not report.ok
    assert report.first_broken == first_broken
    assert report.problem is not None and problem in report.problem


def test_a_rewritten_rehashed_log_does_not_verify(vault: Vault, where: Where) -> None:
    """Defect 5: recomputing every link (here with plain SHA-256, as the old chain was, and with
    a MAC under a guessed key) is not enough: the chain is keyed by the vault secret."""
    _populated(vault)
    entries = vault.audit.entries()
    forged_key = hashlib.sha256(b"a guess").digest()
    prev = "0" * 64
    statements = []
    for e in entries:
        outcome = "no-match" if e.seq == 3 else e.outcome
        fields = (e.seq, e.at, e.event, e.subject, e.actor, outcome, e.reason, prev)
        plain = hashlib.sha256(json.dumps(fields, separators=(",", ":")).encode()).hexdigest()
        mac = entry_mac(forged_key, fields) if e.seq % 2 else plain
        statements.append(
            f"UPDATE audit SET outcome='{outcome}', prev_mac='{prev}', mac='{mac}' WHERE seq={e.seq}"
        )
        prev = mac
    statements.append(f"UPDATE audit_head SET mac='{prev}'")
    _tamper(where, *statements)
    report = vault.audit.verify_chain()
    assert (report.ok, report.first_broken) == (False, 1)


@pytest.mark.parametrize("cut", ["newest", "newest-three", "table"])
def test_truncation_is_detected_by_the_anchor_kept_with_the_keys(
    vault: Vault, where: Where, cut: str
) -> None:
    """Defect 5: deleting the newest entries, or the whole table, no longer reports 'intact'."""
    _populated(vault)
    sql = {
        "newest": ["DELETE FROM audit WHERE seq=6", "UPDATE audit_head SET seq=5"],
        "newest-three": ["DELETE FROM audit WHERE seq>=4", "UPDATE audit_head SET seq=3"],
        "table": ["DELETE FROM audit", "DELETE FROM audit_head"],
    }[cut]
    _tamper(where, *sql)
    report = vault.audit.verify_chain()
    assert not report.ok
    assert report.problem is not None and "truncated" in report.problem
    assert report.anchored == 6


def test_an_edited_anchor_is_refused(vault: Vault, where: Where) -> None:
    from faceverify._errors import KeyStoreError

    _populated(vault)
    raw_sql(where, "UPDATE audit_anchor SET seq=2", keys=True)
    with pytest.raises(KeyStoreError, match="anchor"):
        vault.audit.verify_chain()


def test_the_chain_verifies_after_a_master_key_rotation(
    vault: Vault, open_vault: Callable[..., Vault]
) -> None:
    _populated(vault)
    new = MasterKey.generate()
    vault.rotate_master_key(new, actor="cli")
    reopened = open_vault(new, create=False)
    report = reopened.audit.verify_chain()
    assert report.ok and report.entries == 7
    assert reopened.audit.entries()[-1].event == "key-rotate"


def test_appends_from_two_vaults_on_one_database_stay_chained(open_vault: Callable[..., Vault]) -> None:
    a, b = open_vault(), open_vault(create=False)
    for i in range(20):
        (a if i % 2 else b).audit.record(
            "purge", subject=None, outcome="ok", reason=str(i), actor=f"w{i % 2}"
        )
    assert a.audit.verify_chain().ok and a.audit.verify_chain().entries == 21


def test_unknown_events_are_rejected(vault: Vault) -> None:
    with pytest.raises(ValueError, match="unknown audit event"):
        vault.audit.record("search", subject=None, outcome="ok")
