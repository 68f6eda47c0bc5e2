"""The vault on both engines: throughput, lockout exactness under a race, and SIGKILL trials.

Writes ``benchmarks/out/vault.json`` and ``benchmarks/out/vault.md``. Not a timed test:
throughput depends on the machine and on what else runs on it (the load average is
recorded beside the figures); the exactness and crash figures do not.

- **Throughput**: ``P`` processes (1, 2, 4, 8), each on subjects of its own, run a mix of
  ceremonies for ``--seconds``: per subject one enrolment, then verifications (3 of 4
  genuine), and every 10th subject revoked. Ceremonies per second in total, per engine.
  SQLite commits with ``synchronous=FULL``; the PostgreSQL server is started *durable*
  (``fsync=on``, ``synchronous_commit=on``), each process with its own pool.
- **Lockout race**: ``N`` (8, 16) processes verify a wrong face of one subject at the same
  instant (released by one barrier); how many were compared (the limit is 5), over
  ``--race-trials`` trials.
- **SIGKILL trials**: a process loops enrol / re-enrol / revoke over 4 subjects (or rotates
  the master key) and is killed at a random moment (uniform in 0.05-0.6 s after it opened
  the vault); then every subject is checked as in ``tests/vault/test_vault_crash.py``: a
  tombstone or an active template that opens with its key, in the state its newest audited
  ceremony says, the keyed chain intact; for rotations, every committed rotation audited.
  A failed check is a *torn* subject or a *lost* audit entry.

Processes are forked after the imports (a cold interpreter costs seconds on a loaded machine).

Run: ``nice -n 10 python benchmarks/vault.py [--seconds 3] [--race-trials 3] [--kills 200]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import platform
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "scripts"), str(ROOT / "tests" / "vault")]

import pgserver  # noqa: E402
import psycopg  # noqa: E402
from crash_child import ceremonies, race, rotate  # noqa: E402
from test_vault_crash import check_after_crash  # noqa: E402
from vault_helpers import PACK, Where, consent_for, cosine_compare, unit  # noqa: E402

from faceverify._clock import SystemClock  # noqa: E402
from faceverify._errors import FaceVerifyError  # noqa: E402
from faceverify._vault import MasterKey, Vault, load_master_key  # noqa: E402

OUT = ROOT / "benchmarks" / "out"
FORK = multiprocessing.get_context("fork")


class Places:
    """Fresh vault locations on each engine: SQLite folders, PostgreSQL databases."""

    def __init__(self, base: Path, pg_url: str) -> None:
        self.base, self.n = base, 0
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench_vaults")
            conn.execute("CREATE DATABASE bench_keys")  # the key stores: another database
        self.vaults = pgserver.with_database(pg_url, "bench_vaults")
        self.keys = pgserver.with_database(pg_url, "bench_keys")

    def new(self, backend: str) -> Where:
        """A fresh place; on PostgreSQL a schema of its own in each database (the tests do the same)."""
        self.n += 1
        if backend == "sqlite":
            folder = self.base / f"v{self.n}"
            return Where("sqlite", str(folder / "vault"), str(folder / "keys" / "keys.db"))
        urls = []
        for database in (self.vaults, self.keys):
            with psycopg.connect(database, autocommit=True) as conn:
                conn.execute(f"CREATE SCHEMA s{self.n}")
            urls.append(f"{database}&options=-csearch_path%3Ds{self.n}")
        return Where("postgresql", urls[0], urls[1])


def open_vault(where: Where, key: MasterKey, *, create: bool = False) -> Vault:
    return Vault.open(
        where.database,
        key,
        keys_database=where.keys_database,
        clock=SystemClock(),
        create=create,
        pool_size=2,
    )


@contextlib.contextmanager
def env(where: Where, key: MasterKey) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in where.env(key.encoded())}
    os.environ.update(where.env(key.encoded()))
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# -- throughput -------------------------------------------------------------------------------


def _worker(where: Where, key: str, index: int, seconds: float, start: Any, results: Any) -> None:
    vault = open_vault(where, MasterKey.parse(key))
    granted = datetime.now(UTC) - timedelta(days=1)
    start.wait(timeout=120)
    done, n = 0, 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        subject, face = f"p{index}-s{n}", 1_000_000 * (index + 1) + n  # a face of each subject's own
        vault.enroll(subject, unit(face), consent=consent_for(subject, granted=granted), model_pack_id=PACK)
        done += 1
        for k in range(4):
            probe = unit(face if k < 3 else face + 500_000)
            vault.verify(subject, probe, cosine_compare(probe), model_pack_id=PACK, actor=f"p{index}")
            done += 1
        if n % 10 == 9:
            vault.revoke(subject)
            done += 1
        n += 1
    results.put(done)
    vault.close()


def throughput(places: Places, backend: str, processes: int, seconds: float) -> float:
    where, key = places.new(backend), MasterKey.generate()
    open_vault(where, key, create=True).close()
    start, results = FORK.Barrier(processes + 1), FORK.Queue()
    workers = [
        FORK.Process(target=_worker, args=(where, key.encoded(), i, seconds, start, results))
        for i in range(processes)
    ]
    for w in workers:
        w.start()
    start.wait(timeout=120)
    t0 = time.monotonic()
    total = sum(results.get(timeout=seconds + 120) for _ in workers)
    elapsed = max(time.monotonic() - t0, seconds)
    for w in workers:
        w.join()
    return total / elapsed


# -- lockout race -------------------------------------------------------------------------------


def _racer(where: Where, key: str, start: Any, results: Any) -> None:
    import io
    from contextlib import redirect_stdout

    os.environ.update(where.env(key))
    out = io.StringIO()
    with redirect_stdout(out):
        race("s0", "wrong-face", 1, wait=lambda: start.wait(timeout=120))
    results.put(out.getvalue().split()[1:])


def lockout_race(places: Places, backend: str, racers: int) -> int:
    where, key = places.new(backend), MasterKey.generate()
    vault = open_vault(where, key, create=True)
    vault.enroll("s0", unit(42), consent=consent_for("s0", granted=datetime.now(UTC)), model_pack_id=PACK)
    vault.close()
    start, results = FORK.Barrier(racers + 1), FORK.Queue()
    procs = [FORK.Process(target=_racer, args=(where, key.encoded(), start, results)) for _ in range(racers)]
    for p in procs:
        p.start()
    start.wait(timeout=120)
    outcomes = [o for _ in procs for o in results.get(timeout=120)]
    for p in procs:
        p.join()
    return outcomes.count("no-match")


# -- SIGKILL trials -----------------------------------------------------------------------------------


def _doomed(target: Callable[..., None], where: Where, key: str, arg: str, ready: Any) -> None:
    os.environ.update(where.env(key))
    target(int(arg) if target is ceremonies else arg, ready=ready.set)


def kill_trial(places: Places, backend: str, kind: str, rng: random.Random) -> dict[str, Any]:
    where, key = places.new(backend), MasterKey.generate()
    vault = open_vault(where, key, create=True)
    keydir = Path(tempfile.mkdtemp(prefix="fv-rot-", dir=places.base))
    if kind == "rotate":
        vault.enroll("s0", unit(0), consent=consent_for("s0", granted=datetime.now(UTC)), model_pack_id=PACK)
    vault.close()
    ready = FORK.Event()
    target, arg = (ceremonies, str(rng.randrange(100))) if kind == "ceremonies" else (rotate, str(keydir))
    child = FORK.Process(target=_doomed, args=(target, where, key.encoded(), arg, ready))
    child.start()
    if not ready.wait(timeout=60):
        child.kill()
        raise RuntimeError("the child never opened the vault")
    delay = rng.uniform(0.05, 0.6)
    time.sleep(delay)
    assert child.pid is not None
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    result: dict[str, Any] = {"backend": backend, "kind": kind, "delay_s": round(delay, 3)}
    try:
        if kind == "ceremonies":
            reopened = open_vault(where, key)
            counts = check_after_crash(reopened)
            result.update(counts, ok=True)
        else:
            keys = [key, *(load_master_key(p) for p in sorted(keydir.glob("key-*")))]
            reopened = None
            for candidate in reversed(keys):
                try:
                    reopened = open_vault(where, candidate)
                    break
                except FaceVerifyError:
                    continue
            assert reopened is not None, "no master key opens the vault"
            audited = sum(e.event == "key-rotate" for e in reopened.audit.entries())
            committed = _rotations(where)
            assert audited == committed, f"{committed} rotations committed, {audited} audited"
            assert reopened.audit.verify_chain().ok
            probe = unit(0)
            assert reopened.verify("s0", probe, cosine_compare(probe), model_pack_id=PACK).match
            result.update(rotations=committed, ok=True)
        reopened.close()
    except AssertionError as exc:
        result.update(ok=False, problem=str(exc)[:300])
    return result


def _rotations(where: Where) -> int:
    if where.backend == "sqlite":
        import sqlite3

        with contextlib.closing(sqlite3.connect(where.keys_database)) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM rotations").fetchone()[0])
    with psycopg.connect(where.keys_database) as pg:
        row = pg.execute("SELECT COUNT(*) FROM rotations").fetchone()
        return int(row[0]) if row else 0


# -- the run ----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per throughput run")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--race-trials", type=int, default=3)
    parser.add_argument("--kills", type=int, default=200, help="SIGKILL trials per engine")
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the PostgreSQL server on the way out
    rng = random.Random(9)
    report: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_before": os.getloadavg(),
        },
        "throughput_ceremonies_per_s": {},
        "lockout_race": {},
        "sigkill": {},
    }
    base = Path(tempfile.mkdtemp(prefix="fv-bench-"))
    os.environ.setdefault("FACEVERIFY_KEYS_DIR", str(base / "default-keys"))
    with pgserver.server(durable=True) as pg_url:
        places = Places(base, pg_url)
        for backend in args.backends:
            rates = {p: round(throughput(places, backend, p, args.seconds), 1) for p in args.processes}
            report["throughput_ceremonies_per_s"][backend] = rates
            print(f"{backend}: ceremonies/s {rates}", flush=True)
            report["lockout_race"][backend] = {
                n: [lockout_race(places, backend, n) for _ in range(args.race_trials)] for n in (8, 16)
            }
            print(f"{backend}: compared under the race {report['lockout_race'][backend]}", flush=True)
            trials = []
            for i in range(args.kills):
                kind = "rotate" if i % 4 == 3 else "ceremonies"
                trials.append(kill_trial(places, backend, kind, rng))
            bad = [t for t in trials if not t["ok"]]
            report["sigkill"][backend] = {
                "trials": len(trials),
                "ceremony_trials": sum(t["kind"] == "ceremonies" for t in trials),
                "rotation_trials": sum(t["kind"] == "rotate" for t in trials),
                "failed": len(bad),
                "failures": bad[:10],
                "audited_ceremonies_checked": sum(t.get("ceremonies", 0) for t in trials),
                "rotations_checked": sum(t.get("rotations", 0) for t in trials),
            }
            print(f"{backend}: SIGKILL {report['sigkill'][backend]['trials']} trials, "
                  f"{len(bad)} failed", flush=True)  # fmt: skip
    shutil.rmtree(base, ignore_errors=True)
    report["machine"]["load_after"] = os.getloadavg()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "vault.json").write_text(json.dumps(report, indent=2) + "\n")
    (OUT / "vault.md").write_text(_table(report))
    print(_table(report))
    return 0 if all(r["failed"] == 0 for r in report["sigkill"].values()) else 1


def _table(report: dict[str, Any]) -> str:
    lines = ["| engine | ceremonies/s at 1 / 2 / 4 / 8 processes | compared of 8 racers | compared of 16 |"
             " SIGKILL trials (torn or lost) |", "|---|---|---|---|---|"]  # fmt: skip
    for backend, rates in report["throughput_ceremonies_per_s"].items():
        race = report["lockout_race"][backend]
        kill = report["sigkill"][backend]
        lines.append(
            f"| {backend} | {' / '.join(str(v) for v in rates.values())} | {max(race[8])} max of {race[8]} |"
            f" {max(race[16])} max of {race[16]} | {kill['trials']} ({kill['failed']}) |"
        )
    load = report["machine"]
    lines.append(
        f"\nLoad average before / after: {load['load_before']} / {load['load_after']} on {load['cpus']} CPUs."
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
