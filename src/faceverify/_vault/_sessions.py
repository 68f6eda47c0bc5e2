"""Live-session state held in the vault's database, so any worker can take a session's next frame.

py_webauthn keeps a ceremony's challenge on the server, not in the client; a live
challenge session is the same kind of state, with more in it (the challenges drawn, the
baseline pose, counters, deadlines). It lives here, sealed: AES-256-GCM under a key
derived from the vault secret, associated data = session id + subject id, so a state moved
to another session or subject, or edited, does not open. ``hold`` is one transaction with
the session's row locked: the frames of one session serialise, whichever workers get them.

Absent, expired and tampered sessions are one error, ``UnknownSessionError``: which of the
three would tell a client probing ids what to change. ``sweep`` deletes expired sessions
and returns their subjects, which the caller counts as failed attempts (an abandoned
session must not be a free retry).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .._clock import Clock
from .._errors import UnknownSessionError
from ._audit import AuditLog
from ._consent import check_subject_id
from ._engine import Engine, Tx

MAX_STATE_BYTES = 1 << 20
_NONCE = 12
_UNKNOWN = "no such live session (unknown, expired or invalid)"


def _aad(session_id: str, subject_id: str) -> bytes:
    return b"faceverify-session-v1\x00" + session_id.encode() + b"\x00" + subject_id.encode()


def _check_session_id(session_id: str) -> str:
    if not isinstance(session_id, str) or not 16 <= len(session_id) <= 128 or not session_id.isprintable():
        raise UnknownSessionError(_UNKNOWN)
    return session_id


class SessionSlot:
    """A held session: its subject, its state (plaintext), its expiry; ``save`` or ``delete``."""

    def __init__(  # noqa: PLR0917 - private, called from one place
        self,
        store: SessionStore,
        tx: Tx,
        session_id: str,
        subject_id: str,
        state: bytes,
        expires_at: datetime,
    ) -> None:
        self._store, self._tx = store, tx
        self.session_id = session_id
        self.subject_id = subject_id
        self.state = state
        self.expires_at = expires_at
        self.deleted = False

    def save(self, new_state: bytes) -> None:
        """Replace the session's state (committed when the ``hold`` block ends)."""
        sealed = self._store._seal(self.session_id, self.subject_id, new_state)
        self._tx.execute("UPDATE sessions SET state=? WHERE session_id=?", (sealed, self.session_id))
        self.state = new_state

    def delete(self) -> None:
        """End the session (a decided or abandoned session is never fed again)."""
        self._tx.execute("DELETE FROM sessions WHERE session_id=?", (self.session_id,))
        self.deleted = True


class SessionStore:
    """``vault.sessions``: create, hold (locked), sweep; state sealed at rest."""

    def __init__(self, engine: Engine, key: bytes, *, clock: Clock, audit: AuditLog) -> None:
        self._engine = engine
        self._aead = AESGCM(key)
        self._clock = clock
        self._audit = audit

    def _seal(self, session_id: str, subject_id: str, state: bytes) -> bytes:
        if not isinstance(state, bytes) or len(state) > MAX_STATE_BYTES:
            raise ValueError(f"a session state is at most {MAX_STATE_BYTES} bytes")
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, state, _aad(session_id, subject_id))

    def create(
        self,
        session_id: str,
        subject_id: str,
        state: bytes,
        *,
        expires_at: datetime,
        actor: str | None = None,
    ) -> None:
        """Store a new session (a random id of 16-128 characters, chosen by the caller)."""
        _check_session_id(session_id)
        subject_id = check_subject_id(subject_id)
        now = self._clock.now()
        if expires_at <= now:
            raise ValueError("a session must expire in the future")
        with self._engine.unit(["session:" + session_id]) as tx:
            d = tx.dialect
            tx.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?)",
                (
                    session_id,
                    subject_id,
                    self._seal(session_id, subject_id, state),
                    d.time_in(expires_at),
                    d.time_in(now),
                    actor,
                ),
            )
            self._audit.append(tx, "session", subject=subject_id, outcome="started", actor=actor)

    @contextlib.contextmanager
    def hold(self, session_id: str) -> Iterator[SessionSlot]:
        """The session, locked for one transaction: ``UnknownSessionError`` if absent, expired or invalid."""
        _check_session_id(session_id)
        with self._engine.unit(["session:" + session_id]) as tx:
            d = tx.dialect
            row = tx.one(
                "SELECT subject_id, state, expires_at FROM sessions WHERE session_id=?" + d.for_update,  # noqa: S608
                (session_id,),
            )
            if row is None:
                raise UnknownSessionError(_UNKNOWN)
            try:
                subject_id, sealed, expires = str(row[0]), d.blob_out(row[1]), d.time_out(row[2])
                state = self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], _aad(session_id, subject_id))
            except (ValueError, TypeError, InvalidTag):
                raise UnknownSessionError(_UNKNOWN) from None
            if self._clock.now() >= expires:
                raise UnknownSessionError(_UNKNOWN)
            yield SessionSlot(self, tx, session_id, subject_id, state, expires)

    def sweep(self) -> list[str]:
        """Delete expired sessions; return their subject ids (count them as failed attempts)."""
        with self._engine.unit() as tx:
            d = tx.dialect
            now = d.time_in(self._clock.now())
            rows = tx.all(
                "SELECT session_id, subject_id FROM sessions WHERE expires_at <= ?" + d.for_update,  # noqa: S608
                (now,),
            )
            tx.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,))
        return [str(r[1]) for r in rows]
