"""Write constraints.txt: the exact versions of faceverify's dependency closure, as installed here.

    python scripts/lock.py                 # every installed extra but `peers` (benchmark-only)
    python scripts/lock.py --extras dev service
    python scripts/lock.py --check         # exit 1 if constraints.txt differs from the environment

Run it in the environment the suite passed in (after `pip install -e '.[...]'`):
it walks the requirements of the project and its extras through the installed
distributions (markers evaluated for this interpreter) and pins each one to the
version installed, so that `pip install -c constraints.txt -e '.[dev]'` (what
scripts/test does) reproduces the set that was tested, and `pip-audit` audits
exactly that set (scripts/audit.py). A requirement that is not installed is an
error: install the extras first.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "constraints.txt"
EXCLUDED_EXTRAS = {"peers"}
#: The installers themselves (pip-compile's "unsafe" set): scripts/test upgrades pip before installing.
INSTALLERS = {"pip", "setuptools", "wheel"}
HEADER = """\
# The exact versions faceverify's tests ran with: every dependency of the project and of its
# extras ({extras}), as installed, on Python {python}.
# Regenerate with `python scripts/lock.py` (in the environment the suite passed in); audited by
# scripts/audit.py (pip-audit) in scripts/test. Use: pip install -c constraints.txt -e '.[dev]'
"""


def closure(extras: list[str]) -> dict[str, str]:
    """Canonical name -> installed version for everything the project needs with ``extras``."""
    optional = _project()["optional-dependencies"]
    env = default_environment()

    def applies(req: Requirement, extras: set[str]) -> bool:
        """The requirement's marker holds here, for the package's plain install or a requested extra."""
        return req.marker is None or any(req.marker.evaluate({**env, "extra": e}) for e in {"", *extras})

    pinned: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    pending = [Requirement(r) for r in _project()["dependencies"]]
    pending += [Requirement(f"faceverify[{','.join(extras)}]")] if extras else []
    pending = [r for r in pending if applies(r, set())]
    while pending:
        req = pending.pop()
        name = canonicalize_name(req.name)
        if (name, frozenset(req.extras)) in seen or name in INSTALLERS:
            continue
        seen.add((name, frozenset(req.extras)))
        if name == "faceverify":  # the project's own extras, also as named inside another extra
            pending += [Requirement(r) for e in req.extras for r in optional[e]]
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            sys.exit(f"lock: {req} is required but not installed here; install the extras first")
        if not req.specifier.contains(dist.version, prereleases=True):
            sys.exit(f"lock: {req.name} {dist.version} is installed but {req} is required")
        pinned[name] = dist.version
        pending += [sub for sub in map(Requirement, dist.requires or []) if applies(sub, set(req.extras))]
    return pinned


def _project() -> dict[str, Any]:
    project: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project


def installed_extras() -> list[str]:
    """Every extra but ``peers`` whose requirements are all installed here (e.g. not ``gpio`` off a board)."""
    found = []
    for extra, reqs in _project().get("optional-dependencies", {}).items():
        names = [Requirement(r).name for r in reqs]
        if extra in EXCLUDED_EXTRAS:
            continue
        try:
            for n in names:
                if canonicalize_name(n) != "faceverify":
                    metadata.distribution(n)
        except metadata.PackageNotFoundError:
            sys.stderr.write(f"lock: extra {extra!r} is not installed here: not locked\n")
            continue
        found.append(extra)
    return found


def render(extras: list[str]) -> str:
    pinned = closure(extras)
    python = ".".join(map(str, sys.version_info[:2]))
    lines = [f"{name}=={version}" for name, version in sorted(pinned.items())]
    return HEADER.format(extras=", ".join(extras), python=python) + "\n".join(lines) + "\n"


def main() -> None:
    every = installed_extras()
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--extras", nargs="*", default=every, help=f"default: {' '.join(every)}")
    parser.add_argument("--check", action="store_true", help="compare with constraints.txt, write nothing")
    args = parser.parse_args()
    text = render(args.extras)
    if args.check:
        if not LOCK.exists() or LOCK.read_text() != text:
            sys.exit("lock: constraints.txt is not what is installed: run `python scripts/lock.py`")
        sys.stdout.write("lock: constraints.txt matches the environment\n")
        return
    LOCK.write_text(text)
    sys.stdout.write(f"lock: {LOCK.relative_to(ROOT)}: {text.count('==')} pins\n")


if __name__ == "__main__":
    main()
