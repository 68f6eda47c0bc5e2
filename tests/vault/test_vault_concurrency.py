"""Real processes racing on one subject, on both engines: check-and-count is one step,
ceremonies on one subject serialise, and nothing is torn.

Defect 2: 8 processes verifying a wrong face at the same instant were all compared (limit 5);
16 gave 9-12. Defect 3: enroll ∥ revoke and enroll ∥ enroll left an *active* template whose
key was gone (every verify then failed InvalidTemplateError while the audit said "enroll ok").
"""

from __future__ import annotations

import io
import multiprocessing
import os
from collections.abc import Callable
from contextlib import redirect_stdout
from typing import Any

import pytest
from test_vault_crash import check_after_crash, settled_keys
from vault_helpers import PACK, Where, consent_for, unit

from faceverify._clock import SystemClock
from faceverify._vault import MasterKey, Vault


def _racer(env: dict[str, str], subject: str, role: str, count: int, start: Any, results: Any) -> None:
    """In a forked child: open the vault afresh (no handle crosses the fork), wait, race."""
    os.environ.update(env)
    from crash_child import race as run

    out = io.StringIO()
    with redirect_stdout(out):
        run(subject, role, count, wait=lambda: start.wait(timeout=120))
    results.put((role, os.getpid(), out.getvalue().split()[1:]))  # drop "ready"


def race(
    where: Where, master: MasterKey, roles: list[tuple[str, int]], subject: str = "s0"
) -> list[list[str]]:
    """One real process per role (forked: a cold interpreter per racer costs seconds on a loaded
    machine), released together once all have opened the vault; each one's outcomes, in order."""
    context = multiprocessing.get_context("fork")
    start, results = context.Barrier(len(roles) + 1), context.Queue()
    env = where.env(master.encoded())
    children = [
        context.Process(target=_racer, args=(env, subject, role, count, start, results))
        for role, count in roles
    ]
    for child in children:
        child.start()
    start.wait(timeout=120)  # the last racer to open its vault, and this, release them all
    collected = {pid: outcomes for _, pid, outcomes in (results.get(timeout=120) for _ in children)}
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    return [collected[child.pid] for child in children]  # type: ignore[index]


@pytest.mark.parametrize("racers", [8, 16])
def test_simultaneous_wrong_faces_are_compared_at_most_the_lockout_limit(
    open_vault: Callable[..., Vault], where: Where, master: MasterKey, racers: int
) -> None:
    vault = open_vault(clock=SystemClock())
    vault.enroll("s0", unit(42), consent=consent_for("s0", granted=SystemClock().now()), model_pack_id=PACK)
    outcomes = [o for result in race(where, master, [("wrong-face", 1)] * racers) for o in result]
    compared = outcomes.count("no-match")
    assert compared == vault.lockout.max_failures, outcomes  # exactly the limit: none lost, none extra
    assert outcomes.count("LockedOutError") == racers - compared
    entries = vault.audit.entries(subject="s0")
    assert [e.outcome for e in entries if e.event == "verify"].count("no-match") == compared
    assert [(e.event, e.outcome) for e in entries].count(("lockout", "locked")) == 1
    assert vault.audit.verify_chain().ok


def test_enroll_enroll_revoke_and_verify_on_one_subject_leave_nothing_torn(
    open_vault: Callable[..., Vault], where: Where, master: MasterKey
) -> None:
    vault = open_vault(clock=SystemClock())
    roles = [("enroll", 12), ("enroll", 12), ("revoke", 12), ("verify", 12)]
    results = race(where, master, roles)
    assert "InvalidTemplateError" not in results[3], results[3]  # never an active template without a key
    assert results[0].count("enrolled") == results[1].count("enrolled") == 12
    counts = check_after_crash(vault, subjects=1)  # the state is the newest audited ceremony's
    assert counts["ceremonies"] == 24 + results[2].count("revoked")  # every ceremony audited
    settled_keys(vault, subjects=1)
