"""Lockout and anti-enumeration, in one process and across processes sharing a store."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from vault_helpers import PACK, Where, consent_for, matches, near, run_python, unit

from faceverify._clock import FrozenClock, SystemClock
from faceverify._errors import EnumerationRefusedError, LockedOutError
from faceverify._vault import MasterKey, OpenedTemplate, Vault


def test_five_failures_lock_for_30s_doubling_until_success(vault: Vault, clock: FrozenClock) -> None:
    vault.enroll("alice", unit(1), consent=consent_for("alice"), model_pack_id=PACK)
    for seed in range(10, 15):
        assert not matches(vault, "alice", unit(seed))

    def never(opened: OpenedTemplate) -> object:
        raise AssertionError("a locked-out subject must not be compared")

    with pytest.raises(LockedOutError) as info:
        vault.verify("alice", unit(1), never, model_pack_id=PACK)  # type: ignore[type-var]
    assert info.value.retry_after == timedelta(seconds=30)
    clock.advance(timedelta(seconds=30))
    for seed in range(20, 25):
        assert not matches(vault, "alice", unit(seed))
    with pytest.raises(LockedOutError) as info:
        matches(vault, "alice", unit(1))
    assert info.value.retry_after == timedelta(seconds=60)  # doubled
    clock.advance(timedelta(seconds=60))
    assert matches(vault, "alice", unit(1))  # success resets the level
    for seed in range(30, 35):
        assert not matches(vault, "alice", unit(seed))
    with pytest.raises(LockedOutError) as info:
        matches(vault, "alice", unit(1))
    assert info.value.retry_after == timedelta(seconds=30)


def test_success_resets_the_failure_count(vault: Vault) -> None:
    vault.enroll("alice", unit(1), consent=consent_for("alice"), model_pack_id=PACK)
    for _ in range(3):
        for seed in range(4):
            assert not matches(vault, "alice", unit(100 + seed))
        assert matches(vault, "alice", near(unit(1), 7))


def test_same_capture_against_three_subjects_is_refused_and_audited(vault: Vault, clock: FrozenClock) -> None:
    for i, subject in enumerate(["alice", "bob", "carol", "dave"]):
        vault.enroll(subject, unit(i), consent=consent_for(subject), model_pack_id=PACK)
    stolen = unit(777)
    assert not matches(vault, "alice", stolen)
    assert not matches(vault, "bob", near(stolen, 1, noise=0.01))  # re-encoded copy: still the same capture
    with pytest.raises(EnumerationRefusedError):
        matches(vault, "carol", stolen)
    with pytest.raises(EnumerationRefusedError):
        matches(vault, "dave", near(stolen, 2, noise=0.01))
    assert matches(vault, "carol", unit(2))  # other captures are unaffected
    assert matches(vault, "alice", unit(0))
    refused = [e for e in vault.audit.entries() if e.event == "enumeration-refused"]
    assert [e.subject for e in refused] == ["carol", "dave"]
    clock.advance(timedelta(minutes=11))  # outside the window the probe is forgotten
    assert not matches(vault, "carol", stolen)


def test_the_same_subject_retried_is_not_enumeration(vault: Vault) -> None:
    vault.enroll("alice", unit(1), consent=consent_for("alice"), model_pack_id=PACK)
    probe = near(unit(1), 3)
    for _ in range(4):
        assert matches(vault, "alice", probe)


def _shared_vault(
    open_vault: Callable[..., Vault], where: Where, master: MasterKey
) -> tuple[Vault, dict[str, str]]:
    vault = open_vault(clock=SystemClock())
    now = datetime.now(UTC)
    for i, subject in enumerate(["alice", "bob", "carol"]):
        vault.enroll(
            subject,
            unit(i),
            consent=consent_for(subject, granted=now - timedelta(days=1)),
            model_pack_id=PACK,
        )
    return vault, where.env(master.encoded())


def _child(subject: str, seeds: list[int], env: dict[str, str], actor: str | None = None) -> list[str]:
    code = f"from vault_helpers import child_verify; child_verify({subject!r}, {seeds!r}, {actor!r})"
    done = run_python(code, env)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_lockout_holds_across_processes(
    open_vault: Callable[..., Vault], where: Where, master: MasterKey
) -> None:
    vault, env = _shared_vault(open_vault, where, master)
    assert _child("alice", [50, 51, 52], env) == ["no-match"] * 3
    assert _child("alice", [53, 54, 0], env) == ["no-match", "no-match", "LockedOutError"]
    with pytest.raises(LockedOutError):
        matches(vault, "alice", unit(0))


def test_enumeration_refusal_holds_across_processes(
    open_vault: Callable[..., Vault], where: Where, master: MasterKey
) -> None:
    vault, env = _shared_vault(open_vault, where, master)
    assert _child("alice", [999], env) == ["no-match"]
    assert _child("bob", [999], env) == ["no-match"]
    with pytest.raises(EnumerationRefusedError):
        matches(vault, "carol", unit(999))
    assert _child("carol", [999, 2], env, actor="other-caller") == ["EnumerationRefusedError", "match"]
