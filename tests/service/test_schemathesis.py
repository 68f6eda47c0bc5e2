"""schemathesis against a running ``faceverify serve``: every operation, no 5xx, responses as documented.

Bounded (``MAX_EXAMPLES`` per operation) to keep this part of CI short. The key
is an admin's, so requests reach the operations rather than stopping at 401
(which test_auth.py covers on every operation).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
import servers
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from faceverify._vault import MasterKey, Vault

MAX_EXAMPLES = 12
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Iterator[tuple[str, str]]:
    tmp = tmp_path_factory.mktemp("schemathesis")
    url, keys = f"sqlite:///{tmp / 'vault'}", f"sqlite:///{tmp / 'keys'}"
    master = MasterKey.generate()
    Vault.open(url, master, keys_database=keys, create=True)
    env = {"FACEVERIFY_MASTER_KEY": master.encoded()}
    made = servers.faceverify(
        "clients", "create", "fuzz", "--scopes", "admin,metrics", "--database", url, "--json", env=env
    )
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)["api_key"]
    extra = ("--cache", str(model_cache), "--rate-per-client", "0", "--rate-per-source", "0")
    with servers.running(url, keys_database=keys, env=env, log_dir=tmp, extra=extra) as server:
        yield server.url, key


DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
SCHEMA = schemathesis.openapi.from_path(str(DOC))  # the committed document, checked against the live app
PATHS = json.loads(DOC.read_text())["paths"]
#: (method, path, mode): negative cases only where there is input to get wrong.
CASES = [
    (method.upper(), path, mode)
    for path, item in PATHS.items()
    for method, op in item.items()
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or op.get("parameters") or op.get("requestBody")
]


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=[f"{m} {p} {g.value}" for m, p, g in CASES])
def test_every_operation_answers_as_documented(
    method: str, path: str, mode: GenerationMode, running: tuple[str, str]
) -> None:
    url, key = running
    operation = SCHEMA[path][method]

    @settings(
        max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=url, headers={"Authorization": f"Bearer {key}"}, checks=CHECKS)

    check()
