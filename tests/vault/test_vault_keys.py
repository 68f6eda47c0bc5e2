"""Master key handling, rotation, crypto-shredding, and where the keys live."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from vault_helpers import PACK, Where, backup_vault, consent_for, matches, raw_sql, unit

from faceverify._clock import FrozenClock
from faceverify._errors import (
    ConfigurationError,
    InvalidTemplateError,
    KeyStoreError,
    SubjectRevokedError,
)
from faceverify._vault import (
    ENV_VAR,
    MasterKey,
    Vault,
    default_keys_location,
    init_master_key,
    load_master_key,
)


def test_init_master_key_is_private_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    key = init_master_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_master_key(path).fingerprint == key.fingerprint
    with pytest.raises(KeyStoreError, match="refusing to overwrite"):
        init_master_key(path)
    assert load_master_key(path).fingerprint == key.fingerprint
    assert list(tmp_path.iterdir()) == [path]  # written whole under a staging name, nothing left behind


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


def test_wrong_master_key_is_a_clear_error(open_vault: Callable[..., Vault], vault: Vault) -> None:
    vault.enroll("alice", unit(1), consent=consent_for("alice"), model_pack_id=PACK)
    with pytest.raises(KeyStoreError, match="does not match"):
        open_vault(MasterKey.generate(), create=False)


def test_corrupt_key_store_is_a_clear_error(tmp_path: Path, master: MasterKey) -> None:
    path = tmp_path / "keys" / "keys.db"
    path.parent.mkdir()
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(KeyStoreError, match="cannot open key store"):
        Vault.open(tmp_path / "v", master, keys_database=path, create=True)


def test_a_key_store_of_another_vault_is_refused(where: Where, master: MasterKey, tmp_path: Path) -> None:
    Vault.open(where.database, master, keys_database=where.keys_database, create=True).close()
    other = tmp_path / "other"
    with pytest.raises(KeyStoreError, match="another vault"):
        Vault.open(other, master, keys_database=where.keys_database, create=True)


def test_rotation_rewraps_without_touching_templates(
    vault: Vault, open_vault: Callable[..., Vault], master: MasterKey
) -> None:
    for i, subject in enumerate(["alice", "bob", "carol"]):
        vault.enroll(subject, unit(i), consent=consent_for(subject), model_pack_id=PACK)
    before = [vault.store.get(s) for s in ("alice", "bob", "carol")]
    new = MasterKey.generate()
    assert vault.rotate_master_key(new) == 3
    assert [vault.store.get(s) for s in ("alice", "bob", "carol")] == before  # templates untouched
    reopened = open_vault(new, create=False)
    assert matches(reopened, "alice", 0) and matches(reopened, "carol", 2)
    with pytest.raises(KeyStoreError, match="does not match"):
        open_vault(master, create=False)
    assert "key-rotate" in [e.event for e in reopened.audit.entries()]


def test_rotation_is_noticed_by_a_vault_opened_with_the_old_key(
    vault: Vault, open_vault: Callable[..., Vault]
) -> None:
    vault.enroll("alice", unit(1), consent=consent_for("alice"), model_pack_id=PACK)
    other = open_vault(create=False)
    other.rotate_master_key(MasterKey.generate())
    with pytest.raises(KeyStoreError, match="rotated"):
        matches(vault, "alice", 1)
    with pytest.raises(KeyStoreError, match="rotated"):
        vault.enroll("bob", unit(2), consent=consent_for("bob"), model_pack_id=PACK)


def test_a_rotation_interrupted_before_the_vault_recorded_it_is_completed_and_audited(
    vault: Vault, open_vault: Callable[..., Vault]
) -> None:
    vault.enroll("alice", unit(1), consent=consent_for("alice"), model_pack_id=PACK)
    new = MasterKey.generate()
    vault.keys.rotate(new, at=vault.clock.now())  # ... and the process dies here
    reopened = open_vault(new, create=False)
    last = reopened.audit.entries()[-1]
    assert (last.event, last.outcome) == ("key-rotate", "ok") and "interruption" in last.reason
    assert matches(reopened, "alice", 1)
    assert reopened.audit.verify_chain().ok


def test_a_backup_of_the_vault_taken_before_revoke_cannot_verify_the_revoked_subject(
    where: Where, master: MasterKey, clock: FrozenClock, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Defect 1: with the default layout, ``cp -r v v.bak; revoke alice; verify alice --vault v.bak``
    gave MATCH, because the keys were copied with the folder."""
    database = where.database
    keys = None if where.backend == "sqlite" else where.keys_database  # the default layout
    vault = Vault.open(database, master, keys_database=keys, clock=clock, create=True)
    if where.backend == "sqlite":
        assert not vault.keys.url.startswith("sqlite://" + str(Path(database).resolve()))
    vault.enroll("alice", unit(1), consent=consent_for("alice"), model_pack_id=PACK)
    vault.enroll("bob", unit(2), consent=consent_for("bob"), model_pack_id=PACK)
    server = request.getfixturevalue("postgres_url") if where.backend == "postgresql" else None
    backup = backup_vault(where, vault, tmp_path, server)

    receipt = vault.revoke("alice")
    assert receipt.template_erased and receipt.keys_destroyed == 1
    with pytest.raises(SubjectRevokedError):
        matches(vault, "alice", 1)

    restored = Vault.open(backup, master, keys_database=keys, clock=clock)
    with pytest.raises(InvalidTemplateError):
        matches(restored, "alice", 1)
    assert matches(restored, "bob", 2)  # the backup is a backup: the others still verify
    restored.close()
    vault.close()


