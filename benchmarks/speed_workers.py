"""Server throughput: verifications per second with 1 and 2 worker processes, memory per worker.

    python benchmarks/speed_workers.py [--seconds 20] [--repeats 3]

A worker is what a login server runs per core: one process, the default pack
loaded once (onnxruntime one thread), verifying probe photos against enrolled
references in a loop: decode, detect, align, quality gate, embed (the mirror
view only in the pack's band), cosine against the claimed reference, decision
at the default operating point. Probes are LFW photos, genuine and impostor
alternating, the references embedded beforehand (a template read is not timed
here; the service benchmark covers storage). Workers start together on a
barrier and run for ``--seconds``; throughput is verifications completed per
second of wall time. 1 and 2 workers alternate ``--repeats`` times so drifts in
the machine's load fall on both; the load average is recorded beside them:
on a machine shared with other jobs the 2-worker figure is bounded by the CPU
the others leave, not by the library (no lock, no shared state between workers).

Memory: each worker's resident set after warm-up and its peak (``VmRSS``,
``VmHWM`` from /proc). Writes ``benchmarks/out/speed_workers.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _lfw import LFW_ROOT, OUT

#: CPUs the two workers must get between them for the wall-time scaling to measure the library.
IDLE_SHARE = 1.9


def _status(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def pairs(count: int = 60) -> list[tuple[Path, Path]]:
    people = sorted(p for p in LFW_ROOT.iterdir() if p.is_dir() and len(list(p.glob("*.jpg"))) >= 2)
    step = max(1, len(people) // count)
    chosen = people[::step][:count]
    out = []
    for k, person in enumerate(chosen):
        a, b = sorted(person.glob("*.jpg"))[:2]
        # genuine for even k; impostor (another person's reference) for odd k
        ref = b if k % 2 == 0 else sorted(chosen[(k + 1) % len(chosen)].glob("*.jpg"))[0]
        out.append((a, ref))
    return out


def worker(barrier: Any, seconds: float, queue: Any) -> None:
    from faceverify import FaceVerifyError, QualityPolicy
    from faceverify.hazmat import builtin_manifest, load_pipeline

    pack = builtin_manifest("yunet-sface")
    pipe = load_pipeline(pack, threads=1)
    threshold = pack.operating_point("default").threshold
    work = pairs()
    refs = [pipe.sample(ref, policy=None, select="dominant").embedding for _, ref in work]
    policy = QualityPolicy()
    for probe, _ in work[:3]:
        pipe.sample(probe, policy=None, select="dominant")
    rss = _status("VmRSS")
    barrier.wait()
    done = 0
    t0, c0 = time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        i = done % len(work)
        try:
            p = pipe.probe(work[i][0], policy=policy)
            _ = p.score(refs[i], threshold) >= threshold
        except FaceVerifyError:
            pass  # a refusal is a completed verification too
        done += 1
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    queue.put({"done": done, "seconds": elapsed, "cpu": cpu, "rss_mb": rss, "peak_mb": _status("VmHWM")})


def run(workers: int, seconds: float) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(workers)
    queue = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(barrier, seconds, queue)) for _ in range(workers)]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    return {
        "workers": workers,
        "per_second": sum(r["done"] / r["seconds"] for r in results),
        # what each worker completes per second of CPU it got: flat across worker counts means
        # the workers share nothing (no lock, no contention), so throughput scales with free cores
        "per_cpu_second": [round(r["done"] / r["cpu"], 2) for r in results],
        "cpu_share": round(sum(r["cpu"] / r["seconds"] for r in results), 2),
        "rss_mb": [round(r["rss_mb"], 1) for r in results],
        "peak_mb": [round(r["peak_mb"], 1) for r in results],
        "load": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    runs = []
    for _ in range(args.repeats):
        for n in (1, 2):
            r = run(n, args.seconds)
            runs.append(r)
            print(
                f"{n} worker(s): {r['per_second']:.1f}/s, per CPU s {r['per_cpu_second']}, "
                f"CPUs used {r['cpu_share']}, load {r['load']}",
                file=sys.stderr,
                flush=True,
            )
    one = statistics.median(r["per_second"] for r in runs if r["workers"] == 1)
    two = statistics.median(r["per_second"] for r in runs if r["workers"] == 2)
    per_cpu = {
        n: statistics.median(x for r in runs if r["workers"] == n for x in r["per_cpu_second"])
        for n in (1, 2)
    }
    share = {n: statistics.median(r["cpu_share"] for r in runs if r["workers"] == n) for n in (1, 2)}
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)),
        "runs": runs,
        "one_worker_per_second": one,
        "two_workers_per_second": two,
        "scaling": two / one,
        "per_cpu_second": per_cpu,
        "cpus_used": share,
        "rss_mb_median": statistics.median(x for r in runs for x in r["rss_mb"]),
        "peak_mb_median": statistics.median(x for r in runs for x in r["peak_mb"]),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "speed_workers.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    md = (
        f"{result['date']}, {result['cpus']} CPUs ({result['cpus_available']} available to this process); "
        f"{args.repeats} alternations of {args.seconds:.0f} s runs; "
        f"load averages {[r['load'][0] for r in runs]}\n\n"
        "| workers | verifications / s (median) | scaling | CPUs the workers got | per worker per CPU-second "
        "| RSS per worker after warm-up | peak |\n"
        "|---|---:|---:|---:|---:|---:|---:|\n"
        f"| 1 | {one:.1f} | 1.00× | {share[1]:.2f} | {per_cpu[1]:.1f} | {result['rss_mb_median']:.0f} MB "
        f"| {result['peak_mb_median']:.0f} MB |\n"
        f"| 2 | {two:.1f} | {two / one:.2f}× | {share[2]:.2f} | {per_cpu[2]:.1f} | | |\n"
        + (
            ""
            if share[2] >= IDLE_SHARE
            else f"\nThe two workers got {share[2]:.2f} CPUs (< {IDLE_SHARE}): other jobs held the "
            "machine, so the wall-time scaling measures the scheduler; judge the bar on an idle machine.\n"
        )
    )
    (OUT / "speed_workers.md").write_text(md, encoding="utf-8")
    print(md)


if __name__ == "__main__":
    main()
