"""Consent, live enrolment and live login in a real headless Chromium, against the real service.

Chromium's fake camera plays videos made at test time from real photos (see
``videos.py``): alice enrols from one photo of a person, answers the login
challenge with another photo of that person and matches; mallory, someone
else, does not; a denied camera shows its message. The service fixes the
challenge sequence (test-only configuration) so the recording can answer it —
the liveness strength itself is tested in tests/liveness; this proves the
browser flow. Configured for these tests only (``page_server.build_app``): the
liveness helper's animation checks are OFF, because the test videos are warped
photos, which is exactly what those checks refuse; so is the replay memory,
because alice's video plays to two logins, the second a replay of the first
(the memory's refusal over HTTP is tested in tests/service); and the challenges' time
limits are widened, because a loaded CI machine may answer one frame a second.
The other checks stay on: one face throughout, motion, the responses, the
passive presentation-attack check. Screenshots of each state are written to build/browser/.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import pytest
from chromium import chromium
from page_server import CHALLENGES, SCREENSHOTS, Service
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

FINAL = (
    "match",
    "no-match",
    "enrolled",
    "retry",
    "locked-out",
    "refused",
    "expired",
    "camera-denied",
    "no-camera",
    "connection-lost",
    "error",
)


def state(driver: Any) -> str:
    """The widget's state (``data-state`` on the ``.fv`` root), "" before it is there."""
    found = driver.find_elements(By.CSS_SELECTOR, ".fv")
    value: str = (found[0].get_attribute("data-state") or "") if found else ""
    return value


def wait_state(driver: Any, wanted: tuple[str, ...], timeout: float = 60) -> str:
    try:
        WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: state(d) in wanted)
    except TimeoutException:
        driver.save_screenshot(str(SCREENSHOTS / "timeout.png"))
        raise AssertionError(f"state {state(driver)!r}, not {wanted}; browser log:\n{logs(driver)}") from None
    return state(driver)


def logs(driver: Any) -> str:
    return "\n".join(str(e.get("message")) for e in driver.get_log("browser"))


def result_text(driver: Any) -> str:
    text: str = driver.find_element(By.CSS_SELECTOR, ".fv-result").text
    return text


def receipt_of(driver: Any) -> str:
    """The receipt the page resolved with (the served pages keep the last outcome on the element)."""
    value: str = driver.execute_script("return window.__fvOutcome && window.__fvOutcome.receipt")
    return value


def run_login(
    service: Service,
    video: Path,
    subject: str,
    shots: Path,
    name: str,
    *,
    width: int = 900,
    transport: str = "websocket",
) -> tuple[str, str, str]:
    token = service.mint("verify", subject)
    with chromium(video=video, width=width) as driver:
        forced = "&transport=http" if transport == "http" else ""
        driver.get(f"{service.url}/pages/login#token={token}{forced}")
        assert "token=" not in driver.current_url  # the token leaves the address bar at once
        wait_state(driver, ("capturing", *FINAL), 30)
        WebDriverWait(driver, 30).until(
            lambda d: (
                state(d) != "capturing" or "turn" in d.find_element(By.CLASS_NAME, "fv-prompt").text.lower()
            )
        )
        driver.save_screenshot(str(shots / f"{name}-challenge.png"))
        final = wait_state(driver, FINAL, 90)
        driver.save_screenshot(str(shots / f"{name}-result.png"))
        used = driver.find_element(By.CSS_SELECTOR, ".fv").get_attribute("data-transport")
        assert used == transport, (used, logs(driver))
        # Nothing wider than the window, even at 320 px: no sideways scrolling.
        assert driver.execute_script("return document.documentElement.scrollWidth") <= width
        return final, f"{result_text(driver)}\n{logs(driver)}", receipt_of(driver)


