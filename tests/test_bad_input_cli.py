"""Every bad input is one clear error: one line (or one JSON object with ``--json``) and its exit status.

Issue #16's list, run as a script would run them: a subprocess of the real
command on real models, a real vault. ``timeout`` is generous (a shared, loaded
machine); the 2-second figure is measured in docs/threat-model.md, not here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from faceverify._cli._main import EXIT_CODES

TIMEOUT = 60
#: A consent purpose that allows still images (app-login and door-access subjects are verified live only).
PURPOSE = "id-check"


def fv(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "faceverify", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        env=env,
    )


def one_line(done: subprocess.CompletedProcess[str], *fragments: str, status: int = 2) -> str:
    assert done.returncode == status, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("faceverify: error: "), lines[0]
    assert done.stdout == ""
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


def json_error(done: subprocess.CompletedProcess[str], code: str) -> dict[str, object]:
    assert done.returncode == EXIT_CODES[code], (done.returncode, done.stdout, done.stderr)
    assert done.stderr == ""
    data = json.loads(done.stdout)
    assert set(data) == {"error"}
    error = data["error"]
    assert set(error) == {"code", "message", "reasons", "retry_after"}
    assert error["code"] == code and error["message"]
    return dict(error)


@pytest.fixture(scope="module")
def vault(
    tmp_path_factory: pytest.TempPathFactory, model_cache: Path, samples: dict[str, Path]
) -> dict[str, str]:
    """A vault with ``alice`` enrolled; returns the environment every command runs in."""
    root = tmp_path_factory.mktemp("cli-vault")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEVERIFY_")}
    env.update(
        FACEVERIFY_VAULT=str(root / "vault"),
        FACEVERIFY_KEY_FILE=str(root / "master.key"),
        FACEVERIFY_KEYS_DATABASE_URL=f"sqlite:///{root / 'keys.db'}",
        FACEVERIFY_HOME=str(model_cache),
        XDG_DATA_HOME=str(root / "data"),
        XDG_STATE_HOME=str(root / "state"),
        XDG_CONFIG_HOME=str(root / "config"),
    )
    (root / "consent.txt").write_text("I consent to my face being used to log in.\n")
    assert fv("keys", "init", env=env).returncode == 0
    done = fv(
        "enroll", "alice", str(samples["obama"]), "--purpose", PURPOSE,
        "--consent-evidence", str(root / "consent.txt"), env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    env["CONSENT"] = str(root / "consent.txt")
    env["KEYS"] = str(root / "keys.db")
    return env


def test_dev_zero_is_refused_at_once(vault: dict[str, str]) -> None:
    one_line(fv("verify", "alice", "/dev/zero", env=vault), "'/dev/zero'", "not a regular file")
    error = json_error(fv("verify", "alice", "/dev/zero", "--json", env=vault), "bad_input")
    assert "not a regular file" in str(error["message"])


def test_fifo_without_a_writer_does_not_hang(vault: dict[str, str], tmp_path: Path) -> None:
    fifo = tmp_path / "capture.jpg"
    os.mkfifo(fifo)
    one_line(fv("verify", "alice", str(fifo), env=vault), "not a regular file")
    json_error(fv("verify", "alice", str(fifo), "--json", env=vault), "bad_input")


def test_directory_is_refused(vault: dict[str, str], tmp_path: Path) -> None:
    one_line(fv("verify", "alice", str(tmp_path), env=vault), "is a directory")
    json_error(fv("verify", "alice", str(tmp_path), "--json", env=vault), "bad_input")


def test_six_image_enrolment_is_bad_input(vault: dict[str, str], samples: dict[str, Path]) -> None:
    images = [str(samples[n]) for n in ("obama", "obama2", "obama3", "obama", "obama2", "obama3")]
    args = ["enroll", "bob", *images, "--purpose", PURPOSE, "--consent-evidence", vault["CONSENT"]]
    one_line(fv(*args, env=vault), "1 to 5 images, got 6")
    json_error(fv(*args, "--json", env=vault), "bad_input")


def test_vault_path_that_is_a_file(vault: dict[str, str], samples: dict[str, Path], tmp_path: Path) -> None:
    not_a_dir = tmp_path / "vault"
    not_a_dir.write_text("a file where the vault folder should be\n")
    args = ["verify", "alice", str(samples["obama2"]), "--vault", str(not_a_dir)]
    line = one_line(fv(*args, env=vault), str(not_a_dir), "not a database")
    assert "Traceback" not in line
    json_error(fv(*args, "--json", env=vault), "store_corrupt")  # exit 2: a text file is no vault


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
@pytest.mark.parametrize("database", ["vault", "keys"])
def test_damaged_database(
    vault: dict[str, str], samples: dict[str, Path], tmp_path: Path, damage: str, database: str
) -> None:
    """A garbage or truncated vault: store_corrupt (exit 2), not 'unavailable, retry', no traceback.

    A damaged key store is the key store's failure (key_store, exit 10), like a wrong master key.
    """
    original_vault, original_keys = Path(vault["FACEVERIFY_VAULT"]), Path(vault["KEYS"])
    (tmp_path / "vault").mkdir()
    for f in original_vault.glob("*.db"):
        (tmp_path / "vault" / f.name).write_bytes(f.read_bytes())
    (tmp_path / "keys.db").write_bytes(original_keys.read_bytes())
    target = tmp_path / "vault" / "vault.db" if database == "vault" else tmp_path / "keys.db"
    data = target.read_bytes()
    # Garbage: random bytes past an intact first page (SQLite reads the header and then meets junk).
    target.write_bytes(data[:4096] + os.urandom(8192) if damage == "garbage" else data[: len(data) // 3])
    env = {
        **vault,
        "FACEVERIFY_VAULT": str(tmp_path / "vault"),
        "FACEVERIFY_KEYS_DATABASE_URL": f"sqlite:///{tmp_path / 'keys.db'}",
    }
    args = ["verify", "alice", str(samples["obama2"])]
    code = "store_corrupt" if database == "vault" else "key_store"
    one_line(fv(*args, env=env), "damaged", status=EXIT_CODES[code])
    json_error(fv(*args, "--json", env=env), code)


def test_usage_errors_are_one_line_or_json(vault: dict[str, str], samples: dict[str, Path]) -> None:
    one_line(fv("verify", "alice", str(samples["obama2"]), "--profile", "nope", env=vault), "invalid choice")
    json_error(fv("compare", str(samples["obama"]), "--json", env=vault), "bad_input")
    json_error(fv("enroll", "--json", env=vault), "bad_input")


def test_look_alike_subject_id_is_refused_with_its_reason(
    vault: dict[str, str], samples: dict[str, Path]
) -> None:
    line = one_line(
        fv("verify", "\u0430lice", str(samples["obama2"]), env=vault), "subject id", "A-Z a-z 0-9"
    )
    assert "\\u0430lice" in line  # shown escaped: the reader sees why it is not "alice"
    json_error(fv("verify", " ", str(samples["obama2"]), "--json", env=vault), "bad_input")


def test_full_width_id_is_the_same_subject(vault: dict[str, str], samples: dict[str, Path]) -> None:
    done = fv("verify", "\uff41\uff4c\uff49\uff43\uff45 ", str(samples["obama2"]), "--json", env=vault)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["subject_id"] == "alice" and data["code"] == "match"


def test_reason_codes_in_json_decisions(vault: dict[str, str], samples: dict[str, Path]) -> None:
    done = fv("verify", "alice", str(samples["biden"]), "--json", env=vault)
    assert done.returncode == 1
    assert json.loads(done.stdout)["code"] == "no_match"
    json_error(fv("verify", "nobody", str(samples["obama2"]), "--json", env=vault), "unknown_subject")
    assert EXIT_CODES["unknown_subject"] == 5


def test_debug_after_the_subcommand(vault: dict[str, str]) -> None:
    done = fv("verify", "alice", "/dev/zero", "--debug", env=vault)
    assert done.returncode == 2
    assert "Traceback" in done.stderr and "UnreadableImageError" in done.stderr


def test_version(vault: dict[str, str]) -> None:
    from faceverify import __version__

    done = fv("--version", env=vault)
    assert done.returncode == 0 and done.stdout.strip() == f"faceverify {__version__}"


def test_operating_point_flag(vault: dict[str, str], samples: dict[str, Path]) -> None:
    done = fv("verify", "alice", str(samples["obama2"]), "--operating-point", "strict", "--json", env=vault)
    assert done.returncode in (0, 1), done.stderr
    op = json.loads(done.stdout)["operating_point"]
    assert op["name"] == "strict" and op["calibrated"] is True and op["fmr"] == 1e-6
    one_line(
        fv("verify", "alice", str(samples["obama2"]), "--operating-point", "loose", env=vault),
        "invalid choice",
    )
    one_line(
        fv(
            "verify",
            "alice",
            str(samples["obama2"]),
            "--operating-point",
            "strict",
            "--threshold",
            "0.5",
            env=vault,
        ),
        "not both",
    )


def test_expiry_capped_by_retention_says_so(vault: dict[str, str], samples: dict[str, Path]) -> None:
    args = ["enroll", "carol", str(samples["biden"]), "--purpose", PURPOSE]
    done = fv(*args, "--consent-evidence", vault["CONSENT"], "--expires", "2099-01-01", "--json", env=vault)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["expiry_limited_by"] == "retention"
    done = fv(*args, "--consent-evidence", vault["CONSENT"], "--expires", "2099-01-01", env=vault)
    assert done.returncode == 0, done.stderr
    assert "retention" in done.stdout and "2099-01-01" in done.stdout


def test_consent_evidence_from_a_device_is_refused(vault: dict[str, str], samples: dict[str, Path]) -> None:
    args = [
        "enroll",
        "dave",
        str(samples["obama"]),
        "--purpose",
        "app-login",
        "--consent-evidence",
        "/dev/zero",
    ]
    one_line(fv(*args, env=vault), "consent evidence", "not a regular file")
