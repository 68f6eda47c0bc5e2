"""Vault fixtures, parametrised over both engines (helpers live in ``vault_helpers``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from vault_helpers import T0, Where

from faceverify._clock import FrozenClock
from faceverify._vault import MasterKey, Vault


@pytest.fixture
def master() -> MasterKey:
    return MasterKey.generate()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def where(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Where:
    """Where a fresh vault and its key store go: a folder, or two fresh PostgreSQL databases."""
    if backend == "sqlite":
        return Where(backend, str(tmp_path / "vault"), str(tmp_path / "keys" / "keys.db"))
    make = request.getfixturevalue("postgres_database")
    return Where(backend, make(), make())


@pytest.fixture
def open_vault(where: Where, master: MasterKey, clock: FrozenClock) -> Iterator[Callable[..., Vault]]:
    """Open (creating) the test's vault; every vault opened is closed at the end."""
    opened: list[Vault] = []

    def open_(key: MasterKey | None = None, **kwargs: Any) -> Vault:
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("create", True)
        vault = Vault.open(where.database, key or master, keys_database=where.keys_database, **kwargs)
        opened.append(vault)
        return vault

    yield open_
    for vault in opened:
        vault.close()


@pytest.fixture
def vault(open_vault: Callable[..., Vault]) -> Vault:
    return open_vault()
