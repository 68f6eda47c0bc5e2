"""Prometheus metrics: request counts and latencies by route *template*, decisions by outcome.

Labels are the route's template (``/v1/subjects/{subject_id}``, never the
path with an id in it), the method, the status and the decision's outcome:
nothing biometric, no subject ids. Each app has its own registry; with several
worker processes set ``PROMETHEUS_MULTIPROC_DIR`` (an empty directory) and
``/metrics`` aggregates every worker's (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "faceverify_http_requests",
            "HTTP requests by route template, method and status",
            ("route", "method", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "faceverify_http_request_duration_seconds",
            "Time to answer a request, by route template",
            ("route", "method"),
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.decisions = Counter(
            "faceverify_decisions",
            "Verification decisions and refusals by kind (still, live) and outcome",
            ("kind", "outcome"),
            registry=self.registry,
        )
        self.frames = Counter(
            "faceverify_session_frames", "Live-session frames received", registry=self.registry
        )

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