def test_consent_enrolment_and_login_in_chromium(
    service: Service, videos: dict[str, Path], screenshots: Path
) -> None:
    # Enrolment: the consent text for the purpose, with its retention, explicitly agreed to.
    token = service.mint("enroll", "alice")
    with service.enrolling(), chromium(video=videos["enrol"]) as driver:
        driver.get(f"{service.url}/pages/enroll#token={token}")
        wait_state(driver, ("consent", *FINAL), 30)
        text = driver.find_element(By.CLASS_NAME, "fv-consent-text").text
        shown_digest = driver.find_element(By.CLASS_NAME, "fv-digest").text.removeprefix("Document SHA-256: ")
        assert "Purpose: app-login" in text and "at most 365 days" in text and "Example Corp" in text
        agree = driver.find_element(By.CSS_SELECTOR, ".fv-consent .fv-primary")
        assert not agree.is_enabled()  # no agreement without the explicit tick
        driver.save_screenshot(str(screenshots / "enrol-consent.png"))
        box = driver.find_element(By.ID, "fv-agree")
        box.send_keys(Keys.SPACE)  # keyboard operable
        assert agree.is_enabled()
        agree.send_keys(Keys.ENTER)
        wait_state(driver, ("capturing", *FINAL), 30)
        driver.save_screenshot(str(screenshots / "enrol-challenge.png"))
        final = wait_state(driver, FINAL, 90)
        driver.save_screenshot(str(screenshots / "enrol-result.png"))
        assert final == "enrolled", (final, result_text(driver), logs(driver), service.audit("alice"))
        receipt = receipt_of(driver)
        images = driver.execute_script("return window.__fvOutcome.images")
    assert service.redeem(receipt)["outcome"] == "enrolled"
    assert 2 <= images <= 5  # several distinct frontal frames of the live session: multi-image enrolment
    # The consent evidence: the digest of the very text shown, collected by the minting client.
    consent = service.vault.consent("alice")
    assert consent.purpose == "app-login" and consent.evidence.method == "browser-checkbox"
    assert (
        consent.evidence.document_sha256 == shown_digest
        and consent.evidence.collected_by == "client:demo-app"
    )
    assert (consent.expires_at - consent.granted_at).days == 365

    # Login as alice, from another photo of the same person: a match.
    final, text, receipt = run_login(service, videos["alice"], "alice", screenshots, "login-alice")
    assert final == "match", (final, text, service.audit("alice")[-3:])
    redeemed = service.redeem(receipt)
    assert (redeemed["subject_id"], redeemed["ceremony"], redeemed["outcome"]) == ("alice", "verify", "match")

    # Someone else claiming to be alice, on a 320 px wide phone, frames over HTTP (the fallback):
    # the session passes, the comparison does not.
    final, text, receipt = run_login(
        service, videos["mallory"], "alice", screenshots, "login-mallory", width=320, transport="http"
    )
    assert final == "no-match", (final, text, service.audit("alice")[-3:])
    assert service.redeem(receipt)["outcome"] == "no-match"

    # The documented integration (examples/app_login): an app on another origin embeds the module;
    # its backend mints the token and redeems the receipt. The browser never sees the API key.
    with chromium(video=videos["alice"]) as driver:
        driver.get(service.demo)
        field = driver.find_element(By.NAME, "user")
        field.send_keys("alice", Keys.ENTER)
        assert wait_state(driver, FINAL, 90) == "match", logs(driver)
        status = driver.find_element(By.ID, "status")
        WebDriverWait(driver, 10).until(lambda _: status.text)
        driver.save_screenshot(str(screenshots / "demo-app-login.png"))
        assert status.text == "Welcome, alice!", logs(driver)
        assert service.api_key not in driver.page_source


@pytest.mark.parametrize(
    ("camera", "final", "message"),
    [("deny", "camera-denied", "Camera access was denied"), ("none", "no-camera", "No camera was found")],
)
def test_a_denied_or_missing_camera_shows_its_message(
    service: Service, screenshots: Path, camera: Literal["deny", "none"], final: str, message: str
) -> None:
    token = service.mint("verify", "alice")
    with chromium(video=None, camera=camera) as driver:
        driver.get(f"{service.url}/pages/login#token={token}")
        assert wait_state(driver, FINAL, 30) == final
        assert message in result_text(driver)
        driver.save_screenshot(str(screenshots / f"{final}.png"))


def test_a_lost_connection_shows_its_message(
    tmp_path: Path,
    pipeline: object,
    pack: object,
    samples: dict[str, Path],
    videos: dict[str, Path],
    screenshots: Path,
) -> None:
    """The service goes away mid-session: the page says the connection was lost (not a verdict)."""
    from page_server import Service, Uvicorn, build_app, enrol_photos

    app, api_key, _ = build_app(tmp_path, pipeline, pack, challenges=CHALLENGES)
    enrol_photos(app, "alice", [samples["obama"], samples["obama2"]])
    server = Uvicorn(app)
    try:
        service = Service(server.url, api_key)
        token = service.mint("verify", "alice")
        with chromium(video=videos["alice"]) as driver:
            driver.get(f"{service.url}/pages/login#token={token}")
            wait_state(driver, ("capturing", *FINAL), 30)
            server.close()
            assert wait_state(driver, FINAL, 60) == "connection-lost", result_text(driver)
            assert "connection to the service was lost" in result_text(driver)
            driver.save_screenshot(str(screenshots / "connection-lost.png"))
    finally:
        server.close()


