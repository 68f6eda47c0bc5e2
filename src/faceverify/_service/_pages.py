"""The browser ceremonies: the enrolment and login pages, and the routes they call.

Two kinds of caller, two kinds of credential (see ``faceverify._web._ceremony``):

- the embedding app's **backend**, with its API key (authenticated by the
  service's middleware like every ``/v1`` call): ``POST /v1/ceremonies`` mints a
  ceremony token for one subject and one ceremony (scope ``enroll`` or
  ``verify``, within the client's subject prefixes); ``POST
  /v1/ceremonies/receipts`` redeems the receipt the page brought back;
- the **browser**, with that ceremony token only (``Authorization: Bearer``, or
  the first WebSocket message), under ``/ceremony/v1``: ``GET`` (what the
  ceremony is, and the consent document), ``POST consent``, ``POST session``,
  frames (``POST frames`` or the WebSocket ``ws``), ``POST finish``.

The pages are static (``/pages/enroll``, ``/pages/login``, the module under
``/pages/static/``) and read the token from the URL fragment, which browsers
never send to a server nor put in a ``Referer``.

Nothing here decides anything: each route opens the token, checks its scope and
calls the Verifier's store-backed live sessions (``begin_session``,
``feed_session``, ``finish_session``, ``enroll_session``) as the client that
minted the token, so any worker takes any frame. Frames are time-stamped by the
server. Refusals reach the browser as problem+json without subject detail
(``not_verifiable``), except ``locked_out`` with its wait, which the person needs.

Settings (environment; the pages are on unless ``faceverify serve --no-pages``):
``FACEVERIFY_PAGES_CONTROLLER`` (who asks for consent, shown on the page),
``FACEVERIFY_PAGES_CONSENT_DAYS`` (how long consent runs, default 365),
``FACEVERIFY_PAGES_CONSENT_DIR`` (``<purpose>.txt`` files replacing the default
texts), ``FACEVERIFY_PAGES_ORIGINS`` (comma-separated web origins allowed to
embed the module: CORS for the ceremony routes and the static files).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Depends, Request, Security
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from .._errors import (
    ConfigurationError,
    ConsentError,
    FaceVerifyError,
    InvalidCeremonyTokenError,
    LockedOutError,
)
from .._vault import ConsentEvidence, ConsentRecord
from .._web._ceremony import Ceremony, CeremonyTokens, ConsentDocument, Outcome, default_consent_documents
from ._clients import ApiClient, Scope
from ._problems import MEDIA_TYPE, Problem, problem_for
from ._ratelimit import RateLimitExceeded
from ._routes import PROBLEM_RESPONSES, bearer, caller, subject
from ._schemas import screen_out

if TYPE_CHECKING:
    from fastapi import FastAPI

    from ._state import ServiceState

#: A frame larger than this is refused (a 640x480 JPEG at quality 0.85 is ~60 KB).
MAX_FRAME_BYTES = 2 * 1024 * 1024
#: The browser's routes (ceremony tokens), apart from ``/v1`` (API keys).
PREFIX = "/ceremony/v1"

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
    whose pages may embed the module and call the ceremony routes (CORS), and
    to which a ``return_url`` may point; the served pages need none.
    """

    documents: Mapping[str, ConsentDocument]
    origins: tuple[str, ...] = ()
    max_frame_bytes: int = MAX_FRAME_BYTES

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> PagesConfig:
        env = os.environ if environ is None else environ
        controller = env.get("FACEVERIFY_PAGES_CONTROLLER", "").strip() or "the operator of this service"
        try:
            days = int(env.get("FACEVERIFY_PAGES_CONSENT_DAYS", "365"))
        except ValueError:
            raise ConfigurationError("FACEVERIFY_PAGES_CONSENT_DAYS must be a number of days") from None
        documents = default_consent_documents(controller, retention=timedelta(days=days))
        folder = env.get("FACEVERIFY_PAGES_CONSENT_DIR")
        if folder:
            for path in sorted(Path(folder).glob("*.txt")):
                documents[path.stem] = ConsentDocument(
                    path.stem, controller, timedelta(days=days), path.read_text(encoding="utf-8")
                )
        origins = tuple(
            o.strip().rstrip("/") for o in env.get("FACEVERIFY_PAGES_ORIGINS", "").split(",") if o.strip()
        )
        for origin in origins:
            if not origin.startswith(("https://", "http://")) or origin.count("/") != 2:
                raise ConfigurationError(
                    f"FACEVERIFY_PAGES_ORIGINS: {origin!r} is not an origin (scheme://host[:port])"
                )
        return cls(documents=documents, origins=origins)


