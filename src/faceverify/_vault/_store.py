"""The template store's contract: everything is addressed by one subject id.

There is deliberately no "all templates" or "all embeddings" query: a store
that can hand out every template is a search engine waiting to be written.
What *may* be listed is who is enrolled and under what consent (records of
processing) and which subjects have expired (for the purge); neither returns
a template.

A store keeps, per subject, one row: the encrypted template blob, the consent
record it is bound to, retention times, and lockout state. Revoked or purged
subjects leave a tombstone (id, state, time; no template, no consent) so that
a later claim gets ``SubjectRevokedError`` rather than ``UnknownSubjectError``.
Anti-enumeration probe digests live beside the rows for a few minutes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

SubjectState = Literal["active", "revoked", "expired"]


@dataclass(frozen=True, slots=True)
class LockoutState:
    """Consecutive failures since the last success, and the current lock, if any."""

    failures: int = 0
    locked_until: datetime | None = None
    level: int = 0


@dataclass(frozen=True, slots=True)
class StoredSubject:
    """One subject's row. ``blob`` and ``consent_json`` are ``None`` for a tombstone."""

    subject_id: str
    state: SubjectState
    changed_at: datetime
    template_id: str | None
    blob: bytes | None
    consent_json: str | None


class TemplateStore(Protocol):
    """Persistence for templates, addressed by subject id only. Every method is atomic."""

    def get(self, subject_id: str) -> StoredSubject | None:
        """The subject's row (active or tombstone), or ``None`` if never enrolled."""
        ...

    def put(
        self,
        subject_id: str,
        *,
        template_id: str,
        blob: bytes,
        consent_json: str,
        consent_expires_at: datetime,
        last_used_at: datetime,
        at: datetime,
    ) -> None:
        """Store a new template, replacing any previous one or tombstone; lockout resets."""
        ...

    def replace_blob(self, subject_id: str, *, template_id: str, blob: bytes, last_used_at: datetime) -> bool:
        """Swap in a re-sealed blob of the *same* template (after a successful use).

        Compare-and-swap on ``template_id``: returns False (and changes nothing)
        if the subject re-enrolled or was erased meanwhile.
        """
        ...

    def erase(
        self, subject_id: str, *, state: SubjectState, at: datetime, template_id: str | None = None
    ) -> bool:
        """Replace the row by a tombstone; with ``template_id``, only if it still holds that template.

        Returns whether an active template was erased.
        """
        ...

    def consents(self) -> Iterator[tuple[str, str]]:
        """``(subject_id, consent_json)`` of every active subject: records of processing."""
        ...

    def expired(self, *, now: datetime, retention: timedelta) -> list[tuple[str, str]]:
        """``(subject_id, template_id)`` of active templates past consent or retention at ``now``."""
        ...

    def prune_probes(self, *, before: datetime) -> int:
        """Forget probe digests recorded before ``before``; returns how many."""
        ...

    def lockout(self, subject_id: str) -> LockoutState:
        """The subject's lockout state (the default for unknown subjects)."""
        ...

    def update_lockout(self, subject_id: str, update: Callable[[LockoutState], LockoutState]) -> LockoutState:
        """Read, ``update`` and write the lockout state in one write-locked transaction.

        Serialised across processes: two processes recording failures at once
        both count. A no-op for subjects without an active template.
        """
        ...

    def record_probe(
        self,
        subject_id: str,
        digests: Sequence[bytes],
        *,
        now: datetime,
        window: timedelta,
        min_shared: int,
    ) -> int:
        """Record a verification attempt's probe digests; forget probes older than ``window``.

        Returns how many *other* subjects were tried, within the window, with an
        earlier attempt sharing at least ``min_shared`` of ``digests`` (counted
        before this attempt is added).
        """
        ...
