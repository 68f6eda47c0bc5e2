"""Interface E: one canonical form per subject id; look-alikes refused, never enrolled twice."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from faceverify import InvalidSubjectIdError, SubjectError
from faceverify._vault._consent import check_subject_id

ALLOWED = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._@+-]{0,126}[A-Za-z0-9_@+-])?")


@pytest.mark.parametrize(
    ("given_id", "canonical"),
    [
        ("alice", "alice"),
        ("alice ", "alice"),
        ("\talice\n", "alice"),
        ("\uff41\uff4c\uff49\uff43\uff45", "alice"),  # full-width
        ("user.42@example.org", "user.42@example.org"),
        ("Alice", "Alice"),  # case is the host's business
        ("x" * 128, "x" * 128),
    ],
)
def test_canonical_form(given_id: str, canonical: str) -> None:
    assert check_subject_id(given_id) == canonical


@pytest.mark.parametrize(
    "bad",
    [
        "",
        " ",
        "\u3000",  # ideographic space: NFKC makes it a space, trimmed to nothing
        "\u0430lice",  # Cyrillic a
        "al\u200bice",  # zero-width space
        "ali ce",
        "x" * 129,
        ".alice",
        "alice.",
        "-alice",
        "tab\there",
        "new\nline",
        "a/b",
        "a\x00b",
    ],
)
def test_look_alikes_and_junk_are_refused(bad: str) -> None:
    with pytest.raises(InvalidSubjectIdError, match="subject id") as caught:
        check_subject_id(bad)
    assert caught.value.code == "bad_input"
    assert isinstance(caught.value, SubjectError) and isinstance(caught.value, ValueError)


def test_the_refusal_message_is_bounded() -> None:
    """Found by Hypothesis: 24 astral characters escape to 10 characters each (a 400-character message)."""
    with pytest.raises(InvalidSubjectIdError) as caught:
        check_subject_id("\U00010000" * 100)
    assert len(str(caught.value)) < 500


def test_not_a_string() -> None:
    with pytest.raises(InvalidSubjectIdError, match="string"):
        check_subject_id(42)


@given(st.text(max_size=200))
def test_any_text_is_canonical_or_refused(text: str) -> None:
    try:
        canonical = check_subject_id(text)
    except InvalidSubjectIdError as exc:
        assert len(str(exc)) < 500  # bounded whatever the input: 24 characters shown, each escaped
        return
    assert ALLOWED.fullmatch(canonical)
    assert check_subject_id(canonical) == canonical  # idempotent
    assert canonical == unicodedata.normalize("NFKC", text).strip()


@given(st.from_regex(ALLOWED, fullmatch=True), st.sampled_from([" ", "\t", "\u3000", ""]))
def test_equivalent_spellings_are_one_subject(subject: str, pad: str) -> None:
    wide = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in subject)  # full-width forms
    assert check_subject_id(pad + wide + pad) == check_subject_id(subject) == subject
