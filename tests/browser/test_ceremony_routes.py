"""The ceremony routes over HTTP, without a browser: who may mint, what a token allows, what is refused.

The real service app (``create_app``, pages on) over a real Verifier and vault;
requests through Starlette's test client.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from page_server import build_app, environment
from starlette.testclient import TestClient

from faceverify._errors import ConfigurationError
from faceverify._service import ServiceConfig, create_app, open_service_database
from faceverify._service._pages import PagesConfig
from faceverify._vault import MasterKey, Vault


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, pipeline: object, pack: object) -> tuple[Any, str]:
    built, key, _ = build_app(
        tmp_path_factory.mktemp("routes"),
        pipeline,
        pack,
        challenges=("turn-left",),
        origins=["https://app.example"],
    )
    return built, key


def mint(http: TestClient, key: str, **body: Any) -> Any:
    body = {"ceremony": "enroll", "subject_id": "alice", "purpose": "app-login", **body}
    return http.post("/v1/ceremonies", json=body, headers={"Authorization": f"Bearer {key}"})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_only_a_scoped_client_mints_and_only_within_its_prefixes(app: tuple[Any, str]) -> None:
    built, key = app
    http = TestClient(built, raise_server_exceptions=False)
    clients = built.state.faceverify.clients
    _, revoke_only = clients.create("revoker", scopes=["revoke"])
    _, verify_only = clients.create("login-only", scopes=["verify"], prefixes=["shop-"])
    assert mint(http, "fv_nobody_" + "x" * 43).status_code == 401
    assert mint(http, revoke_only).status_code == 403
    assert mint(http, verify_only).status_code == 403  # verify scope, enrol ceremony
    assert mint(http, verify_only, ceremony="verify").status_code == 403  # outside its prefixes
    assert mint(http, verify_only, ceremony="verify", subject_id="shop-7").status_code == 201
    r = mint(http, key, purpose="door-access-2")  # no consent document for that purpose
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
    assert mint(http, key, return_url="https://evil.example/x").status_code == 400
    ok = mint(http, key, return_url="https://app.example/done")
    assert ok.status_code == 201 and ok.json()["page"] == "/pages/enroll#token=" + ok.json()["token"]


def test_a_token_allows_its_ceremony_steps_in_order_and_nothing_else(app: tuple[Any, str]) -> None:
    built, key = app
    http = TestClient(built, raise_server_exceptions=False)
    token = mint(http, key).json()["token"]
    assert http.get("/ceremony/v1").status_code == 401
    assert http.get("/ceremony/v1", headers=bearer(key)).status_code == 401  # an API key is no token
    info = http.get("/ceremony/v1", headers=bearer(token)).json()
    assert info["ceremony"] == "enroll" and info["subject_id"] == "alice" and not info["consented"]
    sha = info["consent"]["sha256"]
    assert "Purpose: app-login" in info["consent"]["text"] and info["consent"]["retention_days"] == 365
    # No session before agreement; no agreement without the tick, or to another text.
    assert http.post("/ceremony/v1/session", headers=bearer(token)).status_code == 409
    assert http.post("/ceremony/v1/consent", headers=bearer(token), json={"sha256": sha}).status_code == 400
    wrong = http.post("/ceremony/v1/consent", headers=bearer(token), json={"agree": True, "sha256": "0" * 64})
    assert wrong.status_code == 422 and wrong.json()["code"] == "consent"
    agreed = http.post("/ceremony/v1/consent", headers=bearer(token), json={"agree": True, "sha256": sha})
    assert agreed.status_code == 200
    consented = agreed.json()["token"]
    # Frames and finish need a token bound to a session.
    assert http.post("/ceremony/v1/frames", headers=bearer(consented), content=b"x").status_code == 401
    assert http.post("/ceremony/v1/finish", headers=bearer(consented)).status_code == 401
    started = http.post("/ceremony/v1/session", headers=bearer(consented))
    assert started.status_code == 201 and started.json()["challenges"] == 1
    session = started.json()["token"]
    frame = http.post("/ceremony/v1/frames", headers=bearer(session), content=b"\xff\xd8 not a jpeg")
    assert frame.status_code == 400 and frame.json()["code"] == "bad_input"
    # Finishing now: the session has not passed, so nothing is enrolled (the person may retry).
    unfinished = http.post("/ceremony/v1/finish", headers=bearer(session))
    assert unfinished.status_code == 422 and unfinished.json()["code"] == "not_live"
    assert "reasons" not in unfinished.json()  # no liveness detail to the browser


def test_a_verification_for_someone_not_enrolled_is_refused_at_once_without_saying_why(
    app: tuple[Any, str],
) -> None:
    built, key = app
    http = TestClient(built, raise_server_exceptions=False)
    token = mint(http, key, ceremony="verify", subject_id="nobody").json()["token"]
    r = http.post("/ceremony/v1/session", headers=bearer(token))
    assert r.status_code == 409 and r.json()["code"] == "not_verifiable" and "detail" not in r.json()


def test_receipts_are_redeemed_by_their_client_only(app: tuple[Any, str]) -> None:
    built, key = app
    http = TestClient(built, raise_server_exceptions=False)
    _, other = built.state.faceverify.clients.create("other-app", scopes=["verify"])
    pages = built.state.fv_pages
    _, ceremony = pages.tokens.mint(client="demo-app", subject_id="alice", kind="verify", purpose="app-login")
    receipt, _ = pages.tokens.receipt(ceremony, "match")
    assert (
        http.post("/v1/ceremonies/receipts", json={"receipt": receipt}, headers=bearer(other)).status_code
        == 401
    )
    mine = http.post("/v1/ceremonies/receipts", json={"receipt": receipt}, headers=bearer(key))
    assert (
        mine.status_code == 200 and mine.json()["outcome"] == "match" and mine.json()["subject_id"] == "alice"
    )


def test_the_page_is_served_with_a_strict_policy_and_the_module_cross_origin(app: tuple[Any, str]) -> None:
    http = TestClient(app[0], raise_server_exceptions=False)
    page = http.get("/pages/login")
    assert page.status_code == 200 and "static/page.js" in page.text and "<script>" not in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer" and page.headers["cache-control"] == "no-store"
    module = http.get("/pages/static/faceverify.js", headers={"Origin": "https://app.example"})
    assert (
        module.status_code == 200 and module.headers["access-control-allow-origin"] == "https://app.example"
    )
    stranger = http.get("/pages/static/faceverify.js", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in stranger.headers


def test_the_pages_can_be_switched_off(tmp_path: Path) -> None:
    config = ServiceConfig.load({"database": str(tmp_path / "vault")}, environ={"FACEVERIFY_PAGES": "false"})
    assert config.pages is False
    vault = tmp_path / "vault"
    Vault.open(
        f"sqlite:///{vault}",
        MasterKey.generate(),
        keys_database=f"sqlite:///{tmp_path / 'keys'}",
        create=True,
    )
    db = open_service_database(vault)
    off = TestClient(create_app(config, database=db, preload=False), raise_server_exceptions=False)
    assert off.get("/pages/login").status_code == 404 and off.get("/ceremony/v1").status_code == 404
    with pytest.raises(ConfigurationError):
        ServiceConfig.load({"database": str(tmp_path)}, environ={"FACEVERIFY_PAGES": "maybe"})
    from faceverify._cli._main import build_parser

    assert build_parser().parse_args(["serve", "--no-pages"]).pages is False
    db.close()


def test_page_settings_are_checked() -> None:
    with environment(FACEVERIFY_PAGES_ORIGINS="app.example"), pytest.raises(ConfigurationError):
        PagesConfig.from_environment()
    with environment(FACEVERIFY_PAGES_CONSENT_DAYS="soon"), pytest.raises(ConfigurationError):
        PagesConfig.from_environment()
    config = PagesConfig.from_environment({"FACEVERIFY_PAGES_CONTROLLER": "Shop Ltd"})
    assert "Asked by: Shop Ltd" in config.documents["app-login"].text
