"""Rate limits whose counters live in the database, so N workers share one budget.

Fixed windows (default one minute): each request adds one hit to its client's
bucket and to its source address's bucket with a single atomic
``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` and is refused (429, with
``Retry-After``) once a bucket is over its limit. A fixed window admits at most
twice the limit across a window boundary; that is the documented trade for one
row per bucket and window instead of one per request. Old windows are deleted
as new ones open.
"""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass

from ._db import ServiceDatabase


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Requests allowed per window, per client app and per source address (0: unlimited)."""

    per_client: int = 600
    per_source: int = 120
    window_seconds: int = 60


class RateLimitExceeded(Exception):  # noqa: N818 - a signal to the HTTP layer, not a library error
    def __init__(self, retry_after: int) -> None:
        super().__init__("rate limit exceeded")
        self.retry_after = retry_after


class RateLimiter:
    def __init__(self, db: ServiceDatabase, limits: RateLimits) -> None:
        self._db = db
        self.limits = limits

    def hit(self, *, client: str | None, source: str, now: float | None = None) -> None:
        """Count one request; raise ``RateLimitExceeded`` if a bucket is over its limit."""
        at = time.time() if now is None else now
        window = self.limits.window_seconds
        start = int(at // window) * window
        buckets = [(f"source:{source}", self.limits.per_source)]
        if client is not None:
            buckets.append((f"client:{client}", self.limits.per_client))
        buckets = [(b, limit) for b, limit in buckets if limit > 0]
        if not buckets:
            return
        over = False
        with self._db.transaction() as tx:
            for bucket, limit in buckets:
                row = tx.execute(
                    "INSERT INTO fv_service_rate (bucket, window_start, hits) VALUES (%s, %s, 1)"
                    " ON CONFLICT (bucket, window_start) DO UPDATE SET hits = fv_service_rate.hits + 1"
                    " RETURNING hits",
                    (bucket, start),
                ).fetchone()
                over = over or (row is not None and int(row[0]) > limit)
            if secrets.randbelow(64) == 0:
                tx.execute("DELETE FROM fv_service_rate WHERE window_start < %s", (start - window,))
        if over:
            raise RateLimitExceeded(max(1, math.ceil(start + window - at)))
