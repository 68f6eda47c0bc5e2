"""What one service process holds: its settings, the Verifier (models loaded once), the tables.

Nothing here outlives a request except caches of immutable things (the loaded
models). Clients, rate-limit windows, pending consent and live sessions are
rows in the database, so any worker on any host answers any request.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from ._clients import ClientStore
from ._config import ServiceConfig
from ._db import ServiceDatabase, open_service_database
from ._intake import PendingConsent
from ._metrics import Metrics
from ._ratelimit import RateLimiter, RateLimits

if TYPE_CHECKING:
    from .._verifier import Verifier

log = logging.getLogger("faceverify.service")


def open_verifier(config: ServiceConfig) -> Verifier:
    """The Verifier a service process runs: the configured pack, profile and vault."""
    from .._liveness._challenge import Challenge
    from .._profiles import get_profile
    from .._vault import load_master_key
    from .._verifier import Verifier

    profile = get_profile(config.profile)
    if config.threshold is not None:
        profile = profile.with_threshold(config.threshold)
    verifier = Verifier.open(
        config.database,
        master_key=load_master_key(config.key_file),
        keys_database=config.keys_database,
        pack=config.pack,
        cache=config.cache,
        profile=profile,
        purpose=config.purpose,
    )
    if config.fixed_challenges:
        known = {c.value: c for c in Challenge}
        try:
            verifier.fixed_challenges = tuple(known[c] for c in config.fixed_challenges)
        except KeyError as exc:
            from .._errors import ConfigurationError

            raise ConfigurationError(f"unknown challenge {exc.args[0]!r} in the fixed sequence") from None
        log.warning("TEST-ONLY: every live session asks the fixed challenges %s", config.fixed_challenges)
    if config.screen_light:
        from dataclasses import replace

        from .._liveness import ScreenLightPolicy

        verifier.challenge_policy = replace(verifier.challenge_policy, screen_light=ScreenLightPolicy())
    if config.synthetic_frames:
        from dataclasses import replace

        verifier.challenge_policy = replace(
            verifier.challenge_policy, animation_checks=False, replay_memory=False
        )
        log.warning(
            "TEST-ONLY: live sessions run without their animation checks and replay memory (synthetic frames)"
        )
    return verifier


class ServiceState:
    def __init__(
        self,
        config: ServiceConfig,
        *,
        verifier: Verifier | None = None,
        database: ServiceDatabase | None = None,
    ) -> None:
        self.config = config
        self._verifier = verifier
        self._lock = threading.Lock()
        self.db = database or open_service_database(config.database)
        self.clients = ClientStore(self.db)
        self.pending_consent = PendingConsent(self.db)
        self.limiter = RateLimiter(
            self.db, RateLimits(config.rate_per_client, config.rate_per_source, config.rate_window)
        )
        self.metrics = Metrics()

    @property
    def models_loaded(self) -> bool:
        return self._verifier is not None

    @property
    def verifier(self) -> Verifier:
        """Loaded once per process, on first use (or at start-up, standalone)."""
        if self._verifier is None:
            with self._lock:
                if self._verifier is None:
                    self._verifier = open_verifier(self.config)
        return self._verifier

    def database_reachable(self) -> bool:
        try:
            self.db.ping()
        except Exception:
            return False
        return True
