"""A typed client for the faceverify HTTP service (``faceverify serve``), on httpx.

::

    from faceverify.client import Client, ServiceError

    with Client("http://127.0.0.1:8080", api_key=KEY) as fv:
        fv.give_consent("acct-42", purpose="app-login", expires_at=..., document_sha256=...,
                        method="in-app-checkbox", collected_by="signup")
        fv.enroll("acct-42", [open("a.jpg", "rb").read(), open("b.jpg", "rb").read()])
        ticket = fv.start_session("acct-42")
        for jpeg in camera_frames():            # send one frame at a time
            update = fv.send_frame(ticket.session_id, jpeg)
            show(update.prompt, update.feedback)
            if update.finished:
                break
        decision = fv.finish_session(ticket.session_id)
        decision.match

Every refusal raises :class:`ServiceError`, carrying the problem's ``status``,
stable ``code`` (``not_verifiable``, ``not_live``, ``locked_out``...) and
``retry_after`` when the service gave one. Results are frozen dataclasses.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Literal

import httpx

__all__ = [
    "Client",
    "Consent",
    "DeletionReceipt",
    "Enrollment",
    "FrameUpdate",
    "ServiceError",
    "SessionTicket",
    "Verification",
]


class ServiceError(Exception):
    """A problem+json answer: ``status``, ``code``, ``title``, ``detail``, ``retry_after``."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.code: str = str(problem.get("code", "error"))
        self.title: str = str(problem.get("title", ""))
        self.detail: str | None = problem.get("detail")
        self.retry_after: int | None = problem.get("retry_after")
        self.reasons: tuple[str, ...] = tuple(problem.get("reasons") or ())
        super().__init__(f"{status} {self.code}: {self.detail or self.title}")


@dataclass(frozen=True, slots=True)
class Consent:
    subject_id: str
    purpose: str
    granted_at: datetime
    expires_at: datetime
    digest: str
    state: Literal["pending", "active"]


@dataclass(frozen=True, slots=True)
class Enrollment:
    subject_id: str
    template_id: str
    model_pack_id: str
    images: int
    expires_at: datetime
    replaced: bool


@dataclass(frozen=True, slots=True)
class Verification:
    subject_id: str
    match: bool
    operating_point: str
    fmr: float | None
    live: bool
    checks: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DeletionReceipt:
    subject_id: str
    erased_at: datetime
    template_erased: bool
    keys_destroyed: int


@dataclass(frozen=True, slots=True)
class SessionTicket:
    session_id: str
    nonce: str
    prompt: str
    deadline: datetime
    challenges: int
    screen: str | None = None  # the screen-light colour to show first (CSS hex), None: not asked


@dataclass(frozen=True, slots=True)
class FrameUpdate:
    state: str
    prompt: str
    feedback: tuple[str, ...]
    progress: tuple[int, int]
    finished: bool
    screen: str | None = None  # the screen-light colour to show until the next frame (CSS hex)


def _screen(r: dict[str, Any]) -> str | None:
    screen = r.get("screen")
    return None if screen is None else str(screen["hex"])


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _media(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/jpeg"


class Client:
    """One service, one API key. ``transport`` is for tests (e.g. ``httpx.ASGITransport(app)``)."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
            transport=transport,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {"code": "error", "title": response.text[:200]}
            raise ServiceError(response.status_code, problem if isinstance(problem, dict) else {})
        return response.json()

    # -- subjects --------------------------------------------------------------------

    def give_consent(
        self,
        subject_id: str,
        *,
        purpose: str,
        expires_at: datetime,
        method: str,
        collected_by: str,
        document: bytes | None = None,
        document_sha256: str | None = None,
        scope: Sequence[str] = (),
    ) -> Consent:
        """Record consent (the release text's digest: pass ``document`` or ``document_sha256``)."""
        digest = document_sha256 or hashlib.sha256(document or b"").hexdigest()
        body = {
            "purpose": purpose,
            "expires_at": expires_at.isoformat(),
            "evidence": {"document_sha256": digest, "method": method, "collected_by": collected_by},
            "scope": list(scope),
        }
        return _consent(self._call("POST", f"/v1/subjects/{subject_id}/consent", json=body))

    def consent(self, subject_id: str) -> Consent:
        return _consent(self._call("GET", f"/v1/subjects/{subject_id}/consent"))

    def enroll(self, subject_id: str, images: Sequence[bytes]) -> Enrollment:
        files = [("images", (f"image-{i}", data, _media(data))) for i, data in enumerate(images)]
        return _enrollment(self._call("POST", f"/v1/subjects/{subject_id}/enrollment", files=files))

    def enroll_session(self, subject_id: str, session_id: str) -> Enrollment:
        body = {"session_id": session_id}
        return _enrollment(self._call("POST", f"/v1/subjects/{subject_id}/enrollment/live", json=body))

    def revoke(self, subject_id: str) -> DeletionReceipt:
        r = self._call("DELETE", f"/v1/subjects/{subject_id}")
        return DeletionReceipt(
            r["subject_id"], _time(r["erased_at"]), r["template_erased"], r["keys_destroyed"]
        )

    def verify_still(self, subject_id: str, image: bytes) -> Verification:
        files = {"image": ("image", image, _media(image))}
        return _verification(self._call("POST", f"/v1/subjects/{subject_id}/verification", files=files))

    # -- live sessions --------------------------------------------------------------------

    def start_session(
        self, subject_id: str, *, purpose: Literal["verify", "enroll"] = "verify"
    ) -> SessionTicket:
        r = self._call("POST", "/v1/sessions", json={"subject_id": subject_id, "purpose": purpose})
        return SessionTicket(
            r["session_id"], r["nonce"], r["prompt"], _time(r["deadline"]), r["challenges"], _screen(r)
        )

    def send_frame(self, session_id: str, frame: bytes) -> FrameUpdate:
        r = self._call(
            "POST",
            f"/v1/sessions/{session_id}/frames",
            content=frame,
            headers={"Content-Type": _media(frame)},
        )
        progress = r["progress"]
        return FrameUpdate(
            r["state"],
            r["prompt"],
            tuple(r["feedback"]),
            (progress["done"], progress["asked"]),
            r["finished"],
            _screen(r),
        )

    def finish_session(self, session_id: str) -> Verification:
        return _verification(self._call("POST", f"/v1/sessions/{session_id}/finish"))

    # -- health -------------------------------------------------------------------------

    def ready(self) -> bool:
        return self._http.get("/readyz").status_code == 200


def _consent(r: dict[str, Any]) -> Consent:
    return Consent(
        r["subject_id"], r["purpose"], _time(r["granted_at"]), _time(r["expires_at"]), r["digest"], r["state"]
    )


def _enrollment(r: dict[str, Any]) -> Enrollment:
    return Enrollment(
        r["subject_id"],
        r["template_id"],
        r["model_pack_id"],
        r["images"],
        _time(r["expires_at"]),
        r["replaced"],
    )


def _verification(r: dict[str, Any]) -> Verification:
    op = r["operating_point"]
    return Verification(
        r["subject_id"],
        r["match"],
        op["name"],
        op["fmr"],
        r["live"],
        tuple(c["name"] for c in r["liveness"]),
    )
