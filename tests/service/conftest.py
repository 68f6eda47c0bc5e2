"""Fixtures of the service tests: the real app, real models, a real vault on SQLite and on PostgreSQL.

``service`` is an in-process app (starlette's TestClient transport) over a real
Verifier; ``tests/service/test_workers.py`` runs real ``faceverify serve``
processes. Each test gets a fresh vault and fresh service tables. Helpers the
tests import by name are in ``service_helpers.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from service_helpers import Poser, Service, open_service, poser

from faceverify._vault import MasterKey
from faceverify.hazmat import FacePipeline


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(vault database, key-store database) on each engine."""
    if request.param == "sqlite":
        for folder in ("vault", "keys"):  # the key store in a folder of its own, never the vault's
            (tmp_path / folder).mkdir()
        return f"sqlite://{tmp_path / 'vault' / 'vault.db'}", f"sqlite://{tmp_path / 'keys' / 'keys.db'}"
    make: Callable[[], str] = request.getfixturevalue("postgres_database")
    return make(), make()


@pytest.fixture
def master_key() -> MasterKey:
    return MasterKey.generate()


@pytest.fixture
def service(database: tuple[str, str], master_key: MasterKey, pipeline: FacePipeline) -> Iterator[Service]:
    svc = open_service(database, master_key, pipeline)
    yield svc
    state = svc.app.state.faceverify  # type: ignore[attr-defined]
    # No request of any test may have ended in an internal error.
    assert 'status="500"' not in state.metrics.render().decode(), "a request answered 500"
    state.db.close()


@pytest.fixture
def obama3(pipeline: FacePipeline, samples: dict[str, Path]) -> Poser:
    """Frames of a third photo of the enrolled person (not an enrolment image coming back)."""
    return poser(pipeline, samples["obama3"])


@pytest.fixture
def biden(pipeline: FacePipeline, samples: dict[str, Path]) -> Poser:
    return poser(pipeline, samples["biden"])
