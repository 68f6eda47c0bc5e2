"""The vault: consent-bound, encrypted, expiring templates, one subject at a time.

``Vault`` ties the vault database, the key store, retention, lockout, anti-enumeration
and the audit log into the ceremonies the ``Verifier`` runs, without knowing anything
about images: it takes embeddings in and hands one subject's embeddings to a comparison
function the caller supplies.

That shape is the privacy argument. ``verify`` opens exactly the template of the claimed
subject and passes it, with the probe, to ``compare``; there is no method that opens two
subjects' templates, so no caller can compare a capture with more than the one claimed
subject.

**The unit of work.** Every ceremony (enroll, verify with its lockout and last-use update,
revoke, purge of one subject, rotation) is one transaction on the vault database holding
that subject's lock: its store change and its audit entry commit together or not at all,
and two ceremonies on one subject never interleave (check-and-count of the lockout is one
step). Refusals are audited in the same unit, which commits, and raised after it.

**Key and template steps.** The key store is a separate database by design, so no
transaction spans both. Every change of a subject's keys is made while holding the
subject's lock in the vault, in this order, so that a crash anywhere leaves a state that
is refused or harmless and that ``purge`` repairs, never an active template without a key:

- enrol: [lock] new key, committed → template sealed with it + audit entry, committed;
  [lock] destroy the subject's other keys. A crash before the template commits leaves an
  unused key (the old template, if any, still opens); a crash after it leaves the old key
  too. ``purge`` destroys both kinds of orphan.
- revoke / purge: [lock] tombstone + audit entry, committed; [lock] destroy the keys. A
  crash in between leaves a revoked subject with a key nothing references: ``purge``
  destroys it.
- rotate the master key: the key store re-wraps everything in one transaction and records
  the rotation; then the vault records it (audit + expected fingerprint). A crash in
  between is completed, and audited, when the vault is next opened with the new key.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol, TypeVar

import numpy.typing as npt

from .._clock import Clock, SystemClock
from .._errors import (
    ConfigurationError,
    ConsentError,
    EnumerationRefusedError,
    FaceVerifyError,
    InvalidTemplateError,
    KeyStoreError,
    LivenessRequiredError,
    LockedOutError,
    SubjectRevokedError,
    TemplateExpiredError,
    UnknownSubjectError,
)
from ._audit import AuditLog
from ._consent import ConsentRecord, check_subject_id
from ._engine import Engine, ensure_schema, is_postgres, open_engine, sqlite_path
from ._keys import KeyStore, MasterKey
from ._lockout import EnumerationPolicy, LockoutPolicy, Sketcher, linked
from ._recollection import check_recollection, open_recollection, seal_recollection
from ._retention import RetentionPolicy
from ._sessions import SessionStore
from ._store import VAULT_SCHEMA, Records, StoredSubject
from ._template import (
    FORMAT_VERSION,
    OpenedTemplate,
    TemplateHeader,
    check_embeddings,
    open_header,
    open_template,
    read_header,
    seal,
    touched,
)
from ._template import needs_reenroll as _needs_reenroll

#: Consent purposes whose subjects are verified only through a live session (a still image
#: cannot show that the person was present), whatever profile the caller chose.
LIVE_PURPOSES = frozenset({"app-login", "door-access"})
KEYS_DIR_ENV = "FACEVERIFY_KEYS_DIR"
_ANONYMOUS = ""


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


def default_keys_location(vault_id: str) -> Path:
    """Where a SQLite vault's key store lives unless told: *not* in the vault folder.

    ``$FACEVERIFY_KEYS_DIR/<vault id>.db``, else ``$XDG_STATE_HOME/faceverify/keys/`` (by
    default ``~/.local/state/faceverify/keys/``): XDG's state directory is the place for
    data that persists but is not to be backed up with the user's data, which is exactly
    what a key store must be for crypto-shredding to survive a backup of the vault.
    The file is named by the vault's id, so a copy of the vault folder finds the *live*
    key store, in which revoked subjects' keys are gone.
    """
    base = os.environ.get(KEYS_DIR_ENV)
    if base:
        return Path(base) / f"{vault_id}.db"
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "faceverify" / "keys" / f"{vault_id}.db"


class _StoreView:
    """``vault.store``: read one subject's row (for display, tests, the Verifier)."""

    def __init__(self, vault: Vault) -> None:
        self._vault = vault
        self.url = vault.engine.url
        self.path = getattr(vault.engine, "path", None)

    def get(self, subject_id: str) -> StoredSubject | None:
        with self._vault._unit(read_only=True) as records:
            return records.get(subject_id)


