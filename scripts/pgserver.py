"""A throwaway PostgreSQL server for the tests and benchmarks: its own data and socket directory.

It runs Debian's PostgreSQL binaries (``/usr/lib/postgresql/N/bin``, or ``initdb`` on the
PATH) as an unprivileged user (``postgres`` when we are root: PostgreSQL refuses to run as
root), listens on a unix socket only (``listen_addresses=''``, no TCP port to collide on) and
trusts local connections (the socket directory is private to the test run).

    python scripts/pgserver.py start DIR [--durable]   # prints the server's URL
    python scripts/pgserver.py stop DIR

``scripts/test`` starts one for the whole run and exports ``FACEVERIFY_TEST_POSTGRES_URL``;
``tests/conftest.py`` starts its own the same way when that is unset. Test servers run with
``fsync=off`` (a test kills clients, never the server); ``--durable`` keeps PostgreSQL's
defaults, for benchmarks whose figures must include the cost of a durable commit.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

SUPERUSER = "postgres"


class ServerUnavailableError(RuntimeError):
    """No PostgreSQL server can be started here (binaries missing, initdb failed)."""


def bindir() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl`` (newest installed major version)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent  # Debian links some binaries into /usr/local/bin
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not candidates:
        raise ServerUnavailableError(
            "PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql/*/bin): "
            "`apt-get install postgresql`, or run ./scripts/test, which installs it"
        )
    return Path(candidates[-1]).parent


def _as_user() -> list[str]:
    """The command prefix that drops root to the ``postgres`` user (nothing when not root)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(SUPERUSER)
    except KeyError:
        raise ServerUnavailableError(
            "running as root and there is no 'postgres' user to run the server"
        ) from None
    runuser = shutil.which("runuser") or shutil.which("setpriv")
    if runuser is None:
        raise ServerUnavailableError("running as root and neither runuser nor setpriv is available")
    if runuser.endswith("setpriv"):
        entry = pwd.getpwnam(SUPERUSER)
        return [runuser, f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups", "--"]
    return [runuser, "-u", SUPERUSER, "--"]


def _run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload, no-any-return]


def with_database(url: str, name: str) -> str:
    """``url`` with its database replaced by ``name`` (the query, e.g. the socket host, kept)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def url_for(base: Path, database: str = "postgres") -> str:
    return f"postgresql://{SUPERUSER}@/{database}?host={base / 'sock'}"


def start(base: Path, *, durable: bool = False) -> str:
    """Initialise and start a server under ``base`` (created); return its URL."""
    bins = bindir()
    prefix = _as_user()
    base.mkdir(parents=True, exist_ok=True)
    data, sock = base / "data", base / "sock"
    sock.mkdir(exist_ok=True)
    if prefix:
        entry = pwd.getpwnam(SUPERUSER)
        for path in (base, sock):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    os.chmod(base, 0o700)
    os.chmod(sock, 0o700)
    if not (data / "PG_VERSION").exists():
        done = _run(
            [
                *prefix,
                str(bins / "initdb"),
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )
        if done.returncode != 0:
            raise ServerUnavailableError(f"initdb failed: {done.stderr.strip()[-500:]}")
    options = [
        "-c listen_addresses=''",
        f"-c unix_socket_directories={sock}",
        "-c max_connections=200",
        "-c shared_buffers=32MB",
    ]
    if not durable:
        options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
    done = _run(
        [
            *prefix,
            str(bins / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(base / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            " ".join(options),
            "start",
        ]
    )
    if done.returncode != 0:
        log_file = base / "server.log"
        log = log_file.read_text(errors="replace")[-800:] if log_file.exists() else ""
        raise ServerUnavailableError(f"pg_ctl start failed: {done.stderr.strip()[-300:]} {log}")
    return url_for(base)


def stop_server(base: Path) -> None:
    """Stop the server under ``base`` (fast shutdown), keeping its files (``start`` restarts it)."""
    data = base / "data"
    if (data / "postmaster.pid").exists():
        with contextlib.suppress(ServerUnavailableError):
            _run([*_as_user(), str(bindir() / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])


def stop(base: Path) -> None:
    """Stop the server under ``base`` and remove its files."""
    stop_server(base)
    shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def server(*, durable: bool = False) -> Iterator[str]:
    """A server for the duration of the block; its URL."""
    base = Path(tempfile.mkdtemp(prefix="fvpg-"))
    try:
        yield start(base, durable=durable)
    finally:
        stop(base)


def wait_until_up(url: str, timeout: float = 30.0) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(url, connect_timeout=5).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in {"start", "stop"}:
        sys.stderr.write(__doc__ or "")
        return 2
    base = Path(argv[1])
    if argv[0] == "stop":
        stop(base)
        return 0
    try:
        sys.stdout.write(start(base, durable="--durable" in argv[2:]) + "\n")
    except ServerUnavailableError as exc:
        sys.stderr.write(f"pgserver: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
