"""An append-only, keyed, hash-chained audit log of every ceremony: who, what, when, outcome, why.

Entries hold a time, an event, a subject id, the actor (``"client:webapp"``,
``"door:front"``, ``"cli"``), an outcome and a reason: never an image, an embedding or a
score. They live in the vault's database, so a ceremony's change and its entry commit in
one transaction, or neither does (a SIGKILL cannot leave one without the other).

**Keyed chain.** Each entry's ``mac`` is HMAC-SHA256, under a key derived from the vault's
secret (kept wrapped by the master key in the *key store*, not in the vault), of its own
fields and the previous entry's ``mac``. Without that key nobody can write an entry that
verifies: editing, inserting, reordering or deleting entries, and re-computing every link,
all break the chain, and ``verify_chain`` names the first bad entry.

**Truncation.** A chain alone cannot show that its newest entries were cut off, so after
every commit the newest ``(seq, mac)`` is also written, authenticated, to the *anchor* in
the key store. ``verify_chain`` then checks that the log reaches at least the anchored entry
and that it is the anchored one: deleting the newest entries, or the whole table, is
reported. A crash between the vault's commit and the anchor's update leaves the anchor one
ceremony behind, never ahead.

What it does not prove: that entries were written for events that faceverify did not see,
or that someone holding the master key (and write access to both databases) did not rewrite
everything; ``docs/privacy.md`` says exactly what an auditor can conclude. Triggers refuse
``UPDATE`` and ``DELETE`` on both engines, which stops accidents, not an administrator.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, cast

from .._clock import Clock, SystemClock
from ._engine import Engine, Tx

if TYPE_CHECKING:
    from ._keys import KeyStore

GENESIS = "0" * 64

EVENTS = frozenset(
    {
        "enroll",
        "verify",
        "revoke",
        "purge",
        "key-init",
        "key-rotate",
        "lockout",
        "enumeration-refused",
        "consent-read",
        "session",
        "replicate",  # a door's replica copied or was refused one subject's template (Vault.replicate)
    }
)


class AuditSink(Protocol):
    """Where ceremonies report what they did."""

    def record(
        self, event: str, *, subject: str | None, outcome: str, reason: str = "", actor: str | None = None
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    at: str
    event: str
    subject: str | None
    actor: str | None
    outcome: str
    reason: str
    prev_mac: str
    mac: str


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The result of checking the chain: ``first_broken`` is the seq of the first bad entry."""

    ok: bool
    entries: int
    first_broken: int | None = None
    problem: str | None = None
    anchored: int = 0
    """The seq the key store's anchor vouches for (entries up to it cannot have been cut)."""


def entry_mac(key: bytes, fields: tuple[int, str, str, str | None, str | None, str, str, str]) -> str:
    """HMAC-SHA256 of ``(seq, at, event, subject, actor, outcome, reason, prev_mac)`` as compact JSON."""
    message = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def append(
    tx: Tx,
    key: bytes,
    *,
    at: str,
    event: str,
    subject: str | None,
    outcome: str,
    reason: str,
    actor: str | None,
) -> tuple[int, str]:
    """Append one entry inside ``tx`` (the chain's head row is locked until it commits)."""
    if event not in EVENTS:
        raise ValueError(f"unknown audit event {event!r}")
    row = tx.one("SELECT seq, mac FROM audit_head WHERE id=1" + tx.dialect.for_update)  # noqa: S608
    seq, prev = (1, GENESIS) if row is None else (int(row[0]) + 1, str(row[1]))
    mac = entry_mac(key, (seq, at, event, subject, actor, outcome, reason, prev))
    tx.execute(
        "INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (seq, at, event, subject, actor, outcome, reason, prev, mac),
    )
    if row is None:
        tx.execute("INSERT INTO audit_head VALUES (1, ?, ?)", (seq, mac))
    else:
        tx.execute("UPDATE audit_head SET seq=?, mac=? WHERE id=1", (seq, mac))
    return seq, mac


