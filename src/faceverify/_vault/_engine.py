"""The unit of work: one transaction per ceremony, on one of two engines chosen by URL.

A *database* here is what one URL names: ``sqlite:///abs/path`` (or a plain path) or
``postgresql://...``. The vault's database holds templates, audit log, lockout and
anti-enumeration state and live sessions, so that one ceremony's changes and its audit
entry commit together or not at all. The key store is a second database, by design.

``Engine.unit(lock=...)`` is the one way in: a transaction that first takes the named
locks (a subject id, the anti-enumeration bands of a probe), holds them until it commits
and rolls back on any error. A unit opened while the same thread is already inside one
joins it as a savepoint, so a ceremony called inside a live session's ``hold`` is part of
the same transaction.

- **SQLite** (embedded, one host): ``BEGIN IMMEDIATE`` takes the database's write lock
  before the first read, so every unit is serialised against every other, across
  processes; WAL and ``synchronous=FULL`` make a commit durable before it returns.
- **PostgreSQL** (many processes and hosts): a pool of connections (psycopg 3); a unit's
  locks are transaction-scoped advisory locks (``pg_advisory_xact_lock``) on a 64-bit
  digest of each name, taken in sorted order, so ceremonies on one subject serialise while
  other subjects proceed; the audit chain's head is a one-row table locked ``FOR UPDATE``.

SQL is written once, with ``?`` placeholders; ``Dialect`` adapts it. Schemas are versioned
(``meta`` table: ``schema``, ``version``) with migrations in the package; a database made
by a newer faceverify is refused, an older one is migrated inside one transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from .._errors import ConfigurationError

#: One migration: the statements taking a schema from version ``n - 1`` to ``n``, per dialect.
Migration = dict[str, Sequence[str]]


@dataclass(frozen=True, slots=True)
class Schema:
    """A versioned schema: ``migrations[i]`` takes version ``i`` to ``i + 1``."""

    name: str
    migrations: Sequence[Migration]

    @property
    def version(self) -> int:
        return len(self.migrations)


class Cursor(Protocol):
    """The part of a DB-API cursor the vault uses (sqlite3 and psycopg alike)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one engine differs: placeholders, time and blob values, row locking."""

    name: str
    placeholder: str
    for_update: str  # appended to a SELECT whose rows the transaction will change

    def sql(self, query: str) -> str:
        return query if self.placeholder == "?" else query.replace("?", self.placeholder)

    def time_in(self, at: datetime) -> object:
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("naive datetimes are not stored: pass a timezone-aware time")
        at = at.astimezone(UTC)
        return at.isoformat(timespec="microseconds") if self.name == "sqlite" else at

    def time_out(self, value: object) -> datetime:
        """A stored time, or ValueError for anything that is not one (an edited column)."""
        if isinstance(value, datetime):
            at = value
        elif isinstance(value, str):
            at = datetime.fromisoformat(value)
        else:
            raise ValueError("not a time")
        if at.tzinfo is None:
            raise ValueError("naive time")
        return at

    @staticmethod
    def blob_out(value: object) -> bytes:
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value)
        raise ValueError("not a blob")


@dataclass(slots=True)
class Tx:
    """An open unit of work: run statements with ``?`` placeholders."""

    conn: Any
    dialect: Dialect
    engine: Engine
    depth: int = 0
    locks: set[int] = field(default_factory=set)
    #: Run after the outermost COMMIT (e.g. advancing the audit anchor kept with the keys).
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    #: The newest audit entry this unit appended, ``(seq, mac)``.
    audit_head: tuple[int, str] | None = None

    def execute(self, query: str, params: Sequence[object] = ()) -> Cursor:
        cursor: Cursor = self.engine.translate(
            lambda: self.conn.execute(self.dialect.sql(query), tuple(params))
        )
        return cursor

    def executemany(self, query: str, rows: Iterable[Sequence[object]]) -> None:
        sql = self.dialect.sql(query)
        cursor = self.conn.cursor()
        self.engine.translate(lambda: cursor.executemany(sql, [tuple(r) for r in rows]))

    def one(self, query: str, params: Sequence[object] = ()) -> Any:
        return self.execute(query, params).fetchone()

    def all(self, query: str, params: Sequence[object] = ()) -> list[Any]:
        return list(self.execute(query, params).fetchall())


class Engine(Protocol):
    """A database: transactions with named locks, schema management."""

    url: str
    dialect: Dialect
    #: The vault folder a SQLite database lives in (None for a server).
    folder: Path | None

    def unit(
        self, lock: Iterable[str | bytes] = (), *, read_only: bool = False
    ) -> AbstractContextManager[Tx]:
        """A transaction holding ``lock``'s names until it commits (joined if already in one).

        ``read_only``: the unit only reads (a consistent snapshot; on SQLite it then takes
        no write lock, so readers do not queue behind writers)."""
        ...

    def translate(self, call: Callable[[], Any]) -> Any:
        """Run ``call``, turning 'cannot reach the database' into ``StoreUnavailableError``."""
        ...

    def exists(self) -> bool:
        """Whether the database holds this schema (its ``meta`` table)."""
        ...

    def scrub(self) -> None:
        """Make erased rows' bytes leave the log where the engine can (SQLite's WAL)."""
        ...

    def close(self) -> None: ...


def lock_id(name: str | bytes) -> int:
    """A signed 64-bit lock number for a name (PostgreSQL advisory locks)."""
    raw = name.encode() if isinstance(name, str) else name
    return int.from_bytes(
        hashlib.blake2b(b"faceverify-lock\x00" + raw, digest_size=8).digest(), "big", signed=True
    )


def ensure_schema(engine: Engine, schema: Schema, *, create: bool, what: str) -> None:
    """Create or migrate ``schema`` in ``engine`` (only with ``create`` when absent)."""
    if not engine.exists() and not create:
        raise ConfigurationError(
            f"no {what} at {redact(engine.url)} (only `faceverify keys init` or an enrolment create one;"
            " check the path or URL for a typo)"
        )
    # The schema's lock: workers of a new version opening one old database migrate it once.
    with engine.unit(["schema:" + schema.name]) as tx:
        d = engine.dialect.name
        tx.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        rows = dict(tx.all("SELECT name, value FROM meta"))
        if rows.get("schema", schema.name) != schema.name:
            raise ConfigurationError(
                f"{redact(engine.url)} holds a {rows['schema']!r} database, not a {schema.name!r} one"
            )
        try:
            version = int(rows.get("version", "0"))
        except ValueError:
            raise ConfigurationError(f"{redact(engine.url)}: malformed schema version") from None
        if version > schema.version:
            raise ConfigurationError(
                f"{redact(engine.url)} has {schema.name} schema version {version}; this faceverify knows"
                f" up to {schema.version}: upgrade faceverify"
            )
        for migration in schema.migrations[version:]:
            for statement in migration[d]:
                tx.execute(statement)
        tx.execute(
            "INSERT INTO meta VALUES ('schema', ?) ON CONFLICT (name) DO UPDATE SET value=excluded.value",
            (schema.name,),
        )
        tx.execute(
            "INSERT INTO meta VALUES ('version', ?) ON CONFLICT (name) DO UPDATE SET value=excluded.value",
            (str(schema.version),),
        )


def is_postgres(url: str | Path) -> bool:
    return isinstance(url, str) and url.split(":", 1)[0] in {"postgresql", "postgres"}


def sqlite_path(url: str | Path) -> Path:
    """The file or folder a ``sqlite:///abs/path`` URL or a plain path names."""
    if isinstance(url, Path):
        return url
    if url.startswith("sqlite:"):
        parts = urlsplit(url)
        if parts.netloc not in {"", "localhost"}:
            raise ConfigurationError("a sqlite URL names a local file: sqlite:///absolute/path")
        return Path(unquote(parts.path))
    if "://" in url:
        raise ConfigurationError(
            f"unknown database URL scheme {url.split(':', 1)[0]!r}: use sqlite:///path or postgresql://..."
        )
    return Path(url)


