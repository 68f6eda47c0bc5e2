"""Every fuzz target under atheris, one process each: inputs run, findings, the slowest input.

    nice -n 10 python fuzz/benchmark.py --runs 100000 --json fuzz/results.json   # the benchmark run
    python fuzz/benchmark.py --smoke                                            # CI: a few seconds each

Prints the table docs/threat-model.md carries. A finding (an exception outside
the documented ones, a broken invariant, an input over libFuzzer's 10 s
timeout or 2 GB of memory) ends that target's run with its input saved under
``--artifacts``; the script then exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGETS = [
    "image", "template", "recollection", "header", "consent", "manifest", "cli", "request", "service_body",
    "subject_id",
]  # fmt: skip


def run_target(name: str, flags: list[str], artifacts: Path, limit: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        stats = Path(tmp) / "stats.json"
        env = {**os.environ, "FUZZ_ARTIFACTS": str(artifacts), "FUZZ_STATS": str(stats)}
        start = time.monotonic()
        done = subprocess.run(
            [sys.executable, str(HERE / "run.py"), name, *flags],
            capture_output=True,
            text=True,
            env=env,
            timeout=limit,
            check=False,
        )
        wall = time.monotonic() - start
        slowest = (
            json.loads(stats.read_text()) if stats.exists() else {"slowest_s": None, "slowest_bytes": None}
        )
        if stats.with_suffix(".slowest").exists():  # kept for a look: what made it slow
            (artifacts / f"{name}-slowest").write_bytes(stats.with_suffix(".slowest").read_bytes())
    found = dict(re.findall(r"^stat::(\w+):\s+(\d+)", done.stderr, flags=re.M))
    crashed = done.returncode != 0
    return {
        "target": name,
        "inputs": int(found.get("number_of_executed_units", 0)),
        "crashes": int(crashed),
        "finding": _finding(done.stderr) if crashed else None,
        "new_coverage_units": int(found.get("new_units_added", 0)),
        "slowest_input_s": None if slowest["slowest_s"] is None else round(slowest["slowest_s"], 4),
        "slowest_input_bytes": slowest["slowest_bytes"],
        "peak_rss_mb": int(found.get("peak_rss_mb", 0)),
        "seconds": round(wall, 1),
    }


def _finding(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    keep = [ln for ln in lines if "Error" in ln or "error" in ln or "Exception" in ln or "artifact" in ln]
    return "\n".join(keep[-8:] or lines[-8:])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=100_000, help="inputs per target")
    parser.add_argument("--smoke", action="store_true", help="CI: ~4 s per target")
    parser.add_argument("--targets", nargs="+", default=TARGETS, choices=TARGETS)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--artifacts", type=Path, default=Path(tempfile.gettempdir()) / "fv-fuzz-artifacts")
    args = parser.parse_args()
    args.artifacts.mkdir(parents=True, exist_ok=True)
    if args.smoke:
        flags, limit = ["-runs=50000", "-max_total_time=4"], 120.0
    else:
        flags, limit = [f"-runs={args.runs}"], 4 * 3600.0
    rows = []
    for name in args.targets:
        row = run_target(name, flags, args.artifacts, limit)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    print("| target | inputs | crashes | slowest input | new coverage | peak RSS | time |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        slow = (
            "n/a"
            if r["slowest_input_s"] is None
            else f"{r['slowest_input_s'] * 1000:.1f} ms ({r['slowest_input_bytes']} B)"
        )
        print(
            f"| {r['target']} | {r['inputs']:,} | {r['crashes']} | {slow} | {r['new_coverage_units']} "
            f"| {r['peak_rss_mb']} MB | {r['seconds']} s |"
        )
    if args.json:
        args.json.write_text(json.dumps({"flags": flags, "results": rows}, indent=2) + "\n")
    if any(r["crashes"] for r in rows):
        for r in rows:
            if r["finding"]:
                print(f"\n{r['target']}: {r['finding']}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
