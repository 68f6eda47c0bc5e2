"""Recollections: each subject's last passing live sessions, sealed under the template's key.

The liveness layer's opaque recollections stand in here as short byte strings (the vault
never interprets them). Both engines, real crypto, the vault unmocked: ``recall`` below only
plays the liveness layer's part, recording what it is handed.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from vault_helpers import PACK, Where, backup_vault, consent_for, cosine_compare, open_from_env, raw_sql, unit

from faceverify._clock import FrozenClock
from faceverify._errors import (
    ConfigurationError,
    FaceVerifyError,
    InvalidTemplateError,
    LockedOutError,
    PresentationAttackError,
)
from faceverify._vault import MasterKey, OpenedTemplate, Vault, read_header
from faceverify._vault._engine import Engine, Schema, ensure_schema, open_engine
from faceverify._vault._recollection import open_recollection, seal_recollection
from faceverify._vault._store import VAULT_SCHEMA

Row = tuple[int, str, str, bytes]


class Recall:
    """The liveness layer's part: records the recollections it is handed, returns ``error``."""

    def __init__(self, error: FaceVerifyError | None = None) -> None:
        self.error = error
        self.seen: list[list[bytes]] = []

    def __call__(self, remembered: Sequence[bytes]) -> FaceVerifyError | None:
        self.seen.append(list(remembered))
        return self.error


def never(opened: OpenedTemplate) -> object:
    raise AssertionError("a refused attempt must not be compared")


def verify(
    vault: Vault, subject: str, seed: int, *, recall: Recall | None = None, remember: bytes | None = None
) -> bool:
    probe = unit(seed)
    result = vault.verify(
        subject, probe, cosine_compare(probe), model_pack_id=PACK, recall=recall, remember=remember
    )
    return bool(result.match)


def recalled(vault: Vault, subject: str, seed: int) -> list[bytes]:
    """What ``recall`` is handed when ``subject`` verifies (and matches) with ``seed``."""
    recall = Recall()
    assert verify(vault, subject, seed, recall=recall)
    assert len(recall.seen) == 1
    return recall.seen[0]


def rows(engine: Engine, subject: str | None = None) -> list[Row]:
    """The recollections table as stored: what an administrator sees."""
    with engine.unit(read_only=True) as tx:
        found = tx.all("SELECT seq, subject_id, template_id, blob FROM recollections ORDER BY seq")
    return [(int(r[0]), str(r[1]), str(r[2]), bytes(r[3])) for r in found if subject in {None, r[1]}]


def enroll(vault: Vault, subject: str, seed: int, *, remember: bytes | None = None, days: int = 730) -> str:
    header = vault.enroll(
        subject, unit(seed), consent=consent_for(subject, days=days), model_pack_id=PACK, remember=remember
    )
    return header.template_id


def test_a_match_remembers_and_the_next_recall_is_handed_exactly_those_newest_first(vault: Vault) -> None:
    template_id = enroll(vault, "alice", 1)
    assert recalled(vault, "alice", 1) == []
    assert verify(vault, "alice", 1, remember=b"session one")
    assert verify(vault, "alice", 1, remember=b"session two")
    recall = Recall()
    assert verify(vault, "alice", 1, recall=recall, remember=b"session three")  # recall, then compare
    assert recall.seen == [[b"session two", b"session one"]]
    assert recalled(vault, "alice", 1) == [b"session three", b"session two", b"session one"]
    stored = rows(vault.engine)
    assert [(r[1], r[2]) for r in stored] == [("alice", template_id)] * 3
    assert not any(b"session" in r[3] for r in stored)  # sealed at rest


def test_a_no_match_or_a_refusal_remembers_nothing(vault: Vault) -> None:
    enroll(vault, "alice", 1)
    assert not verify(vault, "alice", 99, remember=b"another face")
    with pytest.raises(PresentationAttackError):
        verify(vault, "alice", 1, recall=Recall(PresentationAttackError("replayed")), remember=b"replay")
    assert rows(vault.engine) == []
    assert recalled(vault, "alice", 1) == []


