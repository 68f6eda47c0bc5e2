"""Peak memory and time of ``load_image`` on images built to be expensive: a few KB claiming many pixels.

Each case runs in a fresh subprocess (peak RSS is per process) and reports the
growth of the peak resident set over the interpreter with faceverify imported,
and the wall time of one ``load_image``. Peak = the kernel's VmHWM after
resetting it (``/proc/self/clear_refs``), less the resident set at that
moment: Linux only. The images are made here (solid
colours compress to almost nothing, which is the point: size on disk says
nothing about the cost of decoding).

    python benchmarks/decode_memory.py [--json out.json]
    # the same cases against another source tree (e.g. before a change):
    git archive REV src | tar -x -C /tmp/old && PYTHONPATH=/tmp/old/src python benchmarks/decode_memory.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

CASES = [
    # (name, mode, fill, format, save options, width, height)
    ("PNG RGB 64 MP", "RGB", (200, 180, 160), "PNG", {"optimize": True}, 8000, 7990),
    ("PNG grey 64 MP", "L", 128, "PNG", {"optimize": True}, 8000, 7990),
    ("PNG RGBA 64 MP", "RGBA", (1, 2, 3, 200), "PNG", {"optimize": True}, 8000, 7990),
    ("WebP 64 MP", "RGB", (200, 180, 160), "WEBP", {"lossless": True}, 8000, 7990),
    ("TIFF 64 MP", "RGB", (200, 180, 160), "TIFF", {"compression": "tiff_deflate"}, 8000, 7990),
    ("JPEG 64 MP", "RGB", (200, 180, 160), "JPEG", {"quality": 50}, 8000, 7990),
    ("PNG RGB 16 MP", "RGB", (200, 180, 160), "PNG", {}, 4000, 3999),
    ("PNG RGBA 16 MP", "RGBA", (1, 2, 3, 200), "PNG", {}, 4000, 3999),
    ("PNG 16-bit 16 MP", "I;16", 0, "PNG", {}, 4000, 3999),
    ("WebP 16 MP", "RGB", (200, 180, 160), "WEBP", {"lossless": True}, 4000, 3999),
]

PROBE = """
import sys, time
from faceverify.hazmat import load_image

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024

with open("/proc/self/clear_refs", "w") as f:  # reset the peak (VmHWM) to the current RSS
    f.write("5")
base = status("VmRSS:")
t = time.perf_counter()
try:
    shape = list(load_image(sys.argv[1]).shape); outcome = "decoded"
except Exception as exc:
    shape, outcome = None, type(exc).__name__
seconds = time.perf_counter() - t
print(seconds, status("VmHWM:") - base, outcome, shape)
"""


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, mode, fill, fmt, options, w, h in CASES:
            path = Path(tmp) / f"case.{fmt.lower()}"
            Image.new(mode, (w, h), fill).save(path, fmt, **options)
            done = subprocess.run(
                [sys.executable, "-c", PROBE, str(path)],
                capture_output=True,
                text=True,
                check=True,
                env=os.environ,
                timeout=300,
            )
            seconds, mb, outcome, shape = done.stdout.split(" ", 3)
            rows.append(
                {
                    "case": name,
                    "file_kb": round(path.stat().st_size / 1024, 1),
                    "seconds": round(float(seconds), 3),
                    "peak_mb": round(float(mb)),
                    "outcome": outcome,
                    "decoded_to": shape.strip(),
                }
            )
            path.unlink()
    print(f"{'case':<18} {'file KB':>8} {'s':>6} {'+peak MB':>9}  outcome")
    for r in rows:
        outcome = f"{r['outcome']} {r['decoded_to']}"
        print(f"{r['case']:<18} {r['file_kb']:>8} {r['seconds']:>6} {r['peak_mb']:>9}  {outcome}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
