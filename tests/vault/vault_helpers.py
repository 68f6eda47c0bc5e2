"""Helpers for vault tests: synthetic unit vectors stand in for embeddings.

The vault is embedding-agnostic (it never sees an image), so random unit
vectors exercise it fully; the real pipeline is tested elsewhere.
"""

from __future__ import annotations

import hashlib
import os
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


def child_verify(directory: str, subject: str, seeds: list[int]) -> None:
    """Run in a subprocess: verify ``subject`` with each probe seed, print one outcome per line."""
    from faceverify._errors import FaceVerifyError
    from faceverify._vault import load_master_key

    vault = Vault.open(directory, load_master_key())
    for seed in seeds:
        probe = unit(seed)
        try:
            result = vault.verify(subject, probe, cosine_compare(probe), model_pack_id=PACK)
            print("match" if result.match else "no-match", flush=True)
        except FaceVerifyError as exc:
            print(type(exc).__name__, flush=True)


def matches(vault: Vault, subject: str, probe: int | npt.NDArray[np.float32]) -> bool:
    """Verify ``subject`` with a probe (or the unit vector of that seed) by max cosine >= 0.5."""
    vector = unit(probe) if isinstance(probe, int) else probe
    return bool(vault.verify(subject, vector, cosine_compare(vector), model_pack_id=PACK).match)