def test_only_the_newest_are_kept(open_vault: Callable[..., Vault]) -> None:
    vault = open_vault(recollections=2)
    enroll(vault, "alice", 1)
    enroll(vault, "bob", 2)
    assert verify(vault, "bob", 2, remember=b"bob's")
    for i in range(4):
        assert verify(vault, "alice", 1, remember=f"session {i}".encode())
    assert recalled(vault, "alice", 1) == [b"session 3", b"session 2"]
    assert len(rows(vault.engine, "alice")) == 2
    assert recalled(vault, "bob", 2) == [b"bob's"]  # another subject's are not trimmed

    default = open_vault()  # the same vault, remembering the default three
    assert default.recollections == 3
    assert verify(default, "alice", 1, remember=b"session 4")
    assert recalled(default, "alice", 1) == [b"session 4", b"session 3", b"session 2"]


def test_remembering_sweeps_rows_of_any_other_template(vault: Vault, where: Where) -> None:
    template_id = enroll(vault, "alice", 1)
    assert verify(vault, "alice", 1, remember=b"seen")
    raw_sql(  # a row left from another template (say, restored from a backup)
        where,
        "INSERT INTO recollections (subject_id, template_id, at, blob)"
        " SELECT subject_id, 'another template', at, blob FROM recollections",
    )
    assert verify(vault, "alice", 1, remember=b"seen again")
    assert [r[2] for r in rows(vault.engine)] == [template_id] * 2


def test_a_vault_remembering_none_stores_none(open_vault: Callable[..., Vault]) -> None:
    vault = open_vault(recollections=0)
    enroll(vault, "alice", 1, remember=b"enrolment")
    assert verify(vault, "alice", 1, remember=b"session")
    assert rows(vault.engine) == []
    assert recalled(vault, "alice", 1) == []


@pytest.mark.parametrize("count", [-1, 1.5, True, "3"])
def test_a_count_that_is_not_a_number_of_sessions_is_refused(
    open_vault: Callable[..., Vault], vault: Vault, count: object
) -> None:
    with pytest.raises(ConfigurationError):
        open_vault(recollections=count)
    with pytest.raises(ConfigurationError):
        Vault(vault.engine, vault.keys, recollections=count)  # type: ignore[arg-type]


def test_an_error_from_recall_refuses_audits_and_counts_toward_lockout_without_a_comparison(
    vault: Vault, clock: FrozenClock
) -> None:
    enroll(vault, "alice", 1)
    assert verify(vault, "alice", 1, remember=b"seen")
    error = PresentationAttackError("a replay of a recorded passing session")
    recall = Recall(error)
    for _ in range(vault.lockout.max_failures):
        with pytest.raises(PresentationAttackError) as info:
            vault.verify("alice", unit(1), never, model_pack_id=PACK, recall=recall, remember=b"replay")  # type: ignore[type-var]
        assert info.value is error
    assert recall.seen == [[b"seen"]] * vault.lockout.max_failures
    entries = vault.audit.entries(subject="alice")
    refused = [e.reason for e in entries if (e.event, e.outcome) == ("verify", "refused")]
    assert refused == [str(error)] * vault.lockout.max_failures
    assert entries[-1].event == "lockout"

    with pytest.raises(LockedOutError):
        vault.verify("alice", unit(1), never, model_pack_id=PACK, recall=recall)  # type: ignore[type-var]
    assert len(recall.seen) == vault.lockout.max_failures  # locked out before recall
    clock.advance(timedelta(seconds=30))
    assert recalled(vault, "alice", 1) == [b"seen"]  # the refused sessions were not remembered


@pytest.mark.parametrize("edit", ["version", "nonce", "ciphertext", "tag", "truncated", "empty"])
def test_an_edited_recollection_refuses_the_attempt(vault: Vault, where: Where, edit: str) -> None:
    enroll(vault, "alice", 1)
    assert verify(vault, "alice", 1, remember=b"seen")
    [(seq, _, _, blob)] = rows(vault.engine)
    at = {"version": 0, "nonce": 5, "ciphertext": 14, "tag": len(blob) - 1}.get(edit)
    if at is not None:
        changed = blob[:at] + bytes([blob[at] ^ 1]) + blob[at + 1 :]
    else:
        changed = blob[:-1] if edit == "truncated" else b""
    raw_sql(where, "UPDATE recollections SET blob=? WHERE seq=?", (changed, seq))
    recall = Recall()
    with pytest.raises(InvalidTemplateError) as info:
        vault.verify("alice", unit(1), never, model_pack_id=PACK, recall=recall)  # type: ignore[type-var]
    assert str(info.value) == "template could not be opened"  # the one message, whatever the edit
    assert recall.seen == []
    last = vault.audit.entries(subject="alice")[-1]
    assert (last.event, last.outcome) == ("verify", "error")


