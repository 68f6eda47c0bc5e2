"""``faceverify door`` and ``faceverify kiosk`` as a deployer runs them: the CI bar of issue #13.

A door process over a recorded video (a real file from real photos), badges
from a map file, and the relay as a command hook that records its calls (the
fake relay): it opens for the enrolled person and not for another, and says
why in JSON lines. The kiosk enrols from a live session after the person typed
their agreement, and keeps the receipt whose digest the consent record holds.
"""

from __future__ import annotations

import hashlib
import io
import json
import shlex
import socket
import stat
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from door_frames import FPS, Poser, answer, write_video

from faceverify._cli._main import main
from faceverify._liveness import Challenge

ASKED = "turn-left,turn-right"
FRAMES = (Challenge.TURN_LEFT, Challenge.TURN_RIGHT)


def run(argv: list[str], stdin: str, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def clips(
    tmp_path_factory: pytest.TempPathFactory, alice: Poser, mallory: Poser, alice_at_kiosk: Poser
) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clips")
    people = {"alice": alice, "mallory": mallory, "kiosk": alice_at_kiosk}
    return {n: write_video(root / f"{n}.avi", answer(p, FRAMES), fps=FPS) for n, p in people.items()}


@pytest.fixture
def site(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_cache: Path, samples: dict[str, Path]
) -> dict[str, object]:
    """A vault with alice enrolled (door-access), a badge map, and a relay hook logging to a file."""
    where = ["--vault", str(tmp_path / "vault"), "--key-file", str(tmp_path / "master.key"),
             "--keys-db", str(tmp_path / "keys.db")]  # fmt: skip
    assert run(["keys", "init", *where], "", monkeypatch)[0] == 0
    release = tmp_path / "release.txt"
    release.write_text("I agree to face verification at the doors of HQ.")
    code, _, err = run(
        ["enroll", "alice", str(samples["obama"]), str(samples["obama2"]), "--purpose", "door-access",
         "--consent-evidence", str(release), "--expires", "2099-12-31", "--cache", str(model_cache), *where],
        "", monkeypatch,
    )  # fmt: skip
    assert code == 0, err
    badges = tmp_path / "front.badges"
    badges.write_text("# badge subject\n1001 alice\n2002, bob\n")
    relay_log = tmp_path / "relay.log"
    hook = f"{sys.executable} -c \"import sys; open(sys.argv[1], 'a').write(sys.argv[2] + chr(10))\""
    relay = f"cmd:{hook} {shlex.quote(str(relay_log))} {{seconds}}"
    door = ["door", *where, "--cache", str(model_cache), "--badges", str(badges), "--relay", relay,
            "--recorded", "--synthetic-frames", "--challenges", ASKED, "--name", "front",
            "--open-seconds", "3"]  # fmt: skip
    return {"door": door, "where": where, "relay_log": relay_log, "tmp": tmp_path}


def events(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines()]


def test_a_door_run_opens_for_the_enrolled_person_and_not_for_another(
    site: dict[str, object], clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    door, relay_log = site["door"], site["relay_log"]
    assert isinstance(door, list) and isinstance(relay_log, Path)
    code, out, err = run([*door, "--camera", str(clips["alice"])], "1001\n9999\n", monkeypatch)
    assert code == 0, err
    got = events(out)
    assert [(e["kind"], e["reason"]) for e in got] == [
        ("status", "started"),
        ("decision", "match"),
        ("decision", "unknown_claim"),
        ("status", "stopped"),
    ]
    match = got[1]
    assert match["opened"] is True and match["subject_id"] == "alice" and match["door"] == "front"
    assert match["operating_point"] == "default" and set(match["stages_ms"]) >= {"live", "verify", "actuator"}
    assert relay_log.read_text() == "3\n"
    assert ">> turn your head to your left" in err  # the prompts, on the door's display

    # With a replica (memory-backed, per process): synced at start, gone at exit.
    replica_dir = Path(str(site["tmp"])) / "run"
    replica_dir.mkdir()
    code, out, err = run([*door, "--camera", str(clips["mallory"]), "--replica", "--replica-dir",
                          str(replica_dir)], "1001\n", monkeypatch)  # fmt: skip
    assert code == 0, err
    decision = [e for e in events(out) if e["kind"] == "decision"]
    assert [(e["reason"], e["opened"]) for e in decision] == [("no_match", False)]
    assert relay_log.read_text() == "3\n"  # not opened again
    assert "replica_age_s" in decision[0] and list(replica_dir.iterdir()) == []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_door_that_fails_to_start_closes_what_it_opened(
    site: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The web display starts before the camera; a camera that cannot be opened ends the run
    with its error, and the display's port is free again (nothing is left serving)."""
    door = site["door"]
    assert isinstance(door, list)
    port = free_port()
    code, _, err = run(
        [*door, "--web-display", f"127.0.0.1:{port}", "--camera", "/nonexistent.avi"], "", monkeypatch
    )
    assert code == 2 and "not a device index" in err
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # EADDRINUSE while a display still listened on it


def test_door_settings_that_would_weaken_it_are_refused(
    site: dict[str, object], clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    door = site["door"]
    assert isinstance(door, list)
    live = [a for a in door if a not in ("--recorded",)]
    code, _, err = run([*live, "--camera", str(clips["alice"])], "", monkeypatch)
    assert code == 2 and "only with --recorded" in err
    # The door's own checks refuse a recording warped from a photo: shut, not_live.
    guarded = [a for a in door if a != "--synthetic-frames"]
    code, out, err = run([*guarded, "--camera", str(clips["alice"])], "1001\n", monkeypatch)
    assert code == 0 and [e["reason"] for e in events(out) if e["kind"] == "decision"] == ["not_live"]
    code, _, err = run([*door, "--camera", str(clips["alice"]), "--profile", "photo-check"], "", monkeypatch)
    assert code == 2 and "does not require a live capture" in err
    code, _, err = run([*door, "--camera", str(clips["alice"]), "--threshold", "0.3"], "", monkeypatch)
    assert code == 2 and "calibrated operating point" in err
    code, _, err = run([*door, "--camera", "/nonexistent.avi"], "", monkeypatch)
    assert code == 2 and "not a device index" in err
    bad = Path(str(site["tmp"])) / "bad.badges"
    bad.write_text("1001 alice extra\n")
    args = [*door, "--camera", str(clips["alice"])]
    args[args.index("--badges") + 1] = str(bad)
    code, _, err = run(args, "", monkeypatch)
    assert code == 2 and "bad.badges:1" in err


def test_kiosk_enrols_a_consenting_person_then_the_door_opens(
    site: dict[str, object], clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch, model_cache: Path
) -> None:
    where, tmp = site["where"], Path(str(site["tmp"]))
    assert isinstance(where, list)
    text = tmp / "consent.txt"
    text.write_text("Your face will be used to open the doors of HQ, compared only with your own template.")
    kiosk = ["kiosk", "carol", *where, "--cache", str(model_cache), "--camera", str(clips["kiosk"]),
             "--recorded", "--synthetic-frames", "--challenges", ASKED, "--consent-text", str(text),
             "--operator", "op-7",
             "--evidence-dir", str(tmp / "receipts"), "--json"]  # fmt: skip
    # No agreement: nothing captured, nothing stored, exit 9 (consent).
    code, out, err = run(kiosk, "no thanks\n", monkeypatch)
    assert code == 9 and json.loads(out)["error"]["code"] == "consent", out
    assert "did not agree" in json.loads(out)["error"]["message"]
    assert not (tmp / "receipts").exists()

    code, out, err = run(kiosk, "I agree\n", monkeypatch)
    assert code == 0, err
    assert "Your face will be used" in err and "deleted after 365 days without use" in err
    report = json.loads(out)
    assert report["subject_id"] == "carol" and 2 <= report["images"] <= 5
    receipt = Path(report["receipt"])
    assert stat.S_IMODE(receipt.stat().st_mode) == 0o600
    digest = hashlib.sha256(receipt.read_bytes()).hexdigest()
    assert digest == report["receipt_sha256"] == report["consent"]["evidence"]["document_sha256"]
    kept = json.loads(receipt.read_text())
    assert kept["agreement"] == "I agree" and kept["operator"] == "op-7" and kept["text"] == text.read_text()
    assert report["consent"]["evidence"]["collected_by"] == "kiosk:kiosk operator:op-7"
    assert not np.isnan(report["qualities"][0]["sharpness"])

    # carol's badge now opens the door (another photo of the same person at the door).
    badges = tmp / "front.badges"
    badges.write_text(badges.read_text() + "3003 carol\n")
    door = site["door"]
    assert isinstance(door, list)
    code, out, err = run([*door, "--camera", str(clips["alice"])], "3003\n", monkeypatch)
    decision = [e for e in events(out) if e["kind"] == "decision"]
    assert [(e["reason"], e["opened"], e["subject_id"]) for e in decision] == [("match", True, "carol")], err
