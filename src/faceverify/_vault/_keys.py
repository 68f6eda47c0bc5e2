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
- **Separation**: the key store is its own database (a SQLite file outside the
  vault folder by default, or another PostgreSQL database, ideally on another
  server or under another role), so backing up the vault does not back up the
  keys. (A backup of the key store *and* the master key defeats shredding: don't
  keep one.) A key store inside the vault folder is refused.
- **The vault secret**: one more random key, wrapped like the subjects' keys,
  from which the vault derives its audit-chain, lockout-state, session and probe
  keys; it survives master-key rotation (re-wrapped with the rest), so the audit
  chain written before a rotation still verifies after it. The key store also
  keeps the audit chain's *anchor* (``_audit``), which is why cutting the newest
  entries off the vault's log is detected.

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
import json
import os
import secrets
import stat
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .._errors import ConfigurationError, KeyStoreError, StoreCorruptError, StoreUnavailableError
from ._engine import Engine, Migration, Schema, Tx, ensure_schema, redact

ENV_VAR = "FACEVERIFY_MASTER_KEY"
KEY_BYTES = 32
_NONCE_BYTES = 12
_ROTATED = "the key store's master key was rotated since it was opened: reopen it with the new key"

_MALFORMED = "the key store's record is malformed or was edited outside faceverify"


def _ddl(time: str, blob: str, serial: str) -> list[str]:
    return [
        f"CREATE TABLE subject_keys (subject_id TEXT NOT NULL, key_id TEXT NOT NULL, wrapped {blob} NOT NULL,"
        f" created_at {time} NOT NULL, PRIMARY KEY (subject_id, key_id))",
        f"CREATE TABLE secrets (name TEXT PRIMARY KEY, wrapped {blob} NOT NULL)",
        "CREATE TABLE audit_anchor (id INTEGER PRIMARY KEY CHECK (id = 1), seq BIGINT NOT NULL,"
        f" mac TEXT NOT NULL, tag {blob} NOT NULL)",
        f"CREATE TABLE rotations (seq {serial} PRIMARY KEY, at {time} NOT NULL,"
        " old_fingerprint TEXT NOT NULL, new_fingerprint TEXT NOT NULL)",
    ]


