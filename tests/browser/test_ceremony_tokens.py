"""Ceremony tokens and receipts: what lets a browser act without an API key (no browser needed)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from faceverify._clock import FrozenClock
from faceverify._errors import ConfigurationError, InvalidCeremonyTokenError
from faceverify._web import CeremonyTokens, ConsentDocument, default_consent_documents

KEY = bytes(range(32))


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 12, 1, 12, 0, tzinfo=UTC))


@pytest.fixture
def tokens(clock: FrozenClock) -> CeremonyTokens:
    return CeremonyTokens(KEY, clock=clock)


def test_a_token_names_one_subject_and_one_ceremony_until_it_expires(
    tokens: CeremonyTokens, clock: FrozenClock
) -> None:
    token, ceremony = tokens.mint(client="shop", subject_id="alice", kind="verify", purpose="app-login")
    assert "alice" not in token and "shop" not in token  # sealed, not just signed
    assert tokens.open(token) == ceremony
    assert tokens.open(token, kind="verify") == ceremony
    with pytest.raises(InvalidCeremonyTokenError):
        tokens.open(token, kind="enroll")  # a login token cannot enrol
    clock.advance(timedelta(minutes=10))
    with pytest.raises(InvalidCeremonyTokenError):
        tokens.open(token)


@pytest.mark.parametrize("mangle", ["flip", "truncate", "prefix", "empty", "huge", "other-key"])
def test_every_bad_token_is_one_opaque_error(tokens: CeremonyTokens, clock: FrozenClock, mangle: str) -> None:
    token, _ = tokens.mint(client="shop", subject_id="alice", kind="enroll", purpose="app-login")
    bad = {
        "flip": token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:],
        "truncate": token[:40],
        "prefix": "fvr1." + token[5:],  # a token presented as a receipt's format
        "empty": "",
        "huge": token + "A" * 5000,
        "other-key": CeremonyTokens(bytes(32), clock=clock).mint(
            client="shop", subject_id="alice", kind="enroll", purpose="app-login"
        )[0],
    }[mangle]
    with pytest.raises(InvalidCeremonyTokenError, match=r"^invalid ceremony token$"):
        tokens.open(bad)


def test_narrowed_tokens_carry_the_agreement_and_the_session(
    tokens: CeremonyTokens, clock: FrozenClock
) -> None:
    document = default_consent_documents("Example Corp")["app-login"]
    token, ceremony = tokens.mint(client="shop", subject_id="alice", kind="enroll", purpose="app-login")
    clock.advance(timedelta(seconds=30))
    agreed = tokens.agree(ceremony, document)
    assert agreed.consent_sha256 == document.sha256 and agreed.consented_at == clock.now()
    bound = replace(agreed, session_id="s1")
    assert tokens.open(tokens.seal(bound)) == bound
    assert tokens.open(token).consent_sha256 is None  # the first token never carried it


def test_a_receipt_is_redeemed_only_by_its_client_within_two_minutes(
    tokens: CeremonyTokens, clock: FrozenClock
) -> None:
    _, ceremony = tokens.mint(client="shop", subject_id="alice", kind="verify", purpose="app-login")
    sealed, receipt = tokens.receipt(ceremony, "match")
    assert tokens.redeem(sealed, client="shop") == receipt
    with pytest.raises(InvalidCeremonyTokenError):
        tokens.redeem(sealed, client="other-app")
    with pytest.raises(InvalidCeremonyTokenError):
        tokens.open(sealed)  # a receipt is no ceremony token
    clock.advance(timedelta(minutes=2))
    with pytest.raises(InvalidCeremonyTokenError):
        tokens.redeem(sealed, client="shop")


def test_the_consent_document_states_purpose_and_retention_and_its_digest_follows_the_text() -> None:
    doc = default_consent_documents("Example Corp", retention=timedelta(days=180))["app-login"]
    assert doc.text.startswith("Purpose: app-login\nAsked by: Example Corp\nKept for: at most 180 days")
    assert "nobody is searched for" in doc.text and "No picture is kept" in doc.text
    other = ConsentDocument(doc.purpose, doc.controller, doc.retention, doc.body + " More.")
    assert len(doc.sha256) == 64 and other.sha256 != doc.sha256
    with pytest.raises(ConfigurationError):
        ConsentDocument("app-login", "X", timedelta(0), "text")


def test_bad_settings_are_refused(clock: FrozenClock) -> None:
    with pytest.raises(ConfigurationError):
        CeremonyTokens(b"short", clock=clock)
    with pytest.raises(ConfigurationError):
        CeremonyTokens(KEY, clock=clock, lifetime=timedelta(hours=2))
    with pytest.raises(ConfigurationError):
        CeremonyTokens(KEY, clock=clock).mint(client="a", subject_id="b", kind="admin", purpose="x")  # type: ignore[arg-type]
