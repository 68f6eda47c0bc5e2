"""The test PostgreSQL server itself: real, reachable, and one fresh database per test."""

from __future__ import annotations

from collections.abc import Callable

import psycopg


def test_each_test_gets_its_own_empty_database(postgres_database: Callable[[], str]) -> None:
    first, second = postgres_database(), postgres_database()
    assert first != second
    with psycopg.connect(first, autocommit=True) as conn:
        conn.execute("CREATE TABLE marker (x int)")
        (version,) = conn.execute("SHOW server_version_num").fetchone()  # type: ignore[misc]
        assert int(version) >= 130000
    with psycopg.connect(second) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename='marker'").fetchone()
        assert tables == (0,)
