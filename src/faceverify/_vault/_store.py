"""The vault database: templates, lockout and anti-enumeration state, audit log, sessions.

Everything is addressed by one subject id. There is deliberately no "all templates" or
"all embeddings" query: a store that can hand out every template is a search engine
waiting to be written. What *may* be listed is who is enrolled and under what consent
(records of processing) and which subjects are active (for the purge, which opens them one
at a time under each one's lock); neither returns templates in bulk.

A subject has one row: the encrypted template blob, the consent record it is bound to,
and lockout state. Revoked or purged subjects leave a tombstone (id, state, time; no
template, no consent) so that a later claim gets ``SubjectRevokedError`` rather than
``UnknownSubjectError``.

Columns nothing authenticates are not trusted: expiry is read from the sealed template
header (``purge`` opens each template), the lockout triple carries a MAC keyed from the
master key (an edited ``failures`` or ``locked_until`` refuses the subject rather than
resetting the count), and a value of the wrong type is a typed error, never a traceback.

A subject's *recollections* (schema version 2) are the liveness layer's opaque fingerprints of
its last passing live sessions, sealed under the active template's key (``_recollection``):
at most a few rows per subject, read only with that subject's template id, deleted when the
template is replaced or erased, and shredded with its key.

``Records`` runs the statements for one unit of work (``Tx``) on either engine; the
protocols below name what a ceremony needs from it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, cast

from .._errors import InvalidTemplateError
from ._engine import Migration, Schema, Tx

SubjectState = Literal["active", "revoked", "expired"]
_STATES = ("active", "revoked", "expired")
_CORRUPT = "the vault's record of this subject is malformed or was edited outside faceverify"


def _ddl(time: str, blob: str, serial: str) -> list[str]:
    return [
        "CREATE TABLE subjects ("
        " subject_id TEXT PRIMARY KEY,"
        " state TEXT NOT NULL CHECK (state IN ('active', 'revoked', 'expired')),"
        f" changed_at {time} NOT NULL,"
        f" template_id TEXT, blob {blob}, consent_json TEXT,"
        f" failures INTEGER NOT NULL DEFAULT 0, locked_until {time},"
        " lockout_level INTEGER NOT NULL DEFAULT 0,"
        f" lockout_mac {blob},"
        " CHECK ((state = 'active') = (blob IS NOT NULL AND consent_json IS NOT NULL)))",
        f"CREATE TABLE probes (attempt TEXT NOT NULL, subject_id TEXT NOT NULL, actor TEXT NOT NULL,"
        f" sketch {blob} NOT NULL, at {time} NOT NULL, cluster TEXT NOT NULL)",
        "CREATE INDEX probes_by_cluster ON probes (cluster)",
        "CREATE INDEX probes_by_time ON probes (at)",
        "CREATE INDEX probes_by_subject ON probes (subject_id)",
        f"CREATE TABLE refusals (actor TEXT NOT NULL, at {time} NOT NULL)",
        "CREATE INDEX refusals_by_actor ON refusals (actor, at)",
        # ``at`` is the exact text the entry's MAC covers, on both engines.
        f"CREATE TABLE audit (seq {serial} PRIMARY KEY, at TEXT NOT NULL, event TEXT NOT NULL,"
        " subject TEXT, actor TEXT, outcome TEXT NOT NULL, reason TEXT NOT NULL,"
        " prev_mac TEXT NOT NULL, mac TEXT NOT NULL)",
        "CREATE INDEX audit_by_subject ON audit (subject, seq)",
        f"CREATE TABLE audit_head (id INTEGER PRIMARY KEY CHECK (id = 1), seq {serial} NOT NULL,"
        " mac TEXT NOT NULL)",
        "CREATE TABLE sessions (session_id TEXT PRIMARY KEY, subject_id TEXT NOT NULL,"
        f" state {blob} NOT NULL,"
        f" expires_at {time} NOT NULL, created_at {time} NOT NULL, actor TEXT)",
        "CREATE INDEX sessions_by_expiry ON sessions (expires_at)",
    ]


_SQLITE_V1 = [
    *_ddl("TEXT", "BLOB", "INTEGER"),
    "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
    " BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
    "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
    " BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
]
_POSTGRES_V1 = [
    *_ddl("TIMESTAMPTZ", "BYTEA", "BIGINT"),
    "CREATE FUNCTION faceverify_append_only() RETURNS trigger LANGUAGE plpgsql AS"
    " $$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$",
    "CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit"
    " FOR EACH ROW EXECUTE FUNCTION faceverify_append_only()",
]
_V1: Migration = {"sqlite": _SQLITE_V1, "postgresql": _POSTGRES_V1}


def _recollections_ddl(time: str, blob: str, serial: str) -> list[str]:
    # ``seq`` orders a subject's rows newest first whatever the clock says.
    return [
        f"CREATE TABLE recollections (seq {serial} PRIMARY KEY, subject_id TEXT NOT NULL,"
        f" template_id TEXT NOT NULL, at {time} NOT NULL, blob {blob} NOT NULL)",
        "CREATE INDEX recollections_by_subject ON recollections (subject_id)",
    ]


#: V2: a subject's last passing live sessions, sealed under the template's key (``_recollection``).
_V2: Migration = {
    "sqlite": _recollections_ddl("TEXT", "BLOB", "INTEGER"),
    "postgresql": _recollections_ddl("TIMESTAMPTZ", "BYTEA", "BIGINT GENERATED ALWAYS AS IDENTITY"),
}

#: The vault database's schema; add a migration to change it (never edit a released one).
VAULT_SCHEMA = Schema("faceverify-vault", [_V1, _V2])


@dataclass(frozen=True, slots=True)
class LockoutState:
    """Consecutive failures since the last success, and the current lock, if any."""

    failures: int = 0
    locked_until: datetime | None = None
    level: int = 0


@dataclass(frozen=True, slots=True)
class StoredSubject:
    """One subject's row. ``blob`` and ``consent_json`` are ``None`` for a tombstone."""

    subject_id: str
    state: SubjectState
    changed_at: datetime
    template_id: str | None
    blob: bytes | None
    consent_json: str | None


