"""CI's share of the fuzzing: every atheris target for a few seconds (fuzz/benchmark.py --smoke).

The benchmark run (>= 100,000 inputs per target) is recorded in docs/threat-model.md;
this keeps each harness running and each target free of findings on every change.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_fuzz_target_runs_clean(tmp_path: Path) -> None:
    results = tmp_path / "smoke.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "fuzz" / "benchmark.py"), "--smoke", "--json", str(results),
         "--artifacts", str(tmp_path / "artifacts")],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    rows = json.loads(results.read_text())["results"]
    findings = {r["target"]: r["finding"] for r in rows if r["crashes"]}
    assert not findings, findings
    assert done.returncode == 0, done.stderr[-2000:]
    expected = {"image", "template", "header", "consent", "manifest", "cli", "request"}
    assert {r["target"] for r in rows} >= expected
    assert all(r["inputs"] > 0 for r in rows), rows
