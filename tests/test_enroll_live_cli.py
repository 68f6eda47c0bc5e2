"""``faceverify enroll SUBJECT --camera N`` (here ``--video``, the same session on a recording).

Sign-up is liveness-checked too: the template would be made from several distinct
best frontal frames of a passed challenge session (``Verifier.enroll_live``). The
recordings are real photos posed into a person answering the challenges
(``tests/browser/camera_videos.py``, the videos the browser tests play): the
liveness animation checks, on in every CLI session, rightly refuse them as one
picture warped, so here the CLI's refusals are what is tested; a passed live
enrolment is tested through the service (tests/browser) with those checks off.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from test_verify_live import run_cli, write_video

from faceverify.hazmat import FacePipeline

sys.path.insert(0, str(Path(__file__).resolve().parent / "browser"))
from camera_videos import FPS, posed_frames  # tests/browser is not a package

ASKED = "move-closer,turn-left"


def test_cli_enrolls_live_from_a_session_then_verifies(
    tmp_path: Path, model_cache: Path, pipeline: FacePipeline, samples: dict[str, Path]
) -> None:
    def video(name: str, photo: str, seed: int) -> Path:
        frames = list(posed_frames(pipeline, samples[photo], ASKED.split(","), seed=seed))
        return write_video(tmp_path / f"{name}.avi", frames, fps=FPS)

    signup = video("signup", "obama", 0)
    where = ["--vault", str(tmp_path / "vault"), "--key-file", str(tmp_path / "master.key")]
    models = ["--cache", str(model_cache)]
    evidence = tmp_path / "release.txt"
    evidence.write_bytes(b"I agree to face verification for app login.")
    enrol = ["--purpose", "app-login", "--consent-evidence", str(evidence), *where, *models]
    assert run_cli("keys", "init", *where)[0] == 0

    # A recording that does not answer the sequence asked: not live (exit 3), nothing enrolled (5).
    code, out, err = run_cli("enroll", "alice", "--video", str(signup), "--challenges", "turn-right", *enrol)
    assert code == 3 and out == "" and "liveness challenge failed" in err, err
    code, _, err = run_cli("consent", "show", "alice", *where)
    assert code == 5, err

    # A recording that does answer (one photo warped into poses, made before the session): the
    # animation checks (on in every CLI session: no flag turns them off) refuse it, and nothing is
    # enrolled. Its answers fall where the random holds before the prompts (the OS's CSPRNG) put
    # them: mostly before their prompt, sometimes too soon or too late after it; when the holds
    # happen to fit the recording, the rigid-texture check refuses it.
    live = ["--video", str(signup), "--challenges", ASKED]
    code, out, err = run_cli("enroll", "alice", *live, *enrol, "--json")
    assert code == 3, (err, out)
    assert json.loads(out)["error"]["code"] == "not_live"
    refusals = ("held before its prompt", "faster than a person", "after its prompt", "one picture warped")
    assert any(r in out for r in refusals), out
    assert "challenges (fixed by --challenges): move-closer, turn-left" in err
    assert run_cli("consent", "show", "alice", *where)[0] == 5

    # Images and a live capture at once, or neither: refused before anything is stored.
    code, _, err = run_cli("enroll", "bob", str(samples["biden"]), "--camera", "0", *enrol)
    assert code == 2 and "not both" in err
    code, _, err = run_cli("enroll", "bob", *enrol)
    assert code == 2 and "--camera INDEX" in err
    code, _, err = run_cli("enroll", "bob", "--camera", "0", "--challenges", "turn-left", *enrol)
    assert code == 2 and "only with --video" in err
