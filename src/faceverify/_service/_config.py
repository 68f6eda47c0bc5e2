"""The service's settings: flags over environment over an optional TOML file over defaults.

Environment variables are the settings' names upper-cased with ``FACEVERIFY_``
in front (``FACEVERIFY_DATABASE``, ``FACEVERIFY_KEYS_DATABASE``,
``FACEVERIFY_RATE_PER_CLIENT``...); the config file (``--config FILE`` or
``$FACEVERIFY_CONFIG``) holds the same names in a ``[serve]`` table. The master
key is never a setting: it comes from ``--key-file``/``$FACEVERIFY_KEY_FILE`` or
``$FACEVERIFY_MASTER_KEY``, as for every other command.

**Test-only.** ``$FACEVERIFY_TEST_FIXED_CHALLENGES`` (e.g. ``turn-left,move-closer``)
makes every live session ask that sequence instead of a random draw, so a test
can send frames prepared for it; ``$FACEVERIFY_TEST_SYNTHETIC_FRAMES=1`` turns the
session's animation checks and replay memory off, for frames warped from one photo
(which those checks rightly refuse, and which are replays of each other). Both are
read from the environment only (never from flags or the file), the server warns on
start, and ``/readyz`` reports them:
they let a prepared recording pass, so they have no place in production.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .._errors import ConfigurationError
from .._limits import LIMITS

FIXED_CHALLENGES_ENV = "FACEVERIFY_TEST_FIXED_CHALLENGES"
SYNTHETIC_FRAMES_ENV = "FACEVERIFY_TEST_SYNTHETIC_FRAMES"
_ENV_PREFIX = "FACEVERIFY_"


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    database: str = ""
    keys_database: str | None = None
    key_file: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    pack: str = "yunet-sface"
    cache: str | None = None
    profile: str = "app-login"
    #: An uncalibrated cosine threshold instead of the profile's operating point (reported as such).
    threshold: float | None = None
    purpose: str | None = None
    rate_per_client: int = 600
    rate_per_source: int = 120
    rate_window: int = 60
    max_body_bytes: int = LIMITS.request_bytes
    threads: int = 0
    fixed_challenges: tuple[str, ...] = field(default=())
    #: TEST-ONLY: the session's animation checks and replay memory off, for frames warped from one photo.
    synthetic_frames: bool = False
    #: The browser pages and their ceremony routes (docs/browser.md); ``--no-pages`` turns them off.
    pages: bool = True
    #: Live sessions run the screen-light challenge (the page lights the face with the colours the
    #: server asks for): ``ChallengePolicy(screen_light=ScreenLightPolicy())``; see docs/liveness.md.
    screen_light: bool = False

    def __post_init__(self) -> None:
        if self.workers < 1 or not 0 < self.port < 65536:
            raise ConfigurationError("workers must be >= 1 and port within 1..65535")
        if min(self.rate_per_client, self.rate_per_source) < 0 or self.rate_window < 1:
            raise ConfigurationError("rate limits are >= 0 (0: none) over a window of >= 1 s")
        if self.max_body_bytes < 1024:
            raise ConfigurationError("max_body_bytes must be at least 1024")

    @classmethod
    def load(
        cls,
        flags: Mapping[str, Any] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        config_file: str | Path | None = None,
    ) -> ServiceConfig:
        """Defaults, then the file, then the environment, then flags that were given (not None)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        path = config_file or env.get(_ENV_PREFIX + "CONFIG")
        if path:
            try:
                data = tomllib.loads(Path(path).read_text())
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ConfigurationError(f"cannot read the config file {path}: {exc}") from None
            values.update(data.get("serve", {}))
        for f in fields(cls):
            if f.name in _TEST_ONLY:
                continue
            raw = env.get(_ENV_PREFIX + f.name.upper())
            if raw:
                values[f.name] = raw
        values.update({k: v for k, v in (flags or {}).items() if v is not None})
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigurationError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        for name in _TEST_ONLY:  # test-only: from the environment alone
            values.pop(name, None)
        values["synthetic_frames"] = env.get(SYNTHETIC_FRAMES_ENV, "") == "1"
        fixed = env.get(FIXED_CHALLENGES_ENV, "")
        values["fixed_challenges"] = tuple(c.strip() for c in fixed.split(",") if c.strip())
        return cls(**_typed(values))

    def to_json(self) -> str:
        """For handing the configuration to worker processes."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServiceConfig:
        data = json.loads(text)
        data["fixed_challenges"] = tuple(data.get("fixed_challenges", ()))
        return cls(**data)

    def with_(self, **changes: Any) -> ServiceConfig:
        return replace(self, **changes)


_TEST_ONLY = ("fixed_challenges", "synthetic_frames")


def _typed(values: dict[str, Any]) -> dict[str, Any]:
    """Strings from the environment or TOML values into each field's type."""
    ints = {
        "port",
        "workers",
        "rate_per_client",
        "rate_per_source",
        "rate_window",
        "max_body_bytes",
        "threads",
    }
    out = dict(values)
    try:
        for name in ints & set(out):
            out[name] = int(out[name])
        if out.get("threshold") is not None:
            out["threshold"] = float(out["threshold"])
        for name in ("pages", "screen_light"):
            if isinstance(out.get(name), str):
                if out[name].lower() not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                    raise ValueError(f"{name} must be true or false, not {out[name]!r}")
                out[name] = out[name].lower() in ("true", "1", "yes", "on")
        for name in ("database", "keys_database", "key_file", "cache", "host", "pack", "profile", "purpose"):
            if out.get(name) is not None:
                out[name] = str(out[name])
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"a setting has the wrong type: {exc}") from None
    return out
