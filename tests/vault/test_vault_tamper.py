"""Columns nothing authenticates are not trusted (defect 6), on both engines.

Purge read expiry from ``consent_expires_at`` / ``last_used_at`` columns: setting them to 2099
made it skip an expired template. Expiry is now read from the sealed header and the bound
consent, and the lockout triple carries a MAC; an edited column is a typed refusal, never a
raw traceback and never a reset lockout.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from vault_helpers import PACK, Where, consent_for, matches, raw_sql, unit

from faceverify._clock import FrozenClock
from faceverify._errors import InvalidTemplateError, LockedOutError, TemplateExpiredError
from faceverify._vault import Vault

CORRUPT = "malformed or was edited"


def test_purge_reads_expiry_from_the_sealed_template_not_from_editable_columns(
    vault: Vault, where: Where, clock: FrozenClock
) -> None:
    vault.enroll("alice", unit(1), consent=consent_for("alice", days=30), model_pack_id=PACK)
    vault.enroll("bob", unit(2), consent=consent_for("bob", days=30), model_pack_id=PACK)
    vault.enroll("carol", unit(3), consent=consent_for("carol", days=3000), model_pack_id=PACK)
    clock.advance(timedelta(days=31))
    # What an administrator could try so that purge skips Alice and Bob: a later change time,
    # and for Bob a consent record that runs to 2099.
    later = "2099-01-01T00:00:00.000000+00:00"
    raw_sql(where, "UPDATE subjects SET changed_at=? WHERE subject_id='alice'", (later,))
    longer = consent_for("bob", days=30_000).to_json()
    raw_sql(where, "UPDATE subjects SET consent_json=? WHERE subject_id='bob'", (longer,))
    with pytest.raises(TemplateExpiredError):
        matches(vault, "alice", 1)
    with pytest.raises(InvalidTemplateError):
        matches(vault, "bob", 2)  # the swapped consent breaks the binding

    assert vault.purge() == 2
    for subject in ("alice", "bob"):
        row = vault.store.get(subject)
        assert row is not None and row.state == "expired" and row.blob is None
        assert vault.keys.key_ids(subject) == []
    reasons = {e.subject: e.reason for e in vault.audit.entries() if e.event == "purge"}
    assert reasons == {"alice": "expired", "bob": "its consent record was altered"}
    assert matches(vault, "carol", 3)  # an unexpired template is kept


def test_an_edit_cannot_make_a_valid_template_look_expired_either(vault: Vault, where: Where) -> None:
    vault.enroll("alice", unit(1), consent=consent_for("alice"), model_pack_id=PACK)
    raw_sql(
        where,
        "UPDATE subjects SET changed_at=? WHERE subject_id='alice'",
        ("1970-01-01T00:00:00.000000+00:00",),
    )
    assert vault.purge() == 0
    assert matches(vault, "alice", 1)


def _edits(backend: str) -> list[str]:
    common = [
        "UPDATE subjects SET failures=1 WHERE subject_id='alice'",  # changing the count
        "UPDATE subjects SET locked_until=NULL WHERE subject_id='alice'",  # lifting the lock
        "UPDATE subjects SET lockout_level=0 WHERE subject_id='alice'",  # shortening the next one
        "UPDATE subjects SET lockout_mac=NULL WHERE subject_id='alice'",
    ]
    if backend == "sqlite":  # SQLite columns take any type: the edits PostgreSQL's types refuse
        common += [
            "UPDATE subjects SET failures='abc' WHERE subject_id='alice'",
            "UPDATE subjects SET locked_until='garbage' WHERE subject_id='alice'",
            "UPDATE subjects SET lockout_level=-1 WHERE subject_id='alice'",
            "UPDATE subjects SET changed_at=12345 WHERE subject_id='alice'",
            "UPDATE subjects SET blob='text, not bytes' WHERE subject_id='alice'",
        ]
    return common


def test_edited_lockout_and_row_columns_are_typed_refusals(
    vault: Vault, where: Where, clock: FrozenClock
) -> None:
    edits = _edits(where.backend)
    for sql in edits:
        vault.enroll("alice", unit(1), consent=consent_for("alice"), model_pack_id=PACK)
        for seed in range(10, 15):
            assert not matches(vault, "alice", unit(seed))
        with pytest.raises(LockedOutError):
            matches(vault, "alice", 1)
        raw_sql(where, sql)
        with pytest.raises(InvalidTemplateError, match=CORRUPT):
            matches(vault, "alice", 1)  # refused, not compared: the lockout was not lifted
        clock.advance(timedelta(days=1))
    assert vault.audit.verify_chain().ok
