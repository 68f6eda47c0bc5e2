"""Master key handling, rotation and crypto-shredding."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest
from vault_helpers import PACK, consent_for, matches, unit

from faceverify._clock import FrozenClock
from faceverify._errors import InvalidTemplateError, KeyStoreError, SubjectRevokedError
from faceverify._vault import ENV_VAR, KeyStore, MasterKey, Vault, init_master_key, load_master_key


def test_init_master_key_is_private_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    key = init_master_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_master_key(path).fingerprint == key.fingerprint
    with pytest.raises(KeyStoreError, match="refusing to overwrite"):
        init_master_key(path)
    assert load_master_key(path).fingerprint == key.fingerprint


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    init_master_key(path)
    path.chmod(0o644)
    with pytest.raises(KeyStoreError, match="chmod 600"):
        load_master_key(path)


def test_missing_key_file_and_missing_env(tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError, match="keys init"):
        load_master_key(tmp_path / "absent.key")
    with pytest.raises(KeyStoreError, match=ENV_VAR):
        load_master_key(environ={})


def test_env_key_hex_or_base64() -> None:
    key = MasterKey.generate()
    raw_hex = key.encoded()
    assert load_master_key(environ={ENV_VAR: raw_hex}).fingerprint == key.fingerprint
    import base64

    as_hex = base64.b64decode(raw_hex).hex()
    assert load_master_key(environ={ENV_VAR: as_hex}).fingerprint == key.fingerprint
    for bad in ("not a key!", "abcd", "00" * 31):
        with pytest.raises(KeyStoreError):
            load_master_key(environ={ENV_VAR: bad})
    assert "fingerprint" in repr(key) and key.encoded() not in repr(key)


def test_wrong_master_key_is_a_clear_error(tmp_path: Path, master: MasterKey, clock: FrozenClock) -> None:
    vault = Vault.open(tmp_path / "v", master, clock=clock)
    vault.enroll("alice", unit(1), consent=consent_for("alice"), model_pack_id=PACK)
    with pytest.raises(KeyStoreError, match="does not match"):
        Vault.open(tmp_path / "v", MasterKey.generate(), clock=clock)


def test_corrupt_key_store_is_a_clear_error(tmp_path: Path, master: MasterKey) -> None:
    path = tmp_path / "keys.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(KeyStoreError, match="cannot open key store"):
        KeyStore(path, master)


def test_rotation_rewraps_without_touching_templates(
    tmp_path: Path, master: MasterKey, clock: FrozenClock
) -> None:
    vault = Vault.open(tmp_path / "v", master, clock=clock)
    for i, subject in enumerate(["alice", "bob", "carol"]):
        vault.enroll(subject, unit(i), consent=consent_for(subject), model_pack_id=PACK)
    before = (tmp_path / "v" / "templates.db").read_bytes()
    new = MasterKey.generate()
    assert vault.keys.rotate(new) == 3
    assert (tmp_path / "v" / "templates.db").read_bytes() == before  # templates untouched
    reopened = Vault.open(tmp_path / "v", new, clock=clock)
    assert matches(reopened, "alice", 0) and matches(reopened, "carol", 2)
    with pytest.raises(KeyStoreError, match="does not match"):
        Vault.open(tmp_path / "v", master, clock=clock)


def test_rotation_is_noticed_by_a_store_opened_with_the_old_key(
    tmp_path: Path, master: MasterKey, clock: FrozenClock
) -> None:
    old = Vault.open(tmp_path / "v", master, clock=clock)
    old.enroll("alice", unit(1), consent=consent_for("alice"), model_pack_id=PACK)
    KeyStore(tmp_path / "v" / "keys.db", master).rotate(MasterKey.generate())
    with pytest.raises(KeyStoreError, match="rotated"):
        matches(old, "alice", 1)
    with pytest.raises(KeyStoreError, match="rotated"):
        old.enroll("bob", unit(2), consent=consent_for("bob"), model_pack_id=PACK)


def test_backup_taken_before_revoke_cannot_be_decrypted(
    tmp_path: Path, master: MasterKey, clock: FrozenClock
) -> None:
    vault = Vault.open(tmp_path / "v", master, clock=clock)
    vault.enroll("alice", unit(1), consent=consent_for("alice"), model_pack_id=PACK)
    vault.enroll("bob", unit(2), consent=consent_for("bob"), model_pack_id=PACK)
    backup = tmp_path / "backup"
    backup.mkdir()
    vault.store._db.read("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[attr-defined]
    shutil.copy(tmp_path / "v" / "templates.db", backup / "templates.db")

    receipt = vault.revoke("alice")
    assert receipt.template_erased and receipt.keys_destroyed == 1
    with pytest.raises(SubjectRevokedError):
        matches(vault, "alice", 1)

    # The old template database, with the *current* key store: Alice is gone, Bob still opens.
    restored = Vault(store=_store(backup / "templates.db"), keys=vault.keys, audit=vault.audit, clock=clock)
    with pytest.raises(InvalidTemplateError):
        matches(restored, "alice", 1)
    assert matches(restored, "bob", 2)


def test_reenrolling_shreds_the_previous_key(tmp_path: Path, master: MasterKey, clock: FrozenClock) -> None:
    vault = Vault.open(tmp_path / "v", master, clock=clock)
    vault.enroll("alice", unit(1), consent=consent_for("alice"), model_pack_id=PACK)
    vault.store._db.read("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[attr-defined]
    shutil.copy(tmp_path / "v" / "templates.db", tmp_path / "old.db")
    vault.enroll("alice", unit(5), consent=consent_for("alice"), model_pack_id=PACK)
    assert len(vault.keys.key_ids("alice")) == 1
    assert matches(vault, "alice", 5)
    restored = Vault(store=_store(tmp_path / "old.db"), keys=vault.keys, audit=vault.audit, clock=clock)
    with pytest.raises(InvalidTemplateError):
        matches(restored, "alice", 1)


def _store(path: Path):  # type: ignore[no-untyped-def]
    from faceverify._vault import SQLiteTemplateStore

    return SQLiteTemplateStore(path)
