"""The fuzz targets (fuzz/targets.py) as Hypothesis properties: fast, in every run of the suite.

Inputs are the targets' own seeds mutated byte by byte (what finds parser bugs)
and raw binary; the benchmark run of >= 100,000 inputs per target under atheris
is fuzz/benchmark.py (docs/threat-model.md has its table). Findings of that run
are kept here as explicit examples.
"""

from __future__ import annotations

import io
import json
import random
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))
import targets  # fuzz/ is not a package

targets.quiet()
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def mutants(name: str) -> st.SearchStrategy[bytes]:
    seeds = targets.SEEDS[name]()
    mutated = st.builds(
        lambda i, seed: targets.mutate(seeds[i % len(seeds)], random.Random(seed)),
        st.integers(0, len(seeds) - 1),
        st.integers(0, 2**32),
    )
    return st.one_of(mutated, st.sampled_from(seeds), st.binary(max_size=512))


def _gif_strip() -> bytes:
    buf = io.BytesIO()
    Image.new("P", (9000, 40)).save(buf, "GIF")
    return buf.getvalue()


def _mistyped_manifest(field: str, value: object, pack: str = "yunet-sface") -> bytes:
    """A built-in pack's manifest with ``field`` set to ``value``."""
    data = next(d for d in map(json.loads, targets.manifest_seeds()) if d["id"] == pack)
    data[field] = value
    return json.dumps(data).encode()


def _bad_digest_manifest() -> bytes:
    data = json.loads(targets.manifest_seeds()[0])
    digest = data["files"][0]["sha256"]
    data["files"][0]["sha256"] = digest[:21] + "$" + digest[21:]  # 65 characters, one not hex
    return json.dumps(data).encode()


@FAST
@given(mutants("image"))
@example(_gif_strip())  # finding: a 9000×40 strip was reduced to 1286×6, under the 32 px minimum
def test_image(data: bytes) -> None:
    targets.image(data)


@FAST
@given(mutants("template"))
def test_template(data: bytes) -> None:
    targets.template(data)


@FAST
@given(mutants("recollection"))
def test_recollection(data: bytes) -> None:
    targets.recollection(data)


@FAST
@given(mutants("header"))
def test_header(data: bytes) -> None:
    targets.header(data)


@FAST
@given(mutants("consent"))
def test_consent(data: bytes) -> None:
    targets.consent(data)


@FAST
@given(mutants("manifest"))
@example(_bad_digest_manifest())  # finding: a digest that is not 64 hex digits was accepted as pinned
# Finding (eighth session, the CI smoke run): a value of the wrong kind where a mapping belongs
# raised AttributeError, not ModelError.
@example(_mistyped_manifest("calibrated_for", {"bounds": 1.0, "admitted": 0.5, "dataset": "x"}))
@example(_mistyped_manifest("fusion", {"impostor": 1.0, "rule": "zscore-mean"}, pack="faceplugin-fr512"))
@example(_mistyped_manifest("session_identity", [1, 2]))
@example(
    _mistyped_manifest(
        "condition_operating_points",
        [{"condition": "c", "embedding_space": "e", "operating_points": [], "quality": 3}],
    )
)
def test_manifest(data: bytes) -> None:
    targets.manifest(data)


@FAST
@given(mutants("cli"))
def test_cli(data: bytes) -> None:
    targets.cli(data)


@FAST
@given(mutants("request"))
def test_request(data: bytes) -> None:
    targets.request(data)


@FAST
@given(mutants("service_body"))
def test_service_body(data: bytes) -> None:
    targets.service_body(data)


@FAST
@given(mutants("subject_id"))
@example(("a" + "\udc89" * 40).encode("utf-8", "surrogateescape"))  # finding: a 405-character message
def test_subject_id(data: bytes) -> None:
    targets.subject_id(data)


@pytest.mark.parametrize("name", sorted(targets.TARGETS))
def test_seeds_pass_their_target(name: str) -> None:
    target: Callable[[bytes], None] = targets.TARGETS[name]
    for seed in targets.SEEDS[name]():
        target(seed)
