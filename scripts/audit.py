"""Audit constraints.txt (the locked dependency set) for known vulnerabilities with pip-audit.

    python scripts/audit.py            # exit 1 on any known vulnerability in a locked version

pip-audit asks its vulnerability service about every pinned ``name==version``
(``--no-deps``: the lock is the whole set). Its default service is the PyPI
JSON API's per-release endpoint; OSV is its other. Where neither answers
(a machine that reaches the package index but not those endpoints, as the
project's CI machines do), pip-audit skips each package with "could not be
audited" and would pass: that is no audit. So the skipped packages are looked
up in the project-level PyPI JSON (which this machine does reach): it lists
the known vulnerabilities of the *latest* release, which is exactly the
answer for a pin at the latest release. A pin behind the latest release cannot
be audited that way and is listed as such (it fails the run only with
``--strict``); a vulnerability found either way fails the run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "constraints.txt"
PROJECT_JSON = "https://pypi.org/pypi/{name}/json"


def pip_audit(lock: Path) -> list[dict[str, object]]:
    done = subprocess.run(
        [
            sys.executable, "-m", "pip_audit", "-r", str(lock), "--no-deps", "--disable-pip",
            "--progress-spinner", "off", "-f", "json", "--timeout", "30",
        ],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    if done.returncode not in (0, 1) or not done.stdout.strip():
        reason = f"pip-audit failed ({done.returncode}): {done.stderr.strip()[-300:]}"
        sys.stderr.write(f"audit: {reason}; every pin goes to the index's advisories\n")
        return [{"name": name, "skip_reason": reason} for name in _pins(lock)]
    deps: list[dict[str, object]] = json.loads(done.stdout)["dependencies"]
    return deps


def _pins(lock: Path) -> dict[str, str]:
    lines = [ln.strip() for ln in lock.read_text().splitlines()]
    return dict(ln.split("==", 1) for ln in lines if "==" in ln and not ln.startswith("#"))


def latest_vulnerabilities(name: str) -> tuple[str, list[dict[str, object]]]:
    """The latest release of ``name`` and the known vulnerabilities the index lists for it."""
    with urllib.request.urlopen(PROJECT_JSON.format(name=name), timeout=30) as response:  # noqa: S310
        data = json.load(response)
    vulns = [v for v in data.get("vulnerabilities") or [] if not v.get("withdrawn")]
    return str(data["info"]["version"]), vulns


def _latest_or_error(name: str) -> tuple[str, list[dict[str, object]]] | str:
    try:
        return latest_vulnerabilities(name)
    except (urllib.error.URLError, TimeoutError, ValueError, KeyError) as exc:
        return str(exc)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lock", type=Path, default=LOCK)
    parser.add_argument("--strict", action="store_true", help="fail when a pin cannot be audited")
    args = parser.parse_args()
    found: list[str] = []
    unaudited: list[str] = []
    by_service = by_index = 0
    pins = _pins(args.lock)
    deps = pip_audit(args.lock)
    skipped = [str(d["name"]) for d in deps if "skip_reason" in d]
    with ThreadPoolExecutor(max_workers=8) as pool:  # one small request per skipped package
        answers = dict(zip(skipped, pool.map(_latest_or_error, skipped), strict=True))
    for dep in deps:
        name = str(dep["name"])
        version = str(dep.get("version") or pins[name])
        if "skip_reason" not in dep:
            by_service += 1
            found += [f"{name}=={version}: {v['id']} (fixed in {', '.join(v['fix_versions']) or 'none'})"
                      for v in dep.get("vulns", [])]  # type: ignore[union-attr]  # fmt: skip
            continue
        answer = answers[name]
        if isinstance(answer, str):
            unaudited.append(f"{name}=={version} (index unreachable: {answer})")
            continue
        latest, vulns = answer
        if latest != version:
            unaudited.append(f"{name}=={version} (latest is {latest})")
            continue
        by_index += 1
        for v in vulns:
            fixed = ", ".join(v.get("fixed_in") or []) or "none"  # type: ignore[arg-type]
            found.append(f"{name}=={version}: {v.get('id')} (fixed in {fixed})")
    total = by_service + by_index + len(unaudited)
    out = sys.stdout
    out.write(
        f"audit: {total} locked packages; {by_service} audited by pip-audit's service, {by_index} by the "
        f"index's latest-release advisories, {len(unaudited)} not auditable here\n"
    )
    for line in unaudited:
        out.write(f"  not audited: {line}\n")
    for line in found:
        out.write(f"  VULNERABLE: {line}\n")
    if found or (args.strict and unaudited):
        sys.exit(1)
    out.write("audit: no known vulnerability in the audited pins\n")


if __name__ == "__main__":
    main()