def redact(url: str) -> str:
    """A URL fit for an error message: no password."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()


def open_engine(url: str | Path, *, folder_file: str, pool_size: int | None = None) -> Engine:
    """The engine a URL selects: ``postgresql://``; ``sqlite:///file``, a ``*.db`` path or an
    existing file (the database file itself); or any other path, a folder holding ``folder_file``."""
    if is_postgres(url):
        from ._postgres import PostgresEngine

        return PostgresEngine(str(url), pool_size=pool_size)
    from ._sqlite import SQLiteEngine

    path = sqlite_path(url)
    is_url = isinstance(url, str) and url.startswith("sqlite:")
    if is_url or path.suffix in {".db", ".sqlite", ".sqlite3"} or (path.exists() and not path.is_dir()):
        return SQLiteEngine(path, folder=path.parent)  # the database file itself (a text file: store_corrupt)
    return SQLiteEngine(path / folder_file, folder=path)


def as_url(database: str | Path) -> str:
    return str(database) if is_postgres(database) else f"sqlite://{sqlite_path(database).resolve()}"


def sorted_locks(names: Iterable[str | bytes]) -> list[int]:
    return sorted({lock_id(n) for n in names})


__all__ = [
    "Cursor",
    "Dialect",
    "Engine",
    "Schema",
    "Tx",
    "as_url",
    "ensure_schema",
    "is_postgres",
    "lock_id",
    "open_engine",
    "redact",
    "sorted_locks",
    "sqlite_path",
]
