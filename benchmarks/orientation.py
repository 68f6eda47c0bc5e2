"""How often the EXIF orientation check refuses: wrong tags caught, right tags wrongly refused.

For N LFW images (the first image of the first N people, sorted; research data in
``../shared/data/lfw``, never copied), each photo is encoded as a phone would
store it (pixels turned, the tag that says so: must be accepted) and with a
wrong tag on upright pixels (must be refused), for the turning orientations.
Counts per case and the share refused; the detector's own outcome (no face) is
told apart from the orientation check's refusal.

    nice -n 10 python benchmarks/orientation.py [--images 150] [--json out.json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from faceverify import LowQualityError, NoFaceError
from faceverify._pipeline._capture import as_stored
from faceverify.hazmat import builtin_manifest, load_pipeline

LFW = Path(os.environ.get("FACEVERIFY_LFW", Path(__file__).resolve().parents[2] / "shared" / "data" / "lfw"))


def tagged(pixels: np.ndarray, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, "JPEG", quality=92, exif=exif.tobytes())
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=150)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    people = sorted(p for p in LFW.iterdir() if p.is_dir())[: args.images]
    photos = [sorted(p.glob("*.jpg"))[0] for p in people]
    pipeline = load_pipeline(builtin_manifest("yunet-sface"), cache=os.environ.get("FACEVERIFY_HOME"))
    outcomes: dict[str, Counter[str]] = {}
    for photo in photos:
        upright = np.asarray(Image.open(photo).convert("RGB"))
        if _outcome(pipeline, tagged(upright, 1)) != "sample":
            continue  # no usable face even upright: says nothing about orientation
        for o in (3, 6, 8):
            case = f"right tag {o}"
            outcomes.setdefault(case, Counter())[_outcome(pipeline, tagged(as_stored(upright, o), o))] += 1
        for o in (3, 4, 6, 8):
            case = f"wrong tag {o}"
            outcomes.setdefault(case, Counter())[_outcome(pipeline, tagged(upright, o))] += 1
    rows = []
    print(f"{'case':<12} {'images':>6} {'sample':>7} {'no face':>8} {'orientation':>12} {'other':>6}")
    for case, counts in outcomes.items():
        n = sum(counts.values())
        other = n - counts["sample"] - counts["no_face"] - counts["orientation"]
        rows.append({"case": case, "images": n, **counts, "other": other})
        cells = f"{counts['sample']:>7} {counts['no_face']:>8} {counts['orientation']:>12}"
        print(f"{case:<12} {n:>6} {cells} {other:>6}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


def _outcome(pipeline: object, data: bytes) -> str:
    try:
        pipeline.sample(data, policy=None, select="dominant")  # type: ignore[attr-defined]
    except NoFaceError:
        return "no_face"
    except LowQualityError as exc:
        return "orientation" if exc.reasons == ("orientation",) else "low_quality"
    return "sample"


if __name__ == "__main__":
    main()
