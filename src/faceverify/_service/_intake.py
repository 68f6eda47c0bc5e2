"""Consent given before enrolment: held in ``fv_service_consent`` until the template binds it.

The vault stores a consent record only together with its template; between the
consent step and the enrolment step (two requests, perhaps two workers) the
record waits here. It holds no biometric data, is replaced by a newer consent,
and is deleted when the template is enrolled or the subject is erased.
"""

from __future__ import annotations

from datetime import UTC, datetime

from .._vault._consent import ConsentRecord
from ._db import ServiceDatabase


class PendingConsent:
    def __init__(self, db: ServiceDatabase) -> None:
        self._db = db

    def put(self, record: ConsentRecord, *, client_id: str) -> None:
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT INTO fv_service_consent (subject_id, consent_json, client_id, created_at)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (subject_id) DO UPDATE SET"
                " consent_json = excluded.consent_json, client_id = excluded.client_id,"
                " created_at = excluded.created_at",
                (record.subject_id, record.to_json(), client_id, datetime.now(UTC).isoformat()),
            )

    def get(self, subject_id: str) -> ConsentRecord | None:
        with self._db.transaction() as tx:
            row = tx.execute(
                "SELECT consent_json FROM fv_service_consent WHERE subject_id=%s", (subject_id,)
            ).fetchone()
        return None if row is None else ConsentRecord.from_json(str(row[0]))

    def discard(self, subject_id: str) -> None:
        with self._db.transaction() as tx:
            tx.execute("DELETE FROM fv_service_consent WHERE subject_id=%s", (subject_id,))
