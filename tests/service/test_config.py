"""Settings: flags over environment over the config file over defaults; bad values are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from faceverify._errors import ConfigurationError
from faceverify._service import ServiceConfig


def test_flags_override_environment_override_file(tmp_path: Path) -> None:
    file = tmp_path / "fv.toml"
    file.write_text(
        '[serve]\ndatabase = "sqlite:///from-file"\nport = 9000\nworkers = 3\nprofile = "photo-check"\n'
    )
    env = {"FACEVERIFY_PORT": "9100", "FACEVERIFY_RATE_PER_CLIENT": "7"}
    config = ServiceConfig.load({"port": 9200, "host": None}, environ=env, config_file=file)
    assert config.database == "sqlite:///from-file" and config.workers == 3
    assert config.profile == "photo-check"
    assert config.port == 9200 and config.rate_per_client == 7 and config.host == "127.0.0.1"
    assert ServiceConfig.load({}, environ=env, config_file=file).port == 9100
    assert ServiceConfig.from_json(config.to_json()) == config


def test_fixed_challenges_come_from_the_environment_only(tmp_path: Path) -> None:
    file = tmp_path / "fv.toml"
    file.write_text('[serve]\ndatabase = "x"\nfixed_challenges = ["turn-left"]\n')
    assert ServiceConfig.load({}, environ={}, config_file=file).fixed_challenges == ()
    env = {"FACEVERIFY_TEST_FIXED_CHALLENGES": "turn-left, move-closer"}
    assert ServiceConfig.load({"database": "x"}, environ=env).fixed_challenges == ("turn-left", "move-closer")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"workers": 0}, "workers"),
        ({"port": 70000}, "port"),
        ({"rate_per_client": -1}, "rate"),
        ({"max_body_bytes": 10}, "max_body_bytes"),
        ({"colour": "blue"}, "unknown setting"),
        ({"port": "eighty"}, "wrong type"),
    ],
)
def test_bad_settings_are_refused(flags: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ServiceConfig.load(flags, environ={})


def test_an_unreadable_config_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[serve\n")
    with pytest.raises(ConfigurationError, match="config file"):
        ServiceConfig.load({}, environ={}, config_file=bad)
    with pytest.raises(ConfigurationError, match="config file"):
        ServiceConfig.load({}, environ={}, config_file=tmp_path / "missing.toml")
