"""The enrolment kiosk: consent on screen, the person's agreement as evidence, a live enrolment.

::

    kiosk = Kiosk(verifier, camera, operator="op-7", kiosk="lobby", display=TerminalDisplay(),
                  ask=input, evidence_dir=Path("/var/lib/faceverify/consent"))
    result = kiosk.enrol("e-1042", KioskTerms(text=consent_text))

In order, and stopping at the first refusal with nothing captured:

1. the consent text and what retention means for this template (kept at
   most until the consent expires, deleted after the retention window
   without use, withdrawable at any time) are shown;
2. the person is asked to agree in words (``ask``); anything but
   ``I agree`` stops here, audited, and no frame is ever read;
3. a receipt is written — the exact text shown, its SHA-256, the answer
   given, when, the kiosk and the operator — and its SHA-256 becomes the
   consent record's evidence (the host keeps the receipt; the vault keeps
   the digest, method ``kiosk-on-screen`` and ``collected_by`` naming the
   kiosk and the operator);
4. a live session started for enrolment runs on fresh camera frames and
   ``Verifier.enroll_live`` enrols the distinct best frontal frames of a
   session that passed (the audit names ``kiosk:OPERATOR`` as actor).

The receipt holds no biometric data; no image is kept anywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from .._clock import Clock
from .._errors import ConfigurationError, ConsentError
from .._liveness._challenge import Challenge
from .._vault import ConsentEvidence, ConsentRecord
from .._verifier import EnrollmentResult, Verifier
from ._camera import CameraSource
from ._display import Display, NullDisplay
from ._loop import FreshFrames

__all__ = ["AGREEMENT", "Kiosk", "KioskEnrolment", "KioskTerms"]

#: What the person types (or the touch screen's button sends) to agree.
AGREEMENT = "I agree"
RECEIPT_FORMAT = 1


@dataclass(frozen=True, slots=True)
class KioskTerms:
    """What the person agrees to: the text shown, its purpose, for how long, where."""

    text: str
    purpose: str = "door-access"
    consent_days: int = 365
    scope: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.text.strip():
            raise ConfigurationError("the kiosk needs a consent text to show")
        if not 1 <= self.consent_days <= 3 * 365:
            raise ConfigurationError("consent lasts 1 day to 3 years at a kiosk")


@dataclass(frozen=True, slots=True)
class KioskEnrolment:
    """A kiosk enrolment: the template stored, the consent recorded, the receipt kept."""

    enrollment: EnrollmentResult
    consent: ConsentRecord
    receipt_sha256: str
    receipt_path: Path | None


class Kiosk:
    """Enrols one consenting person at a time from a live session on ``camera``."""

    def __init__(
        self,
        verifier: Verifier,
        camera: CameraSource,
        *,
        operator: str,
        kiosk: str = "kiosk",
        ask: Callable[[str], str],
        display: Display | None = None,
        evidence_dir: Path | None = None,
        clock: Clock | None = None,
        challenges: tuple[Challenge, ...] | None = None,
        max_frame_age: timedelta = timedelta(milliseconds=500),
        camera_timeout: float = 2.0,
    ) -> None:
        if not operator.strip():
            raise ConfigurationError("a kiosk enrolment names its operator")
        self.verifier = verifier
        self.operator = operator
        self.kiosk = kiosk
        self._ask = ask
        self.display = display or NullDisplay()
        self.evidence_dir = evidence_dir
        self.clock: Clock = clock or verifier.vault.clock
        self._challenges = challenges
        self.frames = FreshFrames(
            camera, self.clock, max_frame_age=max_frame_age, camera_timeout=camera_timeout
        )

    def enrol(self, subject_id: str, terms: KioskTerms) -> KioskEnrolment:
        """Consent on screen, the agreement, the receipt, then the live enrolment (see the module doc)."""
        now = self.verifier.vault.clock.now()
        expires = now + timedelta(days=terms.consent_days)
        window = self.verifier.vault.retention.window.days
        self.display.show(terms.text)
        self.display.show(
            f"Purpose: {terms.purpose}. Your face template (numbers, no photo) is kept until "
            f"{expires:%Y-%m-%d} at the latest, and deleted after {window} days without use. "
            "You may withdraw at any time: it is then erased and its key destroyed."
        )
        answer = self._ask(f"Type '{AGREEMENT}' to consent, anything else to stop: ")
        if answer.strip().casefold() != AGREEMENT.casefold():
            self.verifier.vault.audit.record(
                "enroll", subject=subject_id, outcome="refused", reason="kiosk: the person did not agree"
            )
            self.display.show("nothing was recorded")
            raise ConsentError("the person did not agree to the consent text; nothing was captured")
        receipt = {
            "format": RECEIPT_FORMAT,
            "subject_id": subject_id,
            "purpose": terms.purpose,
            "scope": list(terms.scope),
            "text": terms.text,
            "text_sha256": hashlib.sha256(terms.text.encode()).hexdigest(),
            "retention_days": window,
            "consent_expires_at": expires.isoformat(),
            "agreed_at": now.isoformat(),
            "agreement": answer.strip(),
            "kiosk": self.kiosk,
            "operator": self.operator,
        }
        document = json.dumps(receipt, sort_keys=True, indent=1).encode()
        evidence = ConsentEvidence.for_document(
            document, method="kiosk-on-screen", collected_by=f"kiosk:{self.kiosk} operator:{self.operator}"
        )
        consent = ConsentRecord(
            subject_id=subject_id,
            purpose=terms.purpose,
            granted_at=now,
            expires_at=expires,
            evidence=evidence,
            scope=terms.scope,
        )
        self.verifier.vault.require_consent(subject_id, consent)  # before any frame is read
        path = self._keep(subject_id, evidence.document_sha256, document)
        session = self.verifier.start_session(
            subject_id, challenges=self._challenges, clock=self.clock, purpose="enroll"
        )
        self.frames.feed(session, self.display)
        result = self.verifier.enroll_live(
            subject_id, session, consent=consent, actor=f"kiosk:{self.operator}"
        )
        self.display.show(f"enrolled: {result.images} views kept as numbers, no photo")
        return KioskEnrolment(result, consent, evidence.document_sha256, path)

    def _keep(self, subject_id: str, digest: str, document: bytes) -> Path | None:
        if self.evidence_dir is None:
            return None
        self.evidence_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.evidence_dir / f"{subject_id}-{digest[:16]}.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(document)
        return path
