"""The vault: consent-bound, encrypted, expiring templates, one subject at a time.

``Vault`` ties the store, the key store, retention, lockout, anti-enumeration
and the audit log into the ceremonies the ``Verifier`` runs, without knowing
anything about images: it takes embeddings in and hands one subject's
embeddings to a comparison function the caller supplies.

That shape is the privacy argument. ``verify`` opens exactly the template of
the claimed subject and passes it, with the probe, to ``compare``; there is no
method that opens two subjects' templates, so no caller can compare a capture
with more than the one claimed subject.

Ordering across the two files (templates, keys) is chosen so that a crash at
any point leaves the old or the new state:

- enrol: new key → new template row (one transaction) → destroy older keys.
  Crash before the row: the old template and its key are intact.
- erase: tombstone the row → destroy keys. Crash in between: the subject is
  revoked, and ``purge`` later destroys the orphaned key.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol, TypeVar

import numpy.typing as npt

from .._clock import Clock, SystemClock
from .._errors import (
    ConsentError,
    EnumerationRefusedError,
    InvalidTemplateError,
    LockedOutError,
    SubjectRevokedError,
    TemplateExpiredError,
    UnknownSubjectError,
)
from ._audit import AuditLog, AuditSink
from ._consent import ConsentRecord, check_subject_id
from ._keys import KeyStore, MasterKey
from ._lockout import EnumerationPolicy, LockoutPolicy, probe_digests
from ._retention import RetentionPolicy
from ._sqlite import SQLiteTemplateStore
from ._store import StoredSubject, TemplateStore
from ._template import (
    FORMAT_VERSION,
    OpenedTemplate,
    TemplateHeader,
    check_embeddings,
    open_template,
    read_header,
    seal,
    touched,
)
from ._template import needs_reenroll as _needs_reenroll

# Keys younger than this are never swept as orphans: they may belong to an
# enrolment still in flight in another process.
_ORPHAN_GRACE = timedelta(hours=1)
_PROBE_KEY_LABEL = b"probe-digest-v1"


class Matchable(Protocol):
    """What a comparison must report for the vault to update lockout and last use."""

    @property
    def match(self) -> bool: ...


R = TypeVar("R", bound=Matchable)


@dataclass(frozen=True, slots=True)
class DeletionReceipt:
    """Proof of an erasure, for the subject: what was destroyed and when.

    ``keys_destroyed`` counts the subject's data keys deleted from the key
    store; with them gone, any copy of the template (backups included) is
    undecryptable.
    """

    subject_id: str
    erased_at: datetime
    template_erased: bool
    keys_destroyed: int


class Vault:
    """Template persistence and the policies around it; embedding-agnostic."""

    def __init__(
        self,
        *,
        store: TemplateStore,
        keys: KeyStore,
        audit: AuditSink,
        clock: Clock | None = None,
        retention: RetentionPolicy | None = None,
        lockout: LockoutPolicy | None = None,
        enumeration: EnumerationPolicy | None = None,
        purpose: str | None = None,
    ) -> None:
        self.store = store
        self.keys = keys
        self.audit = audit
        self.clock: Clock = clock or SystemClock()
        self.retention = retention or RetentionPolicy()
        self.lockout = lockout or LockoutPolicy()
        self.enumeration = enumeration or EnumerationPolicy()
        self.purpose = purpose
        self._probe_key = keys.derive(_PROBE_KEY_LABEL)

    @classmethod
    def open(
        cls,
        directory: str | Path,
        master_key: MasterKey,
        *,
        keys_path: str | Path | None = None,
        clock: Clock | None = None,
        retention: RetentionPolicy | None = None,
        lockout: LockoutPolicy | None = None,
        enumeration: EnumerationPolicy | None = None,
        purpose: str | None = None,
    ) -> Vault:
        """The default layout: ``templates.db`` and ``audit.db`` in ``directory``; keys in ``keys.db``.

        Put ``keys_path`` on another volume (or host) than ``directory`` if
        template backups must not carry the keys along.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        clock = clock or SystemClock()
        return cls(
            store=SQLiteTemplateStore(directory / "templates.db"),
            keys=KeyStore(keys_path or directory / "keys.db", master_key),
            audit=AuditLog(directory / "audit.db", clock=clock),
            clock=clock,
            retention=retention,
            lockout=lockout,
            enumeration=enumeration,
            purpose=purpose,
        )

    # -- enrolment ---------------------------------------------------------

    def require_consent(self, subject_id: str, consent: ConsentRecord) -> None:
        """Refuse (and audit) unless ``consent`` is this subject's, in force now, for this purpose.

        Callers that do expensive work before ``enroll`` (the image pipeline)
        call this first, so that nothing is processed without consent.
        """
        subject_id = check_subject_id(subject_id)
        try:
            if consent.subject_id != subject_id:
                raise ConsentError("the consent record names another subject")
            consent.require_valid(self.clock.now(), purpose=self.purpose)
        except ConsentError as exc:
            self.audit.record("enroll", subject=subject_id, outcome="refused", reason=str(exc))
            raise

    def enroll(
        self, subject_id: str, embeddings: npt.ArrayLike, *, consent: ConsentRecord, model_pack_id: str
    ) -> TemplateHeader:
        """Seal 1–5 embeddings as ``subject_id``'s template, replacing any previous one.

        Refused (``ConsentError``) unless ``consent`` is this subject's, in force
        now, and for this vault's purpose.
        """
        now = self.clock.now()
        self.require_consent(subject_id, consent)
        rows = check_embeddings(embeddings)
        previous = self.store.get(subject_id)
        key_id, key = self.keys.new_key(subject_id, at=now)
        header = TemplateHeader(
            format_version=FORMAT_VERSION,
            template_id=uuid.uuid4().hex,
            subject_id=subject_id,
            key_id=key_id,
            model_pack_id=model_pack_id,
            embedding_dim=int(rows.shape[1]),
            embedding_count=int(rows.shape[0]),
            created_at=now,
            last_used_at=now,
            expires_at=self.retention.expires_at(consent, now),
            consent_sha256=consent.digest(),
        )
        self.store.put(
            subject_id,
            template_id=header.template_id,
            blob=seal(header, rows, key),
            consent_json=consent.to_json(),
            consent_expires_at=consent.expires_at,
            last_used_at=now,
            at=now,
        )
        self.keys.shred(subject_id, keep=key_id)  # the previous template's key: its backups die too
        replaced = previous is not None and previous.state == "active"
        self.audit.record(
            "enroll",
            subject=subject_id,
            outcome="ok",
            reason=f"{rows.shape[0]} embedding(s)" + (", replaced" if replaced else ""),
        )
        return header

    # -- verification --------------------------------------------------------

    def verify(
        self,
        subject_id: str,
        probe: npt.ArrayLike,
        compare: Callable[[OpenedTemplate], R],
        *,
        model_pack_id: str,
        note: str = "",
    ) -> R:
        """Run ``compare`` on ``subject_id``'s template only, after every refusal check.

        Checks, in order: the subject is enrolled and active; not locked out;
        the probe was not tried against too many other subjects; the template
        opens and is bound to its consent; consent (purpose, expiry) and
        retention allow use; the template was made with ``model_pack_id``.
        Then the outcome updates lockout and last use, and is audited
        (``note``, e.g. "live session", goes into the audit entry's reason).
        """
        subject_id = check_subject_id(subject_id)
        now = self.clock.now()
        row = self._active(subject_id, event="verify")
        retry = self.lockout.retry_after(self.store.lockout(subject_id), now)
        if retry is not None:
            self.audit.record("verify", subject=subject_id, outcome="refused", reason="locked out")
            raise LockedOutError(
                f"too many failed attempts; retry in {retry.total_seconds():.0f} s", retry_after=retry
            )
        others = self.store.record_probe(
            subject_id,
            probe_digests(probe, self._probe_key),
            now=now,
            window=self.enumeration.window,
            min_shared=self.enumeration.min_shared_bands,
        )
        if others + 1 >= self.enumeration.max_subjects:
            self.audit.record(
                "enumeration-refused",
                subject=subject_id,
                outcome="refused",
                reason=f"capture tried against {others} other subject(s)",
            )
            raise EnumerationRefusedError("this capture was already tried against other subjects; refused")
        consent, opened = self._open(row, event="verify")
        try:
            consent.require_valid(now, purpose=self.purpose)
        except ConsentError as exc:
            self.audit.record("verify", subject=subject_id, outcome="refused", reason=str(exc))
            if now >= consent.expires_at:
                raise TemplateExpiredError(
                    "the subject's consent has expired; re-enrol with new consent"
                ) from None
            raise
        if self.retention.is_expired(consent, opened.header.last_used_at, now):
            self.audit.record("verify", subject=subject_id, outcome="refused", reason="past retention")
            raise TemplateExpiredError("the template is past its retention period; re-enrol")
        if _needs_reenroll(opened.header, model_pack_id):
            self.audit.record(
                "verify", subject=subject_id, outcome="refused", reason="made with another model pack"
            )
            raise TemplateExpiredError(
                f"the template was made with model pack {opened.header.model_pack_id!r},"
                f" not {model_pack_id!r}; re-enrol"
            )
        result = compare(opened)
        if result.match:
            self._record_success(opened, consent, now)
            self.audit.record("verify", subject=subject_id, outcome="match", reason=note)
        else:
            self.audit.record("verify", subject=subject_id, outcome="no-match", reason=note)
            self._count_failure(subject_id, now)
        return result

    def record_failed_attempt(self, subject_id: str, *, reason: str) -> None:
        """Audit a verification attempt refused before any comparison (a failed liveness
        session) and count it toward the subject's lockout, as a no-match is.

        Without this, a replayed recording could retry a random challenge draw
        without bound. Unknown, revoked or purged subjects have no lockout: the
        attempt is only audited.
        """
        subject_id = check_subject_id(subject_id)
        now = self.clock.now()
        self.audit.record("verify", subject=subject_id, outcome="refused", reason=reason)
        row = self.store.get(subject_id)
        if row is not None and row.state == "active":
            self._count_failure(subject_id, now)

    def _count_failure(self, subject_id: str, now: datetime) -> None:
        state = self.store.update_lockout(subject_id, lambda s: self.lockout.after_failure(s, now))
        if state.failures == 0 and state.locked_until is not None:
            self.audit.record("lockout", subject=subject_id, outcome="locked", reason=f"level {state.level}")

    def _record_success(self, opened: OpenedTemplate, consent: ConsentRecord, now: datetime) -> None:
        subject_id = opened.header.subject_id
        key = self.keys.get(subject_id, opened.header.key_id)
        if key is not None:  # shredded meanwhile (revoked concurrently): nothing to refresh
            header = touched(opened, last_used_at=now, expires_at=self.retention.expires_at(consent, now))
            self.store.replace_blob(
                subject_id,
                template_id=header.template_id,
                blob=seal(header, opened.embeddings, key),
                last_used_at=now,
            )
        self.store.update_lockout(subject_id, lambda s: self.lockout.after_success(s, now))

    # -- erasure -------------------------------------------------------------

    def revoke(self, subject_id: str) -> DeletionReceipt:
        """Erase the subject's template and destroy its keys (consent withdrawn, erasure request)."""
        subject_id = check_subject_id(subject_id)
        now = self.clock.now()
        erased = self.store.erase(subject_id, state="revoked", at=now)
        destroyed = self.keys.shred(subject_id)
        self.audit.record(
            "revoke",
            subject=subject_id,
            outcome="ok",
            reason=f"template erased: {erased}; keys destroyed: {destroyed}",
        )
        return DeletionReceipt(subject_id, now, erased, destroyed)

    def purge(self) -> int:
        """Erase every template past consent or retention; returns how many.

        Also forgets stale probe digests and destroys keys orphaned by an
        interrupted enrolment or erasure.
        """
        now = self.clock.now()
        count = 0
        for subject_id, template_id in self.store.expired(now=now, retention=self.retention.window):
            if self.store.erase(subject_id, state="expired", at=now, template_id=template_id):
                self.keys.shred(subject_id)
                self.audit.record("purge", subject=subject_id, outcome="ok", reason="expired")
                count += 1
        self.store.prune_probes(before=now - self.enumeration.window)
        self._sweep_orphan_keys(now)
        return count

    def _sweep_orphan_keys(self, now: datetime) -> None:
        for subject_id in self.keys.subjects():
            row = self.store.get(subject_id)
            keep = None
            if row is not None and row.state == "active" and row.blob is not None:
                try:
                    keep = read_header(row.blob).key_id
                except InvalidTemplateError:
                    continue  # never destroy the key of a row we cannot read
            self.keys.shred(subject_id, keep=keep, created_before=now - _ORPHAN_GRACE)

    # -- records ----------------------------------------------------------------

    def consent(self, subject_id: str) -> ConsentRecord:
        """The subject's consent record (for the subject's own access request)."""
        subject_id = check_subject_id(subject_id)
        row = self._active(subject_id, event="consent-read")
        assert row.consent_json is not None
        self.audit.record("consent-read", subject=subject_id, outcome="ok")
        return ConsentRecord.from_json(row.consent_json)

    def consents(self) -> Iterator[ConsentRecord]:
        """Every active subject's consent record: records of processing. No templates."""
        for _, consent_json in self.store.consents():
            yield ConsentRecord.from_json(consent_json)

    def needs_reenroll(self, subject_id: str, model_pack_id: str) -> bool:
        """Whether the subject's template was made with another pack or format (no decryption)."""
        subject_id = check_subject_id(subject_id)
        row = self._active(subject_id, event=None)
        assert row.blob is not None
        return _needs_reenroll(read_header(row.blob), model_pack_id)

    # -- helpers ------------------------------------------------------------------

    def _active(self, subject_id: str, *, event: str | None) -> StoredSubject:
        row = self.store.get(subject_id)
        if row is not None and row.state == "active":
            return row
        error: Exception
        if row is None:
            reason, error = (
                "unknown subject",
                UnknownSubjectError(f"no template is enrolled for {subject_id!r}"),
            )
        elif row.state == "revoked":
            reason, error = (
                "revoked",
                SubjectRevokedError(f"{subject_id!r} withdrew consent; the template was erased"),
            )
        else:
            reason, error = (
                "purged",
                TemplateExpiredError(f"{subject_id!r}'s template expired and was purged; re-enrol"),
            )
        if event is not None:
            self.audit.record(event, subject=subject_id, outcome="refused", reason=reason)
        raise error

    def _open(self, row: StoredSubject, *, event: str) -> tuple[ConsentRecord, OpenedTemplate]:
        assert row.blob is not None and row.consent_json is not None
        try:
            consent = ConsentRecord.from_json(row.consent_json)
            header = read_header(row.blob)
            key = self.keys.get(row.subject_id, header.key_id)
            return consent, open_template(
                row.blob, key, subject_id=row.subject_id, consent_sha256=consent.digest()
            )
        except (InvalidTemplateError, ConsentError):
            self.audit.record(
                event, subject=row.subject_id, outcome="error", reason="template could not be opened"
            )
            raise InvalidTemplateError("template could not be opened") from None