# -- the app's backend: mint a ceremony, redeem its receipt (API key, in the OpenAPI) ----------


class CeremonyIn(BaseModel):
    ceremony: Literal["enroll", "verify"]
    subject_id: str = Field(min_length=1, max_length=128)
    purpose: str = Field(min_length=1, max_length=200, description="the consent purpose, e.g. app-login")
    return_url: str | None = Field(
        default=None, max_length=2048, description="where the served page sends the person when done"
    )


class CeremonyOut(BaseModel):
    token: str = Field(description="give it to the browser: it allows this one ceremony only")
    ceremony_id: str
    expires_at: datetime
    page: str = Field(description="the served page for it, token in the fragment (path on this service)")


class ReceiptIn(BaseModel):
    receipt: str = Field(min_length=1, max_length=4096)


class ReceiptOut(BaseModel):
    ceremony_id: str = Field(description="accept each once")
    subject_id: str
    ceremony: Literal["enroll", "verify"]
    outcome: Literal["enrolled", "match", "no-match"]
    decided_at: datetime


router = APIRouter(
    prefix="/v1/ceremonies", tags=["ceremonies"], dependencies=[Security(bearer)], responses=PROBLEM_RESPONSES
)


def _pages(request: Request) -> _Pages:
    pages: _Pages | None = getattr(request.app.state, "fv_pages", None)
    if pages is None:
        raise Problem("not_found")
    return pages


@router.post("", status_code=201, response_model=CeremonyOut)
def mint_ceremony(body: CeremonyIn, request: Request, client: ApiClient = Depends(caller)) -> CeremonyOut:  # noqa: B008
    """Start a browser ceremony for one subject: a short-lived token for the page (never the API key)."""
    scope = Scope.ENROLL if body.ceremony == "enroll" else Scope.VERIFY
    if not client.allows(scope):
        raise Problem("forbidden", detail=f"a {body.ceremony} ceremony needs the {scope.value!r} scope")
    pages = _pages(request)
    subject_id = subject(client, body.subject_id)
    if body.return_url is not None and not any(
        body.return_url.startswith(o + "/") for o in pages.config.origins
    ):
        raise Problem("bad_input", detail="return_url must be on one of the service's allowed page origins")
    if body.ceremony == "enroll" and body.purpose not in pages.config.documents:
        raise Problem("bad_input", detail=f"no consent document is configured for purpose {body.purpose!r}")
    token, ceremony = pages.tokens.mint(
        client=client.client_id,
        subject_id=subject_id,
        kind=body.ceremony,
        purpose=body.purpose,
        return_url=body.return_url,
    )
    page = "/pages/enroll" if body.ceremony == "enroll" else "/pages/login"
    return CeremonyOut(
        token=token,
        ceremony_id=ceremony.ceremony_id,
        expires_at=ceremony.expires_at,
        page=f"{page}#token={token}",
    )


@router.post("/receipts", response_model=ReceiptOut)
def redeem_receipt(body: ReceiptIn, request: Request, client: ApiClient = Depends(caller)) -> ReceiptOut:  # noqa: B008
    """The outcome of a ceremony this client started, from the receipt its page returned (2 minutes)."""
    if not (client.allows(Scope.ENROLL) or client.allows(Scope.VERIFY)):
        raise Problem("forbidden", detail="receipts need the 'enroll' or 'verify' scope")
    try:
        receipt = _pages(request).tokens.redeem(body.receipt, client=client.client_id)
    except InvalidCeremonyTokenError:
        raise Problem("unauthorized", detail="invalid or expired receipt") from None
    return ReceiptOut(
        ceremony_id=receipt.ceremony_id,
        subject_id=receipt.subject_id,
        ceremony=receipt.kind,
        outcome=receipt.outcome,
        decided_at=receipt.decided_at,
    )


# -- the browser: one ceremony, with its token --------------------------------------------------


def _problem(exc: FaceVerifyError) -> Problem:
    """What the browser is told: nothing about the subject beyond a lockout's wait."""
    if isinstance(exc, InvalidCeremonyTokenError):
        return Problem("unauthorized", detail="invalid or expired ceremony token")
    if isinstance(exc, LockedOutError):
        return Problem("locked_out", retry_after=max(1, int(exc.retry_after.total_seconds() + 0.999)))
    return problem_for(exc, knows_subjects=False)


