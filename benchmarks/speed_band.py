"""The mirror band: how close to the threshold the crop alone must score before the mirror view is embedded.

With mirror views the calibrated score is ``cos(reference, unit(crop + mirror))``.
A probe far from the threshold is decided the same way by its crop alone, so
:class:`faceverify.hazmat.Probe` embeds the mirror image only when
``|cos(reference, crop) - threshold| <= band``. On LFW all pairs (reference =
the first image of a pair with both views, probe = the second), for each
operating point of the pack and each band on a grid, this counts the pairs whose
decision differs from the full computation (genuine and impostor apart), the
FMR and FNMR of the adaptive rule, and the share of probes that still need the
mirror view. The band chosen is the smallest on the grid for which, at every
operating point, decisions agree on >= 99.9 % of genuine pairs and the adaptive
rule admits no more impostors than the threshold's FMR target allows
(``--agreement``: revision 4 asks 99.99 %, its default point's FNMR sitting at
revision 2's 3.65 %, so that the band adds no miss there).

    python benchmarks/speed_band.py [--agreement 0.9999] [--write-pack]   # needs speed_calibrate's views

Writes ``benchmarks/out/band.json`` and ``band.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _lfw import OUT, load_lfw
from speed_calibrate import views_path

from faceverify.hazmat import builtin_manifest

ROOT = Path(__file__).resolve().parents[1]
PACK_FILE = ROOT / "src" / "faceverify" / "_models" / "packs" / "yunet-sface.json"
GRID = tuple(round(x, 3) for x in np.arange(0.0, 0.2001, 0.005))
AGREEMENT = 0.999
F32 = npt.NDArray[np.float32]


def pair_matrices(
    full: F32, crop: F32, ident: npt.NDArray[np.int64], keep: npt.NDArray[np.bool_]
) -> dict[str, F32]:
    """Full and crop-only probe scores of every pair i < j (i the reference), genuine and impostor apart."""
    idx = np.flatnonzero(keep)
    f, c, ids = full[idx], crop[idx], ident[idx]
    n = len(idx)
    out: dict[str, list[F32]] = {"gen_full": [], "gen_crop": [], "imp_full": [], "imp_crop": []}
    for r0 in range(0, n, 1024):
        r1 = min(n, r0 + 1024)
        sf = f[r0:r1] @ f[r0:].T
        sc = f[r0:r1] @ c[r0:].T
        upper = np.arange(r0, n)[None, :] > np.arange(r0, r1)[:, None]
        same = ids[r0:r1, None] == ids[None, r0:]
        out["gen_full"].append(sf[upper & same])
        out["gen_crop"].append(sc[upper & same])
        # impostors: only what can be near a threshold matters; keep those above -1 (all), as float32
        out["imp_full"].append(sf[upper & ~same])
        out["imp_crop"].append(sc[upper & ~same])
    return {k: np.concatenate(v) for k, v in out.items()}


def at(m: dict[str, F32], t: float, band: float) -> dict[str, Any]:
    def adaptive(full: F32, crop: F32) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        near = np.abs(crop - t) <= band
        return np.where(near, full >= t, crop >= t), near

    g_ad, g_near = adaptive(m["gen_full"], m["gen_crop"])
    i_ad, i_near = adaptive(m["imp_full"], m["imp_crop"])
    g_full, i_full = m["gen_full"] >= t, m["imp_full"] >= t
    return {
        "band": band,
        "genuine_agree": float(np.mean(g_ad == g_full)),
        "genuine_disagree": int((g_ad != g_full).sum()),
        "impostor_disagree": int((i_ad != i_full).sum()),
        "all_pairs_agree": 1.0
        - float(((g_ad != g_full).sum() + (i_ad != i_full).sum()) / (len(g_ad) + len(i_ad))),
        "fnmr_full": float(np.mean(~g_full)),
        "fnmr_adaptive": float(np.mean(~g_ad)),
        "false_matches_full": int(i_full.sum()),
        "false_matches_adaptive": int(i_ad.sum()),
        "fmr_adaptive": float(i_ad.mean()),
        "mirror_share_genuine": float(g_near.mean()),
        "mirror_share_impostor": float(i_near.mean()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write-pack", action="store_true", help="write the chosen band into the default pack")
    ap.add_argument(
        "--agreement",
        type=float,
        default=AGREEMENT,
        help="genuine decisions that must agree with both views at every point (revision 4: 0.9999)",
    )
    args = ap.parse_args()
    pack = builtin_manifest("yunet-sface")
    lfw = load_lfw()
    with np.load(views_path("yunet-sface")) as z:
        assert tuple(str(k) for k in z["keys"]) == lfw.embedded.keys
        views = z["views"]
    full = np.nan_to_num(lfw.embedded.embedding)
    crop = np.nan_to_num(views[:, 0])
    m = pair_matrices(full, crop, lfw.identity, lfw.embedded.acquired)
    result: dict[str, Any] = {"embedding_space": pack.embedding_space, "agreement": args.agreement}
    result["points"] = {}
    chosen = 0.0
    for op in pack.operating_points:
        allowed = math.floor(op.fmr * len(m["imp_full"]) + 1e-9)
        rows = [at(m, op.threshold, b) for b in GRID]
        ok = [
            r for r in rows if r["genuine_agree"] >= args.agreement and r["false_matches_adaptive"] <= allowed
        ]
        need = ok[0]["band"] if ok else math.inf
        chosen = max(chosen, need)
        result["points"][op.name] = {
            "threshold": op.threshold,
            "fmr": op.fmr,
            "allowed": allowed,
            "min_band": need,
            "grid": rows,
        }
        print(f"{op.name}: t={op.threshold} smallest band {need}", file=sys.stderr)
    result["band"] = chosen
    result["at_band"] = {
        name: next(r for r in p["grid"] if r["band"] == chosen) for name, p in result["points"].items()
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "band.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    md = markdown(result)
    (OUT / "band.md").write_text(md, encoding="utf-8")
    print(md)
    if args.write_pack:
        text = PACK_FILE.read_text("utf-8")
        new, n = re.subn(
            r'("mirror": true)(,\s*"mirror_band": [0-9.]+)?', rf'\1,\n    "mirror_band": {chosen}', text
        )
        if n != 1:
            raise SystemExit("could not place mirror_band in the manifest")
        json.loads(new)
        PACK_FILE.write_text(new, "utf-8")


def markdown(r: dict[str, Any]) -> str:
    lines = [
        f"Mirror band {r['band']} ({r['embedding_space']}, LFW all pairs; "
        "reference = both views, probe = crop first):",
        "",
        "| point | threshold | genuine agree | genuine / impostor decisions changed | FNMR full → adaptive "
        "| false matches full → adaptive | probes embedding the mirror (genuine / impostor) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in r["at_band"].items():
        t = r["points"][name]["threshold"]
        lines.append(
            f"| {name} | {t} | {row['genuine_agree'] * 100:.2f} % "
            f"| {row['genuine_disagree']} / {row['impostor_disagree']} "
            f"| {row['fnmr_full'] * 100:.2f} → {row['fnmr_adaptive'] * 100:.2f} % "
            f"| {row['false_matches_full']} → {row['false_matches_adaptive']} "
            f"| {row['mirror_share_genuine'] * 100:.1f} % / {row['mirror_share_impostor'] * 100:.3f} % |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
