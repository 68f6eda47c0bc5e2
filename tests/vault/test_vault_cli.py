"""The vault from the command line, on both engines: operator mistakes do not pass silently (defect 8).

A typo in ``--vault``/``--keys-db`` created a new empty vault; revoking an unknown subject
exited 0; ``--threshold -1`` turned a wrong face into MATCH (resetting the lockout) and was
audited as a plain match. Also: where the keys live is said, and a still image of an
``app-login`` subject is refused whatever the profile (issue #10, item 3).
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from vault_helpers import Where

from faceverify._cli._main import main
from faceverify._vault import MasterKey, Vault, load_master_key


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def cli(where: Where, tmp_path: Path, model_cache: Path, samples: dict[str, Path]) -> dict[str, list[str]]:
    """A vault made with `keys init` and one subject enrolled per purpose; the arguments to reach it."""
    key_file = tmp_path / "secret" / "master.key"
    at = ["--database", where.database, "--keys-database", where.keys_database, "--key-file", str(key_file)]
    code, out, err = run_cli("keys", "init", *at, "--json")
    assert code == 0, err
    assert json.loads(out)["keys"].endswith(where.keys_database.rsplit("/", 1)[-1])
    evidence = tmp_path / "release.txt"
    evidence.write_bytes(b"I agree.")
    models = ["--cache", str(model_cache)]
    for subject, purpose in (("alice", "id-check"), ("bob", "app-login"), ("carol", "door-access")):
        image = samples["obama"] if subject == "alice" else samples["biden"]
        code, _, err = run_cli(
            "enroll",
            subject,
            str(image),
            "--purpose",
            purpose,
            "--consent-evidence",
            str(evidence),
            *at,
            *models,
        )
        assert code == 0, err
    return {"at": at, "models": models}


def _audit(where: Where, cli: dict[str, list[str]]) -> list[tuple[str, str | None, str, str, str | None]]:
    key = load_master_key(Path(cli["at"][-1]))
    vault = Vault.open(where.database, key, keys_database=where.keys_database)
    try:
        assert vault.audit.verify_chain().ok
        return [(e.event, e.subject, e.outcome, e.reason, e.actor) for e in vault.audit.entries()]
    finally:
        vault.close()


def _typo(where: Where, value: str) -> str:
    if where.backend == "sqlite":
        return value + "x"
    return value.replace("search_path%3D", "search_path%3Dtypo_")  # a schema that does not exist


@pytest.mark.parametrize(
    "command", [["verify", "alice", "IMG"], ["revoke", "alice"], ["purge"], ["audit", "verify"]]
)
def test_a_typo_in_the_database_creates_nothing(
    where: Where, cli: dict[str, list[str]], samples: dict[str, Path], command: list[str]
) -> None:
    models = cli["models"] if command[0] == "verify" else []
    command = [str(samples["obama2"]) if c == "IMG" else c for c in command]
    at = list(cli["at"])
    at[1] = _typo(where, at[1])
    code, out, err = run_cli(*command, *at, *models)
    assert code != 0 and out == ""
    assert "no vault" in err and "typo" in err
    if where.backend == "sqlite":
        assert not Path(at[1]).exists()
    at = list(cli["at"])
    at[3] = _typo(where, at[3])
    code, out, err = run_cli(*command, *at, *models)
    assert code != 0 and out == "" and "no key store" in err
    if where.backend == "sqlite":
        assert not Path(at[3]).exists()


def test_revoking_an_unknown_subject_fails_and_is_audited(where: Where, cli: dict[str, list[str]]) -> None:
    code, out, err = run_cli("revoke", "alcie", *cli["at"])
    assert code != 0 and out == "" and "alcie" in err
    assert ("revoke", "alcie", "refused", "unknown subject", "cli") in _audit(where, cli)
    code, out, _ = run_cli("revoke", "alice", *cli["at"], "--json")
    assert code == 0 and json.loads(out)["template_erased"] is True
    code, out, _ = run_cli("revoke", "alice", *cli["at"], "--json")  # again: a no-op, not an error
    assert code == 0 and json.loads(out)["template_erased"] is False


def test_a_custom_threshold_is_bounded_and_audited_as_custom(
    where: Where, cli: dict[str, list[str]], samples: dict[str, Path]
) -> None:
    biden = str(samples["biden"])
    for bad in ("-1", "0.1", "1.5"):
        code, out, err = run_cli("verify", "alice", biden, *cli["at"], *cli["models"], "--threshold", bad)
        assert code != 0 and out == "", err
        assert "threshold" in err
    verifies = [e for e in _audit(where, cli) if e[0] == "verify"]
    assert verifies == []  # refused before anything was compared or counted
    code, out, _ = run_cli(
        "verify", "alice", biden, *cli["at"], *cli["models"], "--threshold", "0.5", "--json"
    )
    assert code == 1 and json.loads(out)["match"] is False
    code, out, _ = run_cli(
        "verify", "alice", str(samples["obama2"]), *cli["at"], *cli["models"], "--threshold", "0.5"
    )
    assert code == 0
    code, out, _ = run_cli("verify", "alice", str(samples["obama2"]), *cli["at"], *cli["models"])
    assert code == 0
    verifies = [e for e in _audit(where, cli) if e[0] == "verify"]
    assert [(e[2], e[3], e[4]) for e in verifies] == [
        ("no-match", "custom threshold 0.5000 (uncalibrated)", "cli"),
        ("match", "custom threshold 0.5000 (uncalibrated)", "cli"),
        ("match", "", "cli"),
    ]


@pytest.mark.parametrize("subject", ["bob", "carol"])
def test_a_still_image_of_a_live_purpose_subject_is_refused_whatever_the_profile(
    where: Where, cli: dict[str, list[str]], samples: dict[str, Path], subject: str
) -> None:
    code, out, err = run_cli(
        "verify", subject, str(samples["biden"]), *cli["at"], *cli["models"], "--profile", "photo-check"
    )
    assert code != 0 and out == ""
    assert "live capture" in err
    refused = [e for e in _audit(where, cli) if e[0] == "verify" and e[1] == subject]
    assert [(e[2], e[4]) for e in refused] == [("refused", "cli")] and "live capture" in refused[0][3]


def test_keys_init_says_where_the_keys_are_and_refuses_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACEVERIFY_KEYS_DIR", str(tmp_path / "state" / "keys"))
    at = ["--database", str(tmp_path / "vault"), "--key-file", str(tmp_path / "master.key")]
    code, out, err = run_cli("keys", "init", *at)
    assert code == 0, err
    line = next(x for x in out.splitlines() if x.startswith("key store:"))
    assert str(tmp_path / "state" / "keys") in line and str(tmp_path / "vault") not in line
    assert not any("key" in p.name for p in (tmp_path / "vault").iterdir())
    code, _, err = run_cli(
        "keys", "init", "--database", str(tmp_path / "vault"), "--key-file", str(tmp_path / "2.key")
    )
    assert code != 0 and "already holds a vault" in err and not (tmp_path / "2.key").exists()
    assert isinstance(load_master_key(tmp_path / "master.key"), MasterKey)
