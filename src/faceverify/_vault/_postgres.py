"""The server engine: PostgreSQL through psycopg 3 and its connection pool.

For deployments of many processes and hosts: every API node, door and kiosk opens the same
URL. A unit of work is one transaction on a pooled connection (``READ COMMITTED``) that
first takes its named locks as transaction-scoped advisory locks (``pg_advisory_xact_lock``
on a 64-bit digest of each name, in sorted order, so two units never wait on each other in
a cycle). Ceremonies on one subject therefore serialise (the first statement after the lock
sees everything the previous holder committed), ceremonies on different subjects run side
by side until they append to the audit chain, whose one-row head is locked ``FOR UPDATE``
for the last moment of the transaction.

A lock or a connection that cannot be had within ``lock_timeout`` / the pool's timeout, a
server that refuses connections or restarts: ``StoreUnavailableError``; nothing was changed
(the transaction rolled back), retry later. The pool checks a connection before lending it,
so a server restart costs one error at most, not a poisoned pool.

Erased rows stay in PostgreSQL's heap pages until ``VACUUM`` reclaims them (autovacuum does,
eventually): an erased template is undecryptable the moment its key is shredded, whatever
lingers. Put the key store in another database (another server or at least another role,
``docs/privacy.md``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import psycopg_pool

from .._errors import ConfigurationError, StoreUnavailableError
from ._engine import Dialect, Tx, redact, sorted_locks

POSTGRES = Dialect("postgresql", "%s", " FOR UPDATE")
LOCK_TIMEOUT = "15s"
CONNECT_TIMEOUT_S = 10.0
DEFAULT_POOL_SIZE = 4


class PostgresEngine:
    """An ``Engine`` on one PostgreSQL database, through a connection pool."""

    dialect = POSTGRES
    folder: Path | None = None

    def __init__(self, url: str, *, pool_size: int | None = None) -> None:
        if url.startswith("postgres://"):
            url = "postgresql://" + url[len("postgres://") :]
        self.url = url
        size = pool_size or DEFAULT_POOL_SIZE
        if size < 1:
            raise ConfigurationError("a PostgreSQL pool needs at least one connection")
        self._local = threading.local()
        try:
            # One direct attempt first: a server that is not there is an error now, not after
            # the pool has retried for its whole timeout.
            psycopg.connect(url, connect_timeout=int(CONNECT_TIMEOUT_S)).close()
            self._pool = psycopg_pool.ConnectionPool(
                url,
                min_size=1,
                max_size=size,
                timeout=CONNECT_TIMEOUT_S,
                check=psycopg_pool.ConnectionPool.check_connection,
                kwargs={"connect_timeout": int(CONNECT_TIMEOUT_S)},
                open=False,
                name="faceverify",
            )
            self._pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise StoreUnavailableError(f"cannot connect to {redact(url)}: {_short(exc)}") from None

    def translate(self, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except (psycopg.OperationalError, psycopg.InterfaceError, psycopg_pool.PoolTimeout) as exc:
            raise StoreUnavailableError(f"{redact(self.url)}: {_short(exc)}") from None

    @contextlib.contextmanager
    def unit(self, lock: Iterable[str | bytes] = (), *, read_only: bool = False) -> Iterator[Tx]:
        wanted = sorted_locks(lock)
        outer: Tx | None = getattr(self._local, "tx", None)
        if outer is not None:  # joined: a savepoint of the enclosing unit
            with self.translate(outer.conn.transaction):
                self._take(outer, wanted)
                outer.depth += 1
                try:
                    yield outer
                finally:
                    outer.depth -= 1
            return
        try:
            with contextlib.ExitStack() as stack:
                conn = self.translate(lambda: stack.enter_context(self._pool.connection()))
                self.translate(lambda: stack.enter_context(conn.transaction()))
                tx = Tx(conn, POSTGRES, self)
                tx.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                self._take(tx, wanted)
                self._local.tx = tx
                try:
                    yield tx
                finally:
                    self._local.tx = None
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:  # the rollback of a lost link
            raise StoreUnavailableError(f"{redact(self.url)}: {_short(exc)}") from None
        for call in tx.after_commit:
            call()

    @staticmethod
    def _take(tx: Tx, wanted: list[int]) -> None:
        new = [k for k in wanted if k not in tx.locks]
        if new:
            tx.execute(
                "SELECT count(pg_advisory_xact_lock(k))"
                " FROM (SELECT unnest(?::bigint[]) AS k ORDER BY 1) AS s",
                (new,),
            )
            tx.locks.update(new)

    def exists(self) -> bool:
        with self.unit() as tx:
            return bool(tx.one("SELECT to_regclass('meta') IS NOT NULL")[0])

    def scrub(self) -> None:
        """Nothing to fold: PostgreSQL reclaims erased rows' pages on ``VACUUM``."""

    def close(self) -> None:
        self._pool.close()


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
