"""The service the browser tests drive: the ceremony routes and pages over a real Verifier.

``build_app`` is what ``faceverify serve`` assembles, with the test-only fixed
challenge sequence, and an API key held by the test (standing in for the
embedding app's backend).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request

from faceverify._liveness._challenge import Challenge
from faceverify._service._pages import PagesConfig, pages_app
from faceverify._vault import MasterKey, Vault
from faceverify._verifier import Verifier
from faceverify._web import default_consent_documents


def build_app(folder: Path, pipeline: Any, pack: Any, *, challenges: Sequence[str]) -> tuple[Any, str]:
    vault = Vault.open(folder, MasterKey.generate(), purpose="app-login")
    verifier = Verifier(pipeline=pipeline, pack=pack, vault=vault, profile="app-login")
    api_key = secrets.token_urlsafe(24)

    async def authenticate(request: Request, scope: str) -> str:
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not secrets.compare_digest(given, api_key):
            raise HTTPException(401, "unknown API key")
        return "demo-app"

    config = PagesConfig(
        documents=default_consent_documents("Example Corp"),
        challenges=tuple(Challenge(c) for c in challenges),
    )
    return pages_app(verifier, config=config, authenticate=authenticate), api_key
