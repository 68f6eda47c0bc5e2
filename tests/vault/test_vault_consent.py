from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from vault_helpers import T0, consent_for

from faceverify._errors import ConsentError, SubjectError
from faceverify._vault import ConsentEvidence, ConsentRecord
from faceverify._vault._consent import check_subject_id


def test_json_round_trip() -> None:
    record = consent_for("alice")
    again = ConsentRecord.from_json(record.to_json())
    assert again == record
    assert again.digest() == record.digest()


@pytest.mark.parametrize(
    "change",
    [
        {"purpose": ""},
        {"purpose": "   "},
        {"expires_at": T0},
        {"expires_at": T0 - timedelta(days=1)},
        {"granted_at": datetime(2026, 1, 1)},  # naive
        {"subject_id": ""},
        {"scope": ["x"]},
    ],
)
def test_validation(change: dict[str, object]) -> None:
    with pytest.raises(ConsentError):
        replace(consent_for("alice"), **change)


def test_evidence_needs_a_sha256() -> None:
    with pytest.raises(ConsentError):
        ConsentEvidence("abc", "signed-paper", "op-1")
    evidence = ConsentEvidence.for_document(b"I agree", method="signed-paper", collected_by="op-1")
    assert len(evidence.document_sha256) == 64


def test_validity_window_and_purpose() -> None:
    record = consent_for("alice", days=10)
    record.require_valid(T0 + timedelta(days=1), purpose="app-login")
    with pytest.raises(ConsentError, match="expired"):
        record.require_valid(T0 + timedelta(days=10))
    with pytest.raises(ConsentError, match="not yet"):
        record.require_valid(T0 - timedelta(seconds=1))
    with pytest.raises(ConsentError, match="door-access"):
        record.require_valid(T0, purpose="door-access")


def test_malformed_json() -> None:
    for text in ["", "[]", '{"format": 2}', '{"format": 1}']:
        with pytest.raises(ConsentError):
            ConsentRecord.from_json(text)


@pytest.mark.parametrize("subject", ["", "x" * 129, "tab\there", "new\nline"])
def test_subject_ids_are_short_printable_strings(subject: str) -> None:
    with pytest.raises(SubjectError):
        check_subject_id(subject)
