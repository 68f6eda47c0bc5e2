"""Every operation is authenticated (401 without or with a wrong key) and scoped (403).

The operations are read from the app's own OpenAPI schema, so a route added
later without authentication fails here. The refusals are problem+json.
"""

from __future__ import annotations

from typing import Any

import pytest
from service_helpers import Service, consent_body

from faceverify._service._problems import MEDIA_TYPE

#: Which scope each operation needs (the test fails on an operation missing here).
NEEDS: dict[tuple[str, str], set[str]] = {
    ("post", "/v1/subjects/{subject_id}/consent"): {"enroll"},
    ("get", "/v1/subjects/{subject_id}/consent"): {"enroll"},
    ("post", "/v1/subjects/{subject_id}/enrollment"): {"enroll"},
    ("post", "/v1/subjects/{subject_id}/enrollment/live"): {"enroll"},
    ("delete", "/v1/subjects/{subject_id}"): {"revoke"},
    ("post", "/v1/subjects/{subject_id}/verification"): {"verify"},
    ("post", "/v1/sessions"): {"verify", "enroll"},
    ("post", "/v1/sessions/{session_id}/frames"): {"verify", "enroll"},
    ("post", "/v1/sessions/{session_id}/finish"): {"verify", "enroll"},
    ("get", "/metrics"): {"metrics"},
    # The browser ceremonies (docs/browser.md): minting a token, redeeming a receipt.
    ("post", "/v1/ceremonies"): {"verify", "enroll"},
    ("post", "/v1/ceremonies/receipts"): {"verify", "enroll"},
}
UNAUTHENTICATED = {("get", "/healthz"), ("get", "/readyz")}
SCOPES = ("enroll", "verify", "revoke", "metrics")


def operations(service: Service) -> list[tuple[str, str]]:
    schema: dict[str, Any] = service.app.openapi()  # type: ignore[attr-defined]
    return [(method, path) for path, item in schema["paths"].items() for method in item]


def request(service: Service, method: str, path: str, key: str | None) -> Any:
    url = path.replace("{subject_id}", "acct-1").replace("{session_id}", "s1")
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    kwargs: dict[str, Any] = {"headers": headers}
    if path.endswith("/consent") and method == "post":
        kwargs["json"] = consent_body()
    elif path == "/v1/sessions":
        kwargs["json"] = {"subject_id": "acct-1"}
    elif path == "/v1/ceremonies":
        kwargs["json"] = {"ceremony": "verify", "subject_id": "acct-1", "purpose": "app-login"}
    elif path == "/v1/ceremonies/receipts":
        kwargs["json"] = {"receipt": "fvr1.not-a-receipt"}
    elif path.endswith("/frames"):
        kwargs["content"] = b"\xff\xd8not-a-jpeg"
        headers["Content-Type"] = "image/jpeg"
    return service.http().request(method.upper(), url, **kwargs)


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_every_operation_needs_a_valid_key(service: Service) -> None:
    ops = operations(service)
    assert set(ops) == set(NEEDS) | UNAUTHENTICATED, "an operation without a stated scope"
    good = service.key("admin")
    revoked_key = service.key("admin", name="gone")
    service.clients.revoke("gone")
    wrong = [
        None,
        "",
        "fv_nobody_" + "A" * 43,  # well-formed, unknown client
        good[:-1] + ("A" if good[-1] != "A" else "B"),  # known client, wrong secret
        revoked_key,
        "Basic " + good,
    ]
    for method, path in sorted(NEEDS):
        for key in wrong:
            response = request(service, method, path, key)
            assert response.status_code == 401, (method, path, key, response.text)
            assert response.headers["content-type"] == MEDIA_TYPE
            assert response.json()["code"] == "unauthorized"
            assert response.headers["www-authenticate"].startswith("Bearer")
    for method, path in UNAUTHENTICATED:
        assert request(service, method, path, None).status_code in (200, 503)


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_a_key_without_the_scope_is_forbidden_on_every_operation(service: Service) -> None:
    keys = {scope: service.key(scope) for scope in SCOPES}
    for (method, path), needs in sorted(NEEDS.items()):
        for scope, key in keys.items():
            if scope in needs:
                continue
            response = request(service, method, path, key)
            assert response.status_code == 403, (method, path, scope, response.text)
            assert response.json()["code"] == "forbidden"


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_subject_prefixes_bound_a_client(service: Service) -> None:
    key = service.key("enroll", "verify", prefixes=("shop-",))
    http = service.http()
    auth = {"Authorization": f"Bearer {key}"}
    outside = http.post("/v1/subjects/acct-1/consent", json=consent_body(), headers=auth)
    assert outside.status_code == 403 and "prefix" in outside.json()["detail"]
    inside = http.post("/v1/subjects/shop-1/consent", json=consent_body(), headers=auth)
    assert inside.status_code == 201, inside.text
    assert http.post("/v1/sessions", json={"subject_id": "acct-1"}, headers=auth).status_code == 403
