"""The browser ceremonies over HTTP: the enrolment and login pages, and the routes they call.

Two kinds of caller, two kinds of credential (see ``faceverify._web._ceremony``):

- the embedding app's **backend**, with its API key (``authenticate``, the
  service's client authentication): ``POST /v1/ceremonies`` mints a ceremony
  token for one subject and one ceremony; ``POST /v1/ceremonies/receipts``
  redeems the receipt the page brought back;
- the **browser**, with that ceremony token only (``Authorization: Bearer``, or
  the first WebSocket message): ``GET /v1/ceremony``, ``POST /v1/ceremony/consent``,
  ``POST /v1/ceremony/session``, frames (``POST /v1/ceremony/frames`` or the
  WebSocket ``/v1/ceremony/ws``), ``POST /v1/ceremony/finish``.

The pages themselves are static (``/pages/enroll``, ``/pages/login``, the module
under ``/pages/static/``) and read the token from the URL fragment, which
browsers never send to a server or put in a ``Referer``.

Nothing here decides anything: each route opens the token, checks its scope,
and calls the Verifier's live-session ceremonies (``LiveCeremonies``), mapping
typed errors to problem responses. Frames are time-stamped by the server on
arrival.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from importlib import resources
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from .._errors import (
    CaptureError,
    ConfigurationError,
    ConsentError,
    FaceError,
    FaceVerifyError,
    InvalidCeremonyTokenError,
    LivenessError,
    LockedOutError,
    SubjectError,
)
from .._liveness._challenge import Challenge
from .._vault import ConsentEvidence, ConsentRecord
from .._web._ceremony import Ceremony, CeremonyTokens, ConsentDocument, Outcome

#: A frame upload larger than this is refused (a 1280x720 JPEG at quality 0.8 is ~150 KB).
MAX_FRAME_BYTES = 2 * 1024 * 1024

#: ``authenticate(request, scope)`` -> the client id, or raises (the service's API-key check).
ClientAuth = Callable[[Request, str], Awaitable[str]]

_STATIC = resources.files("faceverify._web") / "static"
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Permissions-Policy": "camera=(self)",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "media-src 'self' blob: mediastream:; connect-src 'self'; frame-ancestors 'self'; "
        "base-uri 'none'; form-action 'self'"
    ),
}


@dataclass(frozen=True, slots=True)
class PagesConfig:
    """How the browser ceremonies are offered.

    ``documents``: the consent text per purpose (enrolment is refused for a
    purpose without one). ``origins``: web origins (``https://app.example``)
    whose pages may call the ceremony routes with the module (CORS); the
    served pages need none. ``challenges`` **for tests and recorded demos
    only**: fixes the challenge sequence so a prepared video can answer it
    (a live camera must always get a random one; ``faceverify serve`` refuses
    it unless ``FACEVERIFY_TEST_CHALLENGES`` is set).
    """

    documents: Mapping[str, ConsentDocument]
    origins: tuple[str, ...] = ()
    challenges: tuple[Challenge, ...] | None = None
    max_frame_bytes: int = MAX_FRAME_BYTES
    pages: bool = True


# -- the live-session ceremonies the routes call -------------------------------------------


@dataclass(frozen=True, slots=True)
class Ticket:
    session_id: str
    nonce: str
    prompt: str
    deadline: datetime
    challenges: int


@dataclass(frozen=True, slots=True)
class Update:
    state: str
    prompt: str
    feedback: tuple[str, ...]
    progress: tuple[int, int]
    finished: bool


class LiveCeremonies(Protocol):
    """What the routes need from the Verifier (store-backed sessions, contract C)."""

    def begin(self, ceremony: Ceremony) -> Ticket: ...
    def feed(self, session_id: str, frame: bytes) -> Update: ...
    def finish(self, session_id: str, *, actor: str) -> Any: ...
    def enroll(self, session_id: str, subject_id: str, *, consent: ConsentRecord, actor: str) -> Any: ...


class ProcessSessions:
    """Live sessions held in this process, over ``Verifier.start_session``.

    For one-process use (``--workers 1``, the tests of the pages): a session
    started here must get its frames here. A service with several workers uses
    the store-backed sessions instead (see :func:`live_ceremonies`).
    """

    def __init__(self, verifier: Any, *, challenges: Sequence[Challenge] | None = None) -> None:
        self._verifier = verifier
        self._challenges = challenges
        self._sessions: dict[str, tuple[Any, threading.Lock]] = {}
        self._lock = threading.Lock()

    def _get(self, session_id: str) -> tuple[Any, threading.Lock]:
        with self._lock:
            found = self._sessions.get(session_id)
        if found is None:
            raise InvalidCeremonyTokenError("invalid ceremony token")
        return found

    def begin(self, ceremony: Ceremony) -> Ticket:
        session = self._verifier.start_session(
            ceremony.subject_id, challenges=self._challenges, purpose=ceremony.kind
        )
        with self._lock:
            self._sessions[session.nonce] = (session, threading.Lock())
        return Ticket(session.nonce, session.nonce, session.prompt, session.deadline, len(session.challenges))

    def feed(self, session_id: str, frame: bytes) -> Update:
        session, lock = self._get(session_id)
        with lock:  # the frames of one session in order, one at a time
            session.feed(frame)
            return _update(session)

    def _pop(self, session_id: str) -> Any:
        session, _ = self._get(session_id)
        with self._lock:
            self._sessions.pop(session_id, None)
        return session

    def finish(self, session_id: str, *, actor: str) -> Any:
        return self._verifier.finish(self._pop(session_id))

    def enroll(self, session_id: str, subject_id: str, *, consent: ConsentRecord, actor: str) -> Any:
        return self._verifier.enroll_live(subject_id, self._pop(session_id), consent=consent, actor=actor)


def _update(session: Any) -> Update:
    """A session's state for the page: prompt, per-frame feedback, progress."""
    progress = getattr(session, "progress", None)
    if progress is None:
        current = session.current
        done = len(session.challenges) if session.finished else 0
        if current is not None:
            done = session.challenges.index(current)
        progress = (done, len(session.challenges))
    feedback = tuple(getattr(f, "value", str(f)) for f in getattr(session, "feedback", ()))
    state = session.state
    return Update(
        state=getattr(state, "value", str(state)),
        prompt=session.prompt,
        feedback=feedback,
        progress=(int(progress[0]), int(progress[1])),
        finished=bool(session.finished),
    )


def live_ceremonies(verifier: Any, *, challenges: Sequence[Challenge] | None = None) -> LiveCeremonies:
    """The sessions the pages use for ``verifier``."""
    return ProcessSessions(verifier, challenges=challenges)


# -- problems ------------------------------------------------------------------------------

#: (status, code, what the page shows) by error class, most specific first.
_PROBLEMS: tuple[tuple[type[FaceVerifyError], int, str, str], ...] = (
    (InvalidCeremonyTokenError, 401, "invalid_token", "This link has expired or is not valid. Start again."),
    (LockedOutError, 429, "locked_out", "Too many failed attempts: try again later."),
    (ConsentError, 403, "consent", "Consent is missing or does not cover this use."),
    (SubjectError, 403, "refused", "We could not check your face for this account."),
    (LivenessError, 422, "not_live", "The liveness check did not pass. Try again."),
    (FaceError, 422, "low_quality", "The camera did not show one clear face. Try again."),
    (CaptureError, 400, "bad_input", "The frame could not be read."),
    (ConfigurationError, 400, "configuration", "This ceremony is not available."),
)


def problem(exc: FaceVerifyError) -> JSONResponse:
    """An ``application/problem+json`` response for a typed refusal (nothing biometric in it)."""
    status, code, detail = 500, "error", "Something went wrong."
    for cls, st, cd, text in _PROBLEMS:
        if isinstance(exc, cls):
            status, code, detail = st, cd, text
            break
    body: dict[str, Any] = {"type": f"urn:faceverify:problem:{code}", "title": code.replace("_", " ")}
    body |= {"status": status, "code": code, "detail": detail}
    headers = {}
    if isinstance(exc, LockedOutError):
        retry = max(1, int(exc.retry_after.total_seconds()))
        body["retry_after"] = retry
        headers["Retry-After"] = str(retry)
    return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=headers)


