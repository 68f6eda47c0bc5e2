"""SIGKILL mid-ceremony, on both engines: nothing committed is lost, nothing torn, audit complete.

A child process loops enrol / re-enrol / revoke (or master-key rotations) as fast as it can;
the parent kills it at a random moment and checks, with ``check_after_crash``:

- every subject is a tombstone or an active template that opens with its key (never an
  active template without a key) and holds one of the embeddings the child wrote;
- the subject's state is the one its newest audited ceremony says (an enrolment's entry
  names its template id): no ceremony committed without its entry, none audited that did
  not commit;
- the keyed chain verifies (the anchor may lag by the one ceremony in flight, never lead);
- after ``purge``, each subject holds exactly its template's key, or none.

``benchmarks/vault.py`` runs the same check over 200 trials; CI runs a few.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from vault_helpers import PACK, SRC, Where, consent_for, cosine_compare, unit

from faceverify._clock import SystemClock
from faceverify._vault import MasterKey, OpenedTemplate, Vault, load_master_key

HERE = Path(__file__).parent


def spawn(where: Where, master: MasterKey, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + str(HERE), **where.env(master.encoded())}
    child = subprocess.Popen(
        [sys.executable, str(HERE / "crash_child.py"), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    line = child.stdout.readline().strip()
    assert line == b"ready", (line, child.stderr.read() if child.stderr else b"")
    return child


def kill_after(child: subprocess.Popen[bytes], delay: float) -> None:
    time.sleep(delay)
    assert child.poll() is None, child.stderr.read() if child.stderr else ""
    child.send_signal(signal.SIGKILL)
    child.wait()


def check_after_crash(vault: Vault, subjects: int = 4) -> dict[str, int]:
    """The invariants above; returns counts (active, tombstones, audited ceremonies)."""
    entries = vault.audit.entries()
    counts = {"active": 0, "tombstones": 0, "ceremonies": 0}
    for n in range(subjects):
        subject = f"s{n}"
        ceremonies = [
            e
            for e in entries
            if e.subject == subject and e.outcome == "ok" and e.event in {"enroll", "revoke"}
        ]
        counts["ceremonies"] += len(ceremonies)
        row = vault.store.get(subject)
        last = ceremonies[-1] if ceremonies else None
        if row is None:
            assert last is None, f"{subject}: audited {last} but never stored"
            continue
        if row.state != "active":
            counts["tombstones"] += 1
            assert row.blob is None and row.consent_json is None
            assert last is not None and last.event == "revoke", f"{subject}: revoked without its entry"
            continue
        counts["active"] += 1
        assert last is not None and last.event == "enroll", f"{subject}: enrolled without its entry"
        assert f"template {row.template_id}" in last.reason, (
            f"{subject}: stored template is not the audited one"
        )
        probe = unit(1000 + n)  # one probe per subject: the same one for all would be enumeration

        def seen(opened: OpenedTemplate, subject: str = subject, probe: np.ndarray = probe) -> object:
            assert opened.header.subject_id == subject
            assert max(float(opened.embeddings[0] @ unit(k)) for k in range(7)) > 0.999
            return cosine_compare(probe)(opened)

        vault.verify(subject, probe, seen, model_pack_id=PACK)  # type: ignore[type-var]
    report = vault.audit.verify_chain()
    assert report.ok, report
    assert report.anchored >= report.entries - 3  # the anchor lags by what was in flight, at most
    return counts


def settled_keys(vault: Vault, subjects: int = 4) -> None:
    vault.purge()
    for n in range(subjects):
        row = vault.store.get(f"s{n}")
        expected = 1 if row is not None and row.state == "active" else 0
        assert len(vault.keys.key_ids(f"s{n}")) == expected


@pytest.mark.parametrize("delay", [0.4, 0.9])
def test_sigkill_during_enrol_and_revoke_leaves_old_or_new(
    open_vault: Callable[..., Vault], where: Where, master: MasterKey, delay: float
) -> None:
    open_vault(clock=SystemClock()).close()
    child = spawn(where, master, "ceremonies", str(int(delay * 10)))
    kill_after(child, delay + float(np.random.default_rng().uniform(0, 0.1)))
    vault = open_vault(create=False, clock=SystemClock())
    counts = check_after_crash(vault)
    assert counts["ceremonies"] > 0  # the child got some work done before it was killed
    settled_keys(vault)
    check_after_crash(vault)


def test_sigkill_during_master_key_rotation(
    open_vault: Callable[..., Vault], where: Where, master: MasterKey, tmp_path: Path
) -> None:
    vault = open_vault(clock=SystemClock())

    vault.enroll("s0", unit(0), consent=consent_for("s0"), model_pack_id=PACK)
    keydir = tmp_path / "keys-rotated"
    keydir.mkdir()
    child = spawn(where, master, "rotate", str(keydir))
    kill_after(child, 0.6 + float(np.random.default_rng().uniform(0, 0.3)))
    candidates = [master, *(load_master_key(p) for p in sorted(keydir.glob("key-*")))]
    opened = None
    for key in reversed(candidates):
        try:
            opened = open_vault(key, create=False, clock=SystemClock())
            break
        except Exception:
            continue
    assert opened is not None, "no master key opens the vault after the crash"
    rotations = [e for e in opened.audit.entries() if e.event == "key-rotate"]
    assert rotations, "the child rotated nothing before it was killed"
    # Every committed rotation is audited (the last one possibly on this open).
    committed = _count_rotations(where)
    assert len(rotations) == committed
    assert opened.audit.verify_chain().ok
    probe = unit(0)
    assert opened.verify("s0", probe, cosine_compare(probe), model_pack_id=PACK).match


def _count_rotations(where: Where) -> int:
    if where.backend == "sqlite":
        import sqlite3

        with sqlite3.connect(where.keys_database) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM rotations").fetchone()[0])
    import psycopg

    with psycopg.connect(where.keys_database) as pg:
        row = pg.execute("SELECT COUNT(*) FROM rotations").fetchone()
        assert row is not None
        return int(row[0])
