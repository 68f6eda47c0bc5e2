"""Recollections: a subject's last passing live sessions, sealed under the subject's data key.

The liveness layer hands the vault an opaque ``bytes`` *recollection* of each passing
session (a fingerprint of its frames, so biometric data) and asks for them again to refuse a
digital replay of a session the server already saw. The vault never interprets the bytes;
it only keeps them so that they die with the subject.

Layout::

    version:u8 (1)  nonce (12)  AES-256-GCM ciphertext+tag

The key is the active template's data key (``key_id`` in its header): erasing the template
destroys the key, so a backup of the vault database taken before the erasure cannot open
its recollections afterwards. The associated data binds a label, the version, the subject
id and the template id, so a row copied to another subject or template does not open.

Every failure to open raises ``InvalidTemplateError`` with the template's one fixed message:
which check failed would tell an attacker probing the store what to change.
"""

from __future__ import annotations

import os
import struct

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .._errors import InvalidTemplateError

#: The largest recollection the vault keeps (a fingerprint of a session; a session's state
#: is bounded the same).
MAX_RECOLLECTION_BYTES = 1 << 20
_VERSION = 1
_LABEL = b"faceverify-recollection-v1"
_NONCE_BYTES = 12
_TAG_BYTES = 16
_OPAQUE = "template could not be opened"  # the template's one message (``_template``)


def _aad(subject_id: str, template_id: str) -> bytes:
    subject, template = subject_id.encode(), template_id.encode()
    return _LABEL + struct.pack(">BHH", _VERSION, len(subject), len(template)) + subject + template


def check_recollection(data: object) -> bytes:
    """``data`` if it is a recollection the vault will keep: ``bytes``, 1 byte to 1 MiB."""
    if not isinstance(data, bytes) or not 0 < len(data) <= MAX_RECOLLECTION_BYTES:
        raise ValueError(f"a recollection is 1 to {MAX_RECOLLECTION_BYTES} bytes")
    return data


def seal_recollection(subject_id: str, template_id: str, data: bytes, key: bytes) -> bytes:
    """Encrypt ``data`` under the template's data key, bound to this subject and template."""
    check_recollection(data)
    nonce = os.urandom(_NONCE_BYTES)
    ciphertext = AESGCM(key).encrypt(nonce, data, _aad(subject_id, template_id))
    return bytes([_VERSION]) + nonce + ciphertext


def open_recollection(subject_id: str, template_id: str, blob: bytes, key: bytes | None) -> bytes:
    """Decrypt and authenticate ``blob`` as this subject's recollection of this template.

    ``key`` is ``None`` when the key is gone (shredded): that too is the one opaque error.
    """
    try:
        if key is None:
            raise ValueError("no key")
        if len(blob) < 1 + _NONCE_BYTES + _TAG_BYTES + 1 or blob[0] != _VERSION:
            raise ValueError("prefix")
        nonce, ciphertext = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
        return AESGCM(key).decrypt(nonce, ciphertext, _aad(subject_id, template_id))
    except Exception:  # InvalidTag, wrong lengths, missing key, a wrong type: all alike
        raise InvalidTemplateError(_OPAQUE) from None


__all__ = ["MAX_RECOLLECTION_BYTES", "check_recollection", "open_recollection", "seal_recollection"]