@dataclass(frozen=True, slots=True)
class Probe:
    """A recent verification attempt's sketch (see ``_lockout``): whom it claimed, who asked."""

    subject_id: str
    actor: str
    sketch: bytes
    cluster: str


class TemplateStore(Protocol):
    """Templates, addressed by subject id only; every call is part of the caller's unit."""

    def get(self, subject_id: str) -> StoredSubject | None: ...

    def put(
        self, subject_id: str, *, template_id: str, blob: bytes, consent_json: str, at: datetime
    ) -> None: ...

    def replace_blob(self, subject_id: str, *, template_id: str, blob: bytes) -> bool: ...

    def erase(self, subject_id: str, *, state: SubjectState, at: datetime) -> bool: ...

    def recollections(self, subject_id: str, template_id: str) -> list[bytes]: ...

    def remember(
        self, subject_id: str, *, template_id: str, blob: bytes, at: datetime, keep: int
    ) -> None: ...


class LockoutStore(Protocol):
    """Lockout and anti-enumeration state (read and written under the subject's lock)."""

    def lockout(self, subject_id: str) -> LockoutState: ...

    def set_lockout(self, subject_id: str, state: LockoutState) -> None: ...

    def recent_probes(self, *, since: datetime, exclude: str | None = None) -> list[Probe]: ...

    def add_probe(
        self,
        subject_id: str,
        actor: str,
        sketch: bytes,
        *,
        at: datetime,
        attempt: str | None = None,
        cluster: str | None = None,
    ) -> str: ...

    def merge_clusters(self, clusters: set[str], *, into: str) -> None: ...

    def refusals(self, actor: str, *, since: datetime) -> int: ...

    def add_refusal(self, actor: str, *, at: datetime) -> None: ...