_V1: Migration = {
    "sqlite": _ddl("TEXT", "BLOB", "INTEGER"),
    "postgresql": _ddl("TIMESTAMPTZ", "BYTEA", "BIGSERIAL"),
}
#: The key store's schema; add a migration to change it (never edit a released one).
KEYS_SCHEMA = Schema("faceverify-keys", [_V1])
_VAULT_SECRET = "vault"  # noqa: S105 - the name of a row, not a secret


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
    The file appears whole or not at all: the key is written and synced under a
    hidden temporary name, then hard-linked to ``path`` (which, like ``O_EXCL``,
    never replaces an existing file), so a crash never leaves an empty key file.
    """
    path = Path(path)
    if path.exists():
        raise KeyStoreError(f"{path} exists; refusing to overwrite a master key")
    key = MasterKey.generate()
    staging = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise KeyStoreError(f"cannot create master key file {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            os.fchmod(handle.fileno(), 0o600)  # the umask may have narrowed it further, never widened
            handle.write(key.encoded() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.link(staging, path)
    except FileExistsError:
        raise KeyStoreError(f"{path} exists; refusing to overwrite a master key") from None
    except OSError as exc:
        raise KeyStoreError(f"cannot create master key file {path}: {exc.strerror}") from None
    finally:
        staging.unlink(missing_ok=True)
    _sync_directory(path.parent)
    return key


def _sync_directory(directory: Path) -> None:
    """Make a new directory entry durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
    """Wrapped per-subject data keys, the vault secret and the audit anchor, in their own database."""

    def __init__(self, engine: Engine, master: MasterKey, *, vault_id: str, create: bool = False) -> None:
        self._engine = engine
        self._master = master
        self.url = engine.url
        self.path = Path(engine.url[len("sqlite://") :]) if engine.url.startswith("sqlite://") else None
        try:
            ensure_schema(engine, KEYS_SCHEMA, create=create, what="key store")
        except ConfigurationError as exc:
            raise KeyStoreError(str(exc)) from None
        except (StoreUnavailableError, StoreCorruptError) as exc:
            raise KeyStoreError(f"cannot open key store {redact(engine.url)}: {exc}") from None
        with engine.unit() as tx:
            meta = dict(tx.all("SELECT name, value FROM meta"))
            expected = meta.get("fingerprint")
            if expected is None:
                if not create:
                    raise KeyStoreError(
                        f"key store {redact(engine.url)} was never initialised (`faceverify keys init`)"
                    )
                tx.execute("INSERT INTO meta VALUES ('fingerprint', ?)", (master.fingerprint,))
                tx.execute("INSERT INTO meta VALUES ('vault_id', ?)", (vault_id,))
                secret = secrets.token_bytes(KEY_BYTES)
                tx.execute(
                    "INSERT INTO secrets VALUES (?, ?)",
                    (_VAULT_SECRET, master.wrap("", _VAULT_SECRET, secret)),
                )
            elif expected != master.fingerprint:
                raise KeyStoreError(
                    f"the master key does not match key store {redact(engine.url)} "
                    f"(key {master.fingerprint[:8]}…, store expects {expected[:8]}…)"
                )
            elif meta.get("vault_id") != vault_id:
                raise KeyStoreError(
                    f"key store {redact(engine.url)} belongs to another vault"
                    f" ({str(meta.get('vault_id'))[:8]}…, not {vault_id[:8]}…)"
                )
        self._secret = self._unwrap_secret()

    def _unwrap_secret(self) -> bytes:
        with self._engine.unit(read_only=True) as tx:
            row = tx.one("SELECT wrapped FROM secrets WHERE name=?", (_VAULT_SECRET,))
        secret = None if row is None else self._master.unwrap("", _VAULT_SECRET, _blob(row[0]))
        if secret is None:
            raise KeyStoreError(_MALFORMED)
        return secret

    def new_key(self, subject_id: str, *, at: datetime) -> tuple[str, bytes]:
        """A fresh data key for ``subject_id``, committed; older keys stay until ``shred(keep=...)``."""
        key_id, key = secrets.token_hex(8), secrets.token_bytes(KEY_BYTES)
        with self._engine.unit() as tx:
            self._check_master(tx)
            tx.execute(
                "INSERT INTO subject_keys VALUES (?, ?, ?, ?)",
                (subject_id, key_id, self._master.wrap(subject_id, key_id, key), tx.dialect.time_in(at)),
            )
        return key_id, key

    def get(self, subject_id: str, key_id: str) -> bytes | None:
        """The unwrapped data key, or ``None`` if it was shredded (or its wrapping altered)."""
        with self._engine.unit(read_only=True) as tx:
            self._check_master(tx)
            row = tx.one(
                "SELECT wrapped FROM subject_keys WHERE subject_id=? AND key_id=?", (subject_id, key_id)
            )
        if row is None:
            return None
        return self._master.unwrap(subject_id, key_id, _blob(row[0]))

    def shred(self, subject_id: str, *, keep: str | None = None) -> int:
        """Destroy the subject's data keys (all but ``keep``); returns how many.

        Callers hold the subject's lock in the vault (``Vault``), so no enrolment of this
        subject is in flight: a key not kept is an orphan.
        """
        with self._engine.unit() as tx:
            if keep is None:
                cursor = tx.execute("DELETE FROM subject_keys WHERE subject_id=?", (subject_id,))
            else:
                cursor = tx.execute(
                    "DELETE FROM subject_keys WHERE subject_id=? AND key_id <> ?", (subject_id, keep)
                )
            count = cursor.rowcount
        if count:
            self._engine.scrub()  # old pages of the deleted rows may still sit in the WAL
        return count

    def subjects(self) -> list[str]:
        """Subject ids holding a key (to find keys orphaned by an interrupted ceremony)."""
        with self._engine.unit(read_only=True) as tx:
            return [r[0] for r in tx.all("SELECT DISTINCT subject_id FROM subject_keys ORDER BY 1")]

    def key_ids(self, subject_id: str) -> list[str]:
        with self._engine.unit(read_only=True) as tx:
            rows = tx.all("SELECT key_id FROM subject_keys WHERE subject_id=? ORDER BY key_id", (subject_id,))
        return [r[0] for r in rows]

    def rotate(self, new_master: MasterKey, *, at: datetime) -> int:
        """Re-wrap every data key and the vault secret under ``new_master`` in one transaction.

        Either everything is re-wrapped and the store expects the new master key (and
        records the rotation, so the vault can audit it even after a crash), or nothing
        changed and the old key still works.
        """
        with self._engine.unit() as tx:
            self._check_master(tx)
            rows = tx.all("SELECT subject_id, key_id, wrapped FROM subject_keys")
            for subject_id, key_id, wrapped in rows:
                key = self._master.unwrap(subject_id, key_id, _blob(wrapped))
                if key is None:
                    raise KeyStoreError(f"a wrapped key of {subject_id!r} does not open; nothing was rotated")
                tx.execute(
                    "UPDATE subject_keys SET wrapped=? WHERE subject_id=? AND key_id=?",
                    (new_master.wrap(subject_id, key_id, key), subject_id, key_id),
                )
            tx.execute(
                "UPDATE secrets SET wrapped=? WHERE name=?",
                (new_master.wrap("", _VAULT_SECRET, self._secret), _VAULT_SECRET),
            )
            tx.execute("UPDATE meta SET value=? WHERE name='fingerprint'", (new_master.fingerprint,))
            tx.execute(
                "INSERT INTO rotations (at, old_fingerprint, new_fingerprint) VALUES (?, ?, ?)",
                (tx.dialect.time_in(at), self._master.fingerprint, new_master.fingerprint),
            )
        self._master = new_master
        self._engine.scrub()
        return len(rows)

    def last_rotation(self) -> tuple[str, str] | None:
        """``(old, new)`` master-key fingerprints of the newest rotation, if any."""
        with self._engine.unit(read_only=True) as tx:
            row = tx.one("SELECT old_fingerprint, new_fingerprint FROM rotations ORDER BY seq DESC LIMIT 1")
        return None if row is None else (str(row[0]), str(row[1]))

    # -- the vault secret and the audit anchor ----------------------------------------

    def derive(self, label: bytes) -> bytes:
        """A 256-bit sub-key of the vault secret for one named use (audit chain, probes...)."""
        return HKDF(
            algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=b"faceverify-vault:" + label
        ).derive(self._secret)

    def _anchor_tag(self, seq: int, mac: str) -> bytes:
        message = json.dumps(["audit-anchor", seq, mac]).encode()
        return hmac.new(self.derive(b"audit-anchor-v1"), message, hashlib.sha256).digest()

    def advance_anchor(self, seq: int, mac: str) -> None:
        """Record the newest committed audit entry; the anchor only moves forward."""
        tag = self._anchor_tag(seq, mac)
        with self._engine.unit() as tx:
            row = tx.one("SELECT seq FROM audit_anchor WHERE id=1" + tx.dialect.for_update)  # noqa: S608
            if row is None:
                tx.execute("INSERT INTO audit_anchor VALUES (1, ?, ?, ?)", (seq, mac, tag))
            elif int(row[0]) < seq:
                tx.execute("UPDATE audit_anchor SET seq=?, mac=?, tag=? WHERE id=1", (seq, mac, tag))

    def anchor(self) -> tuple[int, str]:
        """``(seq, mac)`` of the newest anchored audit entry (``(0, "")`` before the first)."""
        with self._engine.unit(read_only=True) as tx:
            row = tx.one("SELECT seq, mac, tag FROM audit_anchor WHERE id=1")
        if row is None:
            return 0, ""
        seq, mac, tag = row
        try:
            if type(seq) is not int or not isinstance(mac, str):
                raise ValueError("types")
            if not hmac.compare_digest(_blob(tag), self._anchor_tag(seq, mac)):
                raise ValueError("tag")
        except (ValueError, KeyStoreError):
            raise KeyStoreError("the audit anchor in the key store was altered") from None
        return seq, mac

    def _check_master(self, tx: Tx) -> None:
        """Another process may have rotated the master key since this store was opened."""
        row = tx.one("SELECT value FROM meta WHERE name='fingerprint'")
        if row is None or row[0] != self._master.fingerprint:
            raise KeyStoreError(_ROTATED)

    def close(self) -> None:
        self._engine.close()


def _blob(value: object) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise KeyStoreError(_MALFORMED)