class Vault:
    """Template persistence and the policies around it; embedding-agnostic."""

    def __init__(
        self,
        engine: Engine,
        keys: KeyStore,
        *,
        clock: Clock | None = None,
        retention: RetentionPolicy | None = None,
        lockout: LockoutPolicy | None = None,
        enumeration: EnumerationPolicy | None = None,
        purpose: str | None = None,
        recollections: int = 3,
    ) -> None:
        self.engine = engine
        self.keys = keys
        self.clock: Clock = clock or SystemClock()
        self.retention = retention or RetentionPolicy()
        self.lockout = lockout or LockoutPolicy()
        self.enumeration = enumeration or EnumerationPolicy()
        self.purpose = purpose
        #: How many passing live sessions are remembered per subject (``verify(remember=)``).
        self.recollections = _check_recollections(recollections)
        self._state_key = keys.derive(b"lockout-state-v1")
        self._sketcher = Sketcher(keys.derive(b"probe-sketch-v1"))
        self.audit = AuditLog(engine, keys.derive(b"audit-chain-v1"), keys, clock=self.clock)
        self.sessions = SessionStore(
            engine, keys.derive(b"session-state-v1"), clock=self.clock, audit=self.audit
        )
        self.store = _StoreView(self)

    @classmethod
    def open(
        cls,
        database: str | Path,
        master_key: MasterKey,
        *,
        keys_database: str | Path | None = None,
        clock: Clock | None = None,
        retention: RetentionPolicy | None = None,
        lockout: LockoutPolicy | None = None,
        enumeration: EnumerationPolicy | None = None,
        purpose: str | None = None,
        create: bool = False,
        pool_size: int | None = None,
        recollections: int = 3,
    ) -> Vault:
        """Open the vault ``database`` names, with its key store (see ``docs/privacy.md``).

        ``database``: ``sqlite:///abs/path`` or a plain path (a vault folder holding
        ``vault.db``, or a ``.db`` file), or ``postgresql://...``. ``keys_database``: the
        key store, another database; for a SQLite vault it defaults to
        ``default_keys_location`` (outside the vault folder), a PostgreSQL vault must name
        one. A key store inside the vault folder, or in the vault's own database, is
        refused. Nothing is created unless ``create`` (``keys init``, an enrolment): a
        mistyped path is an error, not a new empty vault. ``recollections``: see ``verify``.
        """
        _check_recollections(recollections)
        engine = open_engine(database, folder_file="vault.db", pool_size=pool_size)
        try:
            folder = engine.folder
            if (
                folder is not None
                and (folder / "templates.db").exists()
                and not (folder / "vault.db").exists()
            ):
                raise ConfigurationError(
                    f"{folder} has the old layout (templates.db, audit.db and keys.db in one folder, which a"
                    " backup of the folder copies together, defeating crypto-shredding); re-enrol into a new"
                    " vault and destroy the old folder"
                )
            ensure_schema(engine, VAULT_SCHEMA, create=create, what="vault")
            with engine.unit() as tx:
                meta = dict(tx.all("SELECT name, value FROM meta"))
                vault_id = meta.get("vault_id")
                if vault_id is None:
                    vault_id = uuid.uuid4().hex
                    tx.execute("INSERT INTO meta VALUES ('vault_id', ?)", (vault_id,))
            keys_engine = _open_keys(engine, keys_database, vault_id, pool_size=pool_size)
            try:
                keys = KeyStore(keys_engine, master_key, vault_id=vault_id, create=create)
            except BaseException:
                keys_engine.close()
                raise
            vault = cls(
                engine,
                keys,
                clock=clock,
                retention=retention,
                lockout=lockout,
                enumeration=enumeration,
                purpose=purpose,
                recollections=recollections,
            )
            vault._reconcile_master(master_key, meta.get("master_fingerprint"))
            return vault
        except BaseException:
            engine.close()
            raise

    def _reconcile_master(self, master: MasterKey, expected: str | None) -> None:
        """Record a new vault's key, or complete (and audit) a rotation a crash interrupted."""
        if expected == master.fingerprint:
            return
        rotation = self.keys.last_rotation()
        if expected is not None and rotation != (expected, master.fingerprint):
            raise KeyStoreError("the vault and its key store disagree about the master key")
        with self.engine.unit() as tx:
            tx.execute(
                "INSERT INTO meta VALUES ('master_fingerprint', ?)"
                " ON CONFLICT (name) DO UPDATE SET value=excluded.value",
                (master.fingerprint,),
            )
            if expected is None:
                self.audit.append(tx, "key-init", subject=None, outcome="ok", reason=master.fingerprint)
            else:
                self.audit.append(
                    tx,
                    "key-rotate",
                    subject=None,
                    outcome="ok",
                    reason="completed on open after an interruption; new key " + master.fingerprint,
                )

    def close(self) -> None:
        self.keys.close()
        self.engine.close()

    @contextlib.contextmanager
    def _unit(self, subject_id: str | None = None, *, read_only: bool = False) -> Iterator[Records]:
        locks = [] if subject_id is None or read_only else ["subject:" + subject_id]
        with self.engine.unit(locks, read_only=read_only) as tx:
            yield Records(tx, state_key=self._state_key)

    def _audit(  # noqa: PLR0917 - private helper
        self,
        records: Records,
        event: str,
        subject: str | None,
        outcome: str,
        reason: str = "",
        actor: str | None = None,
    ) -> None:
        self.audit.append(records.tx, event, subject=subject, outcome=outcome, reason=reason, actor=actor)

    # -- enrolment ---------------------------------------------------------

    def require_consent(self, subject_id: str, consent: ConsentRecord, *, actor: str | None = None) -> None:
        """Refuse (and audit) unless ``consent`` is this subject's, in force now, for this purpose.

        Callers that do expensive work before ``enroll`` (the image pipeline)
        call this first, so that nothing is processed without consent.
        """
        subject_id = check_subject_id(subject_id)
        with self._unit(subject_id) as records:
            refusal = self._consent_refusal(records, subject_id, consent, actor)
        if refusal is not None:
            raise refusal

    def _consent_refusal(
        self, records: Records, subject_id: str, consent: ConsentRecord, actor: str | None
    ) -> ConsentError | None:
        try:
            if consent.subject_id != subject_id:
                raise ConsentError("the consent record names another subject")
            consent.require_valid(self.clock.now(), purpose=self.purpose)
        except ConsentError as exc:
            self._audit(records, "enroll", subject_id, "refused", str(exc), actor)
            return exc
        return None

    def enroll(
        self,
        subject_id: str,
        embeddings: npt.ArrayLike,
        *,
        consent: ConsentRecord,
        model_pack_id: str,
        actor: str | None = None,
        remember: bytes | None = None,
    ) -> TemplateHeader:
        """Seal 1–5 embeddings as ``subject_id``'s template, replacing any previous one.

        Refused (``ConsentError``) unless ``consent`` is this subject's, in force
        now, and for this vault's purpose. ``remember``: the enrolment session's
        recollection (see ``verify``), kept sealed under the new template's key; the
        previous template's recollections are forgotten.
        """
        subject_id = check_subject_id(subject_id)
        rows = check_embeddings(embeddings)
        if remember is not None:
            check_recollection(remember)
        now = self.clock.now()
        with self._unit(subject_id) as records:
            refusal = self._consent_refusal(records, subject_id, consent, actor)
            if refusal is None:
                previous = records.state(subject_id)  # a row edited beyond reading is replaced too
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
                records.put(
                    subject_id,
                    template_id=header.template_id,
                    blob=seal(header, rows, key),
                    consent_json=consent.to_json(),
                    at=now,
                )
                self._remember(records, subject_id, header.template_id, remember, key, now)
                replaced = previous == "active"
                reason = f"template {header.template_id}, {rows.shape[0]} embedding(s)" + (
                    ", replaced" if replaced else ""
                )
                self._audit(records, "enroll", subject_id, "ok", reason, actor)
        if refusal is not None:
            raise refusal
        self._settle_keys(subject_id)  # the previous template's key: its backups die too
        return header

    def _settle_keys(self, subject_id: str) -> int:
        """Under the subject's lock: destroy every key but the active template's; how many."""
        with self._unit(subject_id) as records:
            row = records.get(subject_id)
            keep = None
            if row is not None and row.state == "active" and row.blob is not None:
                try:
                    keep = read_header(row.blob).key_id
                except InvalidTemplateError:
                    return 0  # never destroy the key of a row we cannot read
            return self.keys.shred(subject_id, keep=keep)

    def _remember(  # noqa: PLR0917 - private helper
        self,
        records: Records,
        subject_id: str,
        template_id: str,
        remember: bytes | None,
        key: bytes,
        now: datetime,
    ) -> None:
        """Keep a passing session's recollection, sealed under the template's key (in the unit)."""
        if remember is not None and self.recollections > 0:
            records.remember(
                subject_id,
                template_id=template_id,
                blob=seal_recollection(subject_id, template_id, remember, key),
                at=now,
                keep=self.recollections,
            )

    def _recall_refusal(  # noqa: PLR0917 - private helper
        self,
        records: Records,
        subject_id: str,
        opened: OpenedTemplate,
        key: bytes,
        recall: Callable[[Sequence[bytes]], FaceVerifyError | None],
        now: datetime,
        actor: str | None,
    ) -> FaceVerifyError | None:
        """Hand the subject's recollections to ``recall``; its error counts as a failed attempt."""
        template_id = opened.header.template_id
        try:
            remembered = [
                open_recollection(subject_id, template_id, blob, key)
                for blob in records.recollections(subject_id, template_id)
            ]
        except InvalidTemplateError:
            self._audit(
                records, "verify", subject_id, "error", "a remembered session could not be opened", actor
            )
            return InvalidTemplateError("template could not be opened")
        error = recall(remembered)
        if error is not None:
            self._audit(records, "verify", subject_id, "refused", str(error), actor)
            self._count_failure(records, subject_id, now, actor)
        return error

    # -- verification --------------------------------------------------------

    def verify(
        self,
        subject_id: str,
        probe: npt.ArrayLike,
        compare: Callable[[OpenedTemplate], R],
        *,
        model_pack_id: str,
        note: str = "",
        actor: str | None = None,
        live: bool | None = None,
        recall: Callable[[Sequence[bytes]], FaceVerifyError | None] | None = None,
        remember: bytes | None = None,
    ) -> R:
        """Run ``compare`` on ``subject_id``'s template only, after every refusal check.

        Checks, in order: the subject is enrolled and active; not locked out; the
        caller has not collected too many enumeration refusals; the probe was not tried
        against too many other subjects; the template opens and is bound to its consent;
        consent (purpose, expiry), liveness (``live=False`` for a still image: a subject
        whose consent purpose is in ``LIVE_PURPOSES`` is refused) and retention allow
        use; the template was made with ``model_pack_id``. Then the outcome updates
        lockout and last use, and is audited (``note`` goes into the entry's reason) —
        all in one transaction holding the subject's lock.

        Recollections (the liveness layer's opaque fingerprints of passing live sessions,
        which the vault never interprets): with ``recall``, before ``compare``, the
        subject's recollections of the active template are opened (newest first) and
        handed to it; one that does not open refuses the attempt (``InvalidTemplateError``,
        audited), and an error ``recall`` returns is audited as the refusal's reason,
        counted toward lockout like a no-match and raised, without a comparison. On a
        match, ``remember`` is kept, sealed under the template's key, and the subject's
        newest ``recollections`` are all that is kept (none when the vault remembers 0).
        """
        subject_id = check_subject_id(subject_id)
        if remember is not None:
            check_recollection(remember)
        now = self.clock.now()
        sketch = self._sketcher.sketch(probe)
        caller = actor if actor is not None else _ANONYMOUS
        attempt = None
        if is_postgres(self.engine.url):
            # Committed before the check, so a concurrent attempt on another subject sees it
            # (with SQLite every unit is serialised, so it is added inside the unit instead).
            attempt = uuid.uuid4().hex
            with self._unit() as records:
                records.add_probe(subject_id, caller, sketch, at=now, attempt=attempt)
        refusal: FaceVerifyError | None = None
        with self._unit(subject_id) as records:
            refusal, opened = self._refusal(records, subject_id, now, "verify", actor, model_pack_id, live)
            if refusal is None:
                refusal = self._enumeration_refusal(records, subject_id, caller, sketch, now, actor, attempt)
            if refusal is None and recall is not None:
                assert opened is not None
                refusal = self._recall_refusal(records, subject_id, opened[0], opened[2], recall, now, actor)
            if refusal is None:
                assert opened is not None
                opened_template, consent, key = opened
                result = compare(opened_template)
                if result.match:
                    header = touched(
                        opened_template, last_used_at=now, expires_at=self.retention.expires_at(consent, now)
                    )
                    records.replace_blob(
                        subject_id,
                        template_id=header.template_id,
                        blob=seal(header, opened_template.embeddings, key),
                    )
                    records.set_lockout(
                        subject_id, self.lockout.after_success(records.lockout(subject_id), now)
                    )
                    self._remember(records, subject_id, header.template_id, remember, key, now)
                    self._audit(records, "verify", subject_id, "match", note, actor)
                else:
                    self._audit(records, "verify", subject_id, "no-match", note, actor)
                    self._count_failure(records, subject_id, now, actor)
        if refusal is not None:
            raise refusal
        return result

    def require_verifiable(
        self,
        subject_id: str,
        *,
        actor: str | None = None,
        live: bool = True,
        model_pack_id: str | None = None,
    ) -> None:
        """Raise the typed refusal ``verify`` would before any comparison, counting nothing.

        Unknown, revoked, expired (consent, retention or model pack), locked out, consent
        for another purpose, or (``live=False``) a subject that must be verified live. Used
        to refuse a live session at its start, and a still image before it is processed.
        """
        subject_id = check_subject_id(subject_id)
        with self._unit(subject_id) as records:
            refusal, _ = self._refusal(
                records, subject_id, self.clock.now(), "verify", actor, model_pack_id, live
            )
        if refusal is not None:
            raise refusal

    def replicate(
        self,
        subject_id: str,
        *,
        known_template_id: str | None = None,
        model_pack_id: str | None = None,
        actor: str | None = None,
    ) -> tuple[OpenedTemplate, ConsentRecord] | None:
        """One subject's opened template and consent, for a door's offline replica
        (``faceverify._door.Replica``), refused exactly as a live ``verify`` would be.

        Each refusal is raised and audited (event ``replicate``); nothing is counted
        toward lockout. ``None`` when the active template is still ``known_template_id``
        (the replica already holds it: nothing opened, nothing audited); otherwise the copy,
        audited. Only the one subject named: there is no way to copy a vault.
        """
        subject_id = check_subject_id(subject_id)
        with self._unit(subject_id) as records:
            refusal, opened = self._refusal(
                records, subject_id, self.clock.now(), "replicate", actor, model_pack_id, True
            )
            if refusal is None and opened is not None and opened[0].header.template_id != known_template_id:
                self._audit(records, "replicate", subject_id, "ok", "copied to a door's replica", actor)
            else:
                opened = None
        if refusal is not None:
            raise refusal
        return None if opened is None else (opened[0], opened[1])

    def _refusal(  # noqa: PLR0917 - private helper
        self,
        records: Records,
        subject_id: str,
        now: datetime,
        event: str,
        actor: str | None,
        model_pack_id: str | None,
        live: bool | None,
    ) -> tuple[FaceVerifyError | None, tuple[OpenedTemplate, ConsentRecord, bytes] | None]:
        """The first refusal (audited), or the opened template, its consent and key."""
        row = records.get(subject_id)
        refusal: FaceVerifyError | None = self._inactive(records, row, subject_id, event, actor)
        if refusal is not None or row is None:
            return refusal, None
        retry = self.lockout.retry_after(records.lockout(subject_id), now)
        if retry is not None:
            self._audit(records, event, subject_id, "refused", "locked out", actor)
            return LockedOutError(
                f"too many failed attempts; retry in {retry.total_seconds():.0f} s", retry_after=retry
            ), None
        try:
            assert row.blob is not None and row.consent_json is not None
            consent = ConsentRecord.from_json(row.consent_json)
            key = self.keys.get(subject_id, read_header(row.blob).key_id)
            opened = open_template(row.blob, key, subject_id=subject_id, consent_sha256=consent.digest())
            assert key is not None
        except (InvalidTemplateError, ConsentError):
            self._audit(records, event, subject_id, "error", "template could not be opened", actor)
            return InvalidTemplateError("template could not be opened"), None
        reason: str | None = None
        error: FaceVerifyError | None = None
        try:
            consent.require_valid(now, purpose=self.purpose)
        except ConsentError as exc:
            reason = str(exc)
            error = (
                TemplateExpiredError("the subject's consent has expired; re-enrol with new consent")
                if now >= consent.expires_at
                else exc
            )
        if error is None and live is False and consent.purpose in LIVE_PURPOSES:
            reason = f"consent for {consent.purpose!r} needs a live capture"
            error = LivenessRequiredError(
                f"{subject_id!r} consented to {consent.purpose!r}, which is verified only with a live capture"
                " session; a still image cannot show that the person was present (use"
                " start_session()/finish() or verify_live(); on the command line"
                " `faceverify verify SUBJECT --camera INDEX`)"
            )
        if error is None and self.retention.is_expired(consent, opened.header.last_used_at, now):
            reason, error = (
                "past retention",
                TemplateExpiredError("the template is past its retention period; re-enrol"),
            )
        if error is None and model_pack_id is not None and _needs_reenroll(opened.header, model_pack_id):
            reason = "made with another model pack"
            error = TemplateExpiredError(
                f"the template was made with model pack {opened.header.model_pack_id!r},"
                f" not {model_pack_id!r}; re-enrol"
            )
        if error is not None:
            self._audit(records, event, subject_id, "refused", reason or "", actor)
            return error, None
        return None, (opened, consent, key)

    def _enumeration_refusal(  # noqa: PLR0917 - private helper
        self,
        records: Records,
        subject_id: str,
        caller: str,
        sketch: bytes,
        now: datetime,
        actor: str | None,
        attempt: str | None,
    ) -> EnumerationRefusedError | None:
        policy = self.enumeration
        since = now - policy.window
        if records.refusals(caller, since=since) >= policy.max_refusals:
            records.add_refusal(caller, at=now)
            self._audit(records, "enumeration-refused", subject_id, "refused", "caller throttled", actor)
            return EnumerationRefusedError(
                "too many captures of this caller were refused as a search in disguise; retry later"
            )
        # Probes linked to this one, and everything linked to them (single linkage): variants of
        # one photo chain together even where two of them are further apart than the threshold.
        probes = records.recent_probes(since=since, exclude=attempt)
        hits = linked(sketch, [p.sketch for p in probes], policy.max_differing_bits)
        clusters = {p.cluster for p, hit in zip(probes, hits, strict=True) if hit}
        others = len({p.subject_id for p in probes if p.cluster in clusters and p.subject_id != subject_id})
        if attempt is None:
            attempt = records.add_probe(
                subject_id, caller, sketch, at=now, cluster=min(clusters, default=None)
            )
        if clusters:
            records.merge_clusters(clusters | {attempt}, into=min(clusters))
        if others + 1 >= policy.max_subjects:
            records.add_refusal(caller, at=now)
            self._audit(
                records,
                "enumeration-refused",
                subject_id,
                "refused",
                f"capture tried against {others} other subject(s)",
                actor,
            )
            return EnumerationRefusedError("this capture was already tried against other subjects; refused")
        return None

    def record_failed_attempt(self, subject_id: str, *, reason: str, actor: str | None = None) -> None:
        """Audit a verification attempt refused before any comparison (a failed liveness
        session) and count it toward the subject's lockout, as a no-match is.

        Without this, a replayed recording could retry a random challenge draw
        without bound. Unknown, revoked or purged subjects have no lockout: the
        attempt is only audited.
        """
        subject_id = check_subject_id(subject_id)
        now = self.clock.now()
        with self._unit(subject_id) as records:
            self._audit(records, "verify", subject_id, "refused", reason, actor)
            row = records.get(subject_id)
            if row is not None and row.state == "active":
                self._count_failure(records, subject_id, now, actor)

    def _count_failure(self, records: Records, subject_id: str, now: datetime, actor: str | None) -> None:
        state = self.lockout.after_failure(records.lockout(subject_id), now)
        records.set_lockout(subject_id, state)
        if state.failures == 0 and state.locked_until is not None:
            self._audit(records, "lockout", subject_id, "locked", f"level {state.level}", actor)

    # -- erasure -------------------------------------------------------------

    def revoke(self, subject_id: str, *, actor: str | None = None) -> DeletionReceipt:
        """Erase the subject's template and destroy its keys (consent withdrawn, erasure request).

        ``UnknownSubjectError`` for a subject never enrolled (a typo must not pass as an
        erasure); revoking a revoked or purged subject again is a no-op receipt.
        """
        subject_id = check_subject_id(subject_id)
        now = self.clock.now()
        with self._unit(subject_id) as records:
            row = records.get(subject_id)
            if row is None:
                self._audit(records, "revoke", subject_id, "refused", "unknown subject", actor)
                erased = False
            else:
                erased = records.erase(subject_id, state="revoked", at=now)
                self._audit(
                    records, "revoke", subject_id, "ok", "template erased" if erased else "not held", actor
                )
        destroyed = self._settle_keys(subject_id)  # after the tombstone commits: see the module docstring
        self.engine.scrub()
        if row is None:
            raise UnknownSubjectError(f"no template was ever enrolled for {subject_id!r}; nothing to revoke")
        return DeletionReceipt(subject_id, now, erased, destroyed)

    def purge(self, *, actor: str | None = None) -> int:
        """Erase every template past consent or retention; returns how many.

        Expiry is read from each template's *sealed* header and bound consent (the
        template is opened to authenticate them), never from columns an administrator
        could edit. A template that cannot be used any more (its key gone, its blob or
        consent record altered) is erased too, with the reason in the audit log. Also
        forgets stale probe sketches and refusals, and destroys keys nothing references.
        """
        now = self.clock.now()
        count = 0
        with self._unit() as records:
            subjects = records.active_subjects()
        for subject_id in subjects:
            with self._unit(subject_id) as records:
                erased = self._purge_one(records, subject_id, now, actor)
            if erased:
                count += 1
                self._settle_keys(subject_id)
        with self._unit() as records:
            records.prune(before=now - self.enumeration.window)
        for subject_id in self.keys.subjects():
            self._settle_keys(subject_id)
        self.engine.scrub()
        return count

    def _purge_one(self, records: Records, subject_id: str, now: datetime, actor: str | None) -> bool:
        """Erase the subject's template if its *sealed* expiry has passed, or if it cannot be used."""
        row = records.get(subject_id)
        if row is None or row.state != "active" or row.blob is None or row.consent_json is None:
            return False
        try:
            header = open_header(row.blob, self.keys.get(subject_id, read_header(row.blob).key_id))
        except InvalidTemplateError:
            reason = "template could not be opened (its key is gone, or it was altered)"
        else:
            try:
                consent = ConsentRecord.from_json(row.consent_json)
                if consent.digest() != header.consent_sha256:
                    raise ConsentError("binding")
            except ConsentError:
                reason = "its consent record was altered"
            else:
                if not self.retention.is_expired(consent, header.last_used_at, now):
                    return False
                reason = "expired"
        records.erase(subject_id, state="expired", at=now)
        self._audit(records, "purge", subject_id, "ok", reason, actor)
        return True

    def rotate_master_key(self, new_master: MasterKey, *, actor: str | None = None) -> int:
        """Re-wrap every key under ``new_master`` (templates untouched); how many subject keys."""
        count = self.keys.rotate(new_master, at=self.clock.now())
        with self.engine.unit() as tx:
            tx.execute("UPDATE meta SET value=? WHERE name='master_fingerprint'", (new_master.fingerprint,))
            self.audit.append(
                tx,
                "key-rotate",
                subject=None,
                outcome="ok",
                reason=f"{count} key(s) re-wrapped; new key {new_master.fingerprint}",
                actor=actor,
            )
        return count

    # -- records ----------------------------------------------------------------

    def consent(self, subject_id: str, *, actor: str | None = None) -> ConsentRecord:
        """The subject's consent record (for the subject's own access request)."""
        subject_id = check_subject_id(subject_id)
        with self._unit(subject_id) as records:
            row = records.get(subject_id)
            refusal = self._inactive(records, row, subject_id, "consent-read", actor)
            if refusal is None:
                assert row is not None and row.consent_json is not None
                self._audit(records, "consent-read", subject_id, "ok", "", actor)
        if refusal is not None:
            raise refusal
        return ConsentRecord.from_json(row.consent_json)  # type: ignore[union-attr, arg-type]

    def consents(self) -> Iterator[ConsentRecord]:
        """Every active subject's consent record: records of processing. No templates."""
        with self._unit(read_only=True) as records:
            rows = list(records.consents())
        for _, consent_json in rows:
            yield ConsentRecord.from_json(consent_json)

    def needs_reenroll(self, subject_id: str, model_pack_id: str) -> bool:
        """Whether the subject's template was made with another pack or format (no decryption)."""
        subject_id = check_subject_id(subject_id)
        with self._unit(subject_id, read_only=True) as records:
            row = records.get(subject_id)
            refusal = self._inactive(records, row, subject_id, None, None)
        if refusal is not None:
            raise refusal
        assert row is not None and row.blob is not None
        return _needs_reenroll(read_header(row.blob), model_pack_id)

    # -- helpers ------------------------------------------------------------------

    def _inactive(
        self,
        records: Records,
        row: StoredSubject | None,
        subject_id: str,
        event: str | None,
        actor: str | None,
    ) -> FaceVerifyError | None:
        if row is not None and row.state == "active":
            return None
        error: FaceVerifyError
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
            self._audit(records, event, subject_id, "refused", reason, actor)
        return error


