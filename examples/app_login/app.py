"""A demo app's selfie login with faceverify: the whole backend (run: uvicorn app:app).

FACEVERIFY_URL is the service; FACEVERIFY_API_KEY a client key with the verify scope. The key
stays here, on the server: the browser only ever holds a ceremony token for one login.
"""

import os
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Route

FV, KEY = os.environ["FACEVERIFY_URL"], os.environ["FACEVERIFY_API_KEY"]
fv = httpx.AsyncClient(base_url=FV, headers={"Authorization": f"Bearer {KEY}"})
used: set[str] = set()  # ceremonies already logged in with (a real app: its database)


async def start(request: Request) -> JSONResponse:  # "log in as USER": a token for that ceremony
    user = (await request.json())["user"]
    r = await fv.post("/v1/ceremonies", json={"ceremony": "verify", "subject_id": user, "purpose": "app-login"})
    return JSONResponse({"token": r.json().get("token"), "service": FV}, status_code=r.status_code)


async def finish(request: Request) -> JSONResponse:  # the page brings back the service's sealed receipt
    r = await fv.post("/v1/ceremonies/receipts", json={"receipt": (await request.json())["receipt"]})
    done = r.json() if r.status_code == 200 else {}
    ok = done.get("outcome") == "match" and done["ceremony_id"] not in used
    used.add(done.get("ceremony_id", ""))
    return JSONResponse({"logged_in": ok, "user": done.get("subject_id") if ok else None})  # + your session


page = Path(__file__).with_name("index.html")
app = Starlette(routes=[Route("/", lambda _: FileResponse(page)), Route("/login/start", start, methods=["POST"]),
                        Route("/login/finish", finish, methods=["POST"])])