def test_a_recollection_copied_to_another_subject_does_not_open(vault: Vault, where: Where) -> None:
    enroll(vault, "alice", 1)
    bob_template = enroll(vault, "bob", 2)
    assert verify(vault, "alice", 1, remember=b"alice's session")
    assert verify(vault, "bob", 2, remember=b"bob's session")
    raw_sql(
        where,
        "INSERT INTO recollections (subject_id, template_id, at, blob)"
        " SELECT 'bob', ?, at, blob FROM recollections WHERE subject_id='alice'",
        (bob_template,),
    )
    recall = Recall()
    with pytest.raises(InvalidTemplateError):
        vault.verify("bob", unit(2), never, model_pack_id=PACK, recall=recall)  # type: ignore[type-var]
    assert recall.seen == []
    assert recalled(vault, "alice", 1) == [b"alice's session"]


def test_a_sealed_recollection_opens_only_as_its_subject_and_template_under_its_key() -> None:
    key, other = bytes(range(32)), bytes(32)
    blob = seal_recollection("alice", "t1", b"fingerprint", key)
    assert open_recollection("alice", "t1", blob, key) == b"fingerprint"
    for subject, template, with_key in [
        ("alicf", "t1", key),  # ids of the same length: the ids themselves are bound
        ("alice", "t2", key),
        ("alice", "t1", other),
        ("alice", "t1", None),
    ]:
        with pytest.raises(InvalidTemplateError):
            open_recollection(subject, template, blob, with_key)
    assert seal_recollection("alice", "t1", b"fingerprint", key) != blob  # a fresh nonce each time
    for bad in [b"", "text", b"x" * ((1 << 20) + 1)]:
        with pytest.raises(ValueError, match="recollection"):
            seal_recollection("alice", "t1", bad, key)  # type: ignore[arg-type]


