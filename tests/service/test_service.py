"""The service end to end on real models and a real vault (SQLite and PostgreSQL).

Consent, enrolment from images, live sessions (HTTP and WebSocket), the still-image
rule, erasure with its receipt, and what a verify-only client may learn.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from liveness_frames import Poser
from PIL import Image
from service_helpers import CHALLENGES, STEP, Service, answer, consent_body, jpeg, open_service

from faceverify.client import Client, ServiceError


def enrol(svc: Service, subject: str, samples: dict[str, Path], purpose: str = "app-login") -> Client:
    """``subject`` enrolled from two photos of one person; returns the enrolling client."""
    enroller = svc.client(svc.key("enroll", "revoke", name=f"enroller-{subject}"))
    http = svc.http()
    auth = {"Authorization": f"Bearer {svc.clients.create(f'raw-{subject}', scopes=['enroll'])[1]}"}
    given = http.post(f"/v1/subjects/{subject}/consent", json=consent_body(purpose), headers=auth)
    assert given.status_code == 201 and given.json()["state"] == "pending", given.text
    assert enroller.consent(subject).state == "pending"
    images = [samples["obama"].read_bytes(), samples["obama2"].read_bytes()]
    result = enroller.enroll(subject, images)
    assert result.images == 2 and not result.replaced
    consent = enroller.consent(subject)
    assert consent.state == "active" and consent.purpose == purpose
    return enroller


def live(svc: Service, client: Client, subject: str, poser: Poser):  # type: ignore[no-untyped-def]
    ticket = client.start_session(subject)
    assert ticket.challenges == len(CHALLENGES) and ticket.prompt == "look straight at the camera"
    updates = svc.frames(client, ticket.session_id, answer(poser, CHALLENGES))
    assert updates[-1].finished and updates[-1].state == "passed", updates  # type: ignore[attr-defined]
    return client.finish_session(ticket.session_id)


def test_enrol_then_a_live_session_decides_and_erasure_gives_a_receipt(
    service: Service, samples: dict[str, Path], obama3: Poser, biden: Poser
) -> None:
    enroller = enrol(service, "acct-1", samples)
    verify = service.client(service.key("verify"))
    decision = live(service, verify, "acct-1", obama3)
    assert decision.match and decision.live and decision.operating_point == "default"
    assert decision.fmr is not None and decision.fmr <= 1e-4
    assert {"baseline", "challenge:turn-right", "challenge:turn-left"} <= set(decision.checks)
    impostor = live(service, verify, "acct-1", biden)
    assert not impostor.match
    receipt = enroller.revoke("acct-1")
    assert receipt.template_erased and receipt.keys_destroyed >= 1
    with pytest.raises(ServiceError) as refused:
        verify.start_session("acct-1")
    assert refused.value.code == "not_verifiable"
    with pytest.raises(ServiceError) as told:
        enroller.consent("acct-1")
    assert told.value.code == "revoked" and told.value.status == 410


def test_a_passing_session_sent_again_is_refused_as_not_live(
    service: Service, samples: dict[str, Path], obama3: Poser
) -> None:
    """A digital replay over HTTP: the very frames of a passing session, in a new session
    (the service's workers share nothing but the vault, where the session is remembered)."""
    enrol(service, "acct-r", samples)
    verify = service.client(service.key("verify"))
    frames = answer(obama3, CHALLENGES)
    for attempt in ("first", "replay"):
        ticket = verify.start_session("acct-r")
        updates = service.frames(verify, ticket.session_id, frames)
        assert updates[-1].state == "passed"  # type: ignore[attr-defined]
        if attempt == "first":
            assert verify.finish_session(ticket.session_id).match
            continue
        with pytest.raises(ServiceError) as refused:
            verify.finish_session(ticket.session_id)
        assert refused.value.code == "not_live" and refused.value.status == 422
        assert refused.value.reasons == ()  # a verify-only client learns no reason
    last = list(service.verifier.vault.audit.entries(subject="acct-r"))[-1]
    assert last.outcome == "refused" and "frames of an earlier passing session" in last.reason


def test_a_session_is_decided_once_and_an_unfinished_one_is_refused(
    service: Service, samples: dict[str, Path], obama3: Poser
) -> None:
    enrol(service, "acct-2", samples)
    verify = service.client(service.key("verify"))
    ticket = verify.start_session("acct-2")
    service.frames(verify, ticket.session_id, answer(obama3, CHALLENGES)[:3])
    with pytest.raises(ServiceError) as unfinished:
        verify.finish_session(ticket.session_id)
    assert unfinished.value.code == "not_live" and unfinished.value.status == 422
    with pytest.raises(ServiceError) as again:
        verify.finish_session(ticket.session_id)
    assert again.value.code == "unknown_session"
    # Another client cannot drive someone else's session: the same opaque answer.
    ticket = verify.start_session("acct-2")
    other = service.client(service.key("verify", name="other-app"))
    with pytest.raises(ServiceError) as foreign:
        other.send_frame(ticket.session_id, jpeg(obama3.frame()))
    assert foreign.value.code == "unknown_session"


def test_a_still_image_of_an_app_login_subject_is_refused_whatever_the_request_says(
    database: tuple[str, str], master_key: object, pipeline: object, samples: dict[str, Path]
) -> None:
    # Even a service whose own profile would take stills: the subject's consent purpose decides.
    svc = open_service(database, master_key, pipeline, profile="photo-check")  # type: ignore[arg-type]
    enrol(svc, "acct-3", samples, purpose="app-login")
    http = svc.http()
    for scopes in (["verify"], ["admin"]):
        auth = {"Authorization": f"Bearer {svc.key(*scopes, name='v-' + scopes[0])}"}
        for extra in ({}, {"profile": "photo-check", "live": "true", "liveness": "false"}):
            response = http.post(
                "/v1/subjects/acct-3/verification",
                params=extra,
                data=extra,
                files={"image": ("x.jpg", samples["obama3"].read_bytes(), "image/jpeg")},
                headers=auth,
            )
            assert response.status_code in (409, 422), response.text
            assert response.json()["code"] == ("not_live" if scopes == ["admin"] else "not_verifiable")
            assert "match" not in response.json()


def test_a_verify_only_client_learns_nothing_about_who_is_enrolled(
    service: Service, samples: dict[str, Path]
) -> None:
    enroller = enrol(service, "acct-4", samples)
    enrol(service, "acct-5", samples)
    enroller.revoke("acct-5")
    http = service.http()
    auth = {"Authorization": f"Bearer {service.key('verify')}"}
    answers = []
    for subject in ("acct-4", "acct-5", "nobody-here"):
        started = http.post("/v1/sessions", json={"subject_id": subject}, headers=auth)
        still = http.post(
            f"/v1/subjects/{subject}/verification",
            files={"image": ("x.jpg", samples["obama3"].read_bytes(), "image/jpeg")},
            headers=auth,
        )
        answers.append((started.status_code, started.json(), still.status_code, still.json()))
    # acct-4 is enrolled and may start a session; revoked and unknown look alike.
    assert answers[0][0] == 201
    assert answers[1] == answers[2], answers
    assert answers[1][:2] == (409, answers[1][1]) and answers[1][1]["code"] == "not_verifiable"
    assert "detail" not in answers[1][1]
    # This service's profile (app-login) takes no still at all: the same refusal for everyone.
    assert {(a[2], a[3]["code"]) for a in answers} == {(422, "not_live")}, answers


def test_frames_in_png_and_webp_and_feedback_for_a_frame_without_a_face(
    service: Service, samples: dict[str, Path], obama3: Poser
) -> None:
    import io

    enrol(service, "acct-6", samples)
    http = service.http()
    auth = {"Authorization": f"Bearer {service.key('verify')}"}
    sid = http.post("/v1/sessions", json={"subject_id": "acct-6"}, headers=auth).json()["session_id"]
    for fmt, media in (("PNG", "image/png"), ("WEBP", "image/webp")):
        out = io.BytesIO()
        Image.fromarray(obama3.frame()).save(out, format=fmt)
        service.clock.advance(STEP)
        r = http.post(
            f"/v1/sessions/{sid}/frames", content=out.getvalue(), headers={**auth, "Content-Type": media}
        )
        assert r.status_code == 200, r.text
    blank = jpeg(obama3.frame()[:64, :64] * 0)
    r = http.post(f"/v1/sessions/{sid}/frames", content=blank, headers={**auth, "Content-Type": "image/jpeg"})
    assert r.status_code == 200 and "no-face" in r.json()["feedback"], r.text
    r = http.post(
        f"/v1/sessions/{sid}/frames", content=b"hello", headers={**auth, "Content-Type": "text/plain"}
    )
    assert r.status_code == 415 and r.json()["code"] == "unsupported_media_type"
    r = http.post(
        f"/v1/sessions/{sid}/frames", content=b"\xff\xd8junk", headers={**auth, "Content-Type": "image/jpeg"}
    )
    assert r.status_code == 400 and r.json()["code"] == "bad_input"


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_the_websocket_variant_runs_a_session_to_its_decision(
    service: Service, samples: dict[str, Path], obama3: Poser
) -> None:
    import json

    enrol(service, "acct-7", samples)
    key = service.key("verify")
    auth = {"Authorization": f"Bearer {key}"}
    http = service.http()
    sid = http.post("/v1/sessions", json={"subject_id": "acct-7"}, headers=auth).json()["session_id"]
    with http.websocket_connect(f"/v1/sessions/{sid}/stream", headers=auth) as ws:
        for frame in answer(obama3, CHALLENGES):
            service.clock.advance(STEP)
            ws.send_bytes(jpeg(frame))
            update = json.loads(ws.receive_text())
        assert update["finished"] and update["state"] == "passed"
        ws.send_text("finish")
        decision = json.loads(ws.receive_text())
    assert decision["match"] and decision["live"]
    from starlette.testclient import WebSocketDenialResponse

    with (
        pytest.raises(WebSocketDenialResponse) as denied,
        http.websocket_connect(f"/v1/sessions/{sid}/stream"),
    ):
        pass
    assert denied.value.status_code == 401


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_metrics_count_by_route_template_and_name_no_subject(
    service: Service, samples: dict[str, Path]
) -> None:
    enrol(service, "secret-subject-9", samples)
    text = service.http().get("/metrics", headers={"Authorization": f"Bearer {service.key('metrics')}"}).text
    assert 'route="/v1/subjects/{subject_id}/enrollment"' in text
    assert "faceverify_http_request_duration_seconds_bucket" in text
    assert "secret-subject-9" not in text


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_health_and_readiness(service: Service) -> None:
    http = service.http()
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["models"] and ready.json()["database"]
    assert ready.json()["test_fixed_challenges"] is False  # fixed here through the Verifier, not config
