"""The ASGI application: ``create_app()`` for mounting into an existing app or running standalone.

FastAPI (on Starlette) was chosen over bare Starlette for one reason that
matters here: the request and response models *are* the OpenAPI schema
(``docs/openapi.json``), so the schema schemathesis checks the running app
against cannot drift from the code. The routes stay thin either way.

Standalone, ``faceverify serve`` runs it with uvicorn (``app_from_environment``
is the factory each worker calls). Mounted::

    from faceverify._service import ServiceConfig, create_app
    host_app.mount("/faceverify", create_app(ServiceConfig(database=URL), verifier=my_verifier))

A mounted app's lifespan does not run, so the models load on the first request
that needs them unless a ready ``verifier`` is passed.

**Pages hook** (for the web helper): with ``pages=True`` and a module
``faceverify._service._pages`` present, its ``router`` is included and its
``install(app)``, if defined, is called (e.g. to mount static files).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from .._errors import FaceVerifyError
from ._clients import Scope
from ._config import ServiceConfig
from ._db import ServiceDatabase
from ._metrics import CONTENT_TYPE
from ._middleware import ServiceMiddleware
from ._problems import MEDIA_TYPE, Problem, problem_for
from ._routes import PROBLEM_RESPONSES, bearer, health, knows_subjects, require, router
from ._state import ServiceState

if TYPE_CHECKING:
    from .._verifier import Verifier

log = logging.getLogger("faceverify.service")
CONFIG_ENV = "FACEVERIFY_SERVICE_CONFIG_JSON"


def _problem_response(problem: Problem, request: Request) -> JSONResponse:
    return JSONResponse(
        problem.body(),
        status_code=problem.status,
        media_type=MEDIA_TYPE,
        headers=problem.headers(),
    )


def create_app(
    config: ServiceConfig,
    *,
    verifier: Verifier | None = None,
    database: ServiceDatabase | None = None,
    pages: bool = True,
    preload: bool = True,
) -> FastAPI:
    """The service on ``config.database``; ``verifier`` (optional) is used instead of opening one."""
    state = ServiceState(config, verifier=verifier, database=database)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if preload:
            await run_in_threadpool(lambda: state.verifier)
        yield

    from .. import __version__

    app = FastAPI(
        title="faceverify",
        version=__version__,
        summary="Consent-based 1:1 face verification: enrol, live verify, revoke. No search.",
        lifespan=lifespan,
    )
    app.state.faceverify = state

    @app.exception_handler(Problem)
    async def on_problem(request: Request, exc: Problem) -> JSONResponse:
        return _problem_response(exc, request)

    @app.exception_handler(FaceVerifyError)
    async def on_library_error(request: Request, exc: FaceVerifyError) -> JSONResponse:
        client = getattr(request.state, "fv_client", None)
        problem = problem_for(exc, knows_subjects=client is not None and knows_subjects(client))
        return _problem_response(problem, request)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Field locations and messages only: never echo the submitted values.
        where = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in exc.errors()
        )
        return _problem_response(Problem("bad_input", detail=where[:500]), request)

    @app.exception_handler(HTTPException)
    async def on_http(request: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
            exc.status_code, "bad_input"
        )
        return _problem_response(Problem(code), request)

    @app.exception_handler(Exception)
    async def on_bug(request: Request, exc: Exception) -> JSONResponse:
        # The type and where, never the message (it may hold data); the traceback at debug level.
        log.error("unhandled %s on %s", type(exc).__name__, request.url.path)
        log.debug("traceback", exc_info=exc)
        return _problem_response(Problem("error"), request)

    app.include_router(health)
    app.include_router(router)
    from ._sessions import router as sessions_router

    app.include_router(sessions_router)

    @app.get(
        "/metrics",
        tags=["health"],
        dependencies=[Depends(bearer)],
        responses={**PROBLEM_RESPONSES, 200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}}},
        response_class=Response,
    )
    def metrics(client: Any = Depends(require(Scope.METRICS))) -> Response:  # noqa: B008
        """Prometheus metrics (a key with the ``metrics`` scope): counts and latencies, nothing biometric."""
        return Response(state.metrics.render(), media_type=CONTENT_TYPE)

    if pages and config.pages:
        try:
            module = importlib.import_module("faceverify._service._pages")
        except ModuleNotFoundError as exc:
            if exc.name != "faceverify._service._pages":
                raise
        else:
            app.include_router(module.router)
            install = getattr(module, "install", None)
            if install is not None:
                install(app)

    app.add_middleware(ServiceMiddleware, state=state)
    return app


def app_from_environment() -> FastAPI:
    """The factory uvicorn calls in each worker process (``faceverify serve``)."""
    text = os.environ.get(CONFIG_ENV)
    config = ServiceConfig.from_json(text) if text else ServiceConfig.load()
    return create_app(config)
