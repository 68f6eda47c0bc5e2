"""Real ``faceverify serve`` processes for tests and benchmarks/service.py: start, wait ready, stop.

Each server listens on loopback on a free port; every process started here is
stopped (terminate, then kill) by ``stop`` or the context manager.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

SRC = str(Path(__file__).resolve().parents[2] / "src")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log: Path
    pids: list[int] = field(default_factory=list)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def faceverify(*args: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a subprocess (the same interpreter and source tree)."""
    full = {**os.environ, "PYTHONPATH": SRC, **env}
    return subprocess.run(
        [sys.executable, "-m", "faceverify", *args], env=full, capture_output=True, text=True, check=False
    )


def start(
    database: str,
    *,
    keys_database: str,
    env: Mapping[str, str],
    log_dir: Path,
    workers: int = 1,
    extra: tuple[str, ...] = (),
    timeout: float = 120.0,
) -> Server:
    """``faceverify serve`` on a free loopback port; returns once ``/readyz`` answers 200."""
    port = free_port()
    log = log_dir / f"serve-{port}.log"
    full = {**os.environ, "PYTHONPATH": SRC, **env}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "faceverify",
                "serve",
                "--database",
                database,
                "--keys-database",
                keys_database,
                "--port",
                str(port),
                "--workers",
                str(workers),
                *extra,
            ],
            env=full,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"faceverify serve exited {process.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(server.url + "/readyz", timeout=2).status_code == 200:
                return server
        time.sleep(0.3)
    server.stop()
    raise RuntimeError(f"faceverify serve not ready in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def running(*args: object, **kwargs: object) -> Iterator[Server]:
    server = start(*args, **kwargs)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()