def _check_recollections(count: object) -> int:
    if type(count) is not int or count < 0:
        raise ConfigurationError(
            f"recollections is how many passing sessions to remember per subject (0 for none), not {count!r}"
        )
    return count


def _open_keys(
    vault: Engine, keys_database: str | Path | None, vault_id: str, *, pool_size: int | None
) -> Engine:
    """The key store's engine: never the vault's own database, never inside its folder."""
    if keys_database is None:
        if vault.folder is None:
            raise ConfigurationError(
                "a PostgreSQL vault needs keys_database (--keys-database): another database, on another"
                " server or under another role, so that a dump of the vault does not carry its keys"
            )
        keys_database = default_keys_location(vault_id)
    if is_postgres(keys_database):
        if is_postgres(vault.url) and _same_database(str(keys_database), vault.url):
            raise KeyStoreError("the key store must be another database than the vault's")
    else:
        path = sqlite_path(keys_database)
        is_file = (
            path.suffix in {".db", ".sqlite", ".sqlite3"}
            or str(keys_database).startswith("sqlite:")
            or (path.exists() and not path.is_dir())
        )
        target = path if is_file else path / "keys.db"
        if vault.folder is not None and target.resolve().is_relative_to(vault.folder.resolve()):
            raise KeyStoreError(
                f"key store {target} is inside the vault folder {vault.folder}: a backup of the folder would"
                " carry the keys and defeat crypto-shredding; keep it elsewhere (the default is"
                f" {default_keys_location(vault_id)})"
            )
    return open_engine(keys_database, folder_file="keys.db", pool_size=pool_size)


def _same_database(a: str, b: str) -> bool:
    from psycopg.conninfo import conninfo_to_dict

    def norm(url: str) -> tuple[object, ...]:
        d = conninfo_to_dict(url.replace("postgres://", "postgresql://", 1))
        return (d.get("host"), d.get("port") or "5432", d.get("dbname"), d.get("options"))

    return norm(a) == norm(b)


__all__ = ["LIVE_PURPOSES", "DeletionReceipt", "Matchable", "Vault", "default_keys_location"]
