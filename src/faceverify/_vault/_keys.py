"""Envelope encryption: one random data key per subject, wrapped by a master key.

Why envelopes: erasing one subject must not mean re-encrypting everyone, and
rotating the master key must not mean decrypting every template. Each subject's
templates are sealed with that subject's own 256-bit data key; the key store
holds only those keys, wrapped (AES-256-GCM, associated data = subject id + key
id, so a wrapped key moved to another subject fails to open) by the master key.

- **Crypto-shredding**: ``shred(subject_id)`` deletes the subject's wrapped keys
  (with ``secure_delete`` and a WAL truncation, so the bytes do not linger in
  free pages). Every copy of that subject's template, in old backups of the
  template database included, is then undecryptable: the key existed nowhere else.
- **Rotation**: ``rotate(new_master)`` unwraps and re-wraps the data keys in one
  transaction; templates are not touched.
- **Separation**: the key store is its own SQLite file, so backing up the
  template database does not back up the keys. (A backup of the key store *and*
  the master key defeats shredding: don't keep one.)

The master key comes from a file created 0600 by ``init_master_key`` or from
``FACEVERIFY_MASTER_KEY`` (base64 or hex). A store remembers a fingerprint of
its master key, so a wrong key is one clear ``KeyStoreError`` up front rather
than every template failing to open.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import sqlite3
import stat
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .._errors import KeyStoreError
from ._db import Database, to_db_time

ENV_VAR = "FACEVERIFY_MASTER_KEY"
KEY_BYTES = 32
_NONCE_BYTES = 12
_ROTATED = "the key store's master key was rotated since it was opened: reopen it with the new key"

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS subject_keys ("
    " subject_id TEXT NOT NULL, key_id TEXT NOT NULL, wrapped BLOB NOT NULL, created_at TEXT NOT NULL,"
    " PRIMARY KEY (subject_id, key_id))",
)


class MasterKey:
    """A 256-bit key-encryption key. Never printed, never stored beside the data."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes) or len(key) != KEY_BYTES:
            raise KeyStoreError(f"a master key is exactly {KEY_BYTES} bytes")
        self._key = key

    def __repr__(self) -> str:
        return f"MasterKey(fingerprint={self.fingerprint})"

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(secrets.token_bytes(KEY_BYTES))

    @classmethod
    def parse(cls, text: str) -> MasterKey:
        """Read a key written as 64 hex digits or as base64 of 32 bytes."""
        text = text.strip()
        try:
            if len(text) == 2 * KEY_BYTES and all(c in "0123456789abcdefABCDEF" for c in text):
                raw = bytes.fromhex(text)
            else:
                raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise KeyStoreError("the master key is neither hex nor base64") from None
        if len(raw) != KEY_BYTES:
            raise KeyStoreError(f"the master key decodes to {len(raw)} bytes, not {KEY_BYTES}")
        return cls(raw)

    @classmethod
    def from_file(cls, path: str | Path) -> MasterKey:
        """Load a key file, refusing one that other users could read (as ssh does)."""
        path = Path(path)
        try:
            mode = path.stat().st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise KeyStoreError(f"master key file {path} is readable by other users: chmod 600 it")
            text = path.read_text(encoding="ascii")
        except FileNotFoundError:
            raise KeyStoreError(
                f"no master key file at {path}: create one with `faceverify keys init`"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyStoreError(f"cannot read master key file {path}: {exc.__class__.__name__}") from None
        return cls.parse(text)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MasterKey:
        text = (os.environ if environ is None else environ).get(ENV_VAR)
        if not text:
            raise KeyStoreError(f"{ENV_VAR} is not set")
        return cls.parse(text)

    @property
    def fingerprint(self) -> str:
        """A public, non-reversible name for this key: tells a wrong key from a right one."""
        return hmac.new(self._key, b"faceverify master key fingerprint v1", hashlib.sha256).hexdigest()[:32]

    def encoded(self) -> str:
        return base64.b64encode(self._key).decode("ascii")

    def derive(self, label: bytes) -> bytes:
        """A 256-bit sub-key for one named use (e.g. the probe-digest HMAC key)."""
        return HKDF(
            algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=b"faceverify:" + label
        ).derive(self._key)

    def wrap(self, subject_id: str, key_id: str, data_key: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + AESGCM(self._key).encrypt(nonce, data_key, _wrap_aad(subject_id, key_id))

    def unwrap(self, subject_id: str, key_id: str, wrapped: bytes) -> bytes | None:
        try:
            key = AESGCM(self._key).decrypt(
                wrapped[:_NONCE_BYTES], wrapped[_NONCE_BYTES:], _wrap_aad(subject_id, key_id)
            )
        except (InvalidTag, ValueError):
            return None
        return key if len(key) == KEY_BYTES else None


def _wrap_aad(subject_id: str, key_id: str) -> bytes:
    return b"faceverify-subject-key-v1\x00" + subject_id.encode() + b"\x00" + key_id.encode()


def init_master_key(path: str | Path) -> MasterKey:
    """Create a new random master key in a new file readable by its owner only.

    Refuses to overwrite: losing the old key would make every template unreadable.
    """
    path = Path(path)
    key = MasterKey.generate()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyStoreError(f"{path} exists; refusing to overwrite a master key") from None
    except OSError as exc:
        raise KeyStoreError(f"cannot create master key file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        os.fchmod(handle.fileno(), 0o600)  # the umask may have narrowed it further, never widened
        handle.write(key.encoded() + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return key


def load_master_key(path: str | Path | None = None, *, environ: Mapping[str, str] | None = None) -> MasterKey:
    """The master key from ``path`` if given, else from ``FACEVERIFY_MASTER_KEY``."""
    if path is not None:
        return MasterKey.from_file(path)
    env = os.environ if environ is None else environ
    if not env.get(ENV_VAR):
        raise KeyStoreError(
            f"no master key: set {ENV_VAR} or pass a key file (`faceverify keys init` makes one)"
        )
    return MasterKey.from_env(env)


class KeyStore:
    """Wrapped per-subject data keys in their own SQLite file."""

    def __init__(self, path: str | Path, master: MasterKey) -> None:
        try:
            self._db = Database(path, _SCHEMA)
            self._db.read("PRAGMA secure_delete=ON")
            with self._db.transaction() as conn:
                row = conn.execute("SELECT value FROM meta WHERE name='fingerprint'").fetchone()
                if row is None:
                    conn.execute("INSERT INTO meta VALUES ('fingerprint', ?)", (master.fingerprint,))
                elif row[0] != master.fingerprint:
                    raise KeyStoreError(
                        f"the master key does not match key store {path} "
                        f"(key {master.fingerprint[:8]}…, store expects {row[0][:8]}…)"
                    )
        except sqlite3.DatabaseError as exc:
            raise KeyStoreError(f"cannot open key store {path}: {exc}") from None
        self._master = master
        self.path = Path(path)

    def new_key(self, subject_id: str, *, at: datetime) -> tuple[str, bytes]:
        """A fresh data key for ``subject_id``; older keys stay until ``shred(keep=...)``.

        Keeping the old key until the new template is committed is what makes a
        crash between the two files leave the old state usable.
        """
        key_id, key = secrets.token_hex(8), secrets.token_bytes(KEY_BYTES)
        with self._db.transaction() as conn:
            self._check_master(conn)
            conn.execute(
                "INSERT INTO subject_keys VALUES (?, ?, ?, ?)",
                (subject_id, key_id, self._master.wrap(subject_id, key_id, key), to_db_time(at)),
            )
        return key_id, key

    def get(self, subject_id: str, key_id: str) -> bytes | None:
        """The unwrapped data key, or ``None`` if it was shredded (or its wrapping altered)."""
        rows = self._db.read(
            "SELECT wrapped, (SELECT value FROM meta WHERE name='fingerprint') AS fingerprint"
            " FROM subject_keys WHERE subject_id=? AND key_id=?",
            (subject_id, key_id),
        )
        if rows and rows[0]["fingerprint"] != self._master.fingerprint:
            raise KeyStoreError(_ROTATED)
        return self._master.unwrap(subject_id, key_id, rows[0]["wrapped"]) if rows else None

    def shred(
        self, subject_id: str, *, keep: str | None = None, created_before: datetime | None = None
    ) -> int:
        """Destroy the subject's data keys (all but ``keep``; only older ones with ``created_before``).

        Returns how many were destroyed.
        """
        before = "9999" if created_before is None else to_db_time(created_before)
        with self._db.transaction() as conn:
            count = conn.execute(
                "DELETE FROM subject_keys WHERE subject_id=? AND key_id IS NOT ? AND created_at < ?",
                (subject_id, keep, before),
            ).rowcount
        if count:
            # Old pages of the deleted rows may still sit in the WAL file: fold it in and truncate it.
            self._db.read("PRAGMA wal_checkpoint(TRUNCATE)")
        return count

    def subjects(self) -> list[str]:
        """Subject ids holding a key (to find keys orphaned by an interrupted erasure)."""
        return [row["subject_id"] for row in self._db.read("SELECT DISTINCT subject_id FROM subject_keys")]

    def key_ids(self, subject_id: str) -> list[str]:
        rows = self._db.read(
            "SELECT key_id FROM subject_keys WHERE subject_id=? ORDER BY key_id", (subject_id,)
        )
        return [row["key_id"] for row in rows]

    def rotate(self, new_master: MasterKey) -> int:
        """Re-wrap every data key under ``new_master`` in one transaction; templates untouched.

        Either every key is re-wrapped and the store expects the new master key,
        or (on any failure) nothing changed and the old key still works.
        """
        with self._db.transaction() as conn:
            self._check_master(conn)
            rows = conn.execute("SELECT subject_id, key_id, wrapped FROM subject_keys").fetchall()
            for subject_id, key_id, wrapped in rows:
                key = self._master.unwrap(subject_id, key_id, wrapped)
                if key is None:
                    raise KeyStoreError(
                        f"a wrapped key of subject {subject_id!r} failed to open; rotation aborted"
                    )
                conn.execute(
                    "UPDATE subject_keys SET wrapped=? WHERE subject_id=? AND key_id=?",
                    (new_master.wrap(subject_id, key_id, key), subject_id, key_id),
                )
            conn.execute("UPDATE meta SET value=? WHERE name='fingerprint'", (new_master.fingerprint,))
        self._master = new_master
        self._db.read("PRAGMA wal_checkpoint(TRUNCATE)")
        return len(rows)

    def derive(self, label: bytes) -> bytes:
        return self._master.derive(label)

    def _check_master(self, conn: sqlite3.Connection) -> None:
        """Another process may have rotated the master key since this store was opened."""
        if (
            conn.execute("SELECT value FROM meta WHERE name='fingerprint'").fetchone()[0]
            != self._master.fingerprint
        ):
            raise KeyStoreError(_ROTATED)

    def close(self) -> None:
        self._db.close()