def _bad_request(detail: str, status: int = 400) -> JSONResponse:
    body = {"type": "urn:faceverify:problem:bad_input", "title": "bad input", "status": status}
    body |= {"code": "bad_input", "detail": detail}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


# -- routes --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Pages:
    tokens: CeremonyTokens
    live: LiveCeremonies
    config: PagesConfig
    authenticate: ClientAuth

    # the app's backend, with its API key ----------------------------------------------

    async def mint(self, request: Request) -> Response:
        body = await _json(request)
        if body is None:
            return _bad_request("expected a JSON object")
        kind, subject, purpose = body.get("ceremony"), body.get("subject_id"), body.get("purpose")
        if kind not in ("enroll", "verify") or not isinstance(subject, str) or not isinstance(purpose, str):
            return _bad_request("give ceremony ('enroll' or 'verify'), subject_id and purpose")
        client = await self.authenticate(request, kind)  # the API scope: enroll or verify
        return_url = body.get("return_url")
        if return_url is not None and not (
            isinstance(return_url, str) and any(return_url.startswith(o + "/") for o in self.config.origins)
        ):
            return _bad_request("return_url must be a URL on one of the service's allowed origins")
        if kind == "enroll" and purpose not in self.config.documents:
            return _bad_request(f"no consent document is configured for purpose {purpose!r}")
        try:
            from .._vault._consent import check_subject_id

            subject = check_subject_id(subject)
        except FaceVerifyError:
            return _bad_request("subject_id is not a valid subject id")
        token, ceremony = self.tokens.mint(
            client=client, subject_id=subject, kind=kind, purpose=purpose, return_url=return_url
        )
        page = "/pages/enroll" if kind == "enroll" else "/pages/login"
        return JSONResponse(
            {
                "token": token,
                "ceremony_id": ceremony.ceremony_id,
                "expires_at": ceremony.expires_at.isoformat(),
                "page": f"{page}#token={token}",
            },
            status_code=201,
        )

    async def redeem(self, request: Request) -> Response:
        body = await _json(request)
        if body is None or not isinstance(body.get("receipt"), str):
            return _bad_request("give the receipt the page returned")
        client = await self.authenticate(request, "verify")
        try:
            receipt = self.tokens.redeem(body["receipt"], client=client)
        except InvalidCeremonyTokenError as exc:
            return problem(exc)
        return JSONResponse(
            {
                "ceremony_id": receipt.ceremony_id,
                "subject_id": receipt.subject_id,
                "ceremony": receipt.kind,
                "outcome": receipt.outcome,
                "decided_at": receipt.decided_at.isoformat(),
            }
        )

    # the browser, with a ceremony token ------------------------------------------------

    def _ceremony(self, request: Request) -> Ceremony:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            raise InvalidCeremonyTokenError("invalid ceremony token")
        return self.tokens.open(token.strip())

    async def describe(self, request: Request) -> Response:
        try:
            ceremony = self._ceremony(request)
        except InvalidCeremonyTokenError as exc:
            return problem(exc)
        out: dict[str, Any] = {
            "ceremony": ceremony.kind,
            "subject_id": ceremony.subject_id,
            "purpose": ceremony.purpose,
            "expires_at": ceremony.expires_at.isoformat(),
            "consented": ceremony.consent_sha256 is not None,
            "return_url": ceremony.return_url,
        }
        document = self.config.documents.get(ceremony.purpose)
        if ceremony.kind == "enroll" and document is not None:
            out["consent"] = {
                "text": document.text,
                "sha256": document.sha256,
                "purpose": document.purpose,
                "controller": document.controller,
                "retention_days": document.retention_days,
            }
        return JSONResponse(out)

    async def consent(self, request: Request) -> Response:
        try:
            ceremony = self._ceremony(request)
        except InvalidCeremonyTokenError as exc:
            return problem(exc)
        body = await _json(request)
        document = self.config.documents.get(ceremony.purpose)
        if ceremony.kind != "enroll" or document is None:
            return _bad_request("this ceremony takes no consent", 409)
        if body is None or body.get("agree") is not True:
            return _bad_request("consent needs an explicit agreement: {'agree': true, 'sha256': ...}")
        if body.get("sha256") != document.sha256:
            # The page showed another text than the one configured now: agree to what is current.
            return _bad_request("the consent text has changed: read it again", 409)
        agreed = self.tokens.agree(ceremony, document)
        assert agreed.consented_at is not None
        at = agreed.consented_at.isoformat()
        return JSONResponse({"token": self.tokens.seal(agreed), "consented_at": at})

    async def start(self, request: Request) -> Response:
        try:
            ceremony = self._ceremony(request)
            if ceremony.kind == "enroll" and ceremony.consent_sha256 is None:
                raise ConsentError("agree to the consent document before the enrolment session")
            ticket = await run_in_threadpool(self.live.begin, ceremony)
        except FaceVerifyError as exc:
            return problem(exc)
        bound = replace(ceremony, session_id=ticket.session_id)
        return JSONResponse(
            {
                "token": self.tokens.seal(bound),
                "nonce": ticket.nonce,
                "prompt": ticket.prompt,
                "deadline": ticket.deadline.isoformat(),
                "challenges": ticket.challenges,
                "websocket": "/ceremony/v1/ws",
                "frames": "/ceremony/v1/frames",
            },
            status_code=201,
        )

    def _session(self, token: str) -> Ceremony:
        ceremony = self.tokens.open(token)
        if ceremony.session_id is None:
            raise InvalidCeremonyTokenError("invalid ceremony token")
        return ceremony

    async def _feed(self, ceremony: Ceremony, frame: bytes) -> dict[str, Any]:
        assert ceremony.session_id is not None
        update = await run_in_threadpool(self.live.feed, ceremony.session_id, frame)
        return {
            "state": update.state,
            "prompt": update.prompt,
            "feedback": list(update.feedback),
            "progress": list(update.progress),
            "finished": update.finished,
        }

    async def frame(self, request: Request) -> Response:
        try:
            ceremony = self._ceremony(request)
            if ceremony.session_id is None:
                raise InvalidCeremonyTokenError("invalid ceremony token")
        except InvalidCeremonyTokenError as exc:
            return problem(exc)
        data = await _body(request, self.config.max_frame_bytes)
        if data is None:
            limit = self.config.max_frame_bytes
            return _bad_request(f"a frame is a JPEG, PNG or WebP of at most {limit} bytes", 413)
        try:
            return JSONResponse(await self._feed(ceremony, data))
        except FaceVerifyError as exc:
            return problem(exc)

    async def websocket(self, ws: WebSocket) -> None:
        await ws.accept()
        try:
            hello = json.loads(await asyncio.wait_for(ws.receive_text(), timeout=10))
            given = hello.get("token") if isinstance(hello, dict) else None
            token = given if isinstance(given, str) else ""
            ceremony = self._session(token)
        except (TimeoutError, ValueError, KeyError, FaceVerifyError, WebSocketDisconnect):
            await _close(ws, 4401, "invalid ceremony token")
            return
        await ws.send_json({"type": "ready"})
        try:
            while True:
                data = await ws.receive_bytes()
                if len(data) > self.config.max_frame_bytes:
                    await _close(ws, 1009, "frame too large")
                    return
                try:
                    self.tokens.open(token)  # still unexpired
                    update = await self._feed(ceremony, data)
                except FaceVerifyError as exc:
                    await ws.send_json({"type": "problem", **json.loads(bytes(problem(exc).body))})
                    continue
                await ws.send_json({"type": "frame", **update})
        except WebSocketDisconnect:
            return

    async def finish(self, request: Request) -> Response:
        try:
            ceremony = self._ceremony(request)
            if ceremony.session_id is None:
                raise InvalidCeremonyTokenError("invalid ceremony token")
            actor = f"client:{ceremony.client}"
            if ceremony.kind == "enroll":
                consent = self._consent_record(ceremony)
                result = await run_in_threadpool(
                    self.live.enroll, ceremony.session_id, ceremony.subject_id, consent=consent, actor=actor
                )
                receipt, _ = self.tokens.receipt(ceremony, "enrolled")
                return JSONResponse({"outcome": "enrolled", "images": result.images, "receipt": receipt})
            result = await run_in_threadpool(self.live.finish, ceremony.session_id, actor=actor)
        except FaceVerifyError as exc:
            return problem(exc)
        outcome: Outcome = "match" if result.match else "no-match"
        receipt, _ = self.tokens.receipt(ceremony, outcome)
        return JSONResponse({"outcome": outcome, "receipt": receipt})

    def _consent_record(self, ceremony: Ceremony) -> ConsentRecord:
        document = self.config.documents.get(ceremony.purpose)
        if document is None or ceremony.consented_at is None or ceremony.consent_sha256 is None:
            raise ConsentError("no agreement to a consent document was recorded in this ceremony")
        return ConsentRecord(
            subject_id=ceremony.subject_id,
            purpose=ceremony.purpose,
            granted_at=ceremony.consented_at,
            expires_at=ceremony.consented_at + document.retention,
            evidence=ConsentEvidence(
                ceremony.consent_sha256, "browser-checkbox", f"client:{ceremony.client}"[:200]
            ),
        )

    # the static pages --------------------------------------------------------------------

    def page(self, name: str) -> Callable[[Request], Awaitable[Response]]:
        async def serve(request: Request) -> Response:
            with resources.as_file(_STATIC / name) as path:
                return FileResponse(path, media_type="text/html", headers=_PAGE_HEADERS)

        return serve


