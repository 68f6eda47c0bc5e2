"""API clients: one key per client app, stored hashed, with scopes and subject-id prefixes.

A key reads ``fv_<client id>_<secret>``; the secret is 32 random bytes (256
bits, URL-safe base64). Only ``SHA-256(secret)`` is stored: a key of that
entropy needs no slow hash (a slow hash protects guessable passwords), and
lookup by client id plus a constant-time digest comparison keeps
authentication one indexed read. A wrong, malformed, unknown or revoked key is
one opaque refusal (401), as pyca's ``InvalidToken`` is one error for every
invalid token.

Scopes: ``enroll`` (consent intake, enrolment, the subject's consent record),
``verify`` (still and live verification), ``revoke`` (erasure), ``admin`` (all
of them, and the full reason codes of refusals), ``metrics`` (``/metrics`` only,
for a Prometheus scraper). ``prefixes``, when given,
restrict the client to subject ids starting with one of them (one tenant's
accounts, ``"shop-"``).
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .._errors import ConfigurationError
from ._db import ServiceDatabase

_CLIENT_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
_KEY = re.compile(r"fv_([a-z0-9][a-z0-9-]{0,39})_([A-Za-z0-9_-]{43})")


class Scope(enum.Enum):
    ENROLL = "enroll"
    VERIFY = "verify"
    REVOKE = "revoke"
    ADMIN = "admin"
    METRICS = "metrics"


@dataclass(frozen=True, slots=True)
class ApiClient:
    """A client app allowed to call the service (its key is not kept: only its digest)."""

    client_id: str
    name: str
    scopes: frozenset[Scope]
    prefixes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def actor(self) -> str:
        """How the audit log names this client's ceremonies."""
        return f"client:{self.client_id}"

    def allows(self, scope: Scope) -> bool:
        return Scope.ADMIN in self.scopes or scope in self.scopes

    def covers(self, subject_id: str) -> bool:
        """Whether ``subject_id`` is within this client's prefixes (every id when none are set)."""
        return not self.prefixes or subject_id.startswith(self.prefixes)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_scopes(names: Iterable[str]) -> frozenset[Scope]:
    known = {s.value: s for s in Scope}
    scopes = set()
    for name in names:
        if name not in known:
            raise ConfigurationError(f"unknown scope {name!r}; known: {', '.join(known)}")
        scopes.add(known[name])
    if not scopes:
        raise ConfigurationError("a client needs at least one scope")
    return frozenset(scopes)


class ClientStore:
    """Clients in ``fv_service_clients``: create, list, revoke, authenticate."""

    def __init__(self, db: ServiceDatabase) -> None:
        self._db = db

    def create(
        self,
        client_id: str,
        *,
        scopes: Iterable[str | Scope],
        prefixes: Iterable[str] = (),
        name: str | None = None,
        now: datetime | None = None,
    ) -> tuple[ApiClient, str]:
        """A new client and its key, which is shown once and never stored."""
        if not _CLIENT_ID.fullmatch(client_id):
            raise ConfigurationError("a client id is 1-40 characters of a-z, 0-9 and '-', starting alnum")
        chosen = parse_scopes(s.value if isinstance(s, Scope) else s for s in scopes)
        prefix_list = tuple(prefixes)
        for prefix in prefix_list:
            if not prefix or not prefix.isprintable() or len(prefix) > 64:
                raise ConfigurationError("a subject-id prefix is 1 to 64 printable characters")
        secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
        at = now or datetime.now(UTC)
        client = ApiClient(client_id, name or client_id, chosen, prefix_list, at)
        with self._db.transaction() as tx:
            if tx.execute("SELECT 1 FROM fv_service_clients WHERE client_id=%s", (client_id,)).fetchone():
                raise ConfigurationError(f"a client named {client_id!r} exists (revoked ids are not reused)")
            tx.execute(
                "INSERT INTO fv_service_clients (client_id, name, key_sha256, scopes, prefixes, created_at)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (
                    client_id,
                    client.name,
                    _digest(secret),
                    json.dumps(sorted(s.value for s in chosen)),
                    json.dumps(list(prefix_list)),
                    at.isoformat(),
                ),
            )
        return client, f"fv_{client_id}_{secret}"

    def list(self) -> list[ApiClient]:
        with self._db.transaction() as tx:
            rows = tx.execute(
                "SELECT client_id, name, scopes, prefixes, created_at, revoked_at"
                " FROM fv_service_clients ORDER BY client_id"
            ).fetchall()
        return [_client(row) for row in rows]

    def revoke(self, client_id: str, *, now: datetime | None = None) -> bool:
        """Revoke a client's key at once (every worker sees it on the next request)."""
        at = now or datetime.now(UTC)
        with self._db.transaction() as tx:
            changed = tx.execute(
                "UPDATE fv_service_clients SET revoked_at=%s WHERE client_id=%s AND revoked_at IS NULL",
                (at.isoformat(), client_id),
            ).rowcount
        return changed == 1

    def authenticate(self, key: str | None) -> ApiClient | None:
        """The active client holding ``key``, or None (one answer for every kind of wrong key)."""
        match = _KEY.fullmatch(key or "")
        if match is None:
            return None
        client_id, secret = match.groups()
        with self._db.transaction() as tx:
            row = tx.execute(
                "SELECT client_id, name, scopes, prefixes, created_at, revoked_at, key_sha256"
                " FROM fv_service_clients WHERE client_id=%s",
                (client_id,),
            ).fetchone()
        if row is None or row[5] is not None:
            return None
        if not hmac.compare_digest(str(row[6]), _digest(secret)):
            return None
        return _client(row[:6])


def _client(row: Sequence[Any]) -> ApiClient:
    client_id, name, scopes, prefixes, created_at, revoked_at = row
    return ApiClient(
        client_id=str(client_id),
        name=str(name),
        scopes=parse_scopes(json.loads(str(scopes))),
        prefixes=tuple(json.loads(str(prefixes))),
        created_at=datetime.fromisoformat(str(created_at)),
        revoked_at=None if revoked_at is None else datetime.fromisoformat(str(revoked_at)),
    )
