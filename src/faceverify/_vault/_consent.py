"""Consent records: the reason a template is allowed to exist at all.

A template is stored only together with the consent that permits it, and its
digest is sealed into the template's authenticated header, so the record cannot
be swapped or edited behind the template's back. The record names one purpose;
a vault opened for another purpose refuses to use it.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .._errors import ConsentError, InvalidSubjectIdError

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_MAX_TEXT = 200
MAX_SUBJECT_ID = 128
_SUBJECT_ID = re.compile(rf"[A-Za-z0-9](?:[A-Za-z0-9._@+-]{{0,{MAX_SUBJECT_ID - 2}}}[A-Za-z0-9_@+-])?")
CONSENT_FORMAT = 1


def check_subject_id(subject_id: object) -> str:
    """The subject id in its one canonical form, or ``InvalidSubjectIdError``.

    Subject ids are opaque, short strings chosen by the host: Unicode NFKC
    normalisation and trimming, then 1 to 128 of ``A-Z a-z 0-9 . _ @ + -``,
    starting with a letter or a digit and not ending with a dot. So a
    full-width ``"ａｌｉｃｅ"`` or ``"alice "`` *is* ``"alice"``, and a
    look-alike that normalisation does not fold (a Cyrillic ``"а"``, a
    zero-width space, a control character) is refused rather than enrolled as
    a second subject. Case is kept: ``"Alice"`` and ``"alice"`` differ.
    Everything that takes a subject id passes it through here and uses the
    *returned* id.

    Ids appear in the audit log, which outlives erasure, so hosts should use
    pseudonymous ids (a random account id), not names or e-mail addresses.
    """
    if not isinstance(subject_id, str):
        raise InvalidSubjectIdError(f"a subject id is a string, not {type(subject_id).__name__}")
    canonical = unicodedata.normalize("NFKC", subject_id).strip()
    if not _SUBJECT_ID.fullmatch(canonical):
        shown = ascii(subject_id[:24]) + ("..." if len(subject_id) > 24 else "")  # escaped, bounded
        raise InvalidSubjectIdError(
            f"subject id {shown} is refused: a subject id is 1 to {MAX_SUBJECT_ID} characters of "
            "A-Z a-z 0-9 . _ @ + -, starting with a letter or digit and not ending with a dot "
            "(after Unicode NFKC normalisation and trimming)"
        )
    return canonical


def _check_text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > _MAX_TEXT or not value.isprintable():
        raise ConsentError(f"consent {name} must be 1 to {_MAX_TEXT} printable characters")
    return value


def _check_time(value: object, name: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ConsentError(f"consent {name} must be a timezone-aware datetime")
    return value


@dataclass(frozen=True, slots=True)
class ConsentEvidence:
    """How the consent was obtained, without storing the document itself.

    ``document_sha256`` is the digest of the exact release text the subject
    agreed to (the host keeps the signed document); ``method`` says how it was
    collected (``"signed-paper"``, ``"in-app-checkbox"``…) and ``collected_by``
    who collected it (an operator id, a kiosk id).
    """

    document_sha256: str
    method: str
    collected_by: str

    def __post_init__(self) -> None:
        if not isinstance(self.document_sha256, str) or not _SHA256_HEX.fullmatch(self.document_sha256):
            raise ConsentError("consent evidence needs the document's SHA-256 as 64 lowercase hex digits")
        _check_text(self.method, "evidence method")
        _check_text(self.collected_by, "evidence collector")

    @classmethod
    def for_document(cls, document: bytes, *, method: str, collected_by: str) -> ConsentEvidence:
        """Evidence for a release whose bytes are at hand (e.g. a signed PDF)."""
        return cls(hashlib.sha256(document).hexdigest(), method, collected_by)


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """One subject's consent to one purpose, for a bounded time.

    ``scope`` narrows the purpose further (sites, devices, ``"site:berlin"``);
    it is recorded for the subject's and the controller's benefit and is not
    interpreted by faceverify.
    """

    subject_id: str
    purpose: str
    granted_at: datetime
    expires_at: datetime
    evidence: ConsentEvidence
    scope: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        try:
            canonical = check_subject_id(self.subject_id)
        except InvalidSubjectIdError as exc:
            raise ConsentError(str(exc)) from None
        object.__setattr__(self, "subject_id", canonical)  # the one form the template is bound to
        _check_text(self.purpose, "purpose")
        granted = _check_time(self.granted_at, "grant time")
        expires = _check_time(self.expires_at, "expiry time")
        if expires <= granted:
            raise ConsentError("consent must expire after it was granted")
        if not isinstance(self.evidence, ConsentEvidence):
            raise ConsentError("consent needs evidence (ConsentEvidence)")
        if not isinstance(self.scope, tuple):
            raise ConsentError("consent scope must be a tuple of strings")
        for item in self.scope:
            _check_text(item, "scope entry")

    def is_valid_at(self, now: datetime) -> bool:
        """Granted and not yet expired at ``now``."""
        return self.granted_at <= now < self.expires_at

    def require_valid(self, now: datetime, *, purpose: str | None = None) -> None:
        """Raise ConsentError unless the record covers ``now`` (and ``purpose``, when given)."""
        if now < self.granted_at:
            raise ConsentError("consent is not yet in force")
        if now >= self.expires_at:
            raise ConsentError("consent has expired")
        if purpose is not None and purpose != self.purpose:
            raise ConsentError(f"consent was given for {self.purpose!r}, not {purpose!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": CONSENT_FORMAT,
            "subject_id": self.subject_id,
            "purpose": self.purpose,
            "granted_at": self.granted_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "evidence": {
                "document_sha256": self.evidence.document_sha256,
                "method": self.evidence.method,
                "collected_by": self.evidence.collected_by,
            },
            "scope": list(self.scope),
        }

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no spaces): its SHA-256 is sealed into the template."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def digest(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConsentRecord:
        try:
            if data["format"] != CONSENT_FORMAT:
                raise ConsentError(f"unknown consent record format {data['format']!r}")
            evidence = data["evidence"]
            return cls(
                subject_id=data["subject_id"],
                purpose=data["purpose"],
                granted_at=datetime.fromisoformat(data["granted_at"]),
                expires_at=datetime.fromisoformat(data["expires_at"]),
                evidence=ConsentEvidence(
                    evidence["document_sha256"], evidence["method"], evidence["collected_by"]
                ),
                scope=tuple(data.get("scope", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConsentError(f"malformed consent record: {type(exc).__name__}") from None

    @classmethod
    def from_json(cls, text: str | bytes) -> ConsentRecord:
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError):
            raise ConsentError("malformed consent record: not JSON") from None
        if not isinstance(data, dict):
            raise ConsentError("malformed consent record: not a JSON object")
        return cls.from_dict(data)