async def _json(request: Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


async def _body(request: Request, limit: int) -> bytes | None:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks) or None


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(RuntimeError):  # already closed by the other side
        await ws.close(code=code, reason=reason)


def page_routes(
    verifier: Any,
    *,
    config: PagesConfig,
    authenticate: ClientAuth,
    tokens: CeremonyTokens | None = None,
    live: LiveCeremonies | None = None,
) -> list[BaseRoute]:
    """The ceremony routes (and, when ``config.pages``, the pages) for ``verifier``."""
    pages = _Pages(
        tokens=tokens or CeremonyTokens.for_vault(verifier.vault),
        live=live or live_ceremonies(verifier, challenges=config.challenges),
        config=config,
        authenticate=authenticate,
    )
    routes: list[BaseRoute] = [
        Route("/v1/ceremonies", pages.mint, methods=["POST"]),
        Route("/v1/ceremonies/receipts", pages.redeem, methods=["POST"]),
        Route("/ceremony/v1", pages.describe, methods=["GET"]),
        Route("/ceremony/v1/consent", pages.consent, methods=["POST"]),
        Route("/ceremony/v1/session", pages.start, methods=["POST"]),
        Route("/ceremony/v1/frames", pages.frame, methods=["POST"]),
        Route("/ceremony/v1/finish", pages.finish, methods=["POST"]),
        WebSocketRoute("/ceremony/v1/ws", pages.websocket),
    ]
    if config.pages:
        routes += [
            # One page for both: what it does comes from the token.
            Route("/pages/enroll", pages.page("ceremony.html"), methods=["GET"]),
            Route("/pages/login", pages.page("ceremony.html"), methods=["GET"]),
            Mount("/pages/static", app=StaticFiles(packages=[("faceverify._web", "static")])),
        ]
    return routes


def pages_app(
    verifier: Any,
    *,
    config: PagesConfig,
    authenticate: ClientAuth,
    tokens: CeremonyTokens | None = None,
) -> Starlette:
    """A standalone ASGI app of :func:`page_routes`, with CORS for ``config.origins``."""
    middleware = []
    if config.origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(config.origins),
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type"],
                max_age=600,
            )
        )
    return Starlette(
        routes=page_routes(verifier, config=config, authenticate=authenticate, tokens=tokens),
        middleware=middleware,
    )


def challenges_from_env(value: str | None) -> tuple[Challenge, ...] | None:
    """``FACEVERIFY_TEST_CHALLENGES=turn-left,move-closer`` (tests only) as challenges."""
    if not value:
        return None
    known = {c.value: c for c in Challenge}
    try:
        return tuple(known[name.strip()] for name in value.split(",") if name.strip())
    except KeyError as exc:
        raise ConfigurationError(f"FACEVERIFY_TEST_CHALLENGES: unknown challenge {exc.args[0]!r}") from None


__all__ = [
    "MAX_FRAME_BYTES",
    "LiveCeremonies",
    "PagesConfig",
    "ProcessSessions",
    "challenges_from_env",
    "page_routes",
    "pages_app",
    "problem",
]
