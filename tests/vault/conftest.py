"""Vault fixtures (helpers live in ``vault_helpers``, importable from subprocesses too)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from vault_helpers import T0

from faceverify._clock import FrozenClock
from faceverify._vault import MasterKey, Vault


@pytest.fixture
def master() -> MasterKey:
    return MasterKey.generate()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


@pytest.fixture
def vault(tmp_path: Path, master: MasterKey, clock: FrozenClock) -> Iterator[Vault]:
    v = Vault.open(tmp_path / "vault", master, clock=clock)
    yield v
