"""Interface D: every error has a stable code, every code an exit status, and docs/cli.md says so."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import faceverify
from faceverify import _errors
from faceverify._cli._main import EXIT_CODES, EXIT_ERROR, exit_code

DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def error_classes() -> list[type[_errors.FaceVerifyError]]:
    return [
        c for _, c in inspect.getmembers(_errors, inspect.isclass) if issubclass(c, _errors.FaceVerifyError)
    ]


def test_every_class_declares_its_own_code() -> None:
    for cls in error_classes():
        assert "code" in vars(cls), f"{cls.__name__} inherits its code instead of stating it"
        assert re.fullmatch(r"[a-z_]+", cls.code), cls
        assert cls.code in EXIT_CODES, f"{cls.__name__}.code {cls.code!r} has no exit status"


def test_exit_statuses_follow_the_contract() -> None:
    expected = {
        _errors.InvalidSubjectIdError: 2,
        _errors.UnreadableImageError: 2,
        _errors.ImageTooLargeError: 2,
        _errors.NoFaceError: 2,
        _errors.MultipleFacesError: 2,
        _errors.LowQualityError: 2,
        _errors.InvalidTemplateError: 2,
        _errors.ConfigurationError: 2,
        _errors.ModelIntegrityError: 2,
        _errors.StoreCorruptError: 2,
        _errors.LivenessRequiredError: 3,
        _errors.PresentationAttackError: 3,
        _errors.ChallengeFailedError: 3,
        _errors.LockedOutError: 4,
        _errors.EnumerationRefusedError: 4,
        _errors.UnknownSubjectError: 5,
        _errors.SubjectRevokedError: 5,
        _errors.TemplateExpiredError: 5,
        _errors.ConsentError: 9,
        _errors.KeyStoreError: 10,
    }
    for cls, status in expected.items():
        assert exit_code(cls.code) == status, cls
    for code, status in {"camera_lost": 6, "store_unavailable": 7, "timeout": 8, "unknown_claim": 5}.items():
        assert EXIT_CODES[code] == status
    assert EXIT_CODES["no_match"] == 1 and list(EXIT_CODES.values()).count(1) == 1  # 1 is no-match only
    assert exit_code("a_code_added_later") == EXIT_ERROR


def test_invalid_input_is_also_a_value_error() -> None:
    assert issubclass(_errors.InvalidInputError, ValueError)
    assert issubclass(_errors.InvalidSubjectIdError, _errors.SubjectError)


def test_public_tree_is_exported() -> None:
    for name in ("InvalidInputError", "InvalidSubjectIdError", "StoreCorruptError"):
        assert name in faceverify.__all__ and getattr(faceverify, name) is getattr(_errors, name)


def test_docs_table_matches_the_code() -> None:
    rows = re.findall(r"^\| (\d+) \| `([a-z_]+)` \|", DOCS.read_text(), flags=re.M)
    documented = {code: int(status) for status, code in rows}
    assert documented == dict(EXIT_CODES)
