"""SIGKILL mid-write: the store is left in the old or the new state, never a mix.

A child process loops enrol/re-enrol/revoke as fast as it can; the parent kills
it at a random moment and then checks that every subject is either a tombstone
or an active template that opens with the key store and matches one of the
embeddings the child wrote for it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from vault_helpers import PACK, SRC, cosine_compare, unit

from faceverify._vault import MasterKey, OpenedTemplate, Vault

CHILD = """
import sys
from datetime import UTC, datetime, timedelta
from vault_helpers import PACK, consent_for, unit
from faceverify._vault import Vault, load_master_key

vault = Vault.open(sys.argv[1], load_master_key())
granted = datetime.now(UTC) - timedelta(days=1)
i = 0
print("ready", flush=True)
while True:
    subject = f"s{i % 4}"
    if i % 3 == 2:
        vault.revoke(subject)
    else:
        vault.enroll(subject, unit(i % 7), consent=consent_for(subject, granted=granted), model_pack_id=PACK)
    i += 1
"""


def _check_consistent(vault: Vault) -> int:
    active = 0
    for n in range(4):
        subject = f"s{n}"
        row = vault.store.get(subject)
        if row is None or row.state != "active":
            assert row is None or (row.blob is None and row.consent_json is None)
            continue
        active += 1
        probe = unit(1000 + n)  # one probe per subject: the same one for all would be enumeration

        def seen(opened: OpenedTemplate, subject: str = subject, probe: np.ndarray = probe) -> object:
            # the template is one the child wrote: exactly one of unit(0..6), intact
            assert opened.header.subject_id == subject
            scores = [float(opened.embeddings[0] @ unit(k)) for k in range(7)]
            assert max(scores) > 0.999
            return cosine_compare(probe)(opened)

        vault.verify(subject, probe, seen, model_pack_id=PACK)  # type: ignore[type-var]
    return active


@pytest.mark.parametrize("delay", [0.3, 0.55, 0.8, 1.1])
def test_sigkill_during_enrol_and_revoke_leaves_old_or_new(tmp_path: Path, delay: float) -> None:
    master = MasterKey.generate()
    directory = tmp_path / "v"
    Vault.open(directory, master)  # create the files
    env = {
        **os.environ,
        "PYTHONPATH": SRC + os.pathsep + str(Path(__file__).parent),
        "FACEVERIFY_MASTER_KEY": master.encoded(),
    }
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(directory)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == b"ready"
    time.sleep(delay + float(np.random.default_rng().uniform(0, 0.05)))
    assert child.poll() is None, child.stderr.read() if child.stderr else ""
    child.send_signal(signal.SIGKILL)
    child.wait()

    vault = Vault.open(directory, master)
    _check_consistent(vault)
    vault.purge()  # sweeps nothing young, and must not break anything either
    _check_consistent(vault)
    # Each active subject holds exactly its template's key, or that plus one orphan of an enrol in flight.
    for n in range(4):
        assert len(vault.keys.key_ids(f"s{n}")) <= 2
