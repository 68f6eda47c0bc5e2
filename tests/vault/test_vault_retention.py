"""Retention with a frozen clock: consent expiry and last use + window, whichever is first."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from vault_helpers import PACK, T0, consent_for, matches, unit

from faceverify._clock import FrozenClock
from faceverify._errors import ConfigurationError, ConsentError, TemplateExpiredError
from faceverify._vault import MAX_RETENTION, RetentionPolicy, Vault


def test_past_retention_is_refused_then_purged(vault: Vault, clock: FrozenClock) -> None:
    vault.enroll("alice", unit(1), consent=consent_for("alice", days=3000), model_pack_id=PACK)
    clock.advance(timedelta(days=364))
    assert vault.purge() == 0
    assert matches(vault, "alice", 1)  # a successful use restarts the window
    clock.advance(timedelta(days=364))
    assert matches(vault, "alice", 1)
    clock.advance(timedelta(days=365))
    with pytest.raises(TemplateExpiredError, match="retention"):
        matches(vault, "alice", 1)
    assert vault.purge() == 1
    assert vault.store.get("alice").blob is None  # type: ignore[union-attr]
    assert vault.keys.key_ids("alice") == []
    with pytest.raises(TemplateExpiredError, match="purged"):
        matches(vault, "alice", 1)
    assert vault.purge() == 0


def test_failed_attempts_do_not_extend_retention(vault: Vault, clock: FrozenClock) -> None:
    vault.enroll("alice", unit(1), consent=consent_for("alice", days=3000), model_pack_id=PACK)
    clock.advance(timedelta(days=300))
    assert not matches(vault, "alice", 50)
    clock.advance(timedelta(days=66))
    with pytest.raises(TemplateExpiredError):
        matches(vault, "alice", 1)


def test_consent_expiry_wins_when_earlier(vault: Vault, clock: FrozenClock) -> None:
    vault.enroll("alice", unit(1), consent=consent_for("alice", days=30), model_pack_id=PACK)
    vault.enroll("bob", unit(2), consent=consent_for("bob", days=3000), model_pack_id=PACK)
    clock.advance(timedelta(days=29))
    assert matches(vault, "alice", 1)
    clock.advance(timedelta(days=1))
    with pytest.raises(TemplateExpiredError, match="consent"):
        matches(vault, "alice", 1)
    assert vault.purge() == 1
    assert matches(vault, "bob", 2)
    assert [c.subject_id for c in vault.consents()] == ["bob"]


def test_enrol_refuses_invalid_consent(vault: Vault, clock: FrozenClock) -> None:
    with pytest.raises(ConsentError, match="another subject"):
        vault.enroll("alice", unit(1), consent=consent_for("bob"), model_pack_id=PACK)
    clock.set(T0 + timedelta(days=31))
    with pytest.raises(ConsentError, match="expired"):
        vault.enroll("alice", unit(1), consent=consent_for("alice", days=30), model_pack_id=PACK)
    assert vault.store.get("alice") is None


def test_purpose_binding(open_vault: Callable[..., Vault]) -> None:
    door = open_vault(purpose="door-access")
    with pytest.raises(ConsentError, match="app-login"):
        door.enroll("alice", unit(1), consent=consent_for("alice"), model_pack_id=PACK)
    login = open_vault(purpose="app-login")
    login.enroll("alice", unit(1), consent=consent_for("alice"), model_pack_id=PACK)
    with pytest.raises(ConsentError, match="door-access"):
        matches(door, "alice", 1)


def test_retention_window_is_capped() -> None:
    RetentionPolicy(MAX_RETENTION)
    with pytest.raises(ConfigurationError, match="3-year"):
        RetentionPolicy(timedelta(days=3 * 365 + 2))
    with pytest.raises(ConfigurationError):
        RetentionPolicy(timedelta(0))


def test_expiry_is_min_of_both() -> None:
    policy = RetentionPolicy(timedelta(days=100))
    assert policy.expires_at(consent_for("a", days=30), T0) == T0 + timedelta(days=30)
    assert policy.expires_at(consent_for("a", days=300), T0) == T0 + timedelta(days=100)