def test_revoke_deletes_them_and_a_backup_taken_before_cannot_open_them_after(
    where: Where, master: MasterKey, clock: FrozenClock, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    keys = None if where.backend == "sqlite" else where.keys_database  # the default layout
    vault = Vault.open(where.database, master, keys_database=keys, clock=clock, create=True)
    enroll(vault, "alice", 1)
    enroll(vault, "bob", 2)
    assert verify(vault, "alice", 1, remember=b"alice's session")
    assert verify(vault, "bob", 2, remember=b"bob's session")
    server = request.getfixturevalue("postgres_url") if where.backend == "postgresql" else None
    backup = backup_vault(where, vault, tmp_path, server)

    copy = open_engine(backup, folder_file="vault.db")
    [(_, _, template_id, blob)] = rows(copy, "alice")
    with copy.unit(read_only=True) as tx:
        template = bytes(tx.one("SELECT blob FROM subjects WHERE subject_id='alice'")[0])
    copy.close()
    key_id = read_header(template).key_id
    assert (
        open_recollection("alice", template_id, blob, vault.keys.get("alice", key_id)) == b"alice's session"
    )

    receipt = vault.revoke("alice")
    assert receipt.keys_destroyed == 1
    assert rows(vault.engine, "alice") == []
    assert [r[1] for r in rows(vault.engine)] == ["bob"]
    with pytest.raises(InvalidTemplateError):  # the backup's copy, with the live key store
        open_recollection("alice", template_id, blob, vault.keys.get("alice", key_id))

    restored = Vault.open(backup, master, keys_database=keys, clock=clock)
    recall = Recall()
    with pytest.raises(InvalidTemplateError):
        restored.verify("alice", unit(1), never, model_pack_id=PACK, recall=recall)  # type: ignore[type-var]
    assert recall.seen == []
    assert recalled(restored, "bob", 2) == [b"bob's session"]  # the backup is a backup for the others
    restored.close()
    vault.close()


def test_re_enrolment_forgets_the_old_template_s_recollections(vault: Vault) -> None:
    enroll(vault, "alice", 1)
    assert verify(vault, "alice", 1, remember=b"old template's session")
    enroll(vault, "alice", 3)
    assert rows(vault.engine) == []
    assert recalled(vault, "alice", 3) == []
    new_template = enroll(vault, "alice", 4, remember=b"re-enrolment")
    assert [r[2] for r in rows(vault.engine)] == [new_template]
    assert recalled(vault, "alice", 4) == [b"re-enrolment"]


def test_enrolment_remembers_its_session_under_the_new_template_s_key(vault: Vault) -> None:
    header = vault.enroll(
        "alice", unit(1), consent=consent_for("alice"), model_pack_id=PACK, remember=b"enrolment"
    )
    [(_, subject, template_id, blob)] = rows(vault.engine)
    assert (subject, template_id) == ("alice", header.template_id)
    assert (
        open_recollection("alice", template_id, blob, vault.keys.get("alice", header.key_id)) == b"enrolment"
    )
    assert recalled(vault, "alice", 1) == [b"enrolment"]


def test_purge_deletes_an_expired_template_s_recollections(vault: Vault, clock: FrozenClock) -> None:
    enroll(vault, "alice", 1, remember=b"alice's enrolment", days=30)
    enroll(vault, "bob", 2, remember=b"bob's enrolment")
    clock.advance(timedelta(days=31))
    assert vault.purge() == 1
    assert [r[1] for r in rows(vault.engine)] == ["bob"]


def _schema_objects(engine: Engine) -> list[str]:
    with engine.unit(read_only=True) as tx:
        if engine.dialect.name == "sqlite":
            found = tx.all("SELECT type || ' ' || name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")
        else:
            found = tx.all(
                "SELECT 'table ' || tablename FROM pg_tables WHERE schemaname = current_schema()"
                " UNION ALL SELECT 'index ' || indexname FROM pg_indexes WHERE schemaname = current_schema()"
            )
    return sorted(str(r[0]) for r in found)


def test_a_version_1_vault_is_migrated_on_open_and_its_subjects_still_verify(
    where: Where, master: MasterKey, clock: FrozenClock, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # What faceverify made before version 2: V1's statements alone, meta version 1.
    fresh = (
        str(tmp_path / "v1") if where.backend == "sqlite" else request.getfixturevalue("postgres_database")()
    )
    v1 = open_engine(fresh, folder_file="vault.db")
    ensure_schema(v1, Schema(VAULT_SCHEMA.name, VAULT_SCHEMA.migrations[:1]), create=True, what="vault")
    v1_objects = _schema_objects(v1)
    v1.close()
    assert not any("recollections" in name for name in v1_objects)

    # A vault with an enrolled subject, taken back to version 1 (V2 only adds a table).
    vault = Vault.open(where.database, master, keys_database=where.keys_database, clock=clock, create=True)
    enroll(vault, "alice", 1)
    vault.close()
    raw_sql(where, "DROP TABLE recollections")
    raw_sql(where, "UPDATE meta SET value='1' WHERE name='version'")
    old = open_engine(where.database, folder_file="vault.db")
    assert _schema_objects(old) == v1_objects
    old.close()

    reopened = Vault.open(where.database, master, keys_database=where.keys_database, clock=clock)
    with reopened.engine.unit(read_only=True) as tx:
        assert tx.one("SELECT value FROM meta WHERE name='version'")[0] == str(VAULT_SCHEMA.version) == "2"
    assert recalled(reopened, "alice", 1) == []
    assert verify(reopened, "alice", 1, remember=b"after the upgrade")
    assert recalled(reopened, "alice", 1) == [b"after the upgrade"]
    assert reopened.audit.verify_chain().ok
    reopened.close()


def _opener(env: dict[str, str], start: Any, results: Any) -> None:
    os.environ.update(env)
    start.wait(timeout=60)
    try:
        open_from_env().close()
        results.put("opened")
    except Exception as exc:  # reported to the test, which names it
        results.put(f"{type(exc).__name__}: {exc}")


def test_processes_opening_one_version_1_vault_at_once_migrate_it_once(
    where: Where, master: MasterKey, clock: FrozenClock
) -> None:
    vault = Vault.open(where.database, master, keys_database=where.keys_database, clock=clock, create=True)
    enroll(vault, "alice", 1)
    vault.close()
    raw_sql(where, "DROP TABLE recollections")
    raw_sql(where, "UPDATE meta SET value='1' WHERE name='version'")
    context = multiprocessing.get_context("fork")
    openers = 4
    start, results = context.Barrier(openers), context.Queue()
    children = [
        context.Process(target=_opener, args=(where.env(master.encoded()), start, results))
        for _ in range(openers)
    ]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=120) for _ in children]
    for child in children:
        child.join(timeout=60)
    assert outcomes == ["opened"] * openers
