"""Fetch the sample photos used by the demo and the tests, verified.

They are the MIT-licensed test images shipped in the ``face_recognition``
1.3.0 source distribution on PyPI: three different photos of one person, one of
another, two with the face cut off by the frame, and an RGBA PNG. They are
obtained the way the model weights are (pinned version, pinned SHA-256) and
never committed.

    python scripts/samples.py DIR     # prints the paths
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
from pathlib import Path

SDIST = "face_recognition-1.3.0.tar.gz"
SDIST_SHA256 = "5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec"
NAMES = (
    "obama.jpg",
    "obama2.jpg",
    "obama3.jpg",
    "biden.jpg",
    "obama_partial_face.jpg",
    "obama_partial_face2.jpg",
    "32bit.png",
)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch_samples(target: Path) -> dict[str, Path]:
    """Sample photos in ``target``, keyed by stem (``obama``, ``biden``, ``32bit``…)."""
    if not all((target / n).exists() for n in NAMES):
        downloads = target / "downloads"
        downloads.mkdir(parents=True, exist_ok=True)
        sdist = downloads / SDIST
        if not sdist.exists() or _sha256(sdist) != SDIST_SHA256:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--no-binary",
                    ":all:",
                    "--quiet",
                    "--dest",
                    str(downloads),
                    "face_recognition==1.3.0",
                ],
                check=True,
            )
        if _sha256(sdist) != SDIST_SHA256:
            raise SystemExit(f"{sdist} does not match its pinned SHA-256; refusing to use it")
        with tarfile.open(sdist) as tf:
            for name in NAMES:
                member = tf.extractfile(f"face_recognition-1.3.0/tests/test_images/{name}")
                if member is None:
                    raise SystemExit(f"{SDIST} holds no {name}")
                (target / name).write_bytes(member.read())
    return {n.rsplit(".", 1)[0]: target / n for n in NAMES}


if __name__ == "__main__":
    for stem, path in fetch_samples(Path(sys.argv[1] if len(sys.argv) > 1 else "samples")).items():
        sys.stdout.write(f"{stem}\t{path}\n")
