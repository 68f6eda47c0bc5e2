"""The door's replica: deciding with no network, and honouring revocation within a stated time.

Doors read the shared vault (PostgreSQL) first: when it answers, every claim
is decided there, with the shared lockout, retention and audit, and a revoked
subject is refused at once. The replica is the fallback for when it does not
answer (a network cut, the server restarting):

- it holds **only the subjects this door's badge map names**, each copied by
  subject id (``Vault.replicate``: one subject at a time, refused as a live
  verification would be, audited) into a local vault on the door, re-sealed
  there under the local key store's own data keys;
- a background sync every ``interval`` (default 30 s) re-reads each of those
  subjects: a new template is copied, one that is revoked, purged, expired or
  unknown centrally is **revoked in the replica** (its local key destroyed), a
  locked-out one is refused offline until the next sync says otherwise, and
  failed attempts made offline are reported to the shared lockout;
- claims go to the replica as soon as the shared vault fails to answer, and
  keep going there until a sync succeeds (no claim waits for a vault known to
  be down);
- the replica is **stale** once its last complete sync is older than
  ``max_staleness`` (default 5 min): a stale replica decides nothing (claims
  fail ``store_unavailable``), and the door says so (``replica_stale`` /
  ``replica_fresh`` status events, ``replica_age_s`` in every event).

**The revocation bound.** A subject revoked in the shared vault is refused at
a connected door at once, and at every door — connected or not — within
``max_staleness`` (+ one sync), because a door that could not sync since stops
deciding from its copy.

**What a cached data key means for crypto-shredding.** The replica holds, for
each of its subjects, a copy of the template encrypted under a data key of the
door's own key store. Shredding the subject's key in the shared vault makes
every copy of the *shared* vault's template unreadable at once, but not the
door's copy: that lives until the door's next successful sync revokes it
there, i.e. at most ``max_staleness`` later, and a door that never syncs again
never decides with it (it is stale). So that no backup of a door ever holds
those keys, put the replica's key store on memory-backed storage
(``/run/faceverify/``, systemd ``RuntimeDirectory=``): a door's disk and its
backups then hold templates without keys, and a door restarted while
offline has an empty replica (it refuses until the vault answers again). With
the key store on persistent storage, a stolen door holds its subjects' keys
until revocation reaches it — which it never will; don't.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from .._clock import Clock
from .._errors import (
    FaceVerifyError,
    LockedOutError,
    StoreUnavailableError,
    SubjectRevokedError,
    TemplateExpiredError,
    UnknownSubjectError,
)
from .._verifier import Verifier

__all__ = ["Replica", "SyncReport"]


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What one sync did: copies made, subjects dropped (revoked locally), refused, and
    offline failures reported to the shared lockout."""

    at: datetime
    copied: tuple[str, ...]
    dropped: tuple[str, ...]
    refused: tuple[str, ...]
    reported: int


