"""A live session as data: versioned JSON, arrays as base64, no pickle.

A challenge session outlives a request when frames arrive over HTTP: any
worker must be able to take its next frame. :meth:`ChallengeSession.snapshot`
writes everything the session decides from (nonce, challenges, deadlines,
counters, baseline pose and embedding, the compact per-frame trace of the
animation checks) and nothing it does not need (no frames: at most a few
small grey crops of the face, which the store seals at rest). The models stay
in the process; :meth:`ChallengeSession.restore` takes them back, with the
server's clock.

The format is JSON (sorted keys, UTF-8) with ``"format"`` and ``"version"``
fields; numpy arrays are ``{"dtype", "shape", "data": base64}`` with a fixed
set of dtypes. Floats round-trip exactly (Python writes the shortest repr).
A snapshot is at most :data:`MAX_SNAPSHOT_BYTES`; anything this version cannot
read (another format or version, a malformed field, too large) is refused
with :class:`ConfigurationError` — callers holding sessions in a store should
treat that like an unknown session.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import fields
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from .._errors import ConfigurationError
from .._pipeline._detect import Face
from .._pipeline._pipeline import FaceSample
from .._pipeline._quality import Quality

FORMAT = "faceverify/challenge-session"
VERSION = 4  # 3: the hold before a prompt starts once the face is held still ("hold_from"); 4: "memory"
MAX_SNAPSHOT_BYTES = 256 * 1024

_DTYPES = {"float32": np.float32, "float64": np.float64, "uint8": np.uint8, "uint16": np.uint16}
_QUALITY_FIELDS = tuple(f.name for f in fields(Quality))


class StateError(ConfigurationError):
    """A snapshot this version of faceverify cannot restore (internal: callers see ConfigurationError)."""


def fingerprint(obj: object) -> str:
    """A short stable digest of a configuration's repr (frozen dataclasses: deterministic)."""
    return hashlib.sha256(repr(obj).encode()).hexdigest()[:16]


def pack_array(a: npt.NDArray[Any]) -> dict[str, Any]:
    name = str(a.dtype)
    if name not in _DTYPES:
        raise StateError(f"cannot store an array of dtype {name}")
    data = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes()
    return {"dtype": name, "shape": list(a.shape), "data": base64.b64encode(data).decode("ascii")}


def unpack_array(d: Any, dtype: str, *, ndim: int | None = None) -> npt.NDArray[Any]:
    try:
        if d["dtype"] != dtype:
            raise StateError(f"array of dtype {d['dtype']!r}, expected {dtype!r}")
        shape = tuple(int(n) for n in d["shape"])
        if ndim is not None and len(shape) != ndim:
            raise StateError(f"array of {len(shape)} dimensions, expected {ndim}")
        raw = base64.b64decode(d["data"], validate=True)
        out = np.frombuffer(raw, dtype=np.dtype(_DTYPES[dtype]).newbyteorder("<")).reshape(shape)
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise StateError(f"malformed array in a session snapshot: {exc!r}") from None
    return out.astype(_DTYPES[dtype])  # native byte order, writable copy


def pack_time(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def unpack_time(s: Any) -> datetime | None:
    if s is None:
        return None
    try:
        at = datetime.fromisoformat(s)
    except (TypeError, ValueError):
        raise StateError("malformed time stamp in a session snapshot") from None
    if at.tzinfo is None:
        raise StateError("a session snapshot's time stamps must carry a time zone")
    return at


def pack_sample(s: FaceSample) -> dict[str, Any]:
    return {
        "embedding": pack_array(np.asarray(s.embedding, dtype=np.float32)),
        "quality": [float(getattr(s.quality, f)) for f in _QUALITY_FIELDS],
        "box": [float(v) for v in s.face.box],
        "landmarks": pack_array(np.asarray(s.face.landmarks, dtype=np.float32)),
        "score": float(s.face.score),
    }


def pack_face(face: Face) -> dict[str, Any]:
    return {
        "box": [float(v) for v in face.box],
        "landmarks": pack_array(np.asarray(face.landmarks, dtype=np.float32)),
        "score": float(face.score),
    }


def unpack_face(d: Any) -> Face:
    try:
        x, y, w, h = (float(v) for v in d["box"])
        landmarks = unpack_array(d["landmarks"], "float32", ndim=2)
        if landmarks.shape != (5, 2):
            raise StateError("landmarks of the wrong shape")
        return Face(box=(x, y, w, h), landmarks=landmarks, score=float(d["score"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise StateError(f"malformed face in a session snapshot: {exc!r}") from None


def unpack_sample(d: Any) -> FaceSample:
    try:
        quality = Quality(*(float(v) for v in d["quality"]))
        x, y, w, h = (float(v) for v in d["box"])
        landmarks = unpack_array(d["landmarks"], "float32", ndim=2)
        if landmarks.shape != (5, 2):
            raise StateError("landmarks of the wrong shape")
        face = Face(box=(x, y, w, h), landmarks=landmarks, score=float(d["score"]))
        embedding = unpack_array(d["embedding"], "float32", ndim=1)
    except (KeyError, TypeError, ValueError) as exc:
        raise StateError(f"malformed face sample in a session snapshot: {exc!r}") from None
    return FaceSample(embedding=embedding, quality=quality, face=face)


def dump(kind: str, body: dict[str, Any]) -> bytes:
    data = json.dumps(
        {"format": FORMAT, "version": VERSION, "kind": kind, "session": body},
        sort_keys=True,
        separators=(",", ":"),
        allow_nan=True,
    ).encode("utf-8")
    if len(data) > MAX_SNAPSHOT_BYTES:  # bounded by construction; a guard, not a code path
        raise StateError(f"session snapshot of {len(data)} bytes exceeds {MAX_SNAPSHOT_BYTES}")
    return data


def load(data: bytes, kind: str) -> dict[str, Any]:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise StateError("a session snapshot is bytes")
    if len(data) > MAX_SNAPSHOT_BYTES:
        raise StateError(f"session snapshot larger than {MAX_SNAPSHOT_BYTES} bytes")
    try:
        doc = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise StateError("not a faceverify session snapshot") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise StateError("not a faceverify session snapshot")
    if doc.get("version") != VERSION:
        raise StateError(f"session snapshot version {doc.get('version')!r}; this faceverify reads {VERSION}")
    if doc.get("kind") != kind:
        raise StateError(f"a {doc.get('kind')!r} snapshot cannot be restored as a {kind!r} session")
    body = doc.get("session")
    if not isinstance(body, dict):
        raise StateError("malformed session snapshot")
    return body
