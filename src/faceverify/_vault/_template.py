"""Template format v1: a self-describing, encrypted blob holding one subject's embeddings.

Layout (all integers big-endian)::

    b"FVTP"  format:u8  header_len:u32  header (canonical JSON)  nonce (12)  ciphertext+tag

The header is readable without a key, like an argon2 hash string, so that a
host can tell which templates were made by an older model pack or format
(``needs_reenroll``) without decrypting anything. Everything before the nonce
is the AES-256-GCM associated data: the subject id, template id, key id, model
pack id, format version, dimensions, times and the consent digest are all
authenticated, so a header edited, a blob moved to another subject's row, or a
consent record swapped makes the template fail to open.

The plaintext is 1 to 5 float32 embeddings (one per enrolment image); how they
are fused is the verifier's business, not the format's.

Every failure to open raises ``InvalidTemplateError`` with one fixed message:
which check failed would tell an attacker probing the store what to change.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .._errors import InvalidTemplateError

FORMAT_VERSION = 1
MAX_EMBEDDINGS = 5
_MAGIC = b"FVTP"
_PREFIX = struct.Struct(">4sBI")
_NONCE_BYTES = 12
_TAG_BYTES = 16
_MAX_HEADER = 4096
_MAX_DIM = 4096
_OPAQUE = "template could not be opened"

Embeddings = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class TemplateHeader:
    """The recorded parameters of a template (authenticated once the template opens)."""

    format_version: int
    template_id: str
    subject_id: str
    key_id: str
    model_pack_id: str
    embedding_dim: int
    embedding_count: int
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    consent_sha256: str

    def to_json(self) -> bytes:
        data: dict[str, Any] = asdict(self)
        for name in ("created_at", "last_used_at", "expires_at"):
            data[name] = data[name].isoformat()
        return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> TemplateHeader:
        data = json.loads(raw)
        for name in ("created_at", "last_used_at", "expires_at"):
            data[name] = datetime.fromisoformat(data[name])
        header = cls(**data)
        if not (
            isinstance(header.embedding_dim, int)
            and isinstance(header.embedding_count, int)
            and 0 < header.embedding_dim <= _MAX_DIM
            and 0 < header.embedding_count <= MAX_EMBEDDINGS
        ):
            raise ValueError("bad dimensions")
        return header


@dataclass(frozen=True, slots=True)
class OpenedTemplate:
    """A decrypted template: its header and its ``(count, dim)`` embeddings."""

    header: TemplateHeader
    embeddings: Embeddings


def check_embeddings(embeddings: npt.ArrayLike) -> Embeddings:
    """1 to 5 finite vectors of one dimension, as float32 rows."""
    array = np.asarray(embeddings, dtype=np.float32)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or not 1 <= array.shape[0] <= MAX_EMBEDDINGS or not 0 < array.shape[1] <= _MAX_DIM:
        raise ValueError(f"a template holds 1 to {MAX_EMBEDDINGS} embeddings of one dimension")
    if not np.all(np.isfinite(array)):
        raise ValueError("embeddings must be finite")
    return array


def seal(header: TemplateHeader, embeddings: npt.ArrayLike, key: bytes) -> bytes:
    """Encrypt ``embeddings`` under the subject's data key, binding ``header``.

    A fresh 96-bit random nonce per seal: a subject's key seals a handful of
    templates (one per enrolment and successful use), far below the 2**32
    messages after which random GCM nonces become a concern.
    """
    rows = check_embeddings(embeddings)
    if header.format_version != FORMAT_VERSION or rows.shape != (
        header.embedding_count,
        header.embedding_dim,
    ):
        raise ValueError("header does not describe these embeddings")
    header_bytes = header.to_json()
    if len(header_bytes) > _MAX_HEADER:
        raise ValueError("template header too long")
    aad = _PREFIX.pack(_MAGIC, FORMAT_VERSION, len(header_bytes)) + header_bytes
    nonce = os.urandom(_NONCE_BYTES)
    plaintext = rows.astype("<f4").tobytes()
    return aad + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _split(blob: bytes) -> tuple[bytes, TemplateHeader, bytes, bytes]:
    if len(blob) < _PREFIX.size:
        raise ValueError("short")
    magic, version, header_len = _PREFIX.unpack_from(blob)
    if magic != _MAGIC or version != FORMAT_VERSION or header_len > _MAX_HEADER:
        raise ValueError("prefix")
    end = _PREFIX.size + header_len
    header = TemplateHeader.from_json(blob[_PREFIX.size : end])
    if header.format_version != version:
        raise ValueError("version")
    nonce, ciphertext = blob[end : end + _NONCE_BYTES], blob[end + _NONCE_BYTES :]
    if (
        len(nonce) != _NONCE_BYTES
        or len(ciphertext) != header.embedding_count * header.embedding_dim * 4 + _TAG_BYTES
    ):
        raise ValueError("length")
    return blob[:end], header, nonce, ciphertext


def read_header(blob: bytes) -> TemplateHeader:
    """The header *as written*, unauthenticated: for ``needs_reenroll`` and display only.

    Nothing security-relevant may be decided from it; ``open_template``
    authenticates the same header.
    """
    try:
        return _split(blob)[1]
    except Exception:
        raise InvalidTemplateError(_OPAQUE) from None


def open_template(blob: bytes, key: bytes | None, *, subject_id: str, consent_sha256: str) -> OpenedTemplate:
    """Decrypt and authenticate ``blob`` as ``subject_id``'s template bound to that consent.

    ``key`` is ``None`` when the subject's key is gone (shredded): that too is
    the one opaque error.
    """
    try:
        if key is None:
            raise ValueError("no key")
        aad, header, nonce, ciphertext = _split(blob)
        plaintext = AESGCM(key).decrypt(nonce, ciphertext, aad)
        if header.subject_id != subject_id or header.consent_sha256 != consent_sha256:
            raise ValueError("binding")
        rows = np.frombuffer(plaintext, dtype="<f4").astype(np.float32)
        return OpenedTemplate(header, rows.reshape(header.embedding_count, header.embedding_dim))
    except Exception:  # InvalidTag, malformed JSON, wrong lengths, missing key: all alike
        raise InvalidTemplateError(_OPAQUE) from None


def open_header(blob: bytes, key: bytes | None) -> TemplateHeader:
    """The header, authenticated by the data key (the embeddings are decrypted and dropped).

    For ``purge``: the sealed expiry and last use, without the consent binding.
    """
    try:
        if key is None:
            raise ValueError("no key")
        aad, header, nonce, ciphertext = _split(blob)
        AESGCM(key).decrypt(nonce, ciphertext, aad)
        return header
    except Exception:
        raise InvalidTemplateError(_OPAQUE) from None


def touched(opened: OpenedTemplate, *, last_used_at: datetime, expires_at: datetime) -> TemplateHeader:
    """The header after a successful use: same template, new use and expiry times."""
    return replace(opened.header, last_used_at=last_used_at, expires_at=expires_at)


def needs_reenroll(header: TemplateHeader, current_pack_id: str) -> bool:
    """True when the template was made with another model pack or template format.

    Like argon2's ``check_needs_rehash``: a comparison of the recorded
    parameters with the current ones, no decryption. Embeddings of different
    packs are not comparable, so such a template cannot verify anyone and the
    subject must enrol again.
    """
    return header.format_version != FORMAT_VERSION or header.model_pack_id != current_pack_id
