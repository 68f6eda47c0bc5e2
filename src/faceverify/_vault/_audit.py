"""An append-only, hash-chained audit log of every ceremony: who, what, when, outcome, why.

Entries hold a time, an event, a subject id, an outcome and a reason: never an
image, an embedding or a score. Each entry's hash is the SHA-256 of its own
fields *and the previous entry's hash*, so editing, deleting or reordering any
entry breaks every later link, and ``verify_chain`` names the first broken one.

Why SQLite rather than JSON lines: several processes share one log, and each
append must read the current head hash and write the next entry atomically. A
``BEGIN IMMEDIATE`` transaction gives exactly that (and survives SIGKILL
without a torn final line); a text file would need its own locking and
crash-repair. Triggers refuse ``UPDATE`` and ``DELETE``, which stops accidents,
not an administrator: the chain is what makes tampering *detectable*. A chain
cannot show that its newest entries were cut off; publish ``head()`` elsewhere
from time to time (a ticket, a signed e-mail) to anchor it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .._clock import Clock, SystemClock
from ._db import Database, to_db_time

GENESIS = "0" * 64

EVENTS = frozenset(
    {
        "enroll",
        "verify",
        "revoke",
        "purge",
        "key-init",
        "key-rotate",
        "lockout",
        "enumeration-refused",
        "consent-read",
    }
)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS audit ("
    " seq INTEGER PRIMARY KEY, at TEXT NOT NULL, event TEXT NOT NULL, subject TEXT,"
    " outcome TEXT NOT NULL, reason TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)",
    "CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit"
    " BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit"
    " BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
)


class AuditSink(Protocol):
    """Where ceremonies report what they did."""

    def record(self, event: str, *, subject: str | None, outcome: str, reason: str = "") -> None: ...


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    at: str
    event: str
    subject: str | None
    outcome: str
    reason: str
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The result of checking the chain: ``first_broken`` is the seq of the first bad entry."""

    ok: bool
    entries: int
    first_broken: int | None = None
    problem: str | None = None


def entry_hash(fields: tuple[int, str, str, str | None, str, str, str]) -> str:
    """SHA-256 of ``(seq, at, event, subject, outcome, reason, prev_hash)`` as compact JSON."""
    return hashlib.sha256(json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()


class AuditLog:
    """The SQLite audit log (``audit.db`` by default); an ``AuditSink``."""

    def __init__(self, path: str | Path, *, clock: Clock | None = None) -> None:
        self._db = Database(path, _SCHEMA)
        self._clock: Clock = clock or SystemClock()
        self.path = Path(path)

    def record(self, event: str, *, subject: str | None, outcome: str, reason: str = "") -> None:
        if event not in EVENTS:
            raise ValueError(f"unknown audit event {event!r}")
        at = to_db_time(self._clock.now())
        with self._db.transaction() as conn:
            row = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (1, GENESIS) if row is None else (row[0] + 1, row[1])
            digest = entry_hash((seq, at, event, subject, outcome, reason, prev))
            conn.execute(
                "INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, at, event, subject, outcome, reason, prev, digest),
            )

    def entries(self, *, subject: str | None = None) -> list[AuditEntry]:
        """All entries in order, or one subject's (for that subject's access request)."""
        if subject is None:
            rows = self._db.read("SELECT * FROM audit ORDER BY seq")
        else:
            rows = self._db.read("SELECT * FROM audit WHERE subject=? ORDER BY seq", (subject,))
        return [AuditEntry(**dict(row)) for row in rows]

    def head(self) -> tuple[int, str]:
        """``(seq, hash)`` of the newest entry: publish it to make truncation detectable."""
        rows = self._db.read("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        return (0, GENESIS) if not rows else (rows[0]["seq"], rows[0]["hash"])

    def verify_chain(self) -> ChainReport:
        """Recompute every link; report the first entry whose hash or link is wrong."""
        prev, expected_seq, count = GENESIS, 1, 0
        for entry in self.entries():
            count += 1
            if entry.seq != expected_seq:
                return ChainReport(False, count, entry.seq, f"entry {expected_seq} is missing")
            if entry.prev_hash != prev:
                return ChainReport(False, count, entry.seq, "does not link to the previous entry")
            recomputed = entry_hash(
                (
                    entry.seq,
                    entry.at,
                    entry.event,
                    entry.subject,
                    entry.outcome,
                    entry.reason,
                    entry.prev_hash,
                )
            )
            if recomputed != entry.hash:
                return ChainReport(False, count, entry.seq, "contents do not match its hash")
            prev, expected_seq = entry.hash, expected_seq + 1
        return ChainReport(True, count)

    def close(self) -> None:
        self._db.close()


class NullAudit:
    """An ``AuditSink`` that records nothing (for tests of other parts only)."""

    def record(self, event: str, *, subject: str | None, outcome: str, reason: str = "") -> None:
        return None
