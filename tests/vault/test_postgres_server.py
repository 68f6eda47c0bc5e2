"""The test PostgreSQL server itself: real, reachable, and fresh namespaces per test."""

from __future__ import annotations

from collections.abc import Callable

import psycopg


def test_each_test_gets_its_own_empty_namespace(postgres_database: Callable[[], str]) -> None:
    first, second = postgres_database(), postgres_database()
    assert first != second
    with psycopg.connect(first, autocommit=True) as conn:
        conn.execute("CREATE TABLE marker (x int)")
        (version,) = conn.execute("SHOW server_version_num").fetchone()  # type: ignore[misc]
        assert int(version) >= 130000
    with psycopg.connect(second) as conn:
        assert conn.execute("SELECT to_regclass('marker')").fetchone() == (None,)
    with psycopg.connect(first) as conn:
        assert conn.execute("SELECT to_regclass('marker') IS NOT NULL").fetchone() == (True,)
