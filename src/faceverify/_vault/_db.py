"""One way to open the vault's SQLite files, so every file gets the same guarantees.

The template store, the key store and the audit log are separate files (the key
store must live apart from the templates it unlocks) but share one discipline:

- ``journal_mode=WAL`` and ``synchronous=FULL``: a committed transaction is on
  disk before ``COMMIT`` returns, and a process killed mid-transaction leaves the
  previous committed state (SQLite rolls the torn transaction back on next open).
- autocommit mode with explicit ``BEGIN IMMEDIATE``: read-modify-write sequences
  (lockout counters, the audit chain's head) take the write lock *before*
  reading, so two processes sharing a file cannot both read the same old value.
- a busy timeout, so a second process waits for the lock instead of failing.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

_BUSY_TIMEOUT_MS = 15_000


class Database:
    """A serialised connection to one SQLite file.

    One connection per object, guarded by a lock so that a ``Verifier`` shared
    between threads never interleaves two transactions on it.
    """

    def __init__(self, path: str | Path, schema: Sequence[str]) -> None:
        self.path = Path(path)
        if not self.path.exists():
            # Private from the first byte: SQLite gives its -wal and -shm files the same mode.
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            str(self.path), isolation_level=None, check_same_thread=False, timeout=_BUSY_TIMEOUT_MS / 1000
        )
        self._conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        with self.transaction() as conn:
            for statement in schema:
                conn.execute(statement)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run the block as one immediate (write-locked) transaction; roll back on any error."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def read(self, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        """Run one read-only statement outside an explicit transaction (a consistent snapshot)."""
        with self._lock:
            cursor = self._conn.execute(sql, params)
            cursor.row_factory = sqlite3.Row
            return list(cursor.fetchall())

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def to_db_time(at: datetime) -> str:
    """UTC, fixed width: lexicographic order in SQL is then chronological order."""
    if at.tzinfo is None:
        raise ValueError("naive datetimes are not stored: pass a timezone-aware time")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def from_db_time(text: str) -> datetime:
    return datetime.fromisoformat(text)
