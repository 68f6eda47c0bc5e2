"""``faceverify compare`` as a person or a script runs it: a subprocess, real models, real photos.

Exit codes: 0 match, 1 no match, 2 error with one line on stderr and no traceback.
The pack's calibrated ``default`` operating point is used once the pack has one;
until then the tests pass an explicit, uncalibrated threshold.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceverify.hazmat import ModelPack

#: A caller's own threshold (SFace's published cosine threshold, OpenCV Zoo): the CLI must
#: report it as uncalibrated.
CUSTOM_THRESHOLD = "0.363"


def run(model_cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "FACEVERIFY_HOME"}
    return subprocess.run(
        [sys.executable, "-m", "faceverify", *args, "--cache", str(model_cache)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def assert_one_line_error(done: subprocess.CompletedProcess[str], *fragments: str, status: int = 2) -> None:
    assert done.returncode == status, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("faceverify: error: ")
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    for f in fragments:
        assert f in lines[0]


def test_same_person_exits_0(model_cache: Path, pack: ModelPack, samples: dict[str, Path]) -> None:
    done = run(model_cache, "compare", str(samples["obama"]), str(samples["obama2"]))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("MATCH  score ")
    assert "operating point 'default', FMR" in done.stdout


def test_custom_threshold_is_reported_uncalibrated(model_cache: Path, samples: dict[str, Path]) -> None:
    done = run(
        model_cache, "compare", str(samples["obama"]), str(samples["obama2"]), "--threshold", CUSTOM_THRESHOLD
    )
    assert done.returncode == 0, done.stderr
    assert "uncalibrated" in done.stdout
    done = run(
        model_cache,
        "compare",
        str(samples["obama"]),
        str(samples["biden"]),
        "--json",
        "--threshold",
        CUSTOM_THRESHOLD,
    )
    op = json.loads(done.stdout)["operating_point"]
    assert op["calibrated"] is False and op["fmr"] is None  # NaN is written as null


@pytest.mark.parametrize("other", ["obama2", "obama3"])
def test_different_people_exit_1(
    model_cache: Path, pack: ModelPack, samples: dict[str, Path], other: str
) -> None:
    done = run(model_cache, "compare", str(samples[other]), str(samples["biden"]))
    assert done.returncode == 1, done.stderr
    assert done.stdout.startswith("NO MATCH  score ")
    assert done.stderr == ""


def test_default_profile_without_threshold(
    model_cache: Path, pack: ModelPack, samples: dict[str, Path]
) -> None:
    """The default pack carries a calibrated `default` point, so the bare command decides."""
    assert pack.operating_point("default").calibrated
    done = run(model_cache, "compare", str(samples["obama"]), str(samples["obama3"]))
    assert done.returncode == 0, done.stderr


def test_json_output_parses(model_cache: Path, pack: ModelPack, samples: dict[str, Path]) -> None:
    done = run(model_cache, "compare", str(samples["obama"]), str(samples["biden"]), "--json")
    assert done.returncode == 1, done.stderr
    data = json.loads(done.stdout)
    assert data["match"] is False
    assert -1.0 <= data["score"] < data["threshold"]
    op = data["operating_point"]
    assert {"name", "threshold", "fmr", "calibrated"} <= set(op)
    assert op["calibrated"] is True and op["fmr"] == 1e-5
    assert set(data["quality"]) == {"a", "b"}
    assert data["quality"]["a"]["interocular"] > 50


def test_text_file_exits_2(model_cache: Path, samples: dict[str, Path], tmp_path: Path) -> None:
    text = tmp_path / "letter.jpg"
    text.write_text("Dear reader,\nthis is not a photograph.\n")
    done = run(model_cache, "compare", str(text), str(samples["obama"]))
    assert_one_line_error(done, "letter.jpg", "not an image")


def test_zero_byte_file_exits_2(model_cache: Path, samples: dict[str, Path], tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    done = run(model_cache, "compare", str(samples["obama"]), str(empty))
    assert_one_line_error(done, "empty.png", "is empty")


def test_missing_file_exits_2(model_cache: Path, samples: dict[str, Path], tmp_path: Path) -> None:
    done = run(model_cache, "compare", str(tmp_path / "nope.jpg"), str(samples["obama"]))
    assert_one_line_error(done, "does not exist")


def test_truncated_jpeg_exits_2(model_cache: Path, samples: dict[str, Path], tmp_path: Path) -> None:
    cut = tmp_path / "cut.jpg"
    data = samples["obama"].read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    done = run(model_cache, "compare", str(cut), str(samples["obama"]))
    assert_one_line_error(done, "damaged or truncated")


def test_no_face_exits_2(model_cache: Path, samples: dict[str, Path], tmp_path: Path) -> None:
    blank = tmp_path / "wall.png"
    Image.fromarray(np.full((400, 300, 3), 190, np.uint8)).save(blank)
    done = run(model_cache, "compare", str(blank), str(samples["obama"]))
    assert_one_line_error(done, "no face found")


def test_bad_profile_and_threshold_exit_2(model_cache: Path, samples: dict[str, Path]) -> None:
    a, b = str(samples["obama"]), str(samples["obama2"])
    assert_one_line_error(run(model_cache, "compare", a, b, "--profile", "nonsense"), "invalid choice")
    assert_one_line_error(run(model_cache, "compare", a, b, "--threshold", "3"), "[-1, 1]")
    # A profile that needs a live capture refuses two stills: not_live, exit 3.
    assert_one_line_error(
        run(model_cache, "compare", a, b, "--profile", "door-access", "--threshold", "0.4"),
        "live capture",
        status=3,
    )


def test_models_not_installed_exits_2(samples: dict[str, Path], tmp_path: Path) -> None:
    done = run(tmp_path, "compare", str(samples["obama"]), str(samples["obama2"]), "--threshold", "0.4")
    assert_one_line_error(done, "faceverify models install")


def test_debug_shows_the_traceback(model_cache: Path, samples: dict[str, Path], tmp_path: Path) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "faceverify",
            "--debug",
            "compare",
            str(empty),
            str(samples["obama"]),
            "--threshold",
            "0.4",
            "--cache",
            str(model_cache),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "Traceback" in done.stderr and "UnreadableImageError" in done.stderr


def test_compare_builds_only_its_own_commands_and_the_rest_still_parse(
    model_cache: Path, samples: dict[str, Path]
) -> None:
    """A cold ``compare`` does not import the vault, service, door and calibration commands;
    every other command line still finds its command (after a top-level option too)."""
    groups = ("_vault_cmds", "_serve_cmd", "_door_cmd", "_calibrate_cmd")
    script = (
        "import sys\nfrom faceverify._cli._main import main\n"
        f"status = main(sys.argv[1:])\n"
        f"print(status, [g for g in {groups!r} if 'faceverify._cli.' + g in sys.modules])"
    )
    env = {k: v for k, v in os.environ.items() if k != "FACEVERIFY_HOME"}
    command = ["compare", str(samples["obama"]), str(samples["obama2"]), "--cache", str(model_cache)]
    done = subprocess.run(
        [sys.executable, "-c", script, *command],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert done.stdout.strip().splitlines()[-1] == "0 []", done.stdout + done.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "faceverify", "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    assert listed.returncode == 0 and all(c in listed.stdout for c in ("compare", "enroll", "serve", "door"))
    helped = subprocess.run(
        [sys.executable, "-m", "faceverify", "--debug", "enroll", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert helped.returncode == 0 and "--consent" in helped.stdout, helped.stdout + helped.stderr
