"""Load and fault runs of `faceverify serve` on loopback: --workers 2 on a real PostgreSQL.

    python benchmarks/service.py [--clients 4] [--sessions 2] [--stills 4] [--json out.json]

Bounded in count and time. Subjects are LFW people with at least three photos
(../shared/data/lfw; benchmark data, never copied): enrolled from two, probed with the
third, each subject by its own client thread, so no capture is tried against several
subjects (the anti-enumeration guard would rightly refuse that). Live sessions send
frames posed from the probe photo (tests/liveness/liveness_frames.py) for the test-only
fixed challenges (docs/service.md); stills go to subjects whose consent purpose allows
them ("photo-check"). Phases:

1. load: N clients × (live sessions + still verifications); throughput and p50/p95/p99 per
   endpoint;
2. integrity: every decision a client got has its audit entry, the audit chain verifies,
   every template still opens (0 lost or torn records);
3. lockout under concurrency: 12 failed sessions of one subject finished at once;
   exactly floor(12/5) lockouts and 12 counted failures;
4. a worker killed (SIGKILL) mid-session: the session's next frames go to the other
   worker (retried once on a dropped connection) and it completes;
5. the database restarted mid-run: requests fail cleanly with 503 store_unavailable (no
   500s), and succeed again once it is back.

Figures are from a shared 2-core machine under other agents' load: compare runs made
together, not across days.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import io
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [
    str(ROOT / "src"),
    str(ROOT / "scripts"),
    str(ROOT / "tests" / "service"),
    str(ROOT / "tests" / "liveness"),
]
import pgserver  # noqa: E402
import servers  # noqa: E402
from liveness_frames import Poser  # noqa: E402

from faceverify._clock import FrozenClock  # noqa: E402
from faceverify._errors import FaceVerifyError  # noqa: E402
from faceverify._liveness import Challenge, ChallengeSession  # noqa: E402
from faceverify._profiles import get_profile  # noqa: E402
from faceverify._service import ClientStore, open_service_database  # noqa: E402
from faceverify._vault import MasterKey, Vault  # noqa: E402
from faceverify.hazmat import builtin_manifest, load_image, load_pipeline  # noqa: E402

SHARED = Path(os.environ.get("FACEVERIFY_SHARED", ROOT.parent / "shared"))
LFW = SHARED / "data" / "lfw"
CACHE = Path(os.environ.get("FACEVERIFY_TEST_CACHE", ROOT / ".fv-cache")) / "models"
CHALLENGES = (Challenge.TURN_RIGHT, Challenge.TURN_LEFT)
#: Yaw per frame answering them: each turn held three frames at 32 degrees (LFW's small faces).
YAWS = [0.0, 0.0, -16.0, -32.0, -32.0, -32.0, 0.0, 0.0, 16.0, 32.0, 32.0, 32.0, 0.0, 0.0]
RELEASE = "0" * 64


def jpeg(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="JPEG", quality=90)
    return out.getvalue()


def people(count: int) -> list[list[Path]]:
    """LFW people with >= 3 photos, sorted by name (deterministic)."""
    found = []
    for folder in sorted(p for p in LFW.iterdir() if p.is_dir()):
        photos = sorted(folder.glob("*.jpg"))
        if len(photos) >= 3:
            found.append(photos[:3])
        if len(found) == count:
            break
    return found


def upscale(path: Path) -> np.ndarray:
    """LFW photos are 250 px: doubled, so the face passes the capture-quality minimums."""
    image = Image.fromarray(load_image(path))
    return np.asarray(image.resize((500, 500), Image.Resampling.BICUBIC))


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.samples: dict[str, list[float]] = defaultdict(list)
        self.statuses: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))

    def call(self, http: httpx.Client, endpoint: str, method: str, url: str, **kw: Any) -> httpx.Response:
        started = time.perf_counter()
        response = http.request(method, url, **kw)
        took = time.perf_counter() - started
        with self.lock:
            self.samples[endpoint].append(took)
            self.statuses[endpoint][response.status_code] += 1
        return response

    def table(self) -> list[dict[str, Any]]:
        rows = []
        for endpoint, values in sorted(self.samples.items()):
            q = np.percentile(values, [50, 95, 99]) * 1000
            rows.append(
                {
                    "endpoint": endpoint,
                    "requests": len(values),
                    "p50_ms": round(float(q[0]), 1),
                    "p95_ms": round(float(q[1]), 1),
                    "p99_ms": round(float(q[2]), 1),
                    "statuses": dict(self.statuses[endpoint]),
                }
            )
        return rows


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def consent(purpose: str) -> dict[str, Any]:
    return {
        "purpose": purpose,
        "expires_at": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
        "evidence": {
            "document_sha256": RELEASE,
            "method": "benchmark",
            "collected_by": "benchmarks/service.py",
        },
    }


def run_session(
    rec: Recorder, https: list[httpx.Client], key: str, subject: str, frames: list[bytes], retry: bool = False
) -> dict[str, Any]:
    h = auth(key)
    started = rec.call(
        https[0], "POST /v1/sessions", "POST", "/v1/sessions", json={"subject_id": subject}, headers=h
    )
    if started.status_code != 201:
        return {"error": started.json().get("code")}
    sid = started.json()["session_id"]
    update: dict[str, Any] = {}
    for i, frame in enumerate(frames):
        http = https[i % len(https)]
        for attempt in (1, 2):
            try:
                r = rec.call(
                    http,
                    "POST /v1/sessions/{sid}/frames",
                    "POST",
                    f"/v1/sessions/{sid}/frames",
                    content=frame,
                    headers={**h, "Content-Type": "image/jpeg"},
                )
                update = r.json()
                break
            except httpx.TransportError:
                if not retry or attempt == 2:
                    raise
                http = https[(i + 1) % len(https)]
    finished = rec.call(
        https[-1], "POST /v1/sessions/{sid}/finish", "POST", f"/v1/sessions/{sid}/finish", headers=h
    )
    return {"state": update.get("state"), "status": finished.status_code, "body": finished.json()}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--sessions", type=int, default=2, help="live sessions per client")
    parser.add_argument("--stills", type=int, default=4, help="still verifications per client")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not (LFW / "pairs.csv").exists():
        print(f"LFW not found at {LFW}: this benchmark needs ../shared/data/lfw", file=sys.stderr)
        return 2
    base = Path(tempfile.mkdtemp(prefix="fvbench-"))  # server logs
    pg = Path(tempfile.mkdtemp(prefix="fvpg-"))  # the PostgreSQL server's own (its user must enter it)
    url0 = pgserver.start(pg, durable=True)
    result: dict[str, Any] = {"clients": args.clients, "sessions": args.sessions, "stills": args.stills}
    started_servers: list[servers.Server] = []
    try:
        import psycopg

        with psycopg.connect(url0, autocommit=True) as conn:
            conn.execute("CREATE DATABASE fv_vault")
            conn.execute("CREATE DATABASE fv_keys")
        url, keys_url = url0.replace("/postgres?", "/fv_vault?"), url0.replace("/postgres?", "/fv_keys?")
        master = MasterKey.generate()
        vault = Vault.open(url, master, keys_database=keys_url, create=True)
        store = ClientStore(open_service_database(url))
        admin = store.create("bench-admin", scopes=["admin"])[1]
        env = {
            "FACEVERIFY_MASTER_KEY": master.encoded(),
            "FACEVERIFY_TEST_FIXED_CHALLENGES": ",".join(c.value for c in CHALLENGES),
        }
        # photo-check: stills are verified where the subject's consent purpose allows them (the
        # app-login subjects' stills are still refused); sessions then run without the passive
        # PAD check that the app-login profile adds at each session's end.
        extra = (
            "--cache", str(CACHE), "--profile", "photo-check",
            "--rate-per-client", "0", "--rate-per-source", "0", "--threads", "1",
        )  # fmt: skip
        server = servers.start(url, keys_database=keys_url, env=env, log_dir=base, workers=2, extra=extra)
        started_servers.append(server)
        pipeline = load_pipeline(builtin_manifest("yunet-sface"), cache=CACHE)

        # -- subjects: one live (app-login) and one still (photo-check) subject per client -------
        http = httpx.Client(base_url=server.url, timeout=60)
        subjects: list[dict[str, Any]] = []
        for i, photos in enumerate(people(6 * args.clients + 12)):
            if len(subjects) == 2 * args.clients + 1:
                break
            purpose = "app-login" if len(subjects) % 2 == 0 else "photo-check"
            sid = f"bench-{i}"
            probe = upscale(photos[2])
            poser = Poser(pipeline, probe, seed=i)
            arrays = [poser.frame(yaw=yaw) for yaw in YAWS]
            if purpose == "app-login" and not answers_challenges(pipeline, arrays):
                continue  # the synthetic turn does not register on this face: not a live subject
            try:
                pipeline.sample(jpeg(probe), policy=get_profile("photo-check").quality)
            except FaceVerifyError:
                continue  # an LFW photo with a second face, or too poor: not a still probe
            http.post(
                f"/v1/subjects/{sid}/consent", json=consent(purpose), headers=auth(admin)
            ).raise_for_status()
            files = [("images", (p.name, jpeg(upscale(p)), "image/jpeg")) for p in photos[:2]]
            r = http.post(f"/v1/subjects/{sid}/enrollment", files=files, headers=auth(admin))
            if r.status_code != 201:
                continue  # this person's two photos were refused (quality, not one person): next
            frames = [jpeg(a) for a in arrays]
            subjects.append({"id": sid, "purpose": purpose, "frames": frames, "still": jpeg(probe)})
        lock_subject = subjects.pop()
        live = [s for s in subjects if s["purpose"] == "app-login"][: args.clients]
        still = [s for s in subjects if s["purpose"] == "photo-check"][: args.clients]
        keys = [store.create(f"bench-{c}", scopes=["verify"])[1] for c in range(args.clients)]

        # -- 1. load ---------------------------------------------------------------------------
        rec = Recorder()
        decisions: dict[str, list[bool]] = defaultdict(list)
        refusals: list[str] = []

        def client(c: int) -> None:
            with httpx.Client(base_url=server.url, timeout=60) as h:
                for _ in range(args.sessions):
                    s = live[c % len(live)]
                    out = run_session(rec, [h], keys[c], s["id"], s["frames"])
                    decided = out.get("status") == 200
                    decisions[s["id"]].append(decided and out["body"]["match"])
                    if not decided:
                        refusals.append(out.get("body", {}).get("code", "?"))
                for _ in range(args.stills):
                    s = still[c % len(still)]
                    files = {"image": ("probe.jpg", s["still"], "image/jpeg")}
                    r = rec.call(
                        h,
                        "POST /v1/subjects/{id}/verification",
                        "POST",
                        f"/v1/subjects/{s['id']}/verification",
                        files=files,
                        headers=auth(keys[c]),
                    )
                    decisions[s["id"]].append(r.status_code == 200 and r.json()["match"])
                    if r.status_code != 200:
                        refusals.append(r.json().get("code", "?"))

        t0 = time.perf_counter()
        with cf.ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(client, range(args.clients)))
        wall = time.perf_counter() - t0
        total = sum(len(v) for v in rec.samples.values())
        result["load"] = {
            "wall_s": round(wall, 1),
            "requests_per_s": round(total / wall, 2),
            "sessions_per_s": round(args.clients * args.sessions / wall, 3),
            "endpoints": rec.table(),
            "genuine_accepted": sum(sum(v) for v in decisions.values()),
            "genuine_attempts": sum(len(v) for v in decisions.values()),
            "refusals": {code: refusals.count(code) for code in set(refusals)},
        }

        # -- 2. integrity -----------------------------------------------------------------------
        audited = 0
        for s in live + still:
            audited += sum(
                1
                for e in vault.audit.entries(subject=s["id"])
                if e.event == "verify" and e.outcome in ("match", "no-match")
            )
        opened = 0
        space = builtin_manifest("yunet-sface").embedding_space
        for n, s in enumerate(live + still):
            probe = np.random.default_rng(n).standard_normal(128).astype(np.float32)
            with contextlib.suppress(Exception):
                vault.verify(s["id"], probe / np.linalg.norm(probe), _Open, model_pack_id=space)
                opened += 1
        result["load"]["refused_reasons"] = [
            e.reason[:120]
            for x in live
            for e in vault.audit.entries(subject=x["id"])
            if e.event == "verify" and e.outcome == "refused"
        ]
        result["integrity"] = {
            "decisions": sum(len(v) for v in decisions.values()) - len(refusals),
            "audited_decisions": audited,
            "audit_chain_ok": vault.audit.verify_chain().ok,
            "templates_opening": f"{opened}/{len(live) + len(still)}",
        }

        # -- 3. lockout under concurrency --------------------------------------------------------
        key = store.create("bench-lock", scopes=["verify"])[1]
        with httpx.Client(base_url=server.url, timeout=60) as h:
            sids = [
                h.post("/v1/sessions", json={"subject_id": lock_subject["id"]}, headers=auth(key))
                .json()
                .get("session_id")
                for _ in range(12)
            ]
        sids = [s for s in sids if s]

        def finish(sid: str) -> int:
            with httpx.Client(base_url=server.url, timeout=60) as h:
                return h.post(f"/v1/sessions/{sid}/finish", headers=auth(key)).status_code

        with cf.ThreadPoolExecutor(12) as pool:
            codes = list(pool.map(finish, sids))
        entries = list(vault.audit.entries(subject=lock_subject["id"]))
        with httpx.Client(base_url=server.url, timeout=60) as h:
            body = {"subject_id": lock_subject["id"]}
            as_verifier = h.post("/v1/sessions", json=body, headers=auth(key)).json()
            as_admin = h.post("/v1/sessions", json=body, headers=auth(admin)).json()
        result["lockout"] = {
            "sessions_finished_unfinished": len(sids),
            "statuses": {str(c): codes.count(c) for c in set(codes)},
            "failures_audited": sum(1 for e in entries if e.event == "verify" and e.outcome == "refused"),
            "lockouts": sum(1 for e in entries if e.event == "lockout"),
            "expected_lockouts": len(sids) // vault.lockout.max_failures,
            "next_start_verify_client": as_verifier.get("code"),
            "next_start_admin": f"{as_admin.get('code')} retry_after={as_admin.get('retry_after')}",
        }

        # -- 4. a worker killed mid-session -------------------------------------------------------
        workers = _children(server.process.pid)
        s = next((x for x in live if all(decisions[x["id"]])), live[0])
        statuses: list[int] = []
        ticket = http.post("/v1/sessions", json={"subject_id": s["id"]}, headers=auth(admin)).json()
        sid, update, retried = ticket["session_id"], {}, 0
        for i, frame in enumerate(s["frames"]):
            for attempt in range(3):
                # Frame 5 is in flight when a worker is killed: its connection may drop (retried).
                killer = None
                if i == 4 and attempt == 0 and workers:
                    killer = threading.Timer(0.05, os.kill, (workers[0], signal.SIGKILL))
                    killer.start()
                try:
                    with httpx.Client(base_url=server.url, timeout=60) as h:  # a new connection per frame
                        r = h.post(
                            f"/v1/sessions/{sid}/frames",
                            content=frame,
                            headers={**auth(admin), "Content-Type": "image/jpeg"},
                        )
                    statuses.append(r.status_code)
                    update = r.json()
                    break
                except httpx.TransportError:
                    retried += 1
                finally:
                    if killer is not None:
                        killer.join()
        done = http.post(f"/v1/sessions/{sid}/finish", headers=auth(admin))
        result["worker_killed"] = {
            "killed_pid": workers[0] if workers else None,
            "frames_retried": retried,
            "frame_statuses": {str(c): statuses.count(c) for c in set(statuses)},
            "last_frame": update.get("code") or update.get("state"),
            "final_state": update.get("state"),
            "finish_status": done.status_code,
            "match": done.json().get("match"),
            "reasons": done.json().get("reasons"),
            "workers_after": len(_children(server.process.pid)),
        }

        # -- 5. the database restarted mid-run -----------------------------------------------------
        stop = threading.Event()
        seen: list[tuple[float, int, str, float]] = []  # (request start, status, code, end)

        def hammer() -> None:
            with httpx.Client(base_url=server.url, timeout=30) as h:
                t = still[0]
                while not stop.is_set():
                    files = {"image": ("probe.jpg", t["still"], "image/jpeg")}
                    at = time.perf_counter()
                    try:
                        r = h.post(f"/v1/subjects/{t['id']}/verification", files=files, headers=auth(keys[0]))
                        code = r.json().get("code", "ok") if r.status_code != 200 else "ok"
                        seen.append((at, r.status_code, code, time.perf_counter()))
                    except httpx.TransportError as exc:
                        seen.append((at, 0, type(exc).__name__, time.perf_counter()))
                    time.sleep(0.05)

        threads = [threading.Thread(target=hammer) for _ in range(3)]
        for thread in threads:
            thread.start()
        time.sleep(2)
        t_stop = time.perf_counter()
        pgserver._run(
            [
                *pgserver._as_user(),
                str(pgserver.bindir() / "pg_ctl"),
                "-D",
                str(pg / "data"),
                "-m",
                "fast",
                "-w",
                "stop",
            ]
        )
        time.sleep(5)
        pgserver.start(pg, durable=True)
        t_up = time.perf_counter()
        deadline = t_up + 60
        while time.perf_counter() < deadline:  # until three requests started after the restart succeed
            if sum(1 for x in list(seen) if x[0] > t_up and x[1] == 200) >= 3:
                break
            time.sleep(0.5)
        stop.set()
        for thread in threads:
            thread.join()
        during = [x for x in seen if x[0] <= t_up and x[3] >= t_stop]  # overlapping the outage
        after = [x for x in seen if x[0] > t_up]
        first_ok = next((x[0] for x in after if x[1] == 200), None)
        result["database_restart"] = {
            "outage_s": round(t_up - t_stop, 1),
            "during": {
                f"{st} {code}": sum(1 for x in during if (x[1], x[2]) == (st, code))
                for st, code in {(x[1], x[2]) for x in during}
            },
            "server_errors_500": sum(1 for x in seen if x[1] >= 500 and x[1] != 503),
            "longest_request_during_s": round(max((x[3] - x[0] for x in during), default=0.0), 2),
            "recovered_after_s": None if first_ok is None else round(first_ok - t_up, 2),
            "after_ok": sum(1 for x in after if x[1] == 200),
            "after_total": len(after),
        }
        http.close()
    finally:
        for s in started_servers:
            s.stop()
        pgserver.stop(pg)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


def answers_challenges(pipeline: Any, frames: list[np.ndarray]) -> bool:
    """Whether posed frames pass the fixed challenges, checked locally before the run.

    The synthetic warp turns some LFW faces too little for the landmarks to show it; such a
    person would measure the warp, not the service. (Same policy as the server's sessions.)
    """
    clock = FrozenClock(datetime.now(UTC))
    session = ChallengeSession(pipeline, clock=clock, challenges=CHALLENGES)
    for frame in frames:
        clock.advance(timedelta(milliseconds=200))
        session.feed(frame)
    return session.result().passed


class _Open:
    """A comparison that only proves the template opened (the vault calls it after decrypting)."""

    def __init__(self, opened: object) -> None:
        self.match = False  # counted as a no-match: benchmark subjects are not used afterwards


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text().split()
                if int(stat[3]) == pid and "spawn_main" in (entry / "cmdline").read_text():
                    out.append(int(entry.name))
    return sorted(out)


if __name__ == "__main__":
    sys.exit(main())