def test_the_default_key_store_is_outside_the_vault_folder(
    tmp_path: Path, master: MasterKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FACEVERIFY_KEYS_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    vault = Vault.open(tmp_path / "v", master, create=True)
    files = sorted(p.name for p in (tmp_path / "v").iterdir())
    assert not any("keys" in f for f in files), files
    assert vault.keys.path is not None
    assert vault.keys.path.is_relative_to(tmp_path / "state" / "faceverify" / "keys")
    assert vault.keys.path == default_keys_location(vault.keys.path.stem)
    vault.close()


@pytest.mark.parametrize("inside", ["keys.db", "sub/keys.db"])
def test_a_key_store_inside_the_vault_folder_is_refused(
    tmp_path: Path, master: MasterKey, inside: str
) -> None:
    with pytest.raises(KeyStoreError, match="inside the vault folder"):
        Vault.open(tmp_path / "v", master, keys_database=tmp_path / "v" / inside, create=True)
    assert not (tmp_path / "v" / inside).exists()


def test_a_postgres_vault_needs_a_separate_key_database(
    postgres_database: Callable[[], str], master: MasterKey
) -> None:
    database = postgres_database()
    with pytest.raises(ConfigurationError, match="keys_database"):
        Vault.open(database, master, create=True)
    with pytest.raises(KeyStoreError, match="another database"):
        Vault.open(database, master, keys_database=database, create=True)


def test_the_old_layout_is_refused_with_a_reason(tmp_path: Path, master: MasterKey) -> None:
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "templates.db").write_bytes(b"")
    with pytest.raises(ConfigurationError, match="old layout"):
        Vault.open(tmp_path / "old", master)


def test_reenrolling_shreds_the_previous_key(vault: Vault, where: Where) -> None:
    vault.enroll("alice", unit(1), consent=consent_for("alice"), model_pack_id=PACK)
    first = vault.keys.key_ids("alice")
    vault.enroll("alice", unit(5), consent=consent_for("alice"), model_pack_id=PACK)
    assert len(vault.keys.key_ids("alice")) == 1 and vault.keys.key_ids("alice") != first
    assert matches(vault, "alice", 5)


def test_edited_wrapped_key_is_a_typed_error(vault: Vault, where: Where) -> None:
    """Defect 6: a TEXT ``wrapped`` (or any edited wrapping) is a clear typed error, not a traceback."""
    vault.enroll("alice", unit(1), consent=consent_for("alice"), model_pack_id=PACK)
    if where.backend == "sqlite":
        raw_sql(where, "UPDATE subject_keys SET wrapped='garbage'", keys=True)
        with pytest.raises(KeyStoreError, match="malformed"):
            matches(vault, "alice", 1)
    else:
        raw_sql(where, "UPDATE subject_keys SET wrapped=?", (b"x" * 60,), keys=True)
        with pytest.raises(InvalidTemplateError):
            matches(vault, "alice", 1)
