"""Child processes for the crash and concurrency tests (and benchmarks/vault.py): run until killed.

    python crash_child.py ceremonies SEED     enrol / re-enrol / revoke s0..s3 in a loop
    python crash_child.py rotate KEYDIR       rotate the master key in a loop (keys KEYDIR/key-N)
    python crash_child.py race SUBJECT ROLE N enroll | revoke | verify | wrong-face, N times, on "go"

The vault comes from the environment (``vault_helpers.Where.env``). Each prints ``ready``
once the vault is open, so the parent kills it mid-work rather than mid-import.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from vault_helpers import PACK, consent_for, cosine_compare, open_from_env, unit

from faceverify._errors import FaceVerifyError
from faceverify._vault import MasterKey, init_master_key

SUBJECTS = 4


def _ready() -> None:
    print("ready", flush=True)


def ceremonies(seed: int, *, ready: Callable[[], object] = _ready) -> None:
    vault = open_from_env()
    granted = datetime.now(UTC) - timedelta(days=1)
    ready()
    i = seed
    while True:
        subject = f"s{i % SUBJECTS}"
        if i % 3 == 2:
            with contextlib.suppress(FaceVerifyError):  # never enrolled yet
                vault.revoke(subject, actor="crash")
        else:
            vault.enroll(
                subject,
                unit(i % 7),
                consent=consent_for(subject, granted=granted),
                model_pack_id=PACK,
                actor="crash",
            )
        i += 1


def rotate(keydir: str, *, ready: Callable[[], object] = _ready) -> None:
    n = len(list(Path(keydir).glob("key-*")))
    vault = open_from_env()
    ready()
    while True:
        new: MasterKey = init_master_key(Path(keydir) / f"key-{n:04d}")
        vault.rotate_master_key(new, actor="crash")
        n += 1


def race(subject: str, role: str, count: int, *, wait: Callable[[], object] = sys.stdin.readline) -> None:
    vault = open_from_env()
    granted = datetime.now(UTC) - timedelta(days=1)
    print("ready", flush=True)
    wait()  # the parent's "go", given to every racer at once
    outcomes = []
    for i in range(count):
        try:
            if role == "enroll":
                vault.enroll(
                    subject, unit(i % 5), consent=consent_for(subject, granted=granted), model_pack_id=PACK
                )
                outcomes.append("enrolled")
            elif role == "revoke":
                vault.revoke(subject)
                outcomes.append("revoked")
            elif role == "wrong-face":
                probe = unit(10_000 + i)
                compare = cosine_compare(probe)
                result = vault.verify(subject, probe, compare, model_pack_id=PACK, actor="racer")
                outcomes.append("match" if result.match else "no-match")
            else:
                probe = unit(i % 5)
                result = vault.verify(
                    subject, probe, cosine_compare(probe), model_pack_id=PACK, actor=f"v{i}"
                )
                outcomes.append("match" if result.match else "no-match")
        except FaceVerifyError as exc:
            outcomes.append(type(exc).__name__)
    print(" ".join(outcomes), flush=True)
    vault.close()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    mode = sys.argv[1]
    if mode == "ceremonies":
        ceremonies(int(sys.argv[2]))
    elif mode == "rotate":
        rotate(sys.argv[2])
    else:
        race(sys.argv[2], sys.argv[3], int(sys.argv[4]))
