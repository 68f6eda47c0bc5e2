"""The service's own tables, on the vault's database: one URL selects the engine.

The service keeps state that must outlive a request and be shared by every
worker on every host: its API clients, its rate-limit windows and consent given
before enrolment. It lives beside the vault's tables (``postgresql://...``: the
same database, tables prefixed ``fv_service_``; a SQLite vault: ``vault-service.db``
beside its ``vault.db``, so the service's per-request writes do not queue behind
the vault's write lock), never in one process. The vault must exist first.

SQL is written once with ``%s`` placeholders; the SQLite engine rewrites them to
``?``. Both engines support ``INSERT ... ON CONFLICT ... DO UPDATE ... RETURNING``,
which makes a rate-limit increment one atomic statement.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from .._errors import ConfigurationError, FaceVerifyError
from .._vault._engine import redact
from .._vault._store import VAULT_SCHEMA

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS fv_service_clients ("
    " client_id TEXT PRIMARY KEY,"
    " name TEXT NOT NULL,"
    " key_sha256 TEXT NOT NULL,"
    " scopes TEXT NOT NULL,"
    " prefixes TEXT NOT NULL,"
    " created_at TEXT NOT NULL,"
    " revoked_at TEXT)",
    "CREATE TABLE IF NOT EXISTS fv_service_rate ("
    " bucket TEXT NOT NULL,"
    " window_start BIGINT NOT NULL,"
    " hits INTEGER NOT NULL,"
    " PRIMARY KEY (bucket, window_start))",
    "CREATE TABLE IF NOT EXISTS fv_service_consent ("
    " subject_id TEXT PRIMARY KEY,"
    " consent_json TEXT NOT NULL,"
    " client_id TEXT NOT NULL,"
    " created_at TEXT NOT NULL)",
)


def store_unavailable(message: str) -> FaceVerifyError:
    """The vault's ``StoreUnavailableError`` (code ``store_unavailable``, HTTP 503)."""
    from .. import _errors

    cls = getattr(_errors, "StoreUnavailableError", None)
    if cls is None:  # pragma: no cover - before the vault engines land
        return FaceVerifyError(message)
    error: FaceVerifyError = cls(message)
    return error


class Cursor(Protocol):
    def fetchone(self) -> Sequence[Any] | None: ...
    def fetchall(self) -> Sequence[Sequence[Any]]: ...
    @property
    def rowcount(self) -> int: ...


class Transaction(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...


class ServiceDatabase(Protocol):
    """The unit of work is a transaction; ``ping`` answers whether the database is reachable."""

    url: str

    def transaction(self) -> contextlib.AbstractContextManager[Transaction]: ...
    def ping(self) -> None: ...
    def close(self) -> None: ...


class _SQLiteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        cursor: Cursor = self._conn.execute(sql.replace("%s", "?"), tuple(params))
        return cursor


class SQLiteServiceDatabase:
    """``service.db`` beside a SQLite vault: WAL, a busy timeout, ``BEGIN IMMEDIATE`` per transaction."""

    def __init__(self, path: Path) -> None:
        self.url = f"sqlite:///{path}"
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=15)
        path.chmod(0o600)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        with self.transaction() as tx:
            for statement in _SCHEMA:
                tx.execute(statement)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise store_unavailable(f"the service database is unavailable ({exc})") from None
            try:
                yield _SQLiteTx(self._conn)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def ping(self) -> None:
        with self.transaction() as tx:
            tx.execute("SELECT 1")

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class _PostgresTx:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        cursor: Cursor = self._conn.execute(sql, tuple(params))
        return cursor


class PostgresServiceDatabase:
    """The vault's PostgreSQL database, through a small connection pool.

    A server that is down or restarting gives ``StoreUnavailableError`` (HTTP 503);
    the pool reconnects by itself once it is back.
    """

    def __init__(self, url: str, *, max_size: int = 4) -> None:
        import psycopg_pool

        self.url = url
        self._pool = psycopg_pool.ConnectionPool(
            url,
            min_size=1,
            max_size=max_size,
            open=False,
            check=psycopg_pool.ConnectionPool.check_connection,
            timeout=5,
            kwargs={"connect_timeout": 5},
        )
        self._pool.open(wait=False)
        with self.transaction() as tx:
            found = tx.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()
            query = "SELECT value FROM meta WHERE name='schema'"
            schema = found and found[0] and tx.execute(query).fetchone()
        if not schema or schema[0] != VAULT_SCHEMA.name:
            self._pool.close()
            raise ConfigurationError(f"no vault at {redact(url)}: create it first (faceverify keys init)")
        with self.transaction() as tx:
            tx.execute("SELECT pg_advisory_xact_lock(7242)")  # two workers creating the schema at once
            for statement in _SCHEMA:
                tx.execute(statement)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        import psycopg
        import psycopg_pool

        try:
            with self._pool.connection() as conn, conn.transaction():
                yield _PostgresTx(conn)
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
            raise store_unavailable(f"the database is unavailable ({type(exc).__name__})") from None

    def ping(self) -> None:
        with self.transaction() as tx:
            tx.execute("SELECT 1")

    def close(self) -> None:
        self._pool.close()


def open_service_database(database: str | Path) -> ServiceDatabase:
    """The service's tables on the vault's ``database`` (a URL, or a SQLite vault folder or file).

    The vault must exist (``faceverify keys init`` or an enrolment creates it): a mistyped
    URL is an error, not a new empty database of API keys.
    """
    from .._vault._engine import is_postgres, sqlite_path

    text = str(database)
    if is_postgres(text):
        return PostgresServiceDatabase(text)
    path = sqlite_path(database)
    vault_file = path if path.suffix in (".db", ".sqlite", ".sqlite3") else path / "vault.db"
    if not vault_file.is_file():
        raise ConfigurationError(f"no vault at {vault_file}: create it first (faceverify keys init)")
    return SQLiteServiceDatabase(vault_file.with_name(vault_file.stem + "-service.db"))
