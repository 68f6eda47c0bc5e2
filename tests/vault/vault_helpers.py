"""Helpers for vault tests: synthetic unit vectors stand in for embeddings.

The vault is embedding-agnostic (it never sees an image), so random unit
vectors exercise it fully; the real pipeline is tested elsewhere.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt

import faceverify
from faceverify._vault import ConsentEvidence, ConsentRecord, OpenedTemplate, Vault

DIM = 128
PACK = "test-pack-v1"
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SRC = str(Path(faceverify.__file__).resolve().parents[1])


def unit(seed: int, dim: int = DIM) -> npt.NDArray[np.float32]:
    v = np.random.default_rng(seed).standard_normal(dim)
    return (v / np.linalg.norm(v)).astype(np.float32)


def near(v: npt.NDArray[np.float32], seed: int, noise: float = 0.02) -> npt.NDArray[np.float32]:
    w = v + noise * np.random.default_rng(seed).standard_normal(v.shape[0])
    return (w / np.linalg.norm(w)).astype(np.float32)


@dataclass(frozen=True)
class Outcome:
    match: bool
    score: float


def cosine_compare(probe: npt.NDArray[np.float32], threshold: float = 0.5):  # type: ignore[no-untyped-def]
    def compare(opened: OpenedTemplate) -> Outcome:
        score = float(np.max(opened.embeddings @ probe))
        return Outcome(score >= threshold, score)

    return compare


def consent_for(
    subject: str, *, granted: datetime = T0, days: int = 730, purpose: str = "app-login"
) -> ConsentRecord:
    return ConsentRecord(
        subject_id=subject,
        purpose=purpose,
        granted_at=granted,
        expires_at=granted + timedelta(days=days),
        evidence=ConsentEvidence(hashlib.sha256(b"release v1").hexdigest(), "in-app-checkbox", "kiosk-7"),
        scope=("site:hq",),
    )


def run_python(
    code: str, env_extra: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter that imports this checkout's faceverify."""
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + str(Path(__file__).parent), **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass(frozen=True)
class Where:
    """A test vault's location: the engine, the vault's URL or folder, the key store's."""

    backend: str
    database: str
    keys_database: str

    def env(self, master_key: str) -> dict[str, str]:
        """What a child process needs to open the same vault (see ``open_from_env``)."""
        return {
            "FACEVERIFY_MASTER_KEY": master_key,
            "FV_TEST_DATABASE": self.database,
            "FV_TEST_KEYS_DATABASE": self.keys_database,
        }


def open_from_env(**kwargs: object) -> Vault:
    """In a child process: the vault ``Where.env`` describes."""
    from faceverify._vault import load_master_key

    return Vault.open(
        os.environ["FV_TEST_DATABASE"],
        load_master_key(),
        keys_database=os.environ["FV_TEST_KEYS_DATABASE"],
        **kwargs,  # type: ignore[arg-type]
    )


def raw_sql(where: Where, sql: str, params: tuple[object, ...] = (), *, keys: bool = False) -> None:
    """What an administrator could do behind faceverify's back: run SQL on a database directly."""
    import sqlite3

    target = where.keys_database if keys else where.database
    if where.backend == "sqlite":
        path = target if keys else str(Path(target) / "vault.db")
        with sqlite3.connect(path) as conn:
            conn.execute(sql, params)
        conn.close()
    else:
        import psycopg

        with psycopg.connect(target, autocommit=True) as pg:
            pg.execute(sql.replace("?", "%s"), params)  # type: ignore[arg-type]


def child_verify(subject: str, seeds: list[int], actor: str | None = None) -> None:
    """Run in a subprocess: verify ``subject`` with each probe seed, print one outcome per line."""
    from faceverify._errors import FaceVerifyError

    vault = open_from_env()
    for seed in seeds:
        probe = unit(seed)
        try:
            result = vault.verify(subject, probe, cosine_compare(probe), model_pack_id=PACK, actor=actor)
            print("match" if result.match else "no-match", flush=True)
        except FaceVerifyError as exc:
            print(type(exc).__name__, flush=True)


def matches(vault: Vault, subject: str, probe: int | npt.NDArray[np.float32]) -> bool:
    """Verify ``subject`` with a probe (or the unit vector of that seed) by max cosine >= 0.5."""
    vector = unit(probe) if isinstance(probe, int) else probe
    return bool(vault.verify(subject, vector, cosine_compare(vector), model_pack_id=PACK).match)


def backup_vault(where: Where, vault: Vault, tmp_path: Path, postgres_url: str | None) -> str:
    """An ordinary backup of the vault as an operator takes it: a copy of the folder, or a
    ``pg_dump`` of the vault's database restored into a new database."""
    if where.backend == "sqlite":
        vault.engine.scrub()
        shutil.copytree(where.database, tmp_path / "backup")
        return str(tmp_path / "backup")
    import pgserver
    import psycopg

    assert postgres_url is not None
    dump = tmp_path / "vault.dump"
    bindir = pgserver.bindir()
    subprocess.run([bindir / "pg_dump", "-Fc", "-f", dump, where.database], check=True)
    name = "fvbackup_" + tmp_path.name[-12:].replace("-", "_").lower()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    copy = pgserver.with_database(postgres_url, name)
    subprocess.run([bindir / "pg_restore", "--no-owner", "-d", copy, dump], check=True)
    return copy + "&options=" + where.database.rsplit("options=", 1)[1]
