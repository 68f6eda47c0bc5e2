"""Door test helpers: the time, the key and consent records the door tests share."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from faceverify._errors import ActuatorError
from faceverify._vault import ConsentEvidence, ConsentRecord, MasterKey

__all__ = ["KEY", "SHARED", "T0", "FakeRelay", "consent"]

#: Research data (the real videos), as in tests/conftest.py.
SHARED = Path(os.environ.get("FACEVERIFY_SHARED", Path(__file__).resolve().parents[3] / "shared"))

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
KEY = MasterKey(bytes(range(32)))


def consent(subject: str, *, purpose: str = "door-access", days: int = 365) -> ConsentRecord:
    return ConsentRecord(
        subject_id=subject,
        purpose=purpose,
        granted_at=T0,
        expires_at=T0 + timedelta(days=days),
        evidence=ConsentEvidence(hashlib.sha256(b"door release").hexdigest(), "kiosk-signature", "op-1"),
    )


class FakeRelay:
    """Records what the door asked of it; ``fail`` makes it refuse like a jammed relay."""

    def __init__(self, *, fail: bool = False) -> None:
        self.opened: list[float] = []
        self.closed = 0
        self._fail = fail

    def open(self, seconds: float) -> None:
        if self._fail:
            raise ActuatorError("relay did not confirm")
        self.opened.append(seconds)

    def close(self) -> None:
        self.closed += 1
