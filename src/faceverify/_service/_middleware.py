"""Every request to ``/v1`` is authenticated and rate-limited before routing; every request is measured.

Authentication comes first, before the body is parsed or the path validated, so
without a valid key every operation answers 401 the same way (whatever else is
wrong with the request). Bodies over ``max_body_bytes`` are refused (413)
while they stream in, never buffered whole.
"""

from __future__ import annotations

import json
import time
from typing import Any

import anyio.to_thread
from starlette._utils import get_route_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._errors import FaceVerifyError
from ._problems import MEDIA_TYPE, Problem, problem_for
from ._ratelimit import RateLimitExceeded
from ._state import ServiceState

PROTECTED = ("/v1/", "/metrics")


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


def _source(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


async def send_problem(send: Send, problem: Problem, instance: str | None = None) -> None:
    body = json.dumps(problem.body(instance)).encode()
    headers = [(b"content-type", MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in problem.headers().items()]
    await send({"type": "http.response.start", "status": problem.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _TooLargeError(Exception):
    pass


class ServiceMiddleware:
    def __init__(self, app: ASGIApp, state: ServiceState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = get_route_path(scope)
        if scope["type"] == "websocket":
            if path.startswith(PROTECTED):
                scope.setdefault("state", {})["fv_client"] = await self._authenticate(scope, websocket=True)
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        sent = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status, sent = int(message["status"]), True
            await send(message)

        try:
            if path.startswith(PROTECTED):
                result = await self._authenticate(scope, websocket=False)
                if isinstance(result, Problem):
                    await send_problem(send_wrapper, result)
                    return
                scope.setdefault("state", {})["fv_client"] = result
            limit = self.state.config.max_body_bytes
            length = dict(scope.get("headers", ())).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > limit:
                await send_problem(send_wrapper, Problem("too_large", detail=f"at most {limit} bytes"))
                return
            received = 0

            async def limited_receive() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit:
                        raise _TooLargeError
                return message

            try:
                await self.app(scope, limited_receive, send_wrapper)
            except _TooLargeError:
                if not sent:
                    await send_problem(send_wrapper, Problem("too_large", detail=f"at most {limit} bytes"))
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.state.metrics.observe(template, scope["method"], status, time.perf_counter() - started)

    async def _authenticate(self, scope: Scope, *, websocket: bool) -> Any:
        """The request's client, or the Problem to answer with (401, 429, 503)."""
        key = _bearer(scope)
        source = _source(scope)
        try:
            client = await anyio.to_thread.run_sync(self.state.clients.authenticate, key)
            await anyio.to_thread.run_sync(
                lambda: self.state.limiter.hit(client=client.client_id if client else None, source=source)
            )
        except RateLimitExceeded as exc:
            return Problem("rate_limited", retry_after=exc.retry_after)
        except FaceVerifyError as exc:
            return problem_for(exc, knows_subjects=False)
        if client is None:
            return Problem("unauthorized")
        return client
