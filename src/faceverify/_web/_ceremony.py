"""Browser ceremonies: what the page shows for consent, and the tokens that let it act.

**Why tokens.** A page runs in the person's browser; an API key there is an API
key for anyone who opens the developer tools. So the browser never holds one.
The embedding app's *backend*, which does hold its client key, asks the service
for a **ceremony token** (``POST /v1/ceremonies``): one subject, one ceremony
(``enroll`` or ``verify``), one purpose, a lifetime of minutes. The page uses
that token, and only for that ceremony: read the consent document, agree to
it, start a live session, send its frames, finish it. When the ceremony ends the
page receives a **receipt** — the outcome sealed by the service — which it hands
back to the app's backend, and the backend redeems it with its client key
(``POST /v1/ceremonies/receipts``). The browser can relay a receipt but cannot
forge or alter one, so a "match" the app acts on is always the service's.

Tokens and receipts are sealed with AES-256-GCM under a key derived from the
vault's master key (``KeyStore.derive``), so every worker of the service opens
them without shared process state, and their content (subject id, client) is
opaque to the browser. Every failure — malformed, forged, expired, the wrong
kind — is one :class:`~faceverify._errors.InvalidCeremonyTokenError`.

Each step narrows the token: agreeing to the consent document returns a token
that carries the agreement (document digest and time, as the server saw them);
starting a session returns one bound to that session id. A frame or a finish
with a token for another session is refused.

**Consent evidence.** :class:`ConsentDocument` is the exact text shown for one
purpose, with its retention written into it; its SHA-256 is what the browser
echoes back when the person ticks "I agree", and what the template's
:class:`~faceverify._vault.ConsentEvidence` records, with the time of the
agreement (server clock) and the client that collected it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .._clock import Clock, SystemClock
from .._errors import ConfigurationError, InvalidCeremonyTokenError

CeremonyKind = Literal["enroll", "verify"]
Outcome = Literal["enrolled", "match", "no-match"]

#: How long a ceremony token lives: long enough to read a consent text and run a session.
CEREMONY_LIFETIME = timedelta(minutes=10)
#: How long a receipt can be redeemed after the decision.
RECEIPT_LIFETIME = timedelta(minutes=2)
#: The label ``KeyStore.derive`` turns into the token key.
TOKEN_KEY_LABEL = b"faceverify browser ceremony tokens v1"

_TOKEN_PREFIX = "fvc1."  # noqa: S105 (a format marker, not a secret)
_RECEIPT_PREFIX = "fvr1."
_MAX_TOKEN = 4096


@dataclass(frozen=True, slots=True)
class ConsentDocument:
    """The consent text for one purpose, exactly as the enrolment page shows it.

    ``retention`` is how long the template may be kept (the consent's expiry
    is the agreement time plus this); ``controller`` names who asks.
    """

    purpose: str
    controller: str
    retention: timedelta
    body: str

    def __post_init__(self) -> None:
        if self.retention <= timedelta(0):
            raise ConfigurationError("a consent document needs a positive retention period")
        if not self.purpose or not self.controller or not self.body.strip():
            raise ConfigurationError("a consent document needs a purpose, a controller and a text")

    @property
    def retention_days(self) -> int:
        return max(1, round(self.retention / timedelta(days=1)))

    @property
    def text(self) -> str:
        """The whole document: header lines, then the body. This is what is digested."""
        return (
            f"Purpose: {self.purpose}\n"
            f"Asked by: {self.controller}\n"
            f"Kept for: at most {self.retention_days} days, or until you withdraw consent\n\n"
            f"{self.body.strip()}\n"
        )

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


_BODIES = {
    "app-login": (
        "You are asked to let {controller} check that it is really you when you sign in, "
        "by comparing a live picture of your face with a face template made now, from this camera.\n\n"
        "- The template is a list of numbers computed from your face, encrypted, stored for this purpose "
        "only and never compared with anyone else's face: each check compares you with your own "
        "template, nobody is searched for.\n"
        "- No picture is kept: frames are used while you are in front of the camera, then discarded.\n"
        "- You can withdraw at any time; the template is then destroyed and cannot be recovered.\n"
        "- Saying no is fine: ask for the other way to sign in."
    ),
    "door-access": (
        "You are asked to let {controller} open a door for you by comparing a live picture of your "
        "face, taken at the door when you present your badge or PIN, with a face template made now.\n\n"
        "- The template is encrypted, used for door access only, and never compared with anyone "
        "else's face: each check compares you with your own template, nobody is searched for.\n"
        "- No picture is kept.\n"
        "- You can withdraw at any time; the template is then destroyed and cannot be recovered.\n"
        "- Saying no is fine: ask for a badge-only or staffed entrance."
    ),
}


def default_consent_documents(
    controller: str, *, retention: timedelta = timedelta(days=365)
) -> dict[str, ConsentDocument]:
    """Plain-language consent documents for ``app-login`` and ``door-access``.

    A deployment should write its own (its legal basis, a contact, the
    controller's name); these say what faceverify actually does and keeps.
    """
    return {
        purpose: ConsentDocument(purpose, controller, retention, body.format(controller=controller))
        for purpose, body in _BODIES.items()
    }


@dataclass(frozen=True, slots=True)
class Ceremony:
    """What one ceremony token allows: ``kind`` for ``subject_id`` under ``purpose``, until ``expires_at``.

    ``client`` is the API client whose backend minted it (the ceremony's audit
    actor and the only client that may redeem its receipt); ``return_url``
    where the served page sends the person (and the receipt) when it is over. ``consent_sha256``
    and ``consented_at`` are set once the person agreed to the consent document
    (enrolment); ``session_id`` once a live session started.
    """

    ceremony_id: str
    client: str
    subject_id: str
    kind: CeremonyKind
    purpose: str
    expires_at: datetime
    consent_sha256: str | None = None
    consented_at: datetime | None = None
    session_id: str | None = None
    return_url: str | None = None


@dataclass(frozen=True, slots=True)
class Receipt:
    """The service's word on how a ceremony ended, for the app's backend."""

    ceremony_id: str
    client: str
    subject_id: str
    kind: CeremonyKind
    outcome: Outcome
    decided_at: datetime
    expires_at: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _encode(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


class CeremonyTokens:
    """Mints and opens ceremony tokens and receipts under one 256-bit key.

    ``CeremonyTokens.for_vault(vault)`` derives the key from the vault's master
    key, so every worker sharing the vault shares it; a test may pass any key.
    """

    def __init__(self, key: bytes, *, clock: Clock | None = None, lifetime: timedelta = CEREMONY_LIFETIME):
        if len(key) != 32:
            raise ConfigurationError("the ceremony token key must be 32 bytes")
        if not timedelta(seconds=30) <= lifetime <= timedelta(hours=1):
            raise ConfigurationError("a ceremony token lives between 30 seconds and an hour")
        self._aead = AESGCM(key)
        self.clock: Clock = clock or SystemClock()
        self.lifetime = lifetime

    @classmethod
    def for_vault(cls, vault: Any, *, lifetime: timedelta = CEREMONY_LIFETIME) -> CeremonyTokens:
        """Tokens keyed from ``vault.keys.derive`` and timed by ``vault.clock``."""
        return cls(vault.keys.derive(TOKEN_KEY_LABEL), clock=vault.clock, lifetime=lifetime)

    # -- ceremony tokens -------------------------------------------------------------

    def mint(
        self, *, client: str, subject_id: str, kind: CeremonyKind, purpose: str, return_url: str | None = None
    ) -> tuple[str, Ceremony]:
        """A new ceremony (random id, expiring after ``lifetime``) and its token."""
        if kind not in get_args(CeremonyKind):
            raise ConfigurationError(f"a ceremony is 'enroll' or 'verify', not {kind!r}")
        ceremony = Ceremony(
            ceremony_id=secrets.token_urlsafe(16),
            client=client,
            subject_id=subject_id,
            kind=kind,
            purpose=purpose,
            expires_at=self.clock.now() + self.lifetime,
            return_url=return_url,
        )
        return self.seal(ceremony), ceremony

    def seal(self, ceremony: Ceremony) -> str:
        """The token for ``ceremony`` (e.g. after ``replace(ceremony, session_id=...)``)."""
        return self._seal(_TOKEN_PREFIX, {k: _encode(v) for k, v in asdict(ceremony).items()})

    def open(self, token: str, *, kind: CeremonyKind | None = None) -> Ceremony:
        """The ceremony a token names, if it is genuine, unexpired (and of ``kind``)."""
        data = self._open(_TOKEN_PREFIX, token)
        try:
            ceremony = Ceremony(
                ceremony_id=str(data["ceremony_id"]),
                client=str(data["client"]),
                subject_id=str(data["subject_id"]),
                kind=data["kind"],
                purpose=str(data["purpose"]),
                expires_at=datetime.fromisoformat(data["expires_at"]),
                consent_sha256=data["consent_sha256"],
                consented_at=None
                if data["consented_at"] is None
                else datetime.fromisoformat(data["consented_at"]),
                session_id=data["session_id"],
                return_url=data["return_url"],
            )
        except (KeyError, TypeError, ValueError):
            raise InvalidCeremonyTokenError("invalid ceremony token") from None
        if self.clock.now() >= ceremony.expires_at or (kind is not None and ceremony.kind != kind):
            raise InvalidCeremonyTokenError("invalid ceremony token")
        return ceremony

    def agree(self, ceremony: Ceremony, document: ConsentDocument) -> Ceremony:
        """The ceremony with the person's agreement to ``document`` recorded, now."""
        return replace(ceremony, consent_sha256=document.sha256, consented_at=self.clock.now())

    # -- receipts --------------------------------------------------------------------

    def receipt(self, ceremony: Ceremony, outcome: Outcome) -> tuple[str, Receipt]:
        """A sealed receipt of ``outcome`` for the ceremony's client to redeem."""
        now = self.clock.now()
        receipt = Receipt(
            ceremony_id=ceremony.ceremony_id,
            client=ceremony.client,
            subject_id=ceremony.subject_id,
            kind=ceremony.kind,
            outcome=outcome,
            decided_at=now,
            expires_at=now + RECEIPT_LIFETIME,
        )
        return self._seal(_RECEIPT_PREFIX, {k: _encode(v) for k, v in asdict(receipt).items()}), receipt

    def redeem(self, token: str, *, client: str) -> Receipt:
        """The receipt, if genuine, unexpired and issued to ``client``.

        Receipts are not remembered: the app must accept a ``ceremony_id``
        once (its login step is the natural place) within the two minutes.
        """
        data = self._open(_RECEIPT_PREFIX, token)
        try:
            receipt = Receipt(
                ceremony_id=str(data["ceremony_id"]),
                client=str(data["client"]),
                subject_id=str(data["subject_id"]),
                kind=data["kind"],
                outcome=data["outcome"],
                decided_at=datetime.fromisoformat(data["decided_at"]),
                expires_at=datetime.fromisoformat(data["expires_at"]),
            )
        except (KeyError, TypeError, ValueError):
            raise InvalidCeremonyTokenError("invalid receipt") from None
        if self.clock.now() >= receipt.expires_at or not secrets.compare_digest(receipt.client, client):
            raise InvalidCeremonyTokenError("invalid receipt")
        return receipt

    # -- sealing ---------------------------------------------------------------------

    def _seal(self, prefix: str, payload: dict[str, Any]) -> str:
        nonce = secrets.token_bytes(12)
        plain = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        return prefix + _b64(nonce + self._aead.encrypt(nonce, plain, prefix.encode()))

    def _open(self, prefix: str, token: object) -> dict[str, Any]:
        if not isinstance(token, str) or len(token) > _MAX_TOKEN or not token.startswith(prefix):
            raise InvalidCeremonyTokenError("invalid ceremony token")
        try:
            raw = _unb64(token[len(prefix) :])
            data = json.loads(self._aead.decrypt(raw[:12], raw[12:], prefix.encode()))
        except (binascii.Error, ValueError, InvalidTag):
            raise InvalidCeremonyTokenError("invalid ceremony token") from None
        if not isinstance(data, dict):
            raise InvalidCeremonyTokenError("invalid ceremony token")
        return data