class Records:
    """The statements of one unit of work, on either engine (``TemplateStore``, ``LockoutStore``).

    ``state_key`` authenticates the lockout triple of each active row.
    """

    def __init__(self, tx: Tx, *, state_key: bytes) -> None:
        self.tx = tx
        self._d = tx.dialect
        self._state_key = state_key

    # -- templates ------------------------------------------------------------------

    def get(self, subject_id: str) -> StoredSubject | None:
        row = self.tx.one(
            "SELECT subject_id, state, changed_at, template_id, blob, consent_json FROM subjects"
            " WHERE subject_id=?",
            (subject_id,),
        )
        if row is None:
            return None
        try:
            state = row[1]
            if state not in _STATES:
                raise ValueError("state")
            blob = None if row[4] is None else self._d.blob_out(row[4])
            if (row[3] is not None and not isinstance(row[3], str)) or (
                row[5] is not None and not isinstance(row[5], str)
            ):
                raise ValueError("text")
            return StoredSubject(
                subject_id=row[0],
                state=cast(SubjectState, state),
                changed_at=self._d.time_out(row[2]),
                template_id=row[3],
                blob=blob,
                consent_json=row[5],
            )
        except (ValueError, TypeError):
            raise InvalidTemplateError(_CORRUPT) from None

    def state(self, subject_id: str) -> str | None:
        """The row's state as stored (``None`` if never enrolled), without reading the rest."""
        row = self.tx.one("SELECT state FROM subjects WHERE subject_id=?", (subject_id,))
        return None if row is None else str(row[0])

    def put(self, subject_id: str, *, template_id: str, blob: bytes, consent_json: str, at: datetime) -> None:
        """Store a new template, replacing any previous one or tombstone; lockout resets and
        the previous template's recollections are forgotten."""
        fresh = LockoutState()
        self.tx.execute(
            "INSERT INTO subjects (subject_id, state, changed_at, template_id, blob, consent_json,"
            " failures, locked_until, lockout_level, lockout_mac)"
            " VALUES (?, 'active', ?, ?, ?, ?, 0, NULL, 0, ?)"
            " ON CONFLICT (subject_id) DO UPDATE SET state='active', changed_at=excluded.changed_at,"
            " template_id=excluded.template_id, blob=excluded.blob, consent_json=excluded.consent_json,"
            " failures=0, locked_until=NULL, lockout_level=0, lockout_mac=excluded.lockout_mac",
            (
                subject_id,
                self._d.time_in(at),
                template_id,
                blob,
                consent_json,
                self._lockout_mac(subject_id, template_id, fresh),
            ),
        )
        self.tx.execute("DELETE FROM recollections WHERE subject_id=?", (subject_id,))

    def replace_blob(self, subject_id: str, *, template_id: str, blob: bytes) -> bool:
        """Swap in a re-sealed blob of the *same* template (after a successful use)."""
        cursor = self.tx.execute(
            "UPDATE subjects SET blob=? WHERE subject_id=? AND template_id=? AND state='active'",
            (blob, subject_id, template_id),
        )
        return cursor.rowcount == 1

    def erase(self, subject_id: str, *, state: SubjectState, at: datetime) -> bool:
        """Replace the row by a tombstone; returns whether an active template was erased."""
        row = self.tx.one("SELECT state FROM subjects WHERE subject_id=?", (subject_id,))
        if row is None:
            return False
        self.tx.execute(
            "UPDATE subjects SET state=?, changed_at=?, template_id=NULL, blob=NULL, consent_json=NULL,"
            " failures=0, locked_until=NULL, lockout_level=0, lockout_mac=NULL WHERE subject_id=?",
            (state, self._d.time_in(at), subject_id),
        )
        self.tx.execute("DELETE FROM probes WHERE subject_id=?", (subject_id,))
        self.tx.execute("DELETE FROM sessions WHERE subject_id=?", (subject_id,))
        self.tx.execute("DELETE FROM recollections WHERE subject_id=?", (subject_id,))
        return bool(row[0] == "active")

    # -- recollections ----------------------------------------------------------------

    def recollections(self, subject_id: str, template_id: str) -> list[bytes]:
        """The subject's sealed recollections of this template, newest first (opaque blobs)."""
        rows = self.tx.all(
            "SELECT blob FROM recollections WHERE subject_id=? AND template_id=? ORDER BY seq DESC",
            (subject_id, template_id),
        )
        try:
            return [self._d.blob_out(r[0]) for r in rows]
        except ValueError:
            raise InvalidTemplateError(_CORRUPT) from None

    def remember(self, subject_id: str, *, template_id: str, blob: bytes, at: datetime, keep: int) -> None:
        """Add a sealed recollection, then keep only the subject's newest ``keep`` rows, all of
        this template (any other template's rows go)."""
        if keep < 1:
            raise ValueError("keep at least one recollection, or remember none")
        self.tx.execute(
            "INSERT INTO recollections (subject_id, template_id, at, blob) VALUES (?, ?, ?, ?)",
            (subject_id, template_id, self._d.time_in(at), blob),
        )
        self.tx.execute(
            "DELETE FROM recollections WHERE subject_id=? AND (template_id<>? OR seq NOT IN"
            " (SELECT seq FROM recollections WHERE subject_id=? ORDER BY seq DESC LIMIT ?))",
            (subject_id, template_id, subject_id, keep),
        )

    def consents(self) -> Iterator[tuple[str, str]]:
        """``(subject_id, consent_json)`` of every active subject: records of processing."""
        rows = self.tx.all("SELECT subject_id, consent_json FROM subjects WHERE state='active' ORDER BY 1")
        yield from ((str(r[0]), str(r[1])) for r in rows)

    def active_subjects(self) -> list[str]:
        return [r[0] for r in self.tx.all("SELECT subject_id FROM subjects WHERE state='active' ORDER BY 1")]

    # -- lockout ----------------------------------------------------------------------

    def _lockout_mac(self, subject_id: str, template_id: str | None, state: LockoutState) -> bytes:
        until = None if state.locked_until is None else self._d.time_out(self._d.time_in(state.locked_until))
        message = json.dumps(
            [
                subject_id,
                template_id,
                state.failures,
                None if until is None else until.isoformat(),
                state.level,
            ]
        ).encode()
        return hmac.new(self._state_key, message, hashlib.sha256).digest()[:16]

    def lockout(self, subject_id: str) -> LockoutState:
        """The active subject's lockout state, authenticated; the default for others."""
        row = self.tx.one(
            "SELECT template_id, failures, locked_until, lockout_level, lockout_mac FROM subjects"
            " WHERE subject_id=? AND state='active'",
            (subject_id,),
        )
        if row is None:
            return LockoutState()
        template_id, failures, locked_until, level, mac = row
        try:
            if type(failures) is not int or type(level) is not int or failures < 0 or level < 0:
                raise ValueError("counts")
            state = LockoutState(
                failures, None if locked_until is None else self._d.time_out(locked_until), level
            )
            if mac is None or not hmac.compare_digest(
                self._d.blob_out(mac), self._lockout_mac(subject_id, template_id, state)
            ):
                raise ValueError("mac")
        except (ValueError, TypeError):
            raise InvalidTemplateError(_CORRUPT) from None
        return state

    def set_lockout(self, subject_id: str, state: LockoutState) -> None:
        row = self.tx.one(
            "SELECT template_id FROM subjects WHERE subject_id=? AND state='active'", (subject_id,)
        )
        if row is None:
            return
        self.tx.execute(
            "UPDATE subjects SET failures=?, locked_until=?, lockout_level=?, lockout_mac=?"
            " WHERE subject_id=?",
            (
                state.failures,
                None if state.locked_until is None else self._d.time_in(state.locked_until),
                state.level,
                self._lockout_mac(subject_id, row[0], state),
                subject_id,
            ),
        )

    # -- anti-enumeration ------------------------------------------------------------------

    def recent_probes(self, *, since: datetime, exclude: str | None = None) -> list[Probe]:
        """Probes since ``since`` (but attempt ``exclude``, the caller's own)."""
        rows = self.tx.all(
            "SELECT subject_id, actor, sketch, cluster FROM probes WHERE at >= ? AND attempt <> ?",
            (self._d.time_in(since), exclude or ""),
        )
        probes = []
        for subject_id, actor, sketch, cluster in rows:
            try:
                probes.append(Probe(str(subject_id), str(actor), self._d.blob_out(sketch), str(cluster)))
            except ValueError:
                continue  # an edited probe row links nothing; it is forgotten with its window
        return probes

    def add_probe(
        self,
        subject_id: str,
        actor: str,
        sketch: bytes,
        *,
        at: datetime,
        attempt: str | None = None,
        cluster: str | None = None,
    ) -> str:
        """Record an attempt's probe (in a cluster of its own unless told); its attempt id."""
        attempt = attempt or uuid.uuid4().hex
        self.tx.execute(
            "INSERT INTO probes VALUES (?, ?, ?, ?, ?, ?)",
            (attempt, subject_id, actor, sketch, self._d.time_in(at), cluster or attempt),
        )
        return attempt

    def merge_clusters(self, clusters: set[str], *, into: str) -> None:
        """Probes linked through a new one become one cluster (a search in disguise is one)."""
        for cluster in sorted(clusters - {into}):
            self.tx.execute("UPDATE probes SET cluster=? WHERE cluster=?", (into, cluster))

    def refusals(self, actor: str, *, since: datetime) -> int:
        row = self.tx.one(
            "SELECT COUNT(*) FROM refusals WHERE actor=? AND at >= ?", (actor, self._d.time_in(since))
        )
        return int(row[0])

    def add_refusal(self, actor: str, *, at: datetime) -> None:
        self.tx.execute("INSERT INTO refusals VALUES (?, ?)", (actor, self._d.time_in(at)))

    def prune(self, *, before: datetime) -> None:
        """Forget probes and refusals recorded before ``before``."""
        self.tx.execute("DELETE FROM probes WHERE at < ?", (self._d.time_in(before),))
        self.tx.execute("DELETE FROM refusals WHERE at < ?", (self._d.time_in(before),))


__all__ = [
    "VAULT_SCHEMA",
    "LockoutState",
    "LockoutStore",
    "Probe",
    "Records",
    "StoredSubject",
    "SubjectState",
    "TemplateStore",
]
