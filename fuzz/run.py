"""Run one fuzz target under atheris (libFuzzer), coverage-guided over faceverify's and Pillow's Python code.

    python fuzz/run.py TARGET [-runs=100000] [-max_total_time=S] [other libFuzzer flags]

The target's seeds (``targets.SEEDS``) are written to a fresh corpus directory;
a finding stops the run with libFuzzer's report and a ``crash-*`` or
``timeout-*`` file in ``$FUZZ_ARTIFACTS`` (default: the working directory);
``$FUZZ_STATS`` names a JSON file kept with the slowest input's time and size
(the input itself beside it, suffix ``.slowest``).
``fuzz/benchmark.py`` runs every target this way and records the counts.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))

with atheris.instrument_imports(include=["faceverify", "PIL", "targets"]):
    import targets


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in targets.TARGETS:
        sys.exit(f"usage: fuzz/run.py TARGET [libFuzzer flags]; targets: {', '.join(targets.TARGETS)}")
    name, flags = sys.argv[1], sys.argv[2:]
    targets.quiet()
    target = targets.TARGETS[name]
    seeds = targets.SEEDS[name]()
    corpus = Path(tempfile.mkdtemp(prefix=f"fv-fuzz-{name}-"))
    for i, seed in enumerate(seeds):
        (corpus / f"seed-{i}").write_bytes(seed)
    max_len = max(4096, 2 * max(len(s) for s in seeds))
    artifacts = os.environ.get("FUZZ_ARTIFACTS", ".")
    args = [
        sys.argv[0],
        str(corpus),
        f"-max_len={max_len}",
        "-timeout=10",  # one input taking 10 s is a finding (a slow-input DoS)
        "-rss_limit_mb=2048",
        "-print_final_stats=1",
        f"-artifact_prefix={artifacts.rstrip('/')}/{name}-",
        *flags,
    ]
    atheris.Setup(args, _timed(target, os.environ.get("FUZZ_STATS")))
    atheris.Fuzz()


def _timed(target: Callable[[bytes], None], stats: str | None) -> Callable[[bytes], None]:
    """The target, keeping the slowest input's time (libFuzzer reports whole seconds only) in ``stats``."""
    slowest = [0.0, 0]
    calls = [0]

    def run(data: bytes) -> None:
        start = time.perf_counter()
        try:
            target(data)
        finally:
            took = time.perf_counter() - start
            calls[0] += 1
            if calls[0] > 1 and took > slowest[0]:  # the first call pays lazy imports, not the input
                slowest[:] = [took, len(data)]
                if stats:
                    Path(stats).write_text(json.dumps({"slowest_s": took, "slowest_bytes": len(data)}))
                    Path(stats).with_suffix(".slowest").write_bytes(data)

    return run


if __name__ == "__main__":
    main()