def _respond(problem: Problem) -> JSONResponse:
    return JSONResponse(
        problem.body(), status_code=problem.status, media_type=MEDIA_TYPE, headers=problem.headers()
    )


@dataclass(slots=True)
class _Pages:
    """The browser routes over one service process's state (its Verifier, loaded on first use)."""

    state: ServiceState
    config: PagesConfig
    _tokens: CeremonyTokens | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def verifier(self) -> Any:
        return self.state.verifier

    @property
    def tokens(self) -> CeremonyTokens:
        """Keyed from the vault's master key: every worker opens every token."""
        if self._tokens is None:
            with self._lock:
                if self._tokens is None:
                    self._tokens = CeremonyTokens.for_vault(self.verifier.vault)
        return self._tokens

    def _limit(self, ceremony: Ceremony, source: str) -> None:
        """Ceremony calls count against the minting client's and the browser address's rate limits
        (frames do not: a session's frames are bounded by the session itself)."""
        try:
            self.state.limiter.hit(client=ceremony.client, source=source)
        except RateLimitExceeded as exc:
            raise Problem("rate_limited", retry_after=exc.retry_after) from None

    async def _open(self, request: Request, *, limit: bool = True) -> Ceremony:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            raise InvalidCeremonyTokenError("invalid ceremony token")
        ceremony = self.tokens.open(token.strip())
        if limit:
            source = request.client.host if request.client else "unknown"
            await run_in_threadpool(self._limit, ceremony, source)
        return ceremony

    def _handler(self, call: Callable[[Request], Awaitable[dict[str, Any]]], status: int = 200) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                return JSONResponse(await call(request), status_code=status)
            except FaceVerifyError as exc:
                return _respond(_problem(exc))
            except Problem as problem:
                return _respond(problem)

        return endpoint

    async def describe(self, request: Request) -> dict[str, Any]:
        ceremony = await self._open(request)
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
        return out

    async def consent(self, request: Request) -> dict[str, Any]:
        ceremony = await self._open(request)
        document = self.config.documents.get(ceremony.purpose)
        if ceremony.kind != "enroll" or document is None:
            raise Problem("bad_input", detail="this ceremony takes no consent")
        body = await _json(request)
        if body is None or body.get("agree") is not True:
            raise Problem(
                "bad_input", detail="consent needs an explicit agreement: {'agree': true, 'sha256': ...}"
            )
        if body.get("sha256") != document.sha256:
            # The page showed another text than the one in force: the person must read the current one.
            raise Problem("consent", detail="the consent text has changed: read it again")
        agreed = self.tokens.agree(ceremony, document)
        assert agreed.consented_at is not None
        return {"token": self.tokens.seal(agreed), "consented_at": agreed.consented_at.isoformat()}

    async def start(self, request: Request) -> dict[str, Any]:
        ceremony = await self._open(request)
        if ceremony.kind == "enroll" and ceremony.consent_sha256 is None:
            raise ConsentError("agree to the consent document before the enrolment session")
        ticket = await run_in_threadpool(
            lambda: self.verifier.begin_session(
                ceremony.subject_id, purpose=ceremony.kind, actor=f"client:{ceremony.client}"
            )
        )
        bound = replace(ceremony, session_id=ticket.session_id)
        return {
            "token": self.tokens.seal(bound),
            "nonce": ticket.nonce,
            "prompt": ticket.prompt,
            "deadline": ticket.deadline.isoformat(),
            "challenges": ticket.challenges,
            "screen": jsonable_encoder(screen_out(ticket.screen_colour)),
            "websocket": f"{PREFIX}/ws",
            "frames": f"{PREFIX}/frames",
        }

    async def _feed(self, ceremony: Ceremony, frame: bytes) -> dict[str, Any]:
        if ceremony.session_id is None:
            raise InvalidCeremonyTokenError("invalid ceremony token")
        actor = f"client:{ceremony.client}"
        update = await run_in_threadpool(
            lambda: self.verifier.feed_session(ceremony.session_id, frame, actor=actor)
        )
        done, asked = update.progress
        return {
            "state": update.state,
            "prompt": update.prompt,
            "feedback": [f.value for f in update.feedback],
            "progress": [done, asked],
            "finished": update.finished,
            "screen": jsonable_encoder(screen_out(update.screen_colour)),
        }

    async def frame(self, request: Request) -> dict[str, Any]:
        ceremony = await self._open(request, limit=False)
        data = await _body(request, self.config.max_frame_bytes)
        if data is None:
            raise Problem(
                "too_large", detail=f"a frame is an image of at most {self.config.max_frame_bytes} bytes"
            )
        return await self._feed(ceremony, data)

    async def websocket(self, ws: WebSocket) -> None:
        """Binary messages are frames, each answered with the frame's JSON; the first message is
        ``{"token": ...}`` (a browser cannot set headers on a WebSocket)."""
        await ws.accept()
        try:
            hello = json.loads(await asyncio.wait_for(ws.receive_text(), timeout=10))
            given = hello.get("token") if isinstance(hello, dict) else None
            token = given if isinstance(given, str) else ""
            ceremony = self.tokens.open(token)
            if ceremony.session_id is None:
                raise InvalidCeremonyTokenError("invalid ceremony token")
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
                    await ws.send_json({"type": "problem", "problem": _problem(exc).body()})
                    continue
                await ws.send_json({"type": "frame", **update})
        except WebSocketDisconnect:
            return

    async def finish(self, request: Request) -> dict[str, Any]:
        ceremony = await self._open(request)
        if ceremony.session_id is None:
            raise InvalidCeremonyTokenError("invalid ceremony token")
        sid, actor = ceremony.session_id, f"client:{ceremony.client}"
        if ceremony.kind == "enroll":
            consent = self._consent_record(ceremony)
            result = await run_in_threadpool(
                lambda: self.verifier.enroll_session(ceremony.subject_id, sid, consent=consent, actor=actor)
            )
            receipt, _ = self.tokens.receipt(ceremony, "enrolled")
            return {"outcome": "enrolled", "images": result.images, "receipt": receipt}
        decision = await run_in_threadpool(lambda: self.verifier.finish_session(sid, actor=actor))
        outcome: Outcome = "match" if decision.match else "no-match"
        receipt, _ = self.tokens.receipt(ceremony, outcome)
        return {"outcome": outcome, "receipt": receipt}

    def _consent_record(self, ceremony: Ceremony) -> ConsentRecord:
        """The consent evidence: the digest of the text shown, when it was agreed, by whom collected."""
        document = self.config.documents.get(ceremony.purpose)
        if document is None or ceremony.consented_at is None or ceremony.consent_sha256 is None:
            raise ConsentError("no agreement to a consent document was recorded in this ceremony")
        return ConsentRecord(
            subject_id=ceremony.subject_id,
            purpose=ceremony.purpose,
            granted_at=ceremony.consented_at,
            expires_at=ceremony.consented_at + document.retention,
            evidence=ConsentEvidence(
                ceremony.consent_sha256, "browser-checkbox", f"client:{ceremony.client}"
            ),
        )

    def page(self, name: str) -> Callable[[Request], Awaitable[Response]]:
        async def serve(request: Request) -> Response:
            with resources.as_file(_STATIC / name) as path:
                return FileResponse(path, media_type="text/html", headers=_PAGE_HEADERS)

        return serve

    def routes(self) -> list[BaseRoute]:
        return [
            Route(PREFIX, self._handler(self.describe), methods=["GET"]),
            Route(f"{PREFIX}/consent", self._handler(self.consent), methods=["POST"]),
            Route(f"{PREFIX}/session", self._handler(self.start, 201), methods=["POST"]),
            Route(f"{PREFIX}/frames", self._handler(self.frame), methods=["POST"]),
            Route(f"{PREFIX}/finish", self._handler(self.finish), methods=["POST"]),
            WebSocketRoute(f"{PREFIX}/ws", self.websocket),
            # One page for both ceremonies: what it does comes from the token.
            Route("/pages/enroll", self.page("ceremony.html"), methods=["GET"]),
            Route("/pages/login", self.page("ceremony.html"), methods=["GET"]),
            Mount("/pages/static", app=StaticFiles(packages=[("faceverify._web", "static")])),
        ]


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


def install(app: FastAPI, config: PagesConfig | None = None) -> None:
    """Add the browser routes, the pages and (for ``config.origins``) CORS to the service ``app``.

    Called by ``create_app`` unless the pages are switched off; ``config``
    defaults to :meth:`PagesConfig.from_environment`.
    """
    pages = _Pages(state=app.state.faceverify, config=config or PagesConfig.from_environment())
    app.state.fv_pages = pages
    app.router.routes.extend(pages.routes())
    if pages.config.origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(pages.config.origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )


__all__ = ["MAX_FRAME_BYTES", "PREFIX", "PagesConfig", "install", "router"]
