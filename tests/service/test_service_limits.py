"""Rate limits hold across workers (their counters are rows in the database), and bodies are bounded."""

from __future__ import annotations

import pytest
from service_helpers import Service, open_service

from faceverify._vault import MasterKey
from faceverify.hazmat import FacePipeline


def test_rate_limits_are_shared_by_every_worker_on_the_database(
    database: tuple[str, str], master_key: MasterKey, pipeline: FacePipeline
) -> None:
    # Two apps on one database stand for two worker processes (test_workers.py runs real ones).
    one = open_service(database, master_key, pipeline, rate_per_client=6, rate_per_source=1000)
    two = open_service(database, master_key, pipeline, rate_per_client=6, rate_per_source=1000)
    key = one.key("metrics")
    auth = {"Authorization": f"Bearer {key}"}
    codes = [(one if i % 2 else two).http().get("/metrics", headers=auth).status_code for i in range(8)]
    assert codes[:6] == [200] * 6 and codes[6:] == [429, 429], codes
    refused = two.http().get("/metrics", headers=auth)
    assert refused.json()["code"] == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    # Another client has its own budget.
    other = {"Authorization": f"Bearer {one.key('metrics', name='other')}"}
    assert one.http().get("/metrics", headers=other).status_code == 200


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_a_source_is_limited_even_without_a_valid_key(
    database: tuple[str, str], master_key: MasterKey, pipeline: FacePipeline
) -> None:
    svc = open_service(database, master_key, pipeline, rate_per_source=3)
    codes = [svc.http().get("/metrics").status_code for _ in range(5)]
    assert codes == [401, 401, 401, 429, 429]


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_an_oversized_body_is_refused_before_it_is_read_whole(
    database: tuple[str, str], master_key: MasterKey, pipeline: FacePipeline
) -> None:
    svc: Service = open_service(database, master_key, pipeline, max_body_bytes=64 * 1024)
    auth = {"Authorization": f"Bearer {svc.key('verify')}", "Content-Type": "image/jpeg"}
    response = svc.http().post("/v1/sessions/abc/frames", content=b"\xff" * 100_000, headers=auth)
    assert response.status_code == 413 and response.json()["code"] == "too_large"

    def chunks():  # no Content-Length: counted as it streams
        for _ in range(20):
            yield b"\xff" * 8192

    response = svc.http().post("/v1/sessions/abc/frames", content=chunks(), headers=auth)
    assert response.status_code == 413
