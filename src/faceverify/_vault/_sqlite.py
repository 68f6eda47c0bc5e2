"""The embedded engine: one SQLite file per database, every unit of work write-locked.

- ``journal_mode=WAL`` and ``synchronous=FULL``: a committed transaction is on disk
  before ``COMMIT`` returns; a process killed mid-transaction leaves the previous
  committed state (SQLite rolls the torn transaction back on next open).
- ``BEGIN IMMEDIATE``: a unit takes the file's write lock *before* its first read, so
  check-and-count sequences (lockout, the audit chain's head, enumeration probes) cannot
  interleave across processes; names to lock are therefore not needed, the whole file is.
- a busy timeout, so a second process waits for the lock instead of failing; past it,
  ``StoreUnavailableError``. A garbage or truncated file is ``StoreCorruptError``: no retry
  will open it.
- ``secure_delete=ON``, and ``scrub()`` folds the WAL into the file and truncates it, so
  erased rows (blobs, wrapped keys) do not linger in free pages or the log.

One connection per engine object, guarded by a re-entrant lock: a ``Vault`` shared
between threads never interleaves two transactions on it, and a unit opened inside
another (same thread) is a savepoint of it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from .._errors import StoreCorruptError, StoreUnavailableError
from ._engine import Dialect, Tx

BUSY_TIMEOUT_MS = 15_000
SQLITE = Dialect("sqlite", "?", "")


class SQLiteEngine:
    """An ``Engine`` on one SQLite file (created, 0600, on the first unit)."""

    dialect = SQLITE

    def __init__(self, path: Path, *, folder: Path) -> None:
        self.path = path
        self.folder: Path | None = folder
        self.url = f"sqlite://{path.resolve()}"
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._tx: Tx | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                if not self.path.exists():
                    # Private from the first byte: SQLite gives its -wal and -shm files the same mode.
                    os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
                conn = sqlite3.connect(
                    str(self.path),
                    isolation_level=None,
                    check_same_thread=False,
                    timeout=BUSY_TIMEOUT_MS / 1000,
                )
                conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("PRAGMA secure_delete=ON")
            except OSError as exc:
                raise StoreUnavailableError(f"cannot open {self.path}: {exc.strerror or exc}") from None
            except sqlite3.Error as exc:
                raise self._error(exc) from None
            self._conn = conn
        return self._conn

    def translate(self, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except sqlite3.Error as exc:
            error = self._error(exc)
            if error is exc:
                raise
            raise error from None

    def _error(self, exc: sqlite3.Error) -> Exception:
        """A SQLite error as faceverify's: damaged, unreachable, or (a bug) itself."""
        text = str(exc)
        if "not a database" in text or "malformed" in text:
            return StoreCorruptError(
                f"{self.path} is damaged or is not a faceverify database ({text}); restore it from a backup"
            )
        if any(s in text for s in ("locked", "unable to open", "disk I/O", "readonly", "busy")):
            return StoreUnavailableError(f"{self.path}: {text}")
        return exc

    @contextlib.contextmanager
    def unit(self, lock: Iterable[str | bytes] = (), *, read_only: bool = False) -> Iterator[Tx]:
        with self._lock:
            outer = self._tx
            if outer is not None:  # joined: a savepoint of the enclosing unit
                name = f"fv_{outer.depth + 1}"
                outer.execute(f"SAVEPOINT {name}")
                outer.depth += 1
                try:
                    yield outer
                except BaseException:
                    outer.execute(f"ROLLBACK TO {name}")
                    outer.execute(f"RELEASE {name}")
                    raise
                else:
                    outer.execute(f"RELEASE {name}")
                finally:
                    outer.depth -= 1
                return
            conn = self._connect()
            tx = Tx(conn, SQLITE, self)
            tx.execute("BEGIN" if read_only else "BEGIN IMMEDIATE")
            self._tx = tx
            try:
                yield tx
            except BaseException:
                self._tx = None
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            self._tx = None
            try:
                tx.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            for call in tx.after_commit:
                call()

    def exists(self) -> bool:
        if not self.path.is_file():
            return False
        with self._lock:
            conn = self._connect()
            row = self.translate(
                lambda: conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
                ).fetchone()
            )
        return row is not None

    def scrub(self) -> None:
        """Fold the WAL into the file and truncate it: erased pages leave the log."""
        with self._lock:
            if self._tx is None:
                conn = self._connect()
                self.translate(lambda: conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall())

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

