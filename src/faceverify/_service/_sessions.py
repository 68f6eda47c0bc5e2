"""Live sessions over HTTP (and a WebSocket): start, send frames, finish. State lives in the store.

Each call restores the session from ``vault.sessions`` (contract C in the
Verifier), so consecutive frames may land on different workers or hosts. The
server timestamps every frame on arrival; the client's clock is never read.
Send one frame at a time (each answer carries the next prompt): frames of one
session are processed in turn under the session row's lock.
"""

from __future__ import annotations

import functools
import json
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Path, Request, Security, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool

from .._errors import FaceVerifyError
from ._clients import ApiClient, Scope
from ._problems import Problem, problem_for
from ._routes import (
    PROBLEM_RESPONSES,
    Service,
    bearer,
    caller,
    knows_subjects,
    refuse,
    refusing,
    subject,
    verification_out,
)
from ._schemas import FrameOut, ProgressOut, SessionIn, SessionOut, VerificationOut, screen_out

FRAME_TYPES = ("image/jpeg", "image/png", "image/webp")
_FRAME_BODY = {
    "requestBody": {
        "required": True,
        "description": "one camera frame, as the bytes of a JPEG, PNG or WebP image",
        "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in FRAME_TYPES},
    }
}

SessionId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]

router = APIRouter(prefix="/v1/sessions", dependencies=[Security(bearer)], responses=PROBLEM_RESPONSES)


def live_client(request: Request) -> ApiClient:
    """Sessions serve verification and live enrolment: either scope may hold one."""
    client = caller(request)
    if not (client.allows(Scope.VERIFY) or client.allows(Scope.ENROLL)):
        raise Problem("forbidden", detail="live sessions need the 'verify' or 'enroll' scope")
    return client


LiveClient = Annotated[ApiClient, Depends(live_client)]


def frame_out(update: Any) -> FrameOut:
    done, asked = update.progress
    return FrameOut(
        state=update.state,
        prompt=update.prompt,
        feedback=[f.value for f in update.feedback],
        progress=ProgressOut(done=done, asked=asked),
        finished=update.finished,
        screen=screen_out(update.screen_colour),
    )


@router.post("", status_code=201, response_model=SessionOut, tags=["sessions"])
def start_session(body: SessionIn, svc: Service, client: LiveClient) -> SessionOut:
    """Start a live session for one claimed subject: ``verify`` (then ``/finish``) or ``enroll``
    (then ``POST /v1/subjects/{id}/enrollment/live``). A subject that cannot be verified now
    (unknown, locked out...) is refused at once."""
    needed = Scope.VERIFY if body.purpose == "verify" else Scope.ENROLL
    if not client.allows(needed):
        raise Problem("forbidden", detail=f"a {body.purpose} session needs the {needed.value!r} scope")
    sid = subject(client, body.subject_id)
    try:
        ticket = svc.verifier.begin_session(sid, purpose=body.purpose, actor=client.actor)
    except FaceVerifyError as exc:
        svc.metrics.decisions.labels("live", "refused").inc()
        raise refuse(exc, client) from None
    return SessionOut(
        session_id=ticket.session_id,
        nonce=ticket.nonce,
        prompt=ticket.prompt,
        deadline=ticket.deadline,
        challenges=ticket.challenges,
        screen=screen_out(ticket.screen_colour),
    )


@router.post(
    "/{session_id}/frames",
    response_model=FrameOut,
    tags=["sessions"],
    openapi_extra=_FRAME_BODY,
)
async def send_frame(session_id: SessionId, request: Request, svc: Service, client: LiveClient) -> FrameOut:
    """One frame in: the session's state, the current prompt and feedback about this frame."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in FRAME_TYPES:
        raise Problem("unsupported_media_type")
    data = await request.body()
    if not data:
        raise Problem("bad_input", detail="the request body holds no image")
    with refusing(client):
        update = await run_in_threadpool(svc.verifier.feed_session, session_id, data, actor=client.actor)
    svc.metrics.frames.inc()
    return frame_out(update)


@router.post("/{session_id}/finish", response_model=VerificationOut, tags=["sessions"])
def finish_session(session_id: SessionId, svc: Service, client: LiveClient) -> VerificationOut:
    """Decide a verification session, once: refused unless it passed, then one 1:1 comparison."""
    try:
        result = svc.verifier.finish_session(session_id, actor=client.actor)
    except FaceVerifyError as exc:
        svc.metrics.decisions.labels("live", "refused").inc()
        raise refuse(exc, client) from None
    svc.metrics.decisions.labels("live", "match" if result.match else "no_match").inc()
    return verification_out(result, live=True)


@router.websocket("/{session_id}/stream")
async def stream(websocket: WebSocket, session_id: str) -> None:
    """The low-latency variant: binary messages are frames (JPEG/PNG/WebP bytes), each answered
    with a FrameOut JSON text message; the text message ``finish`` answers with the decision
    (VerificationOut) and closes. Errors arrive as problem JSON; the socket then closes (1008).
    Authenticated like every ``/v1`` call (``Authorization: Bearer`` on the handshake)."""
    from fastapi.responses import JSONResponse

    from ._problems import MEDIA_TYPE

    svc = websocket.app.state.faceverify
    client = websocket.scope.get("state", {}).get("fv_client")
    if isinstance(client, ApiClient) and not (client.allows(Scope.VERIFY) or client.allows(Scope.ENROLL)):
        client = Problem("forbidden")
    if not isinstance(client, ApiClient):
        problem = client if isinstance(client, Problem) else Problem("unauthorized")
        denial = JSONResponse(problem.body(), status_code=problem.status, media_type=MEDIA_TYPE)
        await websocket.send_denial_response(denial)
        return
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            try:
                frame = message.get("bytes")
                if frame:
                    update = await anyio.to_thread.run_sync(
                        functools.partial(svc.verifier.feed_session, session_id, frame, actor=client.actor)
                    )
                    svc.metrics.frames.inc()
                    await websocket.send_text(frame_out(update).model_dump_json())
                elif (message.get("text") or "").strip() == "finish":
                    result = await anyio.to_thread.run_sync(
                        functools.partial(svc.verifier.finish_session, session_id, actor=client.actor)
                    )
                    svc.metrics.decisions.labels("live", "match" if result.match else "no_match").inc()
                    await websocket.send_text(verification_out(result, live=True).model_dump_json())
                    await websocket.close()
                    return
                else:
                    raise Problem("bad_input", detail="send frames as binary messages, or the text 'finish'")
            except (FaceVerifyError, Problem) as exc:
                problem = (
                    exc
                    if isinstance(exc, Problem)
                    else problem_for(exc, knows_subjects=knows_subjects(client))
                )
                await websocket.send_text(json.dumps(problem.body()))
                await websocket.close(code=1008)
                return
    except WebSocketDisconnect:
        return