def test_a_locked_out_subject_sees_the_wait(
    service: Service, samples: dict[str, Path], videos: dict[str, Path], screenshots: Path
) -> None:
    """Five failed attempts lock bob out: the page says so (with the wait) instead of asking for a face."""
    from page_server import enrol_photos

    enrol_photos(service.app, "bob", [samples["biden"]])
    for _ in range(5):
        service.vault.record_failed_attempt("bob", reason="test: failed liveness")
    token = service.mint("verify", "bob")
    with chromium(video=videos["mallory"]) as driver:
        driver.get(f"{service.url}/pages/login#token={token}")
        assert wait_state(driver, FINAL, 30) == "locked-out", logs(driver)
        assert "Too many attempts" in result_text(driver) and "try again in about" in result_text(driver)
        assert not driver.find_elements(By.CSS_SELECTOR, ".fv-actions button")  # nothing to retry now
        driver.save_screenshot(str(screenshots / "locked-out.png"))


#: The page's widget, its screen-light colour and the colour it paints, as a test reads them.
SCREEN = """const r = document.querySelector('.fv'); const l = document.querySelector('.fv-light');
return [r ? r.dataset.state || '' : '', r ? r.dataset.screen || '' : '',
        l && !l.hidden ? getComputedStyle(l).backgroundColor : ''];"""


def test_a_screen_light_session_shows_the_servers_colours_and_the_fake_camera_is_refused(
    service: Service, samples: dict[str, Path], videos: dict[str, Path], screenshots: Path
) -> None:
    """The page paints the window behind the widget in each colour the service asks for, in the
    service's order. Chromium's fake camera plays a file, which reflects no screen: the session
    answers its turns and is refused, and the reason is the screen light's. Test-only screen-light
    parameters (6 switches, a frame each; a blind capture passes one time in 5**6): a loaded CI
    machine may send one frame a second."""
    from page_server import enrol_photos

    from faceverify._liveness import ScreenColour, ScreenLightPolicy

    enrol_photos(service.app, "carol", [samples["obama"], samples["obama2"]])
    verifier = service.app.state.faceverify.verifier
    before = verifier.challenge_policy
    light = ScreenLightPolicy(steps=6, max_missed=0, min_frames=1)
    verifier.challenge_policy = replace(before, screen_light=light)
    rgb = {c.value: "rgb({}, {}, {})".format(*c.rgb) for c in ScreenColour}
    seen: list[str] = []
    try:
        token = service.mint("verify", "carol")
        with chromium(video=videos["alice"]) as driver:
            driver.get(f"{service.url}/pages/login#token={token}")
            for _ in range(1200):  # at most 120 s
                page, colour, painted = driver.execute_script(SCREEN)
                if colour:
                    assert painted == rgb[colour], (colour, painted)  # painted as named
                    if not seen or seen[-1] != colour:
                        seen.append(colour)
                        if len(seen) == 3:
                            driver.save_screenshot(str(screenshots / "screen-light.png"))
                if page in FINAL:
                    break
                time.sleep(0.1)
            final = page
            assert driver.execute_script(SCREEN)[2] == ""  # the light is off once the session ended
    finally:
        verifier.challenge_policy = before
    assert final == "retry", (final, service.audit("carol")[-2:])
    reason = next(r for e, o, r in reversed(service.audit("carol")) if "screen-light:" in r)
    assert "the face's colour did not follow" in reason or "cannot assess the screen light" in reason
    # The colours the decision is bound to ("...; screen red, cyan, ...: ..."), in the service's order:
    # the page showed them in that order (polling may miss one shown briefly, never reorder them).
    asked = reason.split("; screen ", 1)[1].split(":", 1)[0].split(", ")
    assert len(seen) >= 3 and len(asked) >= 5
    it = iter(asked)
    assert all(c in it for c in seen), (seen, asked)
