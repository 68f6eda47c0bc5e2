"""The screen-light challenge over HTTP: every answer carries the colour to show; frames that do
not follow it are refused with the screen-light reason.

The frames are a real sample photo moved by the depth warp, lit with the SIMULATED screen light
of ``tests/liveness/screen_light_frames.py`` (reflected light ∝ skin albedo × screen colour ×
strength, sensor noise, JPEG): each frame reflects the colour of the answer to the frame before
(what the browser page does). The fixed challenges and the animation checks off are the service
tests' test-only settings (``service_helpers.open_service``: the frames are a warped photo).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from screen_light_frames import lit
from service_helpers import CHALLENGES, Poser, Service, answer, jpeg, open_service

from faceverify._liveness import ScreenColour, ScreenLightPolicy
from faceverify._service import ServiceConfig
from faceverify._vault import ConsentEvidence, ConsentRecord, MasterKey
from faceverify.client import Client, ServiceError
from faceverify.hazmat import FacePipeline

STEP = timedelta(milliseconds=100)
BY_HEX = {c.hex: c for c in ScreenColour}


@pytest.fixture
def lit_service(tmp_path: Path, pipeline: FacePipeline, samples: dict[str, Path]) -> Service:
    for folder in ("vault", "keys"):
        (tmp_path / folder).mkdir()
    database = f"sqlite://{tmp_path / 'vault' / 'vault.db'}", f"sqlite://{tmp_path / 'keys' / 'keys.db'}"
    svc = open_service(database, MasterKey.generate(), pipeline)
    # What ServiceConfig(screen_light=True) does to a verifier the service builds (see below).
    svc.verifier.challenge_policy = replace(svc.verifier.challenge_policy, screen_light=ScreenLightPolicy())
    now = svc.clock.now()
    evidence = ConsentEvidence(hashlib.sha256(b"test release").hexdigest(), "signed-document", "test")
    consent = ConsentRecord("acct-l", "app-login", now, now + timedelta(days=30), evidence)
    svc.verifier.enroll("acct-l", [samples["obama"], samples["obama2"]], consent=consent)
    return svc


def session(svc: Service, client: Client, poser: Poser, *, follow: bool) -> tuple[str, list[str | None]]:
    """Answer the fixed turns, then look at the camera until the session ends; each frame lit by the
    colour of the answer before it (``follow``) or by nothing. The colours the service asked for."""
    ticket = client.start_session("acct-l")
    asked = [ticket.screen]
    rest = [poser.frame() for _ in range(4)]
    frames = answer(poser, CHALLENGES)
    noise = np.random.default_rng(5)
    for k in range(200):
        frame = frames[k] if k < len(frames) else rest[k % len(rest)]
        colour = BY_HEX[asked[-1]] if follow and asked[-1] is not None else None
        svc.clock.advance(STEP)
        update = client.send_frame(ticket.session_id, jpeg(lit(frame, colour, 0.25, rng=noise)))
        asked.append(update.screen)
        if update.finished:
            break
    return ticket.session_id, asked


def test_each_answer_carries_the_colour_and_a_face_following_it_passes(
    lit_service: Service, obama3: Poser
) -> None:
    client = lit_service.client(lit_service.key("verify", "enroll"))
    sid, asked = session(lit_service, client, obama3, follow=True)
    shown = [c for c in asked if c is not None]
    assert len(shown) == len(asked) - 1 and asked[-1] is None  # a colour with every answer until the end
    assert all(c in BY_HEX for c in shown) and len(set(shown)) >= 3
    decision = client.finish_session(sid)
    assert decision.live and decision.match
    assert "screen-light" in decision.checks


def test_a_session_whose_frames_do_not_follow_the_colours_is_refused_with_the_screen_light_reason(
    lit_service: Service, obama3: Poser
) -> None:
    # A client that enrols learns the refusal's reasons (a verify-only one gets only the code).
    client = lit_service.client(lit_service.key("verify", "enroll"))
    sid, _ = session(lit_service, client, obama3, follow=False)
    with pytest.raises(ServiceError) as refused:
        client.finish_session(sid)
    assert refused.value.code == "not_live" and refused.value.status == 422
    assert any(r.startswith("screen-light:") for r in refused.value.reasons), refused.value.reasons


def test_the_service_setting_turns_the_screen_light_on() -> None:
    assert not ServiceConfig.load(environ={}).screen_light
    assert ServiceConfig.load(environ={"FACEVERIFY_SCREEN_LIGHT": "true"}).screen_light
    with pytest.raises(Exception, match="screen_light must be true or false"):
        ServiceConfig.load(environ={"FACEVERIFY_SCREEN_LIGHT": "maybe"})