class Replica:
    """The subjects of one door's badge map, copied from the shared vault into a local one.

    ``shared`` and ``local`` are two Verifiers on the same pipeline and pack:
    the first on the shared vault, the second on the door's local vault
    (SQLite; its key store on memory-backed storage, see the module doc).
    """

    def __init__(
        self,
        shared: Verifier,
        local: Verifier,
        subjects: Iterable[str],
        *,
        door: str,
        max_staleness: timedelta = timedelta(minutes=5),
        interval: timedelta = timedelta(seconds=30),
        clock: Clock | None = None,
    ) -> None:
        self.shared = shared
        self.local = local
        self.subjects = tuple(sorted(set(subjects)))
        self.actor = f"door:{door}"
        self.max_staleness = max_staleness
        self.interval = interval
        self.clock: Clock = clock or shared.vault.clock
        self.synced_at: datetime | None = None
        #: The shared vault did not answer last time: claims go to the replica until a sync succeeds.
        self.unreachable = False
        self._known: dict[str, str] = {}  # subject -> the shared template id the copy was made from
        self._refused: dict[str, FaceVerifyError] = {}  # the shared vault's refusal at the last sync
        self._failures: dict[str, int] = {}  # offline failed attempts not yet reported
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- sync ----------------------------------------------------------------------

    def sync(self) -> SyncReport:
        """Bring every subject up to date; :class:`StoreUnavailableError` leaves the replica as it was
        (its age keeps growing) and the rest of the subjects for the next sync."""
        try:
            report = self._sync()
        except StoreUnavailableError:
            self.unreachable = True
            raise
        self.unreachable = False
        return report

    def _sync(self) -> SyncReport:
        space = self.shared.pack.embedding_space
        copied: list[str] = []
        dropped: list[str] = []
        refused: list[str] = []
        reported = self._report_failures()
        for subject in self.subjects:
            row = self.shared.vault.store.get(subject)
            refusal: FaceVerifyError | None = None
            if row is None:
                refusal = UnknownSubjectError(f"no template is enrolled for {subject!r}")
            elif row.state == "revoked":
                refusal = SubjectRevokedError(f"{subject!r} withdrew consent; the template was erased")
            elif row.state != "active":
                refusal = TemplateExpiredError(f"{subject!r}'s template expired and was purged; re-enrol")
            copy = None
            if refusal is None:
                try:
                    copy = self.shared.vault.replicate(
                        subject,
                        known_template_id=self._known.get(subject),
                        model_pack_id=space,
                        actor=self.actor,
                    )
                except StoreUnavailableError:
                    raise
                except FaceVerifyError as exc:
                    refusal = exc
            with self._lock:
                if refusal is not None:
                    refused.append(subject)
                    self._refused[subject] = refusal
                    if not isinstance(refusal, LockedOutError) and self._drop(subject):
                        dropped.append(subject)
                    continue
                self._refused.pop(subject, None)
                if copy is not None:
                    opened, consent = copy
                    self.local.vault.enroll(
                        subject,
                        opened.embeddings,
                        consent=consent,
                        model_pack_id=opened.header.model_pack_id,
                        actor=self.actor,
                    )
                    self._known[subject] = opened.header.template_id
                    copied.append(subject)
        self.synced_at = self.clock.now()
        return SyncReport(self.synced_at, tuple(copied), tuple(dropped), tuple(refused), reported)

    def _drop(self, subject: str) -> bool:
        """Revoke the local copy (its local key destroyed); whether there was one."""
        if self._known.pop(subject, None) is None:
            return False
        with contextlib.suppress(UnknownSubjectError):
            self.local.vault.revoke(subject, actor=self.actor)
        return True

    def _report_failures(self) -> int:
        """Report the offline failures to the shared lockout; what could not be sent is kept."""
        with self._lock:
            pending, self._failures = self._failures, {}
        reported = 0
        try:
            for subject in pending:
                while pending[subject]:
                    self.shared.vault.record_failed_attempt(
                        subject, reason="failed attempt while the door was offline", actor=self.actor
                    )
                    pending[subject] -= 1
                    reported += 1
        finally:
            with self._lock:
                for subject, n in pending.items():
                    if n:
                        self._failures[subject] = self._failures.get(subject, 0) + n
        return reported

    # -- deciding offline ----------------------------------------------------------

    def age(self) -> timedelta | None:
        """Time since the last complete sync (None: never synced)."""
        return None if self.synced_at is None else self.clock.now() - self.synced_at

    def age_seconds(self) -> float | None:
        age = self.age()
        return None if age is None else age.total_seconds()

    @property
    def stale(self) -> bool:
        age = self.age()
        return age is None or age > self.max_staleness

    def verifier_for(self, subject: str) -> Verifier:
        """The local Verifier for ``subject`` while the shared vault is unreachable, or the refusal:
        :class:`StoreUnavailableError` when the replica is stale or does not hold the subject, the
        shared vault's own refusal at the last sync otherwise (revoked, locked out...)."""
        age = self.age()
        if age is None or age > self.max_staleness:
            since = "never synced" if age is None else f"last synced {age.total_seconds():.0f} s ago"
            raise StoreUnavailableError(
                f"the vault cannot be reached and the door's replica is stale ({since}; "
                f"limit {self.max_staleness.total_seconds():.0f} s)"
            )
        with self._lock:
            refusal = self._refused.get(subject)
            known = subject in self._known
        if refusal is not None:
            raise refusal
        if not known:
            raise StoreUnavailableError(
                "the vault cannot be reached and the door's replica does not hold the subject"
            )
        return self.local

    def note_failure(self, subject: str) -> None:
        """A failed attempt decided offline: reported to the shared lockout at the next sync."""
        with self._lock:
            self._failures[subject] = self._failures.get(subject, 0) + 1

    # -- background ------------------------------------------------------------------

    def start(self, on_status: Callable[[str, str], None] | None = None) -> None:
        """Sync now, then every ``interval`` on a thread; ``on_status(state, detail)`` hears
        ``replica_stale`` when the replica turns stale and ``replica_fresh`` when a sync
        succeeds after that."""
        told = [False]

        def tick() -> None:
            try:
                self.sync()
                if told[0] and on_status is not None:
                    on_status("replica_fresh", f"synced {len(self.subjects)} subject(s)")
                told[0] = False
            except FaceVerifyError as exc:
                if self.stale and not told[0] and on_status is not None:
                    on_status("replica_stale", f"cannot sync: {exc}")
                    told[0] = True

        def run() -> None:
            while not self._stop.wait(self.interval.total_seconds()):
                tick()

        tick()
        self._thread = threading.Thread(target=run, name="door-replica", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
