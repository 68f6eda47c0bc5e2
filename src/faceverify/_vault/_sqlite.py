"""The embedded default ``TemplateStore``: one SQLite file, one row per subject.

Crash safety comes from SQLite itself (see ``_db``): each method is one
transaction in a WAL-mode database with ``synchronous=FULL``, so a process
killed with SIGKILL mid-write leaves either the previous or the new row, never
a torn one. ``secure_delete`` overwrites erased rows' pages, and erasures
truncate the WAL, so an erased (already undecryptable) blob does not even
linger in free pages.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import cast

from ._db import Database, from_db_time, to_db_time
from ._store import LockoutState, StoredSubject, SubjectState

_LOCKOUT_COLUMNS = (
    "SELECT failures, locked_until, lockout_level FROM subjects WHERE subject_id=? AND state='active'"
)
_ROW_COLUMNS = "SELECT subject_id, state, changed_at, template_id, blob, consent_json FROM subjects"

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS subjects ("
    " subject_id TEXT PRIMARY KEY,"
    " state TEXT NOT NULL CHECK (state IN ('active', 'revoked', 'expired')),"
    " changed_at TEXT NOT NULL,"
    " template_id TEXT, blob BLOB, consent_json TEXT, consent_expires_at TEXT, last_used_at TEXT,"
    " failures INTEGER NOT NULL DEFAULT 0, locked_until TEXT, lockout_level INTEGER NOT NULL DEFAULT 0,"
    " CHECK ((state = 'active') = (blob IS NOT NULL AND consent_json IS NOT NULL)))",
    "CREATE TABLE IF NOT EXISTS probes ("
    " attempt TEXT NOT NULL, digest BLOB NOT NULL, subject_id TEXT NOT NULL, at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS probes_by_digest ON probes (digest)",
    "CREATE INDEX IF NOT EXISTS probes_by_time ON probes (at)",
)


class SQLiteTemplateStore:
    """``TemplateStore`` in one SQLite file (``templates.db`` by default)."""

    def __init__(self, path: str | Path) -> None:
        self._db = Database(path, _SCHEMA)
        self._db.read("PRAGMA secure_delete=ON")
        self.path = Path(path)

    def get(self, subject_id: str) -> StoredSubject | None:
        rows = self._db.read(
            _ROW_COLUMNS + " WHERE subject_id=?",
            (subject_id,),
        )
        if not rows:
            return None
        row = rows[0]
        return StoredSubject(
            subject_id=row["subject_id"],
            state=cast(SubjectState, row["state"]),
            changed_at=from_db_time(row["changed_at"]),
            template_id=row["template_id"],
            blob=row["blob"],
            consent_json=row["consent_json"],
        )

    def put(
        self,
        subject_id: str,
        *,
        template_id: str,
        blob: bytes,
        consent_json: str,
        consent_expires_at: datetime,
        last_used_at: datetime,
        at: datetime,
    ) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO subjects (subject_id, state, changed_at, template_id, blob,"
                " consent_json, consent_expires_at, last_used_at) VALUES (?, 'active', ?, ?, ?, ?, ?, ?)",
                (
                    subject_id,
                    to_db_time(at),
                    template_id,
                    blob,
                    consent_json,
                    to_db_time(consent_expires_at),
                    to_db_time(last_used_at),
                ),
            )

    def replace_blob(self, subject_id: str, *, template_id: str, blob: bytes, last_used_at: datetime) -> bool:
        with self._db.transaction() as conn:
            changed = conn.execute(
                "UPDATE subjects SET blob=?, last_used_at=?"
                " WHERE subject_id=? AND template_id=? AND state='active'",
                (blob, to_db_time(last_used_at), subject_id, template_id),
            ).rowcount
        return changed == 1

    def erase(
        self, subject_id: str, *, state: SubjectState, at: datetime, template_id: str | None = None
    ) -> bool:
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT state, template_id FROM subjects WHERE subject_id=?", (subject_id,)
            ).fetchone()
            if row is None or (template_id is not None and row[1] != template_id):
                return False
            conn.execute(
                "UPDATE subjects SET state=?, changed_at=?, template_id=NULL, blob=NULL, consent_json=NULL,"
                " consent_expires_at=NULL, last_used_at=NULL, failures=0, locked_until=NULL, lockout_level=0"
                " WHERE subject_id=?",
                (state, to_db_time(at), subject_id),
            )
            conn.execute("DELETE FROM probes WHERE subject_id=?", (subject_id,))
        self._db.read("PRAGMA wal_checkpoint(TRUNCATE)")
        return bool(row[0] == "active")

    def consents(self) -> Iterator[tuple[str, str]]:
        rows = self._db.read(
            "SELECT subject_id, consent_json FROM subjects WHERE state='active' ORDER BY subject_id"
        )
        return iter([(row["subject_id"], row["consent_json"]) for row in rows])

    def expired(self, *, now: datetime, retention: timedelta) -> list[tuple[str, str]]:
        rows = self._db.read(
            "SELECT subject_id, template_id FROM subjects WHERE state='active'"
            " AND (consent_expires_at <= ? OR last_used_at <= ?) ORDER BY subject_id",
            (to_db_time(now), to_db_time(now - retention)),
        )
        return [(row["subject_id"], row["template_id"]) for row in rows]

    def prune_probes(self, *, before: datetime) -> int:
        with self._db.transaction() as conn:
            return int(conn.execute("DELETE FROM probes WHERE at < ?", (to_db_time(before),)).rowcount)

    def lockout(self, subject_id: str) -> LockoutState:
        rows = self._db.read(
            _LOCKOUT_COLUMNS,
            (subject_id,),
        )
        return _lockout(tuple(rows[0])) if rows else LockoutState()

    def update_lockout(self, subject_id: str, update: Callable[[LockoutState], LockoutState]) -> LockoutState:
        with self._db.transaction() as conn:
            row = conn.execute(
                _LOCKOUT_COLUMNS,
                (subject_id,),
            ).fetchone()
            if row is None:
                return LockoutState()
            new = update(_lockout(tuple(row)))
            conn.execute(
                "UPDATE subjects SET failures=?, locked_until=?, lockout_level=? WHERE subject_id=?",
                (
                    new.failures,
                    None if new.locked_until is None else to_db_time(new.locked_until),
                    new.level,
                    subject_id,
                ),
            )
        return new

    def record_probe(
        self,
        subject_id: str,
        digests: Sequence[bytes],
        *,
        now: datetime,
        window: timedelta,
        min_shared: int,
    ) -> int:
        marks = ",".join("?" * len(digests))
        attempt = uuid.uuid4().hex
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM probes WHERE at < ?", (to_db_time(now - window),))
            (others,) = conn.execute(
                # Only "?" placeholders are formatted in; every value is a bound parameter.
                "SELECT COUNT(DISTINCT subject_id) FROM (SELECT subject_id FROM probes"  # noqa: S608
                f" WHERE subject_id != ? AND digest IN ({marks}) GROUP BY attempt HAVING COUNT(*) >= ?)",
                (subject_id, *digests, min_shared),
            ).fetchone()
            conn.executemany(
                "INSERT INTO probes VALUES (?, ?, ?, ?)",
                [(attempt, digest, subject_id, to_db_time(now)) for digest in digests],
            )
        return int(others)

    def close(self) -> None:
        self._db.close()


def _lockout(row: tuple[object, ...]) -> LockoutState:
    failures, locked_until, level = row
    return LockoutState(
        failures=int(cast(int, failures)),
        locked_until=None if locked_until is None else from_db_time(cast(str, locked_until)),
        level=int(cast(int, level)),
    )