class AuditLog:
    """The vault's audit log: record (an ``AuditSink``), read, and verify the chain."""

    def __init__(self, engine: Engine, key: bytes, keys: KeyStore, *, clock: Clock | None = None) -> None:
        self._engine = engine
        self._key = key
        self._keys = keys
        self._clock: Clock = clock or SystemClock()

    def at(self) -> str:
        return self._clock.now().isoformat(timespec="microseconds")

    def append(
        self,
        tx: Tx,
        event: str,
        *,
        subject: str | None,
        outcome: str,
        reason: str = "",
        actor: str | None = None,
    ) -> None:
        """Append inside the caller's unit; the anchor advances once that unit commits."""
        first = tx.audit_head is None
        tx.audit_head = append(
            tx,
            self._key,
            at=self.at(),
            event=event,
            subject=subject,
            outcome=outcome,
            reason=reason,
            actor=actor,
        )
        if first:
            tx.after_commit.append(lambda: self._keys.advance_anchor(*tx.audit_head))  # type: ignore[misc]

    def record(
        self, event: str, *, subject: str | None, outcome: str, reason: str = "", actor: str | None = None
    ) -> None:
        """Record one entry in a unit of its own (for events outside a ceremony)."""
        if event not in EVENTS:
            raise ValueError(f"unknown audit event {event!r}")
        with self._engine.unit() as tx:
            self.append(tx, event, subject=subject, outcome=outcome, reason=reason, actor=actor)

    def entries(self, *, subject: str | None = None) -> list[AuditEntry]:
        """All entries in order, or one subject's (for that subject's access request)."""
        query = "SELECT seq, at, event, subject, actor, outcome, reason, prev_mac, mac FROM audit"
        with self._engine.unit(read_only=True) as tx:
            if subject is None:
                rows = tx.all(query + " ORDER BY seq")
            else:
                rows = tx.all(query + " WHERE subject=? ORDER BY seq", (subject,))
        return [_entry(row) for row in rows]

    def head(self) -> tuple[int, str]:
        """``(seq, mac)`` of the newest entry."""
        with self._engine.unit(read_only=True) as tx:
            row = tx.one("SELECT seq, mac FROM audit_head WHERE id=1")
        return (0, GENESIS) if row is None else (int(row[0]), str(row[1]))

    def verify_chain(self) -> ChainReport:
        """Recompute every link; check the log reaches the anchor kept with the keys."""
        prev, expected_seq, count = GENESIS, 1, 0
        try:
            entries = self.entries()
        except (ValueError, TypeError):
            return ChainReport(False, 0, None, "the audit table is malformed")
        for entry in entries:
            count += 1
            if entry.seq != expected_seq:
                return ChainReport(False, count, entry.seq, f"entry {expected_seq} is missing")
            if entry.prev_mac != prev:
                return ChainReport(False, count, entry.seq, "does not link to the previous entry")
            recomputed = entry_mac(
                self._key,
                (
                    entry.seq,
                    entry.at,
                    entry.event,
                    entry.subject,
                    entry.actor,
                    entry.outcome,
                    entry.reason,
                    entry.prev_mac,
                ),
            )
            if not hmac.compare_digest(recomputed, entry.mac):
                return ChainReport(False, count, entry.seq, "contents do not match its MAC")
            prev, expected_seq = entry.mac, expected_seq + 1
        anchor_seq, anchor_mac = self._keys.anchor()
        if anchor_seq > count:
            return ChainReport(
                False,
                count,
                count + 1,
                f"entries {count + 1}..{anchor_seq} are missing: the anchor kept with the keys"
                f" records {anchor_seq} entries (the log was truncated)",
                anchor_seq,
            )
        if anchor_seq and not hmac.compare_digest(entries[anchor_seq - 1].mac, anchor_mac):
            return ChainReport(
                False, count, anchor_seq, "differs from the entry the anchor records", anchor_seq
            )
        return ChainReport(True, count, anchored=anchor_seq)


def _entry(row: tuple[object, ...]) -> AuditEntry:
    """An entry as stored; a value of the wrong type (an edited column) is a ValueError."""
    seq, at, event, subject, actor, outcome, reason, prev_mac, mac = row
    texts = (at, event, outcome, reason, prev_mac, mac)
    if type(seq) is not int or not all(isinstance(t, str) for t in texts):
        raise ValueError("malformed audit entry")
    if not all(v is None or isinstance(v, str) for v in (subject, actor)):
        raise ValueError("malformed audit entry")
    return AuditEntry(
        seq,
        str(at),
        str(event),
        cast(str | None, subject),
        cast(str | None, actor),
        str(outcome),
        str(reason),
        str(prev_mac),
        str(mac),
    )


class NullAudit:
    """An ``AuditSink`` that records nothing (for tests of other parts only)."""

    def record(
        self, event: str, *, subject: str | None, outcome: str, reason: str = "", actor: str | None = None
    ) -> None:
        return None
